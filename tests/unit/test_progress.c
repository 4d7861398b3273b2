/* core/progress: exact lines under a fake clock, the redraw rate limit, layouts for bytes,
 * counts, unknown and zero totals, and silence when quiet or when stderr is not a terminal. */
#define _XOPEN_SOURCE 700 /* posix_openpt and friends, for the pseudo-terminal test */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "core/progress.h"
#include "tests/test.h"

static double fake_now;
static double fake_clock(void) { return fake_now; }

/* A bar's output goes to this file; output() returns what it holds (free with free()). */
static FILE *open_out(void) { return fopen(test_path("progress.txt"), "w+"); }

static char *output(FILE *f) {
  fflush(f);
  return test_read_file(test_path("progress.txt"), NULL);
}

/* Writes "[###   ]", `fill` of `width` cells filled, into buf and returns it. */
static const char *bar(char *buf, int fill, int width) {
  buf[0] = '[';
  for (int i = 0; i < width; i++) buf[1 + i] = i < fill ? '#' : ' ';
  buf[1 + width] = ']';
  buf[2 + width] = '\0';
  return buf;
}

static int count_char(const char *s, char c) {
  int n = 0;
  for (; *s; s++) n += *s == c;
  return n;
}

TEST(counts_exact_lines) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "train", 100, 0);
  fake_now = 0.05;
  ec_progress_update(&p, 5); /* too soon after begin: stored, not drawn */
  char *s = output(f);
  ASSERT_STR_EQ(s, "");
  free(s);
  fake_now = 0.1;
  ec_progress_update(&p, 10);
  fake_now = 0.15;
  ec_progress_update(&p, 30);
  fake_now = 0.2;
  ec_progress_update(&p, 50);
  fake_now = 0.25;
  ec_progress_update(&p, 100);
  ec_progress_end(&p);
  char b1[40], b2[40], b3[40], want[512];
  snprintf(want, sizeof want,
           "\rtrain  10%% %s 10/100  100 it/s  ETA 0.90 s"
           "\rtrain  50%% %s 50/100  250 it/s  ETA 0.20 s"
           "\rtrain 100%% %s 100/100  400 it/s  took 0.25 s\n",
           bar(b1, 3, 30), bar(b2, 15, 30), bar(b3, 30, 30));
  s = output(f);
  ASSERT_STR_EQ(s, want);
  free(s);
  ec_progress_end(&p); /* a second end prints nothing more */
  ec_progress_update(&p, 5);
  s = output(f);
  ASSERT_STR_EQ(s, want);
  free(s);
  fclose(f);
}

TEST(bytes_exact_lines) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  const int64_t gib = INT64_C(1) << 30;
  fake_now = 10; /* the clock's origin does not matter */
  ec_progress_begin_to(&p, f, fake_clock, "read", 2 * gib, 1);
  fake_now = 12;
  ec_progress_update(&p, gib);
  fake_now = 14;
  ec_progress_add(&p, gib);
  ec_progress_end(&p);
  char b1[40], b2[40], b3[40], want[512];
  /* The bar takes what the numbers leave of 79 columns, at most 30 cells. */
  snprintf(want, sizeof want,
           "\rread  50%% %s 1.00 GiB/2.00 GiB  512 MiB/s  ETA 2.00 s"
           "\rread 100%% %s 2.00 GiB/2.00 GiB  512 MiB/s  ETA 0.00 s"
           "\rread 100%% %s 2.00 GiB/2.00 GiB  512 MiB/s  took 4.00 s\n",
           bar(b1, 13, 26), bar(b2, 26, 26), bar(b3, 25, 25));
  char *s = output(f);
  ASSERT_STR_EQ(s, want);
  free(s);
  fclose(f);
}

TEST(unknown_total_spins_without_percent_or_eta) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "scan", -1, 0);
  fake_now = 0.1;
  ec_progress_update(&p, 1000);
  fake_now = 1.0;
  ec_progress_update(&p, 1001);
  ec_progress_end(&p);
  char *s = output(f);
  /* The second line is one shorter, so a space blanks the first one's last character. */
  ASSERT_STR_EQ(s, "\rscan | 1000  10000 it/s"
                   "\rscan / 1001  1001 it/s "
                   "\rscan 1001  1001 it/s  took 1.00 s\n");
  ASSERT_TRUE(!strchr(s, '%'));
  ASSERT_TRUE(!strstr(s, "ETA"));
  free(s);
  fclose(f);

  /* Any negative total counts as unknown. */
  ec_progress_begin_to(&p, NULL, fake_clock, "x", -5, 0);
  ASSERT_EQ_INT(p.total, -1);
}

TEST(zero_total_is_complete) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "", 0, 0);
  fake_now = 0.1;
  ec_progress_update(&p, 0);
  char b[40], want[256];
  snprintf(want, sizeof want, "\r100%% %s 0/0  0.00 it/s  ETA 0.00 s", bar(b, 30, 30));
  char *s = output(f);
  ASSERT_STR_EQ(s, want); /* no label, no space before the percent */
  free(s);
  ec_progress_end(&p);
  fclose(f);
}

TEST(percent_reaches_100_only_when_done) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "w", 1000, 0);
  fake_now = 1;
  ec_progress_update(&p, 999);
  char b[40], want[256];
  snprintf(want, sizeof want, " 99%% %s 999/1000", bar(b, 29, 30));
  char *s = output(f);
  ASSERT_CONTAINS(s, want);
  free(s);
  fake_now = 2;
  ec_progress_update(&p, 1500); /* more than the total: clamped, not overflowing the bar */
  snprintf(want, sizeof want, "100%% %s 1500/1000", bar(b, 30, 30));
  s = output(f);
  ASSERT_CONTAINS(s, want);
  free(s);
  fclose(f);
}

TEST(at_most_ten_draws_per_second) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "loop", 1000, 0);
  for (int i = 1; i <= 1000; i++) {
    fake_now = i / 1000.0;
    ec_progress_add(&p, 1);
  }
  ASSERT_EQ_INT(p.done, 1000);
  char *s = output(f);
  ASSERT_EQ_INT(count_char(s, '\r'), 10);
  ASSERT_EQ_INT(count_char(s, '\n'), 0);
  free(s);
  ec_progress_end(&p);
  s = output(f);
  ASSERT_EQ_INT(count_char(s, '\r'), 11);
  ASSERT_EQ_INT(count_char(s, '\n'), 1);
  free(s);
  fclose(f);
}

TEST(short_work_draws_nothing) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "quick", 10, 0);
  fake_now = 0.09;
  ec_progress_update(&p, 10);
  ec_progress_end(&p);
  char *s = output(f);
  ASSERT_STR_EQ(s, "");
  free(s);
  fclose(f);
}

TEST(narrow_lines_drop_the_bar_then_get_cut) {
  FILE *f = open_out();
  ASSERT_TRUE(f != NULL);
  ec_progress p;
  fake_now = 0;
  ec_progress_begin_to(&p, f, fake_clock, "train", 100, 0);
  p.width = 40;
  fake_now = 0.1;
  ec_progress_update(&p, 10);
  p.width = 30;
  fake_now = 0.2;
  ec_progress_update(&p, 20);
  char *s = output(f);
  /* 39 columns hold everything but the bar; 29 columns cut the line (and blank the rest). */
  ASSERT_STR_EQ(s, "\rtrain  10% 10/100  100 it/s  ETA 0.90 s"
                   "\rtrain  20% 20/100  100 it/s            ");
  free(s);
  fclose(f);

  char label[80];
  memset(label, 'x', sizeof label - 1);
  label[sizeof label - 1] = '\0';
  ec_progress_begin_to(&p, NULL, fake_clock, label, 1, 0);
  ASSERT_EQ_INT(strlen(p.label), sizeof p.label - 1);
}

/* Points fd 2 at `fd` (a file or a terminal); returns the saved original. */
static int redirect_stderr(int fd) {
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  return saved;
}

static void restore_stderr(int saved) {
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* Runs a real-clock bar through begin, an update late enough to be drawn, and end. */
static void run_real_bar(int quiet, ec_progress *p) {
  ec_progress_begin(p, "real", 3, 0, quiet);
  ec_progress_update(p, 1);
  sleep_s(1.5 * EC_PROGRESS_INTERVAL);
  ec_progress_update(p, 3);
  ec_progress_end(p);
}

TEST(silent_when_stderr_is_not_a_terminal) {
  const char *path = test_path("stderr.txt");
  for (int quiet = 0; quiet <= 1; quiet++) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_TRUE(fd >= 0);
    int saved = redirect_stderr(fd);
    close(fd);
    ec_progress p;
    run_real_bar(quiet, &p);
    restore_stderr(saved);
    ASSERT_TRUE(p.out == NULL);
    ASSERT_EQ_INT(p.done, 3);
    size_t size = 99;
    char *s = test_read_file(path, &size);
    ASSERT_TRUE(s != NULL);
    ASSERT_EQ_INT(size, 0);
    free(s);
  }
}

/* Reads what is waiting on a pseudo-terminal's master side. */
static size_t drain(int fd, char *buf, size_t cap) {
  size_t n = 0;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  while (n + 1 < cap && poll(&pfd, 1, 100) > 0 && (pfd.revents & POLLIN)) {
    ssize_t got = read(fd, buf + n, cap - n - 1);
    if (got <= 0) break;
    n += (size_t)got;
  }
  buf[n] = '\0';
  return n;
}

TEST(draws_on_a_terminal_unless_quiet) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) || unlockpt(master)) {
    if (master >= 0) close(master);
    TEST_SKIP("no pseudo-terminals here");
  }
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  if (slave < 0) {
    close(master);
    TEST_SKIP("cannot open the pseudo-terminal's slave side");
  }
  struct winsize ws = {.ws_row = 24, .ws_col = 50};
  ioctl(slave, TIOCSWINSZ, &ws);
  char buf[4096];
  size_t n[2];
  int width = 0;
  for (int quiet = 0; quiet <= 1; quiet++) {
    int saved = redirect_stderr(slave);
    ec_progress p;
    run_real_bar(quiet, &p);
    restore_stderr(saved);
    if (!quiet) width = p.width;
    n[quiet] = drain(master, buf, sizeof buf);
    if (!quiet) {
      ASSERT_CONTAINS(buf, "\rreal ");
      ASSERT_CONTAINS(buf, "3/3");
      ASSERT_CONTAINS(buf, "took");
    }
  }
  close(slave);
  close(master);
  ASSERT_EQ_INT(width, 50); /* taken from the terminal */
  ASSERT_TRUE(n[0] > 0);
  ASSERT_EQ_INT(n[1], 0);
}

TEST(monotonic_clock) {
  double a = ec_progress_now(), b = ec_progress_now();
  ASSERT_TRUE(a > 0);
  ASSERT_TRUE(b >= a);
}

TEST_MAIN(counts_exact_lines, bytes_exact_lines, unknown_total_spins_without_percent_or_eta,
          zero_total_is_complete, percent_reaches_100_only_when_done, at_most_ten_draws_per_second,
          short_work_draws_nothing, narrow_lines_drop_the_bar_then_get_cut,
          silent_when_stderr_is_not_a_terminal, draws_on_a_terminal_unless_quiet, monotonic_clock)
