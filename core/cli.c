/* Command-line option loop, --help text, value parsers and formatters; see cli.h. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"

/* getopt_long reports our options as OPT_BASE + table index, so that no option can be mistaken
 * for getopt's own '?' and ':' returns, whatever ids the caller picked. */
enum { OPT_BASE = 0x1000 };

/* Widest "  --name METAVAR" column in --help before the help text moves to the next line. */
enum { HELP_LEFT_MAX = 32, HELP_GAP = 3 };

static const char *prog_name(const ec_cli *c) {
  if (c->prog) return c->prog;
  if (c->argv_ && c->argv_[0]) return c->argv_[0];
  return "edm2c";
}

static int count_opts(const ec_cli *c) {
  int n = 0;
  while (c->opts && c->opts[n].name) n++;
  return n;
}

/* Prints the getopt failure in GNU wording, from what getopt left in optopt and argv. */
static void report_getopt_error(const ec_cli *c, int r, int argc, char **argv) {
  const char *prog = prog_name(c);
  int n = count_opts(c);
  const char *elem = optind > 0 && optind <= argc ? argv[optind - 1] : "";
  if (r == ':' && optopt >= OPT_BASE && optopt < OPT_BASE + n) {
    fprintf(stderr, "%s: option '--%s' requires an argument\n", prog,
            c->opts[optopt - OPT_BASE].name);
  } else if (optopt >= OPT_BASE && optopt < OPT_BASE + n) {
    fprintf(stderr, "%s: option '--%s' doesn't allow an argument\n", prog,
            c->opts[optopt - OPT_BASE].name);
  } else if (optopt > 0 && optopt < 256) {
    fprintf(stderr, "%s: invalid option -- '%c'\n", prog, optopt);
  } else {
    /* getopt says the same thing for an unknown name and for an ambiguous prefix; tell them
     * apart, since "unrecognized" would be misleading for "--s" when "--seed" exists. */
    size_t len = 0;
    int matches = 0;
    if (!strncmp(elem, "--", 2)) {
      len = strcspn(elem + 2, "=");
      for (int i = 0; i < n && len > 0; i++) matches += !strncmp(c->opts[i].name, elem + 2, len);
    }
    if (matches >= 2) {
      fprintf(stderr, "%s: option '--%.*s' is ambiguous; possibilities:", prog, (int)len, elem + 2);
      for (int i = 0; i < n; i++)
        if (!strncmp(c->opts[i].name, elem + 2, len)) fprintf(stderr, " '--%s'", c->opts[i].name);
      fputc('\n', stderr);
    } else {
      fprintf(stderr, "%s: unrecognized option '%s'\n", prog, elem);
    }
  }
  fprintf(stderr, "Try '%s --help'.\n", prog);
}

int ec_cli_next(ec_cli *c, int argc, char **argv, const char **arg) {
  struct option lo[EC_CLI_MAX_OPTS + 1];
  int n = count_opts(c);
  EC_ASSERTF(n <= EC_CLI_MAX_OPTS, "%s: %d options, at most %d supported", prog_name(c), n,
             EC_CLI_MAX_OPTS);
  for (int i = 0; i < n; i++) {
    const ec_cli_opt *o = &c->opts[i];
    EC_ASSERTF(o->has_arg == 0 || o->has_arg == 1, "--%s: has_arg must be 0 or 1", o->name);
    EC_ASSERTF(o->id >= 0, "--%s: option ids must be >= 0", o->name);
    lo[i] = (struct option){o->name, o->has_arg ? required_argument : no_argument, NULL,
                            OPT_BASE + i};
  }
  lo[n] = (struct option){0};

  /* optind = 0 makes glibc (and musl) forget the previous parse, including its permutation
   * bookkeeping and any half-read "-abc" cluster; optind = 1 would not. A finished parse also
   * restarts, because a new argv may well reuse the old one's memory. */
  if (!c->started_ || c->argv_ != argv) {
    optind = 0;
    c->started_ = 1;
    c->argv_ = argv;
  }
  opterr = 0; /* our messages name c->prog and end with the --help hint */
  if (arg) *arg = NULL;
  /* The leading ':' makes a missing argument return ':' rather than '?'. */
  int r = getopt_long(argc, argv, ":", lo, NULL);
  c->optind_ = optind;
  if (r >= OPT_BASE && r < OPT_BASE + n) {
    if (arg) *arg = c->opts[r - OPT_BASE].has_arg ? optarg : NULL;
    return c->opts[r - OPT_BASE].id;
  }
  c->started_ = 0;
  if (r == -1) return EC_CLI_END;
  report_getopt_error(c, r, argc, argv);
  return EC_CLI_ERROR;
}

int ec_cli_optind(const ec_cli *c) { return c->optind_; }

/* Prints `text` from column `col` (already reached on the current line), breaking between words
 * before `width`. Lines after a break start at `indent`, plus the leading spaces a line has in
 * the text after a '\n', so indented examples keep their shape. Ends with a newline. */
static void wrap(FILE *f, const char *text, int col, int indent, int width) {
  const char *p = text;
  int c = col, has_word = 0, pending = 0, lead = 0;
  while (*p) {
    if (*p == '\n') {
      if (!*++p) break;
      fputc('\n', f);
      for (lead = 0; *p == ' '; p++) lead++;
      c = 0;
      pending = indent + lead;
      has_word = 0;
      continue;
    }
    if (*p == ' ') {
      p++;
      continue;
    }
    int len = (int)strcspn(p, " \n");
    if (has_word && c + 1 + len > width) {
      fputc('\n', f);
      c = 0;
      pending = indent + lead;
      has_word = 0;
    }
    if (has_word) {
      fputc(' ', f);
      c++;
    } else {
      fprintf(f, "%*s", pending, "");
      c += pending;
      pending = 0;
    }
    fwrite(p, 1, (size_t)len, f);
    c += len;
    has_word = 1;
    p += len;
  }
  fputc('\n', f);
}

static int help_left_width(const ec_cli_opt *o) {
  int w = 2 + 2 + (int)strlen(o->name);
  if (o->has_arg) w += 1 + (int)strlen(o->metavar ? o->metavar : "VALUE");
  return w;
}

void ec_cli_help(const ec_cli *c, FILE *f) {
  const char *prog = prog_name(c);
  const char *syn = c->synopsis ? c->synopsis : "[OPTIONS]";
  for (int first = 1;; first = 0) {
    int len = (int)strcspn(syn, "\n");
    fprintf(f, "%s %s%s%.*s\n", first ? "Usage:" : "   or:", prog, len ? " " : "", len, syn);
    if (!syn[len]) break;
    syn += len + 1;
  }
  if (c->description && c->description[0]) {
    fputc('\n', f);
    wrap(f, c->description, 0, 0, EC_CLI_HELP_WIDTH);
  }
  int n = count_opts(c);
  if (n == 0) return;
  int left = 0;
  for (int i = 0; i < n; i++) {
    int w = help_left_width(&c->opts[i]);
    if (w <= HELP_LEFT_MAX && w > left) left = w;
  }
  int col = left + HELP_GAP;
  fputs("\nOptions:\n", f);
  for (int i = 0; i < n; i++) {
    const ec_cli_opt *o = &c->opts[i];
    int w = help_left_width(o);
    if (o->has_arg)
      fprintf(f, "  --%s %s", o->name, o->metavar ? o->metavar : "VALUE");
    else
      fprintf(f, "  --%s", o->name);
    if (!o->help || !o->help[0]) {
      fputc('\n', f);
      continue;
    }
    if (w + HELP_GAP > col) {
      fprintf(f, "\n%*s", col, "");
    } else {
      fprintf(f, "%*s", col - w, "");
    }
    wrap(f, o->help, col, col, EC_CLI_HELP_WIDTH);
  }
}

ec_status ec_cli_usage(const ec_cli *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *prog = prog_name(c);
  fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, msg, prog);
  return ec_err(EC_EUSAGE, "%s", msg);
}

/* ---- value parsers ---- */

/* Records EC_EINVAL with the message prefixed by "opt: " (when opt is given). */
__attribute__((format(printf, 2, 3))) static ec_status bad_value(const char *opt, const char *fmt,
                                                                 ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ec_err(EC_EINVAL, "%s%s%s", opt ? opt : "", opt ? ": " : "", msg);
}

enum { SCAN_OK = 0, SCAN_SYNTAX, SCAN_RANGE };

_Static_assert(sizeof(long long) == sizeof(int64_t), "strtoll must parse exactly 64 bits");

/* A decimal integer with optional sign, nothing before or after it. */
static int scan_i64(const char *s, int64_t *out) {
  const char *d = s + (*s == '+' || *s == '-');
  if (!isdigit((unsigned char)*d)) return SCAN_SYNTAX;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end) return SCAN_SYNTAX;
  if (errno == ERANGE) return SCAN_RANGE;
  *out = (int64_t)v;
  return SCAN_OK;
}

ec_status ec_parse_i64(const char *opt, const char *s, int64_t *out) {
  int64_t v;
  switch (scan_i64(s, &v)) {
  case SCAN_SYNTAX: return bad_value(opt, "'%s' is not an integer", s);
  case SCAN_RANGE: return bad_value(opt, "'%s' is out of range for a 64-bit integer", s);
  }
  *out = v;
  return EC_OK;
}

ec_status ec_parse_int_range(const char *opt, const char *s, int64_t min, int64_t max,
                             int64_t *out) {
  int64_t v;
  int r = scan_i64(s, &v);
  if (r == SCAN_SYNTAX) return bad_value(opt, "'%s' is not an integer", s);
  if (r == SCAN_RANGE || v < min || v > max)
    return bad_value(opt, "'%s' is out of range (%" PRId64 " to %" PRId64 ")", s, min, max);
  *out = v;
  return EC_OK;
}

ec_status ec_parse_f64(const char *opt, const char *s, double *out) {
  /* strtod would skip leading spaces and read "" as nothing; both count as malformed here. */
  if (!*s || isspace((unsigned char)*s)) return bad_value(opt, "'%s' is not a number", s);
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end) return bad_value(opt, "'%s' is not a number", s);
  if (!isfinite(v)) {
    if (errno == ERANGE) return bad_value(opt, "'%s' is out of range", s);
    return bad_value(opt, "'%s' is not a finite number", s);
  }
  *out = v;
  return EC_OK;
}

/* 128-bit arithmetic keeps "digits x multiplier / 10^places" exact for every input that fits
 * int64_t in the end, so exactness checks need no floating point. */
__extension__ typedef unsigned __int128 u128;

enum { SCAN_INEXACT = SCAN_RANGE + 1, SCAN_PLACES };

/* The most decimal places kept; 10^38 is the largest power of ten below 2^128. */
enum { MAX_PLACES = 38 };

/* Reads "digits[.digits]" into an integer mantissa and a count of decimal places (trailing
 * zeros of the fraction dropped) and points *suffix after it. At least one digit is needed. */
static int scan_decimal(const char *s, u128 *mant, int *places, const char **suffix) {
  const u128 limit = ~(u128)0 / 10 - 9;
  u128 m = 0;
  int digits = 0, dec = 0, zeros = 0;
  const char *p = s;
  for (; isdigit((unsigned char)*p); p++, digits++) {
    if (m > limit) return SCAN_RANGE;
    m = m * 10 + (u128)(*p - '0');
  }
  if (*p == '.') {
    for (p++; isdigit((unsigned char)*p); p++, digits++) {
      if (*p == '0') {
        zeros++; /* only counted once a nonzero digit follows */
        continue;
      }
      for (; zeros >= 0; zeros--) {
        if (m > limit) return SCAN_PLACES;
        m *= 10;
        dec++;
      }
      zeros = 0;
      m += (u128)(*p - '0');
      if (dec > MAX_PLACES) return SCAN_PLACES;
    }
  }
  if (digits == 0) return SCAN_SYNTAX;
  *mant = m;
  *places = dec;
  *suffix = p;
  return SCAN_OK;
}

/* mant / 10^places * mult, exact or truncated; SCAN_RANGE beyond INT64_MAX. */
static int scale(u128 mant, int places, int64_t mult, int exact, int64_t *out) {
  u128 p10 = 1;
  for (int i = 0; i < places; i++) p10 *= 10;
  if (mant > ~(u128)0 / (u128)mult) return SCAN_RANGE;
  u128 prod = mant * (u128)mult;
  if (exact && prod % p10) return SCAN_INEXACT;
  u128 v = prod / p10;
  if (v > (u128)INT64_MAX) return SCAN_RANGE;
  *out = (int64_t)v;
  return SCAN_OK;
}

ec_status ec_parse_nimg(const char *opt, const char *s, int64_t *out) {
  static const struct {
    const char *suffix;
    int64_t mult;
  } units[] = {{"", 1},
               {"k", 1000},
               {"M", 1000000},
               {"G", 1000000000},
               {"Ki", INT64_C(1) << 10},
               {"Mi", INT64_C(1) << 20},
               {"Gi", INT64_C(1) << 30}};
  if (*s == '-' && (isdigit((unsigned char)s[1]) || s[1] == '.'))
    return bad_value(opt, "'%s' is negative; expected a count of images", s);
  u128 mant;
  int places;
  const char *suffix;
  int r = scan_decimal(s, &mant, &places, &suffix);
  if (r == SCAN_SYNTAX)
    return bad_value(opt, "'%s' is not a count of images (such as 8Mi, 200k or 1000000)", s);
  if (r == SCAN_PLACES) return bad_value(opt, "'%s' has too many decimal places", s);
  if (r != SCAN_OK) return bad_value(opt, "'%s' is too large", s);
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(suffix, units[i].suffix)) continue;
    int64_t v;
    r = scale(mant, places, units[i].mult, 1, &v);
    if (r == SCAN_INEXACT) return bad_value(opt, "'%s' is not a whole number of images", s);
    if (r != SCAN_OK) return bad_value(opt, "'%s' is too large", s);
    *out = v;
    return EC_OK;
  }
  return bad_value(opt, "'%s' has an unknown suffix '%s' (use k, M, G, Ki, Mi or Gi)", s, suffix);
}

ec_status ec_parse_size(const char *opt, const char *s, int64_t *out) {
  static const struct {
    const char *suffix;
    int64_t mult;
  } units[] = {
      {"", 1},
      {"b", 1},
      {"k", INT64_C(1) << 10},
      {"ki", INT64_C(1) << 10},
      {"kib", INT64_C(1) << 10},
      {"kb", INT64_C(1000)},
      {"m", INT64_C(1) << 20},
      {"mi", INT64_C(1) << 20},
      {"mib", INT64_C(1) << 20},
      {"mb", INT64_C(1000000)},
      {"g", INT64_C(1) << 30},
      {"gi", INT64_C(1) << 30},
      {"gib", INT64_C(1) << 30},
      {"gb", INT64_C(1000000000)},
      {"t", INT64_C(1) << 40},
      {"ti", INT64_C(1) << 40},
      {"tib", INT64_C(1) << 40},
      {"tb", INT64_C(1000000000000)},
  };
  if (*s == '-' && (isdigit((unsigned char)s[1]) || s[1] == '.'))
    return bad_value(opt, "'%s' is negative; expected a size in bytes", s);
  u128 mant;
  int places;
  const char *suffix;
  int r = scan_decimal(s, &mant, &places, &suffix);
  if (r == SCAN_SYNTAX)
    return bad_value(opt, "'%s' is not a size in bytes (such as 512M, 2GiB or 1000000)", s);
  if (r == SCAN_PLACES) return bad_value(opt, "'%s' has too many decimal places", s);
  if (r != SCAN_OK) return bad_value(opt, "'%s' is too large", s);
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(suffix, units[i].suffix)) continue;
    int64_t v;
    if (scale(mant, places, units[i].mult, 0, &v) != SCAN_OK)
      return bad_value(opt, "'%s' is too large", s);
    *out = v;
    return EC_OK;
  }
  return bad_value(opt, "'%s' has an unknown suffix '%s' (use B, K, KiB, kB, M, MiB, MB, G, GiB, "
                        "GB, T, TiB or TB)",
                   s, suffix);
}

ec_status ec_parse_bool(const char *opt, const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off",
                                                                              "0"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(s, yes[i])) {
      *out = 1;
      return EC_OK;
    }
    if (!strcasecmp(s, no[i])) {
      *out = 0;
      return EC_OK;
    }
  }
  return bad_value(opt, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", s);
}

/* ---- formatters ---- */

char *ec_format_bytes(char *buf, size_t n, double bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (!isfinite(bytes)) {
    snprintf(buf, n, "? B");
    return buf;
  }
  const char *sign = bytes < 0 ? "-" : "";
  double v = fabs(bytes);
  int u = 0;
  /* Move up a unit before rounding would print "1024". */
  while (u < 6 && v >= 1023.5) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, n, "%s%.0f B", sign, v);
  else if (v < 9.995)
    snprintf(buf, n, "%s%.2f %s", sign, v, units[u]);
  else if (v < 99.95)
    snprintf(buf, n, "%s%.1f %s", sign, v, units[u]);
  else
    snprintf(buf, n, "%s%.0f %s", sign, v, units[u]);
  return buf;
}

char *ec_format_nimg(char *buf, size_t n, int64_t nimg) {
  static const struct {
    int shift;
    const char *suffix;
  } units[] = {{30, "Gi"}, {20, "Mi"}, {10, "Ki"}};
  for (int i = 0; i < 3 && nimg > 0; i++) {
    int64_t m = INT64_C(1) << units[i].shift;
    if (nimg % m == 0) {
      snprintf(buf, n, "%" PRId64 "%s", nimg / m, units[i].suffix);
      return buf;
    }
  }
  snprintf(buf, n, "%" PRId64, nimg);
  return buf;
}

char *ec_format_duration(char *buf, size_t n, double seconds) {
  if (!isfinite(seconds)) {
    snprintf(buf, n, "?");
    return buf;
  }
  const char *sign = seconds < 0 ? "-" : "";
  double s = fabs(seconds);
  /* Thresholds sit where rounding would carry into the next form ("60.0 s", "60 min"). */
  if (s < 9.995) {
    snprintf(buf, n, "%s%.2f s", sign, s);
  } else if (s < 59.95) {
    snprintf(buf, n, "%s%.1f s", sign, s);
  } else if (s < 3599.5) {
    long long t = llround(s);
    snprintf(buf, n, "%s%lld min %02lld s", sign, t / 60, t % 60);
  } else if (s < 86370) {
    long long m = llround(s / 60);
    snprintf(buf, n, "%s%lld h %02lld min", sign, m / 60, m % 60);
  } else if (s < 1e15) {
    long long h = llround(s / 3600);
    snprintf(buf, n, "%s%lld d %02lld h", sign, h / 24, h % 24);
  } else {
    snprintf(buf, n, "%s%.3g s", sign, s);
  }
  return buf;
}
