/* Command-line helpers shared by our programs: a getopt_long loop driven by an option table,
 * the --help text made from the same table, strict parsers for option values, and formatters
 * for sizes, image counts and durations.
 *
 * All options are long options. Programs exit 0 on success, 1 on a user error (a bad value, a
 * missing file) and 2 on a usage error (unknown option, missing argument), as
 * ec_exit_code() maps EC_EINVAL and EC_EUSAGE. A typical loop:
 *
 *   enum { OPT_HELP, OPT_SNAPSHOTS, OPT_SEED };
 *   static const ec_cli_opt opts[] = {
 *       {"snapshots", 1, OPT_SNAPSHOTS, "DIR", "folder of training snapshots"},
 *       {"seed", 1, OPT_SEED, "N", "random seed (default 0)"},
 *       {"help", 0, OPT_HELP, NULL, "print this help and exit"},
 *       {0},
 *   };
 *   ec_cli cli = {.prog = "edm2c-posthoc", .synopsis = "[OPTIONS] --snapshots DIR",
 *                 .description = "Reconstructs EMA profiles.", .opts = opts};
 *   const char *arg;
 *   for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
 *     switch (id) {
 *     case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
 *     case OPT_SEED: if ((st = ec_parse_i64("--seed", arg, &seed))) goto fail; break;
 *     ...
 *     default: return 2; // EC_CLI_ERROR: the message is already printed
 *     }
 *   }
 *   // positionals: argv[ec_cli_optind(&cli)] .. argv[argc - 1]
 */
#ifndef EDM2C_CORE_CLI_H
#define EDM2C_CORE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* ec_cli_next's return values besides option ids (which must be >= 0). */
#define EC_CLI_END (-1)
#define EC_CLI_ERROR (-2)

/* getopt_long's table is built on the stack for each call, so the table size is bounded. */
#define EC_CLI_MAX_OPTS 128

/* Width that ec_cli_help wraps to. */
#define EC_CLI_HELP_WIDTH 100

typedef struct {
  const char *name;    /* without the leading "--"; NULL ends the table */
  int has_arg;         /* 0 none, 1 required */
  int id;              /* what ec_cli_next returns for it; >= 0 */
  const char *metavar; /* shown in --help after the name ("DIR"); "VALUE" when NULL */
  const char *help;    /* may hold '\n' for forced breaks; wrapped otherwise */
} ec_cli_opt;

typedef struct {
  const char *prog;        /* name in messages and usage lines */
  const char *synopsis;    /* what follows prog in "Usage:"; '\n' separates alternative forms */
  const char *description; /* paragraphs for --help; may be NULL */
  const ec_cli_opt *opts;  /* terminated by an entry whose name is NULL */
  /* Parser state; zero-initialise the struct (designated initialisers do). */
  char **argv_;
  int started_;
  int optind_;
} ec_cli;

/* Returns the id of the next option and points *arg at its argument (NULL for options without
 * one); EC_CLI_END when the options are exhausted; EC_CLI_ERROR after printing
 * "prog: unrecognized option '--x'" (or "requires an argument", "doesn't allow an argument",
 * "is ambiguous") and "Try 'prog --help'." to stderr. Accepts "--opt value", "--opt=value",
 * unique abbreviations of names, "--" to end the options, and options after positionals (argv
 * is permuted so that positionals come last, as GNU getopt does).
 *
 * Built on getopt's global state: a first call, a call after EC_CLI_END or EC_CLI_ERROR, or a
 * call with another argv starts a fresh parse, so several argv arrays can be parsed one after
 * another, but not interleaved. */
int ec_cli_next(ec_cli *c, int argc, char **argv, const char **arg);

/* Index in argv of the first positional argument once ec_cli_next returned EC_CLI_END. */
int ec_cli_optind(const ec_cli *c);

/* Prints the usage lines, the description and the option list, wrapped to EC_CLI_HELP_WIDTH. */
void ec_cli_help(const ec_cli *c, FILE *f);

/* Prints "prog: <message>" and "Try 'prog --help'." to stderr and returns EC_EUSAGE. The
 * message is also recorded for ec_errmsg(), but since it is printed already, callers exit with
 * ec_exit_code(EC_EUSAGE) without printing it again. */
ec_status ec_cli_usage(const ec_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict value parsers. Each rejects empty strings, leading spaces and trailing junk, leaves
 * *out untouched on failure and records an EC_EINVAL message that starts with `opt`
 * ("--seed: 'abc' is not an integer"); `opt` may be NULL. */

/* A decimal integer with an optional sign. */
ec_status ec_parse_i64(const char *opt, const char *s, int64_t *out);
/* An integer in [min, max]. */
ec_status ec_parse_int_range(const char *opt, const char *s, int64_t min, int64_t max,
                             int64_t *out);
/* A finite floating-point number (strtod syntax in the C locale; no inf or nan). */
ec_status ec_parse_f64(const char *opt, const char *s, double *out);
/* A count of training images: a non-negative number with an optional suffix Ki, Mi, Gi
 * (x1024^1..3) or k, M, G (x10^3, 6, 9). Fractions are allowed when the result is a whole
 * number ("0.5Ki" = 512, "1.5M"); "0.3Ki" is an error. */
ec_status ec_parse_nimg(const char *opt, const char *s, int64_t *out);
/* A size in bytes: a non-negative number with an optional suffix, case-insensitive: B; K, KiB,
 * Ki (binary, x1024) and kB (decimal, x1000), likewise M, G and T. Fractions are truncated to
 * whole bytes ("1.5G" = 1610612736). */
ec_status ec_parse_size(const char *opt, const char *s, int64_t *out);
/* true/false, yes/no, on/off, 1/0, case-insensitive. */
ec_status ec_parse_bool(const char *opt, const char *s, int *out);

/* Formatters. Each writes at most n bytes (n > 0) into buf and returns buf. */

/* "512 B", "2.00 KiB", "1.23 GiB", "12.3 MiB", "123 MiB": three significant digits. */
char *ec_format_bytes(char *buf, size_t n, double bytes);
/* The largest binary suffix that divides nimg exactly ("8Mi", "512Ki"), else the plain number
 * ("1000", "1536"). ec_parse_nimg reads the result back. */
char *ec_format_nimg(char *buf, size_t n, int64_t nimg);
/* "0.42 s", "42.0 s", "3 min 12 s", "2 h 05 min", "3 d 04 h"; "?" when not finite. */
char *ec_format_duration(char *buf, size_t n, double seconds);

#endif
