/* The σ_rel list syntax of EDM2's reconstruct_phema.py (--outstd / --instd).
 *
 * A list is comma-separated decimal numbers, spaces around items allowed. A `...` item expands an
 * arithmetic progression: it must follow at least two numbers a, b (a ≠ b; the last two values
 * produced so far, so progressions can be chained) and be followed by a number c. Then
 * count = round((c − b)/(b − a) − 1) must be > 0 and within 1e-4 of the unrounded value, and
 * b + (b − a)·k for k = 1..count are inserted before c. Inserted values keep their binary
 * rounding (0.019999999999999997), as EDM2's do. The result is sorted and exact duplicates are
 * removed; every value must satisfy 0 < v < 12^-0.5.
 *
 *   "0.010,0.015,...,0.250"  → 49 values, 0.010 to 0.250 in steps of 0.005
 *   "0.05, 0.1"              → 0.05, 0.1 */
#ifndef EDM2C_POSTHOC_EMA_LIST_H
#define EDM2C_POSTHOC_EMA_LIST_H

#include "core/status.h"

/* On success *values is a new array of *count ≥ 1 values (free with ec_freep); on failure
 * (EC_EINVAL with the offending item in the message, or EC_ENOMEM) *values is NULL and *count 0. */
ec_status phema_list_parse(const char *text, double **values, int *count);

#endif
