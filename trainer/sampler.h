/* The reference's data order (edm2-spec.md §6.10-6.11), reproduced exactly, so that a run sees the
 * images in the order EDM2 would and resuming at nimg continues the same order.
 *
 * InfiniteSampler(dataset of n items, rank, world, shuffle, seed, start_idx = nimg): a position
 * idx starts at start_idx + rank and advances by world; epoch e = idx / n; the epoch's order is
 * numpy.random.RandomState(py_hash((seed, e)) mod 2^31).shuffle(arange(n)); the item is
 * perm[idx mod n].
 *
 *   edm2_sampler s;
 *   edm2_sampler_init(&s, n, seed, rank, world, start_idx);
 *   int64_t item = edm2_sampler_next(&s);
 *   edm2_sampler_free(&s);
 */
#ifndef EDM2C_TRAINER_SAMPLER_H
#define EDM2C_TRAINER_SAMPLER_H

#include <stdint.h>

#include "core/status.h"

/* CPython's hash of a tuple of ints, as a signed 64-bit value, and the reference's seed from it:
 * hash mod 2^31 (non-negative). Any int64 item hashes as Python's int does (the int itself for
 * 0 <= v < 2^61 - 1, which covers seeds, ranks, epochs and nimg). */
int64_t edm2_py_tuple_hash(const int64_t *items, int n);
uint32_t edm2_py_seed(const int64_t *items, int n);

/* numpy's legacy RandomState(seed).shuffle(x) for a 1-D int64 array (MT19937 init_genrand, then
 * Fisher-Yates from the end with numpy's bounded integers). */
void edm2_np_shuffle(uint32_t seed, int64_t *x, int64_t n);

typedef struct {
  int64_t n, idx, world, epoch; /* epoch: the one perm holds, -1 = none yet */
  int64_t seed;
  int64_t *perm;
} edm2_sampler;

ec_status edm2_sampler_init(edm2_sampler *s, int64_t n, int64_t seed, int rank, int world, int64_t start_idx);
int64_t edm2_sampler_next(edm2_sampler *s);
void edm2_sampler_free(edm2_sampler *s);

#endif
