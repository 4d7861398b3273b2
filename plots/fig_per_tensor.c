/* edm2-plot per-tensor (Figure 5b): one faint line per per-tensor sweep (one tensor's EMA length
 * varied, every other tensor at the base; edm2-sweep per-tensor) over the global sweep drawn
 * bold, at the latest time that has per-tensor sweeps (--at: that one); optima marked
 * (plots/per-tensor.gp). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "plots/figures.h"

/* More tensors than this: grey lines with one key entry, the best three in colour with theirs. */
#define LEGEND_MAX 6

static int usable(const edm2_best *b, const void *arg) {
  const plot_ctx *c = arg;
  return b->tensor_rule[0] && b->guidance == 1.0 && !b->gnet[0] && (c->at < 0 || b->nimg == c->at);
}

typedef struct {
  const edm2_best *b;
  char *name;
  double base; /* the other tensors' σ_rel; 0 when the text does not say */
} tensor;

/* "per-tensor: NAME at sigma_rel, every other tensor at BASE" -> NAME, BASE; other texts: the
 * text itself (or the hash). */
static ec_status parse_rule(const dbfig_data *d, const edm2_best *b, tensor *t) {
  const char *text = NULL;
  for (size_t i = 0; i < d->rows.n && !text; i++)
    if (d->rows.rows[i].tensor_rule && !strcmp(d->rows.rows[i].tensor_rule, b->tensor_rule))
      text = d->rows.rows[i].tensor_rule_text;
  if (!text || !*text) text = b->tensor_rule;
  const char *pre = "per-tensor: ", *mid = " at sigma_rel", *base = "every other tensor at ";
  const char *s = strncmp(text, pre, strlen(pre)) ? text : text + strlen(pre);
  const char *e = strstr(s, mid);
  t->name = e ? ec_asprintf("%.*s", (int)(e - s), s) : ec_strdup(s);
  const char *p = strstr(text, base);
  t->base = p ? strtod(p + strlen(base), NULL) : 0;
  return t->name ? EC_OK : ec_err(EC_ENOMEM, "out of memory");
}

static int by_name(const void *a, const void *b) { return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name); }

static int by_value(const void *a, const void *b) {
  double x = (*(const tensor *const *)a)->b->fit.value_best, y = (*(const tensor *const *)b)->b->fit.value_best;
  return (x > y) - (x < y);
}

int fig_per_tensor(plot_ctx *c) {
  dbfig_data d;
  int r = dbfig_load(c, &d);
  if (r) return r;
  const char *metric = dbfig_metric(c, &d, usable, c, "per-tensor rules (edm2-sweep per-tensor)");
  if (!metric) {
    dbfig_free(&d);
    return EDM2_PLOT_NODATA;
  }
  const char *run = dbfig_busiest_run(&d, metric, usable, c);
  int64_t nimg = dbfig_latest(&d, run, metric, usable, c);
  const edm2_best **sel = ec_mallocarray(d.sweeps.n, sizeof *sel);
  tensor *ts = ec_calloc(d.sweeps.n, sizeof *ts);
  tensor **order = ec_calloc(d.sweeps.n, sizeof *order);
  char **titles = ec_calloc(d.sweeps.n, sizeof *titles);
  ec_status st = EC_OK;
  if (!sel || !ts || !titles || !order) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  size_t n = 0;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!strcmp(b->run, run) && !strcmp(b->metric, metric) && b->nimg == nimg && usable(b, c)) sel[n++] = b;
  }
  int64_t num = dbfig_common_num(sel, n);
  size_t nt = 0;
  for (size_t i = 0; i < n && !st; i++)
    if (sel[i]->num == num) {
      ts[nt].b = sel[i];
      st = parse_rule(&d, sel[i], &ts[nt++]);
    }
  if (st) goto done;
  qsort(ts, nt, sizeof *ts, by_name);
  /* The global sweep at the same time and image count (any image count when none has it). */
  const edm2_best *global = NULL;
  for (size_t i = 0; i < d.sweeps.n; i++) {
    const edm2_best *b = &d.sweeps.best[i];
    if (!strcmp(b->run, run) && !strcmp(b->metric, metric) && b->nimg == nimg && dbfig_plain(b) &&
        (!global || (b->num == num && global->num != num)))
      global = b;
  }
  double base = nt ? ts[0].base : 0;
  for (size_t i = 1; i < nt; i++)
    if (ts[i].base != base) base = 0; /* different bases: no single line to draw */

  plot_data f;
  const edm2_best **tb = (const edm2_best **)sel; /* reused: the tensors' sweeps in name order */
  for (size_t i = 0; i < nt; i++) tb[i] = ts[i].b, order[i] = &ts[i];
  if ((st = plot_data_open(c, &f, "per-tensor", DBFIG_POINT_COLUMNS))) goto done;
  for (size_t i = 0; i < nt; i++) dbfig_write_points(f.f, tb[i], (double)(i + 1));
  if ((st = plot_data_close(&f))) goto done;
  if ((st = plot_data_open(c, &f, "per-tensor-best", DBFIG_BEST_COLUMNS))) goto done;
  for (size_t i = 0; i < nt; i++) dbfig_write_best(f.f, (int)i + 1, tb[i], (double)(i + 1), ts[i].name);
  if ((st = plot_data_close(&f))) goto done;
  /* The best three tensors (lowest optimum): curve = the tensor's block, z = the rank. */
  qsort(order, nt, sizeof *order, by_value);
  size_t ntop = nt < 3 ? nt : 3;
  if ((st = plot_data_open(c, &f, "per-tensor-top", DBFIG_BEST_COLUMNS))) goto done;
  for (size_t i = 0; i < ntop; i++)
    dbfig_write_best(f.f, (int)(order[i] - ts) + 1, order[i]->b, (double)(i + 1), order[i]->name);
  if ((st = plot_data_close(&f))) goto done;
  if ((st = plot_data_open(c, &f, "per-tensor-global", DBFIG_POINT_COLUMNS))) goto done;
  if (global) dbfig_write_points(f.f, global, 0);
  if ((st = plot_data_close(&f))) goto done;
  if ((st = plot_data_open(c, &f, "per-tensor-global-best", DBFIG_BEST_COLUMNS))) goto done;
  if (global) dbfig_write_best(f.f, 0, global, 0, NULL);
  if ((st = plot_data_close(&f))) goto done;

  for (size_t i = 0; i < nt && !st; i++) {
    char best[128];
    if (!(titles[i] = ec_asprintf("%s: %s", ts[i].name, dbfig_best_text(ts[i].b, best, sizeof best))))
      st = ec_err(EC_ENOMEM, "out of memory");
  }
  dbfig_vars v;
  if (!st) st = dbfig_vars_open(&v);
  if (!st) {
    char title[1024], t[96], pct[32], gt[256], bt[128], kt[128];
    snprintf(title, sizeof title, "%s vs one tensor's EMA length: %s at %s", dbfig_metric_label(metric),
             dbfig_run_name(run), dbfig_time(nimg, t, sizeof t));
    if (global) snprintf(gt, sizeof gt, "every tensor (global): %s", dbfig_best_text(global, bt, sizeof bt));
    else snprintf(gt, sizeof gt, "%s", "");
    snprintf(kt, sizeof kt, "one tensor at a time (%zu tensors; the best %zu in colour)", nt, ntop);
    dbfig_vars_str(&v, "title_text", title);
    dbfig_vars_str(&v, "ylabel_text", dbfig_metric_label(metric));
    dbfig_vars_num(&v, "ntensors", (double)nt);
    dbfig_vars_num(&v, "legend", nt <= LEGEND_MAX);
    dbfig_vars_str(&v, "tensors_title", kt);
    dbfig_vars_num(&v, "have_global", global != NULL);
    dbfig_vars_str(&v, "global_title", gt);
    dbfig_vars_num(&v, "base_pct", base * 100);
    snprintf(bt, sizeof bt, "other tensors at σ_rel = %s", dbfig_pct(base, pct, sizeof pct));
    dbfig_vars_str(&v, "base_title", base > 0 ? bt : "");
    dbfig_vars_array(&v, "titles", titles, nt);
    char *top[3];
    for (size_t i = 0; i < ntop; i++) top[i] = titles[order[i] - ts];
    dbfig_vars_array(&v, "top_titles", top, ntop);
    fprintf(v.f, "array top_index[%zu] = [", ntop ? ntop : 1);
    for (size_t i = 0; i < ntop; i++) fprintf(v.f, "%s%d", i ? ", " : "", (int)(order[i] - ts));
    fputs(ntop ? "]; " : "0]; ", v.f);
    dbfig_vars_num(&v, "ntop", (double)ntop);
    /* The y range of the tensors' curves (and the global minimum): the global curve, which
     * usually climbs far higher at long EMA lengths, leaves it at the top rather than
     * flattening the tensors' differences. */
    double lo = ts[0].b->points[0].mean, hi = lo;
    for (size_t i = 0; i < nt; i++)
      for (int k = 0; k < ts[i].b->fit.points; k++) {
        const edm2_sigma_point *p = &ts[i].b->points[k];
        if (p->min < lo) lo = p->min;
        if (p->max > hi) hi = p->max;
      }
    for (int k = 0; global && k < global->fit.points; k++)
      if (global->points[k].min < lo) lo = global->points[k].min;
    double pad = hi > lo ? 0.08 * (hi - lo) : 0.01 * fabs(hi) + 1e-12;
    dbfig_vars_num(&v, "ymin", lo - pad);
    dbfig_vars_num(&v, "ymax", hi + pad);
    st = dbfig_render(c, &v, "per-tensor", "per-tensor");
  }
done:
  if (ts)
    for (size_t i = 0; i < d.sweeps.n; i++) free(ts[i].name);
  if (titles) dbfig_strings_free(titles, d.sweeps.n);
  free(ts), free(order), free(sel);
  dbfig_free(&d);
  return st;
}
