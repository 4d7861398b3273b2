/* Seed lists (seeds.h). */
#include "trainer/seeds.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* Parses the digits s[0 .. len) as a seed; returns 0 when they are not a plain number. */
static int number(const char *s, size_t len, int64_t *v) {
  if (!len) return 0;
  int64_t x = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    x = x * 10 + (s[i] - '0');
    if (x > EDM2_SEED_LIMIT) return 0;
  }
  *v = x;
  return 1;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

ec_status edm2_seeds_parse(const char *opt, const char *s, int64_t **seeds, int *n) {
  *seeds = NULL;
  *n = 0;
  if (!opt) opt = "seeds";
  if (!*s) return ec_err(EC_EINVAL, "%s: empty seed list (give e.g. 0-63,100)", opt);
  /* First pass: check the syntax and count. */
  int64_t count = 0;
  for (const char *p = s;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *dash = memchr(p, '-', len);
    int64_t a, b;
    if (!len)
      return ec_err(EC_EINVAL,
                    "%s: '%s' has an empty item; the syntax is a comma list of seeds and ranges, e.g. 0-63,100", opt,
                    s);
    if (dash == p)
      return ec_err(EC_EINVAL, "%s: '%.*s' is negative; seeds are integers >= 0", opt, (int)len, p);
    if (dash ? !number(p, (size_t)(dash - p), &a) || !number(dash + 1, len - (size_t)(dash - p) - 1, &b)
             : !number(p, len, &a))
      return ec_err(EC_EINVAL,
                    "%s: '%.*s' is not a seed or a range A-B (integers from 0 to 2^53, e.g. 0-63,100)", opt,
                    (int)len, p);
    if (!dash) b = a;
    if (b < a) return ec_err(EC_EINVAL, "%s: the range '%.*s' descends; write it %lld-%lld", opt, (int)len, p,
                             (long long)b, (long long)a);
    count += b - a + 1;
    if (count > EDM2_SEEDS_MAX)
      return ec_err(EC_EINVAL, "%s: more than %d seeds", opt, EDM2_SEEDS_MAX);
    if (!end) break;
    p = end + 1;
  }
  int64_t *v = ec_mallocarray((size_t)count, sizeof *v);
  int64_t *sorted = ec_mallocarray((size_t)count, sizeof *sorted);
  if (!v || !sorted) {
    ec_freep(&v);
    ec_freep(&sorted);
    return ec_err(EC_ENOMEM, "%s: out of memory for %lld seeds", opt, (long long)count);
  }
  int64_t k = 0;
  for (const char *p = s;;) {
    char *end;
    int64_t a = strtoll(p, &end, 10), b = a;
    if (*end == '-') b = strtoll(end + 1, &end, 10);
    for (int64_t x = a; x <= b; x++) v[k++] = x;
    if (!*end) break;
    p = end + 1;
  }
  memcpy(sorted, v, (size_t)count * sizeof *v);
  qsort(sorted, (size_t)count, sizeof *sorted, cmp_i64);
  for (int64_t i = 1; i < count; i++)
    if (sorted[i] == sorted[i - 1]) {
      ec_status st = ec_err(EC_EINVAL, "%s: seed %lld appears twice in '%s'", opt, (long long)sorted[i], s);
      ec_freep(&v);
      ec_freep(&sorted);
      return st;
    }
  ec_freep(&sorted);
  *seeds = v;
  *n = (int)count;
  return EC_OK;
}
