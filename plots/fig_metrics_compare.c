/* edm2-plot metrics-compare (Figure 14): FID (left axis) and FD_DINOv2 (right axis) against EMA
 * length at the latest time that has global sweeps of both (--at: that one), one colour per
 * guidance strength that both have, FID solid and FD_DINOv2 dashed, each optimum marked
 * (plots/metrics-compare.gp). --metric is not used: the figure is these two metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "plots/figures.h"

static int global_at(const edm2_best *b, const plot_ctx *c, const char *metric) {
  return dbfig_global(b) && !strcmp(b->metric, metric) && (c->at < 0 || b->nimg == c->at);
}

/* The sweep of the metric at (run, nimg, guidance), the image count `num` preferred. */
static const edm2_best *find(const dbfig_data *d, const char *run, const char *metric, int64_t nimg, double g,
                             int64_t num) {
  const edm2_best *r = NULL;
  for (size_t i = 0; i < d->sweeps.n; i++) {
    const edm2_best *b = &d->sweeps.best[i];
    if (!strcmp(b->run, run) && !strcmp(b->metric, metric) && dbfig_global(b) && b->nimg == nimg && b->guidance == g &&
        (!r || (b->num == num && r->num != num)))
      r = b;
  }
  return r;
}

int fig_metrics_compare(plot_ctx *c) {
  dbfig_data d;
  int r = dbfig_load(c, &d);
  if (r) return r;
  const edm2_best **fid = ec_mallocarray(d.sweeps.n + 1, sizeof *fid), **fd = ec_mallocarray(d.sweeps.n + 1, sizeof *fd);
  char **ft = ec_calloc(d.sweeps.n + 1, sizeof *ft), **dt = ec_calloc(d.sweeps.n + 1, sizeof *dt);
  ec_status st = EC_OK;
  size_t n = 0;
  if (!fid || !fd || !ft || !dt) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  /* The latest time at which a run has both metrics. */
  const char *run = NULL;
  int64_t nimg = -1;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!global_at(b, c, "fid") || !find(&d, b->run, "fd_dinov2", b->nimg, b->guidance, b->num)) continue;
    if (!run || (!strcmp(run, b->run) && b->nimg > nimg)) run = b->run, nimg = b->nimg;
  }
  if (!run) {
    int have_fid = 0, have_fd = 0;
    for (size_t i = 0; i < d.sweeps.n; i++) {
      have_fid |= global_at(&d.sweeps.best[i], c, "fid");
      have_fd |= global_at(&d.sweeps.best[i], c, "fd_dinov2");
    }
    st = plot_nodata(c, "needs sweeps of both fid and fd_dinov2 at one time and guidance (%s has %s)", dbfig_db_name(c),
                     have_fid ? "fid only" : have_fd ? "fd_dinov2 only" : "neither");
    goto done;
  }
  /* One pair per guidance strength that both metrics have at that time. */
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!global_at(b, c, "fid") || strcmp(b->run, run) || b->nimg != nimg) continue;
    if (n && fid[n - 1]->guidance == b->guidance) continue; /* another image count or guiding net */
    /* The FID sweep with an FD_DINOv2 sweep of the same image count, the largest such. */
    const edm2_best *f = NULL, *g = NULL;
    for (size_t j = 0; j < d.sweeps.n; j++) {
      const edm2_best *x = &d.sweeps.best[j], *y;
      if (!global_at(x, c, "fid") || strcmp(x->run, run) || x->nimg != nimg || x->guidance != b->guidance) continue;
      if (!(y = find(&d, run, "fd_dinov2", nimg, b->guidance, x->num))) continue;
      int same = y->num == x->num, fsame = f && g->num == f->num;
      if (!f || (same && !fsame) || (same == fsame && x->num > f->num)) f = x, g = y;
    }
    if (!f) continue;
    fid[n] = f, fd[n] = g, n++;
  }
  for (size_t i = 0; i < n && !st; i++) {
    char g[64], pf[32], pd[32];
    if (fid[i]->guidance == 1.0) snprintf(g, sizeof g, "%s", n > 1 ? ", no guidance" : "");
    else snprintf(g, sizeof g, ", guidance %g", fid[i]->guidance);
    ft[i] = ec_asprintf("FID%s: best %s%s", g, dbfig_pct(fid[i]->fit.sigma_best, pf, sizeof pf),
                        fid[i]->fit.fit == EDM2_FIT_PARABOLA ? "" : " (measured)");
    dt[i] = ec_asprintf("FD_DINOv2%s: best %s%s", g, dbfig_pct(fd[i]->fit.sigma_best, pd, sizeof pd),
                        fd[i]->fit.fit == EDM2_FIT_PARABOLA ? "" : " (measured)");
    if (!ft[i] || !dt[i]) st = ec_err(EC_ENOMEM, "out of memory");
  }
  if (!st) st = dbfig_write_curves(c, "metrics-compare-fid", fid, NULL, n, NULL);
  if (!st) st = dbfig_write_curves(c, "metrics-compare-fd_dinov2", fd, NULL, n, NULL);
  dbfig_vars v;
  if (!st && !(st = dbfig_vars_open(&v))) {
    char title[1024], t[96];
    snprintf(title, sizeof title, "FID and FD_DINOv2 vs EMA length: %s at %s", dbfig_run_name(run),
             dbfig_time(nimg, t, sizeof t));
    dbfig_vars_str(&v, "title_text", title);
    dbfig_vars_num(&v, "ncurves", (double)n);
    /* Each axis's range with a margin, so that no optimum sits on the frame (gnuplot's offsets
     * only widen the left axis). */
    for (int axis = 0; axis < 2; axis++) {
      const edm2_best *const *s = axis ? fd : fid;
      double lo = s[0]->points[0].min, hi = lo;
      for (size_t i = 0; i < n; i++)
        for (int k = 0; k < s[i]->fit.points; k++) {
          if (s[i]->points[k].min < lo) lo = s[i]->points[k].min;
          if (s[i]->points[k].max > hi) hi = s[i]->points[k].max;
        }
      double pad = hi > lo ? 0.06 * (hi - lo) : 0.01 * fabs(hi) + 1e-12;
      dbfig_vars_num(&v, axis ? "y2min" : "y1min", lo - pad);
      dbfig_vars_num(&v, axis ? "y2max" : "y1max", hi + pad);
    }
    dbfig_vars_array(&v, "fid_titles", ft, n);
    dbfig_vars_array(&v, "fd_titles", dt, n);
    st = dbfig_render(c, &v, "metrics-compare", "metrics-compare");
  }
done:
  if (ft) dbfig_strings_free(ft, d.sweeps.n + 1);
  if (dt) dbfig_strings_free(dt, d.sweeps.n + 1);
  free(fid), free(fd);
  dbfig_free(&d);
  return st;
}
