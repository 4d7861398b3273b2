/* Weighted sums of the reconstruction; see combine.h.
 *
 * The kernel keeps a register tile of KT outputs x 4 vectors of columns and streams the N inputs
 * through it: per input, 4 vector loads feed 4*KT multiply-adds, with the accumulators never
 * leaving registers (GCC/clang vector extensions; 64-byte vectors become zmm registers in the
 * AVX-512 clone and pairs of ymm in the AVX2 one). Each output element is still summed over i
 * in ascending order with one rounding per multiply and per add (no contraction into FMA:
 * -std=c11 turns it off), so results do not depend on the tiling, the clone or the columns a
 * thread was given. Columns that do not fill a tile take a scalar path with the same order. */
#include "combine.h"

#include <string.h>

enum { KT = 4 }; /* outputs per register tile */

typedef float vf __attribute__((vector_size(64)));   /* 16 floats */
typedef double vd __attribute__((vector_size(64)));  /* 8 doubles */
typedef float vf8 __attribute__((vector_size(32)));  /* 8 floats, widened to vd */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* float32: a tile is 64 columns (4 x 16). */
#define TF 64
static inline __attribute__((always_inline)) void tile_f32_kn(const float *w, int N, const float *in,
                                                              int64_t len, float *out, int k0,
                                                              const int KN, int64_t e0) {
  vf acc[KT][4];
  memset(acc, 0, sizeof acc);
  for (int i = 0; i < N; i++) {
    const float *x = in + (size_t)i * (size_t)len + (size_t)e0;
    vf x0, x1, x2, x3;
    memcpy(&x0, x, 64);
    memcpy(&x1, x + 16, 64);
    memcpy(&x2, x + 32, 64);
    memcpy(&x3, x + 48, 64);
    for (int k = 0; k < KN; k++) {
      float c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];
      acc[k][0] += c * x0;
      acc[k][1] += c * x1;
      acc[k][2] += c * x2;
      acc[k][3] += c * x3;
    }
  }
  for (int k = 0; k < KN; k++) memcpy(out + (size_t)(k0 + k) * (size_t)len + (size_t)e0, acc[k], sizeof acc[k]);
}

/* float64: a tile is 32 columns (4 x 8), inputs widened exactly. */
#define TD 32
static inline __attribute__((always_inline)) void tile_f64_kn(const double *w, int N, const float *in,
                                                              int64_t len, float *out, int k0,
                                                              const int KN, int64_t e0) {
  vd acc[KT][4];
  memset(acc, 0, sizeof acc);
  for (int i = 0; i < N; i++) {
    const float *x = in + (size_t)i * (size_t)len + (size_t)e0;
    vf8 f[4];
    memcpy(f, x, sizeof f);
    vd x0 = __builtin_convertvector(f[0], vd), x1 = __builtin_convertvector(f[1], vd);
    vd x2 = __builtin_convertvector(f[2], vd), x3 = __builtin_convertvector(f[3], vd);
    for (int k = 0; k < KN; k++) {
      double c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];
      acc[k][0] += c * x0;
      acc[k][1] += c * x1;
      acc[k][2] += c * x2;
      acc[k][3] += c * x3;
    }
  }
  for (int k = 0; k < KN; k++)
    for (int v = 0; v < 4; v++)
      for (int e = 0; e < 8; e++) out[(size_t)(k0 + k) * (size_t)len + (size_t)(e0 + v * 8 + e)] = (float)acc[k][v][e];
}

/* Dispatch on KN so each count is its own unrolled loop: K = 1 costs one multiply-add per
 * input element, not KT. */
CLONES static void tiles_f32(const float *w, int K, int N, const float *in, int64_t len, float *out,
                             int64_t e0, int64_t e1) {
  for (int64_t e = e0; e + TF <= e1; e += TF)
    for (int k0 = 0; k0 < K; k0 += KT) switch (K - k0 < KT ? K - k0 : KT) {
      case 1: tile_f32_kn(w, N, in, len, out, k0, 1, e); break;
      case 2: tile_f32_kn(w, N, in, len, out, k0, 2, e); break;
      case 3: tile_f32_kn(w, N, in, len, out, k0, 3, e); break;
      default: tile_f32_kn(w, N, in, len, out, k0, 4, e); break;
      }
}

CLONES static void tiles_f64(const double *w, int K, int N, const float *in, int64_t len, float *out,
                             int64_t e0, int64_t e1) {
  for (int64_t e = e0; e + TD <= e1; e += TD)
    for (int k0 = 0; k0 < K; k0 += KT) switch (K - k0 < KT ? K - k0 : KT) {
      case 1: tile_f64_kn(w, N, in, len, out, k0, 1, e); break;
      case 2: tile_f64_kn(w, N, in, len, out, k0, 2, e); break;
      case 3: tile_f64_kn(w, N, in, len, out, k0, 3, e); break;
      default: tile_f64_kn(w, N, in, len, out, k0, 4, e); break;
      }
}

void combine_f32(const float *w, int K, int N, const float *in, int64_t len, float *out, int64_t e0,
                 int64_t e1) {
  int64_t full = e0 + (e1 - e0) / TF * TF;
  tiles_f32(w, K, N, in, len, out, e0, full);
  for (int k = 0; k < K; k++) /* the columns left over, same summation order */
    for (int64_t e = full; e < e1; e++) {
      float a = 0;
      for (int i = 0; i < N; i++) a += w[(size_t)k * (size_t)N + (size_t)i] * in[(size_t)i * (size_t)len + (size_t)e];
      out[(size_t)k * (size_t)len + (size_t)e] = a;
    }
}

void combine_f64(const double *w, int K, int N, const float *in, int64_t len, float *out,
                 int64_t e0, int64_t e1) {
  int64_t full = e0 + (e1 - e0) / TD * TD;
  tiles_f64(w, K, N, in, len, out, e0, full);
  for (int k = 0; k < K; k++)
    for (int64_t e = full; e < e1; e++) {
      double a = 0;
      for (int i = 0; i < N; i++)
        a += w[(size_t)k * (size_t)N + (size_t)i] * (double)in[(size_t)i * (size_t)len + (size_t)e];
      out[(size_t)k * (size_t)len + (size_t)e] = (float)a;
    }
}
