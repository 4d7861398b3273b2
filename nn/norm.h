/* Normalisations with the reference's eps placement (edm2-spec.md §1.1, §1.7):
 * normalize(x) = x / (eps + ||x|| / sqrt(K)), K = elements per normalised slice, eps = 1e-4.
 * The norm is accumulated in double in every form (the reference accumulates float32 in
 * float32; the difference is far below the golden tolerances and makes the result independent
 * of the order of summation). */
#ifndef EDM2C_NN_NORM_H
#define EDM2C_NN_NORM_H

#include "nn/nn.h"

#define NN_NORM_DECLS(T, S)                                                                        \
  /* Pixel norm: for every (n, l) the C-vector x[n, :, l] is normalised (K = C).                   \
   * x, y: (N, C, L). Also normalises attention q/k/v per head with N = images·heads, C = Ch.      \
   * y may not alias x. */                                                                         \
  void nn_pixelnorm_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, int N, int C, size_t L);             \
  /* dx from dy and the forward's input x. OVERWRITES dx; dx may not alias dy or x. A zero         \
   * vector (norm 0) passes dy/eps, as PyTorch's gradient of the norm is 0 there. */                \
  void nn_pixelnorm_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, const T *x, int N, int C,          \
                               size_t L);                                                          \
                                                                                                   \
  /* Weight normalisation of a weight with `rows` output rows of `fan_in` elements each:           \
   * w_hat[i,:] = normalize(w[i,:]) · (g / sqrt(fan_in)), with g = *gain (a 0-dimensional          \
   * parameter, same memory space as w) or 1 when gain is NULL. The unit-RMS row is computed       \
   * first and then multiplied by the gain factor, as the reference does. OVERWRITES w_hat.        \
   * w: (rows, fan_in). */                                                                         \
  void nn_weightnorm_fwd_ref##S(nn_ctx *ctx, T *w_hat, const T *w, const T *gain, int rows,        \
                                int fan_in);                                                       \
  /* Gradients through the normalisation: dw ACCUMULATES, dgain (0-dim) ACCUMULATES; either may    \
   * be NULL (gain NULL implies no dgain). */                                                      \
  void nn_weightnorm_bwd_ref##S(nn_ctx *ctx, T *dw, T *dgain, const T *dw_hat, const T *w,         \
                                const T *gain, int rows, int fan_in);                              \
  /* Forced weight normalisation (training mode, before every use): w ← normalize(w), in place,    \
   * rows to norm ≈ sqrt(fan_in). */                                                               \
  void nn_weightnorm_force_ref##S(nn_ctx *ctx, T *w, int rows, int fan_in);

NN_DECLARE(NN_NORM_DECLS)

#endif
