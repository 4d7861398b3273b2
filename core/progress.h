/* A one-line progress bar on stderr for long reads, writes and loops:
 *
 *   snapshots  42% [############                ] 1.23 GiB/2.93 GiB  45.6 MiB/s  ETA 38.2 s
 *
 * It is drawn only when stderr is a terminal and the caller did not ask for quiet, so logs and
 * pipes never see it. The line is redrawn in place with '\r' at most every EC_PROGRESS_INTERVAL
 * seconds (updates in between only store the count), and nothing is drawn at all for work that
 * ends sooner than that. ec_progress_end draws the final state and ends the line with a newline.
 * A total of -1 (unknown) shows a spinner with the count and rate but no percent or ETA.
 *
 * Not thread-safe: one thread updates a given bar. Other output to stderr while a bar is shown
 * lands in the middle of its line. */
#ifndef EDM2C_CORE_PROGRESS_H
#define EDM2C_CORE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

/* Seconds between redraws. */
#define EC_PROGRESS_INTERVAL 0.1

/* Seconds on a monotonic clock; tests substitute a fake one. */
typedef double (*ec_progress_clock)(void);

typedef struct {
  FILE *out;               /* NULL when silent: calls then only keep `done` */
  ec_progress_clock clock; /* never NULL while drawing */
  char label[48];
  int64_t total;          /* -1 when unknown */
  int64_t done;           /* readable by the caller at any time */
  int bytes_mode;         /* show done, total and rate with ec_format_bytes */
  int width;              /* columns the line may use; tests may set it after begin_to */
  double t_start, t_last; /* clock at begin and at the last draw */
  int drawn;              /* something is on the line, so ec_progress_end must finish it */
  int last_len;           /* length of the line last drawn, to blank what a shorter one leaves */
  unsigned spin;          /* spinner frame for an unknown total */
} ec_progress;

/* Starts a bar on stderr when it is a terminal and !quiet; otherwise the bar stays silent.
 * total < 0 means unknown; the label is copied (and cut to fit). */
void ec_progress_begin(ec_progress *p, const char *label, int64_t total, int bytes_mode, int quiet);

/* Test hook: a bar that writes to `f` (NULL: disabled) whatever it is, with clock `clock` (NULL:
 * the monotonic clock) and a width of 80 columns. */
void ec_progress_begin_to(ec_progress *p, FILE *f, ec_progress_clock clock, const char *label,
                          int64_t total, int bytes_mode);

/* Sets the count done so far (or adds to it) and redraws if the last draw is old enough. */
void ec_progress_update(ec_progress *p, int64_t done);
void ec_progress_add(ec_progress *p, int64_t delta);

/* Draws the final state, with the time taken in place of the ETA, and ends the line; prints
 * nothing if nothing was drawn. The bar is disabled afterwards, so a second call is harmless. */
void ec_progress_end(ec_progress *p);

/* CLOCK_MONOTONIC in seconds. */
double ec_progress_now(void);

#endif
