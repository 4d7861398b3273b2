/* Small helpers shared by the nn op tests: allocation that aborts on failure, random float32
 * inputs from core/rng.h (each call a fresh stream, starting at NN_TEST_SEED0, which a test file
 * may define before including this), widening to double, norms. Header-only; include once. */
#ifndef EDM2C_TESTS_NN_TEST_UTIL_H
#define EDM2C_TESTS_NN_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"

#ifndef NN_TEST_SEED0
#define NN_TEST_SEED0 5000
#endif

static uint64_t next_seed = NN_TEST_SEED0;

static inline double *dvec(size_t n) {
  double *p = calloc(n ? n : 1, sizeof *p);
  if (!p) abort();
  return p;
}

static inline float *fvec(size_t n) {
  float *p = calloc(n ? n : 1, sizeof *p);
  if (!p) abort();
  return p;
}

/* float32 normal deviates times scale */
static inline float *randf(size_t n, double scale) {
  float *p = fvec(n);
  uint64_t seed = next_seed++;
  for (size_t i = 0; i < n; i++) p[i] = (float)(scale * ec_rng_normal(seed, i));
  return p;
}

/* the same numbers in double (exact) */
static inline double *widen(const float *x, size_t n) {
  double *p = dvec(n);
  for (size_t i = 0; i < n; i++) p[i] = x[i];
  return p;
}

static inline double rms_f(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s / n);
}

static inline double max_abs_d(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static inline void fill_f(float *x, size_t n, float v) {
  for (size_t i = 0; i < n; i++) x[i] = v;
}

#endif
