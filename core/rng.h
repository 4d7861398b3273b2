/* Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011). A value is a pure function of (seed, index), so CPU and GPU code, any
 * thread count and a resumed run all draw the same numbers, and nothing needs to be stored.
 *
 * Stream layout: index i selects Philox block i/4 (counter = {i/4 low, i/4 high, 0, 0}, key =
 * {seed low, seed high}) and word i%4 of its output. The functions below are static inline so
 * that CUDA kernels can include this header (as __host__ __device__ through EC_RNG_FN). */
#ifndef EDM2C_CORE_RNG_H
#define EDM2C_CORE_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define EC_RNG_FN static inline __host__ __device__
#else
#define EC_RNG_FN static inline
#endif

/* The Philox4x32 round constants (from the paper / Random123). */
#define EC_PHILOX_M0 0xD2511F53u
#define EC_PHILOX_M1 0xCD9E8D57u
#define EC_PHILOX_W0 0x9E3779B9u
#define EC_PHILOX_W1 0xBB67AE85u

/* One Philox4x32-10 block: out = philox(counter, key). */
EC_RNG_FN void ec_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)EC_PHILOX_M0 * c0, p1 = (uint64_t)EC_PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += EC_PHILOX_W0;
    k1 += EC_PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* Word `index` of stream `seed`. */
EC_RNG_FN uint32_t ec_rng_u32(uint64_t seed, uint64_t index) {
  uint64_t block = index >> 2;
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  uint32_t out[4];
  ec_philox4x32(ctr, key, out);
  return out[index & 3];
}

/* Uniform in [0, 1) with 24 random bits: exactly representable in float32. */
EC_RNG_FN float ec_rng_uniform(uint64_t seed, uint64_t index) {
  return (float)(ec_rng_u32(seed, index) >> 8) * (1.0f / 16777216.0f);
}

/* Standard normal number `index` of stream `seed`, by Box–Muller on words 2·index and
 * 2·index + 1 (53-bit uniforms would be overkill for float32 noise; 32-bit ones, offset by half a
 * step so that log() never sees 0, keep the tails to |z| < 6.77). Computed in double. */
double ec_rng_normal(uint64_t seed, uint64_t index);
/* Fills out[0..n) with ec_rng_normal(seed, first + i) as float32. */
void ec_rng_normal_fill(float *out, uint64_t n, uint64_t seed, uint64_t first);

#endif
