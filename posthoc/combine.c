/* Weighted sums of the reconstruction; see combine.h. */
#include "combine.h"

#include <string.h>

/* Columns per tile (accumulators: KT x TILE, 4 KiB for float32) and outputs per tile. */
enum { TILE = 256, KT = 4 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* One tile: outputs k0 .. k0+KN-1, columns e0 .. e0+te-1, for a compile-time KN (1..KT): the
 * switch below instantiates each, so K = 1 costs one multiply-add per input element, not KT. */
#define DEFINE_TILE(NAME, WT, AT)                                                                  \
  static inline __attribute__((always_inline)) void NAME##_kn(const WT *w, int N, const float *in, \
                                                              int64_t len, float *out, int k0,     \
                                                              const int KN, int64_t e0, int te) {  \
    AT acc[KT][TILE];                                                                              \
    memset(acc, 0, sizeof acc);                                                                    \
    for (int i = 0; i < N; i++) {                                                                  \
      const float *x = in + (size_t)i * (size_t)len + (size_t)e0;                                  \
      for (int k = 0; k < KN; k++) {                                                               \
        AT c = (AT)w[(size_t)(k0 + k) * (size_t)N + (size_t)i];                                    \
        for (int e = 0; e < te; e++) acc[k][e] += c * (AT)x[e];                                    \
      }                                                                                            \
    }                                                                                              \
    for (int k = 0; k < KN; k++)                                                                   \
      for (int e = 0; e < te; e++) out[(size_t)(k0 + k) * (size_t)len + (size_t)(e0 + e)] = (float)acc[k][e]; \
  }                                                                                                \
  CLONES static void NAME(const WT *w, int N, const float *in, int64_t len, float *out, int k0,    \
                          int kn, int64_t e0, int te) {                                            \
    switch (kn) {                                                                                  \
    case 1: NAME##_kn(w, N, in, len, out, k0, 1, e0, te); break;                                   \
    case 2: NAME##_kn(w, N, in, len, out, k0, 2, e0, te); break;                                   \
    case 3: NAME##_kn(w, N, in, len, out, k0, 3, e0, te); break;                                   \
    default: NAME##_kn(w, N, in, len, out, k0, 4, e0, te); break;                                  \
    }                                                                                              \
  }

DEFINE_TILE(tile_f32, float, float)
DEFINE_TILE(tile_f64, double, double)

void combine_f32(const float *w, int K, int N, const float *in, int64_t len, float *out, int64_t e0,
                 int64_t e1) {
  for (int64_t e = e0; e < e1; e += TILE) {
    int te = (int)(e1 - e < TILE ? e1 - e : TILE);
    for (int k0 = 0; k0 < K; k0 += KT) tile_f32(w, N, in, len, out, k0, K - k0 < KT ? K - k0 : KT, e, te);
  }
}

void combine_f64(const double *w, int K, int N, const float *in, int64_t len, float *out,
                 int64_t e0, int64_t e1) {
  for (int64_t e = e0; e < e1; e += TILE) {
    int te = (int)(e1 - e < TILE ? e1 - e : TILE);
    for (int k0 = 0; k0 < K; k0 += KT) tile_f64(w, N, in, len, out, k0, K - k0 < KT ? K - k0 : KT, e, te);
  }
}
