/* core/alloc: sizes, alignment, overflow checks, failure injection, freep. */
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "tests/test.h"

TEST(malloc_and_freep) {
  char *p = ec_malloc(100);
  ASSERT_TRUE(p != NULL);
  memset(p, 1, 100);
  ec_freep(&p);
  ASSERT_TRUE(p == NULL);
  ec_freep(&p); /* freeing NULL is fine */
  ec_freep(NULL);
}

TEST(calloc_zeroes) {
  int *p = ec_calloc(1000, sizeof *p);
  ASSERT_TRUE(p != NULL);
  for (int i = 0; i < 1000; i++) ASSERT_EQ_INT(p[i], 0);
  ec_freep(&p);
}

TEST(aligned) {
  for (int i = 1; i < 20; i++) {
    void *p = ec_aligned_alloc((size_t)i * 7);
    ASSERT_TRUE(p != NULL);
    ASSERT_EQ_INT((uintptr_t)p % EC_ALIGN, 0);
    ec_freep(&p);
  }
}

TEST(overflow_is_an_error_not_a_wrap) {
  ASSERT_TRUE(ec_calloc(SIZE_MAX / 2, 4) == NULL);
  ASSERT_CONTAINS(ec_errmsg(), "out of memory");
  ASSERT_TRUE(ec_mallocarray(SIZE_MAX / 8 + 1, 16) == NULL);
  void *p = ec_malloc(8);
  ASSERT_TRUE(ec_realloc(p, SIZE_MAX / 4, 8) == NULL);
  free(p); /* realloc failure leaves the old block alive */
}

TEST(huge_request_fails_with_size_in_message) {
  void *p = ec_malloc(SIZE_MAX - 4096);
  ASSERT_TRUE(p == NULL);
  ASSERT_CONTAINS(ec_errmsg(), "out of memory allocating");
}

TEST(failure_injection) {
  ec_alloc_fail_after(2);
  void *a = ec_malloc(1), *b = ec_calloc(1, 1), *c = ec_strdup("x");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(c == NULL);
  ASSERT_TRUE(ec_aligned_alloc(64) == NULL);
  ec_alloc_fail_after(-1);
  c = ec_strdup("y");
  ASSERT_STR_EQ(c, "y");
  ec_freep(&a);
  ec_freep(&b);
  ec_freep(&c);
}

TEST(asprintf_formats) {
  char *s = ec_asprintf("%s-%012lld.h5", "snapshot", 8192LL);
  ASSERT_STR_EQ(s, "snapshot-000000008192.h5");
  ec_freep(&s);
}

TEST_MAIN(malloc_and_freep, calloc_zeroes, aligned, overflow_is_an_error_not_a_wrap,
          huge_request_fails_with_size_in_message, failure_injection, asprintf_formats)
