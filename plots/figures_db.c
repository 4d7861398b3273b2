/* Figures drawn from the results database (plots/figures.h), and what they share: the rows and
 * their sweeps (analysis/best_sigma.h), the default metric, the data files of curves and of
 * their optima, and the gnuplot variables. */
#include "plots/figures.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"

const plot_figure plot_figures_db[] = {
    {"ema-sweep", "metric vs EMA length, min/max band over repeats, optimum marked (Figure 5a)", "results database",
     fig_ema_sweep},
    {"per-tensor", "one tensor's EMA length swept at a time, over the global sweep (Figure 5b)", "results database",
     fig_per_tensor},
    {"evolution", "the EMA sweep at several training times, coloured by time (Figure 5c)", "results database",
     fig_evolution},
    {"guidance", "metric vs EMA length per guidance strength (Figure 6)", "results database", fig_guidance},
    {"lr-interaction", "metric vs EMA length across runs differing in a config key (Figure 13)",
     "--runs: RUN/results.sqlite, RUN/config.json", fig_lr_interaction},
    {"metrics-compare", "FID and FD_DINOv2 vs EMA length on twin axes (Figure 14)", "results database",
     fig_metrics_compare},
    {0},
};

/* ---- rows and sweeps ------------------------------------------------------------------------ */

void dbfig_free(dbfig_data *d) {
  edm2_best_list_free(&d->sweeps);
  edm2_result_list_free(&d->rows);
}

int dbfig_load(plot_ctx *c, dbfig_data *d) {
  memset(d, 0, sizeof *d);
  edm2_db *db;
  ec_status st = plot_db(c, &db);
  if (st == EC_ENOENT) return plot_nodata(c, "%s", ec_errmsg()); /* no database: nothing swept yet */
  if (st) return st;
  if ((st = plot_rows(c, NULL, &d->rows))) return st;
  if ((st = edm2_best_sigma(d->rows.rows, d->rows.n, &d->sweeps))) {
    dbfig_free(d);
    return st;
  }
  return EC_OK;
}

int dbfig_global(const edm2_best *b) { return !b->tensor_rule[0]; }
int dbfig_plain(const edm2_best *b) { return !b->tensor_rule[0] && b->guidance == 1.0 && !b->gnet[0]; }

const char *dbfig_db_name(plot_ctx *c) {
  edm2_db *db;
  return plot_db(c, &db) ? "the database" : edm2_db_path(db);
}

const char *dbfig_metric(plot_ctx *c, const dbfig_data *d, dbfig_pred usable, const void *arg, const char *what) {
  char at[64] = "";
  if (c->at >= 0) {
    char t[32];
    snprintf(at, sizeof at, " at %s", ec_format_nimg(t, sizeof t, c->at));
  }
  if (c->metric) {
    for (size_t i = 0; i < d->sweeps.n; i++)
      if (!strcmp(d->sweeps.best[i].metric, c->metric) && usable(&d->sweeps.best[i], arg)) return c->metric;
    plot_nodata(c, "no %s sweeps with %s%s in %s", c->metric, what, at, dbfig_db_name(c));
    return NULL;
  }
  /* The preferred metrics in order; then any other (profile-error is no quality metric) with the
   * most usable sweeps. */
  static const char *const pref[] = {"val-loss", "fid", "fd_dinov2"};
  for (int p = 0; p < 3; p++)
    for (size_t i = 0; i < d->sweeps.n; i++)
      if (!strcmp(d->sweeps.best[i].metric, pref[p]) && usable(&d->sweeps.best[i], arg)) return pref[p];
  const char *best = NULL;
  size_t best_n = 0;
  for (size_t i = 0; i < d->sweeps.n; i++) {
    const char *m = d->sweeps.best[i].metric;
    if (!strcmp(m, "profile-error") || !usable(&d->sweeps.best[i], arg)) continue;
    size_t n = 0;
    for (size_t j = 0; j < d->sweeps.n; j++)
      if (!strcmp(d->sweeps.best[j].metric, m) && usable(&d->sweeps.best[j], arg)) n++;
    if (n > best_n) best = m, best_n = n;
  }
  if (!best) plot_nodata(c, "no sweeps with %s%s in %s", what, at, dbfig_db_name(c));
  return best;
}

const char *dbfig_busiest_run(const dbfig_data *d, const char *metric, dbfig_pred usable, const void *arg) {
  const char *best = NULL;
  size_t best_n = 0;
  for (size_t i = 0; i < d->sweeps.n; i++) {
    const edm2_best *b = &d->sweeps.best[i];
    if (strcmp(b->metric, metric) || !usable(b, arg)) continue;
    size_t n = 0;
    for (size_t j = 0; j < d->sweeps.n; j++) {
      const edm2_best *o = &d->sweeps.best[j];
      if (!strcmp(o->run, b->run) && !strcmp(o->metric, metric) && usable(o, arg)) n++;
    }
    if (n > best_n) best = b->run, best_n = n;
  }
  return best;
}

int64_t dbfig_latest(const dbfig_data *d, const char *run, const char *metric, dbfig_pred usable, const void *arg) {
  int64_t t = -1;
  for (size_t i = 0; i < d->sweeps.n; i++) {
    const edm2_best *b = &d->sweeps.best[i];
    if ((!run || !strcmp(b->run, run)) && !strcmp(b->metric, metric) && usable(b, arg) && b->nimg > t) t = b->nimg;
  }
  return t;
}

int64_t dbfig_common_num(const edm2_best *const *b, size_t n) {
  int64_t best = -1;
  size_t best_n = 0;
  for (size_t i = 0; i < n; i++) {
    size_t k = 0;
    for (size_t j = 0; j < n; j++) k += b[j]->num == b[i]->num;
    if (k > best_n || (k == best_n && b[i]->num > best)) best = b[i]->num, best_n = k;
  }
  return best;
}

int dbfig_max_count(const edm2_best *const *b, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < b[i]->fit.points; k++)
      if (b[i]->points[k].count > m) m = b[i]->points[k].count;
  return m;
}

/* ---- text ---------------------------------------------------------------------------------- */

const char *dbfig_metric_label(const char *metric) {
  if (!strcmp(metric, "fid")) return "FID";
  if (!strcmp(metric, "fd_dinov2")) return "FD_DINOv2";
  return metric;
}

char *dbfig_pct(double sigma_rel, char *buf, size_t cap) {
  double p = sigma_rel * 100;
  snprintf(buf, cap, p < 1 ? "%.2f %%" : "%.1f %%", p);
  return buf;
}

double dbfig_mimg(int64_t nimg) { return (double)nimg / (1 << 20); }

char *dbfig_time(int64_t nimg, char *buf, size_t cap) {
  char t[64];
  ec_format_nimg(t, sizeof t, nimg);
  double m = dbfig_mimg(nimg);
  if (m >= 10) snprintf(buf, cap, "%.0f Mimg", m);
  else if (m >= 0.1) snprintf(buf, cap, "%.2f Mimg (%s img)", m, t);
  else snprintf(buf, cap, "%.4f Mimg (%s img)", m, t);
  return buf;
}

const char *dbfig_run_name(const char *run) {
  size_t n = strlen(run);
  while (n > 1 && run[n - 1] == '/') n--;
  const char *s = run + n;
  while (s > run && s[-1] != '/') s--;
  return s; /* may keep a trailing '/' of an odd name; only for titles */
}

char *dbfig_best_text(const edm2_best *b, char *buf, size_t cap) {
  char p[32];
  dbfig_pct(b->fit.sigma_best, p, sizeof p);
  if (b->fit.fit == EDM2_FIT_PARABOLA) snprintf(buf, cap, "best σ_rel %s", p);
  else snprintf(buf, cap, "best σ_rel %s (measured, %s)", p, edm2_fit_name(b->fit.fit));
  return buf;
}

/* ---- data files ----------------------------------------------------------------------------- */

int dbfig_write_points(FILE *f, const edm2_best *b, double z) {
  int band = 0;
  for (int i = 0; i < b->fit.points; i++) {
    const edm2_sigma_point *p = &b->points[i];
    fprintf(f, "%.9g %.10g %.10g %.10g %d %.9g\n", p->sigma_rel * 100, p->mean, p->min, p->max, p->count, z);
    band |= p->count > 1;
  }
  fprintf(f, "\n\n");
  return band;
}

void dbfig_write_best(FILE *f, int curve, const edm2_best *b, double z, const char *label) {
  char text[256], pct[32];
  if (!label) snprintf(text, sizeof text, "σ_rel = %s", dbfig_pct(b->fit.sigma_best, pct, sizeof pct));
  else snprintf(text, sizeof text, "%s", label);
  for (char *p = text; *p; p++)
    if (*p == '"') *p = '\''; /* the label is one double-quoted field */
  fprintf(f, "%d %.9g %.10g %.9g %.10g %.9g \"%s\" \"%s\"\n", curve, b->fit.sigma_best * 100, b->fit.value_best,
          b->fit.sigma_min * 100, b->fit.value_min, z, edm2_fit_name(b->fit.fit), text);
}

int dbfig_write_curves(plot_ctx *c, const char *name, const edm2_best *const *b, const double *z, size_t n,
                       int *band) {
  plot_data d;
  char part[256];
  int any = 0;
  ec_status st = plot_data_open(c, &d, name, DBFIG_POINT_COLUMNS);
  if (st) return st;
  for (size_t i = 0; i < n; i++) any |= dbfig_write_points(d.f, b[i], z ? z[i] : (double)(i + 1));
  if ((st = plot_data_close(&d))) return st;
  snprintf(part, sizeof part, "%s-best", name);
  if ((st = plot_data_open(c, &d, part, DBFIG_BEST_COLUMNS))) return st;
  for (size_t i = 0; i < n; i++) dbfig_write_best(d.f, (int)i + 1, b[i], z ? z[i] : (double)(i + 1), NULL);
  if ((st = plot_data_close(&d))) return st;
  if (band) *band = any;
  return EC_OK;
}

/* ---- gnuplot variables ---------------------------------------------------------------------- */

ec_status dbfig_vars_open(dbfig_vars *v) {
  memset(v, 0, sizeof *v);
  if (!(v->f = open_memstream(&v->buf, &v->len))) return ec_err(EC_ENOMEM, "out of memory");
  return EC_OK;
}

static void put_quoted(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

void dbfig_vars_str(dbfig_vars *v, const char *name, const char *value) {
  fprintf(v->f, "%s=", name);
  put_quoted(v->f, value);
  fputs("; ", v->f);
}

void dbfig_vars_num(dbfig_vars *v, const char *name, double x) { fprintf(v->f, "%s=%.10g; ", name, x); }

void dbfig_curve_vars(dbfig_vars *v, const char *title, const char *metric, int band, int max_repeats,
                      char *const *titles, size_t n) {
  char bt[96];
  snprintf(bt, sizeof bt, "min/max over %d evaluations", max_repeats);
  dbfig_vars_str(v, "title_text", title);
  dbfig_vars_str(v, "ylabel_text", dbfig_metric_label(metric));
  dbfig_vars_num(v, "ncurves", (double)n);
  dbfig_vars_num(v, "band", band);
  dbfig_vars_str(v, "band_title", bt);
  dbfig_vars_array(v, "titles", titles, n);
}

void dbfig_vars_array(dbfig_vars *v, const char *name, char *const *values, size_t n) {
  fprintf(v->f, "array %s[%zu] = [", name, n ? n : 1);
  for (size_t i = 0; i < n; i++) {
    if (i) fputs(", ", v->f);
    put_quoted(v->f, values[i]);
  }
  fputs(n ? "]; " : "'']; ", v->f);
}

void dbfig_vars_free(dbfig_vars *v) {
  if (v->f) fclose(v->f);
  v->f = NULL;
  free(v->buf);
  v->buf = NULL;
}

int dbfig_render(plot_ctx *c, dbfig_vars *v, const char *script, const char *figure) {
  if (fclose(v->f) != 0) {
    v->f = NULL;
    dbfig_vars_free(v);
    return ec_err(EC_ENOMEM, "out of memory");
  }
  v->f = NULL;
  ec_status st = plot_render(c, script, figure, v->buf);
  dbfig_vars_free(v);
  return st;
}

void dbfig_strings_free(char **s, size_t n) {
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}
