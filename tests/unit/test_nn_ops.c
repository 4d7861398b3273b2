/* nn/ forward ops against independent naive formulas written here in double (a direct 7-loop
 * convolution, attention read straight from the interleaved qkv layout, ...), the float32 `_ref`
 * forms against the float64 `_ref_f64` forms (tolerances: tests/unit/nn_tolerances.h), the
 * aliasing the headers allow, the workspace sizes (guard elements past the end stay untouched),
 * and the dropout mask's contract. Backward ops are checked against finite differences in
 * test_nn_grad.c; here the convolution's backward is also checked against naive formulas on
 * shapes that take every path of the GEMM lowering. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "nn/act.h"
#include "nn/attn.h"
#include "nn/conv.h"
#include "nn/dropout.h"
#include "nn/fourier.h"
#include "nn/norm.h"
#include "nn/resample.h"
#include "tests/test.h"
#include "tests/unit/nn_tolerances.h"
#define NN_TEST_SEED0 5000
#include "tests/unit/nn_test_util.h"

/* ---- helpers (more in nn_test_util.h) ------------------------------------------------------- */

static int same_f(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }


/* ---- convolution and linear ------------------------------------------------------------------- */

/* y[n,co,h,w] = Σ_{ci,kh,kw} w[co,ci,kh,kw] · x[n,ci,h+kh-k/2,w+kw-k/2], zero outside */
static void naive_conv(double *y, const double *x, const double *w, int N, int Ci, int Co, int H,
                       int W, int k) {
  const int p = k / 2;
  for (int n = 0; n < N; n++)
    for (int co = 0; co < Co; co++)
      for (int h = 0; h < H; h++)
        for (int v = 0; v < W; v++) {
          double s = 0;
          for (int ci = 0; ci < Ci; ci++)
            for (int kh = 0; kh < k; kh++)
              for (int kw = 0; kw < k; kw++) {
                int hh = h + kh - p, ww = v + kw - p;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                s += w[((co * Ci + ci) * k + kh) * k + kw] * x[((n * Ci + ci) * H + hh) * W + ww];
              }
          y[((n * Co + co) * H + h) * W + v] = s;
        }
}

/* dx = Σ over the outputs each input reaches; dw = Σ over positions (both overwritten) */
static void naive_conv_bwd(double *dx, double *dw, const double *dy, const double *x,
                           const double *w, int N, int Ci, int Co, int H, int W, int k) {
  const int p = k / 2;
  fill_d(dx, (size_t)N * Ci * H * W, 0);
  fill_d(dw, (size_t)Co * Ci * k * k, 0);
  for (int n = 0; n < N; n++)
    for (int co = 0; co < Co; co++)
      for (int h = 0; h < H; h++)
        for (int v = 0; v < W; v++) {
          double g = dy[((n * Co + co) * H + h) * W + v];
          for (int ci = 0; ci < Ci; ci++)
            for (int kh = 0; kh < k; kh++)
              for (int kw = 0; kw < k; kw++) {
                int hh = h + kh - p, ww = v + kw - p;
                if (hh < 0 || hh >= H || ww < 0 || ww >= W) continue;
                size_t xi = ((size_t)(n * Ci + ci) * H + hh) * W + ww;
                size_t wi = ((size_t)(co * Ci + ci) * k + kh) * k + kw;
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
        }
}

static void conv_check(int N, int Ci, int Co, int H, int W, int k) {
  char what[96];
  const size_t L = (size_t)H * W, nx = (size_t)N * Ci * L, ny = (size_t)N * Co * L,
               nw = (size_t)Co * Ci * k * k, nws = nn_conv2d_workspace(N, Ci, Co, H, W, k);
  if (k == 1) ASSERT_EQ_INT(nws, 0);
  float *x32 = randf(nx, 1.0), *w32 = randf(nw, 0.3), *dy32 = randf(ny, 1.0);
  double *x = widen(x32, nx), *w = widen(w32, nw), *dy = widen(dy32, ny);
  double *y = dvec(ny), *yr = dvec(ny), *dx = dvec(nx), *dxr = dvec(nx), *dw = dvec(nw), *dwr = dvec(nw);
  float *y32 = fvec(ny), *dx32 = fvec(nx), *dw32 = fvec(nw);
  double *ws = guarded_d(nws);
  float *ws32 = guarded_f(nws);
  const double s_fwd = sqrt((double)Ci * k * k) * rms_f(x32, nx) * rms_f(w32, nw);
  const double s_dx = sqrt((double)Co * k * k) * rms_f(dy32, ny) * rms_f(w32, nw);
  const double s_dw = sqrt((double)N * L) * rms_f(dy32, ny) * rms_f(x32, nx);

  naive_conv(yr, x, w, N, Ci, Co, H, W, k);
  naive_conv_bwd(dxr, dwr, dy, x, w, N, Ci, Co, H, W, k);
  fill_d(y, ny, NAN);
  fill_d(dx, nx, NAN);
  nn_conv2d_fwd_ref_f64(NULL, y, x, w, N, Ci, Co, H, W, k, ws);
  nn_conv2d_bwd_ref_f64(NULL, dx, dw, dy, x, w, N, Ci, Co, H, W, k, ws);
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d y", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR64(what, y, yr, ny, s_fwd));
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d dx", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR64(what, dx, dxr, nx, s_dx));
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d dw", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR64(what, dw, dwr, nw, s_dw));
  ASSERT_TRUE(guard_ok_d(ws, nws));

  fill_f(y32, ny, NAN);
  fill_f(dx32, nx, NAN);
  nn_conv2d_fwd_ref(NULL, y32, x32, w32, N, Ci, Co, H, W, k, ws32);
  nn_conv2d_bwd_ref(NULL, dx32, dw32, dy32, x32, w32, N, Ci, Co, H, W, k, ws32);
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d y f32", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR32(what, y32, y, ny, TOL_GEMM, s_fwd));
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d dx f32", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR32(what, dx32, dx, nx, TOL_GEMM, s_dx));
  snprintf(what, sizeof what, "conv%d N%d %d->%d %dx%d dw f32", k, N, Ci, Co, H, W);
  ASSERT_TRUE(NEAR32(what, dw32, dw, nw, TOL_GEMM, s_dw));
  ASSERT_TRUE(guard_ok_f(ws32, nws));

  free(x32), free(w32), free(dy32), free(x), free(w), free(dy), free(y), free(yr), free(dx);
  free(dxr), free(dw), free(dwr), free(y32), free(dx32), free(dw32), free(ws), free(ws32);
}

TEST(conv3x3_against_naive) {
  conv_check(3, 4, 5, 6, 7, 3);   /* all three images in one GEMM block */
  conv_check(45, 3, 4, 5, 5, 3);  /* 25 positions: blocks of 41 images, then 4 */
  conv_check(2, 3, 2, 37, 29, 3); /* 1073 positions: bands of 35 rows, then 2 */
  conv_check(1, 2, 3, 40, 40, 3); /* 1600 positions: bands of 25 rows, then 15 */
  conv_check(3, 5, 2, 1, 9, 3);   /* a single row */
  conv_check(2, 2, 5, 8, 1, 3);   /* a single column */
  conv_check(2, 1, 1, 1, 1, 3);   /* a single pixel: only the centre tap */
  conv_check(4, 16, 8, 8, 8, 3);
}

TEST(conv1x1_against_naive) {
  conv_check(3, 4, 5, 6, 7, 1);
  conv_check(2, 16, 3, 4, 4, 1);
  conv_check(1, 3, 2, 37, 29, 1);
}

static void naive_linear(double *y, const double *x, const double *w, int B, int in, int out) {
  for (int b = 0; b < B; b++)
    for (int o = 0; o < out; o++) {
      double s = 0;
      for (int i = 0; i < in; i++) s += x[b * in + i] * w[o * in + i];
      y[b * out + o] = s;
    }
}

TEST(linear_against_naive) {
  const int B = 5, in = 13, out = 7;
  float *x32 = randf((size_t)B * in, 1), *w32 = randf((size_t)out * in, 1),
        *dy32 = randf((size_t)B * out, 1);
  double *x = widen(x32, B * in), *w = widen(w32, out * in), *dy = widen(dy32, B * out);
  double *y = dvec(B * out), *yr = dvec(B * out), *dx = dvec(B * in), *dxr = dvec(B * in),
         *dw = dvec(out * in), *dwr = dvec(out * in);
  float *y32 = fvec(B * out), *dx32 = fvec(B * in), *dw32 = fvec(out * in);
  naive_linear(yr, x, w, B, in, out);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < in; i++) {
      double s = 0;
      for (int o = 0; o < out; o++) s += dy[b * out + o] * w[o * in + i];
      dxr[b * in + i] = s;
    }
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) {
      double s = 0;
      for (int b = 0; b < B; b++) s += dy[b * out + o] * x[b * in + i];
      dwr[o * in + i] = s;
    }
  nn_linear_fwd_ref_f64(NULL, y, x, w, B, in, out);
  nn_linear_bwd_ref_f64(NULL, dx, dw, dy, x, w, B, in, out);
  ASSERT_TRUE(NEAR64("linear y", y, yr, B * out, sqrt(in)));
  ASSERT_TRUE(NEAR64("linear dx", dx, dxr, B * in, sqrt(out)));
  ASSERT_TRUE(NEAR64("linear dw", dw, dwr, out * in, sqrt(B)));
  nn_linear_fwd_ref(NULL, y32, x32, w32, B, in, out);
  nn_linear_bwd_ref(NULL, dx32, dw32, dy32, x32, w32, B, in, out);
  ASSERT_TRUE(NEAR32("linear y f32", y32, y, B * out, TOL_GEMM, sqrt(in)));
  ASSERT_TRUE(NEAR32("linear dx f32", dx32, dx, B * in, TOL_GEMM, sqrt(out)));
  ASSERT_TRUE(NEAR32("linear dw f32", dw32, dw, out * in, TOL_GEMM, sqrt(B)));
  free(x32), free(w32), free(dy32), free(x), free(w), free(dy), free(y), free(yr), free(dx);
  free(dxr), free(dw), free(dwr), free(y32), free(dx32), free(dw32);
}

/* ---- normalisation ----------------------------------------------------------------------------- */

TEST(pixelnorm_against_naive) {
  const int N = 3, C = 7;
  const size_t L = 150, n = N * C * L; /* L > 64: several tiles of positions, the last partial */
  float *x32 = randf(n, 2.0), *dy32 = randf(n, 1.0);
  double *x = widen(x32, n), *dy = widen(dy32, n), *y = dvec(n), *yr = dvec(n), *dx = dvec(n);
  float *y32 = fvec(n), *dx32 = fvec(n);
  for (int b = 0; b < N; b++)
    for (size_t l = 0; l < L; l++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += x[(b * C + c) * L + l] * x[(b * C + c) * L + l];
      double d = 1e-4 + sqrt(s) / sqrt((double)C);
      for (int c = 0; c < C; c++) yr[(b * C + c) * L + l] = x[(b * C + c) * L + l] / d;
    }
  nn_pixelnorm_fwd_ref_f64(NULL, y, x, N, C, L);
  ASSERT_TRUE(NEAR64("pixelnorm y", y, yr, n, 1));
  /* unit RMS over channels, up to eps */
  for (size_t l = 0; l < L; l++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += y[c * L + l] * y[c * L + l];
    ASSERT_NEAR(sqrt(s / C), 1, 1e-3);
  }
  nn_pixelnorm_fwd_ref(NULL, y32, x32, N, C, L);
  ASSERT_TRUE(NEAR32("pixelnorm y f32", y32, y, n, TOL_NORM, max_abs_d(y, n)));
  nn_pixelnorm_bwd_ref_f64(NULL, dx, dy, x, N, C, L);
  nn_pixelnorm_bwd_ref(NULL, dx32, dy32, x32, N, C, L);
  ASSERT_TRUE(NEAR32("pixelnorm dx f32", dx32, dx, n, TOL_NORM, max_abs_d(dx, n)));
  free(x32), free(dy32), free(x), free(dy), free(y), free(yr), free(dx), free(y32), free(dx32);
}

TEST(pixelnorm_of_zero_vector) {
  /* position 1 of 3 is all zero: y = 0 there, and the gradient passes dy/eps */
  const int C = 4;
  const size_t L = 3;
  double x[12] = {0}, y[12], dy[12], dx[12];
  for (int c = 0; c < C; c++) {
    x[c * L + 0] = c + 1.0;
    x[c * L + 2] = -c - 0.5;
    dy[c * L + 0] = dy[c * L + 1] = dy[c * L + 2] = 0.25 * (c + 1);
  }
  nn_pixelnorm_fwd_ref_f64(NULL, y, x, 1, C, L);
  nn_pixelnorm_bwd_ref_f64(NULL, dx, dy, x, 1, C, L);
  for (int c = 0; c < C; c++) {
    ASSERT_TRUE(y[c * L + 1] == 0);
    ASSERT_TRUE(isfinite(dx[c * L + 0]) && isfinite(dx[c * L + 2]));
    ASSERT_NEAR(dx[c * L + 1], dy[c * L + 1] / 1e-4, 1e-9);
  }
  float xf[12], yf[12], dyf[12], dxf[12];
  for (int i = 0; i < 12; i++) xf[i] = (float)x[i], dyf[i] = (float)dy[i];
  nn_pixelnorm_fwd_ref(NULL, yf, xf, 1, C, L);
  nn_pixelnorm_bwd_ref(NULL, dxf, dyf, xf, 1, C, L);
  for (int c = 0; c < C; c++) {
    ASSERT_TRUE(yf[c * L + 1] == 0);
    ASSERT_REL(dxf[c * L + 1], dy[c * L + 1] / 1e-4, 1e-6);
  }
}

static void naive_weightnorm(double *o, const double *w, const double *gain, int rows, int F) {
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < F; j++) s += w[i * F + j] * w[i * F + j];
    double d = 1e-4 + sqrt(s) * sqrt(1.0 / F), g = gain ? *gain : 1.0;
    for (int j = 0; j < F; j++) o[i * F + j] = w[i * F + j] / d * (g / sqrt((double)F));
  }
}

TEST(weightnorm_against_naive) {
  const int rows = 6, F = 75; /* e.g. a 3×3 conv from 25 to 6 channels... rows of 75 */
  const size_t n = (size_t)rows * F;
  float *w32 = randf(n, 0.7), *g32 = randf(1, 1.0), *dwh32 = randf(n, 1.0);
  double *w = widen(w32, n), *g = widen(g32, 1), *dwh = widen(dwh32, n);
  double *o = dvec(n), *orf = dvec(n), *dw = dvec(n), dgain = 0;
  float *o32 = fvec(n), *dw32 = fvec(n), dgain32 = 0;
  for (int with_gain = 0; with_gain <= 1; with_gain++) {
    const double *gp = with_gain ? g : NULL;
    naive_weightnorm(orf, w, gp, rows, F);
    nn_weightnorm_fwd_ref_f64(NULL, o, w, gp, rows, F);
    ASSERT_TRUE(NEAR64("weightnorm w_hat", o, orf, n, 1));
    nn_weightnorm_fwd_ref(NULL, o32, w32, with_gain ? g32 : NULL, rows, F);
    ASSERT_TRUE(NEAR32("weightnorm w_hat f32", o32, o, n, TOL_NORM, max_abs_d(o, n)));
    fill_d(dw, n, 0);
    fill_f(dw32, n, 0);
    dgain = 0, dgain32 = 0;
    nn_weightnorm_bwd_ref_f64(NULL, dw, with_gain ? &dgain : NULL, dwh, w, gp, rows, F);
    nn_weightnorm_bwd_ref(NULL, dw32, with_gain ? &dgain32 : NULL, dwh32, w32,
                          with_gain ? g32 : NULL, rows, F);
    ASSERT_TRUE(NEAR32("weightnorm dw f32", dw32, dw, n, TOL_NORM, max_abs_d(dw, n)));
    if (with_gain) {
      /* w_hat is linear in the gain: dgain = Σ dw_hat · w_hat / gain */
      double ref = 0;
      for (size_t i = 0; i < n; i++) ref += dwh[i] * orf[i] / *g;
      ASSERT_REL(dgain, ref, 1e-12);
      ASSERT_REL(dgain32, dgain, 1e-5);
    }
  }
  free(w32), free(g32), free(dwh32), free(w), free(g), free(dwh), free(o), free(orf), free(dw);
  free(o32), free(dw32);
}

TEST(weightnorm_force_in_place) {
  const int rows = 5, F = 36;
  const size_t n = (size_t)rows * F;
  float *w32 = randf(n, 3.0);
  double *w = widen(w32, n), *ref = dvec(n), *once = dvec(n);
  /* in place, equal to normalize(w) */
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < F; j++) s += w[i * F + j] * w[i * F + j];
    for (int j = 0; j < F; j++) ref[i * F + j] = w[i * F + j] / (1e-4 + sqrt(s / F));
  }
  nn_weightnorm_force_ref_f64(NULL, w, rows, F);
  ASSERT_TRUE(NEAR64("weightnorm_force", w, ref, n, 1));
  nn_weightnorm_force_ref(NULL, w32, rows, F);
  ASSERT_TRUE(NEAR32("weightnorm_force f32", w32, w, n, TOL_NORM, max_abs_d(w, n)));
  /* rows now have norm sqrt(F)·(1 - O(eps)); forcing again changes them by O(eps) only */
  memcpy(once, w, n * sizeof *w);
  nn_weightnorm_force_ref_f64(NULL, w, rows, F);
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < F; j++) s += once[i * F + j] * once[i * F + j];
    ASSERT_NEAR(sqrt(s), sqrt((double)F), 2e-4 * sqrt((double)F));
  }
  for (size_t i = 0; i < n; i++) ASSERT_NEAR(w[i], once[i], 2e-4 * fabs(once[i]));
  free(w32), free(w), free(ref), free(once);
}

/* ---- elementwise ------------------------------------------------------------------------------- */

TEST(mp_silu_against_naive) {
  const size_t n = 1001;
  float *x32 = randf(n, 3.0), *dy32 = randf(n, 1.0), *y32 = fvec(n), *dx32 = fvec(n), *a32 = fvec(n);
  x32[0] = -90, x32[1] = 90, x32[2] = 0; /* exp overflow side, saturation, zero */
  double *x = widen(x32, n), *dy = widen(dy32, n), *y = dvec(n), *yr = dvec(n), *dx = dvec(n),
         *dxr = dvec(n);
  for (size_t i = 0; i < n; i++) {
    double s = 1 / (1 + exp(-x[i]));
    yr[i] = x[i] * s / 0.596;
    dxr[i] = dy[i] * s * (1 + x[i] * (1 - s)) / 0.596;
  }
  nn_mp_silu_fwd_ref_f64(NULL, y, x, n);
  nn_mp_silu_bwd_ref_f64(NULL, dx, dy, x, n);
  ASSERT_TRUE(NEAR64("mp_silu y", y, yr, n, 1));
  ASSERT_TRUE(NEAR64("mp_silu dx", dx, dxr, n, 1));
  nn_mp_silu_fwd_ref(NULL, y32, x32, n);
  nn_mp_silu_bwd_ref(NULL, dx32, dy32, x32, n);
  ASSERT_TRUE(NEAR32("mp_silu y f32", y32, y, n, TOL_SILU, max_abs_d(y, n)));
  ASSERT_TRUE(NEAR32("mp_silu dx f32", dx32, dx, n, TOL_SILU, max_abs_d(dx, n)));
  /* aliasing: y = x in the forward, dx = dy in the backward */
  memcpy(a32, x32, n * sizeof *a32);
  nn_mp_silu_fwd_ref(NULL, a32, a32, n);
  ASSERT_TRUE(same_f(a32, y32, n));
  memcpy(a32, dy32, n * sizeof *a32);
  nn_mp_silu_bwd_ref(NULL, a32, a32, x32, n);
  ASSERT_TRUE(same_f(a32, dx32, n));
  free(x32), free(dy32), free(y32), free(dx32), free(a32), free(x), free(dy), free(y), free(yr);
  free(dx), free(dxr);
}

TEST(mp_sum_against_naive) {
  const size_t n = 257;
  const double ts[] = {0, 0.3, 0.5, 0.7, 1};
  float *a32 = randf(n, 1), *b32 = randf(n, 2), *dy32 = randf(n, 1);
  float *y32 = fvec(n), *da32 = fvec(n), *db32 = fvec(n), *al = fvec(n);
  double *a = widen(a32, n), *b = widen(b32, n), *dy = widen(dy32, n);
  double *y = dvec(n), *yr = dvec(n), *da = dvec(n), *db = dvec(n), *dar = dvec(n), *dbr = dvec(n);
  for (int k = 0; k < 5; k++) {
    const double t = ts[k], s = sqrt((1 - t) * (1 - t) + t * t);
    for (size_t i = 0; i < n; i++) {
      yr[i] = (a[i] * (1 - t) + b[i] * t) / s;
      dar[i] = dy[i] * (1 - t) / s;
      dbr[i] = dy[i] * t / s;
    }
    nn_mp_sum_fwd_ref_f64(NULL, y, a, b, t, n);
    nn_mp_sum_bwd_ref_f64(NULL, da, db, dy, t, n);
    ASSERT_TRUE(NEAR64("mp_sum y", y, yr, n, 2));
    ASSERT_TRUE(NEAR64("mp_sum da", da, dar, n, 1));
    ASSERT_TRUE(NEAR64("mp_sum db", db, dbr, n, 1));
    nn_mp_sum_fwd_ref(NULL, y32, a32, b32, t, n);
    nn_mp_sum_bwd_ref(NULL, da32, db32, dy32, t, n);
    ASSERT_TRUE(NEAR32("mp_sum y f32", y32, y, n, TOL_ELEMENTWISE, max_abs_d(y, n)));
    ASSERT_TRUE(NEAR32("mp_sum da f32", da32, da, n, TOL_ELEMENTWISE, max_abs_d(da, n)));
    ASSERT_TRUE(NEAR32("mp_sum db f32", db32, db, n, TOL_ELEMENTWISE, max_abs_d(db, n)));
    /* lerp is exact at both ends */
    if (t == 0) ASSERT_TRUE(same_f(y32, a32, n));
    if (t == 1) ASSERT_TRUE(same_f(y32, b32, n));
    /* aliasing: y = a, y = b, da = dy (db separate), db = dy with da NULL */
    memcpy(al, a32, n * sizeof *al);
    nn_mp_sum_fwd_ref(NULL, al, al, b32, t, n);
    ASSERT_TRUE(same_f(al, y32, n));
    memcpy(al, b32, n * sizeof *al);
    nn_mp_sum_fwd_ref(NULL, al, a32, al, t, n);
    ASSERT_TRUE(same_f(al, y32, n));
    memcpy(al, dy32, n * sizeof *al);
    nn_mp_sum_bwd_ref(NULL, al, db32, al, t, n);
    ASSERT_TRUE(same_f(al, da32, n));
    memcpy(al, dy32, n * sizeof *al);
    nn_mp_sum_bwd_ref(NULL, NULL, al, al, t, n);
    ASSERT_TRUE(same_f(al, db32, n));
  }
  free(a32), free(b32), free(dy32), free(y32), free(da32), free(db32), free(al), free(a), free(b);
  free(dy), free(y), free(yr), free(da), free(db), free(dar), free(dbr);
}

TEST(mp_cat_constants) {
  /* Na = 3, Nb = 5, t = 0.5: C = sqrt(8/0.5) = 4, wa = 4/sqrt(3)/2, wb = 4/sqrt(5)/2 */
  double a[3] = {1, 1, 1}, b[5] = {1, 1, 1, 1, 1}, y[8];
  float af[3] = {1, 1, 1}, bf[5] = {1, 1, 1, 1, 1}, yf[8];
  nn_mp_cat_fwd_ref_f64(NULL, y, a, b, 1, 3, 5, 1, 0.5);
  nn_mp_cat_fwd_ref(NULL, yf, af, bf, 1, 3, 5, 1, 0.5);
  for (int i = 0; i < 3; i++) {
    ASSERT_NEAR(y[i], 1.1547005, 1e-7);
    ASSERT_NEAR(y[i], 2 / sqrt(3.0), 1e-15);
    ASSERT_TRUE(yf[i] == (float)(2 / sqrt(3.0)));
  }
  for (int i = 3; i < 8; i++) {
    ASSERT_NEAR(y[i], 0.8944272, 1e-7);
    ASSERT_NEAR(y[i], 2 / sqrt(5.0), 1e-15);
    ASSERT_TRUE(yf[i] == (float)(2 / sqrt(5.0)));
  }
}

TEST(mp_cat_against_naive) {
  const int N = 3, Ca = 4, Cb = 6;
  const size_t L = 10, na = N * Ca * L, nb = N * Cb * L, ny = na + nb;
  const double t = 0.3;
  float *a32 = randf(na, 1), *b32 = randf(nb, 1), *dy32 = randf(ny, 1), *y32 = fvec(ny),
        *da32 = fvec(na), *db32 = fvec(nb);
  double *a = widen(a32, na), *b = widen(b32, nb), *dy = widen(dy32, ny), *y = dvec(ny),
         *yr = dvec(ny), *da = dvec(na), *db = dvec(nb), *dar = dvec(na), *dbr = dvec(nb);
  const double C = sqrt((Ca + Cb) / ((1 - t) * (1 - t) + t * t));
  const double wa = C / sqrt((double)Ca) * (1 - t), wb = C / sqrt((double)Cb) * t;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < Ca + Cb; c++)
      for (size_t l = 0; l < L; l++) {
        size_t yi = (n * (Ca + Cb) + c) * L + l;
        if (c < Ca) {
          yr[yi] = wa * a[(n * Ca + c) * L + l];
          dar[(n * Ca + c) * L + l] = wa * dy[yi];
        } else {
          yr[yi] = wb * b[(n * Cb + c - Ca) * L + l];
          dbr[(n * Cb + c - Ca) * L + l] = wb * dy[yi];
        }
      }
  nn_mp_cat_fwd_ref_f64(NULL, y, a, b, N, Ca, Cb, L, t);
  nn_mp_cat_bwd_ref_f64(NULL, da, db, dy, N, Ca, Cb, L, t);
  ASSERT_TRUE(NEAR64("mp_cat y", y, yr, ny, 1));
  ASSERT_TRUE(NEAR64("mp_cat da", da, dar, na, 1));
  ASSERT_TRUE(NEAR64("mp_cat db", db, dbr, nb, 1));
  nn_mp_cat_fwd_ref(NULL, y32, a32, b32, N, Ca, Cb, L, t);
  nn_mp_cat_bwd_ref(NULL, da32, db32, dy32, N, Ca, Cb, L, t);
  ASSERT_TRUE(NEAR32("mp_cat y f32", y32, y, ny, TOL_ELEMENTWISE, max_abs_d(y, ny)));
  ASSERT_TRUE(NEAR32("mp_cat da f32", da32, da, na, TOL_ELEMENTWISE, max_abs_d(da, na)));
  ASSERT_TRUE(NEAR32("mp_cat db f32", db32, db, nb, TOL_ELEMENTWISE, max_abs_d(db, nb)));
  free(a32), free(b32), free(dy32), free(y32), free(da32), free(db32), free(a), free(b), free(dy);
  free(y), free(yr), free(da), free(db), free(dar), free(dbr);
}

TEST(clip_against_naive) {
  const size_t n = 300;
  const double lim = 1.25;
  float *x32 = randf(n, 1.5), *dy32 = randf(n, 1), *y32 = fvec(n), *dx32 = fvec(n), *al = fvec(n);
  x32[0] = (float)lim, x32[1] = -(float)lim, x32[2] = NAN; /* exactly at the limit; NaN */
  int clipped = 0;
  for (size_t i = 0; i < n; i++) clipped += fabs(x32[i]) > lim;
  ASSERT_TRUE(clipped > 20 && clipped < (int)n - 20);
  nn_clip_fwd_ref(NULL, y32, x32, lim, n);
  nn_clip_bwd_ref(NULL, dx32, dy32, y32, lim, n);
  ASSERT_TRUE(isnan(y32[2])); /* torch.clamp propagates NaN */
  for (size_t i = 0; i < n; i++) {
    if (i == 2) continue;
    double v = x32[i], want = v < -lim ? -lim : v > lim ? lim : v;
    ASSERT_TRUE(y32[i] == (float)want);
    ASSERT_TRUE(dx32[i] == (fabs(v) < lim ? dy32[i] : 0.0f));
  }
  double xd[4] = {-3, -1, 0.5, 2}, yd[4], dyd[4] = {1, 2, 3, 4}, dxd[4];
  nn_clip_fwd_ref_f64(NULL, yd, xd, 1.5, 4);
  nn_clip_bwd_ref_f64(NULL, dxd, dyd, yd, 1.5, 4);
  ASSERT_TRUE(yd[0] == -1.5 && yd[1] == -1 && yd[2] == 0.5 && yd[3] == 1.5);
  ASSERT_TRUE(dxd[0] == 0 && dxd[1] == 2 && dxd[2] == 3 && dxd[3] == 0);
  memcpy(al, x32, n * sizeof *al);
  nn_clip_fwd_ref(NULL, al, al, lim, n);
  ASSERT_TRUE(memcmp(al, y32, n * sizeof *al) == 0);
  memcpy(al, dy32, n * sizeof *al);
  nn_clip_bwd_ref(NULL, al, al, y32, lim, n);
  ASSERT_TRUE(same_f(al, dx32, n));
  free(x32), free(dy32), free(y32), free(dx32), free(al);
}

TEST(modulate_against_naive) {
  const int N = 3, C = 5;
  const size_t L = 37, n = N * C * L;
  float *x32 = randf(n, 1), *s32 = randf(N * C, 0.5), *dy32 = randf(n, 1), *y32 = fvec(n),
        *dx32 = fvec(n), *ds32 = fvec(N * C), *al = fvec(n);
  double *x = widen(x32, n), *s = widen(s32, N * C), *dy = widen(dy32, n), *y = dvec(n),
         *yr = dvec(n), *dx = dvec(n), *dxr = dvec(n), *ds = dvec(N * C), *dsr = dvec(N * C);
  for (int r = 0; r < N * C; r++)
    for (size_t l = 0; l < L; l++) {
      yr[r * L + l] = x[r * L + l] * (1 + s[r]);
      dxr[r * L + l] = dy[r * L + l] * (1 + s[r]);
      dsr[r] += dy[r * L + l] * x[r * L + l];
    }
  nn_modulate_fwd_ref_f64(NULL, y, x, s, N, C, L);
  nn_modulate_bwd_ref_f64(NULL, dx, ds, dy, x, s, N, C, L);
  ASSERT_TRUE(NEAR64("modulate y", y, yr, n, 1));
  ASSERT_TRUE(NEAR64("modulate dx", dx, dxr, n, 1));
  ASSERT_TRUE(NEAR64("modulate ds", ds, dsr, N * C, sqrt(L)));
  nn_modulate_fwd_ref(NULL, y32, x32, s32, N, C, L);
  nn_modulate_bwd_ref(NULL, dx32, ds32, dy32, x32, s32, N, C, L);
  ASSERT_TRUE(NEAR32("modulate y f32", y32, y, n, TOL_ELEMENTWISE, max_abs_d(y, n)));
  ASSERT_TRUE(NEAR32("modulate dx f32", dx32, dx, n, TOL_ELEMENTWISE, max_abs_d(dx, n)));
  ASSERT_TRUE(NEAR32("modulate ds f32", ds32, ds, N * C, TOL_ELEMENTWISE, max_abs_d(ds, N * C)));
  memcpy(al, x32, n * sizeof *al);
  nn_modulate_fwd_ref(NULL, al, al, s32, N, C, L);
  ASSERT_TRUE(same_f(al, y32, n));
  memcpy(al, dy32, n * sizeof *al); /* dx = dy, with ds: ds must read dy before it is overwritten */
  float *ds2 = fvec(N * C);
  nn_modulate_bwd_ref(NULL, al, ds2, al, x32, s32, N, C, L);
  ASSERT_TRUE(same_f(al, dx32, n));
  ASSERT_TRUE(same_f(ds2, ds32, N * C));
  free(ds2), free(x32), free(s32), free(dy32), free(y32), free(dx32), free(ds32), free(al), free(x);
  free(s), free(dy), free(y), free(yr), free(dx), free(dxr), free(ds), free(dsr);
}

TEST(append_ones_layout) {
  const int N = 2, C = 3;
  const size_t L = 4;
  double x[24], y[32], dy[32], dx[24];
  for (int i = 0; i < 24; i++) x[i] = i + 1;
  for (int i = 0; i < 32; i++) dy[i] = -i;
  nn_append_ones_fwd_ref_f64(NULL, y, x, N, C, L);
  nn_append_ones_bwd_ref_f64(NULL, dx, dy, N, C, L);
  for (int n = 0; n < N; n++)
    for (int c = 0; c <= C; c++)
      for (size_t l = 0; l < L; l++) {
        double v = y[(n * (C + 1) + c) * L + l];
        ASSERT_TRUE(c == C ? v == 1 : v == x[(n * C + c) * L + l]);
        if (c < C) ASSERT_TRUE(dx[(n * C + c) * L + l] == dy[(n * (C + 1) + c) * L + l]);
      }
  float xf[24], yf[32];
  for (int i = 0; i < 24; i++) xf[i] = (float)x[i];
  nn_append_ones_fwd_ref(NULL, yf, xf, N, C, L);
  for (int i = 0; i < 32; i++) ASSERT_TRUE(yf[i] == (float)y[i]);
}

TEST(rows_axpby_scale_acc) {
  const int R = 4;
  const size_t M = 33, n = R * M;
  float *x32 = randf(n, 1), *z32 = randf(n, 1), *a32 = randf(R, 1), *b32 = randf(R, 1),
        *y32 = fvec(n), *al = fvec(n);
  double *x = widen(x32, n), *z = widen(z32, n), *a = widen(a32, R), *b = widen(b32, R),
         *y = dvec(n), *yr = dvec(n);
  for (int with_b = 0; with_b <= 1; with_b++) {
    for (int r = 0; r < R; r++)
      for (size_t i = 0; i < M; i++)
        yr[r * M + i] = a[r] * x[r * M + i] + (with_b ? b[r] * z[r * M + i] : 0);
    nn_rows_axpby_ref_f64(NULL, y, a, x, with_b ? b : NULL, with_b ? z : NULL, R, M);
    ASSERT_TRUE(NEAR64("rows_axpby", y, yr, n, 1));
    nn_rows_axpby_ref(NULL, y32, a32, x32, with_b ? b32 : NULL, with_b ? z32 : NULL, R, M);
    ASSERT_TRUE(NEAR32("rows_axpby f32", y32, y, n, TOL_ELEMENTWISE, max_abs_d(y, n)));
    memcpy(al, x32, n * sizeof *al); /* y = x */
    nn_rows_axpby_ref(NULL, al, a32, al, with_b ? b32 : NULL, with_b ? z32 : NULL, R, M);
    ASSERT_TRUE(same_f(al, y32, n));
    if (with_b) { /* y = z */
      memcpy(al, z32, n * sizeof *al);
      nn_rows_axpby_ref(NULL, al, a32, x32, b32, al, R, M);
      ASSERT_TRUE(same_f(al, y32, n));
    }
  }
  /* scale (in place too) and acc */
  nn_scale_ref_f64(NULL, y, x, -2.5, n);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE(y[i] == -2.5 * x[i]);
  memcpy(al, x32, n * sizeof *al);
  nn_scale_ref(NULL, al, al, 0.75, n);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE(al[i] == 0.75f * x32[i]);
  memcpy(y, z, n * sizeof *y);
  nn_acc_ref_f64(NULL, y, x, n);
  nn_acc_ref_f64(NULL, y, x, n);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE(y[i] == z[i] + x[i] + x[i]);
  memcpy(al, z32, n * sizeof *al);
  nn_acc_ref(NULL, al, x32, n);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE(al[i] == z32[i] + x32[i]);
  free(x32), free(z32), free(a32), free(b32), free(y32), free(al), free(x), free(z), free(a);
  free(b), free(y), free(yr);
}

/* ---- resampling -------------------------------------------------------------------------------- */

TEST(resample_against_naive) {
  const int N = 2, C = 3, H = 6, W = 10;
  const size_t n = (size_t)N * C * H * W, nd = n / 4, nu = n * 4;
  float *x32 = randf(n, 1), *g32 = randf(nu, 1), *yd32 = fvec(nd), *yu32 = fvec(nu),
        *dxd32 = fvec(n), *dxu32 = fvec(n);
  double *x = widen(x32, n), *g = widen(g32, nu), *yd = dvec(nd), *yu = dvec(nu), *dxd = dvec(n),
         *dxu = dvec(n);
  nn_down2_fwd_ref_f64(NULL, yd, x, N, C, H, W);
  nn_up2_fwd_ref_f64(NULL, yu, x, N, C, H, W);
  nn_down2_bwd_ref_f64(NULL, dxd, g, N, C, H, W); /* dy of down2 has nd elements: g's first nd */
  nn_up2_bwd_ref_f64(NULL, dxu, g, N, C, H, W);
  for (int p = 0; p < N * C; p++)
    for (int h = 0; h < H; h++)
      for (int w = 0; w < W; w++) {
        const size_t xi = ((size_t)p * H + h) * W + w;
        const size_t di = ((size_t)p * (H / 2) + h / 2) * (W / 2) + w / 2;
        if (h % 2 == 0 && w % 2 == 0)
          ASSERT_NEAR(yd[di], (x[xi] + x[xi + 1] + x[xi + W] + x[xi + W + 1]) / 4, 1e-15);
        ASSERT_TRUE(dxd[xi] == g[di] / 4);
        double s = 0;
        for (int a = 0; a < 2; a++)
          for (int b = 0; b < 2; b++) {
            const size_t ui = ((size_t)p * 2 * H + 2 * h + a) * (2 * W) + 2 * w + b;
            ASSERT_TRUE(yu[ui] == x[xi]);
            s += g[ui];
          }
        ASSERT_NEAR(dxu[xi], s, 1e-14);
      }
  nn_down2_fwd_ref(NULL, yd32, x32, N, C, H, W);
  nn_up2_fwd_ref(NULL, yu32, x32, N, C, H, W);
  nn_down2_bwd_ref(NULL, dxd32, g32, N, C, H, W);
  nn_up2_bwd_ref(NULL, dxu32, g32, N, C, H, W);
  ASSERT_TRUE(NEAR32("down2 y f32", yd32, yd, nd, TOL_ELEMENTWISE, max_abs_d(yd, nd)));
  ASSERT_TRUE(NEAR32("up2 y f32", yu32, yu, nu, TOL_ELEMENTWISE, max_abs_d(yu, nu)));
  ASSERT_TRUE(NEAR32("down2 dx f32", dxd32, dxd, n, TOL_ELEMENTWISE, max_abs_d(dxd, n)));
  ASSERT_TRUE(NEAR32("up2 dx f32", dxu32, dxu, n, TOL_ELEMENTWISE, max_abs_d(dxu, n)));
  free(x32), free(g32), free(yd32), free(yu32), free(dxd32), free(dxu32), free(x), free(g);
  free(yd), free(yu), free(dxd), free(dxu);
}

/* ---- attention --------------------------------------------------------------------------------- */

/* Straight from the definition: channel (h·Ch + c)·3 + s of qkv is head h, channel c of q/k/v. */
static void naive_attention(double *y, const double *qkv, int N, int heads, int Ch, size_t L) {
  double *q = dvec(Ch * L), *k = dvec(Ch * L), *v = dvec(Ch * L), *p = dvec(L);
  for (int n = 0; n < N; n++)
    for (int h = 0; h < heads; h++) {
      double *dst[3] = {q, k, v};
      for (int s = 0; s < 3; s++)
        for (size_t l = 0; l < L; l++) {
          double ss = 0;
          for (int c = 0; c < Ch; c++) {
            double e = qkv[((size_t)n * 3 * heads * Ch + (size_t)(h * Ch + c) * 3 + s) * L + l];
            ss += e * e;
          }
          double d = 1e-4 + sqrt(ss) / sqrt((double)Ch);
          for (int c = 0; c < Ch; c++)
            dst[s][c * L + l] =
                qkv[((size_t)n * 3 * heads * Ch + (size_t)(h * Ch + c) * 3 + s) * L + l] / d;
        }
      for (size_t i = 0; i < L; i++) {
        double m = -INFINITY, z = 0;
        for (size_t j = 0; j < L; j++) {
          double lg = 0;
          for (int c = 0; c < Ch; c++) lg += q[c * L + i] * (k[c * L + j] / sqrt((double)Ch));
          p[j] = lg;
          m = lg > m ? lg : m;
        }
        for (size_t j = 0; j < L; j++) z += p[j] = exp(p[j] - m);
        for (int c = 0; c < Ch; c++) {
          double s = 0;
          for (size_t j = 0; j < L; j++) s += p[j] / z * v[c * L + j];
          y[((size_t)n * heads * Ch + h * Ch + c) * L + i] = s;
        }
      }
    }
  free(q), free(k), free(v), free(p);
}

static void attention_check(int N, int heads, int Ch, size_t L, double scale) {
  const size_t nq = (size_t)N * 3 * heads * Ch * L, ny = (size_t)N * heads * Ch * L;
  const size_t ns = nn_attn_saved_size(N, heads, Ch, L), nws = nn_attn_workspace(N, heads, Ch, L);
  float *qkv32 = randf(nq, scale), *dy32 = randf(ny, 1), *y32 = fvec(ny), *dq32 = fvec(nq);
  double *qkv = widen(qkv32, nq), *dy = widen(dy32, ny), *y = dvec(ny), *yr = dvec(ny),
         *dq = dvec(nq);
  double *saved = guarded_d(ns), *ws = guarded_d(nws);
  float *saved32 = guarded_f(ns), *ws32 = guarded_f(nws);
  char what[64];
  naive_attention(yr, qkv, N, heads, Ch, L);
  fill_d(y, ny, NAN);
  fill_d(dq, nq, NAN);
  nn_attn_fwd_ref_f64(NULL, y, saved, qkv, N, heads, Ch, L, ws);
  nn_attn_bwd_ref_f64(NULL, dq, dy, saved, qkv, N, heads, Ch, L, ws);
  snprintf(what, sizeof what, "attention N%d h%d Ch%d L%zu y", N, heads, Ch, L);
  ASSERT_TRUE(NEAR64(what, y, yr, ny, 1));
  ASSERT_TRUE(guard_ok_d(saved, ns) && guard_ok_d(ws, nws));
  for (size_t i = 0; i < nq; i++) ASSERT_TRUE(isfinite(dq[i]));
  fill_f(y32, ny, NAN);
  fill_f(dq32, nq, NAN);
  nn_attn_fwd_ref(NULL, y32, saved32, qkv32, N, heads, Ch, L, ws32);
  nn_attn_bwd_ref(NULL, dq32, dy32, saved32, qkv32, N, heads, Ch, L, ws32);
  snprintf(what, sizeof what, "attention N%d h%d Ch%d L%zu y f32", N, heads, Ch, L);
  ASSERT_TRUE(NEAR32(what, y32, y, ny, TOL_ATTENTION, max_abs_d(y, ny)));
  snprintf(what, sizeof what, "attention N%d h%d Ch%d L%zu dqkv f32", N, heads, Ch, L);
  ASSERT_TRUE(NEAR32(what, dq32, dq, nq, TOL_ATTENTION, max_abs_d(dq, nq)));
  ASSERT_TRUE(guard_ok_f(saved32, ns) && guard_ok_f(ws32, nws));
  free(qkv32), free(dy32), free(y32), free(dq32), free(qkv), free(dy), free(y), free(yr), free(dq);
  free(saved), free(ws), free(saved32), free(ws32);
}

TEST(attention_against_naive) {
  attention_check(2, 2, 3, 5, 1.0);
  attention_check(2, 3, 16, 64, 1.0); /* 8×8 tokens */
  attention_check(1, 2, 32, 16, 10.0);
}

/* ---- Fourier features -------------------------------------------------------------------------- */

TEST(fourier_against_naive) {
  const int B = 7, C = 32;
  float *a32 = randf(B, 1), *f32 = randf(C, 2 * M_PI), *p32 = fvec(C), *y32 = fvec((size_t)B * C);
  for (int i = 0; i < C; i++) p32[i] = (float)(2 * M_PI * ec_rng_uniform(next_seed, (uint64_t)i));
  next_seed++;
  double *a = widen(a32, B), *f = widen(f32, C), *p = widen(p32, C), *y = dvec((size_t)B * C),
         *yr = dvec((size_t)B * C), argmax = 0;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < C; i++) {
      double arg = a[b] * f[i] + p[i];
      yr[b * C + i] = sqrt(2.0) * cos(arg);
      argmax = fabs(arg) > argmax ? fabs(arg) : argmax;
    }
  nn_fourier_fwd_ref_f64(NULL, y, a, f, p, B, C);
  ASSERT_TRUE(NEAR64("fourier y", y, yr, (size_t)B * C, 1));
  nn_fourier_fwd_ref(NULL, y32, a32, f32, p32, B, C);
  ASSERT_TRUE(NEAR32("fourier y f32", y32, y, (size_t)B * C, TOL_FOURIER, argmax));
  free(a32), free(f32), free(p32), free(y32), free(a), free(f), free(p), free(y), free(yr);
}

/* ---- dropout ----------------------------------------------------------------------------------- */

TEST(dropout_p0_copies) {
  const size_t n = 100;
  float *x = randf(n, 1), *y = fvec(n);
  nn_dropout_fwd_ref(NULL, y, x, n, 0.0, 1, 0);
  ASSERT_TRUE(same_f(x, y, n));
  nn_dropout_bwd_ref(NULL, y, x, n, 0.0, 1, 0);
  ASSERT_TRUE(same_f(x, y, n));
  nn_dropout_fwd_ref(NULL, x, x, n, 0.0, 1, 0); /* in place */
  ASSERT_TRUE(same_f(x, y, n));
  free(x), free(y);
}

TEST(dropout_mask) {
  const size_t n = 100003; /* not a multiple of 4 */
  const double p = 0.3;
  const uint64_t seed = 1234, off = 7;
  float *ones = fvec(n), *y = fvec(n), *y2 = fvec(n), *g = fvec(n), *x = randf(n, 1);
  double *yd = dvec(n), *onesd = dvec(n);
  fill_f(ones, n, 1);
  fill_d(onesd, n, 1);
  const float scale = (float)(1 / (1 - p));
  nn_dropout_fwd_ref(NULL, y, ones, n, p, seed, off);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    /* the header's definition, element by element */
    int drop = ec_rng_uniform(seed, off + i) < p;
    ASSERT_TRUE(y[i] == (drop ? 0.0f : scale));
    kept += !drop;
  }
  /* kept fraction: binomial(n, 1-p), within 5 standard errors */
  ASSERT_NEAR((double)kept / n, 1 - p, 5 * sqrt(p * (1 - p) / n));
  /* the backward applies the same mask; so does the same (seed, offset) again, and f64 */
  nn_dropout_bwd_ref(NULL, g, ones, n, p, seed, off);
  ASSERT_TRUE(same_f(g, y, n));
  nn_dropout_fwd_ref(NULL, y2, ones, n, p, seed, off);
  ASSERT_TRUE(same_f(y2, y, n));
  nn_dropout_fwd_ref_f64(NULL, yd, onesd, n, p, seed, off);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE((yd[i] == 0) == (y[i] == 0));
  /* another seed drops other elements (agreement of two independent masks: p² + (1-p)²) */
  nn_dropout_fwd_ref(NULL, y2, ones, n, p, seed + 1, off);
  size_t agree = 0;
  for (size_t i = 0; i < n; i++) agree += (y2[i] == 0) == (y[i] == 0);
  const double pa = p * p + (1 - p) * (1 - p);
  ASSERT_NEAR((double)agree / n, pa, 5 * sqrt(pa * (1 - pa) / n));
  /* kept values are x / (1 - p); in place equals out of place */
  nn_dropout_fwd_ref(NULL, y2, x, n, p, seed, off);
  for (size_t i = 0; i < n; i++) ASSERT_TRUE(y2[i] == (y[i] == 0 ? 0.0f : x[i] * scale));
  nn_dropout_fwd_ref(NULL, x, x, n, p, seed, off);
  ASSERT_TRUE(same_f(x, y2, n));
  free(ones), free(y), free(y2), free(g), free(x), free(yd), free(onesd);
}

TEST(dropout_offset_is_a_slice) {
  /* dropping a slice [o, o+m) of a tensor with offset o equals that slice of the whole tensor's
   * result, for slices starting at every position within a Philox block */
  const size_t n = 203;
  const double p = 0.5;
  float *x = randf(n, 1), *whole = fvec(n), *part = fvec(n);
  nn_dropout_fwd_ref(NULL, whole, x, n, p, 99, 0);
  const size_t starts[] = {1, 2, 3, 4, 5, 50, 101, 202};
  for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
    const size_t o = starts[k], m = n - o < 37 ? n - o : 37;
    nn_dropout_fwd_ref(NULL, part, x + o, m, p, 99, o);
    ASSERT_TRUE(same_f(part, whole + o, m));
    nn_dropout_bwd_ref(NULL, part, x + o, m, p, 99, o);
    ASSERT_TRUE(same_f(part, whole + o, m));
  }
  free(x), free(whole), free(part);
}

TEST_MAIN(conv3x3_against_naive, conv1x1_against_naive, linear_against_naive,
          pixelnorm_against_naive, pixelnorm_of_zero_vector, weightnorm_against_naive,
          weightnorm_force_in_place, mp_silu_against_naive, mp_sum_against_naive, mp_cat_constants,
          mp_cat_against_naive, clip_against_naive, modulate_against_naive, append_ones_layout,
          rows_axpby_scale_acc, resample_against_naive, attention_against_naive,
          fourier_against_naive, dropout_p0_copies, dropout_mask, dropout_offset_is_a_slice)
