/* Reference forms of nn/resize.h: TF1 bilinear and PyTorch's antialiased bicubic resizing,
 * float and double from resize.inc. (The metrics' preprocessing, not part of the U-Net.) */
#include "nn/resize.h"

#include "core/check.h"

int nn_resize_taps(int in, int out) {
  /* 2·support + 2 covers [int(c − s + 0.5), int(c + s + 0.5)) for any centre. */
  const double scale = (double)in / out, s = 2.0 * (scale > 1 ? scale : 1);
  return (int)(2 * s) + 2;
}

size_t nn_resize_bicubic_aa_workspace(int C, int H, int W, int OH, int OW) {
  const int a = nn_resize_taps(W, OW), b = nn_resize_taps(H, OH);
  return (size_t)C * H * OW + (size_t)(a > b ? a : b);
}

#define NN_REF_SRC "nn/ref/resize.inc"
#include "nn/ref/instantiate.h"
