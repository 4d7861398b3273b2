/* edm2-plot evolution (Figure 5c): the global EMA sweep (no guidance, no per-tensor rule) at
 * every training time that has one, coloured by the time in Mimg, each optimum marked
 * (plots/evolution.gp). Needs two times at least: edm2-sweep evolution writes them. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "plots/figures.h"

static int usable(const edm2_best *b, const void *arg) {
  (void)arg;
  return dbfig_plain(b);
}

int fig_evolution(plot_ctx *c) {
  dbfig_data d;
  int r = dbfig_load(c, &d);
  if (r) return r;
  const char *metric = dbfig_metric(c, &d, usable, c, "a global EMA length and no guidance");
  if (!metric) {
    dbfig_free(&d);
    return EDM2_PLOT_NODATA;
  }
  const char *run = dbfig_busiest_run(&d, metric, usable, c);
  const edm2_best **sel = ec_mallocarray(d.sweeps.n, sizeof *sel);
  double *z = ec_mallocarray(d.sweeps.n, sizeof *z);
  ec_status st = EC_OK;
  if (!sel || !z) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  size_t n = 0;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!strcmp(b->run, run) && !strcmp(b->metric, metric) && usable(b, c)) sel[n++] = b;
  }
  /* One image count for all times (the one most sweeps have); sweeps come ordered by time. */
  int64_t num = dbfig_common_num(sel, n);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (sel[i]->num == num && (k == 0 || sel[k - 1]->nimg != sel[i]->nimg)) sel[k++] = sel[i];
  n = k;
  if (n < 2) {
    char t[96];
    st = plot_nodata(c, "only one training time (%s) has a %s sweep of %s; edm2-sweep evolution adds more",
                     dbfig_time(sel[0]->nimg, t, sizeof t), metric, dbfig_run_name(run));
    goto done;
  }
  for (size_t i = 0; i < n; i++) z[i] = dbfig_mimg(sel[i]->nimg);
  if ((st = dbfig_write_curves(c, "evolution", sel, z, n, NULL))) goto done;
  dbfig_vars v;
  if (!(st = dbfig_vars_open(&v))) {
    char title[1024];
    snprintf(title, sizeof title, "%s vs EMA length over training: %s, %zu training times", dbfig_metric_label(metric),
             dbfig_run_name(run), n);
    dbfig_vars_str(&v, "title_text", title);
    dbfig_vars_str(&v, "ylabel_text", dbfig_metric_label(metric));
    dbfig_vars_num(&v, "cbmin", z[0]);
    dbfig_vars_num(&v, "cbmax", z[n - 1]);
    st = dbfig_render(c, &v, "evolution", "evolution");
  }
done:
  free(sel), free(z);
  dbfig_free(&d);
  return st;
}
