/* Token-major (row-major (B, C)) pieces of a transformer block, forward only:
 *
 * linear_bias: y (B, out) = x (B, in) · wᵀ + bias, w (out, in) as PyTorch's nn.Linear stores it,
 *              bias (out) or NULL; one GEMM (OpenBLAS) onto rows pre-filled with the bias.
 *              OVERWRITES y, which must not overlap x.
 * rows_scale_acc: y (B, C) += g[c] · x[b, c] (a residual branch through DINOv2's LayerScale
 *              gamma; g NULL means 1). ACCUMULATES into y, which must not overlap x.
 * No workspace. */
#ifndef EDM2C_NN_LINEAR_H
#define EDM2C_NN_LINEAR_H

#include <stddef.h>

#include "nn/nn.h"

#define NN_LINEAR_DECLS(T, S)                                                                      \
  void nn_linear_bias_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, const T *w, const T *bias,         \
                                 int B, int in, int out);                                          \
  void nn_rows_scale_acc_ref##S(nn_ctx *ctx, T *y, const T *x, const T *g, size_t B, int C);

NN_DECLARE(NN_LINEAR_DECLS)

#endif
