/* Test and benchmark statistics from a counter-based generator that tests/golden/gen_frechet.py
 * and tools/bench_frechet_scipy.py implement identically, so that 2048-dimensional cases need no
 * stored matrices and C and Python see bit-identical inputs:
 *
 *   h(seed, i)   = splitmix64(splitmix64(seed) + i)                  (64-bit wrap-around)
 *   B[r, c]      = (h(seed, r·n + c) >> 60) − 7.5                     D × n, values ±0.5 … ±7.5
 *   sigma        = scale · B Bᵀ / n + delta · I                       n a power of two
 *   mu[i]        = (h(seed + 1000, i) >> 11) · 2⁻⁵³ − 0.5
 *
 * B Bᵀ sums products of half-integers, exactly representable in float64 whatever the summation
 * order, and scale, 1/n and delta are powers of two (delta small enough to be added exactly), so
 * OpenBLAS and numpy produce the same bits. n < D gives a singular sigma of rank n. */
#ifndef EDM2C_METRICS_FD_GEN_H
#define EDM2C_METRICS_FD_GEN_H

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static inline uint64_t fdgen_splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t fdgen_hash(uint64_t seed, uint64_t i) {
  return fdgen_splitmix64(fdgen_splitmix64(seed) + i);
}

/* mu [D] */
static inline void fdgen_mu(uint64_t seed, int64_t D, double *mu) {
  for (int64_t i = 0; i < D; i++)
    mu[i] = (double)(fdgen_hash(seed + 1000, (uint64_t)i) >> 11) * 0x1p-53 - 0.5;
}

/* sigma [D, D] full; returns 0 on allocation failure. */
static inline int fdgen_sigma(uint64_t seed, int64_t D, int64_t n, double scale, double delta,
                              double *sigma) {
  double *B = (double *)malloc((size_t)(D * n) * sizeof(double));
  if (!B) return 0;
  for (int64_t k = 0; k < D * n; k++) B[k] = (double)(fdgen_hash(seed, (uint64_t)k) >> 60) - 7.5;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)D, (int)n, 1.0, B, (int)n, 0.0, sigma,
              (int)D);
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i; j < D; j++) {
      double v = sigma[i * D + j] * scale / (double)n + (i == j ? delta : 0.0);
      sigma[i * D + j] = sigma[j * D + i] = v;
    }
  free(B);
  return 1;
}

#endif
