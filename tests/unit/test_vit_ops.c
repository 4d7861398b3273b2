/* nn/layernorm.h, nn/gelu.h, nn/linear.h and nn/sdpa.h (the ViT ops of DINOv2) against naive
 * double-precision formulas written here: float forms to a few float32 ulps of the result's scale
 * (rounding of inputs is excluded: the naive formulas read the same float inputs), double forms to
 * ~1e-12. Sizes are odd on purpose (tails of the eight-lane loops, GEMM edges). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gelu.h"
#include "nn/layernorm.h"
#include "nn/linear.h"
#include "nn/sdpa.h"
#include "tests/test.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

/* uniform in [-1, 1) */
static double urand(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static float *frand(size_t n, double scale, double offset) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = (float)(offset + scale * urand());
  return p;
}

static double *to_d(const float *x, size_t n) {
  double *p = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) p[i] = x[i];
  return p;
}

/* max |a − ref| / max |ref| */
static double rel_f(const float *a, const double *ref, size_t n) {
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i])) return INFINITY;
    d = fmax(d, fabs(a[i] - ref[i]));
    m = fmax(m, fabs(ref[i]));
  }
  return d / m;
}
static double rel_d(const double *a, const double *ref, size_t n) {
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i])) return INFINITY;
    d = fmax(d, fabs(a[i] - ref[i]));
    m = fmax(m, fabs(ref[i]));
  }
  return d / m;
}

TEST(layernorm) {
  const size_t B = 13;
  const int C = 1027;
  const double eps = 1e-6;
  float *x = frand(B * C, 2.0, 0.7), *w = frand(C, 0.3, 1.0), *b = frand(C, 0.2, 0.0);
  double *ref = malloc(B * C * sizeof(double)), *ref1 = malloc(B * C * sizeof(double));
  for (size_t r = 0; r < B; r++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[r * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= C;
    for (int c = 0; c < C; c++) {
      ref1[r * C + c] = (x[r * C + c] - m) / sqrt(v + eps);
      ref[r * C + c] = ref1[r * C + c] * w[c] + b[c];
    }
  }
  float *y = malloc(B * C * sizeof(float));
  nn_layernorm_fwd_ref(NULL, y, x, w, b, B, C, eps);
  const double e = rel_f(y, ref, B * C);
  nn_layernorm_fwd_ref(NULL, y, x, NULL, NULL, B, C, eps);
  const double e1 = rel_f(y, ref1, B * C);
  memcpy(y, x, B * C * sizeof(float)); /* in place */
  nn_layernorm_fwd_ref(NULL, y, y, w, b, B, C, eps);
  const double e2 = rel_f(y, ref, B * C);
  double *xd = to_d(x, B * C), *wd = to_d(w, C), *bd = to_d(b, C),
         *yd = malloc(B * C * sizeof(double));
  nn_layernorm_fwd_ref_f64(NULL, yd, xd, wd, bd, B, C, eps);
  const double ed = rel_d(yd, ref, B * C);
  printf("# layernorm rel. error: float %.3g (no affine %.3g, in place %.3g), double %.3g\n", e, e1,
         e2, ed);
  ASSERT_TRUE(e < 3e-7 && e1 < 3e-7 && e2 < 3e-7);
  ASSERT_TRUE(ed < 1e-13);
  free(x), free(w), free(b), free(ref), free(ref1), free(y), free(xd), free(wd), free(bd), free(yd);
}

TEST(gelu) {
  const size_t n = 10007;
  float *x = frand(n, 6.0, 0.0);
  double *ref = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) ref[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
  float *y = malloc(n * sizeof(float));
  nn_gelu_fwd_ref(NULL, y, x, n);
  /* elementwise, relative to |ref| + |x|: for x << 0, 1 + erf(x/√2) cancels in float (as in
   * PyTorch's formula), an absolute error of ~|x|·2^-24 where the result is tiny */
  double emax = 0;
  for (size_t i = 0; i < n; i++)
    emax = fmax(emax, fabs(y[i] - ref[i]) / (fabs(ref[i]) + fabs(x[i])));
  nn_gelu_fwd_ref(NULL, x, x, n); /* in place */
  ASSERT_TRUE(memcmp(x, y, n * sizeof(float)) == 0);
  double *xd = malloc(n * sizeof(double)), *yd = malloc(n * sizeof(double));
  rng_state = 1;
  double ed = 0;
  for (size_t i = 0; i < n; i++) xd[i] = 6.0 * urand();
  nn_gelu_fwd_ref_f64(NULL, yd, xd, n);
  for (size_t i = 0; i < n; i++)
    ed = fmax(ed, fabs(yd[i] - 0.5 * xd[i] * erfc(-xd[i] / sqrt(2.0))) / fmax(fabs(yd[i]), 1e-3));
  printf("# gelu elementwise rel. error: float %.3g, double %.3g\n", emax, ed);
  ASSERT_TRUE(emax < 1e-6);
  ASSERT_TRUE(ed < 1e-12);
  free(x), free(ref), free(y), free(xd), free(yd);
}

TEST(linear_bias_and_scale_acc) {
  const int B = 37, in = 129, out = 67;
  float *x = frand((size_t)B * in, 1.0, 0.1), *w = frand((size_t)out * in, 0.1, 0.0);
  float *b = frand(out, 0.5, 0.0), *g = frand(out, 0.5, 0.5),
        *y0 = frand((size_t)B * out, 1.0, 0.0);
  double *ref = malloc((size_t)B * out * sizeof(double)),
         *ref2 = malloc((size_t)B * out * sizeof(double));
  for (int r = 0; r < B; r++)
    for (int o = 0; o < out; o++) {
      double s = b[o];
      for (int k = 0; k < in; k++) s += (double)x[r * in + k] * w[o * in + k];
      ref[r * out + o] = s;
    }
  float *y = malloc((size_t)B * out * sizeof(float));
  nn_linear_bias_fwd_ref(NULL, y, x, w, b, B, in, out);
  const double e = rel_f(y, ref, (size_t)B * out);
  for (int r = 0; r < B; r++)
    for (int o = 0; o < out; o++)
      ref2[r * out + o] = (double)y0[r * out + o] + (double)g[o] * y[r * out + o];
  nn_rows_scale_acc_ref(NULL, y0, y, g, B, out);
  const double e2 = rel_f(y0, ref2, (size_t)B * out);
  /* no bias */
  for (int r = 0; r < B; r++)
    for (int o = 0; o < out; o++) ref[r * out + o] -= b[o];
  nn_linear_bias_fwd_ref(NULL, y, x, w, NULL, B, in, out);
  const double e3 = rel_f(y, ref, (size_t)B * out);
  double *xd = to_d(x, (size_t)B * in), *wd = to_d(w, (size_t)out * in),
         *yd = malloc((size_t)B * out * sizeof(double));
  nn_linear_bias_fwd_ref_f64(NULL, yd, xd, wd, NULL, B, in, out);
  const double ed = rel_d(yd, ref, (size_t)B * out);
  printf("# linear rel. error: float %.3g (no bias %.3g), double %.3g; scale_acc %.3g\n", e, e3, ed,
         e2);
  ASSERT_TRUE(e < 1e-6 && e3 < 1e-6 && e2 < 3e-7);
  ASSERT_TRUE(ed < 1e-13);
  free(x), free(w), free(b), free(g), free(y0), free(ref), free(ref2), free(y), free(xd), free(wd),
      free(yd);
}

TEST(sdpa) {
  const int N = 2, heads = 3, Ch = 19;
  const size_t L = 41;
  const int C = heads * Ch;
  const double scale = 1.0 / sqrt(Ch);
  const size_t nqkv = (size_t)N * L * 3 * C, ny = (size_t)N * L * C;
  float *qkv = frand(nqkv, 1.5, 0.0);
  double *ref = malloc(ny * sizeof(double)), *lg = malloc(L * sizeof(double));
  for (int n = 0; n < N; n++)
    for (int h = 0; h < heads; h++)
      for (size_t i = 0; i < L; i++) {
        const float *q = qkv + ((size_t)n * L + i) * 3 * C + (size_t)h * Ch;
        double m = -INFINITY, s = 0;
        for (size_t j = 0; j < L; j++) {
          const float *k = qkv + ((size_t)n * L + j) * 3 * C + C + (size_t)h * Ch;
          double d = 0;
          for (int c = 0; c < Ch; c++) d += (double)q[c] * k[c];
          lg[j] = d * scale;
          m = fmax(m, lg[j]);
        }
        for (size_t j = 0; j < L; j++) s += (lg[j] = exp(lg[j] - m));
        for (int c = 0; c < Ch; c++) {
          double acc = 0;
          for (size_t j = 0; j < L; j++)
            acc += lg[j] / s * qkv[((size_t)n * L + j) * 3 * C + 2 * C + (size_t)h * Ch + c];
          ref[((size_t)n * L + i) * C + (size_t)h * Ch + c] = acc;
        }
      }
  ASSERT_TRUE(nn_sdpa_workspace(L) == L * L);
  float *y = malloc(ny * sizeof(float)), *ws = malloc(L * L * sizeof(float));
  nn_sdpa_fwd_ref(NULL, y, qkv, N, heads, Ch, L, scale, ws);
  const double e = rel_f(y, ref, ny);
  double *qd = to_d(qkv, nqkv), *yd = malloc(ny * sizeof(double)),
         *wsd = malloc(L * L * sizeof(double));
  nn_sdpa_fwd_ref_f64(NULL, yd, qd, N, heads, Ch, L, scale, wsd);
  const double ed = rel_d(yd, ref, ny);
  printf("# sdpa rel. error: float %.3g, double %.3g\n", e, ed);
  ASSERT_TRUE(e < 1e-6);
  ASSERT_TRUE(ed < 1e-13);
  free(qkv), free(ref), free(lg), free(y), free(ws), free(qd), free(yd), free(wsd);
}

TEST_MAIN(layernorm, gelu, linear_bias_and_scale_acc, sdpa)
