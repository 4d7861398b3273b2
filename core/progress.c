/* Terminal progress bar; see progress.h. */
#include "progress.h"

#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* The bar never grows past this many cells, however wide the terminal; below the minimum it is
 * left out so that the numbers still fit. */
enum { BAR_MAX = 30, BAR_MIN = 10 };

/* Room for the widest terminal we bother to fill. */
enum { LINE_CAP = 400 };

double ec_progress_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int terminal_width(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void ec_progress_begin_to(ec_progress *p, FILE *f, ec_progress_clock clock, const char *label,
                          int64_t total, int bytes_mode) {
  memset(p, 0, sizeof *p);
  p->out = f;
  p->clock = clock ? clock : ec_progress_now;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "");
  p->total = total < 0 ? -1 : total;
  p->bytes_mode = bytes_mode;
  p->width = 80;
  if (f) p->t_start = p->t_last = p->clock();
}

void ec_progress_begin(ec_progress *p, const char *label, int64_t total, int bytes_mode,
                       int quiet) {
  int tty = !quiet && isatty(STDERR_FILENO);
  ec_progress_begin_to(p, tty ? stderr : NULL, NULL, label, total, bytes_mode);
  if (tty) p->width = terminal_width(STDERR_FILENO);
}

/* Item counts and rates with three significant digits, as ec_format_bytes does for bytes. */
static void format_rate(char *buf, size_t n, double v) {
  if (v < 9.995)
    snprintf(buf, n, "%.2f", v);
  else if (v < 99.95)
    snprintf(buf, n, "%.1f", v);
  else
    snprintf(buf, n, "%.0f", v);
}

static void format_count(const ec_progress *p, char *buf, size_t n, int64_t v) {
  if (p->bytes_mode)
    ec_format_bytes(buf, n, (double)v);
  else
    snprintf(buf, n, "%" PRId64, v);
}

static void draw(ec_progress *p, double now, int final) {
  char done_s[32], total_s[32], rate_s[48], time_s[48], dur[32], pct_s[16], tail[200];
  double elapsed = now - p->t_start;
  double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
  int known = p->total >= 0;

  format_count(p, done_s, sizeof done_s, p->done);
  if (p->bytes_mode) {
    ec_format_bytes(dur, sizeof dur, rate);
    snprintf(rate_s, sizeof rate_s, "%s/s", dur);
  } else {
    format_rate(dur, sizeof dur, rate);
    snprintf(rate_s, sizeof rate_s, "%s it/s", dur);
  }
  time_s[0] = '\0';
  if (final) {
    snprintf(time_s, sizeof time_s, "  took %s", ec_format_duration(dur, sizeof dur, elapsed));
  } else if (known && (p->done >= p->total || rate > 0)) {
    double left = p->done < p->total ? (double)(p->total - p->done) / rate : 0;
    snprintf(time_s, sizeof time_s, "  ETA %s", ec_format_duration(dur, sizeof dur, left));
  } else if (known) {
    snprintf(time_s, sizeof time_s, "  ETA ?"); /* no progress yet to extrapolate from */
  }

  char line[LINE_CAP + 1];
  int width = p->width < 20 ? 20 : p->width > LINE_CAP ? LINE_CAP : p->width;
  const char *sep = p->label[0] ? " " : "";
  if (known) {
    format_count(p, total_s, sizeof total_s, p->total);
    /* Integer percent that reads 100 only when the work is done. */
    int pct = 100;
    if (p->done < p->total) {
      pct = p->done <= 0 ? 0 : (int)(100.0 * (double)p->done / (double)p->total);
      if (pct > 99) pct = 99;
    }
    snprintf(pct_s, sizeof pct_s, "%3d%%", pct);
    snprintf(tail, sizeof tail, " %s/%s  %s%s", done_s, total_s, rate_s, time_s);
    /* One column stays free: writing the last one makes some terminals wrap early. */
    int bar = width - 1 - (int)(strlen(p->label) + strlen(sep) + strlen(pct_s) + 3 + strlen(tail));
    if (bar > BAR_MAX) bar = BAR_MAX;
    if (bar >= BAR_MIN) {
      double frac = p->total > 0 ? (double)p->done / (double)p->total : 1;
      int fill = p->done >= p->total ? bar : frac <= 0 ? 0 : (int)(frac * bar);
      if (fill >= bar && p->done < p->total) fill = bar - 1;
      char cells[BAR_MAX + 1];
      memset(cells, '#', (size_t)fill);
      memset(cells + fill, ' ', (size_t)(bar - fill));
      cells[bar] = '\0';
      snprintf(line, sizeof line, "%s%s%s [%s]%s", p->label, sep, pct_s, cells, tail);
    } else {
      snprintf(line, sizeof line, "%s%s%s%s", p->label, sep, pct_s, tail);
    }
  } else {
    static const char spinner[] = "|/-\\";
    char spin[3] = {0};
    if (!final) {
      spin[0] = spinner[p->spin++ % 4];
      spin[1] = ' ';
    }
    snprintf(line, sizeof line, "%s%s%s%s  %s%s", p->label, sep, spin, done_s, rate_s, time_s);
  }
  int len = (int)strlen(line);
  if (len > width - 1) len = width - 1;
  int pad = p->last_len > len ? p->last_len - len : 0;
  fprintf(p->out, "\r%.*s%*s", len, line, pad, "");
  fflush(p->out);
  p->last_len = len;
  p->drawn = 1;
}

void ec_progress_update(ec_progress *p, int64_t done) {
  p->done = done; /* kept even when silent, so callers may read it back */
  if (!p->out) return;
  double now = p->clock();
  /* The slack keeps a redraw due at exactly t_last + interval from being lost to rounding. */
  if (now - p->t_last < EC_PROGRESS_INTERVAL - 1e-9) return;
  p->t_last = now;
  draw(p, now, 0);
}

void ec_progress_add(ec_progress *p, int64_t delta) { ec_progress_update(p, p->done + delta); }

void ec_progress_end(ec_progress *p) {
  if (!p->out) return;
  if (p->drawn) {
    draw(p, p->clock(), 1);
    fputc('\n', p->out);
    fflush(p->out);
  }
  p->out = NULL;
}
