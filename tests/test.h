/* A small unit-test harness: typed asserts that print both operands, one process per test
 * program, and meson's exit-code protocol (0 pass, 1 fail, 77 skip).
 *
 *   TEST(half_roundtrip) { ASSERT_EQ_INT(ec_float_to_half(1.0f), 0x3c00); }
 *   TEST_MAIN(half_roundtrip, ...)
 *
 * A failing assert ends the current test (it returns from the test function) and the program
 * goes on with the next test. `prog --case NAME` runs one test; `prog --list` lists them.
 * test_tmpdir() gives each program a fresh directory, removed at exit unless EDM2C_KEEP_TMP is
 * set (its path is printed then). */
#ifndef EDM2C_TESTS_TEST_H
#define EDM2C_TESTS_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

typedef void (*test_fn)(void);
typedef struct {
  const char *name;
  test_fn fn;
} test_case;

extern int test_failed_;  /* set by a failing assert in the current test */
extern int test_skipped_; /* set by TEST_SKIP */

int test_run_all_(int argc, char **argv, const test_case *cases, int n);
void test_fail_(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A fresh directory for this test program, and a path inside it (static buffer rotation: the
 * last 8 results stay valid). */
const char *test_tmpdir(void);
const char *test_path(const char *name);
/* Runs a shell command; returns its exit status (or -1). */
int test_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads a whole file into a NUL-terminated buffer (free with free()); NULL on failure. */
char *test_read_file(const char *path, size_t *size);
int test_write_file(const char *path, const void *data, size_t size);

#define TEST(name) static void name(void)
#define TEST_ENTRY_(name) {#name, name},
#define TEST_FOREACH_1_(m, a) m(a)
#define TEST_MAIN(...)                                                                             \
  int main(int argc, char **argv) {                                                                \
    static const test_fn fns_[] = {__VA_ARGS__};                                                   \
    static const char names_[] = #__VA_ARGS__;                                                     \
    enum { n_ = sizeof fns_ / sizeof fns_[0] };                                                    \
    test_case cases_[n_];                                                                          \
    static char buf_[sizeof names_];                                                               \
    memcpy(buf_, names_, sizeof names_);                                                           \
    char *save_ = NULL, *tok_ = strtok_r(buf_, ", \t\n", &save_);                                  \
    for (int i_ = 0; i_ < n_; i_++) {                                                              \
      cases_[i_].name = tok_;                                                                      \
      cases_[i_].fn = fns_[i_];                                                                    \
      tok_ = strtok_r(NULL, ", \t\n", &save_);                                                     \
    }                                                                                              \
    return test_run_all_(argc, argv, cases_, n_);                                                  \
  }

#define TEST_SKIP(why)                                                                             \
  do {                                                                                             \
    printf("# SKIP %s\n", why);                                                                    \
    test_skipped_ = 1;                                                                             \
    return;                                                                                        \
  } while (0)

#define ASSERT_TRUE(c)                                                                             \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      test_fail_(__FILE__, __LINE__, "expected true: %s", #c);                                     \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define ASSERT_EQ_INT(a, b)                                                                        \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    if (a_ != b_) {                                                                                \
      test_fail_(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);                    \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define ASSERT_NE_INT(a, b)                                                                        \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    if (a_ == b_) {                                                                                \
      test_fail_(__FILE__, __LINE__, "%s != %s: both %lld", #a, #b, a_);                           \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* |a - b| <= tol */
#define ASSERT_NEAR(a, b, tol)                                                                     \
  do {                                                                                             \
    double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                                 \
    if (!(fabs(a_ - b_) <= t_)) {                                                                  \
      test_fail_(__FILE__, __LINE__, "%s ~ %s: %.17g vs %.17g (diff %.3g > %.3g)", #a, #b, a_, b_, \
                 fabs(a_ - b_), t_);                                                               \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* |a - b| <= rtol * |b| (b is the reference) */
#define ASSERT_REL(a, b, rtol)                                                                     \
  do {                                                                                             \
    double a_ = (double)(a), b_ = (double)(b), r_ = (double)(rtol);                                \
    if (!(fabs(a_ - b_) <= r_ * fabs(b_))) {                                                       \
      test_fail_(__FILE__, __LINE__, "%s ~ %s: %.17g vs %.17g (rel %.3g > %.3g)", #a, #b, a_, b_,  \
                 fabs(a_ - b_) / fabs(b_), r_);                                                    \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    if (!a_ || !b_ || strcmp(a_, b_)) {                                                            \
      test_fail_(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",     \
                 b_ ? b_ : "(null)");                                                              \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
  do {                                                                                             \
    const char *h_ = (hay), *n_ = (needle);                                                        \
    if (!h_ || !strstr(h_, n_)) {                                                                  \
      test_fail_(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #hay, n_,               \
                 h_ ? h_ : "(null)");                                                              \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* The expression returns EC_OK; on failure prints the error message it recorded. */
#define ASSERT_OK(expr)                                                                            \
  do {                                                                                             \
    ec_status s_ = (expr);                                                                         \
    if (s_ != EC_OK) {                                                                             \
      test_fail_(__FILE__, __LINE__, "%s failed: %s: %s", #expr, ec_status_name(s_), ec_errmsg()); \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* The expression returns `code` and its message contains `needle`. */
#define ASSERT_STATUS(expr, code, needle)                                                          \
  do {                                                                                             \
    ec_err_clear();                                                                                \
    ec_status s_ = (expr);                                                                         \
    if (s_ != (code)) {                                                                            \
      test_fail_(__FILE__, __LINE__, "%s returned %s, expected %s (message: %s)", #expr,           \
                 ec_status_name(s_), ec_status_name(code), ec_errmsg());                           \
      return;                                                                                      \
    }                                                                                              \
    if (!strstr(ec_errmsg(), (needle))) {                                                          \
      test_fail_(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", #expr, ec_errmsg(),        \
                 (needle));                                                                        \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#endif
