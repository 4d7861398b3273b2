/* Training datasets (edm2-spec.md §10.1): items are images (uint8, C × H × W) or latents
 * (float32, 8 × H × W: VAE mean then std), each with an optional label vector.
 *
 *   edm2_dataset *d;
 *   edm2_dataset_open(&d, "fashion-mnist", &(edm2_dataset_opts){.use_labels = 1});
 *   const edm2_dataset_info *in = edm2_dataset_get_info(d);
 *   uint8_t *img = malloc(in->item_bytes); float *label = malloc(in->label_dim * sizeof(float));
 *   edm2_dataset_read(d, i, img, label);
 *   edm2_dataset_close(&d);
 *
 * Sources (edm2_dataset_open's path):
 *   - "fashion-mnist": Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist
 *     (train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz); the 28×28 images are padded with
 *     zeros to 32×32 (2 pixels on each side), 1 channel, 10 classes.
 *   - a directory holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (IDX, as
 *     above: images of any size, zero-padded to the next power of two, centred; 28 -> 32).
 *   - "fashion-mnist:test", "DIR:test": the test split of the above, t10k-images-idx3-ubyte[.gz]
 *     and t10k-labels-idx1-ubyte[.gz] (Fashion-MNIST: 10000 images, 1000 per class), read and
 *     padded the same way; info.path is the resolved directory followed by ":test". A path
 *     ending in ":test" that names an existing file or directory is that file or directory.
 *   - an EDM-style image folder or .zip (recursive; PNG images, or .npy latents), sorted by relative
 *     path with '/' separators; labels from an optional dataset.json {"labels": [[path, label], ...]}
 *     or {"labels": null}. Integer labels become one-hot vectors of length max(label) + 1.
 * Every item has the shape of the first one. With use_labels = 0, or no labels, label_dim = 0.
 * Errors name the file (and, inside a zip or IDX, the entry or item).
 * Reads are not thread-safe (one reader, the training loop). */
#ifndef EDM2C_TRAINER_DATASET_H
#define EDM2C_TRAINER_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum { EDM2_ITEM_U8 = 0, EDM2_ITEM_F32 = 1 } edm2_item_type;

typedef struct {
  int use_labels; /* 0: label_dim = 0 whatever the source holds */
} edm2_dataset_opts;

typedef struct {
  int64_t n;               /* items */
  int channels, height, width;
  edm2_item_type type;     /* uint8 images or float32 latents */
  size_t item_bytes;       /* channels · height · width · (1 or 4) */
  int label_dim;           /* 0 = unconditional */
  char kind[16];           /* "idx", "folder", "zip" */
  char path[4096];         /* the resolved path */
} edm2_dataset_info;

typedef struct edm2_dataset edm2_dataset;

ec_status edm2_dataset_open(edm2_dataset **d, const char *path, const edm2_dataset_opts *opts);
const edm2_dataset_info *edm2_dataset_get_info(const edm2_dataset *d);
/* Item i (0 <= i < n): raw gets item_bytes bytes (CHW), label gets label_dim floats (may be NULL
 * when label_dim = 0). */
ec_status edm2_dataset_read(edm2_dataset *d, int64_t i, void *raw, float *label);
void edm2_dataset_close(edm2_dataset **d);

#endif
