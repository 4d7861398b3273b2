/* The test runner behind test.h. */
#define _GNU_SOURCE
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int test_failed_;
int test_skipped_;

static char tmpdir[4096];

void test_fail_(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  printf("#   %s:%d: ", file, line);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  test_failed_ = 1;
}

const char *test_tmpdir(void) {
  if (!tmpdir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/edm2c-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
      perror("mkdtemp");
      exit(1);
    }
  }
  return tmpdir;
}

const char *test_path(const char *name) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", test_tmpdir(), name);
  return b;
}

int test_system(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  fflush(stdout);
  int st = system(cmd);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

char *test_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n - 1 == 0) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      }
      buf = nb;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  if (size) *size = n;
  return buf;
}

int test_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  int ok = fwrite(data, 1, size, f) == size;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void remove_tmpdir(void) {
  if (!tmpdir[0]) return;
  if (getenv("EDM2C_KEEP_TMP")) {
    printf("# kept %s\n", tmpdir);
    return;
  }
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int test_run_all_(int argc, char **argv, const test_case *cases, int n) {
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--list")) {
      for (int k = 0; k < n; k++) printf("%s\n", cases[k].name);
      return 0;
    } else if (!strcmp(argv[i], "--case") && i + 1 < argc) {
      only = argv[++i];
    } else {
      fprintf(stderr, "usage: %s [--list] [--case NAME]\n", argv[0]);
      return 2;
    }
  }
  atexit(remove_tmpdir);
  int failed = 0, skipped = 0, ran = 0;
  for (int k = 0; k < n; k++) {
    if (only && strcmp(only, cases[k].name)) continue;
    test_failed_ = test_skipped_ = 0;
    ec_err_clear();
    cases[k].fn();
    ran++;
    if (test_failed_) {
      failed++;
      printf("not ok %d %s\n", ran, cases[k].name);
    } else if (test_skipped_) {
      skipped++;
      printf("ok %d %s # SKIP\n", ran, cases[k].name);
    } else {
      printf("ok %d %s\n", ran, cases[k].name);
    }
    fflush(stdout);
  }
  if (only && ran == 0) {
    fprintf(stderr, "no test named %s\n", only);
    return 2;
  }
  printf("# %d tests: %d passed, %d failed, %d skipped\n", ran, ran - failed - skipped, failed,
         skipped);
  if (failed) return 1;
  if (skipped == ran) return 77;
  return 0;
}
