/* The reference's data order: CPython's tuple hash, numpy's legacy MT19937 shuffle and the
 * InfiniteSampler position arithmetic (sampler.h). Written from the behaviour described in
 * edm2-spec.md §6.10-6.11 and CPython's / numpy's documented algorithms. */
#include "trainer/sampler.h"

#include <stddef.h>

#include "core/alloc.h"

/* ---- CPython hashes ---------------------------------------------------------------------- */

#define PY_XXPRIME_1 11400714785074694791ull
#define PY_XXPRIME_2 14029467366897019727ull
#define PY_XXPRIME_5 2870177450012600261ull
#define PY_HASH_MODULUS ((1ull << 61) - 1) /* sys.hash_info.modulus on 64-bit builds */

/* hash(int(v)): |v| mod (2^61 - 1) with v's sign; -1 is reserved, so it becomes -2. */
static uint64_t py_int_hash(int64_t v) {
  uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* |INT64_MIN| fits in uint64 */
  uint64_t h = mag % PY_HASH_MODULUS;
  if (v < 0) h = 0 - h; /* two's complement of -(|v| mod M) */
  if (h == UINT64_MAX) h = (uint64_t)-2;
  return h;
}

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

int64_t edm2_py_tuple_hash(const int64_t *items, int n) {
  uint64_t acc = PY_XXPRIME_5;
  for (int i = 0; i < n; i++) {
    acc += py_int_hash(items[i]) * PY_XXPRIME_2;
    acc = rotl64(acc, 31);
    acc *= PY_XXPRIME_1;
  }
  acc += (uint64_t)n ^ (PY_XXPRIME_5 ^ 3527539ull);
  if (acc == UINT64_MAX) return 1546275796;
  return acc > (uint64_t)INT64_MAX ? -(int64_t)(UINT64_MAX - acc) - 1 : (int64_t)acc;
}

/* Python's h % 2^31 is non-negative for either sign of h: it is the low 31 bits of h in two's
 * complement, because 2^31 divides 2^64. */
uint32_t edm2_py_seed(const int64_t *items, int n) {
  return (uint32_t)((uint64_t)edm2_py_tuple_hash(items, n) & 0x7fffffffu);
}

/* ---- numpy legacy RandomState: MT19937 -------------------------------------------------- */

enum { MT_N = 624, MT_M = 397 };

typedef struct {
  uint32_t key[MT_N];
  int pos;
} mt19937;

/* RandomState(seed) for an int seed in [0, 2^32): Matsumoto-Nishimura init_genrand. */
static void mt_seed(mt19937 *mt, uint32_t seed) {
  mt->key[0] = seed;
  for (int i = 1; i < MT_N; i++) {
    uint32_t prev = mt->key[i - 1];
    mt->key[i] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)i;
  }
  mt->pos = MT_N;
}

static void mt_refill(mt19937 *mt) {
  const uint32_t upper = 0x80000000u, lower = 0x7fffffffu, matrix_a = 0x9908b0dfu;
  uint32_t *k = mt->key;
  for (int i = 0; i < MT_N; i++) {
    uint32_t y = (k[i] & upper) | (k[(i + 1) % MT_N] & lower);
    k[i] = k[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? matrix_a : 0u);
  }
  mt->pos = 0;
}

static uint32_t mt_next32(mt19937 *mt) {
  if (mt->pos == MT_N) mt_refill(mt);
  uint32_t y = mt->key[mt->pos++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* numpy's legacy 64-bit draw: the first 32-bit output is the high word. */
static uint64_t mt_next64(mt19937 *mt) {
  uint64_t hi = mt_next32(mt);
  return hi << 32 | mt_next32(mt);
}

/* numpy's legacy random_interval(max): uniform in [0, max] by masked rejection, on 32-bit outputs
 * while max fits in 32 bits and on 64-bit ones beyond. */
static uint64_t mt_interval(mt19937 *mt, uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t v;
  if (max <= 0xffffffffu) {
    do v = mt_next32(mt) & mask;
    while (v > max);
  } else {
    do v = mt_next64(mt) & mask;
    while (v > max);
  }
  return v;
}

void edm2_np_shuffle(uint32_t seed, int64_t *x, int64_t n) {
  mt19937 mt;
  mt_seed(&mt, seed);
  for (int64_t i = n - 1; i >= 1; i--) {
    int64_t j = (int64_t)mt_interval(&mt, (uint64_t)i);
    int64_t t = x[i];
    x[i] = x[j];
    x[j] = t;
  }
}

/* ---- InfiniteSampler --------------------------------------------------------------------- */

ec_status edm2_sampler_init(edm2_sampler *s, int64_t n, int64_t seed, int rank, int world,
                            int64_t start_idx) {
  *s = (edm2_sampler){.epoch = -1};
  if (n <= 0) return ec_err(EC_EINVAL, "sampler: dataset size %lld must be positive", (long long)n);
  if (world <= 0 || rank < 0 || rank >= world)
    return ec_err(EC_EINVAL, "sampler: rank %d is not in [0, world %d)", rank, world);
  if (start_idx < 0 || start_idx > INT64_MAX / 2)
    return ec_err(EC_EINVAL, "sampler: start index %lld out of range", (long long)start_idx);
  if ((uint64_t)n > SIZE_MAX / sizeof(int64_t))
    return ec_err(EC_EINVAL, "sampler: dataset size %lld too large", (long long)n);
  s->perm = ec_mallocarray((size_t)n, sizeof(int64_t));
  if (!s->perm) return EC_ENOMEM;
  s->n = n;
  s->seed = seed;
  s->world = world;
  s->idx = start_idx + rank;
  return EC_OK;
}

int64_t edm2_sampler_next(edm2_sampler *s) {
  int64_t e = s->idx / s->n;
  if (e != s->epoch) {
    for (int64_t i = 0; i < s->n; i++) s->perm[i] = i;
    const int64_t key[2] = {s->seed, e};
    edm2_np_shuffle(edm2_py_seed(key, 2), s->perm, s->n);
    s->epoch = e;
  }
  int64_t item = s->perm[s->idx % s->n];
  s->idx += s->world;
  return item;
}

void edm2_sampler_free(edm2_sampler *s) {
  ec_freep(&s->perm);
  s->epoch = -1;
}
