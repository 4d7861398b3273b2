/* edm2-plot ema-sweep (Figure 5a): the metric against EMA length, one curve per run (and image
 * count) at its latest snapshot (--at: that one), without guidance or per-tensor rules; the
 * min/max over repeats as a band around the mean, the best σ_rel marked (plots/ema-sweep.gp). */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "plots/figures.h"

static int usable(const edm2_best *b, const void *arg) {
  const plot_ctx *c = arg;
  return dbfig_plain(b) && (c->at < 0 || b->nimg == c->at);
}

int fig_ema_sweep(plot_ctx *c) {
  dbfig_data d;
  int r = dbfig_load(c, &d);
  if (r) return r;
  const char *metric = dbfig_metric(c, &d, usable, c, "a global EMA length and no guidance");
  if (!metric) {
    dbfig_free(&d);
    return EDM2_PLOT_NODATA;
  }
  const edm2_best **sel = ec_mallocarray(d.sweeps.n, sizeof *sel);
  char **titles = ec_calloc(d.sweeps.n, sizeof *titles);
  if (!sel || !titles) {
    free(sel), free(titles), dbfig_free(&d);
    return ec_err(EC_ENOMEM, "out of memory");
  }
  /* Each run's sweeps at its latest time (or --at). */
  size_t n = 0;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!strcmp(b->metric, metric) && usable(b, c) && b->nimg == dbfig_latest(&d, b->run, metric, usable, c))
      sel[n++] = b;
  }
  int runs = 0, nums = 0, band = 0, maxrep = 0;
  for (size_t i = 0; i < n; i++) {
    runs += i == 0 || strcmp(sel[i]->run, sel[i - 1]->run);
    int newnum = 1;
    for (size_t j = 0; j < i; j++) newnum &= sel[j]->num != sel[i]->num;
    nums += newnum;
    for (int k = 0; k < sel[i]->fit.points; k++)
      if (sel[i]->points[k].count > maxrep) maxrep = sel[i]->points[k].count;
  }
  ec_status st = EC_OK;
  for (size_t i = 0; i < n && !st; i++) {
    char best[128], t[96];
    dbfig_best_text(sel[i], best, sizeof best);
    dbfig_time(sel[i]->nimg, t, sizeof t);
    if (runs > 1 && nums > 1)
      titles[i] = ec_asprintf("%s, %lld images: %s", dbfig_run_name(sel[i]->run), (long long)sel[i]->num, best);
    else if (runs > 1) titles[i] = ec_asprintf("%s at %s: %s", dbfig_run_name(sel[i]->run), t, best);
    else if (nums > 1) titles[i] = ec_asprintf("%lld images: %s", (long long)sel[i]->num, best);
    else titles[i] = ec_asprintf("%s: %s", maxrep > 1 ? "mean" : dbfig_metric_label(metric), best);
    if (!titles[i]) st = ec_err(EC_ENOMEM, "out of memory");
  }
  if (!st) st = dbfig_write_curves(c, "ema-sweep", sel, NULL, n, &band);
  dbfig_vars v;
  if (!st) st = dbfig_vars_open(&v);
  if (!st) {
    char title[1024], t[96];
    dbfig_time(sel[0]->nimg, t, sizeof t);
    if (runs > 1) snprintf(title, sizeof title, "%s vs EMA length: %d runs at their latest snapshot", dbfig_metric_label(metric), runs);
    else snprintf(title, sizeof title, "%s vs EMA length: %s at %s", dbfig_metric_label(metric), dbfig_run_name(sel[0]->run), t);
    dbfig_curve_vars(&v, title, metric, band, maxrep, titles, n);
    dbfig_vars_num(&v, "labels", n <= 3); /* "σ_rel = 3.9 %" next to the marker; else in the key */
    st = dbfig_render(c, &v, "ema-sweep", "ema-sweep");
  }
  dbfig_strings_free(titles, d.sweeps.n);
  free(sel);
  dbfig_free(&d);
  return st;
}
