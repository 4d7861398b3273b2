/* Preprocessing and feature networks in one call (metrics/detector.h). */
#include "metrics/detector.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/dinov2.h"
#include "metrics/inception.h"
#include "metrics/weights.h"
#include "nn/resize.h"

struct edm2_detector {
  edm2_metric metric;
  inception_fid *inc;
  dinov2 *dino;
  float *ws;     /* the network's workspace */
  size_t ws_n;
  float *x;      /* one image in float, 3 channels, at its own size */
  size_t x_n;
  float *y;      /* the resized, normalised network input (3, S, S) */
  float *rs;     /* bicubic_aa scratch */
  size_t rs_n;
};

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

static int input_size(edm2_metric m) { return m == EDM2_METRIC_FID ? INCEPTION_FID_SIZE : DINOV2_SIZE; }

ec_status edm2_detector_create(edm2_detector **out, edm2_metric m, edm2_detector_source src, void *user) {
  *out = NULL;
  edm2_detector *d = calloc(1, sizeof *d);
  if (!d) return ec_err(EC_ENOMEM, "detector: out of memory");
  d->metric = m;
  ec_status st;
  if (m == EDM2_METRIC_FID) {
    st = inception_fid_create(&d->inc, src, user);
    if (!st) d->ws_n = inception_fid_workspace(d->inc);
  } else {
    st = dinov2_create(&d->dino, src, user);
    if (!st) d->ws_n = dinov2_workspace(d->dino);
  }
  const int S = input_size(m);
  if (!st) {
    d->ws = malloc(d->ws_n * sizeof(float));
    d->y = malloc((size_t)3 * S * S * sizeof(float));
    if (!d->ws || !d->y) st = ec_err(EC_ENOMEM, "detector: out of memory (%zu MB of workspace)", d->ws_n >> 18);
  }
  if (st) {
    edm2_detector_free(d);
    return st;
  }
  *out = d;
  return EC_OK;
}

ec_status edm2_detector_open(edm2_detector **out, edm2_metric m, const char *weights_dir) {
  *out = NULL;
  edm2_weights w;
  ec_status st = edm2_weights_open(&w, m, weights_dir);
  if (st) return st;
  st = edm2_detector_create(out, m, edm2_weights_source, &w);
  edm2_weights_close(&w);
  return st;
}

void edm2_detector_free(edm2_detector *d) {
  if (!d) return;
  inception_fid_free(d->inc);
  dinov2_free(d->dino);
  free(d->ws);
  free(d->x);
  free(d->y);
  free(d->rs);
  free(d);
}

edm2_metric edm2_detector_metric(const edm2_detector *d) { return d->metric; }
int edm2_detector_dim(const edm2_detector *d) { return (int)edm2_metric_dim(d->metric); }

static int grow(float **p, size_t *have, size_t want) {
  if (*have >= want) return 1;
  float *q = realloc(*p, want * sizeof(float));
  if (!q) return 0;
  *p = q, *have = want;
  return 1;
}

ec_status edm2_detector_features(edm2_detector *d, const uint8_t *img, int n, int C, int H, int W, float *feat) {
  if (C != 1 && C != 3)
    return ec_err(EC_EINVAL, "%s: images must have 1 or 3 channels, not %d", edm2_metric_name(d->metric), C);
  if (H < 1 || W < 1 || n < 0) return ec_err(EC_EINVAL, "%s: bad image shape %dx%d", edm2_metric_name(d->metric), H, W);
  const int S = input_size(d->metric);
  const size_t plane = (size_t)H * W, SS = (size_t)S * S;
  if (!grow(&d->x, &d->x_n, 3 * plane))
    return ec_err(EC_ENOMEM, "detector: out of memory for a %dx%d image", H, W);
  if (d->metric == EDM2_METRIC_FD_DINOV2 && !grow(&d->rs, &d->rs_n, nn_resize_bicubic_aa_workspace(3, H, W, S, S)))
    return ec_err(EC_ENOMEM, "detector: out of memory for a %dx%d image", H, W);
  const int D = edm2_detector_dim(d);
  for (int i = 0; i < n; i++) {
    const uint8_t *src = img + (size_t)i * C * plane;
    for (int c = 0; c < 3; c++) /* grayscale: the one channel three times, as EDM2 repeats it */
      for (size_t p = 0; p < plane; p++) d->x[c * plane + p] = (float)src[(C == 1 ? 0 : c) * plane + p];
    if (d->metric == EDM2_METRIC_FID) {
      nn_resize_tf_bilinear_ref(NULL, d->y, S, S, d->x, 1, 3, H, W);
      for (size_t k = 0; k < 3 * SS; k++) d->y[k] = (d->y[k] - 128.0f) / 128.0f;
      inception_fid_forward(d->inc, feat + (size_t)i * D, d->y, 1, d->ws, NULL);
    } else {
      nn_resize_bicubic_aa_ref(NULL, d->y, S, S, d->x, 1, 3, H, W, d->rs);
      for (int c = 0; c < 3; c++)
        for (size_t k = 0; k < SS; k++) d->y[c * SS + k] = (d->y[c * SS + k] / 255.0f - imagenet_mean[c]) / imagenet_std[c];
      dinov2_forward(d->dino, feat + (size_t)i * D, d->y, 1, d->ws, NULL);
    }
  }
  return EC_OK;
}
