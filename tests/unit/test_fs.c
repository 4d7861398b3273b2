/* core/fs: mkdir -p and directory tests. */
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

TEST_MAIN(mkdirs_creates_parents_and_is_idempotent, mkdirs_reports_a_file_in_the_way)
