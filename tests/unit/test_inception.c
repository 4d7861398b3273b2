/* metrics/inception.h against PyTorch (tests/golden/gen_inception.py: pytorch-fid's FID
 * Inception-v3, hash weights, 2 preprocessed 299×299 inputs): the 2048-d pool_3 features and
 * intermediate activations of image 0 (after the first max pool, Mixed_5b and Mixed_6e, first 16
 * channels). Tolerance 1e-4 relative (max |difference| over max |reference|): both sides compute
 * in float32, but sum the ~90 convolutions' products in different orders (OpenBLAS GEMM after
 * im2col here, oneDNN/THNN kernels there) and this side folds BatchNorm into the weights in
 * double while PyTorch applies it after the convolution in float32: each layer adds ~1e-7 relative
 * noise, amplified along 40 layers of depth; measured (printed) well below. Also: the hash
 * generator reproduces the stored inputs, the layer table, bad weights are named. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "golden_compare.h"
#include "golden_h5.h"
#include "metrics/inception.h"
#include "test.h"

static hid_t golden(void) {
  static hid_t f = -1;
  if (f < 0) f = golden_open_file("inception_fid.h5");
  return f;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* max |a − b| / max |b| (golden_compare.h; NaN when a holds one, which fails every bound). */
static double rel_err(const float *a, const float *b, size_t n) { return compare(a, b, n).rel; }

TEST(layer_table) {
  int co, ci, kh, kw, n = 0;
  long params = 0;
  while (inception_fid_layer(n, &co, &ci, &kh, &kw)) {
    params += (long)co * ci * kh * kw;
    n++;
  }
  ASSERT_EQ_INT(n, INCEPTION_FID_LAYERS);
  ASSERT_EQ_INT(params, 21751136); /* metrics-reference.md §1.1: conv weights */
  ASSERT_STR_EQ(inception_fid_layer(0, NULL, NULL, NULL, NULL), "Conv2d_1a_3x3");
  ASSERT_STR_EQ(inception_fid_layer(93, NULL, NULL, NULL, NULL), "Mixed_7c.branch_pool");
}

TEST(against_pytorch) {
  ASSERT_TRUE(golden() >= 0);
  const int N = 2;
  size_t nf = 0, nh = 0, nb0 = 0, n5b = 0, n6e = 0;
  float *ref = golden_f32_flat(golden(), "/features", &nf);
  float *xh = golden_f32_flat(golden(), "/x_head", &nh);
  float *rb0 = golden_f32_flat(golden(), "/block0", &nb0);
  float *r5b = golden_f32_flat(golden(), "/mixed_5b", &n5b);
  float *r6e = golden_f32_flat(golden(), "/block2", &n6e);
  ASSERT_TRUE(ref && xh && rb0 && r5b && r6e);
  ASSERT_TRUE(nf == (size_t)N * INCEPTION_FID_DIM && nb0 == 16 * 73 * 73 && n5b == 16 * 35 * 35 &&
              n6e == 16 * 17 * 17);
  const size_t nx = (size_t)N * 3 * 299 * 299;
  float *x = malloc(nx * sizeof(float));
  ASSERT_TRUE(x != NULL);
  for (size_t i = 0; i < nx; i++) x[i] = inception_fid_hash_input(i);
  for (size_t i = 0; i < nh; i++) ASSERT_TRUE(x[i] == xh[i]); /* the generators agree */

  inception_fid *net = NULL;
  double t0 = now();
  ASSERT_OK(inception_fid_create(&net, inception_fid_hash_source, NULL));
  const double t_load = now() - t0;
  float *ws = malloc(inception_fid_workspace(net) * sizeof(float));
  float *feat = malloc((size_t)N * INCEPTION_FID_DIM * sizeof(float));
  float *b0 = malloc((size_t)N * 64 * 73 * 73 * sizeof(float));
  float *m5b = malloc((size_t)N * 256 * 35 * 35 * sizeof(float));
  float *m6e = malloc((size_t)N * 768 * 17 * 17 * sizeof(float));
  ASSERT_TRUE(ws && feat && b0 && m5b && m6e);
  const inception_fid_taps taps = {b0, m5b, m6e};
  t0 = now();
  inception_fid_forward(net, feat, x, N, ws, &taps);
  const double t_fwd = (now() - t0) / N;
  /* image 0's first 16 channels are the first 16·H·W elements of each tap */
  const double e_b0 = rel_err(b0, rb0, nb0), e_5b = rel_err(m5b, r5b, n5b),
               e_6e = rel_err(m6e, r6e, n6e), e_f = rel_err(feat, ref, nf);
  printf("# rel. error (max |diff| / max |ref|): block0 %.3g, mixed_5b %.3g, mixed_6e %.3g, "
         "features %.3g\n", e_b0, e_5b, e_6e, e_f);
  printf("# load+fold %.2f s, forward %.3f s per 299x299 image\n", t_load, t_fwd);
  ASSERT_TRUE(e_b0 <= 1e-4);
  ASSERT_TRUE(e_5b <= 1e-4);
  ASSERT_TRUE(e_6e <= 1e-4);
  ASSERT_TRUE(e_f <= 1e-4);
  inception_fid_free(net);
  free(ref), free(xh), free(rb0), free(r5b), free(r6e), free(x), free(ws), free(feat), free(b0);
  free(m5b), free(m6e);
}

/* A source that fails on one tensor, or gives a negative variance: create fails naming it. */
static ec_status failing_source(void *user, const char *name, float *dst, size_t n) {
  if (!strcmp(name, (const char *)user)) return ec_err(EC_ENOENT, "weights: no tensor %s", name);
  ec_status st = inception_fid_hash_source(NULL, name, dst, n);
  if (!strcmp((const char *)user, "negative var") && !strcmp(name, "Mixed_6c.branch7x7_2.bn.running_var"))
    dst[5] = -1.0f;
  return st;
}

TEST(bad_weights_are_named) {
  inception_fid *net = (inception_fid *)1;
  ASSERT_STATUS(inception_fid_create(&net, failing_source, (void *)"Mixed_7b.branch3x3_2a.bn.bias"),
                EC_ENOENT, "Mixed_7b.branch3x3_2a.bn.bias");
  ASSERT_TRUE(net == NULL);
  ASSERT_STATUS(inception_fid_create(&net, failing_source, (void *)"negative var"), EC_EFORMAT,
                "Mixed_6c.branch7x7_2.bn");
}

TEST_MAIN(layer_table, against_pytorch, bad_weights_are_named)
