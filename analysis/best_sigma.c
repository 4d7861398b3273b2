/* The best σ_rel of each sweep; see best_sigma.h. */
#include "analysis/best_sigma.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

const char *edm2_fit_name(edm2_fit_kind k) {
  switch (k) {
  case EDM2_FIT_PARABOLA: return "parabola";
  case EDM2_FIT_FEW: return "few points";
  case EDM2_FIT_FLAT: return "flat";
  case EDM2_FIT_EDGE: return "edge";
  case EDM2_FIT_NOT_CONVEX: return "not convex";
  case EDM2_FIT_OUTSIDE: return "outside";
  }
  return "?";
}

/* Solves the 3x3 system m x = r by Gaussian elimination with partial pivoting; 0 when singular. */
static int solve3(double m[3][3], double r[3], double x[3]) {
  for (int c = 0; c < 3; c++) {
    int p = c;
    for (int i = c + 1; i < 3; i++)
      if (fabs(m[i][c]) > fabs(m[p][c])) p = i;
    if (m[p][c] == 0) return 0;
    if (p != c) {
      for (int j = 0; j < 3; j++) {
        double t = m[c][j];
        m[c][j] = m[p][j];
        m[p][j] = t;
      }
      double t = r[c];
      r[c] = r[p];
      r[p] = t;
    }
    for (int i = c + 1; i < 3; i++) {
      double f = m[i][c] / m[c][c];
      for (int j = c; j < 3; j++) m[i][j] -= f * m[c][j];
      r[i] -= f * r[c];
    }
  }
  for (int i = 2; i >= 0; i--) {
    double s = r[i];
    for (int j = i + 1; j < 3; j++) s -= m[i][j] * x[j];
    x[i] = s / m[i][i];
  }
  return 1;
}

ec_status edm2_fit_min(const double *sigma, const double *value, int n, edm2_fit *out) {
  if (n < 1) return ec_err(EC_EINVAL, "best sigma_rel: no points");
  for (int i = 0; i < n; i++) {
    if (!isfinite(sigma[i]) || !isfinite(value[i]))
      return ec_err(EC_EINVAL, "best sigma_rel: point %d (sigma_rel %g, value %g) is not finite", i,
                    sigma[i], value[i]);
    if (i && !(sigma[i] > sigma[i - 1]))
      return ec_err(EC_EINVAL, "best sigma_rel: sigma_rel %g after %g is not increasing", sigma[i],
                    sigma[i - 1]);
  }
  int k = 0;
  double vmax = value[0];
  for (int i = 1; i < n; i++) {
    if (value[i] < value[k]) k = i;
    if (value[i] > vmax) vmax = value[i];
  }
  edm2_fit f = {.sigma_min = sigma[k], .value_min = value[k], .points = n};
  f.sigma_best = f.sigma_min;
  f.value_best = f.value_min;
  if (n < 3) f.fit = EDM2_FIT_FEW;
  else if (vmax == value[k]) f.fit = EDM2_FIT_FLAT;
  else if (k == 0 || k == n - 1) f.fit = EDM2_FIT_EDGE;
  if (n < 3 || vmax == value[k] || k == 0 || k == n - 1) {
    *out = f;
    return EC_OK;
  }

  /* Least squares y = c + b t + a t² over the minimum and up to two neighbours on each side, in
   * t = (σ - σ_k) / h and y = value - value_k, so that the normal equations are well scaled
   * (t in [-1, 1]) and the constant part of the values does not cancel digits. */
  int lo = k - 2 < 0 ? 0 : k - 2, hi = k + 2 > n - 1 ? n - 1 : k + 2;
  double h = fmax(sigma[hi] - sigma[k], sigma[k] - sigma[lo]);
  double m[3][3] = {{0}}, r[3] = {0}, yscale = 0;
  for (int i = lo; i <= hi; i++) {
    double t = (sigma[i] - sigma[k]) / h, y = value[i] - value[k], p[3] = {1, t, t * t};
    for (int a = 0; a < 3; a++) {
      for (int b = 0; b < 3; b++) m[a][b] += p[a] * p[b];
      r[a] += p[a] * y;
    }
    yscale = fmax(yscale, fabs(y));
  }
  f.fitted = hi - lo + 1;
  double x[3];
  if (!solve3(m, r, x)) { /* cannot happen for >= 3 distinct σ; kept as a guard */
    f.fit = EDM2_FIT_FLAT;
    *out = f;
    return EC_OK;
  }
  double c = x[0], b = x[1], a = x[2];
  /* Curvature below 1e-9 of the values' spread over the window is rounding, not a minimum. */
  if (fabs(a) <= 1e-9 * yscale) f.fit = EDM2_FIT_FLAT;
  else if (a < 0) f.fit = EDM2_FIT_NOT_CONVEX;
  else {
    double tv = -b / (2 * a), tlo = (sigma[lo] - sigma[k]) / h, thi = (sigma[hi] - sigma[k]) / h;
    if (tv < tlo || tv > thi) f.fit = EDM2_FIT_OUTSIDE;
    else {
      f.fit = EDM2_FIT_PARABOLA;
      f.sigma_best = sigma[k] + h * tv;
      f.value_best = value[k] + c - b * b / (4 * a);
    }
  }
  *out = f;
  return EC_OK;
}

static const char *nz(const char *s) { return s ? s : ""; }

/* Sweep key, then σ_rel. */
static int cmp_rows(const void *pa, const void *pb) {
  const edm2_result *a = *(const edm2_result *const *)pa, *b = *(const edm2_result *const *)pb;
  int c;
  if ((c = strcmp(nz(a->run), nz(b->run)))) return c;
  if ((c = strcmp(nz(a->metric), nz(b->metric)))) return c;
  if (a->guidance != b->guidance) return a->guidance < b->guidance ? -1 : 1;
  if ((c = strcmp(nz(a->gnet), nz(b->gnet)))) return c;
  if (a->nimg != b->nimg) return a->nimg < b->nimg ? -1 : 1;
  if ((c = strcmp(nz(a->tensor_rule), nz(b->tensor_rule)))) return c;
  if (a->num != b->num) return a->num < b->num ? -1 : 1;
  if (a->sigma_rel != b->sigma_rel) return a->sigma_rel < b->sigma_rel ? -1 : 1;
  return 0;
}

static int same_sweep(const edm2_result *a, const edm2_result *b) {
  return !strcmp(nz(a->run), nz(b->run)) && !strcmp(nz(a->metric), nz(b->metric)) &&
         a->guidance == b->guidance && !strcmp(nz(a->gnet), nz(b->gnet)) && a->nimg == b->nimg &&
         !strcmp(nz(a->tensor_rule), nz(b->tensor_rule)) && a->num == b->num;
}

void edm2_best_list_free(edm2_best_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) ec_freep(&l->best[i].points);
  ec_freep(&l->best);
  l->n = 0;
}

ec_status edm2_best_sigma(const edm2_result *rows, size_t n, edm2_best_list *out) {
  out->best = NULL;
  out->n = 0;
  ec_status st = EC_OK;
  const edm2_result **sel = n ? ec_mallocarray(n, sizeof *sel) : NULL;
  double *xs = n ? ec_mallocarray(n, sizeof *xs) : NULL, *ys = n ? ec_mallocarray(n, sizeof *ys) : NULL;
  if (n && (!sel || !xs || !ys)) {
    st = EC_ENOMEM;
    goto done;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].sigma_rel > 0 && rows[i].half_life == 0) sel[m++] = &rows[i];
  if (m) qsort(sel, m, sizeof *sel, cmp_rows);
  /* At most one sweep per selected row; allocated once. */
  if (m && !(out->best = ec_calloc(m, sizeof *out->best))) {
    st = EC_ENOMEM;
    goto done;
  }
  for (size_t g0 = 0, g1; g0 < m; g0 = g1) {
    for (g1 = g0 + 1; g1 < m && same_sweep(sel[g0], sel[g1]);) g1++;
    edm2_best *b = &out->best[out->n];
    const edm2_result *r = sel[g0];
    *b = (edm2_best){.run = nz(r->run), .metric = nz(r->metric), .gnet = nz(r->gnet),
                     .tensor_rule = nz(r->tensor_rule), .guidance = r->guidance,
                     .nimg = r->nimg, .num = r->num};
    if (!(b->points = ec_mallocarray(g1 - g0, sizeof *b->points))) {
      st = EC_ENOMEM;
      goto done;
    }
    out->n++;
    int np = 0;
    for (size_t i = g0; i < g1; i++) {
      const edm2_result *s = sel[i];
      if (np && b->points[np - 1].sigma_rel == s->sigma_rel) {
        edm2_sigma_point *p = &b->points[np - 1];
        p->mean += s->value; /* a sum until the group is complete */
        p->min = fmin(p->min, s->value);
        p->max = fmax(p->max, s->value);
        p->count++;
      } else {
        b->points[np++] = (edm2_sigma_point){s->sigma_rel, s->value, s->value, s->value, 1};
      }
    }
    for (int i = 0; i < np; i++) {
      b->points[i].mean /= b->points[i].count;
      xs[i] = b->points[i].sigma_rel;
      ys[i] = b->points[i].mean;
    }
    if ((st = edm2_fit_min(xs, ys, np, &b->fit))) {
      ec_err_context(st, "sweep of %s, %s, nimg %lld", b->run, b->metric, (long long)b->nimg);
      goto done;
    }
  }
done:
  ec_freep(&sel);
  ec_freep(&xs);
  ec_freep(&ys);
  if (st) edm2_best_list_free(out);
  return st;
}
