/* The deterministic test weights of the metrics' networks, generated identically in C and in the
 * golden scripts (tests/golden/gen_inception.py, gen_dinov2.py), so that no weight file is
 * committed: bits r(name, i) = splitmix64(fnv1a64(name) + i), and a normal-like value from the
 * Irwin–Hall sum of its four 16-bit uniforms, (((u0 + u1) + u2) + u3 − 2)·sqrt(3) in double
 * (exact apart from the final multiply, so numpy reproduces it bit for bit). */
#ifndef EDM2C_METRICS_HASH_WEIGHTS_H
#define EDM2C_METRICS_HASH_WEIGHTS_H

#include <math.h>
#include <stdint.h>

static inline uint64_t hash_weights_name(const char *name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 0x100000001b3ull;
  return h;
}

/* r for a name already hashed by hash_weights_name (h) and element i. */
static inline uint64_t hash_weights_bits(uint64_t h, uint64_t i) {
  uint64_t z = h + i + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline double hash_weights_normal(uint64_t h, uint64_t i) {
  const uint64_t r = hash_weights_bits(h, i);
  double u[4];
  for (int k = 0; k < 4; k++) u[k] = ((double)((r >> (16 * k)) & 0xffff) * 2.0 + 1.0) / 131072.0;
  return (((u[0] + u[1]) + u[2]) + u[3] - 2.0) * sqrt(3.0);
}

#endif
