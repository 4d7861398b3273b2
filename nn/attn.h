/* Multi-head cosine self-attention of the EDM2 block (edm2-spec.md §2, step 9), from the output
 * of the 1×1 qkv convolution to the input of the projection:
 *   qkv: (N, 3·heads·Ch, L) with the reference's INTERLEAVED channel layout: channel
 *        (h·Ch + c)·3 + s holds head h, channel c of s = 0 query, 1 key, 2 value;
 *   q, k, v are pixel-normalised over their Ch channels (per image, head, token; eps 1e-4);
 *   logits[i,j] = Σ_c q[c,i] · (k[c,j] / sqrt(Ch)); P = softmax over j (keys);
 *   y[n, h·Ch + c, i] = Σ_j P[i,j] · v[c,j];  y: (N, heads·Ch, L).
 * The forward keeps, in `saved`, what the backward needs (normalised q, k, v and P). */
#ifndef EDM2C_NN_ATTN_H
#define EDM2C_NN_ATTN_H

#include "nn/nn.h"

/* Elements of `saved`: 3·N·heads·Ch·L (normalised q, k, v) + N·heads·L·L (probabilities). */
size_t nn_attn_saved_size(int N, int heads, int Ch, size_t L);
/* Scratch elements of the forward and backward. */
size_t nn_attn_workspace(int N, int heads, int Ch, size_t L);

#define NN_ATTN_DECLS(T, S)                                                                        \
  /* OVERWRITES y and saved. ws: nn_attn_workspace() elements. */                                  \
  void nn_attn_fwd_ref##S(nn_ctx *ctx, T *y, T *saved, const T *qkv, int N, int heads, int Ch,     \
                          size_t L, T *ws);                                                        \
  /* dqkv: (N, 3·heads·Ch, L), interleaved like qkv. OVERWRITES dqkv. `saved` is the forward's,    \
   * qkv the forward's input. */                                                                   \
  void nn_attn_bwd_ref##S(nn_ctx *ctx, T *dqkv, const T *dy, const T *saved, const T *qkv, int N,  \
                          int heads, int Ch, size_t L, T *ws);

NN_DECLARE(NN_ATTN_DECLS)

#endif
