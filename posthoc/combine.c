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

#include "core/half.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

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

/* ---- float16 inputs ------------------------------------------------------------------------
 * The tile code is the same as above with the 4 vector loads replaced by loads of 16 halves
 * converted to floats. One body, instantiated per instruction set by LOAD16. */

#define H_TILE(NAME, ATTR, LOAD16)                                                                  \
  ATTR static inline void NAME##_f32_kn(const float *w, int N, const uint16_t *in, int64_t len,     \
                                        float *out, int k0, const int KN, int64_t e0) {             \
    vf acc[KT][4];                                                                                  \
    memset(acc, 0, sizeof acc);                                                                     \
    for (int i = 0; i < N; i++) {                                                                   \
      const uint16_t *x = in + (size_t)i * (size_t)len + (size_t)e0;                                \
      vf x0, x1, x2, x3;                                                                            \
      LOAD16(x0, x);                                                                                \
      LOAD16(x1, x + 16);                                                                           \
      LOAD16(x2, x + 32);                                                                           \
      LOAD16(x3, x + 48);                                                                           \
      for (int k = 0; k < KN; k++) {                                                                \
        float c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];                                      \
        acc[k][0] += c * x0;                                                                        \
        acc[k][1] += c * x1;                                                                        \
        acc[k][2] += c * x2;                                                                        \
        acc[k][3] += c * x3;                                                                        \
      }                                                                                             \
    }                                                                                               \
    for (int k = 0; k < KN; k++)                                                                    \
      memcpy(out + (size_t)(k0 + k) * (size_t)len + (size_t)e0, acc[k], sizeof acc[k]);             \
  }                                                                                                 \
  ATTR static inline void NAME##_f64_kn(const double *w, int N, const uint16_t *in, int64_t len,    \
                                        float *out, int k0, const int KN, int64_t e0) {             \
    vd acc[KT][4];                                                                                  \
    memset(acc, 0, sizeof acc);                                                                     \
    for (int i = 0; i < N; i++) {                                                                   \
      const uint16_t *x = in + (size_t)i * (size_t)len + (size_t)e0;                                \
      vf f0, f1;                                                                                    \
      LOAD16(f0, x);                                                                                \
      LOAD16(f1, x + 16);                                                                           \
      vf8 h[4];                                                                                     \
      memcpy(&h[0], &f0, 64);                                                                       \
      memcpy(&h[2], &f1, 64);                                                                       \
      vd x0 = __builtin_convertvector(h[0], vd), x1 = __builtin_convertvector(h[1], vd);           \
      vd x2 = __builtin_convertvector(h[2], vd), x3 = __builtin_convertvector(h[3], vd);           \
      for (int k = 0; k < KN; k++) {                                                                \
        double c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];                                     \
        acc[k][0] += c * x0;                                                                        \
        acc[k][1] += c * x1;                                                                        \
        acc[k][2] += c * x2;                                                                        \
        acc[k][3] += c * x3;                                                                        \
      }                                                                                             \
    }                                                                                               \
    for (int k = 0; k < KN; k++)                                                                    \
      for (int v = 0; v < 4; v++)                                                                   \
        for (int e = 0; e < 8; e++)                                                                 \
          out[(size_t)(k0 + k) * (size_t)len + (size_t)(e0 + v * 8 + e)] = (float)acc[k][v][e];     \
  }                                                                                                 \
  ATTR static void NAME##_f32(const float *w, int K, int N, const uint16_t *in, int64_t len,        \
                              float *out, int64_t e0, int64_t e1) {                                 \
    for (int64_t e = e0; e + TF <= e1; e += TF)                                                     \
      for (int k0 = 0; k0 < K; k0 += KT) switch (K - k0 < KT ? K - k0 : KT) {                       \
        case 1: NAME##_f32_kn(w, N, in, len, out, k0, 1, e); break;                                 \
        case 2: NAME##_f32_kn(w, N, in, len, out, k0, 2, e); break;                                 \
        case 3: NAME##_f32_kn(w, N, in, len, out, k0, 3, e); break;                                 \
        default: NAME##_f32_kn(w, N, in, len, out, k0, 4, e); break;                                \
        }                                                                                           \
  }                                                                                                 \
  ATTR static void NAME##_f64(const double *w, int K, int N, const uint16_t *in, int64_t len,       \
                              float *out, int64_t e0, int64_t e1) {                                 \
    for (int64_t e = e0; e + TD <= e1; e += TD)                                                     \
      for (int k0 = 0; k0 < K; k0 += KT) switch (K - k0 < KT ? K - k0 : KT) {                       \
        case 1: NAME##_f64_kn(w, N, in, len, out, k0, 1, e); break;                                 \
        case 2: NAME##_f64_kn(w, N, in, len, out, k0, 2, e); break;                                 \
        case 3: NAME##_f64_kn(w, N, in, len, out, k0, 3, e); break;                                 \
        default: NAME##_f64_kn(w, N, in, len, out, k0, 4, e); break;                                \
        }                                                                                           \
  }

/* The portable version converts 16 halves with core/half.c (exact). */
#define LOAD16_PORTABLE(dst, p)                                                                     \
  do {                                                                                              \
    float t_[16];                                                                                   \
    for (int q_ = 0; q_ < 16; q_++) t_[q_] = ec_half_to_float((p)[q_]);                             \
    memcpy(&(dst), t_, 64);                                                                         \
  } while (0)
H_TILE(htile_portable, , LOAD16_PORTABLE)

#if defined(__x86_64__) && defined(__GNUC__)
#define LOAD16_AVX512(dst, p)                                                                       \
  do {                                                                                              \
    __m512 f_ = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)));            \
    memcpy(&(dst), &f_, 64);                                                                        \
  } while (0)
#define LOAD16_F16C(dst, p)                                                                         \
  do {                                                                                              \
    __m256 a_ = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)));               \
    __m256 b_ = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((p) + 8)));         \
    memcpy(&(dst), &a_, 32);                                                                        \
    memcpy((char *)&(dst) + 32, &b_, 32);                                                           \
  } while (0)
H_TILE(htile_avx512, __attribute__((target("avx512f"))), LOAD16_AVX512)
H_TILE(htile_f16c, __attribute__((target("avx2,f16c"))), LOAD16_F16C)
#endif

/* Which float16 instruction set this CPU has: 2 AVX-512F, 1 AVX2 + F16C, 0 neither. */
static int isa_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) return 1;
#endif
  return 0;
}

typedef void (*h32_fn)(const float *, int, int, const uint16_t *, int64_t, float *, int64_t, int64_t);
typedef void (*h64_fn)(const double *, int, int, const uint16_t *, int64_t, float *, int64_t, int64_t);

static void pick(h32_fn *f32, h64_fn *f64) {
  switch (isa_level()) {
#if defined(__x86_64__) && defined(__GNUC__)
  case 2: *f32 = htile_avx512_f32, *f64 = htile_avx512_f64; return;
  case 1: *f32 = htile_f16c_f32, *f64 = htile_f16c_f64; return;
#endif
  default: *f32 = htile_portable_f32, *f64 = htile_portable_f64; return;
  }
}

void combine_f32_h(const float *w, int K, int N, const uint16_t *in, int64_t len, float *out,
                   int64_t e0, int64_t e1) {
  h32_fn f32;
  h64_fn f64;
  pick(&f32, &f64);
  int64_t full = e0 + (e1 - e0) / TF * TF;
  f32(w, K, N, in, len, out, e0, full);
  for (int k = 0; k < K; k++)
    for (int64_t e = full; e < e1; e++) {
      float a = 0;
      for (int i = 0; i < N; i++)
        a += w[(size_t)k * (size_t)N + (size_t)i] * ec_half_to_float(in[(size_t)i * (size_t)len + (size_t)e]);
      out[(size_t)k * (size_t)len + (size_t)e] = a;
    }
}

void combine_f64_h(const double *w, int K, int N, const uint16_t *in, int64_t len, float *out,
                   int64_t e0, int64_t e1) {
  h32_fn f32;
  h64_fn f64;
  pick(&f32, &f64);
  int64_t full = e0 + (e1 - e0) / TD * TD;
  f64(w, K, N, in, len, out, e0, full);
  for (int k = 0; k < K; k++)
    for (int64_t e = full; e < e1; e++) {
      double a = 0;
      for (int i = 0; i < N; i++)
        a += w[(size_t)k * (size_t)N + (size_t)i] * (double)ec_half_to_float(in[(size_t)i * (size_t)len + (size_t)e]);
      out[(size_t)k * (size_t)len + (size_t)e] = (float)a;
    }
}

/* ---- the streaming path -------------------------------------------------------------------- */

/* n inputs per pass over out, in blocks of 16 columns. */
#define AXPYN_H(NAME, ATTR, LOAD16)                                                                 \
  ATTR static void NAME(float *out, const float *w, const uint16_t *const *in, int n, int64_t len) {\
    int64_t e = 0;                                                                                  \
    for (; e + 16 <= len; e += 16) {                                                                \
      vf o;                                                                                         \
      memcpy(&o, out + e, 64);                                                                      \
      for (int i = 0; i < n; i++) {                                                                 \
        vf x;                                                                                       \
        LOAD16(x, in[i] + e);                                                                       \
        o += w[i] * x;                                                                              \
      }                                                                                             \
      memcpy(out + e, &o, 64);                                                                      \
    }                                                                                               \
    for (; e < len; e++)                                                                            \
      for (int i = 0; i < n; i++) out[e] += w[i] * ec_half_to_float(in[i][e]);                      \
  }                                                                                                 \
  ATTR static void NAME##64(double *out, const double *w, const uint16_t *const *in, int n,         \
                            int64_t len) {                                                          \
    int64_t e = 0;                                                                                  \
    for (; e + 16 <= len; e += 16) {                                                                \
      vd oa, ob;                                                                                    \
      memcpy(&oa, out + e, 64);                                                                     \
      memcpy(&ob, out + e + 8, 64);                                                                 \
      for (int i = 0; i < n; i++) {                                                                 \
        vf x;                                                                                       \
        LOAD16(x, in[i] + e);                                                                       \
        vf8 h[2];                                                                                   \
        memcpy(h, &x, 64);                                                                          \
        oa += w[i] * __builtin_convertvector(h[0], vd);                                             \
        ob += w[i] * __builtin_convertvector(h[1], vd);                                             \
      }                                                                                             \
      memcpy(out + e, &oa, 64);                                                                     \
      memcpy(out + e + 8, &ob, 64);                                                                 \
    }                                                                                               \
    for (; e < len; e++)                                                                            \
      for (int i = 0; i < n; i++) out[e] += w[i] * (double)ec_half_to_float(in[i][e]);              \
  }

AXPYN_H(axpyn_portable, , LOAD16_PORTABLE)
#if defined(__x86_64__) && defined(__GNUC__)
AXPYN_H(axpyn_avx512, __attribute__((target("avx512f"))), LOAD16_AVX512)
AXPYN_H(axpyn_f16c, __attribute__((target("avx2,f16c"))), LOAD16_F16C)
#endif

void combine_axpyn_h(float *out, const float *w, const uint16_t *const *in, int n, int64_t len) {
  switch (isa_level()) {
#if defined(__x86_64__) && defined(__GNUC__)
  case 2: axpyn_avx512(out, w, in, n, len); return;
  case 1: axpyn_f16c(out, w, in, n, len); return;
#endif
  default: axpyn_portable(out, w, in, n, len); return;
  }
}

void combine_axpyn_h64(double *out, const double *w, const uint16_t *const *in, int n, int64_t len) {
  switch (isa_level()) {
#if defined(__x86_64__) && defined(__GNUC__)
  case 2: axpyn_avx51264(out, w, in, n, len); return;
  case 1: axpyn_f16c64(out, w, in, n, len); return;
#endif
  default: axpyn_portable64(out, w, in, n, len); return;
  }
}
