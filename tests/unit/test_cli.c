/* core/cli: the option loop and its messages, --help layout, value parsers and formatters. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/cli.h"
#include "tests/test.h"

/* ---- capturing stderr ---- */

static int saved_stderr = -1;

/* Points fd 2 at a fresh file until capture_end; asserts must wait until after capture_end, or a
 * failing one would leave stderr redirected for the rest of the program. */
static void capture_begin(void) {
  fflush(stderr);
  saved_stderr = dup(2);
  int fd = open(test_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
}

/* Restores fd 2 and returns what was written meanwhile (free with free()). */
static char *capture_end(void) {
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  saved_stderr = -1;
  return test_read_file(test_path("stderr.txt"), NULL);
}

/* ---- option loop ---- */

/* Two ids equal getopt's own '?' and ':' returns, to show they cannot be confused. */
enum { OPT_SNAPSHOTS = 0, OPT_SEED = 7, OPT_SIGMA = 8, OPT_VERBOSE = ':', OPT_HELP = '?' };

static const ec_cli_opt opts[] = {
    {"snapshots", 1, OPT_SNAPSHOTS, "DIR", "folder of training snapshots"},
    {"seed", 1, OPT_SEED, "N", "random seed"},
    {"sigma", 1, OPT_SIGMA, "S", "noise level"},
    {"verbose", 0, OPT_VERBOSE, NULL, "print more"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static const char *opt_name(int id) {
  for (int i = 0; opts[i].name; i++)
    if (opts[i].id == id) return opts[i].name;
  return "?";
}

/* Runs the loop over args (NULL-terminated) and describes what came out as
 * "seed=5 verbose | pos1 pos2", or "... ERROR" when the loop failed. */
static void run_cli(ec_cli *cli, const char *const *args, char *trace, size_t n) {
  char *argv[32];
  int argc = 0;
  while (args[argc]) {
    argv[argc] = (char *)args[argc];
    argc++;
  }
  argv[argc] = NULL;
  size_t len = 0;
  trace[0] = '\0';
  const char *arg;
  int id;
  while ((id = ec_cli_next(cli, argc, argv, &arg)) != EC_CLI_END) {
    if (id == EC_CLI_ERROR) {
      snprintf(trace + len, n - len, "%sERROR", len ? " " : "");
      return;
    }
    len += (size_t)snprintf(trace + len, n - len, "%s%s%s%s", len ? " " : "", opt_name(id),
                            arg ? "=" : "", arg ? arg : "");
  }
  len += (size_t)snprintf(trace + len, n - len, "%s|", len ? " " : "");
  for (int i = ec_cli_optind(cli); i < argc; i++)
    len += (size_t)snprintf(trace + len, n - len, " %s", argv[i]);
}

/* Runs a fresh parser over args; returns the trace and what went to stderr. */
static void parse(const char *const *args, char *trace, size_t n, char **err) {
  ec_cli cli = {.prog = "prog", .opts = opts};
  capture_begin();
  run_cli(&cli, args, trace, n);
  *err = capture_end();
}

#define ARGS(...) ((const char *const[]){"prog", __VA_ARGS__, NULL})

TEST(options_with_and_without_arguments) {
  char t[512], *err;
  parse(ARGS("--seed", "5", "--verbose", "--snapshots=dir", "a", "b"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=5 verbose snapshots=dir | a b");
  ASSERT_STR_EQ(err, "");
  free(err);

  parse(ARGS("--help"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "help |");
  free(err);

  /* An argument may start with '-', and "--opt=" gives an empty one rather than none. */
  parse(ARGS("--seed", "-3", "--sigma=", "--snapshots", "--verbose"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=-3 sigma= snapshots=--verbose |");
  ASSERT_STR_EQ(err, "");
  free(err);
}

TEST(positionals_are_moved_after_the_options) {
  char t[512], *err;
  parse(ARGS("a", "--seed=1", "-", "b", "--", "--verbose"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=1 | a - b --verbose");
  ASSERT_STR_EQ(err, "");
  free(err);
  parse(ARGS("x"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "| x");
  free(err);
  parse((const char *const[]){"prog", NULL}, t, sizeof t, &err);
  ASSERT_STR_EQ(t, "|");
  free(err);
}

TEST(unique_abbreviations) {
  char t[512], *err;
  parse(ARGS("--verb", "--sn", "d", "--see=2", "--h"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "verbose snapshots=d seed=2 help |");
  free(err);
}

TEST(unknown_option) {
  char t[512], *err;
  parse(ARGS("--seed", "1", "--bogus", "--verbose"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=1 ERROR");
  ASSERT_STR_EQ(err, "prog: unrecognized option '--bogus'\nTry 'prog --help'.\n");
  free(err);
  parse(ARGS("--bogus=1"), t, sizeof t, &err);
  ASSERT_STR_EQ(err, "prog: unrecognized option '--bogus=1'\nTry 'prog --help'.\n");
  free(err);
  parse(ARGS("-x"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "ERROR");
  ASSERT_STR_EQ(err, "prog: invalid option -- 'x'\nTry 'prog --help'.\n");
  free(err);
}

TEST(missing_and_unwanted_arguments) {
  char t[512], *err;
  parse(ARGS("--verbose", "--snapshots"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "verbose ERROR");
  ASSERT_STR_EQ(err, "prog: option '--snapshots' requires an argument\nTry 'prog --help'.\n");
  free(err);
  /* The message names the option in full even when it was abbreviated. */
  parse(ARGS("--snap"), t, sizeof t, &err);
  ASSERT_STR_EQ(err, "prog: option '--snapshots' requires an argument\nTry 'prog --help'.\n");
  free(err);
  parse(ARGS("--verbose=yes"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "ERROR");
  ASSERT_STR_EQ(err, "prog: option '--verbose' doesn't allow an argument\nTry 'prog --help'.\n");
  free(err);
}

TEST(ambiguous_abbreviation) {
  char t[512], *err;
  parse(ARGS("--s", "1"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "ERROR");
  ASSERT_STR_EQ(err, "prog: option '--s' is ambiguous; possibilities: '--snapshots' '--seed' "
                     "'--sigma'\nTry 'prog --help'.\n");
  free(err);
  parse(ARGS("--se=1"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=1 |");
  free(err);
}

TEST(several_argv_arrays_in_one_process) {
  char t[512], *err;
  /* A parse abandoned inside a "-xy" cluster must not leak into the next one. */
  parse(ARGS("-xy", "--seed", "1"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "ERROR");
  free(err);
  parse(ARGS("b", "--seed", "2", "c"), t, sizeof t, &err);
  ASSERT_STR_EQ(t, "seed=2 | b c");
  free(err);

  /* One ec_cli reused on a second argv starts over; another ec_cli on the same argv does too. */
  ec_cli cli = {.prog = "prog", .opts = opts};
  run_cli(&cli, ARGS("--seed", "3", "p"), t, sizeof t);
  ASSERT_STR_EQ(t, "seed=3 | p");
  run_cli(&cli, ARGS("q", "--verbose"), t, sizeof t);
  ASSERT_STR_EQ(t, "verbose | q");
  char *argv[] = {"prog", "--sigma", "0.5", "r", NULL};
  const char *arg;
  ec_cli a = {.prog = "prog", .opts = opts}, b = {.prog = "prog", .opts = opts};
  ASSERT_EQ_INT(ec_cli_next(&a, 4, argv, &arg), OPT_SIGMA);
  ASSERT_STR_EQ(arg, "0.5");
  ASSERT_EQ_INT(ec_cli_next(&a, 4, argv, &arg), EC_CLI_END);
  ASSERT_TRUE(arg == NULL);
  ASSERT_EQ_INT(ec_cli_optind(&a), 3);
  ASSERT_EQ_INT(ec_cli_next(&a, 4, argv, &arg), OPT_SIGMA); /* a finished parse restarts */
  ASSERT_EQ_INT(ec_cli_next(&a, 4, argv, &arg), EC_CLI_END);
  ASSERT_EQ_INT(ec_cli_next(&b, 4, argv, &arg), OPT_SIGMA);
  ASSERT_EQ_INT(ec_cli_next(&b, 4, argv, NULL), EC_CLI_END);
  ASSERT_EQ_INT(ec_cli_optind(&b), 3);
}

TEST(usage_error) {
  ec_cli cli = {.prog = "edm2c-posthoc", .opts = opts};
  capture_begin();
  ec_status st = ec_cli_usage(&cli, "expected %d snapshots, got %d", 2, 1);
  char *err = capture_end();
  ASSERT_EQ_INT(st, EC_EUSAGE);
  ASSERT_EQ_INT(ec_exit_code(st), 2);
  ASSERT_STR_EQ(err, "edm2c-posthoc: expected 2 snapshots, got 1\n"
                     "Try 'edm2c-posthoc --help'.\n");
  ASSERT_STR_EQ(ec_errmsg(), "expected 2 snapshots, got 1");
  free(err);
}

/* ---- --help ---- */

static char *help_text(const ec_cli *cli) {
  FILE *f = fopen(test_path("help.txt"), "w");
  if (!f) return NULL;
  ec_cli_help(cli, f);
  fclose(f);
  return test_read_file(test_path("help.txt"), NULL);
}

TEST(help_layout) {
  static const ec_cli_opt hopts[] = {
      {"snapshots", 1, 0, "DIR", "folder of training snapshots"},
      {"seed", 1, 1, NULL, "random seed"},
      {"batch", 1, 2, "N",
       "images per batch, summed over all GPUs; the learning rate schedule and the EMA length "
       "are defined in images, so changing the batch does not change them"},
      {"this-option-name-is-far-too-long", 1, 3, "FILE", "help on its own line"},
      {"list", 0, 4, NULL, "lines:\n  one\n  two"},
      {"hidden-help", 0, 5, NULL, NULL},
      {"help", 0, 6, NULL, "print this help and exit"},
      {0},
  };
  ec_cli cli = {
      .prog = "edm2c-train",
      .synopsis = "[OPTIONS] --data DIR\n--resume RUNDIR",
      .description = "Trains an EDM2 model. The run folder receives snapshots, checkpoints and a "
                     "log; its layout is described in docs/run-folder.md, which also lists every "
                     "file.\n\nExample:\n    edm2c-train --data imagenet --batch 2048\n",
      .opts = hopts,
  };
  char *h = help_text(&cli);
  ASSERT_STR_EQ(
      h, "Usage: edm2c-train [OPTIONS] --data DIR\n"
         "   or: edm2c-train --resume RUNDIR\n"
         "\n"
         "Trains an EDM2 model. The run folder receives snapshots, checkpoints and a log; its "
         "layout is\n"
         "described in docs/run-folder.md, which also lists every file.\n"
         "\n"
         "Example:\n"
         "    edm2c-train --data imagenet --batch 2048\n"
         "\n"
         "Options:\n"
         "  --snapshots DIR   folder of training snapshots\n"
         "  --seed VALUE      random seed\n"
         "  --batch N         images per batch, summed over all GPUs; the learning rate schedule "
         "and the EMA\n"
         "                    length are defined in images, so changing the batch does not "
         "change them\n"
         "  --this-option-name-is-far-too-long FILE\n"
         "                    help on its own line\n"
         "  --list            lines:\n"
         "                      one\n"
         "                      two\n"
         "  --hidden-help\n"
         "  --help            print this help and exit\n");
  for (const char *line = h; *line;) {
    size_t len = strcspn(line, "\n");
    ASSERT_TRUE(len <= EC_CLI_HELP_WIDTH);
    ASSERT_TRUE(len == 0 || line[len - 1] != ' '); /* no trailing spaces */
    line += len + (line[len] == '\n');
  }
  free(h);

  ec_cli bare = {.prog = "p"};
  h = help_text(&bare);
  ASSERT_STR_EQ(h, "Usage: p [OPTIONS]\n");
  free(h);
  ec_cli empty_syn = {.prog = "p", .synopsis = ""};
  h = help_text(&empty_syn);
  ASSERT_STR_EQ(h, "Usage: p\n");
  free(h);
}

/* ---- parsers ---- */

TEST(parse_i64) {
  int64_t v = 0;
  ASSERT_OK(ec_parse_i64("--seed", "0", &v));
  ASSERT_EQ_INT(v, 0);
  ASSERT_OK(ec_parse_i64("--seed", "42", &v));
  ASSERT_EQ_INT(v, 42);
  ASSERT_OK(ec_parse_i64("--seed", "-42", &v));
  ASSERT_EQ_INT(v, -42);
  ASSERT_OK(ec_parse_i64("--seed", "+7", &v));
  ASSERT_EQ_INT(v, 7);
  ASSERT_OK(ec_parse_i64("--seed", "007", &v));
  ASSERT_EQ_INT(v, 7);
  ASSERT_OK(ec_parse_i64("--seed", "9223372036854775807", &v));
  ASSERT_TRUE(v == INT64_MAX);
  ASSERT_OK(ec_parse_i64("--seed", "-9223372036854775808", &v));
  ASSERT_TRUE(v == INT64_MIN);

  v = 99;
  ASSERT_STATUS(ec_parse_i64("--seed", "abc", &v), EC_EINVAL, "--seed: 'abc' is not an integer");
  ASSERT_STR_EQ(ec_errmsg(), "--seed: 'abc' is not an integer");
  static const char *const bad[] = {"", " 1", "1 ", "12abc", "1.5", "0x10", "1e3", "-", "+",
                                    "--1", "1,000", "\t1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ASSERT_STATUS(ec_parse_i64("--seed", bad[i], &v), EC_EINVAL, "is not an integer");
  ASSERT_STATUS(ec_parse_i64("--seed", "9223372036854775808", &v), EC_EINVAL,
                "--seed: '9223372036854775808' is out of range for a 64-bit integer");
  ASSERT_STATUS(ec_parse_i64("--seed", "-9223372036854775809", &v), EC_EINVAL, "out of range");
  ASSERT_STATUS(ec_parse_i64("--seed", "99999999999999999999999", &v), EC_EINVAL, "out of range");
  ASSERT_EQ_INT(v, 99); /* untouched by every failure */
  ASSERT_STATUS(ec_parse_i64(NULL, "x", &v), EC_EINVAL, "'x' is not an integer");
  ASSERT_STR_EQ(ec_errmsg(), "'x' is not an integer");
}

TEST(parse_int_range) {
  int64_t v = 0;
  ASSERT_OK(ec_parse_int_range("--batch", "1", 1, 10, &v));
  ASSERT_EQ_INT(v, 1);
  ASSERT_OK(ec_parse_int_range("--batch", "10", 1, 10, &v));
  ASSERT_EQ_INT(v, 10);
  ASSERT_OK(ec_parse_int_range("--batch", "-5", -5, 5, &v));
  ASSERT_EQ_INT(v, -5);
  v = 3;
  ASSERT_STATUS(ec_parse_int_range("--batch", "0", 1, 10, &v), EC_EINVAL,
                "--batch: '0' is out of range (1 to 10)");
  ASSERT_STATUS(ec_parse_int_range("--batch", "11", 1, 10, &v), EC_EINVAL,
                "out of range (1 to 10)");
  ASSERT_STATUS(ec_parse_int_range("--batch", "99999999999999999999", 1, 10, &v), EC_EINVAL,
                "out of range (1 to 10)");
  ASSERT_STATUS(ec_parse_int_range("--batch", "", 1, 10, &v), EC_EINVAL,
                "--batch: '' is not an integer");
  ASSERT_STATUS(ec_parse_int_range("--batch", "5x", 1, 10, &v), EC_EINVAL, "is not an integer");
  ASSERT_EQ_INT(v, 3);
}

TEST(parse_f64) {
  double v = 0;
  ASSERT_OK(ec_parse_f64("--sigma", "1.5", &v));
  ASSERT_TRUE(v == 1.5);
  ASSERT_OK(ec_parse_f64("--sigma", "-2e-3", &v));
  ASSERT_TRUE(v == -2e-3);
  ASSERT_OK(ec_parse_f64("--sigma", "0", &v));
  ASSERT_TRUE(v == 0);
  ASSERT_OK(ec_parse_f64("--sigma", ".25", &v));
  ASSERT_TRUE(v == 0.25);
  ASSERT_OK(ec_parse_f64("--sigma", "1e308", &v));
  ASSERT_TRUE(v == 1e308);
  ASSERT_OK(ec_parse_f64("--sigma", "1e-400", &v)); /* underflow to 0 is still a number */
  ASSERT_TRUE(v == 0);

  v = 7;
  ASSERT_STATUS(ec_parse_f64("--sigma", "abc", &v), EC_EINVAL, "--sigma: 'abc' is not a number");
  static const char *const bad[] = {"", " 1", "1 ", "1.5x", ".", "1,5", "e5", "-", "0.5.1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ASSERT_STATUS(ec_parse_f64("--sigma", bad[i], &v), EC_EINVAL, "is not a number");
  ASSERT_STATUS(ec_parse_f64("--sigma", "inf", &v), EC_EINVAL,
                "--sigma: 'inf' is not a finite number");
  ASSERT_STATUS(ec_parse_f64("--sigma", "-Infinity", &v), EC_EINVAL, "is not a finite number");
  ASSERT_STATUS(ec_parse_f64("--sigma", "nan", &v), EC_EINVAL, "is not a finite number");
  ASSERT_STATUS(ec_parse_f64("--sigma", "1e999", &v), EC_EINVAL,
                "--sigma: '1e999' is out of range");
  ASSERT_STATUS(ec_parse_f64("--sigma", "-1e999", &v), EC_EINVAL, "out of range");
  ASSERT_TRUE(v == 7);
}

TEST(parse_nimg) {
  static const struct {
    const char *s;
    int64_t v;
  } good[] = {
      {"0", 0},
      {"1000", 1000},
      {"8Mi", 8 << 20},
      {"512Ki", 512 << 10},
      {"2Gi", INT64_C(2) << 30},
      {"200k", 200000},
      {"3M", 3000000},
      {"2G", 2000000000},
      {"1.5M", 1500000},
      {"0.5Ki", 512},
      {".5Ki", 512},
      {"1.5Mi", 1572864},
      {"2.25k", 2250},
      {"1.000Ki", 1024},
      {"1.0", 1},
      {"0.001k", 1},
      {"0.0009765625Mi", 1024},
      {"0.000000000931322574615478515625Gi", 1}, /* 2^-30, with 30 decimal places */
      {"8589934591Gi", INT64_MAX - (INT64_C(1) << 30) + 1},
      {"9223372036854775807", INT64_MAX},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t v = -1;
    ASSERT_OK(ec_parse_nimg("--duration", good[i].s, &v));
    ASSERT_EQ_INT(v, good[i].v);
  }
  int64_t v = 5;
  ASSERT_STATUS(ec_parse_nimg("--duration", "0.3Ki", &v), EC_EINVAL,
                "--duration: '0.3Ki' is not a whole number of images");
  ASSERT_STATUS(ec_parse_nimg("--duration", "1.5", &v), EC_EINVAL, "not a whole number");
  ASSERT_STATUS(ec_parse_nimg("--duration", "0.0001k", &v), EC_EINVAL, "not a whole number");
  ASSERT_STATUS(ec_parse_nimg("--duration", "-5", &v), EC_EINVAL, "--duration: '-5' is negative");
  ASSERT_STATUS(ec_parse_nimg("--duration", "-1Mi", &v), EC_EINVAL, "is negative");
  ASSERT_STATUS(ec_parse_nimg("--duration", "-.5k", &v), EC_EINVAL, "is negative");
  ASSERT_STATUS(ec_parse_nimg("--duration", "9223372036854775808", &v), EC_EINVAL,
                "--duration: '9223372036854775808' is too large");
  ASSERT_STATUS(ec_parse_nimg("--duration", "8589934592Gi", &v), EC_EINVAL, "is too large");
  ASSERT_STATUS(ec_parse_nimg("--duration", "9223372036854775.808k", &v), EC_EINVAL,
                "is too large");
  ASSERT_STATUS(ec_parse_nimg("--duration", "999999999999999999999999999999999999999999Gi", &v),
                EC_EINVAL, "is too large");
  ASSERT_STATUS(ec_parse_nimg("--duration", "0.0000000000000000000000000000000000000001Gi", &v),
                EC_EINVAL, "has too many decimal places");
  ASSERT_STATUS(ec_parse_size("--max-memory", "1.0000000000000000000000000000000000000001", &v),
                EC_EINVAL, "has too many decimal places");
  ASSERT_STATUS(ec_parse_nimg("--duration", "", &v), EC_EINVAL,
                "--duration: '' is not a count of images");
  static const char *const not_counts[] = {"abc", "Mi", ".", "+5", " 5", "-"};
  for (size_t i = 0; i < sizeof not_counts / sizeof not_counts[0]; i++)
    ASSERT_STATUS(ec_parse_nimg("--duration", not_counts[i], &v), EC_EINVAL,
                  "is not a count of images");
  ASSERT_STATUS(ec_parse_nimg("--duration", "8mi", &v), EC_EINVAL,
                "--duration: '8mi' has an unknown suffix 'mi'");
  static const char *const bad_suffix[] = {"8 Mi", "8K", "8Mix", "8MiB", "5 ", "1e6", "8Ti",
                                           "0x10"};
  for (size_t i = 0; i < sizeof bad_suffix / sizeof bad_suffix[0]; i++)
    ASSERT_STATUS(ec_parse_nimg("--duration", bad_suffix[i], &v), EC_EINVAL, "unknown suffix");
  ASSERT_EQ_INT(v, 5);
}

TEST(parse_size) {
  static const struct {
    const char *s;
    int64_t v;
  } good[] = {
      {"0", 0},
      {"1024", 1024},
      {"512B", 512},
      {"512b", 512},
      {"1K", 1024},
      {"1k", 1024},
      {"1Ki", 1024},
      {"1KiB", 1024},
      {"1kib", 1024},
      {"1kB", 1000},
      {"1KB", 1000},
      {"2M", 2 << 20},
      {"2MiB", 2 << 20},
      {"2MB", 2000000},
      {"1.5G", 1610612736},
      {"1GiB", 1 << 30},
      {"1gb", 1000000000},
      {"1T", INT64_C(1) << 40},
      {"1TiB", INT64_C(1) << 40},
      {"1TB", INT64_C(1000000000000)},
      {"0.1GiB", 107374182}, /* 107374182.4, truncated */
      {"0.5B", 0},
      {"8388607T", INT64_MAX - (INT64_C(1) << 40) + 1},
      {"9223372036854775807", INT64_MAX},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int64_t v = -1;
    ASSERT_OK(ec_parse_size("--max-memory", good[i].s, &v));
    ASSERT_EQ_INT(v, good[i].v);
  }
  int64_t v = 5;
  ASSERT_STATUS(ec_parse_size("--max-memory", "-1", &v), EC_EINVAL,
                "--max-memory: '-1' is negative");
  ASSERT_STATUS(ec_parse_size("--max-memory", "-1G", &v), EC_EINVAL, "is negative");
  ASSERT_STATUS(ec_parse_size("--max-memory", "-.5G", &v), EC_EINVAL, "is negative");
  ASSERT_STATUS(ec_parse_size("--max-memory", "8388608T", &v), EC_EINVAL,
                "--max-memory: '8388608T' is too large");
  ASSERT_STATUS(ec_parse_size("--max-memory", "9223372036854775808", &v), EC_EINVAL,
                "is too large");
  ASSERT_STATUS(ec_parse_size("--max-memory", "", &v), EC_EINVAL,
                "--max-memory: '' is not a size in bytes");
  static const char *const not_sizes[] = {"G", "abc", ".", " 1", "+1", "-"};
  for (size_t i = 0; i < sizeof not_sizes / sizeof not_sizes[0]; i++)
    ASSERT_STATUS(ec_parse_size("--max-memory", not_sizes[i], &v), EC_EINVAL,
                  "is not a size in bytes");
  ASSERT_STATUS(ec_parse_size("--max-memory", "1X", &v), EC_EINVAL,
                "--max-memory: '1X' has an unknown suffix 'X'");
  static const char *const bad_suffix[] = {"1 G", "1GiBs", "1PB", "1Gi B", "1 ", "1e9", "1iB"};
  for (size_t i = 0; i < sizeof bad_suffix / sizeof bad_suffix[0]; i++)
    ASSERT_STATUS(ec_parse_size("--max-memory", bad_suffix[i], &v), EC_EINVAL, "unknown suffix");
  ASSERT_EQ_INT(v, 5);
}

TEST(parse_bool) {
  static const char *const yes[] = {"true", "TRUE", "True", "yes", "Yes", "on", "ON", "1"};
  static const char *const no[] = {"false", "FALSE", "no", "No", "off", "Off", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    int v = 0;
    ASSERT_OK(ec_parse_bool("--fp16", yes[i], &v));
    ASSERT_EQ_INT(v, 1);
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    int v = 1;
    ASSERT_OK(ec_parse_bool("--fp16", no[i], &v));
    ASSERT_EQ_INT(v, 0);
  }
  int v = 7;
  ASSERT_STATUS(ec_parse_bool("--fp16", "maybe", &v), EC_EINVAL,
                "--fp16: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
  static const char *const bad[] = {"", "2", "truee", " yes", "yes ", "y", "t", "01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ASSERT_STATUS(ec_parse_bool("--fp16", bad[i], &v), EC_EINVAL, "is not a boolean");
  ASSERT_EQ_INT(v, 7);
}

/* ---- formatters ---- */

TEST(format_bytes) {
  static const struct {
    double bytes;
    const char *s;
  } cases[] = {
      {0, "0 B"},
      {512, "512 B"},
      {1023, "1023 B"},
      {1023.4, "1023 B"},
      {1023.6, "1.00 KiB"},
      {1024, "1.00 KiB"},
      {1536, "1.50 KiB"},
      {2048, "2.00 KiB"},
      {10238, "10.0 KiB"}, /* 9.998 KiB rounds into the next precision */
      {12.3 * 1048576, "12.3 MiB"},
      {123 * 1048576.0, "123 MiB"},
      {1023 * 1024.0, "1023 KiB"},
      {1048575, "1.00 MiB"},
      {1.23 * 1073741824.0, "1.23 GiB"},
      {5.5 * 1099511627776.0, "5.50 TiB"},
      {1125899906842624.0, "1.00 PiB"},
      {1152921504606846976.0, "1.00 EiB"},
      {1180591620717411303424.0, "1024 EiB"},
      {-1536, "-1.50 KiB"},
      {-5, "-5 B"},
      {NAN, "? B"},
      {INFINITY, "? B"},
  };
  char buf[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ASSERT_STR_EQ(ec_format_bytes(buf, sizeof buf, cases[i].bytes), cases[i].s);
  char small[5];
  ASSERT_STR_EQ(ec_format_bytes(small, sizeof small, 1536), "1.50"); /* cut, still terminated */
}

TEST(format_nimg) {
  static const struct {
    int64_t n;
    const char *s;
  } cases[] = {
      {0, "0"},
      {1, "1"},
      {1000, "1000"},
      {1024, "1Ki"},
      {512 << 10, "512Ki"},
      {1536, "1536"},
      {8 << 20, "8Mi"},
      {(INT64_C(1) << 30) + (INT64_C(1) << 20), "1025Mi"},
      {INT64_C(2) << 30, "2Gi"},
      {INT64_C(3) << 40, "3072Gi"},
      {1000000, "1000000"},
      {-1024, "-1024"},
      {INT64_MAX, "9223372036854775807"},
  };
  char buf[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ASSERT_STR_EQ(ec_format_nimg(buf, sizeof buf, cases[i].n), cases[i].s);
    if (cases[i].n < 0) continue;
    int64_t back = -1;
    ASSERT_OK(ec_parse_nimg("--nimg", buf, &back)); /* the output reads back */
    ASSERT_EQ_INT(back, cases[i].n);
  }
}

TEST(format_duration) {
  static const struct {
    double sec;
    const char *s;
  } cases[] = {
      {0, "0.00 s"},
      {0.42, "0.42 s"},
      {9.994, "9.99 s"},
      {9.996, "10.0 s"},
      {42, "42.0 s"},
      {59.94, "59.9 s"},
      {59.96, "1 min 00 s"},
      {65, "1 min 05 s"},
      {192, "3 min 12 s"},
      {3599.4, "59 min 59 s"},
      {3599.6, "1 h 00 min"},
      {2 * 3600 + 5 * 60, "2 h 05 min"},
      {2 * 3600 + 5 * 60 + 29, "2 h 05 min"},
      {86369, "23 h 59 min"},
      {86400, "1 d 00 h"},
      {3 * 86400 + 4 * 3600, "3 d 04 h"},
      {1e16, "1e+16 s"},
      {-0.5, "-0.50 s"},
      {NAN, "?"},
      {INFINITY, "?"},
  };
  char buf[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ASSERT_STR_EQ(ec_format_duration(buf, sizeof buf, cases[i].sec), cases[i].s);
}

TEST_MAIN(options_with_and_without_arguments, positionals_are_moved_after_the_options,
          unique_abbreviations, unknown_option, missing_and_unwanted_arguments,
          ambiguous_abbreviation, several_argv_arrays_in_one_process, usage_error, help_layout,
          parse_i64, parse_int_range, parse_f64, parse_nimg, parse_size, parse_bool, format_bytes,
          format_nimg, format_duration)
