/* Weighted sums of the reconstruction; see combine.h.
 *
 * Every output element is acc = fma(w_i, x_i, acc) over the inputs i in ascending order, starting
 * from 0: one rounding per input (fused multiply-add), whatever the path. So a target's output
 * does not depend on the tiling, on the columns a thread was given, on which other targets share
 * the run, or on the CPU: the vector paths need FMA hardware (AVX2+FMA or AVX-512, where the
 * compiler contracts acc += w * x into one instruction: this file is built with
 * -ffp-contract=fast) and the portable path calls fmaf/fma, which glibc computes exactly in
 * software where the hardware lacks it (slowly: it is the fallback for pre-2013 CPUs).
 *
 * The tiled float32 kernel works on column blocks: it first converts a block of all N inputs to
 * float32 in a per-thread scratch that stays in L2 (packing: each float16 is converted once, not
 * once per group of targets), then streams the block through register tiles of KT outputs x NV
 * vectors of columns: per input, NV vector loads and KT broadcast weights feed KT*NV fused
 * multiply-adds, the accumulators never leaving registers (GCC/clang vector extensions; 64-byte
 * vectors become zmm registers with AVX-512, 32-byte ones ymm with AVX2). 8 x 3 zmm is the best
 * of the shapes measured (docs/performance.md). The float64 kernel converts in registers
 * (VCVTPH2PS, then to double). The streaming kernel adds up to COMBINE_AXPY_MAX inputs per pass
 * over the outputs. */
#include "combine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

/* The float64 kernel's register tile: KT64 outputs x NV64 float vectors of columns (2*NV64
 * double vectors). */
enum { KT64 = 4 };
/* Columns per tile of each kernel and instruction set (see the instantiations below): whole
 * tiles are vectorised, leftover columns take the scalar order. */
static int64_t tile_cols32(int isa) { return isa == 2 ? 48 : 16; }
static int64_t tile_cols64(int isa) { return isa == 2 ? 64 : 16; }

/* AVX-512 works on 64-byte vectors, AVX2 on 32-byte ones; each set of kernels below uses its
 * own native width (a 64-byte vector in AVX2 code would be split and spilled to the stack). */
typedef float vf16 __attribute__((vector_size(64))); /* 16 floats */
typedef double vd8 __attribute__((vector_size(64))); /* 8 doubles */
typedef float vf8 __attribute__((vector_size(32)));  /* 8 floats */
typedef double vd4 __attribute__((vector_size(32))); /* 4 doubles */
typedef float vf4 __attribute__((vector_size(16)));  /* 4 floats */

/* Which kernels to use: 2 AVX-512F, 1 AVX2 + F16C + FMA, 0 portable. The CPU's best, or lower
 * when EDM2C_COMBINE_ISA says so ("avx2", "portable"), so that tests exercise every path (they
 * must all give the same bits). Read per call: calls are per slice, not per element. */
static int isa_level(void) {
  int level = 0;
#if HAVE_X86
  if (__builtin_cpu_supports("avx512f"))
    level = 2;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma"))
    level = 1;
#endif
  const char *force = getenv("EDM2C_COMBINE_ISA");
  if (force && !strcmp(force, "portable")) level = 0;
  if (force && !strcmp(force, "avx2") && level > 1) level = 1;
  return level;
}

/* Loads one vector of inputs as floats: from float32 memory, or float16 converted exactly. */
#define LOAD16_F32(dst, p) memcpy(&(dst), (p), 64)
#define LOAD8_F32(dst, p) memcpy(&(dst), (p), 32)
#define LOAD16_H(dst, p)                                                                            \
  do {                                                                                              \
    __m512 f_ = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)));            \
    memcpy(&(dst), &f_, 64);                                                                        \
  } while (0)
#define LOAD8_H(dst, p)                                                                             \
  do {                                                                                              \
    __m256 f_ = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)));               \
    memcpy(&(dst), &f_, 32);                                                                        \
  } while (0)

/* ---- vector kernels, one body per (input type, instruction set) ---------------------------- */

/* The packing scratch: one block of N inputs x cb columns as float32, per thread, small enough
 * to stay in L2 beside the outputs' tiles. Runs with more inputs than it holds at one tile's
 * width use a heap block for the call. */
#define PACK_FLOATS 65536
static _Thread_local float pack_scratch[PACK_FLOATS] __attribute__((aligned(64)));

/* Columns per packed block: as many whole tiles as fit N inputs in the scratch, at most 8. */
static int pack_cols(int N, int64_t tile) {
  int64_t cb = (PACK_FLOATS / (N > 0 ? N : 1)) / tile * tile;
  if (cb > 8 * tile) cb = 8 * tile;
  return (int)(cb < tile ? tile : cb);
}

/* NAME: prefix; ATTR: target; IN_T: input element; VT/L: float vector type and lanes; LOADV:
 * loads L inputs as floats; KT/NV: the float32 register tile (KT outputs x NV*L columns);
 * VDT, HVT: double vector (L/2 lanes) and the float half of VT it is widened from; NV64: float
 * vectors per float64 tile row. */
#define KERNELS(NAME, ATTR, IN_T, VT, L, LOADV, KT, NV, VDT, HVT, NV64)                           \
  /* the [N][cb] block of inputs from column e, as float32. Rows lie len elements apart, too    \
   * many streams for the hardware prefetcher: each row's next block is prefetched by hand so      \
   * that the next pack finds it in cache (33 -> 45 GMAC/s at N = 256, len 460800, one core) */   \
  ATTR static void NAME##_pack(const IN_T *in, int N, int64_t len, int64_t e, int cb, float *xs) { \
    const int per_line = 64 / (int)sizeof(IN_T);                                                   \
    for (int i = 0; i < N; i++) {                                                                   \
      const IN_T *row = in + (size_t)i * (size_t)len;                                               \
      for (int c = 0; c < cb; c += L) {                                                             \
        VT v;                                                                                       \
        LOADV(v, row + (size_t)(e + c));                                                            \
        memcpy(xs + (size_t)i * (size_t)cb + (size_t)c, &v, sizeof v);                              \
        if (c % per_line == 0 && e + cb + c < len) __builtin_prefetch(row + (size_t)(e + cb + c), 0, 3); \
      }                                                                                             \
    }                                                                                               \
  }                                                                                                 \
  /* one register tile: outputs k0 .. k0+KN-1, packed columns c0 .. c0+NV*L-1 */                    \
  ATTR static inline void NAME##_t32(const float *w, int N, const float *xs, int cb, int c0,        \
                                     float *out, int64_t len, int64_t e, int k0, const int KN) {    \
    VT acc[KT][NV];                                                                                 \
    memset(acc, 0, sizeof acc);                                                                     \
    for (int i = 0; i < N; i++) {                                                                   \
      VT xv[NV];                                                                                    \
      for (int v = 0; v < NV; v++) /* one vector at a time: kept in registers */                    \
        memcpy(&xv[v], xs + (size_t)i * (size_t)cb + (size_t)(c0 + L * v), sizeof xv[v]);           \
      for (int k = 0; k < KN; k++) {                                                                \
        float c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];                                      \
        for (int v = 0; v < NV; v++) acc[k][v] += c * xv[v];                                        \
      }                                                                                             \
    }                                                                                               \
    for (int k = 0; k < KN; k++)                                                                    \
      memcpy(out + (size_t)(k0 + k) * (size_t)len + (size_t)(e + c0), acc[k], sizeof acc[k]);       \
  }                                                                                                 \
  /* whole tiles of [e0, e1) (the caller passes a multiple of NV*L columns); each KN its own        \
   * unrolled loop, so a short last group costs no wasted multiply-adds */                         \
  ATTR static void NAME##_f32(const float *w, int K, int N, const IN_T *in, int64_t len, float *out,\
                              int64_t e0, int64_t e1, float *xs, int cbmax) {                       \
    for (int64_t e = e0; e < e1; e += cbmax) {                                                      \
      int cb = e1 - e < cbmax ? (int)(e1 - e) : cbmax;                                              \
      NAME##_pack(in, N, len, e, cb, xs);                                                           \
      for (int k0 = 0; k0 < K; k0 += KT)                                                            \
        for (int c0 = 0; c0 < cb; c0 += NV * L) switch (K - k0 < KT ? K - k0 : KT) {                \
          case 1: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 1); break;                          \
          case 2: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 2); break;                          \
          case 3: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 3); break;                          \
          case 4: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 4); break;                          \
          case 5: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 5); break;                          \
          case 6: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 6); break;                          \
          case 7: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, 7); break;                          \
          default: NAME##_t32(w, N, xs, cb, c0, out, len, e, k0, KT); break;                        \
          }                                                                                         \
    }                                                                                               \
  }                                                                                                 \
  ATTR static inline void NAME##_t64(const double *w, int N, const IN_T *in, int64_t len,           \
                                     float *out, int k0, const int KN, int64_t e0) {                \
    VDT acc[KT64][2 * NV64];                                                                        \
    memset(acc, 0, sizeof acc);                                                                     \
    for (int i = 0; i < N; i++) {                                                                   \
      const IN_T *x = in + (size_t)i * (size_t)len + (size_t)e0;                                    \
      VDT xd[2 * NV64];                                                                             \
      for (int v = 0; v < NV64; v++) {                                                              \
        VT f;                                                                                       \
        LOADV(f, x + L * v);                                                                        \
        HVT h[2];                                                                                   \
        memcpy(h, &f, sizeof f);                                                                    \
        xd[2 * v] = __builtin_convertvector(h[0], VDT);                                             \
        xd[2 * v + 1] = __builtin_convertvector(h[1], VDT);                                         \
      }                                                                                             \
      for (int k = 0; k < KN; k++) {                                                                \
        double c = w[(size_t)(k0 + k) * (size_t)N + (size_t)i];                                     \
        for (int v = 0; v < 2 * NV64; v++) acc[k][v] += c * xd[v];                                  \
      }                                                                                             \
    }                                                                                               \
    for (int k = 0; k < KN; k++)                                                                    \
      for (int v = 0; v < 2 * NV64; v++)                                                            \
        for (int e = 0; e < L / 2; e++)                                                             \
          out[(size_t)(k0 + k) * (size_t)len + (size_t)(e0 + v * (L / 2) + e)] = (float)acc[k][v][e];\
  }                                                                                                 \
  ATTR static void NAME##_f64(const double *w, int K, int N, const IN_T *in, int64_t len,           \
                              float *out, int64_t e0, int64_t e1) {                                 \
    for (int64_t e = e0; e + NV64 * L <= e1; e += NV64 * L)                                         \
      for (int k0 = 0; k0 < K; k0 += KT64) switch (K - k0 < KT64 ? K - k0 : KT64) {                 \
        case 1: NAME##_t64(w, N, in, len, out, k0, 1, e); break;                                    \
        case 2: NAME##_t64(w, N, in, len, out, k0, 2, e); break;                                    \
        case 3: NAME##_t64(w, N, in, len, out, k0, 3, e); break;                                    \
        default: NAME##_t64(w, N, in, len, out, k0, 4, e); break;                                   \
        }                                                                                           \
  }

/* the streaming kernel: n inputs per pass over out, L columns at a time */
#define AXPYN(NAME, ATTR, VT, L, LOADV, VDT, HVT)                                                   \
  ATTR static void NAME##_a32(float *out, const float *w, const uint16_t *const *in, int n,         \
                              int64_t len) {                                                        \
    for (int64_t e = 0; e + L <= len; e += L) {                                                     \
      VT o;                                                                                         \
      memcpy(&o, out + e, sizeof o);                                                                \
      for (int i = 0; i < n; i++) {                                                                 \
        VT x;                                                                                       \
        LOADV(x, in[i] + e);                                                                        \
        o += w[i] * x;                                                                              \
      }                                                                                             \
      memcpy(out + e, &o, sizeof o);                                                                \
    }                                                                                               \
  }                                                                                                 \
  ATTR static void NAME##_a64(double *out, const double *w, const uint16_t *const *in, int n,       \
                              int64_t len) {                                                        \
    for (int64_t e = 0; e + L <= len; e += L) {                                                     \
      VDT oa, ob;                                                                                   \
      memcpy(&oa, out + e, sizeof oa);                                                              \
      memcpy(&ob, out + e + L / 2, sizeof ob);                                                      \
      for (int i = 0; i < n; i++) {                                                                 \
        VT x;                                                                                       \
        LOADV(x, in[i] + e);                                                                        \
        HVT h[2];                                                                                   \
        memcpy(h, &x, sizeof x);                                                                    \
        oa += w[i] * __builtin_convertvector(h[0], VDT);                                            \
        ob += w[i] * __builtin_convertvector(h[1], VDT);                                            \
      }                                                                                             \
      memcpy(out + e, &oa, sizeof oa);                                                              \
      memcpy(out + e + L / 2, &ob, sizeof ob);                                                      \
    }                                                                                               \
  }

#if HAVE_X86
#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,f16c,fma")))
/* Tiles: AVX-512 has 32 vector registers: float32, 8 outputs x 3 zmm accumulators (48 columns)
 * beside 3 inputs and a broadcast weight; float64, 4 outputs x 8 zmm of doubles (64 columns).
 * AVX2 has 16: 6 x 2 ymm (16 columns) and 4 x 4 ymm of doubles (16 columns). */
KERNELS(f32_avx512, AVX512, float, vf16, 16, LOAD16_F32, 8, 3, vd8, vf8, 4)
KERNELS(f32_avx2, AVX2, float, vf8, 8, LOAD8_F32, 6, 2, vd4, vf4, 2)
KERNELS(h_avx512, AVX512, uint16_t, vf16, 16, LOAD16_H, 8, 3, vd8, vf8, 4)
KERNELS(h_avx2, AVX2, uint16_t, vf8, 8, LOAD8_H, 6, 2, vd4, vf4, 2)
AXPYN(h_avx512, AVX512, vf16, 16, LOAD16_H, vd8, vf8)
AXPYN(h_avx2, AVX2, vf8, 8, LOAD8_H, vd4, vf4)
#endif

/* ---- the scalar reference order, used for leftover columns and without FMA hardware -------- */

static inline float in_f32(const float *p, size_t i) { return p[i]; }
static inline float in_h(const uint16_t *p, size_t i) { return ec_half_to_float(p[i]); }

#define SCALAR(NAME, IN_T, GET)                                                                     \
  static void NAME##_s32(const float *w, int K, int N, const IN_T *in, int64_t len, float *out,     \
                         int64_t e0, int64_t e1) {                                                  \
    for (int k = 0; k < K; k++)                                                                     \
      for (int64_t e = e0; e < e1; e++) {                                                           \
        float a = 0;                                                                                \
        for (int i = 0; i < N; i++)                                                                 \
          a = fmaf(w[(size_t)k * (size_t)N + (size_t)i], GET(in, (size_t)i * (size_t)len + (size_t)e), a); \
        out[(size_t)k * (size_t)len + (size_t)e] = a;                                               \
      }                                                                                             \
  }                                                                                                 \
  static void NAME##_s64(const double *w, int K, int N, const IN_T *in, int64_t len, float *out,    \
                         int64_t e0, int64_t e1) {                                                  \
    for (int k = 0; k < K; k++)                                                                     \
      for (int64_t e = e0; e < e1; e++) {                                                           \
        double a = 0;                                                                               \
        for (int i = 0; i < N; i++)                                                                 \
          a = fma(w[(size_t)k * (size_t)N + (size_t)i], (double)GET(in, (size_t)i * (size_t)len + (size_t)e), a); \
        out[(size_t)k * (size_t)len + (size_t)e] = (float)a;                                        \
      }                                                                                             \
  }
SCALAR(f32, float, in_f32)
SCALAR(h, uint16_t, in_h)

/* ---- entry points ---------------------------------------------------------------------------- */

/* The float32 entry points: whole tiles through the packed kernel, the rest in scalar order. */
#define F32_ENTRY(FN, IN_T, PRE)                                                                    \
  void FN(const float *w, int K, int N, const IN_T *in, int64_t len, float *out, int64_t e0,        \
          int64_t e1) {                                                                             \
    int64_t full = e0;                                                                              \
    X86_F32(PRE)                                                                                    \
    PRE##_s32(w, K, N, in, len, out, full, e1);                                                     \
  }
#if HAVE_X86
#define X86_F32(PRE)                                                                                \
  int isa = isa_level();                                                                            \
  if (isa && N > 0) {                                                                               \
    int64_t tile = tile_cols32(isa);                                                                \
    full = e0 + (e1 - e0) / tile * tile;                                                            \
    int cb = pack_cols(N, tile);                                                                    \
    float *xs = (int64_t)N * cb <= PACK_FLOATS ? pack_scratch : malloc(sizeof(float) * (size_t)N * (size_t)cb); \
    if (!xs) /* no memory for a larger block: the scalar order gives the same bits */              \
      full = e0;                                                                                    \
    else if (full > e0)                                                                             \
      (isa == 2 ? PRE##_avx512_f32 : PRE##_avx2_f32)(w, K, N, in, len, out, e0, full, xs, cb);     \
    if (xs != pack_scratch) free(xs);                                                               \
  }
#else
#define X86_F32(PRE)
#endif
F32_ENTRY(combine_f32, float, f32)
F32_ENTRY(combine_f32_h, uint16_t, h)

void combine_f64(const double *w, int K, int N, const float *in, int64_t len, float *out,
                 int64_t e0, int64_t e1) {
  int64_t full = e0;
#if HAVE_X86
  int isa = isa_level();
  if (isa) {
    full = e0 + (e1 - e0) / tile_cols64(isa) * tile_cols64(isa);
    (isa == 2 ? f32_avx512_f64 : f32_avx2_f64)(w, K, N, in, len, out, e0, full);
  }
#endif
  f32_s64(w, K, N, in, len, out, full, e1);
}

void combine_f64_h(const double *w, int K, int N, const uint16_t *in, int64_t len, float *out,
                   int64_t e0, int64_t e1) {
  int64_t full = e0;
#if HAVE_X86
  int isa = isa_level();
  if (isa) {
    full = e0 + (e1 - e0) / tile_cols64(isa) * tile_cols64(isa);
    (isa == 2 ? h_avx512_f64 : h_avx2_f64)(w, K, N, in, len, out, e0, full);
  }
#endif
  h_s64(w, K, N, in, len, out, full, e1);
}

void combine_axpyn_h(float *out, const float *w, const uint16_t *const *in, int n, int64_t len) {
  int64_t e = 0;
#if HAVE_X86
  int isa = isa_level();
  if (isa) {
    (isa == 2 ? h_avx512_a32 : h_avx2_a32)(out, w, in, n, len);
    e = isa == 2 ? len / 16 * 16 : len / 8 * 8;
  }
#endif
  for (; e < len; e++)
    for (int i = 0; i < n; i++) out[e] = fmaf(w[i], ec_half_to_float(in[i][e]), out[e]);
}

void combine_axpyn_h64(double *out, const double *w, const uint16_t *const *in, int n, int64_t len) {
  int64_t e = 0;
#if HAVE_X86
  int isa = isa_level();
  if (isa) {
    (isa == 2 ? h_avx512_a64 : h_avx2_a64)(out, w, in, n, len);
    e = isa == 2 ? len / 16 * 16 : len / 8 * 8;
  }
#endif
  for (; e < len; e++)
    for (int i = 0; i < n; i++) out[e] = fma(w[i], (double)ec_half_to_float(in[i][e]), out[e]);
}
