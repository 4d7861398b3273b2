/* What every edm2-plot figure shares (plots/README.md, docs/figures.md): the options, the data
 * files it writes for gnuplot, and running gnuplot once per output format.
 *
 * A figure command (plots/fig_*.c) reads its sources (the results database, RUN/log.jsonl, the
 * snapshots), writes one or more whitespace-separated data files OUT/NAME[-PART].dat with a
 * header comment, and renders plots/NAME.gp, which holds no computation, into OUT/NAME.png,
 * .svg and .pdf (--format). Data files are written even when gnuplot is missing, so that users
 * can plot elsewhere; the command then fails with one line naming the package. A figure with no
 * data is skipped with a note (EDM2_PLOT_NODATA), not an error. */
#ifndef EDM2C_PLOTS_PLOT_H
#define EDM2C_PLOTS_PLOT_H

#include <stdint.h>
#include <stdio.h>

#include "analysis/results_db.h"
#include "core/status.h"

enum { PLOT_PNG = 1, PLOT_SVG = 2, PLOT_PDF = 4 };

/* A figure that has nothing to draw: not an error, the caller prints the note and goes on. */
#define EDM2_PLOT_NODATA 1

typedef struct {
  const char *run;     /* RUN (NULL only for figures that need none) */
  const char *db_path; /* --db (default RUN/results.sqlite) */
  char out[4096];      /* --out (default RUN/figures), created when needed */
  int formats;         /* PLOT_* bits (default all three) */
  int formats_given;   /* --format was given */
  const char *metric;  /* --metric filter (NULL: the figure's default) */
  const char *sigma_rel; /* --sigma-rel (profiles) */
  const char *key;     /* --key (lr-interaction: the config key that differs) */
  const char *runs;    /* --runs DIR or comma list (lr-interaction) */
  int64_t at;          /* --at (-1: latest) */
  int quiet;
  edm2_db *db;         /* opened on first use by plot_db() */
  char note[512];      /* why a figure was skipped (EDM2_PLOT_NODATA) */
} plot_ctx;

/* The database (opened once; EC_ENOENT naming the file when it does not exist: figures never
 * create an empty database). */
ec_status plot_db(plot_ctx *c, edm2_db **db);

/* Marks the figure as skipped: returns EDM2_PLOT_NODATA with the note. */
int plot_nodata(plot_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A data file OUT/name.dat being written (to a temporary name; plot_data_close renames it). The
 * first line written is a '#' comment naming the columns. */
typedef struct {
  FILE *f;
  char path[4400], tmp[4420];
} plot_data;
ec_status plot_data_open(plot_ctx *c, plot_data *d, const char *name, const char *columns);
ec_status plot_data_close(plot_data *d); /* also on error paths: an incomplete file is removed */
void plot_data_abort(plot_data *d);

/* Renders plots/script.gp into OUT/figure.{png,svg,pdf} for the chosen formats. `vars` is
 * gnuplot code run first ("data='…'; title='…'"), after the common `out`, `fmt` and `datadir`
 * variables are set; every string must be quoted with plot_quote. Fails with one line when
 * gnuplot is missing (naming the package) or fails (its last error line). */
ec_status plot_render(plot_ctx *c, const char *script, const char *figure, const char *vars);

/* s as a gnuplot single-quoted string ('it''s') into buf; returns buf. */
char *plot_quote(const char *s, char *buf, size_t cap);

/* The directory of the gnuplot scripts: $EDM2C_PLOTS_DIR, else the source tree's plots/. */
const char *plot_scripts_dir(void);

/* Rows of the database for this run (all runs when c->run is NULL), optionally one metric. */
ec_status plot_rows(plot_ctx *c, const char *metric, edm2_result_list *rows);

#endif
