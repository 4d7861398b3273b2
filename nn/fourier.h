/* Magnitude-preserving Fourier features (edm2-spec.md §1.6): y[b, i] = sqrt(2) · cos(a[b] ·
 * freqs[i] + phases[i]). The inputs (noise levels) are never differentiated, so there is no
 * backward. */
#ifndef EDM2C_NN_FOURIER_H
#define EDM2C_NN_FOURIER_H

#include "nn/nn.h"

#define NN_FOURIER_DECLS(T, S)                                                                     \
  /* y: (B, C) from a: (B), freqs, phases: (C). OVERWRITES y. */                                   \
  void nn_fourier_fwd_ref##S(nn_ctx *ctx, T *y, const T *a, const T *freqs, const T *phases, int B,\
                             int C);

NN_DECLARE(NN_FOURIER_DECLS)

#endif
