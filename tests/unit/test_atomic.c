/* core/atomic: commit, abort, no-clobber, stale temporary files, unwritable directories, and
 * signal-time cleanup. */
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/atomic.h"
#include "tests/test.h"

static int exists(const char *p) { return access(p, F_OK) == 0; }

TEST(commit_renames_into_place) {
  ec_atomic a;
  const char *final = test_path("out.bin");
  ASSERT_OK(ec_atomic_begin(&a, final, 0));
  ASSERT_TRUE(exists(a.tmp_path) && !exists(final));
  ASSERT_CONTAINS(a.tmp_path, "out.bin.tmp");
  ASSERT_EQ_INT(test_write_file(a.tmp_path, "data", 4), 0);
  ASSERT_OK(ec_atomic_commit(&a));
  ASSERT_TRUE(exists(final) && !exists(test_path("out.bin.tmp")));
  char *c = test_read_file(final, NULL);
  ASSERT_STR_EQ(c, "data");
  free(c);
  ASSERT_TRUE(a.tmp_path == NULL && a.final_path == NULL);
}

TEST(overwrite_replaces_unless_noclobber) {
  ec_atomic a;
  const char *final = test_path("keep.bin");
  test_write_file(final, "old", 3);
  ASSERT_STATUS(ec_atomic_begin(&a, final, EC_ATOMIC_NOCLOBBER), EC_EEXIST, "keep.bin exists; refusing to overwrite it");
  ASSERT_TRUE(!exists(test_path("keep.bin.tmp")));
  ASSERT_OK(ec_atomic_begin(&a, final, 0));
  test_write_file(a.tmp_path, "new", 3);
  ASSERT_OK(ec_atomic_commit(&a));
  char *c = test_read_file(final, NULL);
  ASSERT_STR_EQ(c, "new");
  free(c);
}

TEST(noclobber_race_leaves_the_newcomer) {
  ec_atomic a;
  const char *final = test_path("race.bin");
  ASSERT_OK(ec_atomic_begin(&a, final, EC_ATOMIC_NOCLOBBER));
  test_write_file(a.tmp_path, "mine", 4);
  test_write_file(final, "theirs", 6); /* someone else finished first */
  ASSERT_STATUS(ec_atomic_commit(&a), EC_EEXIST, "appeared while it was being written");
  char *c = test_read_file(final, NULL);
  ASSERT_STR_EQ(c, "theirs");
  free(c);
  ASSERT_TRUE(!exists(test_path("race.bin.tmp")));
}

TEST(abort_removes_temporary) {
  ec_atomic a;
  ASSERT_OK(ec_atomic_begin(&a, test_path("gone.bin"), 0));
  test_write_file(a.tmp_path, "partial", 7);
  ec_atomic_abort(&a);
  ASSERT_TRUE(!exists(test_path("gone.bin.tmp")) && !exists(test_path("gone.bin")));
  ec_atomic_abort(&a); /* twice is fine */
  ec_atomic z;
  memset(&z, 0, sizeof z);
  ec_atomic_abort(&z); /* so is a zeroed struct */
}

TEST(stale_temporary_is_replaced) {
  const char *stale = test_path("s.bin.tmp");
  test_write_file(stale, "crashed writer left this", 24);
  ec_atomic a;
  ASSERT_OK(ec_atomic_begin(&a, test_path("s.bin"), 0));
  size_t n = 99;
  char *c = test_read_file(stale, &n);
  ASSERT_EQ_INT(n, 0); /* fresh, empty */
  free(c);
  ec_atomic_abort(&a);
}

TEST(unwritable_directory_is_reported_with_path) {
  ec_atomic a;
  ASSERT_STATUS(ec_atomic_begin(&a, test_path("no/such/dir/x.h5"), 0), EC_EIO, "cannot create");
  ASSERT_CONTAINS(ec_errmsg(), "no/such/dir/x.h5.tmp: No such file or directory");
  if (geteuid() != 0) {
    const char *ro = test_path("ro");
    mkdir(ro, 0555);
    char p[4200];
    snprintf(p, sizeof p, "%s/x.h5", ro);
    ASSERT_STATUS(ec_atomic_begin(&a, p, 0), EC_EIO, "Permission denied");
  }
}

TEST(signal_removes_temporaries_and_keeps_the_signal_status) {
  const char *final = test_path("sig.bin");
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", final);
  int sigs[2] = {SIGINT, SIGTERM};
  for (int k = 0; k < 2; k++) {
    int pipefd[2];
    ASSERT_EQ_INT(pipe(pipefd), 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      ec_atomic a;
      ec_atomic_install_signal_cleanup();
      if (ec_atomic_begin(&a, final, 0)) _exit(3);
      if (write(pipefd[1], "r", 1) != 1) _exit(4);
      for (;;) pause();
    }
    char c;
    ASSERT_EQ_INT(read(pipefd[0], &c, 1), 1);
    ASSERT_TRUE(exists(tmp));
    kill(pid, sigs[k]);
    int st;
    waitpid(pid, &st, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == sigs[k]);
    ASSERT_TRUE(!exists(tmp) && !exists(final));
  }
}

TEST_MAIN(commit_renames_into_place, overwrite_replaces_unless_noclobber,
          noclobber_race_leaves_the_newcomer, abort_removes_temporary, stale_temporary_is_replaced,
          unwritable_directory_is_reported_with_path,
          signal_removes_temporaries_and_keeps_the_signal_status)
