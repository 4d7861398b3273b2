/* The figures of edm2-plot: one entry per subcommand. The entries live in two tables,
 * figures_run.c (figures from a run's log and snapshots) and figures_db.c (figures from the
 * results database), each ending with a zeroed entry. */
#ifndef EDM2C_PLOTS_FIGURES_H
#define EDM2C_PLOTS_FIGURES_H

#include "analysis/best_sigma.h"
#include "plots/plot.h"

typedef struct {
  const char *name;    /* the subcommand and the output file name ("loss" -> loss.png) */
  const char *summary; /* one line for --help */
  const char *sources; /* what it reads, for --help ("RUN/log.jsonl") */
  /* Writes the data files and renders. EC_OK, EDM2_PLOT_NODATA (c->note says why) or an error. */
  int (*draw)(plot_ctx *c);
} plot_figure;

extern const plot_figure plot_figures_run[];
extern const plot_figure plot_figures_db[];

/* figures_run.c */
int fig_loss(plot_ctx *c);
int fig_profiles(plot_ctx *c);
int fig_magnitudes(plot_ctx *c);

/* figures_db.c: the figures from the results database (fig_*.c), and what they share. */
int fig_ema_sweep(plot_ctx *c);
int fig_per_tensor(plot_ctx *c);
int fig_evolution(plot_ctx *c);
int fig_guidance(plot_ctx *c);
int fig_lr_interaction(plot_ctx *c);
int fig_metrics_compare(plot_ctx *c);

/* A run's rows (all runs' without --run), every metric, and their sweeps (analysis/best_sigma.h:
 * the repeats' mean, min and max per σ_rel, and the best σ_rel). */
typedef struct {
  edm2_result_list rows;
  edm2_best_list sweeps;
} dbfig_data;
/* EC_OK, EDM2_PLOT_NODATA (no database yet) or an error. */
int dbfig_load(plot_ctx *c, dbfig_data *d);
void dbfig_free(dbfig_data *d);

/* Which sweeps a figure can use. */
typedef int (*dbfig_pred)(const edm2_best *b, const void *arg);
int dbfig_global(const edm2_best *b); /* no per-tensor rule */
int dbfig_plain(const edm2_best *b);  /* no per-tensor rule, no guidance */
/* The metric drawn: c->metric, else among the metrics with a usable sweep val-loss, fid,
 * fd_dinov2, else the one with the most usable sweeps. NULL (the note set, naming `what`) when
 * none has one. */
const char *dbfig_metric(plot_ctx *c, const dbfig_data *d, dbfig_pred usable, const void *arg, const char *what);
/* The run with the most usable sweeps of the metric (NULL: none). */
const char *dbfig_busiest_run(const dbfig_data *d, const char *metric, dbfig_pred usable, const void *arg);
/* The latest nimg of a usable sweep of the metric (of `run`, any when NULL); -1 when none. */
int64_t dbfig_latest(const dbfig_data *d, const char *run, const char *metric, dbfig_pred usable, const void *arg);
/* The image count most of the sweeps share (the larger on a tie). */
int64_t dbfig_common_num(const edm2_best *const *b, size_t n);
/* The most repeats at one σ_rel of the sweeps. */
int dbfig_max_count(const edm2_best *const *b, size_t n);
const char *dbfig_db_name(plot_ctx *c);

/* Text: the metric's axis label ("FID"), σ_rel in percent ("3.9 %"), a time ("0.0156 Mimg
 * (16Ki img)"), a run's last path component, "best σ_rel 3.9 %" (the fit's verdict when the
 * measured minimum). */
const char *dbfig_metric_label(const char *metric);
char *dbfig_pct(double sigma_rel, char *buf, size_t cap);
double dbfig_mimg(int64_t nimg);
char *dbfig_time(int64_t nimg, char *buf, size_t cap);
const char *dbfig_run_name(const char *run);
char *dbfig_best_text(const edm2_best *b, char *buf, size_t cap);

/* Data files. A curve is a block of points (gnuplot `index`), blocks separated by two blank
 * lines; z is the curve's number or colour value (Mimg for evolution). The optima: one line
 * per curve, label double-quoted. dbfig_write_points returns 1 when a point has repeats. */
#define DBFIG_POINT_COLUMNS "sigma_rel_pct mean min max count z"
#define DBFIG_BEST_COLUMNS "curve sigma_rel_pct value measured_sigma_rel_pct measured_value z fit label"
int dbfig_write_points(FILE *f, const edm2_best *b, double z);
void dbfig_write_best(FILE *f, int curve, const edm2_best *b, double z, const char *label);
/* NAME.dat (the curves) and NAME-best.dat (their optima); z NULL: 1, 2, ...; *band (may be
 * NULL) = 1 when some point has repeats. */
int dbfig_write_curves(plot_ctx *c, const char *name, const edm2_best *const *b, const double *z, size_t n,
                       int *band);

/* The gnuplot variables of plot_render, built up: name='text'; name=number; array name[n]. */
typedef struct {
  FILE *f;
  char *buf;
  size_t len;
} dbfig_vars;
ec_status dbfig_vars_open(dbfig_vars *v);
void dbfig_vars_str(dbfig_vars *v, const char *name, const char *value);
void dbfig_vars_num(dbfig_vars *v, const char *name, double x);
void dbfig_vars_array(dbfig_vars *v, const char *name, char *const *values, size_t n);
void dbfig_vars_free(dbfig_vars *v);
/* The variables every curves-against-EMA-length script takes: title_text, ylabel_text (the
 * metric's label), ncurves, band (draw min/max bands), band_title ("min/max over R
 * evaluations", R the most repeats of any curve) and the curves' titles. */
void dbfig_curve_vars(dbfig_vars *v, const char *title, const char *metric, int band, int max_repeats,
                      char *const *titles, size_t n);
/* Renders plots/script.gp with the variables (and frees them). */
int dbfig_render(plot_ctx *c, dbfig_vars *v, const char *script, const char *figure);
void dbfig_strings_free(char **s, size_t n);

#endif
