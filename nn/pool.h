/* Pooling for the metrics' feature networks (Inception-v3), forward only.
 *
 * max:     y = the maximum over the k_h×k_w window at stride s, padding positions excluded (as if
 *          padded with −inf, PyTorch's MaxPool2d and TF's SAME max pool). Inception uses 3×3
 *          stride 2 VALID (p = 0) and, in FIDInceptionE_2 (Mixed_7c), 3×3 stride 1 pad 1.
 * avg:     y = the mean over the window; with count_include_pad = 0 the divisor counts only the
 *          in-image positions (the FID variant, TF's SAME average pool: 3×3 stride 1 pad 1 in
 *          FIDInceptionA/C/E_1), with 1 it is kh·kw (PyTorch's default). Summed in double.
 * global:  y (N, C) = the mean over all H·W positions of each channel (pool_3), summed in double.
 * Shapes: x (N, C, H, W) → y (N, C, OH, OW) with OH, OW as in nn/conv_any.h (nn_conv_out_h/w).
 * ystride: elements between consecutive images of y (0 = dense C·OH·OW), to write into a channel
 * slice of a concatenation. All OVERWRITE y, which must not overlap x. No workspace. */
#ifndef EDM2C_NN_POOL_H
#define EDM2C_NN_POOL_H

#include <stddef.h>

#include "nn/conv_any.h"
#include "nn/nn.h"

#define NN_POOL_DECLS(T, S)                                                                        \
  void nn_maxpool2d_ref##S(nn_ctx *ctx, T *y, size_t ystride, const T *x, int N, int C, int H,     \
                           int W, const nn_conv_geom *g);                                          \
  void nn_avgpool2d_ref##S(nn_ctx *ctx, T *y, size_t ystride, const T *x, int N, int C, int H,     \
                           int W, const nn_conv_geom *g, int count_include_pad);                   \
  void nn_global_avgpool_ref##S(nn_ctx *ctx, T *y, const T *x, int N, int C, int H, int W);

NN_DECLARE(NN_POOL_DECLS)

#endif
