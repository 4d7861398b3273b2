/* The exact GELU (PyTorch's nn.GELU(), approximate='none'), forward only:
 *   y = 0.5 · x · (1 + erf(x / sqrt(2))),
 * elementwise over n values, erf of the element type (erff for float). OVERWRITES y, which may
 * be x (in place). No workspace. */
#ifndef EDM2C_NN_GELU_H
#define EDM2C_NN_GELU_H

#include <stddef.h>

#include "nn/nn.h"

#define NN_GELU_DECLS(T, S) void nn_gelu_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, size_t n);

NN_DECLARE(NN_GELU_DECLS)

#endif
