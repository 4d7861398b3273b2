/* trainer/sampler: the reference's data order. CPython's tuple hash, numpy's RandomState shuffle
 * and EDM2's InfiniteSampler against values CPython and numpy produced
 * (tests/data/sampler_expected.txt, written by tests/golden/gen_sampler.py), the spec's test
 * values literally, resuming, rank interleaving, and argument checks. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "tests/test.h"
#include "trainer/sampler.h"

/* ---- the fixture: one record per line, a keyword then integers ---------------------------- */

typedef struct {
  char *text;
  char **lines; /* the non-comment lines */
  int n_lines;
} fixture;

static void fixture_free(fixture *f) {
  free(f->text);
  free(f->lines);
  *f = (fixture){0};
}

static int fixture_load(fixture *f) {
  *f = (fixture){0};
  const char *dir = getenv("EDM2C_TEST_DATA");
  char path[4096];
  snprintf(path, sizeof path, "%s/sampler_expected.txt", dir ? dir : "tests/data");
  size_t size;
  f->text = test_read_file(path, &size);
  if (!f->text) {
    printf("# cannot read %s\n", path);
    return -1;
  }
  size_t cap = 1;
  for (size_t i = 0; i < size; i++) cap += f->text[i] == '\n';
  f->lines = malloc(cap * sizeof *f->lines);
  if (!f->lines) return -1;
  char *save = NULL;
  for (char *line = strtok_r(f->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (line[0] != '#' && line[0] != '\0') f->lines[f->n_lines++] = line;
  return 0;
}

/* Splits a line (in place) into whitespace-separated tokens; returns the count, or -1. */
static int split(char *line, char ***tokens) {
  size_t cap = strlen(line) / 2 + 2;
  char **t = malloc(cap * sizeof *t);
  if (!t) return -1;
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
    t[n++] = tok;
  *tokens = t;
  return n;
}

/* Parses a whole token as a signed (or, with is_unsigned, unsigned) 64-bit decimal. */
static int parse_int(const char *tok, int is_unsigned, int64_t *v) {
  char *end;
  errno = 0;
  if (is_unsigned) {
    unsigned long long u = strtoull(tok, &end, 10);
    *v = (int64_t)(uint64_t)u;
  } else {
    *v = strtoll(tok, &end, 10);
  }
  return (errno || end == tok || *end) ? -1 : 0;
}

/* Parses tokens[first .. first + n) into out. */
static int parse_ints(char **tokens, int first, int n, int64_t *out) {
  for (int i = 0; i < n; i++)
    if (parse_int(tokens[first + i], 0, &out[i])) return -1;
  return 0;
}

/* Counts records of each kind, so that a truncated fixture fails. */
typedef struct {
  int hash, perm, permdigest, sampler;
} record_counts;

static uint64_t perm_digest(const int64_t *p, int64_t n) {
  uint64_t d = 14695981039346656037ull;
  for (int64_t i = 0; i < n; i++) d = d * 1099511628211ull + (uint64_t)p[i] + 1;
  return d;
}

static int64_t *arange(int64_t n) {
  int64_t *x = ec_mallocarray((size_t)(n > 0 ? n : 1), sizeof *x);
  if (x)
    for (int64_t i = 0; i < n; i++) x[i] = i;
  return x;
}

static int is_permutation(const int64_t *p, int64_t n) {
  unsigned char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
  int ok = seen != NULL;
  for (int64_t i = 0; ok && i < n; i++) {
    if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
    else seen[p[i]] = 1;
  }
  free(seen);
  return ok;
}

/* ---- the spec's values, literally ---------------------------------------------------------- */

TEST(spec_test_values) {
  static const struct {
    int n;
    int64_t items[3];
    uint32_t seed;
  } cases[] = {
      {2, {0, 0}, 397586535},      {2, {0, 1}, 16979904},      {3, {0, 0, 0}, 360982090},
      {3, {0, 0, 2048}, 386374691}, {3, {0, 1, 0}, 2073067270}, {3, {0, 0, 4096}, 411767292},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ASSERT_EQ_INT(edm2_py_seed(cases[i].items, cases[i].n), cases[i].seed);
  /* hash((0, 0)) itself is negative; the seed is Python's non-negative modulo */
  const int64_t zz[2] = {0, 0};
  ASSERT_EQ_INT(edm2_py_tuple_hash(zz, 2), -8458139203682520985ll);
  int64_t x[10];
  for (int i = 0; i < 10; i++) x[i] = i;
  edm2_np_shuffle(397586535, x, 10);
  static const int64_t want[10] = {6, 8, 9, 7, 2, 3, 0, 1, 5, 4};
  for (int i = 0; i < 10; i++) ASSERT_EQ_INT(x[i], want[i]);
}

/* ---- against CPython and numpy -------------------------------------------------------------- */

static int check_hash(char **t, int nt, record_counts *c) {
  int64_t k;
  if (nt < 2 || parse_int(t[1], 0, &k) || k < 0 || k > 64 || nt != 2 + k + 2) return -1;
  int64_t items[64], h, seed;
  if (parse_ints(t, 2, (int)k, items) || parse_int(t[2 + k], 0, &h) ||
      parse_int(t[3 + k], 0, &seed))
    return -1;
  c->hash++;
  int64_t got = edm2_py_tuple_hash(items, (int)k);
  uint32_t got_seed = edm2_py_seed(items, (int)k);
  if (got != h || got_seed != (uint32_t)seed) {
    printf("# hash of a %d-tuple starting %s: %lld (seed %u), Python %lld (seed %lld)\n", (int)k,
           k ? t[2] : "()", (long long)got, got_seed, (long long)h, (long long)seed);
    return 1;
  }
  return 0;
}

static int check_perm(char **t, int nt, record_counts *c) {
  int64_t seed, n;
  if (nt < 3 || parse_int(t[1], 0, &seed) || parse_int(t[2], 0, &n) || n < 1 || nt != 3 + n)
    return -1;
  int64_t *want = malloc((size_t)n * sizeof *want), *x = arange(n);
  int rc = (!want || !x || parse_ints(t, 3, (int)n, want)) ? -1 : 0;
  if (rc == 0) {
    c->perm++;
    edm2_np_shuffle((uint32_t)seed, x, n);
    for (int64_t i = 0; i < n && rc == 0; i++)
      if (x[i] != want[i]) {
        printf("# RandomState(%lld).shuffle(arange(%lld))[%lld]: %lld, numpy %lld\n",
               (long long)seed, (long long)n, (long long)i, (long long)x[i], (long long)want[i]);
        rc = 1;
      }
  }
  free(want);
  ec_freep(&x);
  return rc;
}

static int check_permdigest(char **t, int nt, record_counts *c) {
  int64_t seed, n, digest, ends[40];
  if (nt != 4 + 40 || parse_int(t[1], 0, &seed) || parse_int(t[2], 0, &n) || n < 40 ||
      parse_int(t[3], 1, &digest) || parse_ints(t, 4, 40, ends))
    return -1;
  int64_t *x = arange(n);
  if (!x) return -1;
  c->permdigest++;
  edm2_np_shuffle((uint32_t)seed, x, n);
  int rc = 0;
  for (int i = 0; i < 40; i++) {
    int64_t at = i < 20 ? i : n - 40 + i;
    if (x[at] != ends[i]) rc = 1;
  }
  if (perm_digest(x, n) != (uint64_t)digest) rc = 1;
  if (rc)
    printf("# RandomState(%lld).shuffle(arange(%lld)) differs from numpy (digest %llu, numpy %s)\n",
           (long long)seed, (long long)n, (unsigned long long)perm_digest(x, n), t[3]);
  ec_freep(&x);
  return rc;
}

static int check_sampler(char **t, int nt, record_counts *c) {
  int64_t p[6]; /* n, seed, rank, world, start, count */
  if (nt < 7 || parse_ints(t, 1, 6, p) || p[5] < 1 || nt != 7 + p[5]) return -1;
  int64_t *want = malloc((size_t)p[5] * sizeof *want);
  if (!want || parse_ints(t, 7, (int)p[5], want)) {
    free(want);
    return -1;
  }
  edm2_sampler s;
  if (edm2_sampler_init(&s, p[0], p[1], (int)p[2], (int)p[3], p[4]) != EC_OK) {
    printf("# sampler init failed: %s\n", ec_errmsg());
    free(want);
    return -1;
  }
  c->sampler++;
  int rc = 0;
  for (int64_t i = 0; i < p[5] && rc == 0; i++) {
    int64_t got = edm2_sampler_next(&s);
    if (got != want[i]) {
      printf("# sampler(n %lld, seed %lld, rank %lld, world %lld, start %lld) item %lld: %lld, "
             "reference %lld\n",
             (long long)p[0], (long long)p[1], (long long)p[2], (long long)p[3], (long long)p[4],
             (long long)i, (long long)got, (long long)want[i]);
      rc = 1;
    }
  }
  edm2_sampler_free(&s);
  free(want);
  return rc;
}

TEST(matches_python_and_numpy) {
  fixture f;
  ASSERT_TRUE(fixture_load(&f) == 0);
  record_counts c = {0};
  int bad = 0, malformed = 0;
  for (int i = 0; i < f.n_lines; i++) {
    char **t = NULL;
    int nt = split(f.lines[i], &t), rc = -1;
    if (nt >= 1) {
      if (!strcmp(t[0], "hash")) rc = check_hash(t, nt, &c);
      else if (!strcmp(t[0], "perm")) rc = check_perm(t, nt, &c);
      else if (!strcmp(t[0], "permdigest")) rc = check_permdigest(t, nt, &c);
      else if (!strcmp(t[0], "sampler")) rc = check_sampler(t, nt, &c);
    }
    if (rc < 0) printf("# malformed fixture record %d (%s)\n", i + 1, nt >= 1 ? t[0] : "");
    malformed += rc < 0;
    bad += rc > 0;
    free(t);
  }
  fixture_free(&f);
  ASSERT_EQ_INT(malformed, 0);
  ASSERT_EQ_INT(bad, 0);
  ASSERT_EQ_INT(c.hash, 25);
  ASSERT_EQ_INT(c.perm, 30);
  ASSERT_EQ_INT(c.permdigest, 10);
  ASSERT_EQ_INT(c.sampler, 9);
}

/* ---- properties ------------------------------------------------------------------------------ */

TEST(shuffle_is_permutation) {
  static const int64_t ns[] = {0, 1, 2, 3, 5, 64, 65, 1000, 4097, 60000};
  static const uint32_t seeds[] = {0, 1, 42, 0x7fffffffu, 0xffffffffu};
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (size_t b = 0; b < sizeof seeds / sizeof seeds[0]; b++) {
      int64_t *x = arange(ns[a]);
      ASSERT_TRUE(x != NULL);
      edm2_np_shuffle(seeds[b], x, ns[a]);
      int ok = is_permutation(x, ns[a]);
      ec_freep(&x);
      ASSERT_TRUE(ok);
    }
  /* the seed matters */
  int64_t *x = arange(100), *y = arange(100);
  ASSERT_TRUE(x && y);
  edm2_np_shuffle(1, x, 100);
  edm2_np_shuffle(2, y, 100);
  int same = memcmp(x, y, 100 * sizeof *x) == 0;
  ec_freep(&x);
  ec_freep(&y);
  ASSERT_TRUE(!same);
}

/* Each epoch of a one-rank sampler visits every item exactly once, in the order of
 * RandomState(py_seed((seed, e))).shuffle. */
TEST(epochs_are_permutations) {
  const int64_t n = 37, seed = 12345;
  edm2_sampler s;
  ASSERT_OK(edm2_sampler_init(&s, n, seed, 0, 1, 0));
  int64_t got[37], *want = arange(n);
  ASSERT_TRUE(want != NULL);
  int bad = 0;
  for (int64_t e = 0; e < 5; e++) {
    for (int64_t i = 0; i < n; i++) got[i] = edm2_sampler_next(&s);
    for (int64_t i = 0; i < n; i++) want[i] = i;
    const int64_t key[2] = {seed, e};
    edm2_np_shuffle(edm2_py_seed(key, 2), want, n);
    bad += !is_permutation(got, n) || memcmp(got, want, sizeof got) != 0;
  }
  edm2_sampler_free(&s);
  ec_freep(&want);
  ASSERT_EQ_INT(bad, 0);
}

/* Rank r of `world` yields items r, r + world, r + 2 world, ... of the one-rank sequence. */
TEST(ranks_interleave) {
  const int64_t n = 23, seed = 5, start = 1000;
  const int world = 4, steps = 50;
  edm2_sampler one;
  ASSERT_OK(edm2_sampler_init(&one, n, seed, 0, 1, start));
  int64_t all[4 * 50];
  for (int i = 0; i < world * steps; i++) all[i] = edm2_sampler_next(&one);
  edm2_sampler_free(&one);
  int bad = 0;
  for (int r = 0; r < world; r++) {
    edm2_sampler s;
    ASSERT_OK(edm2_sampler_init(&s, n, seed, r, world, start));
    for (int j = 0; j < steps; j++) bad += edm2_sampler_next(&s) != all[j * world + r];
    edm2_sampler_free(&s);
  }
  ASSERT_EQ_INT(bad, 0);
}

/* Resuming: the reference restarts each rank with start_idx = cur_nimg (images over all ranks),
 * so after m steps of every rank (cur_nimg = m * world) a fresh sampler continues exactly where
 * the old one was, across epoch boundaries too. */
TEST(resume_continues_sequence) {
  static const struct {
    int64_t n;
    int world;
  } cfg[] = {{10, 1}, {10, 2}, {7, 3}, {60, 8}, {1, 2}};
  for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
    for (int r = 0; r < cfg[c].world; r++)
      for (int64_t m = 0; m < 40; m++) {
        edm2_sampler a, b;
        ASSERT_OK(edm2_sampler_init(&a, cfg[c].n, 99, r, cfg[c].world, 0));
        ASSERT_OK(edm2_sampler_init(&b, cfg[c].n, 99, r, cfg[c].world, m * cfg[c].world));
        for (int64_t k = 0; k < m; k++) edm2_sampler_next(&a);
        int bad = 0;
        for (int k = 0; k < 25; k++) bad += edm2_sampler_next(&a) != edm2_sampler_next(&b);
        edm2_sampler_free(&a);
        edm2_sampler_free(&b);
        ASSERT_EQ_INT(bad, 0);
      }
}

/* Large positions (nimg beyond 2^31) hash the epoch as the Python int it is. */
TEST(large_start_index) {
  const int64_t n = 60000, start = 1000000000000ll;
  edm2_sampler s;
  ASSERT_OK(edm2_sampler_init(&s, n, 0, 0, 1, start));
  int64_t first = edm2_sampler_next(&s);
  edm2_sampler_free(&s);
  int64_t *x = arange(n);
  ASSERT_TRUE(x != NULL);
  const int64_t key[2] = {0, start / n};
  edm2_np_shuffle(edm2_py_seed(key, 2), x, n);
  int64_t want = x[start % n];
  ec_freep(&x);
  ASSERT_EQ_INT(first, want);
}

TEST(init_checks) {
  edm2_sampler s;
  ASSERT_STATUS(edm2_sampler_init(&s, 0, 0, 0, 1, 0), EC_EINVAL, "dataset size 0");
  ASSERT_TRUE(s.perm == NULL);
  ASSERT_STATUS(edm2_sampler_init(&s, -3, 0, 0, 1, 0), EC_EINVAL, "dataset size -3");
  ASSERT_STATUS(edm2_sampler_init(&s, 10, 0, 2, 2, 0), EC_EINVAL, "rank 2");
  ASSERT_STATUS(edm2_sampler_init(&s, 10, 0, -1, 2, 0), EC_EINVAL, "rank -1");
  ASSERT_STATUS(edm2_sampler_init(&s, 10, 0, 0, 0, 0), EC_EINVAL, "world 0");
  ASSERT_STATUS(edm2_sampler_init(&s, 10, 0, 0, 1, -1), EC_EINVAL, "start index -1");
  ec_alloc_fail_after(0);
  ec_status st = edm2_sampler_init(&s, 10, 0, 0, 1, 0);
  ec_alloc_fail_after(-1);
  ASSERT_EQ_INT(st, EC_ENOMEM);
  ASSERT_TRUE(s.perm == NULL);
  edm2_sampler_free(&s); /* safe on a failed init */
  edm2_sampler_free(&s); /* and twice */
}

TEST_MAIN(spec_test_values, matches_python_and_numpy, shuffle_is_permutation,
          epochs_are_permutations, ranks_interleave, resume_continues_sequence, large_start_index,
          init_checks)
