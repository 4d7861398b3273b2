/* nn/resize.h against PyTorch (tests/golden/gen_resize.py): TF1-style bilinear to 299×299 (the
 * FID detector's resize, against StyleGAN's grid_sample port) and antialiased bicubic to 224×224
 * (DINOv2's, against F.interpolate(antialias=True)), for 28×28, 64×64, 512×512 and 96×160
 * inputs; plus properties that hold exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden_compare.h"
#include "golden_h5.h"
#include "nn/resize.h"
#include "test.h"

static hid_t golden(void) {
  static hid_t f = -1;
  if (f < 0) f = golden_open_file("resize.h5");
  return f;
}

/* Both resizers on one case; compares the stored rows. Tolerances: the reference computes in
 * float32 too, but grid_sample derives each source position through normalised coordinates
 * ((2i + 1)/299 − 1 + the translation, then back), whose rounding moves a position by ~1e-7 of
 * the image: a bilinear sample moves by that times the local gradient (≤ 255 per pixel), so
 * ≤ ~1e-4 of 255 (measured 1.3e-5). The bicubic weights are computed in float32 by PyTorch and
 * in double here, and PyTorch accumulates in float32: ~1e-6 to 1e-5 relative (measured 5.4e-6),
 * tolerance 5e-5. */
static void check_case(const char *name, double *worst_tf, double *worst_aa) {
  char path[128];
  size_t nx = 0, ntf = 0, naa = 0, nr1 = 0, nr2 = 0;
  snprintf(path, sizeof path, "/%s/x", name);
  float *x = golden_f32_flat(golden(), path, &nx);
  snprintf(path, sizeof path, "/%s/tf_bilinear", name);
  float *tf = golden_f32_flat(golden(), path, &ntf);
  snprintf(path, sizeof path, "/%s/bicubic_aa", name);
  float *aa = golden_f32_flat(golden(), path, &naa);
  snprintf(path, sizeof path, "/%s/tf_rows", name);
  int64_t *r1 = golden_i64(golden(), path, &nr1);
  snprintf(path, sizeof path, "/%s/aa_rows", name);
  int64_t *r2 = golden_i64(golden(), path, &nr2);
  ASSERT_TRUE(x && tf && aa && r1 && r2);
  hid_t d;
  snprintf(path, sizeof path, "/%s/x", name);
  d = H5Dopen2(golden(), path, H5P_DEFAULT);
  hsize_t dims[3];
  hid_t sp = H5Dget_space(d);
  H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  H5Dclose(d);
  const int C = (int)dims[0], H = (int)dims[1], W = (int)dims[2];
  float *y1 = malloc((size_t)C * 299 * 299 * sizeof(float)), *y2 = malloc((size_t)C * 224 * 224 * sizeof(float));
  float *ws = malloc(nn_resize_bicubic_aa_workspace(C, H, W, 224, 224) * sizeof(float));
  float *sel1 = malloc(ntf * sizeof(float)), *sel2 = malloc(naa * sizeof(float));
  ASSERT_TRUE(y1 && y2 && ws && sel1 && sel2);
  nn_resize_tf_bilinear_ref(NULL, y1, 299, 299, x, 1, C, H, W);
  nn_resize_bicubic_aa_ref(NULL, y2, 224, 224, x, 1, C, H, W, ws);
  for (int c = 0; c < C; c++) {
    for (size_t k = 0; k < nr1; k++) memcpy(sel1 + ((size_t)c * nr1 + k) * 299, y1 + ((size_t)c * 299 + (size_t)r1[k]) * 299, 299 * sizeof(float));
    for (size_t k = 0; k < nr2; k++) memcpy(sel2 + ((size_t)c * nr2 + k) * 224, y2 + ((size_t)c * 224 + (size_t)r2[k]) * 224, 224 * sizeof(float));
  }
  cmp_result a = compare(sel1, tf, ntf), b = compare(sel2, aa, naa);
  printf("# %-8s %dx%dx%d: tf_bilinear rel %.3g (max abs %.3g), bicubic_aa rel %.3g (max abs %.3g)\n", name, C, H, W,
         a.rel, a.maxabs, b.rel, b.maxabs);
  *worst_tf = fmax(*worst_tf, a.rel);
  *worst_aa = fmax(*worst_aa, b.rel);
  free(x), free(tf), free(aa), free(r1), free(r2), free(y1), free(y2), free(ws), free(sel1), free(sel2);
}

TEST(against_pytorch) {
  ASSERT_TRUE(golden() >= 0);
  double wt = 0, wa = 0;
  const char *cases[] = {"s28", "s64", "s512", "r96x160"};
  for (int i = 0; i < 4; i++) check_case(cases[i], &wt, &wa);
  ASSERT_TRUE(wt <= 1e-4);
  ASSERT_TRUE(wa <= 5e-5);
}

/* A constant image stays constant (the bicubic weights sum to 1; bilinear lerps a constant). */
TEST(constant_images_stay_constant) {
  float x[3 * 37 * 53], y[3 * 299 * 299], z[3 * 224 * 224];
  float *ws = malloc(nn_resize_bicubic_aa_workspace(3, 37, 53, 224, 224) * sizeof(float));
  ASSERT_TRUE(ws != NULL);
  for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = 77.0f;
  nn_resize_tf_bilinear_ref(NULL, y, 299, 299, x, 1, 3, 37, 53);
  nn_resize_bicubic_aa_ref(NULL, z, 224, 224, x, 1, 3, 37, 53, ws);
  for (size_t i = 0; i < sizeof y / sizeof *y; i++) ASSERT_TRUE(y[i] == 77.0f);
  for (size_t i = 0; i < sizeof z / sizeof *z; i++) ASSERT_TRUE(fabsf(z[i] - 77.0f) < 1e-4f);
  free(ws);
}

/* TF's legacy alignment: output pixel (i, j) samples the input at (i·H/OH, j·W/OW) exactly, so
 * upsampling by an integer factor k reproduces every input pixel at output (k·r, k·c), and
 * the last input row and column are repeated at the far edge (no half-pixel shift). */
TEST(tf_bilinear_alignment) {
  float x[2 * 3], y[4 * 6];
  for (int i = 0; i < 6; i++) x[i] = (float)(i * i);
  nn_resize_tf_bilinear_ref(NULL, y, 4, 6, x, 1, 1, 2, 3);
  for (int r = 0; r < 2; r++)
    for (int c = 0; c < 3; c++) ASSERT_TRUE(y[(2 * r) * 6 + 2 * c] == x[r * 3 + c]);
  ASSERT_TRUE(y[3 * 6 + 5] == x[5]); /* clamped at the border */
  ASSERT_TRUE(y[0 * 6 + 1] == 0.5f * (x[0] + x[1]));
}

TEST_MAIN(against_pytorch, constant_images_stay_constant, tf_bilinear_alignment)
