/* Reference forms of nn/conv_any.h (general convolution forward with fused bias and ReLU) on
 * OpenBLAS GEMM, float and double from conv_any.inc.
 *
 * Per image, the output rows are cut into bands of `rows` rows, rows·OW ≈ NN_CONV_ANY_COLS
 * (whole rows, at least one); a band is lowered by im2col into a K × cols matrix, K = Cin·kh·kw,
 * row (ci·kh + i)·kw + j, column r·OW + ow holding x[ci, (oh0 + r)·sh − ph + i, ow·sw − pw + j]
 * (0 outside the image), and y_band = w (Cout × K) · col is written by the GEMM straight into y
 * (the band is contiguous in every output plane: leading dimension OH·OW). The epilogue (bias,
 * ReLU) then runs over the band. Workspace: K·rows·OW elements; none for a 1×1, stride-1,
 * unpadded convolution, which is one GEMM per image on x itself. */
#include "nn/conv_any.h"

#include <string.h>

#include "core/check.h"

/* Output positions lowered per GEMM (the same trade-off as NN_CONV_COLS in nn/ref/conv.c; a band
 * of whole rows, so up to OW − 1 fewer). */
#ifndef NN_CONV_ANY_COLS
#define NN_CONV_ANY_COLS 2048
#endif

static void geom_check(const nn_conv_geom *g) {
  EC_ASSERT(g != NULL);
  EC_ASSERT(g->kh >= 1 && g->kw >= 1 && g->sh >= 1 && g->sw >= 1 && g->ph >= 0 && g->pw >= 0);
}

int nn_conv_out_h(const nn_conv_geom *g, int H) {
  geom_check(g);
  EC_ASSERT(H > 0 && H + 2 * g->ph >= g->kh);
  return (H + 2 * g->ph - g->kh) / g->sh + 1;
}

int nn_conv_out_w(const nn_conv_geom *g, int W) {
  geom_check(g);
  EC_ASSERT(W > 0 && W + 2 * g->pw >= g->kw);
  return (W + 2 * g->pw - g->kw) / g->sw + 1;
}

static int conv_is_pointwise(const nn_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Output rows per band. */
static int conv_band_rows(int OH, int OW) {
  int rows = NN_CONV_ANY_COLS / OW;
  if (rows < 1) rows = 1;
  return rows < OH ? rows : OH;
}

size_t nn_conv2d_any_workspace(int Cin, int H, int W, const nn_conv_geom *g) {
  EC_ASSERT(Cin > 0);
  const int OH = nn_conv_out_h(g, H), OW = nn_conv_out_w(g, W);
  if (conv_is_pointwise(g)) return 0;
  return (size_t)Cin * g->kh * g->kw * (size_t)conv_band_rows(OH, OW) * OW;
}

#define NN_REF_SRC "nn/ref/conv_any.inc"
#include "nn/ref/instantiate.h"
