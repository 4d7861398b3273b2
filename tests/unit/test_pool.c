/* core/pool: every item runs exactly once per loop, loops can overlap the caller's work, worker
 * ids are in range, empty loops return, many loops in a row. */
#include <stdatomic.h>
#include <unistd.h>

#include "core/pool.h"
#include "tests/test.h"

typedef struct {
  _Atomic int hits[1000];
  _Atomic int bad_worker;
  int threads;
} ctx_t;

static void count(void *c, int64_t i, int worker) {
  ctx_t *x = c;
  atomic_fetch_add(&x->hits[i], 1);
  if (worker < 0 || worker >= x->threads) atomic_store(&x->bad_worker, 1);
}

TEST(every_item_once) {
  for (int threads = 1; threads <= 4; threads++) {
    ec_pool *p;
    ASSERT_OK(ec_pool_create(&p, threads));
    static ctx_t c;
    memset(&c, 0, sizeof c);
    c.threads = ec_pool_threads(p);
    for (int loop = 0; loop < 50; loop++) {
      int n = (loop * 37) % 1000;
      ec_pool_start(p, n, count, &c);
      ec_pool_wait(p);
      for (int i = 0; i < 1000; i++) ASSERT_EQ_INT(atomic_load(&c.hits[i]), i < n ? 1 : 0);
      for (int i = 0; i < 1000; i++) atomic_store(&c.hits[i], 0);
    }
    ASSERT_EQ_INT(atomic_load(&c.bad_worker), 0);
    ec_pool_destroy(&p);
    ASSERT_TRUE(p == NULL);
  }
}

static void slow(void *c, int64_t i, int worker) {
  usleep(1000);
  count(c, i, worker);
}

TEST(caller_works_while_the_loop_runs) {
  ec_pool *p;
  ASSERT_OK(ec_pool_create(&p, 2));
  static ctx_t c;
  memset(&c, 0, sizeof c);
  c.threads = 2;
  ec_pool_start(p, 100, slow, &c);
  int mine = 0;
  for (int i = 0; i < 1000; i++) mine += i; /* the caller's own work */
  ec_pool_wait(p);
  ASSERT_EQ_INT(mine, 499500);
  for (int i = 0; i < 100; i++) ASSERT_EQ_INT(atomic_load(&c.hits[i]), 1);
  ec_pool_wait(p); /* waiting twice is harmless */
  ec_pool_destroy(&p);
  ec_pool_destroy(&p);
}

TEST_MAIN(every_item_once, caller_works_while_the_loop_runs)
