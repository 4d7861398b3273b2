/* Reference forms of nn/attn.h: multi-head cosine attention, float and double from attn.inc.
 *
 * Layout of `saved` (private to the backends, the same in every form): q̂, k̂, v̂ (each
 * N × heads × Ch × L, normalised, in that order), then P (N × heads × L × L, softmax over the
 * last index). The backward's workspace is one head's dP (L × L) and dq̂, dk̂, dv̂ (3 × Ch × L). */
#include "nn/attn.h"

#include "core/check.h"

size_t nn_attn_saved_size(int N, int heads, int Ch, size_t L) {
  EC_ASSERT(N > 0 && heads > 0 && Ch > 0 && L > 0);
  return (size_t)N * heads * (3 * (size_t)Ch * L + L * L);
}

size_t nn_attn_workspace(int N, int heads, int Ch, size_t L) {
  EC_ASSERT(N > 0 && heads > 0 && Ch > 0 && L > 0);
  return L * L + 3 * (size_t)Ch * L;
}

#define NN_REF_SRC "nn/ref/attn.inc"
#include "nn/ref/instantiate.h"
