/* Comparing float32 results with golden references, as every golden test reports them:
 * rel = max|ours − ref| / max|ref| and NMSE = Σ(ours − ref)² / Σref², computed in double, plus
 * the largest absolute difference and where it is. Header-only; tests/ only. */
#ifndef EDM2C_TESTS_GOLDEN_COMPARE_H
#define EDM2C_TESTS_GOLDEN_COMPARE_H

#include <math.h>
#include <stddef.h>

typedef struct {
  double rel, nmse, maxabs;
  size_t worst; /* index of the largest absolute difference */
} cmp_result;

static inline cmp_result compare(const float *ours, const float *ref, size_t n) {
  cmp_result r = {0};
  double num = 0, den = 0, refmax = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)ours[i] - (double)ref[i]);
    if (!(d <= r.maxabs)) {
      r.maxabs = d;
      r.worst = i;
    }
    num += d * d;
    den += (double)ref[i] * ref[i];
    if (fabs(ref[i]) > refmax) refmax = fabs(ref[i]);
  }
  r.rel = refmax > 0 ? r.maxabs / refmax : r.maxabs;
  r.nmse = den > 0 ? num / den : num;
  return r;
}

#endif
