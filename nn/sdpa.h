/* Multi-head softmax self-attention of a ViT (plain scaled dot-product, no normalisation of q and
 * k: NOT the EDM2 cosine attention of nn/attn.h), token-major, forward only:
 *   qkv: (N, L, 3·heads·Ch), each token's row laid out as nn.Linear(C, 3C)'s output reshaped to
 *        (3, heads, Ch): element (s·heads + h)·Ch + c is head h, channel c of s = 0 query, 1 key,
 *        2 value (timm / DINOv2 `qkv(x).reshape(B, L, 3, heads, Ch)`);
 *   P = softmax over j of scale · Σ_c q[i, c] · k[j, c]   (scale: DINOv2 uses 1/sqrt(Ch));
 *   y[n, i, h·Ch + c] = Σ_j P[i, j] · v[j, c];  y: (N, L, heads·Ch) (heads concatenated, the
 *        projection's input).
 * Per (image, head): one GEMM for the logits, a row softmax (max subtracted, sum in double), one
 * GEMM into y. OVERWRITES y, which must not overlap qkv; ws: nn_sdpa_workspace() elements. */
#ifndef EDM2C_NN_SDPA_H
#define EDM2C_NN_SDPA_H

#include <stddef.h>

#include "nn/nn.h"

/* Scratch elements of nn_sdpa_fwd: L·L (one head's probabilities). */
size_t nn_sdpa_workspace(size_t L);

#define NN_SDPA_DECLS(T, S)                                                                        \
  void nn_sdpa_fwd_ref##S(nn_ctx *ctx, T *y, const T *qkv, int N, int heads, int Ch, size_t L,     \
                          double scale, T *ws);

NN_DECLARE(NN_SDPA_DECLS)

#endif
