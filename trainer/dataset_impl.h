/* Private parts of the dataset readers (dataset.h): the reader object every source fills in, the
 * label storage the front end serves, and the two source families' openers. Not for use outside
 * trainer/dataset*.c. */
#ifndef EDM2C_TRAINER_DATASET_IMPL_H
#define EDM2C_TRAINER_DATASET_IMPL_H

#include "trainer/dataset.h"

/* Where the name "fashion-mnist" points (Debian's dataset-fashion-mnist). */
#define EDM2_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

struct edm2_dataset {
  edm2_dataset_info info;
  /* Labels, at most one of the two (none when info.label_dim = 0): a class id per item, served
   * as one-hot vectors of length label_dim (4 bytes per item, not label_dim floats), or n ×
   * label_dim float vectors served as they are. */
  int32_t *classes;
  float *vectors;
  /* The source: writes item i's info.item_bytes bytes (0 <= i < n, checked by the caller);
   * frees what `impl` holds. */
  ec_status (*read)(edm2_dataset *d, int64_t i, void *raw);
  void (*free_impl)(edm2_dataset *d);
  void *impl;
};

/* Class ids go up to EDM2_MAX_CLASSES - 1 (a sanity limit: one-hot vectors of label_dim floats). */
#define EDM2_MAX_CLASSES (1 << 20)

/* Takes n class ids (each >= 0) as the items' labels: label_dim = max + 1. */
ec_status edm2_dataset_set_classes(edm2_dataset *d, int32_t **classes);

/* IDX: `dir` holds train-images-idx3-ubyte[.gz] (and train-labels-idx1-ubyte[.gz] when labels
 * are used). Fills d (info.path and info.kind are set by the caller). */
ec_status edm2_dataset_open_idx(edm2_dataset *d, const char *dir, const edm2_dataset_opts *opts);
/* 1 when dir holds train-images-idx3-ubyte or train-images-idx3-ubyte.gz. */
int edm2_dataset_is_idx_dir(const char *dir);
/* The test split of an IDX directory: t10k-images-idx3-ubyte[.gz] (and
 * t10k-labels-idx1-ubyte[.gz]), read as edm2_dataset_open_idx reads the training files. */
ec_status edm2_dataset_open_idx_test(edm2_dataset *d, const char *dir, const edm2_dataset_opts *opts);
/* 1 when dir holds t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz. */
int edm2_dataset_is_idx_test_dir(const char *dir);

/* An EDM-style image folder (is_zip = 0) or zip archive (is_zip = 1). */
ec_status edm2_dataset_open_folder(edm2_dataset *d, const char *path, int is_zip,
                                   const edm2_dataset_opts *opts);

#endif
