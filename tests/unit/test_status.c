/* core/status and core/check: messages, context, exit codes, aborting asserts. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/check.h"
#include "core/status.h"
#include "tests/test.h"

TEST(err_sets_message_and_returns_code) {
  ec_status s = ec_err(EC_EFORMAT, "%s: attribute '%s' missing", "a.h5", "nimg");
  ASSERT_EQ_INT(s, EC_EFORMAT);
  ASSERT_STR_EQ(ec_errmsg(), "a.h5: attribute 'nimg' missing");
}

TEST(context_prepends) {
  ec_err(EC_ENOENT, "dataset x not found");
  ASSERT_EQ_INT(ec_err_context(EC_ENOENT, "file %s", "b.h5"), EC_ENOENT);
  ASSERT_STR_EQ(ec_errmsg(), "file b.h5: dataset x not found");
  ec_err_clear();
  ec_err_context(EC_ENOMEM, "loading");
  ASSERT_STR_EQ(ec_errmsg(), "loading: out of memory");
}

TEST(long_messages_are_truncated_not_overflowed) {
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  ec_err(EC_EINVAL, "%s", big);
  ASSERT_TRUE(strlen(ec_errmsg()) < 4096);
  ec_err_context(EC_EINVAL, "%s", big);
  ASSERT_TRUE(strlen(ec_errmsg()) < 4096);
}

TEST(exit_codes) {
  ASSERT_EQ_INT(ec_exit_code(EC_OK), 0);
  ASSERT_EQ_INT(ec_exit_code(EC_EUSAGE), 2);
  ASSERT_EQ_INT(ec_exit_code(EC_EINTR), 130);
  ASSERT_EQ_INT(ec_exit_code(EC_EFORMAT), 1);
  ASSERT_EQ_INT(ec_exit_code(EC_ECHECKSUM), 1);
}

TEST(names_and_descriptions_cover_every_code) {
  for (int c = EC_OK; c >= EC_ESINGULAR; c--) {
    ASSERT_TRUE(strcmp(ec_status_name((ec_status)c), "EC_UNKNOWN") != 0);
    ASSERT_TRUE(strcmp(ec_strerror((ec_status)c), "unknown error") != 0);
  }
  ASSERT_STR_EQ(ec_status_name((ec_status)-999), "EC_UNKNOWN");
}

/* Runs fn in a child with stderr captured; returns the text and checks it aborted. */
static char *run_aborting(void (*fn)(void), int *aborted) {
  const char *path = test_path("abort.txt");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(path, "w", stderr)) _exit(3);
    fn();
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  *aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  return test_read_file(path, NULL);
}

static void assert_false(void) {
  int x = 2;
  EC_ASSERT(x == 3);
}

static void assertf_false(void) { EC_ASSERTF(0, "shape mismatch: %d vs %d", 4, 5); }

TEST(assert_aborts_with_file_line_and_expression) {
  int aborted = 0;
  char *out = run_aborting(assert_false, &aborted);
  ASSERT_TRUE(aborted);
  ASSERT_CONTAINS(out, "test_status.c:");
  ASSERT_CONTAINS(out, "assert_false");
  ASSERT_CONTAINS(out, "assertion failed: x == 3");
  free(out);
  out = run_aborting(assertf_false, &aborted);
  ASSERT_TRUE(aborted);
  ASSERT_CONTAINS(out, "internal error: shape mismatch: 4 vs 5");
  free(out);
}

TEST_MAIN(err_sets_message_and_returns_code, context_prepends,
          long_messages_are_truncated_not_overflowed, exit_codes,
          names_and_descriptions_cover_every_code, assert_aborts_with_file_line_and_expression)
