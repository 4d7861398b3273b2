/* metrics/detector.h end to end against PyTorch (tests/golden/gen_metrics_pipeline.py: EDM2's
 * preprocessing — StyleGAN3's TF1-bilinear emulation then (x − 128)/128 for FID, antialiased
 * bicubic then ImageNet normalisation for DINOv2 — on pytorch-fid's FID Inception and the
 * official dinov2_vitl14 with hash weights) for uint8 images of 28×28, 64×64, 512×512 (grayscale)
 * and 96×160. Tolerance 1e-4 relative (max |difference| over max |reference|), as for the
 * networks alone (test_inception.c, test_dinov2.c: float32 sums in different orders along 24–40
 * layers); the resizers add ~1e-5 of their own (test_resize.c). Also: weights loaded from a
 * safetensors file give bit-identical features, and bad weights files are named. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/hash_weights.h"
#include "golden_compare.h"
#include "golden_h5.h"
#include "metrics/detector.h"
#include "test.h"

static hid_t golden(void) {
  static hid_t f = -1;
  if (f < 0) f = golden_open_file("metrics_pipeline.h5");
  return f;
}

static const struct {
  const char *name;
  int c, h, w;
} cases[] = {{"s28", 3, 28, 28}, {"s64", 3, 64, 64}, {"s512", 1, 512, 512}, {"r96x160", 3, 96, 160}};

static uint8_t *image(int k) {
  char path[64];
  snprintf(path, sizeof path, "/%s/x", cases[k].name);
  size_t n = 0;
  float *x = golden_f32_flat(golden(), path, &n);
  if (!x || n != (size_t)cases[k].c * cases[k].h * cases[k].w) return free(x), NULL;
  uint8_t *u = malloc(n);
  for (size_t i = 0; i < n; i++) u[i] = (uint8_t)x[i];
  free(x);
  return u;
}

static void against_pytorch(edm2_metric m, edm2_detector_source src) {
  ASSERT_TRUE(golden() >= 0);
  edm2_detector *d;
  ASSERT_OK(edm2_detector_create(&d, m, src, NULL));
  const int D = edm2_detector_dim(d);
  ASSERT_EQ_INT(D, edm2_metric_dim(m));
  float *feat = malloc((size_t)D * sizeof(float));
  double worst = 0;
  for (int k = 0; k < 4; k++) {
    uint8_t *x = image(k);
    ASSERT_TRUE(x != NULL);
    for (int i = 0; i < D; i++) feat[i] = NAN; /* poisoned: every element must be written */
    ASSERT_OK(edm2_detector_features(d, x, 1, cases[k].c, cases[k].h, cases[k].w, feat));
    char path[64];
    snprintf(path, sizeof path, "/%s/%s", cases[k].name, edm2_metric_name(m));
    size_t n = 0;
    float *ref = golden_f32_flat(golden(), path, &n);
    ASSERT_TRUE(ref && n == (size_t)D);
    const double rel = compare(feat, ref, (size_t)D).rel; /* NaN (a poisoned element left) fails */
    printf("  %-9s %-9s rel err %.2e\n", edm2_metric_name(m), cases[k].name, rel);
    worst = rel <= worst ? worst : rel;
    free(ref);
    free(x);
  }
  ASSERT_TRUE(worst <= 1e-4);
  free(feat);
  edm2_detector_free(d);
}

TEST(fid_against_pytorch) { against_pytorch(EDM2_METRIC_FID, inception_fid_hash_source); }
TEST(fd_dinov2_against_pytorch) { against_pytorch(EDM2_METRIC_FD_DINOV2, dinov2_hash_source); }

/* A batch of two images equals the two alone; a 1-channel image equals its 3-channel repeat. */
TEST(batch_and_grayscale) {
  edm2_detector *d;
  ASSERT_OK(edm2_detector_create(&d, EDM2_METRIC_FID, inception_fid_hash_source, NULL));
  const int H = 20, W = 24, P = H * W;
  uint8_t *g = malloc(2 * P), *rgb = malloc(3 * P);
  for (int i = 0; i < 2 * P; i++) g[i] = (uint8_t)(i * 37 % 251);
  for (int c = 0; c < 3; c++) memcpy(rgb + c * P, g + P, P);
  float *a = malloc(2 * 2048 * sizeof(float)), *b = malloc(2048 * sizeof(float));
  ASSERT_OK(edm2_detector_features(d, g, 2, 1, H, W, a));
  ASSERT_OK(edm2_detector_features(d, rgb, 1, 3, H, W, b));
  ASSERT_TRUE(!memcmp(a + 2048, b, 2048 * sizeof(float)));
  ASSERT_STATUS(edm2_detector_features(d, g, 1, 2, H, W, b), EC_EINVAL, "1 or 3 channels");
  free(g), free(rgb), free(a), free(b);
  edm2_detector_free(d);
}

/* The converted-weights path: a safetensors file of the hash weights (F32) gives the same
 * network, so bit-identical features. */
TEST(weights_file_loads_identically) {
  const char *dir = test_tmpdir();
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, edm2_weights_file(EDM2_METRIC_FID));
  ASSERT_EQ_INT(hash_weights_write(EDM2_METRIC_FID, path, EC_F32, NULL), 0);
  edm2_detector *a, *b;
  ASSERT_OK(edm2_detector_open(&a, EDM2_METRIC_FID, dir));
  ASSERT_OK(edm2_detector_create(&b, EDM2_METRIC_FID, inception_fid_hash_source, NULL));
  uint8_t *x = image(0);
  ASSERT_TRUE(x != NULL);
  float fa[2048], fb[2048];
  ASSERT_OK(edm2_detector_features(a, x, 1, 3, 28, 28, fa));
  ASSERT_OK(edm2_detector_features(b, x, 1, 3, 28, 28, fb));
  ASSERT_TRUE(!memcmp(fa, fb, sizeof fa));
  free(x);
  edm2_detector_free(a);
  edm2_detector_free(b);
}

static void bad_weights(const char *spoil, ec_status code, const char *needle) {
  const char *path = test_path("bad.safetensors");
  ASSERT_EQ_INT(hash_weights_write(EDM2_METRIC_FID, path, EC_F32, spoil), 0);
  edm2_weights w;
  ASSERT_OK(edm2_weights_open_file(&w, EDM2_METRIC_FID, path));
  edm2_detector *d = NULL;
  ASSERT_STATUS(edm2_detector_create(&d, EDM2_METRIC_FID, edm2_weights_source, &w), code, needle);
  ASSERT_TRUE(d == NULL);
  edm2_weights_close(&w);
}

TEST(bad_weights_are_named) {
  bad_weights("missing:Mixed_6c.branch7x7_2.bn.running_var", EC_EFORMAT,
              "tensor Mixed_6c.branch7x7_2.bn.running_var is missing");
  bad_weights("shape:Mixed_6c.branch7x7_2.conv.weight", EC_EFORMAT,
              "tensor Mixed_6c.branch7x7_2.conv.weight has shape [7, 1, 160, 160], the fid network needs "
              "[160, 160, 1, 7]");
  bad_weights("nan:Conv2d_4a_3x3.bn.bias", EC_EFORMAT, "Conv2d_4a_3x3.bn.bias holds a non-finite value");
  edm2_detector *d = NULL;
  ASSERT_STATUS(edm2_detector_open(&d, EDM2_METRIC_FD_DINOV2, test_path("nowhere")), EC_ENOENT,
                "dinov2_vitl14.safetensors does not exist. Download dinov2_vitl14_pretrain.pth");
  ASSERT_STATUS(edm2_detector_open(&d, EDM2_METRIC_FID, test_path("nowhere")), EC_ENOENT,
                "tools/convert-weights FILE.pth --weights-dir");
}

TEST(expected_shapes) {
  int r;
  int64_t d[4];
  ASSERT_OK(edm2_weights_expected_shape(EDM2_METRIC_FD_DINOV2, "blocks.23.mlp.fc2.weight", &r, d));
  ASSERT_TRUE(r == 2 && d[0] == 1024 && d[1] == 4096);
  ASSERT_OK(edm2_weights_expected_shape(EDM2_METRIC_FD_DINOV2, "pos_embed", &r, d));
  ASSERT_TRUE(r == 3 && d[1] == 1370);
  ASSERT_TRUE(edm2_weights_expected_shape(EDM2_METRIC_FD_DINOV2, "blocks.24.ls1.gamma", &r, d) != EC_OK);
  ASSERT_OK(edm2_weights_expected_shape(EDM2_METRIC_FID, "Mixed_7c.branch3x3dbl_3b.conv.weight", &r, d));
  ASSERT_TRUE(r == 4 && d[0] == 384 && d[1] == 384 && d[2] == 3 && d[3] == 1);
  ASSERT_TRUE(edm2_weights_expected_shape(EDM2_METRIC_FID, "fc.weight", &r, d) != EC_OK);
  /* every name the writer lists has a shape, and the counts are the networks' */
  char name[128];
  long total = 0;
  for (int m = 0; m < 2; m++)
    for (int i = 0; hash_weights_name((edm2_metric)m, i, name, sizeof name); i++) {
      ASSERT_OK(edm2_weights_expected_shape((edm2_metric)m, name, &r, d));
      long n = 1;
      for (int k = 0; k < r; k++) n *= d[k];
      if (m == 1) total += n;
    }
  ASSERT_EQ_INT(total, DINOV2_PARAMS - 1024); /* all but mask_token */
}

TEST_MAIN(fid_against_pytorch, fd_dinov2_against_pytorch, batch_and_grayscale, weights_file_loads_identically,
          bad_weights_are_named, expected_shapes)
