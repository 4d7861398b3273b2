/* Reference forms of nn/conv.h: 3×3 and 1×1 convolutions and linear layers on OpenBLAS GEMM,
 * float and double from conv.inc.
 *
 * 3×3 algorithm (forward; the backward reuses it, see conv.inc). The output positions are cut into
 * blocks of about NN_CONV_COLS columns; each block is lowered by im2col into a (9·Cin) × cols
 * matrix and multiplied once, y_block (Cout × cols) = w (Cout × 9·Cin) · col:
 *   - an image with H·W >= NN_CONV_COLS is cut into bands of whole rows; the GEMM writes its
 *     output straight into y (leading dimension H·W);
 *   - smaller images are lowered `nb` at a time side by side, so that the GEMM's N dimension is
 *     nb·H·W and not a tiny H·W; the product (Cout × nb·H·W, image-major inside each row) goes to
 *     a buffer and is copied to the NCHW output afterwards (a copy of the output's size, against
 *     9·Cin multiply-adds per output element).
 * Workspace (elements), with Cmax = max(Cin, Cout) and cols = nb·rows·W for the plan below:
 *   9·Cmax·cols        im2col matrix (of x in the forward and for dw, of dy for dx)
 * + Cmax·cols          output/gather buffer, only when nb > 1
 * + 9·Cin·Cout         the flipped, transposed weight of the dx pass
 * The 1×1 form and the linear layers need none. */
#include "nn/conv.h"

#include <string.h>

#include "core/check.h"

/* Columns (output positions) lowered per GEMM: wide enough for OpenBLAS to run near its peak
 * and to split the work between threads, small enough that a block's im2col matrix stays within
 * a few MiB (2304 rows × 1024 columns × 4 bytes = 9 MiB at Cin = 256). 512, 2048 and 4096 measured
 * within noise of 1024 on 4×4 to 64×64 images; 256 was up to 20 % slower. -DNN_CONV_COLS=...
 * changes it for experiments (the workspace size follows). */
#ifndef NN_CONV_COLS
#define NN_CONV_COLS 1024
#endif

typedef struct {
  int nb;      /* images per block (> 1 only when one image has fewer than NN_CONV_COLS positions) */
  int rows;    /* image rows per block (H when nb > 1) */
  size_t cols; /* the widest block: nb·rows·W */
} conv_plan;

static conv_plan conv_plan_make(int N, int H, int W) {
  conv_plan p;
  const size_t L = (size_t)H * W;
  if (L >= NN_CONV_COLS) {
    p.nb = 1;
    p.rows = NN_CONV_COLS / W > 0 ? NN_CONV_COLS / W : 1;
    if (p.rows > H) p.rows = H;
  } else {
    size_t nb = (NN_CONV_COLS + L - 1) / L;
    p.nb = nb < (size_t)N ? (int)nb : N;
    p.rows = H;
  }
  p.cols = (size_t)p.nb * p.rows * W;
  return p;
}

size_t nn_conv2d_workspace(int N, int Cin, int Cout, int H, int W, int k) {
  EC_ASSERT(N > 0 && Cin > 0 && Cout > 0 && H > 0 && W > 0);
  EC_ASSERT(k == 1 || k == 3);
  if (k == 1) return 0;
  const conv_plan p = conv_plan_make(N, H, W);
  const size_t cmax = (size_t)(Cin > Cout ? Cin : Cout);
  return 9 * cmax * p.cols + (p.nb > 1 ? cmax * p.cols : 0) + 9 * (size_t)Cin * Cout;
}

#define NN_REF_SRC "nn/ref/conv.inc"
#include "nn/ref/instantiate.h"
