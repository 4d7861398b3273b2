/* The `_cuda` ops of ops.h: plain C, contracts checked as in nn/ref, scalars computed as nn/ref
 * computes them, then one launcher call per kernel (kernels.h). */
#include "nn/cuda/ops.h"

#include <math.h>

#include "core/check.h"
#include "nn/act.h"
#include "nn/cuda/check.h"
#include "nn/cuda/kernels.h"
#include "nn/norm.h"

/* Same signatures as the float `_ref` forms (DESIGN.md: "`_ref` and `_cuda` forms with identical
 * signatures"). */
#define SAME_SIGNATURE(op)                                                                         \
  _Static_assert(__builtin_types_compatible_p(__typeof__(&nn_##op##_cuda),                         \
                                              __typeof__(&nn_##op##_ref)),                         \
                 "nn_" #op "_cuda and nn_" #op "_ref differ")
SAME_SIGNATURE(mp_silu_fwd);
SAME_SIGNATURE(mp_silu_bwd);
SAME_SIGNATURE(mp_sum_fwd);
SAME_SIGNATURE(mp_sum_bwd);
SAME_SIGNATURE(mp_cat_fwd);
SAME_SIGNATURE(mp_cat_bwd);
SAME_SIGNATURE(clip_fwd);
SAME_SIGNATURE(clip_bwd);
SAME_SIGNATURE(modulate_fwd);
SAME_SIGNATURE(modulate_bwd);
SAME_SIGNATURE(append_ones_fwd);
SAME_SIGNATURE(append_ones_bwd);
SAME_SIGNATURE(rows_axpby);
SAME_SIGNATURE(scale);
SAME_SIGNATURE(acc);
SAME_SIGNATURE(pixelnorm_fwd);
SAME_SIGNATURE(pixelnorm_bwd);

/* ---- nn/act.h ---- */

void nn_mp_silu_fwd_cuda(nn_ctx *ctx, float *y, const float *x, size_t n) {
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_silu_fwd(nn_cuda_stream(ctx), y, x, n));
}

void nn_mp_silu_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *x, size_t n) {
  if (!dx) return;
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_silu_bwd(nn_cuda_stream(ctx), dx, dy, x, n));
}

/* nn/ref/act.inc: lerp by PyTorch's two formulas, divided by s rounded to float. */
void nn_mp_sum_fwd_cuda(nn_ctx *ctx, float *y, const float *a, const float *b, double t, size_t n) {
  const float tt = (float)t, omt = (float)(1.0 - t);
  const float s = (float)sqrt((1.0 - t) * (1.0 - t) + t * t);
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_sum_fwd(nn_cuda_stream(ctx), y, a, b, tt, omt, s, t < 0.5, n));
}

void nn_mp_sum_bwd_cuda(nn_ctx *ctx, float *da, float *db, const float *dy, double t, size_t n) {
  if (!da && !db) return;
  const double s = sqrt((1.0 - t) * (1.0 - t) + t * t);
  const float ca = (float)((1.0 - t) / s), cb = (float)(t / s);
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_sum_bwd(nn_cuda_stream(ctx), da, db, dy, ca, cb, n));
}

/* nn/ref/act.inc's mp_cat_weights (static there): the same double expression, rounded once. */
static void mp_cat_weights(int Ca, int Cb, double t, float *wa, float *wb) {
  double c = sqrt((double)(Ca + Cb) / ((1.0 - t) * (1.0 - t) + t * t));
  *wa = (float)(c / sqrt((double)Ca) * (1.0 - t));
  *wb = (float)(c / sqrt((double)Cb) * t);
}

void nn_mp_cat_fwd_cuda(nn_ctx *ctx, float *y, const float *a, const float *b, int N, int Ca,
                        int Cb, size_t L, double t) {
  EC_ASSERT(N > 0 && Ca > 0 && Cb > 0);
  float wa, wb;
  mp_cat_weights(Ca, Cb, t, &wa, &wb);
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_cat_fwd(nn_cuda_stream(ctx), y, a, b, wa, wb, (size_t)N,
                                           (size_t)Ca * L, (size_t)Cb * L));
}

void nn_mp_cat_bwd_cuda(nn_ctx *ctx, float *da, float *db, const float *dy, int N, int Ca, int Cb,
                        size_t L, double t) {
  EC_ASSERT(N > 0 && Ca > 0 && Cb > 0);
  if (!da && !db) return;
  float wa, wb;
  mp_cat_weights(Ca, Cb, t, &wa, &wb);
  NN_CUDA_LAUNCH(nn_cuda_launch_mp_cat_bwd(nn_cuda_stream(ctx), da, db, dy, wa, wb, (size_t)N,
                                           (size_t)Ca * L, (size_t)Cb * L));
}

void nn_clip_fwd_cuda(nn_ctx *ctx, float *y, const float *x, double limit, size_t n) {
  EC_ASSERT(limit > 0);
  const float hi = (float)limit, lo = -(float)limit;
  NN_CUDA_LAUNCH(nn_cuda_launch_clip_fwd(nn_cuda_stream(ctx), y, x, lo, hi, n));
}

void nn_clip_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *y, double limit,
                      size_t n) {
  EC_ASSERT(limit > 0);
  if (!dx) return;
  NN_CUDA_LAUNCH(nn_cuda_launch_clip_bwd(nn_cuda_stream(ctx), dx, dy, y, (float)limit, n));
}

void nn_modulate_fwd_cuda(nn_ctx *ctx, float *y, const float *x, const float *s, int N, int C,
                          size_t L) {
  EC_ASSERT(N > 0 && C > 0);
  NN_CUDA_LAUNCH(
      nn_cuda_launch_modulate_fwd(nn_cuda_stream(ctx), y, x, s, (size_t)N * (size_t)C, L));
}

/* ds first: dx may alias dy, and the ds kernel reads dy (same stream, so in order). */
void nn_modulate_bwd_cuda(nn_ctx *ctx, float *dx, float *ds, const float *dy, const float *x,
                          const float *s, int N, int C, size_t L) {
  EC_ASSERT(N > 0 && C > 0);
  const size_t rows = (size_t)N * (size_t)C;
  if (ds) NN_CUDA_LAUNCH(nn_cuda_launch_modulate_bwd_ds(nn_cuda_stream(ctx), ds, dy, x, rows, L));
  if (dx) NN_CUDA_LAUNCH(nn_cuda_launch_modulate_bwd_dx(nn_cuda_stream(ctx), dx, dy, s, rows, L));
}

void nn_append_ones_fwd_cuda(nn_ctx *ctx, float *y, const float *x, int N, int C, size_t L) {
  EC_ASSERT(N > 0 && C > 0);
  NN_CUDA_LAUNCH(nn_cuda_launch_append_ones_fwd(nn_cuda_stream(ctx), y, x, (size_t)N,
                                                (size_t)C * L, L));
}

void nn_append_ones_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, int N, int C, size_t L) {
  EC_ASSERT(N > 0 && C > 0);
  if (!dx) return;
  NN_CUDA_LAUNCH(nn_cuda_launch_append_ones_bwd(nn_cuda_stream(ctx), dx, dy, (size_t)N,
                                                (size_t)C * L, L));
}

void nn_rows_axpby_cuda(nn_ctx *ctx, float *y, const float *a, const float *x, const float *b,
                        const float *z, int R, size_t M) {
  EC_ASSERT(R > 0);
  EC_ASSERT((b == NULL) == (z == NULL));
  NN_CUDA_LAUNCH(nn_cuda_launch_rows_axpby(nn_cuda_stream(ctx), y, a, x, b, z, (size_t)R, M));
}

void nn_scale_cuda(nn_ctx *ctx, float *y, const float *x, double alpha, size_t n) {
  NN_CUDA_LAUNCH(nn_cuda_launch_scale(nn_cuda_stream(ctx), y, x, (float)alpha, n));
}

void nn_acc_cuda(nn_ctx *ctx, float *y, const float *x, size_t n) {
  NN_CUDA_LAUNCH(nn_cuda_launch_acc(nn_cuda_stream(ctx), y, x, n));
}

/* ---- nn/norm.h ---- */

void nn_pixelnorm_fwd_cuda(nn_ctx *ctx, float *y, const float *x, int N, int C, size_t L) {
  EC_ASSERT(N > 0 && C > 0 && L > 0);
  EC_ASSERT(y != x);
  NN_CUDA_LAUNCH(nn_cuda_launch_pixelnorm_fwd(nn_cuda_stream(ctx), y, x, (size_t)N, (size_t)C, L,
                                              sqrt(1.0 / C)));
}

void nn_pixelnorm_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *x, int N, int C,
                           size_t L) {
  EC_ASSERT(N > 0 && C > 0 && L > 0);
  if (!dx) return;
  EC_ASSERT(dx != dy && dx != x);
  NN_CUDA_LAUNCH(nn_cuda_launch_pixelnorm_bwd(nn_cuda_stream(ctx), dx, dy, x, (size_t)N, (size_t)C,
                                              L, sqrt(1.0 / C)));
}

/* ---- casts ---- */

void nn_float_to_half_cuda(nn_ctx *ctx, uint16_t *dst, const float *src, size_t n) {
  EC_ASSERT((const void *)dst != (const void *)src || n == 0);
  NN_CUDA_LAUNCH(nn_cuda_launch_float_to_half(nn_cuda_stream(ctx), dst, src, n));
}

void nn_half_to_float_cuda(nn_ctx *ctx, float *dst, const uint16_t *src, size_t n) {
  EC_ASSERT((const void *)dst != (const void *)src || n == 0);
  NN_CUDA_LAUNCH(nn_cuda_launch_half_to_float(nn_cuda_stream(ctx), dst, src, n));
}
