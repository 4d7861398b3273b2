/* Benchmark of the reconstruction's inner kernel (not a test; results in docs/performance.md).
 *
 *   bench_combine [--len ELEMS] [--seconds S]
 *
 * For K targets x N float16 inputs, one thread runs combine_f32_h over slices of `len` elements
 * (460800 by default: the slice posthoc-ema picks for an 8M-parameter model at N = 256, so rows
 * lie ~1 MB apart as in a real run) and reports multiply-adds per second against, in the same
 * run:
 *   - the hardware limit: independent fused multiply-adds on registers (no memory), at the widest
 *     vector width the CPU has;
 *   - the scalar order of the portable path (EDM2C_COMBINE_ISA=portable: one fmaf per input per
 *     output), which gives the same bits.
 * Every kernel's output is checked bit for bit against the scalar one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "core/half.h"
#include "core/pool.h"
#include "posthoc/combine.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiply-adds per second of 16 independent accumulator vectors (enough to cover the latency
 * of two FMA units), lanes counted. */
#if defined(__x86_64__) && defined(__GNUC__)
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
#define PEAK_BODY(VT, LANES)                                                                        \
  VT acc[16], a, b;                                                                                 \
  for (int j = 0; j < LANES; j++) a[j] = 1.0f - 1e-7f * (float)j, b[j] = 1e-9f;                    \
  for (int k = 0; k < 16; k++) acc[k] = b * (float)k;                                               \
  double t = now();                                                                                 \
  for (long i = 0; i < iters; i++)                                                                  \
    for (int k = 0; k < 16; k++) acc[k] = acc[k] * a + b;                                           \
  t = now() - t;                                                                                    \
  float sink = 0;                                                                                   \
  for (int k = 0; k < 16; k++) sink += acc[k][0];                                                   \
  if (sink == 12345.f) printf("#\n");                                                               \
  return (double)iters * 16 * LANES / t;
__attribute__((target("avx512f"))) static double peak_avx512(long iters) { PEAK_BODY(v16, 16) }
__attribute__((target("avx2,fma"))) static double peak_avx2(long iters) { PEAK_BODY(v8, 8) }
static double fma_peak(const char **isa) {
  long iters = 50 * 1000 * 1000;
  if (__builtin_cpu_supports("avx512f")) {
    *isa = "AVX-512";
    return peak_avx512(iters);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *isa = "AVX2+FMA";
    return peak_avx2(iters);
  }
  *isa = "none";
  return NAN;
}
#else
static double fma_peak(const char **isa) {
  *isa = "unknown";
  return NAN;
}
#endif

/* Multiply-adds per second of combine_f32_h over columns [0, cols) of the slice, with the kernels
 * EDM2C_COMBINE_ISA selects (NULL: the CPU's best), repeated for at least `seconds`. */
static double rate(const char *isa, const float *w, int K, int N, const uint16_t *in, int64_t len, int64_t cols,
                   float *out, double seconds) {
  if (isa)
    setenv("EDM2C_COMBINE_ISA", isa, 1);
  else
    unsetenv("EDM2C_COMBINE_ISA");
  combine_f32_h(w, K, N, in, len, out, 0, cols); /* warm: page faults, caches */
  int reps = 0;
  double t = now(), el;
  do {
    combine_f32_h(w, K, N, in, len, out, 0, cols);
    reps++;
  } while ((el = now() - t) < seconds);
  unsetenv("EDM2C_COMBINE_ISA");
  return (double)K * N * (double)cols * reps / el;
}

int main(int argc, char **argv) {
  int64_t len = 460800;
  double seconds = 1.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--len") && i + 1 < argc)
      len = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_combine [--len ELEMS] [--seconds S]\n");
      return 2;
    }
  }
  const char *isa = "";
  double peak = fma_peak(&isa);
  char model[256];
  printf("machine: %s, one thread; combine_f32_h, float16 inputs, slices of %lld elements\n",
         ec_cpu_model(model, sizeof model), (long long)len);
  printf("hardware limit (%s fused multiply-adds on registers): %.1f GMAC/s\n\n", isa, peak / 1e9);
  printf("%4s %4s %12s %9s %12s %9s %6s\n", "K", "N", "edm2c", "of limit", "scalar", "speed-up", "bits");
  const int Ks[] = {8, 32, 128}, Ns[] = {16, 64, 256};
  for (size_t a = 0; a < sizeof Ks / sizeof *Ks; a++)
    for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++) {
      int K = Ks[a], N = Ns[b];
      float *w = ec_mallocarray((size_t)K * (size_t)N, sizeof *w);
      uint16_t *in = ec_aligned_alloc((size_t)N * (size_t)len * sizeof *in);
      float *o1 = ec_aligned_alloc((size_t)K * (size_t)len * sizeof *o1);
      float *o2 = ec_aligned_alloc((size_t)K * (size_t)len * sizeof *o2);
      if (!w || !in || !o1 || !o2) {
        fprintf(stderr, "bench_combine: out of memory\n");
        return 1;
      }
      uint32_t r = 1;
      for (size_t i = 0; i < (size_t)K * (size_t)N; i++) w[i] = (float)(i % 97) / 97.f - 0.3f;
      for (size_t i = 0; i < (size_t)N * (size_t)len; i++) {
        r = r * 1664525u + 1013904223u;
        in[i] = ec_float_to_half((float)(r >> 8) / (float)(1 << 24) - 0.5f);
      }
      /* the scalar order is ~200x slower: timed on the first 4608 columns only (same rows) */
      int64_t cols = len < 4608 ? len : 4608;
      double fast = rate(NULL, w, K, N, in, len, len, o1, seconds);
      double slow = rate("portable", w, K, N, in, len, cols, o2, seconds / 4);
      int same = 1;
      for (int k = 0; k < K; k++)
        same &= !memcmp(o1 + (size_t)k * (size_t)len, o2 + (size_t)k * (size_t)len, (size_t)cols * sizeof *o1);
      printf("%4d %4d %7.1f GMAC/s %8.0f%% %7.2f GMAC/s %8.1fx %6s\n", K, N, fast / 1e9, 100 * fast / peak,
             slow / 1e9, fast / slow, same ? "same" : "DIFFER");
      fflush(stdout);
      ec_freep(&w);
      ec_freep(&in);
      ec_freep(&o1);
      ec_freep(&o2);
      if (!same) return 1;
    }
  return 0;
}
