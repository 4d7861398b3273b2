/* 2× resampling with the [1,1] filter (edm2-spec.md §1.2): down = exact 2×2 average pooling,
 * up = nearest-neighbour (each pixel copied to a 2×2 block). H and W are the INPUT's sizes. */
#ifndef EDM2C_NN_RESAMPLE_H
#define EDM2C_NN_RESAMPLE_H

#include "nn/nn.h"

#define NN_RESAMPLE_DECLS(T, S)                                                                    \
  /* y: (N, C, H/2, W/2) from x: (N, C, H, W); H, W even. OVERWRITES y. */                         \
  void nn_down2_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, int N, int C, int H, int W);             \
  /* dx: (N, C, H, W) from dy: (N, C, H/2, W/2). OVERWRITES dx. */                                 \
  void nn_down2_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, int N, int C, int H, int W);           \
  /* y: (N, C, 2H, 2W) from x: (N, C, H, W). OVERWRITES y. */                                      \
  void nn_up2_fwd_ref##S(nn_ctx *ctx, T *y, const T *x, int N, int C, int H, int W);               \
  /* dx: (N, C, H, W) = sum of dy over each 2×2 block. OVERWRITES dx. */                           \
  void nn_up2_bwd_ref##S(nn_ctx *ctx, T *dx, const T *dy, int N, int C, int H, int W);

NN_DECLARE(NN_RESAMPLE_DECLS)

#endif
