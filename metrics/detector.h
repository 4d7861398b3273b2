/* The feature detectors of FID and FD_DINOv2 as EDM2 runs them (metrics-reference.md §0–1), from
 * uint8 images of any size to features:
 *
 *   fid        uint8 → float [0, 255], grayscale repeated to RGB, TF1 resize_bilinear to 299×299
 *              (nn/resize.h tf_bilinear: no half-pixel offset, no antialiasing), (x − 128)/128,
 *              the FID Inception-v3 (metrics/inception.h), 2048-d pool_3 features;
 *   fd_dinov2  uint8 → float [0, 255], grayscale repeated, antialiased bicubic to 224×224
 *              (a = −0.5, no clamp, no quantisation), /255, ImageNet mean/std, DINOv2 ViT-L/14
 *              (metrics/dinov2.h), the 1024-d CLS token after the final LayerNorm.
 *
 * Checked end to end against PyTorch running EDM2's preprocessing on the reference networks
 * (tests/golden/gen_metrics_pipeline.py, tests/unit/test_detector.c). Images run one at a time
 * (their sizes may differ); the matrix products use OpenBLAS's threads. */
#ifndef EDM2C_METRICS_DETECTOR_H
#define EDM2C_METRICS_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "metrics/stats_io.h"

typedef struct edm2_detector edm2_detector;

/* A weight source by state-dict name (the type of inception_fid_source and dinov2_source). */
typedef ec_status (*edm2_detector_source)(void *user, const char *name, float *dst, size_t n);

/* Builds metric m's detector from a weight source (tests: the hash weights). */
ec_status edm2_detector_create(edm2_detector **d, edm2_metric m, edm2_detector_source src, void *user);
/* Builds it from the converted weights in `weights_dir` (NULL: the default, metrics/weights.h). */
ec_status edm2_detector_open(edm2_detector **d, edm2_metric m, const char *weights_dir);
void edm2_detector_free(edm2_detector *d);

edm2_metric edm2_detector_metric(const edm2_detector *d);
/* The feature dimension: 2048 or 1024. */
int edm2_detector_dim(const edm2_detector *d);

/* feat (n, dim) of n uint8 images (n, C, H, W), C = 1 or 3, H, W >= 1. OVERWRITES feat. */
ec_status edm2_detector_features(edm2_detector *d, const uint8_t *img, int n, int C, int H, int W, float *feat);

#endif
