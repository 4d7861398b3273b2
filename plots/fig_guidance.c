/* edm2-plot guidance (Figure 6): the metric against EMA length, one curve per guidance strength
 * (1 = none included), at the latest time that has guided sweeps (--at: that one); each curve's
 * optimum marked (plots/guidance.gp). Nothing to draw with guidance 1 alone. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "plots/figures.h"

/* A guided global sweep: what makes the figure worth drawing. */
static int guided(const edm2_best *b, const void *arg) {
  const plot_ctx *c = arg;
  return dbfig_global(b) && b->guidance != 1.0 && (c->at < 0 || b->nimg == c->at);
}

int fig_guidance(plot_ctx *c) {
  dbfig_data d;
  int r = dbfig_load(c, &d);
  if (r) return r;
  const char *metric = dbfig_metric(c, &d, guided, c, "guidance other than 1 (edm2-sweep ema --guidance LIST --gnet NET)");
  if (!metric) {
    dbfig_free(&d);
    return EDM2_PLOT_NODATA;
  }
  const char *run = dbfig_busiest_run(&d, metric, guided, c);
  int64_t nimg = dbfig_latest(&d, run, metric, guided, c);
  const edm2_best **sel = ec_mallocarray(d.sweeps.n, sizeof *sel);
  char **titles = ec_calloc(d.sweeps.n, sizeof *titles);
  double *z = ec_mallocarray(d.sweeps.n, sizeof *z);
  ec_status st = EC_OK;
  if (!sel || !titles || !z) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  size_t n = 0;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!strcmp(b->run, run) && !strcmp(b->metric, metric) && b->nimg == nimg && dbfig_global(b)) sel[n++] = b;
  }
  int64_t num = dbfig_common_num(sel, n);
  size_t k = 0;
  int gnets = 0;
  for (size_t i = 0; i < n; i++)
    if (sel[i]->num == num) sel[k++] = sel[i]; /* ordered by guidance, then guiding net */
  n = k;
  for (size_t i = 0; i < n; i++) gnets += sel[i]->gnet[0] && (i == 0 || strcmp(sel[i]->gnet, sel[i - 1]->gnet));
  size_t guidances = 0;
  for (size_t i = 0; i < n; i++) guidances += i == 0 || sel[i]->guidance != sel[i - 1]->guidance;
  if (guidances < 2) {
    st = plot_nodata(c, "%s has one guidance strength (%g) at one image count", metric, sel[0]->guidance);
    goto done;
  }
  for (size_t i = 0; i < n && !st; i++) {
    char best[128];
    z[i] = sel[i]->guidance;
    dbfig_best_text(sel[i], best, sizeof best);
    if (gnets > 1 && sel[i]->gnet[0])
      titles[i] = ec_asprintf("guidance %g (%s): %s", sel[i]->guidance, dbfig_run_name(sel[i]->gnet), best);
    else if (sel[i]->guidance == 1.0) titles[i] = ec_asprintf("no guidance: %s", best);
    else titles[i] = ec_asprintf("guidance %g: %s", sel[i]->guidance, best);
    if (!titles[i]) st = ec_err(EC_ENOMEM, "out of memory");
  }
  int band = 0;
  if (!st) st = dbfig_write_curves(c, "guidance", sel, z, n, &band);
  dbfig_vars v;
  if (!st && !(st = dbfig_vars_open(&v))) {
    char title[1024], t[96];
    snprintf(title, sizeof title, "%s vs EMA length per guidance strength: %s at %s", dbfig_metric_label(metric),
             dbfig_run_name(run), dbfig_time(nimg, t, sizeof t));
    dbfig_curve_vars(&v, title, metric, band, dbfig_max_count(sel, n), titles, n);
    st = dbfig_render(c, &v, "guidance", "guidance");
  }
done:
  if (titles) dbfig_strings_free(titles, d.sweeps.n);
  free(sel), free(z);
  dbfig_free(&d);
  return st;
}
