/* Seed lists as the reference's generate_images.py takes them (edm2-spec.md §8.4): a comma list
 * of non-negative integers and inclusive ranges, "0-63,100,200-210", in the order given.
 *
 *   int64_t *seeds; int n;
 *   if ((st = edm2_seeds_parse("--seeds", "16-19", &seeds, &n))) return st;   // 16 17 18 19
 *   ...
 *   ec_freep(&seeds);
 *
 * Refused with one message naming the option and the item: an empty list or item, anything but
 * digits and one '-', a descending range ("9-3"), a negative number, a seed that appears twice
 * (its image would be written twice), more than EDM2_SEEDS_MAX seeds, values above 2^53. */
#ifndef EDM2C_TRAINER_SEEDS_H
#define EDM2C_TRAINER_SEEDS_H

#include <stdint.h>

#include "core/status.h"

#define EDM2_SEEDS_MAX (1 << 24)
#define EDM2_SEED_LIMIT ((int64_t)1 << 53)

/* *seeds is allocated here (free with ec_freep); *n >= 1 on success. opt names the option in
 * messages. */
ec_status edm2_seeds_parse(const char *opt, const char *s, int64_t **seeds, int *n);

#endif
