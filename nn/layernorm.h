/* Layer normalisation over the channels of each row (a transformer's token), forward only:
 *   y[b, c] = (x[b, c] − mean_b) / sqrt(var_b + eps) · w[c] + bias[c],
 * mean_b and the biased variance var_b over the C channels of row b (two passes, summed in
 * double), as PyTorch's nn.LayerNorm (DINOv2: eps 1e-6). w and bias may be NULL (1 and 0).
 * Shapes: x, y (B, C), w, bias (C). OVERWRITES y, which may be x (in place). No workspace. */
#ifndef EDM2C_NN_LAYERNORM_H
#define EDM2C_NN_LAYERNORM_H

#include <stddef.h>

#include "nn/nn.h"

#define NN_LAYERNORM_DECLS(T, S)                                                                   \
  void nn_layernorm_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, const T *w, const T *bias, size_t B, \
                               int C, double eps);

NN_DECLARE(NN_LAYERNORM_DECLS)

#endif
