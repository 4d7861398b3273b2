/* Convolutions (3×3 and 1×1, stride 1, zero padding k/2, no bias) and linear layers, on
 * OpenBLAS GEMM (edm2-spec.md §1.7). Weights arrive already normalised and scaled (nn/norm.h).
 * The 3×3 form lowers to im2col + GEMM; the 1×1 form and linear layers are one GEMM each. */
#ifndef EDM2C_NN_CONV_H
#define EDM2C_NN_CONV_H

#include "nn/nn.h"

/* Scratch elements needed by nn_conv2d_fwd/bwd for these sizes (0 for k = 1). */
size_t nn_conv2d_workspace(int N, int Cin, int Cout, int H, int W, int k);

#define NN_CONV_DECLS(T, S)                                                                        \
  /* y: (N, Cout, H, W) = x: (N, Cin, H, W) cross-correlated with w: (Cout, Cin, k, k), k ∈ {1, 3}.\
   * OVERWRITES y; ws: nn_conv2d_workspace() elements. */                                          \
  void nn_conv2d_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, const T *w, int N, int Cin, int Cout,   \
                            int H, int W, int k, T *ws);                                           \
  /* dx: (N, Cin, H, W) OVERWRITES; dw: (Cout, Cin, k, k) ACCUMULATES; either may be NULL.         \
   * dy: (N, Cout, H, W); x and w as in the forward. */                                            \
  void nn_conv2d_bwd_ref##S(nn_ctx *ctx, T *dx, T *dw, const T *dy, const T *x, const T *w, int N, \
                            int Cin, int Cout, int H, int W, int k, T *ws);                        \
                                                                                                   \
  /* y: (B, out) = x: (B, in) · wᵀ, w: (out, in). OVERWRITES y. */                                 \
  void nn_linear_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, const T *w, int B, int in, int out);    \
  /* dx: (B, in) = dy · w OVERWRITES; dw: (out, in) += dyᵀ · x ACCUMULATES; either may be NULL. */ \
  void nn_linear_bwd_ref##S(nn_ctx *ctx, T *dx, T *dw, const T *dy, const T *x, const T *w, int B, \
                            int in, int out);

NN_DECLARE(NN_CONV_DECLS)

#endif
