/* Worker pool; see pool.h. One mutex and two condition variables: `work` wakes workers when a
 * loop starts, `done` wakes the waiter when the last item of a loop has finished. */
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"

struct ec_pool {
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  pthread_t *tid;
  int threads, started, stop;
  uint64_t generation; /* incremented per loop, so a worker never runs a loop twice */
  int64_t n, next, finished;
  ec_pool_fn fn;
  void *ctx;
  int running; /* a loop is in progress */
};

typedef struct {
  ec_pool *p;
  int id;
} worker_arg;

static void *worker(void *arg) {
  worker_arg *wa = arg;
  ec_pool *p = wa->p;
  int id = wa->id;
  ec_freep(&wa);
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->generation == seen) pthread_cond_wait(&p->work, &p->mu);
    if (p->stop) break;
    seen = p->generation;
    while (p->next < p->n) {
      int64_t i = p->next++;
      pthread_mutex_unlock(&p->mu);
      p->fn(p->ctx, i, id);
      pthread_mutex_lock(&p->mu);
      if (++p->finished == p->n) pthread_cond_broadcast(&p->done);
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

ec_status ec_pool_create(ec_pool **pp, int threads) {
  *pp = NULL;
  if (threads < 1) threads = 1;
  ec_pool *p = ec_calloc(1, sizeof *p);
  if (!p) return EC_ENOMEM;
  if (!(p->tid = ec_calloc((size_t)threads, sizeof *p->tid))) {
    ec_freep(&p);
    return EC_ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  p->threads = threads;
  for (int i = 0; i < threads; i++) {
    worker_arg *wa = ec_malloc(sizeof *wa);
    if (!wa) break;
    wa->p = p;
    wa->id = i;
    if (pthread_create(&p->tid[i], NULL, worker, wa) != 0) {
      ec_freep(&wa);
      break;
    }
    p->started++;
  }
  if (p->started == 0) {
    ec_pool_destroy(&p);
    return ec_err(EC_ENOMEM, "cannot start worker threads");
  }
  p->threads = p->started; /* fewer than asked is still a working pool */
  *pp = p;
  return EC_OK;
}

int ec_pool_threads(const ec_pool *p) { return p->threads; }

void ec_pool_start(ec_pool *p, int64_t n, ec_pool_fn fn, void *ctx) {
  pthread_mutex_lock(&p->mu);
  EC_ASSERTF(!p->running, "ec_pool_start: the previous loop was not waited for");
  p->n = n;
  p->next = p->finished = 0;
  p->fn = fn;
  p->ctx = ctx;
  p->running = 1;
  p->generation++;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
}

void ec_pool_wait(ec_pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->running && p->finished < p->n) pthread_cond_wait(&p->done, &p->mu);
  p->running = 0;
  pthread_mutex_unlock(&p->mu);
}

void ec_pool_destroy(ec_pool **pp) {
  ec_pool *p = *pp;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) pthread_join(p->tid[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->done);
  ec_freep(&p->tid);
  ec_freep(pp);
}

int ec_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

const char *ec_cpu_model(char *buf, size_t size) {
  snprintf(buf, size, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return buf;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "model name", 10)) {
      char *c = strchr(line, ':');
      if (c) {
        c++;
        while (*c == ' ') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, size, "%s", c);
      }
      break;
    }
  }
  fclose(f);
  return buf;
}
