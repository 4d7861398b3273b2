/* A fixed pool of worker threads running one parallel loop at a time.
 *
 *   ec_pool *p;
 *   ec_pool_create(&p, threads);
 *   ec_pool_start(p, n, fn, ctx);   // fn(ctx, i, worker) for every i in [0, n), on the workers
 *   ...                             // the caller is free meanwhile (double buffering)
 *   ec_pool_wait(p);                // all n calls have returned
 *   ec_pool_destroy(&p);
 *
 * Items are handed out one at a time, so uneven items balance. `worker` (0 .. threads-1) lets fn
 * use per-worker scratch. fn reports failures through ctx; the pool itself cannot fail once
 * created. */
#ifndef EDM2C_CORE_POOL_H
#define EDM2C_CORE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct ec_pool ec_pool;
typedef void (*ec_pool_fn)(void *ctx, int64_t i, int worker);

ec_status ec_pool_create(ec_pool **p, int threads);
/* Starts a loop; the previous one must have been waited for. */
void ec_pool_start(ec_pool *p, int64_t n, ec_pool_fn fn, void *ctx);
void ec_pool_wait(ec_pool *p);
int ec_pool_threads(const ec_pool *p);
/* Stops and joins the workers; accepts NULL. */
void ec_pool_destroy(ec_pool **p);

/* Online CPUs (at least 1): the default thread count of the programs. */
int ec_cpu_count(void);
/* The CPU's model name (/proc/cpuinfo), "unknown CPU" where there is none: for benchmark
 * reports. Returns buf. */
const char *ec_cpu_model(char *buf, size_t size);

#endif
