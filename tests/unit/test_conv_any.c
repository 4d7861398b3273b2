/* nn/conv_any.h and nn/pool.h against naive double loops written here: the general convolution
 * (every kernel, stride and padding of Inception-v3 on small odd and even shapes, with and
 * without the fused bias and ReLU, a case cut into several row bands, writing into a channel
 * slice of a wider tensor), max/average/global-average pooling (VALID and padded, both
 * count_include_pad settings); float32 against float64 (tests/unit/nn_tolerances.h); guard
 * elements after every workspace; untouched channels around a slice. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/conv_any.h"
#include "nn/pool.h"
#include "tests/test.h"
#include "tests/unit/nn_tolerances.h"
#define NN_TEST_SEED0 9100
#include "tests/unit/nn_test_util.h"

/* ---- convolution ------------------------------------------------------------------------------ */

/* y[n, co, oh, ow] = relu?(b[co] + Σ w[co, ci, i, j] · x[n, ci, oh·sh − ph + i, ow·sw − pw + j]) */
static void naive_conv(double *y, const double *x, const double *w, const double *b, int N,
                       int Ci, int Co, int H, int W, const nn_conv_geom *g, int relu) {
  const int OH = (H + 2 * g->ph - g->kh) / g->sh + 1, OW = (W + 2 * g->pw - g->kw) / g->sw + 1;
  for (int n = 0; n < N; n++)
    for (int co = 0; co < Co; co++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double s = b ? b[co] : 0;
          for (int ci = 0; ci < Ci; ci++)
            for (int i = 0; i < g->kh; i++)
              for (int j = 0; j < g->kw; j++) {
                int h = oh * g->sh - g->ph + i, v = ow * g->sw - g->pw + j;
                if (h < 0 || h >= H || v < 0 || v >= W) continue;
                s += w[((co * Ci + ci) * g->kh + i) * g->kw + j] * x[((n * Ci + ci) * H + h) * W + v];
              }
          if (relu && s < 0) s = 0;
          y[((n * Co + co) * OH + oh) * OW + ow] = s;
        }
}

/* One convolution, f64 against the naive loops and f32 against f64; with `extra` > 0 the output
 * is written into channels [extra, extra + Co) of a (N, Co + 2·extra, OH, OW) tensor whose other
 * channels must stay untouched. */
static void conv_check(int N, int Ci, int Co, int H, int W, nn_conv_geom g, int use_bias, int relu,
                       int extra) {
  char what[128];
  const int OH = nn_conv_out_h(&g, H), OW = nn_conv_out_w(&g, W);
  ASSERT_EQ_INT(OH, (H + 2 * g.ph - g.kh) / g.sh + 1);
  ASSERT_EQ_INT(OW, (W + 2 * g.pw - g.kw) / g.sw + 1);
  const size_t OL = (size_t)OH * OW, nx = (size_t)N * Ci * H * W, ny = (size_t)N * Co * OL,
               nw = (size_t)Co * Ci * g.kh * g.kw, nws = nn_conv2d_any_workspace(Ci, H, W, &g);
  const int Ct = Co + 2 * extra;
  const size_t stride = (size_t)Ct * OL, nbig = (size_t)N * stride;
  const int pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  if (pointwise) ASSERT_EQ_INT(nws, 0);
  float *x32 = randf(nx, 1.0), *w32 = randf(nw, 0.3), *b32 = use_bias ? randf(Co, 0.5) : NULL;
  double *x = widen(x32, nx), *w = widen(w32, nw), *b = use_bias ? widen(b32, Co) : NULL;
  double *yr = dvec(ny), *y = dvec(ny), *big = dvec(nbig);
  float *y32 = fvec(ny), *big32 = fvec(nbig);
  double *ws = guarded_d(nws);
  float *ws32 = guarded_f(nws);
  const double scale = sqrt((double)Ci * g.kh * g.kw) * rms_f(x32, nx) * rms_f(w32, nw);
  const int flags = relu ? NN_CONV_RELU : 0;

  naive_conv(yr, x, w, b, N, Ci, Co, H, W, &g, relu);
  fill_d(big, nbig, NAN);
  fill_f(big32, nbig, NAN);
  nn_conv2d_any_fwd_ref_f64(NULL, big + (size_t)extra * OL, extra ? stride : 0, x, w, b, N, Ci, Co,
                            H, W, &g, flags, ws);
  nn_conv2d_any_fwd_ref(NULL, big32 + (size_t)extra * OL, extra ? stride : 0, x32, w32, b32, N, Ci,
                        Co, H, W, &g, flags, ws32);
  for (int n = 0; n < N; n++) {
    memcpy(y + (size_t)n * Co * OL, big + n * stride + (size_t)extra * OL, Co * OL * sizeof *y);
    memcpy(y32 + (size_t)n * Co * OL, big32 + n * stride + (size_t)extra * OL, Co * OL * sizeof *y32);
    for (size_t i = 0; i < (size_t)extra * OL; i++) { /* channels before and after the slice */
      ASSERT_TRUE(isnan(big[n * stride + i]) && isnan(big[n * stride + stride - 1 - i]));
      ASSERT_TRUE(isnan(big32[n * stride + i]) && isnan(big32[n * stride + stride - 1 - i]));
    }
  }
  snprintf(what, sizeof what, "conv %dx%d s%dx%d p%dx%d N%d %d->%d %dx%d%s%s%s", g.kh, g.kw, g.sh,
           g.sw, g.ph, g.pw, N, Ci, Co, H, W, use_bias ? " +b" : "", relu ? " relu" : "",
           extra ? " slice" : "");
  ASSERT_TRUE(NEAR64(what, y, yr, ny, scale));
  ASSERT_TRUE(guard_ok_d(ws, nws));
  strcat(what, " f32");
  ASSERT_TRUE(NEAR32(what, y32, y, ny, TOL_GEMM, scale));
  ASSERT_TRUE(guard_ok_f(ws32, nws));
  if (relu)
    for (size_t i = 0; i < ny; i++) ASSERT_TRUE(y[i] >= 0 && y32[i] >= 0);

  free(x32), free(w32), free(b32), free(x), free(w), free(b), free(yr), free(y), free(big);
  free(y32), free(big32), free(ws), free(ws32);
}

/* Every geometry of Inception-v3 (metrics-reference.md §1.1). */
static const nn_conv_geom inception_geoms[] = {
    {1, 1, 1, 1, 0, 0}, /* 1×1 */
    {3, 3, 2, 2, 0, 0}, /* 3×3 stride 2 VALID (stem, Mixed_6a, Mixed_7a) */
    {3, 3, 1, 1, 0, 0}, /* 3×3 VALID (Conv2d_2a, Conv2d_4a) */
    {3, 3, 1, 1, 1, 1}, /* 3×3 same */
    {5, 5, 1, 1, 2, 2}, /* 5×5 same (Mixed_5b-d) */
    {1, 3, 1, 1, 0, 1}, /* 1×3 same (Mixed_7b-c) */
    {3, 1, 1, 1, 1, 0}, /* 3×1 same */
    {1, 7, 1, 1, 0, 3}, /* 1×7 same (Mixed_6b-e, Mixed_7a) */
    {7, 1, 1, 1, 3, 0}, /* 7×1 same */
};
enum { NGEOM = sizeof inception_geoms / sizeof *inception_geoms };

TEST(conv_every_inception_geometry) {
  for (int i = 0; i < NGEOM; i++) {
    conv_check(2, 3, 5, 9, 11, inception_geoms[i], 0, 0, 0);  /* odd sizes */
    conv_check(1, 4, 3, 10, 8, inception_geoms[i], 0, 0, 0);  /* even sizes */
    conv_check(3, 5, 4, 7, 13, inception_geoms[i], 1, 1, 0);  /* bias + ReLU, the folded-BN form */
    conv_check(2, 3, 6, 11, 9, inception_geoms[i], 1, 0, 0);  /* bias alone */
    conv_check(2, 3, 4, 9, 7, inception_geoms[i], 1, 1, 2);   /* into a channel slice */
  }
}

TEST(conv_other_geometries) {
  conv_check(2, 3, 4, 9, 12, (nn_conv_geom){1, 1, 2, 2, 0, 0}, 1, 1, 0); /* strided 1×1 */
  conv_check(2, 3, 4, 10, 9, (nn_conv_geom){3, 3, 2, 1, 1, 0}, 0, 1, 0); /* mixed strides */
  conv_check(1, 2, 3, 3, 3, (nn_conv_geom){5, 5, 1, 1, 2, 2}, 1, 0, 0);  /* kernel > image */
  conv_check(2, 2, 3, 1, 1, (nn_conv_geom){3, 3, 1, 1, 1, 1}, 1, 1, 0);  /* 1×1 image */
}

/* Images wide enough to be cut into several row bands (2048 positions per band). */
TEST(conv_row_bands) {
  conv_check(2, 3, 4, 70, 37, (nn_conv_geom){3, 3, 1, 1, 1, 1}, 1, 1, 0);  /* 55 rows, then 15 */
  conv_check(1, 2, 3, 151, 149, (nn_conv_geom){3, 3, 2, 2, 0, 0}, 1, 1, 0); /* 75×74: 27+27+21 */
  conv_check(1, 2, 3, 3, 3000, (nn_conv_geom){1, 7, 1, 1, 0, 3}, 0, 0, 1);  /* one row a band */
}

/* ---- pooling ---------------------------------------------------------------------------------- */

static void naive_pool(double *y, const double *x, int N, int C, int H, int W,
                       const nn_conv_geom *g, int kind /* 0 max, 1 avg excl. pad, 2 avg incl. */) {
  const int OH = (H + 2 * g->ph - g->kh) / g->sh + 1, OW = (W + 2 * g->pw - g->kw) / g->sw + 1;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double s = 0, m = -INFINITY;
          int cnt = 0, cnt_pad = 0;
          for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
              int h = oh * g->sh - g->ph + i, v = ow * g->sw - g->pw + j;
              /* PyTorch counts the padding but not beyond it */
              if (h < H + g->ph && v < W + g->pw) cnt_pad++;
              if (h < 0 || h >= H || v < 0 || v >= W) continue;
              double e = x[((n * C + c) * H + h) * W + v];
              s += e;
              m = e > m ? e : m;
              cnt++;
            }
          y[((n * C + c) * OH + oh) * OW + ow] = kind == 0 ? m : s / (kind == 1 ? cnt : cnt_pad);
        }
}

static void pool_check(int N, int C, int H, int W, nn_conv_geom g, int kind, int extra) {
  char what[128];
  const int OH = nn_conv_out_h(&g, H), OW = nn_conv_out_w(&g, W);
  const size_t OL = (size_t)OH * OW, nx = (size_t)N * C * H * W, ny = (size_t)N * C * OL;
  const int Ct = C + 2 * extra;
  const size_t stride = (size_t)Ct * OL, nbig = (size_t)N * stride;
  float *x32 = randf(nx, 1.0);
  double *x = widen(x32, nx), *yr = dvec(ny), *y = dvec(ny), *big = dvec(nbig);
  float *big32 = fvec(nbig);
  fill_d(big, nbig, NAN);
  fill_f(big32, nbig, NAN);
  naive_pool(yr, x, N, C, H, W, &g, kind);
  double *yo = big + (size_t)extra * OL;
  float *yo32 = big32 + (size_t)extra * OL;
  const size_t st = extra ? stride : 0;
  if (kind == 0) {
    nn_maxpool2d_ref_f64(NULL, yo, st, x, N, C, H, W, &g);
    nn_maxpool2d_ref(NULL, yo32, st, x32, N, C, H, W, &g);
  } else {
    nn_avgpool2d_ref_f64(NULL, yo, st, x, N, C, H, W, &g, kind == 2);
    nn_avgpool2d_ref(NULL, yo32, st, x32, N, C, H, W, &g, kind == 2);
  }
  int exact32 = 1;
  for (int n = 0; n < N; n++) {
    memcpy(y + (size_t)n * C * OL, big + n * stride + (size_t)extra * OL, C * OL * sizeof *y);
    for (size_t i = 0; i < (size_t)C * OL; i++) {
      /* max is exact; the averages sum the same numbers in double in both forms and round the
       quotient: the float32 result is the float64 one rounded, bit for bit */
      const float a = big32[n * stride + (size_t)extra * OL + i];
      const float b = (float)big[n * stride + (size_t)extra * OL + i];
      exact32 &= a == b;
    }
    for (size_t i = 0; i < (size_t)extra * OL; i++) {
      ASSERT_TRUE(isnan(big[n * stride + i]) && isnan(big[n * stride + stride - 1 - i]));
      ASSERT_TRUE(isnan(big32[n * stride + i]) && isnan(big32[n * stride + stride - 1 - i]));
    }
  }
  snprintf(what, sizeof what, "%s %dx%d s%d p%d N%d C%d %dx%d%s",
           kind == 0 ? "maxpool" : kind == 1 ? "avgpool excl" : "avgpool incl", g.kh, g.kw, g.sh,
           g.ph, N, C, H, W, extra ? " slice" : "");
  ASSERT_TRUE(NEAR64(what, y, yr, ny, 1.0));
  ASSERT_TRUE(exact32);
  free(x32), free(x), free(yr), free(y), free(big), free(big32);
}

TEST(pool_against_naive) {
  const nn_conv_geom v3s2 = {3, 3, 2, 2, 0, 0}, s3p1 = {3, 3, 1, 1, 1, 1};
  const int sizes[][2] = {{9, 11}, {10, 8}, {7, 7}, {3, 3}, {1, 1}};
  for (int i = 0; i < 5; i++) {
    const int H = sizes[i][0], W = sizes[i][1];
    if (H >= 3 && W >= 3) pool_check(2, 3, H, W, v3s2, 0, 0); /* maxpool1/2, Mixed_6a/7a */
    pool_check(2, 3, H, W, s3p1, 0, 0);                       /* Mixed_7c's max pool */
    pool_check(2, 3, H, W, s3p1, 1, 0);                       /* FID avg pool */
    pool_check(2, 3, H, W, s3p1, 2, 0);                       /* PyTorch's default */
  }
  pool_check(2, 3, 9, 11, v3s2, 0, 1);
  pool_check(2, 3, 9, 11, s3p1, 1, 2);
  pool_check(1, 2, 12, 13, (nn_conv_geom){2, 3, 2, 3, 1, 1}, 2, 0); /* other shapes */
  pool_check(1, 2, 12, 13, (nn_conv_geom){2, 3, 2, 3, 1, 1}, 1, 0);
  pool_check(1, 2, 12, 13, (nn_conv_geom){2, 3, 2, 3, 1, 1}, 0, 0);
}

/* count_include_pad = 0 at a corner of a 3×3 s1 p1 window divides by 4, not 9. */
TEST(avgpool_fid_divisor) {
  const nn_conv_geom g = {3, 3, 1, 1, 1, 1};
  float x[9], y[9], z[9];
  for (int i = 0; i < 9; i++) x[i] = 36.0f;
  nn_avgpool2d_ref(NULL, y, 0, x, 1, 1, 3, 3, &g, 0);
  nn_avgpool2d_ref(NULL, z, 0, x, 1, 1, 3, 3, &g, 1);
  for (int i = 0; i < 9; i++) ASSERT_TRUE(y[i] == 36.0f);
  ASSERT_TRUE(z[0] == 16.0f && z[1] == 24.0f && z[4] == 36.0f);
}

TEST(maxpool_nan_propagates) {
  const nn_conv_geom g = {3, 3, 2, 2, 0, 0};
  float x[9] = {1, 2, 3, 4, NAN, 6, 7, 8, 9}, y[1];
  nn_maxpool2d_ref(NULL, y, 0, x, 1, 1, 3, 3, &g);
  ASSERT_TRUE(isnan(y[0]));
}

TEST(global_avgpool_against_naive) {
  const int N = 3, C = 5, H = 8, W = 9;
  const size_t n = (size_t)N * C * H * W;
  float *x32 = randf(n, 1.0), y32[15];
  double *x = widen(x32, n), y[15], yr[15];
  for (int i = 0; i < N * C; i++) {
    double s = 0;
    for (int p = 0; p < H * W; p++) s += x[(size_t)i * H * W + p];
    yr[i] = s / (H * W);
  }
  nn_global_avgpool_ref_f64(NULL, y, x, N, C, H, W);
  nn_global_avgpool_ref(NULL, y32, x32, N, C, H, W);
  ASSERT_TRUE(NEAR64("global avgpool", y, yr, 15, 1.0));
  for (int i = 0; i < N * C; i++) ASSERT_TRUE(y32[i] == (float)y[i]);
  free(x32), free(x);
}

TEST_MAIN(conv_every_inception_geometry, conv_other_geometries, conv_row_bands, pool_against_naive,
          avgpool_fid_divisor, maxpool_nan_propagates, global_avgpool_against_naive)
