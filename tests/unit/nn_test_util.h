/* Small helpers shared by the nn op tests: allocation that aborts on failure, random float32
 * inputs from core/rng.h (each call a fresh stream, starting at NN_TEST_SEED0, which a test file
 * may define before including this), widening to double, norms, tolerance checks against
 * nn_tolerances.h and guard elements after scratch buffers. Header-only; include once. */
#ifndef EDM2C_TESTS_NN_TEST_UTIL_H
#define EDM2C_TESTS_NN_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "tests/test.h"
#include "tests/unit/nn_tolerances.h"

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

static inline void fill_d(double *x, size_t n, double v) {
  for (size_t i = 0; i < n; i++) x[i] = v;
}

/* Compares got (double, or got32 as float) with ref within the tolerance `id` of
 * nn_tolerances.h, relative to `scale`; prints the worst ratio; 0 and a failure message when
 * it exceeds 1. */
static inline int within(const char *what, int line, const double *got, const float *got32,
                  const double *ref, size_t n, nn_tol_id id, double scale) {
  const nn_tol t = nn_tolerances[id];
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got ? got[i] : (double)got32[i];
    double tol = t.rtol * fabs(ref[i]) + t.atol * scale;
    double r = fabs(g - ref[i]) / (tol > 0 ? tol : 1e-300);
    if (!(r <= worst)) { /* also catches NaN */
      worst = r;
      wi = i;
      if (isnan(r)) break;
    }
  }
  printf("# %-44s %-11s worst error / tolerance = %.2g\n", what, t.name, worst);
  if (!(worst <= 1)) {
    test_fail_(__FILE__, line, "%s: element %zu: %.17g vs reference %.17g (%s: rtol %g, atol %g x %g)",
               what, wi, got ? got[wi] : (double)got32[wi], ref[wi], t.name, t.rtol, t.atol, scale);
    return 0;
  }
  return 1;
}

#define NEAR64(what, got, ref, n, scale) within(what, __LINE__, got, NULL, ref, n, TOL_NAIVE, scale)
#define NEAR32(what, got, ref, n, id, scale) within(what, __LINE__, NULL, got, ref, n, id, scale)

/* Guard elements after a scratch buffer: ops must stay within the size they announce. */
enum { GUARD = 64 };
static const float GUARD_F = 12345.0f;
static const double GUARD_D = -54321.0;
static inline float *guarded_f(size_t n) {
  float *p = fvec(n + GUARD);
  fill_f(p + n, GUARD, GUARD_F);
  return p;
}
static inline double *guarded_d(size_t n) {
  double *p = dvec(n + GUARD);
  fill_d(p + n, GUARD, GUARD_D);
  return p;
}
static inline int guard_ok_f(const float *p, size_t n) {
  for (int i = 0; i < GUARD; i++)
    if (p[n + i] != GUARD_F) return 0;
  return 1;
}
static inline int guard_ok_d(const double *p, size_t n) {
  for (int i = 0; i < GUARD; i++)
    if (p[n + i] != GUARD_D) return 0;
  return 1;
}

#endif
