/* core/fs: mkdir -p, directory tests, open descriptors, writeback hints. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "tests/test.h"

TEST(mkdirs_creates_parents_and_is_idempotent) {
  const char *p = test_path("a/b/c");
  ASSERT_OK(ec_mkdirs(p));
  ASSERT_TRUE(ec_is_dir(p) && ec_is_dir(test_path("a/b")));
  ASSERT_OK(ec_mkdirs(p));
  ASSERT_OK(ec_mkdirs(test_path("a/b/c/"))); /* trailing slash */
}

TEST(mkdirs_reports_a_file_in_the_way) {
  test_write_file(test_path("file"), "x", 1);
  ASSERT_STATUS(ec_mkdirs(test_path("file/sub")), EC_EIO, "file");
  ASSERT_STATUS(ec_mkdirs(test_path("file")), EC_EIO, "a file of that name exists");
  ASSERT_TRUE(!ec_is_dir(test_path("file")) && !ec_is_dir(test_path("missing")));
}

/* The count follows opens and closes exactly (Linux has /proc/self/fd). */
TEST(open_fd_count_follows_opens_and_closes) {
  int before = ec_open_fd_count();
  if (before < 0) {
    printf("# no /proc/self/fd: count unknown\n");
    return;
  }
  ASSERT_TRUE(before >= 3);
  test_write_file(test_path("f"), "abc", 3);
  int a = open(test_path("f"), O_RDONLY), b = open(test_path("f"), O_RDONLY);
  ASSERT_TRUE(a >= 0 && b >= 0);
  ASSERT_TRUE(ec_open_fd_count() == before + 2);
  close(a);
  close(b);
  ASSERT_TRUE(ec_open_fd_count() == before);
}

/* A hint: harmless on a written file, on a read-only descriptor and on -1; the data is intact. */
TEST(start_writeback_is_a_harmless_hint) {
  int fd = open(test_path("w"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_TRUE(fd >= 0);
  ASSERT_TRUE(write(fd, "hello", 5) == 5);
  ec_start_writeback(fd);
  ec_start_writeback(-1);
  close(fd);
  int r = open(test_path("w"), O_RDONLY);
  char buf[8] = {0};
  ec_start_writeback(r);
  ASSERT_TRUE(read(r, buf, sizeof buf) == 5 && !memcmp(buf, "hello", 5));
  close(r);
}

TEST_MAIN(mkdirs_creates_parents_and_is_idempotent, mkdirs_reports_a_file_in_the_way,
          open_fd_count_follows_opens_and_closes, start_writeback_is_a_harmless_hint)
