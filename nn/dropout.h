/* Inverted dropout with masks from a counter-based RNG (core/rng.h): element i (its index in the
 * whole tensor, plus `offset`) is dropped when ec_rng_uniform(seed, offset + i) < p; kept
 * elements are scaled by 1/(1-p). The same (seed, offset) gives the same mask on every backend
 * and in the backward, so no mask is stored. p = 0 copies. */
#ifndef EDM2C_NN_DROPOUT_H
#define EDM2C_NN_DROPOUT_H

#include "nn/nn.h"

#define NN_DROPOUT_DECLS(T, S)                                                                     \
  /* OVERWRITES y; y may alias x. 0 <= p < 1. */                                                   \
  void nn_dropout_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, size_t n, double p, uint64_t seed,     \
                             uint64_t offset);                                                     \
  /* dx = dy · mask / (1-p). OVERWRITES dx; dx may alias dy. */                                    \
  void nn_dropout_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, size_t n, double p, uint64_t seed,   \
                             uint64_t offset);

NN_DECLARE(NN_DROPOUT_DECLS)

#endif
