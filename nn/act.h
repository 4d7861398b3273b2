/* Elementwise and per-channel ops of the magnitude-preserving network (edm2-spec.md §1.3–1.5,
 * §2, §3.5): mp_silu, mp_sum, mp_cat, clipping, the conditioning modulation, the constant-one
 * input channel, per-row scaling and accumulation.
 * Shapes: see nn/nn.h for the letters. `n` is a plain element count. */
#ifndef EDM2C_NN_ACT_H
#define EDM2C_NN_ACT_H

#include "nn/nn.h"

/* The divisor of mp_silu: sqrt(E[silu(z)^2]) for z ~ N(0, 1), rounded as the reference does. */
#define NN_MP_SILU_DIV 0.596

#define NN_ACT_DECLS(T, S)                                                                         \
  /* y = silu(x) / 0.596 (a division, as the reference computes it). y may alias x. */          \
  void nn_mp_silu_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, size_t n);                             \
  /* dx = dy · d/dx[silu(x)/0.596]. OVERWRITES dx; dx may alias dy (not x). */                     \
  void nn_mp_silu_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, const T *x, size_t n);               \
                                                                                                   \
  /* y = lerp(a, b, t) / sqrt((1-t)^2 + t^2). y may alias a or b. */                               \
  void nn_mp_sum_fwd_ref##S(nn_ctx *ctx, T *y, const T *a, const T *b, double t, size_t n);        \
  /* da = dy·(1-t)/s, db = dy·t/s with s = sqrt((1-t)^2 + t^2). OVERWRITES da and db (either may  \
   * be NULL; da may alias dy, db may not alias dy unless da is NULL). */                          \
  void nn_mp_sum_bwd_ref##S(nn_ctx *ctx, T *da, T *db, const T *dy, double t, size_t n);           \
                                                                                                   \
  /* y: (N, Ca+Cb, L) = concat over channels of (wa·a, wb·b), a: (N, Ca, L) first, b: (N, Cb, L);   \
   * C = sqrt((Ca+Cb)/((1-t)^2+t^2)), wa = C(1-t)/sqrt(Ca), wb = C·t/sqrt(Cb). */                   \
  void nn_mp_cat_fwd_ref##S(nn_ctx *ctx, T *y, const T *a, const T *b, int N, int Ca, int Cb,      \
                            size_t L, double t);                                                   \
  /* da = wa·dy[:, :Ca], db = wb·dy[:, Ca:]. OVERWRITES da and db (either may be NULL). */          \
  void nn_mp_cat_bwd_ref##S(nn_ctx *ctx, T *da, T *db, const T *dy, int N, int Ca, int Cb,         \
                            size_t L, double t);                                                   \
                                                                                                   \
  /* y = clamp(x, -limit, limit). y may alias x. */                                                \
  void nn_clip_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, double limit, size_t n);                  \
  /* dx = dy where |y| < limit, else 0, from the clipped output y (an input of exactly ±limit,    \
   * which PyTorch lets through, has measure zero). OVERWRITES dx; dx may alias dy. */            \
  void nn_clip_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, const T *y, double limit, size_t n);    \
                                                                                                   \
  /* The block's conditioning: y[n,c,l] = x[n,c,l] · (1 + s[n,c]); x, y: (N, C, L), s: (N, C).      \
   * y may alias x. */                                                                             \
  void nn_modulate_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, const T *s, int N, int C, size_t L);  \
  /* dx = dy·(1+s) (OVERWRITES; may alias dy), ds[n,c] = Σ_l dy·x (OVERWRITES). */                  \
  void nn_modulate_bwd_ref##S(nn_ctx *ctx, T *dx, T *ds, const T *dy, const T *x, const T *s,      \
                              int N, int C, size_t L);                                             \
                                                                                                   \
  /* y: (N, C+1, L) = x: (N, C, L) with a constant-one channel appended last. */                   \
  void nn_append_ones_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, int N, int C, size_t L);           \
  /* dx = dy[:, :C]. OVERWRITES dx. */                                                             \
  void nn_append_ones_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, int N, int C, size_t L);         \
                                                                                                   \
  /* Per-row affine combination: y[r,:] = a[r]·x[r,:] + b[r]·z[r,:] over R rows of M elements;     \
   * b and z may both be NULL (y = a·x). y may alias x or z. Used for EDM preconditioning:         \
   * c_in·x, c_skip·x + c_out·F, and its gradient c_out·dD. */                                     \
  void nn_rows_axpby_ref##S(nn_ctx *ctx, T *y, const T *a, const T *x, const T *b, const T *z,     \
                            int R, size_t M);                                                      \
                                                                                                   \
  /* y = alpha·x. y may alias x. */                                                                \
  void nn_scale_ref##S(nn_ctx *ctx, T *y, const T *x, double alpha, size_t n);                     \
  /* y += x (gradient accumulation where a tensor feeds two consumers). ACCUMULATES into y. */     \
  void nn_acc_ref##S(nn_ctx *ctx, T *y, const T *x, size_t n);

NN_DECLARE(NN_ACT_DECLS)

#endif
