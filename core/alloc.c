/* Allocation helpers; see alloc.h. */
#include "alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static long fail_countdown = -1;

/* Returns 1 when the injected-failure countdown says this allocation must fail. */
static int injected_failure(void) {
  if (fail_countdown < 0) return 0;
  if (fail_countdown == 0) return 1;
  fail_countdown--;
  return 0;
}

void ec_alloc_fail_after(long n) { fail_countdown = n; }

static void *nomem(size_t size) {
  ec_err(EC_ENOMEM, "out of memory allocating %zu bytes", size);
  return NULL;
}

void *ec_malloc(size_t size) {
  if (injected_failure()) return nomem(size);
  void *p = malloc(size ? size : 1);
  return p ? p : nomem(size);
}

void *ec_calloc(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return nomem(SIZE_MAX);
  if (injected_failure()) return nomem(count * size);
  void *p = calloc(count ? count : 1, size ? size : 1);
  return p ? p : nomem(count * size);
}

void *ec_mallocarray(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return nomem(SIZE_MAX);
  return ec_malloc(count * size);
}

void *ec_realloc(void *ptr, size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return nomem(SIZE_MAX);
  if (injected_failure()) return nomem(count * size);
  size_t bytes = count * size;
  void *p = realloc(ptr, bytes ? bytes : 1);
  return p ? p : nomem(count * size);
}

void *ec_aligned_alloc(size_t size) {
  if (injected_failure()) return nomem(size);
  void *p = NULL;
  if (posix_memalign(&p, EC_ALIGN, size ? size : 1) != 0) return nomem(size);
  return p;
}

char *ec_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = ec_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

char *ec_asprintf(const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = n < 0 ? NULL : ec_malloc((size_t)n + 1);
  if (p) vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

void ec_freep(void *pp) {
  void **p = pp;
  if (!p) return;
  free(*p);
  *p = NULL;
}
