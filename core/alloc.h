/* Allocation helpers. Each returns NULL on failure after recording an EC_ENOMEM message that
 * gives the size asked for, so callers only `return EC_ENOMEM` (or propagate ec_errmsg()).
 * Sizes are overflow-checked. ec_freep() frees and NULLs the caller's pointer, so cleanup code
 * can run on half-built structs.
 *
 * Tests can make the n-th allocation fail (ec_alloc_fail_after) to exercise every cleanup path,
 * as dav1d's alloc_fail does. */
#ifndef EDM2C_CORE_ALLOC_H
#define EDM2C_CORE_ALLOC_H

#include <stddef.h>

/* Alignment of ec_aligned_alloc: a cache line, and enough for any SIMD load. */
#define EC_ALIGN 64

void *ec_malloc(size_t size);
void *ec_calloc(size_t count, size_t size);          /* zeroed */
void *ec_mallocarray(size_t count, size_t size);     /* count*size, overflow-checked */
void *ec_realloc(void *ptr, size_t count, size_t size);
void *ec_aligned_alloc(size_t size);                 /* EC_ALIGN-aligned; free with ec_freep */
char *ec_strdup(const char *s);
char *ec_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *(void **)pp and sets it to NULL; accepts NULL and pointers to NULL. */
void ec_freep(void *pp);

/* Test hook: after `n` more successful allocations, every allocation fails until reset with
 * n < 0. Not thread-safe; meant for single-threaded unit tests only. */
void ec_alloc_fail_after(long n);

#endif
