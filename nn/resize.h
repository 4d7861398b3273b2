/* Image resizing for the metrics' feature networks (metrics-reference.md §1.1-1.2), on float
 * images of any size (values as given, e.g. [0, 255]; no clamping, no quantisation).
 *
 * tf_bilinear: TF1's legacy tf.image.resize_bilinear(align_corners=False), which EDM2's FID
 *   detector emulates: src = dst · (in/out) with NO half-pixel offset, top = floor(src),
 *   bottom = min(top + 1, in − 1), separable lerps, no antialiasing (an aliased downsample for
 *   512 → 299). Computed in T as TF does: scale = in/out, lerp weights src − floor(src).
 * bicubic_aa: PyTorch's F.interpolate(mode='bicubic', antialias=True, align_corners=False), the
 *   DINOv2 preprocessing: the separable kernel ported from Pillow, cubic a = −0.5, support
 *   2·max(scale, 1), centre scale·(i + 0.5), taps [int(centre − support + 0.5),
 *   int(centre + support + 0.5)) clipped to the image, weights filter((j − centre + 0.5) /
 *   max(scale, 1)) normalised to sum 1; rows first, then columns. Weights in double.
 * Shapes: x (N, C, H, W) → y (N, C, OH, OW). OVERWRITE y. bicubic_aa needs a scratch of
 * nn_resize_bicubic_aa_workspace(C, H, W, OH, OW) elements (the horizontally resized image and
 * one axis's tap weights). */
#ifndef EDM2C_NN_RESIZE_H
#define EDM2C_NN_RESIZE_H

#include <stddef.h>

#include "nn/nn.h"

#define NN_RESIZE_DECLS(T, S)                                                                      \
  void nn_resize_tf_bilinear_ref##S(nn_ctx *ctx, T *y, int OH, int OW, const T *x, int N, int C,  \
                                     int H, int W);                                                \
  void nn_resize_bicubic_aa_ref##S(nn_ctx *ctx, T *y, int OH, int OW, const T *x, int N, int C,   \
                                    int H, int W, T *ws);

NN_DECLARE(NN_RESIZE_DECLS)

size_t nn_resize_bicubic_aa_workspace(int C, int H, int W, int OH, int OW);
/* The most taps one output sample of bicubic_aa reads along an axis of `in` → `out` samples. */
int nn_resize_taps(int in, int out);

#endif
