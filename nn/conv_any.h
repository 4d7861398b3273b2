/* General 2-D convolution forward (any kernel kh×kw, stride sh×sw, zero padding ph×pw, no bias in
 * the convolution itself) with an optional fused epilogue: a per-output-channel bias and a ReLU.
 * This is the convolution of the metrics' feature networks (Inception-v3: 1×1, 3×3, 5×5, 1×3, 3×1,
 * 1×7, 7×1, strides 1 and 2, VALID or symmetric "same" padding), where BatchNorm is folded into the
 * convolution at load time: y = relu(conv(x, w·s) + b). Forward only.
 *
 * Output size: OH = (H + 2·ph − kh)/sh + 1, OW = (W + 2·pw − kw)/sw + 1 (floor; both must be ≥ 1).
 * Algorithm (nn/ref/conv_any.c): per image, the output rows are cut into bands of about
 * NN_CONV_ANY_COLS positions; each band is lowered by im2col into a (Cin·kh·kw) × cols matrix and
 * multiplied once, y_band (Cout × cols) = w (Cout × Cin·kh·kw) · col, the GEMM writing straight into
 * y; then the epilogue runs over the band while it is in cache. A 1×1, stride-1, unpadded
 * convolution is one GEMM per image on x itself and needs no workspace. */
#ifndef EDM2C_NN_CONV_ANY_H
#define EDM2C_NN_CONV_ANY_H

#include <stddef.h>

#include "nn/nn.h"

/* The geometry of one convolution (or pooling window). */
typedef struct {
  int kh, kw; /* kernel height and width, ≥ 1 */
  int sh, sw; /* strides, ≥ 1 */
  int ph, pw; /* zero padding on each side (top = bottom = ph, left = right = pw), ≥ 0 */
} nn_conv_geom;

/* Epilogue flags of nn_conv2d_any_fwd. */
enum { NN_CONV_RELU = 1 };

/* Output height and width of `g` on an H×W input (aborts if the window does not fit). */
int nn_conv_out_h(const nn_conv_geom *g, int H);
int nn_conv_out_w(const nn_conv_geom *g, int W);

/* Scratch elements needed by nn_conv2d_any_fwd for these sizes (0 for 1×1, stride 1, no padding).
 * Independent of N and Cout. */
size_t nn_conv2d_any_workspace(int Cin, int H, int W, const nn_conv_geom *g);

#define NN_CONV_ANY_DECLS(T, S)                                                                    \
  /* y: (N, Cout, OH, OW) = x: (N, Cin, H, W) cross-correlated with w: (Cout, Cin, kh, kw), then  \
   * + bias[co] (bias: (Cout), or NULL for none), then max(·, 0) if flags has NN_CONV_RELU.        \
   * ystride: elements between consecutive images of y (0 means dense, Cout·OH·OW); a larger      \
   * stride writes into a channel slice of a wider tensor (a concatenation). OVERWRITES y, which   \
   * must not overlap x; ws: nn_conv2d_any_workspace() elements (may be NULL when that is 0). */   \
  void nn_conv2d_any_fwd_ref##S(nn_ctx *ctx, T *y, size_t ystride, const T *x, const T *w,        \
                                const T *bias, int N, int Cin, int Cout, int H, int W,             \
                                const nn_conv_geom *g, int flags, T *ws);

NN_DECLARE(NN_CONV_ANY_DECLS)

#endif
