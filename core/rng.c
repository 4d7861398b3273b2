/* Normal deviates from the counter-based stream of core/rng.h. */
#include "core/rng.h"

#include <math.h>

double ec_rng_normal(uint64_t seed, uint64_t index) {
  const double two32 = 4294967296.0;
  double u1 = ((double)ec_rng_u32(seed, 2 * index) + 0.5) / two32;
  double u2 = ((double)ec_rng_u32(seed, 2 * index + 1) + 0.5) / two32;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void ec_rng_normal_fill(float *out, uint64_t n, uint64_t seed, uint64_t first) {
  for (uint64_t i = 0; i < n; i++) out[i] = (float)ec_rng_normal(seed, first + i);
}
