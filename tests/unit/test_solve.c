/* posthoc/solve: weights against the golden file (EDM2's float64 solve and the exact 60-digit
 * optimum), the error tables of posthoc-reference §3.4, interval vs dense agreement, accuracy at
 * n = 4096, diagnostics, Tikhonov, and every input error with its message. */
#include <stdlib.h>

#include "core/alloc.h"
#include "posthoc/solve.h"
#include "tests/test.h"
#include "tests/unit/golden_h5.h"

typedef struct {
  size_t n, k;
  int64_t *t;
  double *g;
  phema_profile *r;
  double *x_exact, *err_exact, *x_edm2, *x_edm2_raw, *err_edm2;
} gcase;

static void gcase_free(gcase *c) {
  free(c->t);
  free(c->g);
  free(c->r);
  free(c->x_exact);
  free(c->err_exact);
  free(c->x_edm2);
  free(c->x_edm2_raw);
  free(c->err_edm2);
  memset(c, 0, sizeof *c);
}

/* Loads one golden group; 0 on failure. */
static int gcase_load(gcase *c, const char *group) {
  memset(c, 0, sizeof *c);
  hid_t f = golden_open();
  if (f < 0) return 0;
  char name[256];
#define PATH(ds) (snprintf(name, sizeof name, "%s/%s", group, ds), name)
  size_t n = 0, k = 0, cols = 0;
  c->t = golden_i64(f, PATH("t"), &n);
  c->g = golden_f64(f, PATH("gamma"), &n, NULL);
  int *kind = golden_int(f, PATH("target_kind"), &k);
  int64_t *tt = golden_i64(f, PATH("target_t"), &k);
  double *ts = golden_f64(f, PATH("target_sigma"), &k, NULL);
  double *tg = golden_f64(f, PATH("target_gamma"), &k, NULL);
  double *th = golden_f64(f, PATH("target_half_life"), &k, NULL);
  c->x_exact = golden_f64(f, PATH("x_exact"), &n, &cols);
  c->err_exact = golden_f64(f, PATH("err_exact"), NULL, NULL);
  c->x_edm2 = golden_f64(f, PATH("x_edm2"), NULL, NULL);
  c->x_edm2_raw = golden_f64(f, PATH("x_edm2_raw"), NULL, NULL);
  c->err_edm2 = golden_f64(f, PATH("err_edm2"), NULL, NULL);
#undef PATH
  H5Fclose(f);
  int ok = c->t && c->g && kind && tt && ts && tg && th && c->x_exact && c->err_exact && cols == k;
  if (ok) {
    c->n = n;
    c->k = k;
    c->r = calloc(k, sizeof *c->r);
    for (size_t j = 0; j < k; j++)
      c->r[j] =
          kind[j] == 0
              ? (phema_profile){.kind = PHEMA_POWER, .sigma_rel = ts[j], .gamma = tg[j], .t = tt[j]}
              : (phema_profile){.kind = PHEMA_EXP, .half_life = th[j], .t = tt[j]};
  }
  free(kind);
  free(tt);
  free(ts);
  free(tg);
  free(th);
  if (!ok) gcase_free(c);
  return ok;
}

#define LOAD(c, group)                                                                             \
  do {                                                                                             \
    if (!gcase_load(&(c), group)) {                                                                \
      test_fail_(__FILE__, __LINE__, "cannot read %s from tests/golden/posthoc_solver.h5", group); \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* ‖x_col − y_col‖₂ / ‖y_col‖₂ for column col of two row-major n×k arrays (y_k columns in y). */
static double coldev(const double *x, int xk, const double *y, int yk, size_t n, int col) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    double a = x[i * xk + col], b = y[i * yk + col];
    d += (a - b) * (a - b);
    s += b * b;
  }
  return sqrt(d / s);
}

/* Relative error of a against the reference b rounded to the 4 significant digits the tables print.
 */
static int same_digits(double a, double b, int digits) {
  char x[32], y[32];
  snprintf(x, sizeof x, "%.*e", digits - 1, a);
  snprintf(y, sizeof y, "%.*e", digits - 1, b);
  return !strcmp(x, y);
}

#define ASSERT_DIGITS(a, b, digits)                                                                \
  do {                                                                                             \
    double a2_ = (a), b2_ = (b);                                                                   \
    if (!same_digits(a2_, b2_, digits)) {                                                          \
      test_fail_(__FILE__, __LINE__, "%s = %.6e, table says %.*e", #a, a2_, (digits)-1, b2_);      \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

static ec_status solve_with(const gcase *c, phema_method m, int raw, double *x, phema_diag *d) {
  phema_solve_opts o;
  phema_solve_opts_init(&o);
  o.method = m;
  o.raw = raw;
  return phema_solve(c->t, c->g, (int)c->n, c->r, (int)c->k, &o, x, d);
}

/* ---- golden: uniform layouts n = 8 … 512 --------------------------------------------------- */

/* Reference table values (posthoc-reference §3.4.1) for targets 0.015, 0.05, 0.13, 0.25: the
 * exact optimum's error and the error after EDM2's Σx = 1 normalisation. */
static const struct {
  int n;
  double err[4], err_norm[4];
} table341[] = {
    {8, {3.628e-01, 0, 1.944e-02, 1.693e-01}, {3.653e-01, 0, 1.961e-02, 1.817e-01}},
    {64, {2.312e-02, 0, 3.362e-04, 1.450e-02}, {2.312e-02, 0, 3.362e-04, 1.461e-02}},
    {256, {1.524e-03, 0, 2.105e-05, 2.680e-03}, {1.524e-03, 0, 2.105e-05, 2.685e-03}},
    {512, {3.821e-04, 0, 5.262e-06, 1.151e-03}, {3.821e-04, 0, 5.262e-06, 1.152e-03}},
};

TEST(uniform_against_golden_and_tables) {
  for (size_t ci = 0; ci < sizeof table341 / sizeof table341[0]; ci++) {
    int nt = table341[ci].n;
    char group[32];
    snprintf(group, sizeof group, "uniform_n%d", nt);
    gcase c;
    LOAD(c, group);
    int n = (int)c.n, k = (int)c.k;
    double *x = ec_mallocarray(c.n * c.k, sizeof *x);
    phema_diag d[4];
    double worst_iv = 0, worst_ch = 0, worst_edm2 = 0;
    /* Raw least squares: interval (the AUTO choice) and Cholesky against the exact optimum. */
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 1, x, d));
    for (int j = 0; j < k; j++) {
      ASSERT_EQ_INT(d[j].method, PHEMA_METHOD_INTERVAL);
      double dev = coldev(x, k, c.x_exact, k, c.n, j);
      if (dev > worst_iv) worst_iv = dev;
      /* The interval solver has no n⁴ conditioning: 1e-12 leaves a 10× margin over the measured
       * worst case at n = 512 (see docs/posthoc-solver.md). */
      ASSERT_TRUE(dev <= 1e-12);
      if (c.err_exact[j] > 1e-20) {
        if (j == 2)
          printf("# n=%d sigma 0.13: error %.6e, rel. to exact %.1e\n", nt, d[j].rel_error,
                 fabs(d[j].rel_error / c.err_exact[j] - 1));
        ASSERT_REL(d[j].rel_error, c.err_exact[j], 1e-8);
        ASSERT_DIGITS(d[j].rel_error, table341[ci].err[j], 4);
      } else {
        ASSERT_TRUE(d[j].rel_error < 1e-13); /* the σ 0.05 target equals a stored profile */
      }
    }
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_CHOLESKY, 1, x, d));
    for (int j = 0; j < k; j++) {
      ASSERT_EQ_INT(d[j].method, PHEMA_METHOD_CHOLESKY);
      double dev = coldev(x, k, c.x_exact, k, c.n, j);
      if (dev > worst_ch) worst_ch = dev;
      /* Dense float64 solves deviate ~n⁴·eps (6e-9 at n = 512 in posthoc-reference §3.5). */
      ASSERT_TRUE(dev <= 1e-8);
      if (c.err_exact[j] > 1e-20) ASSERT_DIGITS(d[j].rel_error, table341[ci].err[j], 4);
    }
    /* EDM2 mode (the default): Σx = 1 columns against EDM2's own float64 output. */
    const char *paths[2] = {"interval", "cholesky"};
    for (int p = 0; p < 2; p++) {
      ASSERT_OK(solve_with(&c, p ? PHEMA_METHOD_CHOLESKY : PHEMA_METHOD_AUTO, 0, x, d));
      for (int j = 0; j < k; j++) {
        double dev = coldev(x, k, c.x_edm2, k, c.n, j);
        if (dev > worst_edm2) worst_edm2 = dev;
        ASSERT_TRUE(dev <= 1e-8);
        double s = 0;
        for (int i = 0; i < n; i++) s += x[(size_t)i * k + j];
        ASSERT_NEAR(s, 1, 1e-14);
        if (c.err_exact[j] > 1e-20) {
          ASSERT_REL(d[j].rel_error, c.err_edm2[j], 1e-7);
          ASSERT_DIGITS(d[j].rel_error, table341[ci].err_norm[j], 4);
        }
      }
      (void)paths[p];
    }
    /* EDM2's exact computation: dgesv, then normalise, against numpy's gesv output. */
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_LU, 1, x, d));
    for (int j = 0; j < k; j++) ASSERT_TRUE(coldev(x, k, c.x_edm2_raw, k, c.n, j) <= 1e-8);
    printf("# n=%d: |x-x*|/|x*| interval %.1e, cholesky %.1e; EDM2-normalised vs numpy %.1e\n", nt,
           worst_iv, worst_ch, worst_edm2);
    ec_freep(&x);
    gcase_free(&c);
  }
}

/* Weight norms and Σx of the exact optimum (posthoc-reference §3.4.1, printed to 3 digits). */
TEST(uniform_weight_norms) {
  static const struct {
    int n, col;
    double n1, n2, sum;
  } rows[] = {
      {64, 0, 68.6, 32.6, 0.999973},   {64, 2, 1.47, 0.894, 0.999999},
      {64, 3, 2.24, 0.419, 0.998169},  {256, 0, 94.8, 40.4, 1.000000},
      {256, 2, 1.47, 0.878, 1.000000}, {256, 3, 2.24, 0.373, 0.999831},
      {512, 0, 100, 41.7, 1.000000},   {512, 2, 1.47, 0.876, 1.000000},
      {512, 3, 2.24, 0.364, 0.999949}, {8, 3, 2.13, 0.713, 0.937380},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char group[32];
    snprintf(group, sizeof group, "uniform_n%d", rows[i].n);
    gcase c;
    LOAD(c, group);
    double *x = ec_mallocarray(c.n * c.k, sizeof *x);
    phema_diag d[4];
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 1, x, d));
    const phema_diag *e = &d[rows[i].col];
    ASSERT_DIGITS(e->norm1, rows[i].n1, 3);
    ASSERT_DIGITS(e->norm2, rows[i].n2, 3);
    ASSERT_NEAR(e->sum_raw, rows[i].sum, 5e-7);
    ASSERT_NEAR(e->noise_floor, e->norm2 * ldexp(1, -11), 1e-15); /* default dtype fp16 */
    ASSERT_EQ_INT(e->warn_narrow, e->norm2 > 5);
    ec_freep(&x);
    gcase_free(&c);
  }
}

/* cond₂(A) of posthoc-reference §3.4.1 from the interval path's power iteration; the dense
 * Cholesky path reports LAPACK's 1-norm estimate, which must bracket it within a factor N. */
TEST(condition_numbers) {
  static const struct {
    int n;
    double cond;
  } rows[] = {{8, 5.35e+02}, {64, 1.63e+06}, {256, 4.64e+08}, {512, 7.65e+09}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char group[32];
    snprintf(group, sizeof group, "uniform_n%d", rows[i].n);
    gcase c;
    LOAD(c, group);
    double *x = ec_mallocarray(c.n * c.k, sizeof *x);
    phema_diag d[4];
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 0, x, d));
    ASSERT_EQ_INT(d[0].cond_norm, 2);
    ASSERT_DIGITS(d[0].cond, rows[i].cond, 3);
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_CHOLESKY, 0, x, d));
    ASSERT_EQ_INT(d[0].cond_norm, 1);
    ASSERT_TRUE(d[0].cond >= rows[i].cond / (double)c.n && d[0].cond <= rows[i].cond * (double)c.n);
    double cond1 = d[0].cond;
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_LSTSQ, 0, x, d));
    ASSERT_EQ_INT(d[0].cond_norm, 2);
    ASSERT_REL(d[0].cond, rows[i].cond, 5e-3);
    ASSERT_EQ_INT(d[0].rank, (long long)c.n);
    printf("# n=%d: cond2 %.4g (table %.3g); dpocon 1-norm estimate %.4g\n", rows[i].n, d[0].cond,
           rows[i].cond, cond1);
    ec_freep(&x);
    gcase_free(&c);
  }
}

/* n = 4096 (N = 8192): no dense float64 solve is accurate here (1e-5 in posthoc-reference
 * table (b)); the interval solver is checked against the 60-digit interval optimum and the
 * table's exact errors. */
TEST(interval_accurate_at_4096) {
  gcase c;
  LOAD(c, "uniform_n4096");
  int k = (int)c.k;
  double *x = ec_mallocarray(c.n * c.k, sizeof *x);
  phema_diag d[2];
  ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 1, x, d));
  static const double table[2] = {5.976e-06, 8.222e-08}; /* σ 0.015, 0.13 */
  double worst = 0, worst_elem = 0;
  for (int j = 0; j < k; j++) {
    double dev = coldev(x, k, c.x_exact, k, c.n, j);
    if (dev > worst) worst = dev;
    double xmax = 0;
    for (size_t i = 0; i < c.n; i++) xmax = fmax(xmax, fabs(c.x_exact[i * k + j]));
    for (size_t i = 0; i < c.n; i++)
      worst_elem = fmax(worst_elem, fabs(x[i * k + j] - c.x_exact[i * k + j]) / xmax);
    ASSERT_TRUE(dev <= 1e-10); /* the brief's bar is 1e-8; measured ~1e-11 */
    ASSERT_REL(d[j].rel_error, c.err_exact[j], 1e-6);
    ASSERT_DIGITS(d[j].rel_error, table[j], 4);
  }
  printf("# n=4096: |x-x*|/|x*| %.1e, max |x_i-x*_i|/max|x*| %.1e, errors %.4e %.4e (rel. to "
         "exact %.1e %.1e)\n",
         worst, worst_elem, d[0].rel_error, d[1].rel_error,
         fabs(d[0].rel_error / c.err_exact[0] - 1), fabs(d[1].rel_error / c.err_exact[1] - 1));
  ec_freep(&x);
  gcase_free(&c);
}

/* posthoc-reference §3.4.3 (f): exact-optimum error and norms across target σ_rel. */
TEST(sigma_sweep_table) {
  static const struct {
    double sigma, e64, n1_64, n2_64, e256, n1_256, n2_256;
  } rows[] = {
      {0.01, 5.83e-02, 142, 70, 4.11e-03, 233, 99.5},
      {0.02, 1.08e-02, 36.9, 17.3, 6.97e-04, 46.6, 20.1},
      {0.03, 2.90e-03, 12.5, 5.96, 1.83e-04, 14.3, 6.47},
      {0.04, 7.13e-04, 4.27, 2.28, 4.48e-05, 4.6, 2.37},
      {0.07, 2.46e-04, 1.56, 0.91, 1.54e-05, 1.6, 0.923},
      {0.15, 5.78e-04, 1.67, 0.803, 3.62e-05, 1.67, 0.78},
      {0.2, 1.71e-03, 2.02, 0.592, 1.13e-04, 2.02, 0.556},
      {0.28, 8.05e-02, 2.33, 0.329, 3.18e-02, 2.34, 0.272},
  };
  for (int ni = 0; ni < 2; ni++) {
    int times = ni ? 256 : 64, n = 2 * times;
    int64_t *t = ec_mallocarray((size_t)n, sizeof *t);
    double *g = ec_mallocarray((size_t)n, sizeof *g), g05, g10;
    ASSERT_OK(phema_sigma_to_gamma(0.05, &g05));
    ASSERT_OK(phema_sigma_to_gamma(0.10, &g10));
    for (int i = 0; i < times; i++) {
      t[2 * i] = t[2 * i + 1] = (int64_t)(i + 1) << 23;
      g[2 * i] = g05;
      g[2 * i + 1] = g10;
    }
    enum { K = sizeof rows / sizeof rows[0] };
    phema_profile r[K];
    for (int j = 0; j < K; j++) ASSERT_OK(phema_profile_power(&r[j], t[n - 1], rows[j].sigma));
    double *x = ec_mallocarray((size_t)n * K, sizeof *x);
    phema_diag d[K];
    phema_solve_opts o;
    phema_solve_opts_init(&o);
    o.raw = 1;
    ASSERT_OK(phema_solve(t, g, n, r, K, &o, x, d));
    for (int j = 0; j < K; j++) {
      ASSERT_DIGITS(d[j].rel_error, ni ? rows[j].e256 : rows[j].e64, 3);
      ASSERT_DIGITS(d[j].norm1, ni ? rows[j].n1_256 : rows[j].n1_64, 3);
      ASSERT_DIGITS(d[j].norm2, ni ? rows[j].n2_256 : rows[j].n2_64, 3);
      ASSERT_EQ_INT(d[j].warn_narrow, rows[j].sigma <= 0.03);
    }
    ec_freep(&t);
    ec_freep(&g);
    ec_freep(&x);
  }
}

/* posthoc-reference §3.4.3 (c): uneven, missing and truncated snapshot sets (regular layouts, so
 * the interval solver runs on non-uniform intervals). T = 2^31 images, 1/128 = 2^24. */
TEST(defective_snapshot_sets_table) {
  static const struct {
    const char *name;
    double cond, e015, e13, e25;
  } rows[] = {
      {"geometric", 1.47e+05, 3.257e-01, 1.206e-02, 4.297e-02},
      {"last20of256", 2.69e+07, 3.560e-03, 6.878e-02, 5.684e-01},
      {"last64of256", 5.43e+07, 1.524e-03, 2.411e-02, 4.424e-01},
      {"cadence", 6.93e+06, 6.031e-03, 1.740e-04, 3.296e-02},
      {"gap", 1.63e+06, 2.312e-02, 2.347e-02, 3.995e-01},
      {"late_start", 2.47e+05, 2.312e-02, 2.984e-03, 2.681e-01},
  };
  const int64_t T = (int64_t)1 << 31;
  double g05, g10;
  ASSERT_OK(phema_sigma_to_gamma(0.05, &g05));
  ASSERT_OK(phema_sigma_to_gamma(0.10, &g10));
  for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
    int64_t times[300];
    int m = 0;
    switch (ri) {
    case 0: /* np.geomspace(1e-3, 1, 64), rounded to images */
      for (int i = 0; i < 64; i++)
        times[m++] = (int64_t)llround(1e-3 * pow(1e3, i / 63.0) * (double)T);
      times[63] = T;
      break;
    case 1:
      for (int i = 237; i <= 256; i++) times[m++] = (int64_t)i << 23;
      break;
    case 2:
      for (int i = 193; i <= 256; i++) times[m++] = (int64_t)i << 23;
      break;
    case 3:
      for (int i = 1; i <= 16; i++) times[m++] = (int64_t)i << 26;
      for (int i = 1; i <= 64; i++) times[m++] = T / 2 + ((int64_t)i << 24);
      break;
    case 4:
      for (int i = 1; i <= 64; i++)
        if (i <= 16 || i >= 48) times[m++] = (int64_t)i << 25;
      break;
    case 5:
      for (int i = 32; i <= 64; i++) times[m++] = (int64_t)i << 25;
      break;
    }
    int n = 2 * m;
    int64_t t[600];
    double g[600];
    for (int i = 0; i < m; i++) {
      t[2 * i] = t[2 * i + 1] = times[i];
      g[2 * i] = g05;
      g[2 * i + 1] = g10;
    }
    phema_profile r[3];
    ASSERT_OK(phema_profile_power(&r[0], T, 0.015));
    ASSERT_OK(phema_profile_power(&r[1], T, 0.13));
    ASSERT_OK(phema_profile_power(&r[2], T, 0.25));
    double x[1800];
    phema_diag d[3];
    phema_solve_opts o;
    phema_solve_opts_init(&o);
    o.raw = 1;
    ASSERT_OK(phema_solve(t, g, n, r, 3, &o, x, d));
    ASSERT_EQ_INT(d[0].method, PHEMA_METHOD_INTERVAL);
    ASSERT_DIGITS(d[0].cond, rows[ri].cond, 3);
    ASSERT_DIGITS(d[0].rel_error, rows[ri].e015, 4);
    ASSERT_DIGITS(d[1].rel_error, rows[ri].e13, 4);
    ASSERT_DIGITS(d[2].rel_error, rows[ri].e25, 4);
  }
}

/* Dense Cholesky and the interval solver agree wherever the dense system is solvable. */
TEST(interval_matches_cholesky) {
  static const char *groups[] = {"uniform_n64", "uniform_n256", "midtime", "exp_n32"};
  for (size_t gi = 0; gi < 4; gi++) {
    gcase c;
    LOAD(c, groups[gi]);
    int k = (int)c.k;
    double *xi = ec_mallocarray(c.n * c.k, sizeof *xi), *xc = ec_mallocarray(c.n * c.k, sizeof *xc);
    phema_diag di[4], dc[4];
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_INTERVAL, 1, xi, di));
    ASSERT_OK(solve_with(&c, PHEMA_METHOD_CHOLESKY, 1, xc, dc));
    for (int j = 0; j < k; j++) {
      ASSERT_TRUE(coldev(xc, k, xi, k, c.n, j) <= 1e-8);
      ASSERT_TRUE(coldev(xi, k, c.x_exact, k, c.n, j) <= 1e-12);
      if (c.err_exact[j] < 1e-20) { /* a target equal to a stored profile */
        ASSERT_TRUE(di[j].rel_error < 1e-13 && dc[j].rel_error < 1e-9);
        continue;
      }
      ASSERT_REL(di[j].rel_error, c.err_exact[j], 1e-9);
      ASSERT_REL(dc[j].rel_error, c.err_exact[j], 1e-7);
    }
    ec_freep(&xi);
    ec_freep(&xc);
    gcase_free(&c);
  }
}

/* Exponential targets: the truncated, renormalised half-life profile, against the exact optimum
 * (whose inner products come from a 60-digit series). */
TEST(exponential_targets) {
  gcase c;
  LOAD(c, "exp_n32");
  int k = (int)c.k;
  double *x = ec_mallocarray(c.n * c.k, sizeof *x);
  phema_diag d[4];
  ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 1, x, d));
  for (int j = 0; j < k; j++) {
    ASSERT_TRUE(coldev(x, k, c.x_exact, k, c.n, j) <= 1e-12);
    ASSERT_REL(d[j].rel_error, c.err_exact[j], 1e-9);
  }
  /* The target at t_20 ends before the last 12 snapshot times: their weights are exactly 0. */
  for (size_t i = 40; i < c.n; i++) ASSERT_TRUE(x[i * k + 2] == 0);
  ASSERT_OK(solve_with(&c, PHEMA_METHOD_LSTSQ, 1, x, d));
  for (int j = 0; j < k; j++) ASSERT_TRUE(coldev(x, k, c.x_exact, k, c.n, j) <= 1e-9);
  ec_freep(&x);
  gcase_free(&c);
}

/* Different profile sets at some times: the dense path, against the exact optimum and EDM2. */
TEST(irregular_layout) {
  gcase c;
  LOAD(c, "irregular");
  int k = (int)c.k, n = (int)c.n;
  ASSERT_EQ_INT(phema_layout_regular(c.t, c.g, n, NULL), 0);
  double *x = ec_mallocarray(c.n * c.k, sizeof *x);
  phema_diag d[5];
  ASSERT_OK(solve_with(&c, PHEMA_METHOD_AUTO, 1, x, d));
  for (int j = 0; j < k; j++) {
    ASSERT_EQ_INT(d[j].method, PHEMA_METHOD_CHOLESKY);
    ASSERT_TRUE(coldev(x, k, c.x_exact, k, c.n, j) <= 1e-10);
    ASSERT_REL(d[j].rel_error, c.err_exact[j], 1e-8);
  }
  for (int j = 0; j < 4; j++) ASSERT_TRUE(coldev(x, k, c.x_edm2_raw, 4, c.n, j) <= 1e-10);
  ASSERT_OK(solve_with(&c, PHEMA_METHOD_LSTSQ, 1, x, d));
  for (int j = 0; j < k; j++) ASSERT_TRUE(coldev(x, k, c.x_exact, k, c.n, j) <= 1e-9);
  ASSERT_STATUS(solve_with(&c, PHEMA_METHOD_INTERVAL, 1, x, d), EC_EINVAL,
                "the interval solver needs every snapshot time to carry the same set");
  ec_freep(&x);
  gcase_free(&c);
}

/* Regular layouts with one and with three profiles per time (interval vs Cholesky), which also
 * exercises the higher-order divided differences of the interval basis. */
TEST(one_and_three_profiles_per_time) {
  static const double sig[3] = {0.05, 0.07, 0.10};
  for (int P = 1; P <= 3; P += 2) {
    int times = 48, n = P * times;
    int64_t t[144];
    double g[144];
    for (int i = 0; i < times; i++)
      for (int p = 0; p < P; p++) {
        t[i * P + p] = (int64_t)(i + 1) * 1000003;
        ASSERT_OK(phema_sigma_to_gamma(sig[P == 1 ? 0 : p], &g[i * P + p]));
      }
    int pp;
    ASSERT_EQ_INT(phema_layout_regular(t, g, n, &pp), 1);
    ASSERT_EQ_INT(pp, P);
    phema_profile r[3];
    ASSERT_OK(phema_profile_power(&r[0], t[n - 1], 0.13));
    ASSERT_OK(phema_profile_power(&r[1], t[n - 1], 0.03));
    ASSERT_OK(phema_profile_exp(&r[2], t[n - 1], 5e6));
    double xi[432], xc[432];
    phema_diag di[3], dc[3];
    phema_solve_opts o;
    phema_solve_opts_init(&o);
    o.raw = 1;
    ASSERT_OK(phema_solve(t, g, n, r, 3, &o, xi, di));
    ASSERT_EQ_INT(di[0].method, PHEMA_METHOD_INTERVAL);
    o.method = PHEMA_METHOD_CHOLESKY;
    ASSERT_OK(phema_solve(t, g, n, r, 3, &o, xc, dc));
    for (int j = 0; j < 3; j++) {
      ASSERT_TRUE(coldev(xc, 3, xi, 3, (size_t)n, j) <= 1e-8);
      ASSERT_REL(di[j].rel_error, dc[j].rel_error, 1e-6);
    }
  }
}

/* A target equal to a stored profile gets weight 1 on it, 0 elsewhere, and error ~0. */
TEST(target_equal_to_stored_profile) {
  gcase c;
  LOAD(c, "uniform_n256");
  int n = (int)c.n;
  phema_profile r;
  ASSERT_OK(phema_profile_power_gamma(&r, c.t[n - 1], c.g[n - 2])); /* σ 0.05 at the last time */
  double *x = ec_mallocarray(c.n, sizeof *x);
  for (int m = 0; m < 2; m++) {
    phema_solve_opts o;
    phema_solve_opts_init(&o);
    o.method = m ? PHEMA_METHOD_CHOLESKY : PHEMA_METHOD_INTERVAL;
    phema_diag d;
    ASSERT_OK(phema_solve(c.t, c.g, n, &r, 1, &o, x, &d));
    /* Interval: rounding of the last differencing step only; Cholesky: ~n⁴·eps. */
    double tol = m ? 1e-9 : 1e-12;
    ASSERT_NEAR(x[n - 2], 1, tol);
    for (int i = 0; i < n - 2; i++) ASSERT_NEAR(x[i], 0, tol);
    ASSERT_NEAR(x[n - 1], 0, tol);
    ASSERT_TRUE(d.rel_error < (m ? 1e-9 : 1e-13));
  }
  ec_freep(&x);
  gcase_free(&c);
}

/* phema_response_error is exact where the closed form cancels, and both agree where it does not. */
TEST(response_error_exact_vs_closed_form) {
  gcase c;
  LOAD(c, "uniform_n256");
  double e, fl;
  ASSERT_OK(phema_response_error(c.t, c.g, (int)c.n, c.x_exact + 2, (int)c.k, &c.r[2], &e));
  ASSERT_REL(e, c.err_exact[2], 1e-9);
  double ec =
      phema_response_error_closed(c.t, c.g, (int)c.n, c.x_exact + 2, (int)c.k, &c.r[2], &fl);
  ASSERT_NEAR(ec, e, 2 * fl); /* closed form: exact up to its documented floor */
  ASSERT_TRUE(fl < 1e-6);
  ASSERT_OK(phema_response_error(c.t, c.g, (int)c.n, c.x_exact + 3, (int)c.k, &c.r[3], &e));
  ec = phema_response_error_closed(c.t, c.g, (int)c.n, c.x_exact + 3, (int)c.k, &c.r[3], &fl);
  ASSERT_REL(ec, e, 1e-6);
  printf("# closed-form floor at n=256, sigma 0.13: %.1e (error %.4e)\n", fl, c.err_exact[2]);
  gcase_free(&c);
}

/* Regularisation reproduces posthoc-reference §3.4.2 (tik1e-06 rows, raw solutions). */
TEST(tikhonov_matches_reference) {
  static const struct {
    int n;
    double e015, n1, n2, e13;
  } rows[] = {{64, 8.19e-02, 39.7, 18.4, 5.59e-03}, {256, 5.05e-02, 8.28, 3.39, 5.56e-03}};
  for (int ri = 0; ri < 2; ri++) {
    char group[32];
    snprintf(group, sizeof group, "uniform_n%d", rows[ri].n);
    gcase c;
    LOAD(c, group);
    double *x = ec_mallocarray(c.n * c.k, sizeof *x);
    phema_diag d[4];
    phema_solve_opts o;
    phema_solve_opts_init(&o);
    o.raw = 1;
    o.tikhonov = 1e-6;
    ASSERT_OK(phema_solve(c.t, c.g, (int)c.n, c.r, (int)c.k, &o, x, d));
    ASSERT_EQ_INT(d[0].method, PHEMA_METHOD_CHOLESKY);
    ASSERT_NEAR(d[0].tikhonov, 1e-6, 0);
    ASSERT_DIGITS(d[0].rel_error, rows[ri].e015, 3);
    ASSERT_DIGITS(d[0].norm1, rows[ri].n1, 3);
    ASSERT_DIGITS(d[0].norm2, rows[ri].n2, 3);
    ASSERT_DIGITS(d[2].rel_error, rows[ri].e13, 3);
    /* Automatic λ: only the narrow σ 0.015 target (‖x‖₂ > 5) is regularised, and only for
     * 16-bit snapshots. */
    o.tikhonov = PHEMA_TIKHONOV_AUTO;
    ASSERT_OK(phema_solve(c.t, c.g, (int)c.n, c.r, (int)c.k, &o, x, d));
    ASSERT_NEAR(d[0].tikhonov, 1e-6, 0);
    ASSERT_DIGITS(d[0].norm2, rows[ri].n2, 3);
    for (int j = 1; j < 4; j++) ASSERT_NEAR(d[j].tikhonov, 0, 0);
    ASSERT_EQ_INT(d[2].method, PHEMA_METHOD_INTERVAL);
    o.snapshot_dtype = EC_F32;
    ASSERT_OK(phema_solve(c.t, c.g, (int)c.n, c.r, (int)c.k, &o, x, d));
    ASSERT_NEAR(d[0].tikhonov, 0, 0);
    ASSERT_NEAR(d[0].noise_floor, d[0].norm2 * ldexp(1, -24), 1e-18);
    ec_freep(&x);
    gcase_free(&c);
  }
}

/* Snapshots after the target time are allowed; with the target at a snapshot time they get 0. */
TEST(target_before_last_snapshot) {
  gcase c;
  LOAD(c, "uniform_n64");
  int n = (int)c.n;
  phema_profile r;
  ASSERT_OK(phema_profile_power(&r, c.t[79], 0.13)); /* time 40 of 64 */
  double *x = ec_mallocarray(c.n, sizeof *x), *y = ec_mallocarray(80, sizeof *y);
  phema_diag d, e;
  ASSERT_OK(phema_solve(c.t, c.g, n, &r, 1, NULL, x, &d));
  for (int i = 80; i < n; i++) ASSERT_TRUE(x[i] == 0);
  /* Same weights as solving with the later snapshots dropped (EDM2's behaviour). */
  ASSERT_OK(phema_solve(c.t, c.g, 80, &r, 1, NULL, y, &e));
  for (int i = 0; i < 80; i++) ASSERT_NEAR(x[i], y[i], 1e-13);
  ASSERT_REL(d.rel_error, e.rel_error, 1e-12);
  ec_freep(&x);
  ec_freep(&y);
  gcase_free(&c);
}

/* A target after the last snapshot (posthoc-ema --at between snapshot times): the interval and
 * dense solvers agree, and the exact response error, which counts the uncovered tail, matches
 * the closed form ⟨p_r,p_r⟩ − 2xᵀb + xᵀAx (independent: it needs no tail term) to its floor. */
TEST(target_after_last_snapshot) {
  gcase c;
  LOAD(c, "uniform_n64");
  int n = 80; /* times 1..40 of 64 */
  int64_t tr = c.t[79] + (c.t[81] - c.t[79]) / 2;
  phema_profile r[2];
  ASSERT_OK(phema_profile_power(&r[0], tr, 0.13));
  ASSERT_OK(phema_profile_exp(&r[1], tr, (double)c.t[1] * 3));
  double *x = ec_mallocarray(2 * (size_t)n, sizeof *x), *y = ec_mallocarray(2 * (size_t)n, sizeof *y);
  phema_diag d[2], e[2], in;
  phema_solve_opts o;
  phema_solve_opts_init(&o);
  o.raw = 1;
  ASSERT_OK(phema_solve(c.t, c.g, n, r, 2, &o, x, d));
  ASSERT_EQ_INT(d[0].method, PHEMA_METHOD_INTERVAL);
  o.method = PHEMA_METHOD_CHOLESKY;
  ASSERT_OK(phema_solve(c.t, c.g, n, r, 2, &o, y, e));
  ASSERT_TRUE(coldev(x, 2, y, 2, (size_t)n, 0) < 1e-9 && coldev(x, 2, y, 2, (size_t)n, 1) < 1e-9);
  for (int k = 0; k < 2; k++) {
    double fl, ec = phema_response_error_closed(c.t, c.g, n, x + k, 2, &r[k], &fl);
    ASSERT_NEAR(d[k].rel_error, ec, 2 * fl);
    ASSERT_REL(e[k].rel_error, d[k].rel_error, 1e-8);
  }
  /* the gap costs accuracy compared with the same target at the last snapshot */
  phema_profile at40;
  ASSERT_OK(phema_profile_power(&at40, c.t[79], 0.13));
  ASSERT_OK(phema_solve(c.t, c.g, n, &at40, 1, NULL, y, &in));
  ASSERT_TRUE(d[0].rel_error > 3 * in.rel_error);
  printf("# sigma 0.13 half a spacing after the last of 40 snapshots: error %.3e (at it: %.3e)\n",
         d[0].rel_error, in.rel_error);
  ec_freep(&x);
  ec_freep(&y);
  gcase_free(&c);
}

/* Inputs in any order: rows of X follow the caller's order. */
TEST(input_order_is_kept) {
  gcase c;
  LOAD(c, "uniform_n64");
  int n = (int)c.n, k = (int)c.k;
  int64_t *t = ec_mallocarray(c.n, sizeof *t);
  double *g = ec_mallocarray(c.n, sizeof *g), *x = ec_mallocarray(c.n * c.k, sizeof *x);
  for (int i = 0; i < n; i++) { /* reversed */
    t[i] = c.t[n - 1 - i];
    g[i] = c.g[n - 1 - i];
  }
  phema_solve_opts o;
  phema_solve_opts_init(&o);
  ASSERT_OK(phema_solve(t, g, n, c.r, k, &o, x, NULL));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < k; j++)
      ASSERT_NEAR(x[i * k + j], c.x_edm2[(size_t)(n - 1 - i) * k + j], 1e-9);
  ec_freep(&t);
  ec_freep(&g);
  ec_freep(&x);
  gcase_free(&c);
}

/* Every input error: its status and the words of its message. */
TEST(bad_inputs) {
  int64_t t[4] = {1 << 23, 1 << 23, 2 << 23, 2 << 23};
  double g[4], x[16];
  ASSERT_OK(phema_sigma_to_gamma(0.05, &g[0]));
  ASSERT_OK(phema_sigma_to_gamma(0.10, &g[1]));
  g[2] = g[0];
  g[3] = g[1];
  phema_profile r[2];
  ASSERT_OK(phema_profile_power(&r[0], 2 << 23, 0.13));
  ASSERT_OK(phema_profile_exp(&r[1], 2 << 23, 1e6));
  ASSERT_OK(phema_solve(t, g, 4, r, 2, NULL, x, NULL));
  ASSERT_STATUS(phema_solve(t, g, 0, r, 2, NULL, x, NULL), EC_EINVAL, "no stored profiles");
  ASSERT_STATUS(phema_solve(t, g, 4, r, 0, NULL, x, NULL), EC_EINVAL, "no targets");
  int64_t t0[4] = {0, 0, 2 << 23, 2 << 23};
  ASSERT_STATUS(phema_solve(t0, g, 4, r, 2, NULL, x, NULL), EC_EINVAL,
                "stored profile 0: time 0 is not positive (drop snapshots at t <= 0");
  double gb[4] = {g[0], -1, g[2], g[3]};
  ASSERT_STATUS(phema_solve(t, gb, 4, r, 2, NULL, x, NULL), EC_EINVAL,
                "stored profile 1 (t=8388608): gamma -1 is out of range");
  gb[1] = NAN;
  ASSERT_STATUS(phema_solve(t, gb, 4, r, 2, NULL, x, NULL), EC_EINVAL, "gamma nan is out of range");
  double gd[4] = {g[0], g[1], g[1], g[1]};
  ASSERT_STATUS(phema_solve(t, gd, 4, r, 2, NULL, x, NULL), EC_EINVAL,
                "duplicate stored profile: t=16777216 sigma_rel=0.1");
  phema_profile bad = r[0];
  bad.gamma = 0;
  ASSERT_STATUS(phema_solve(t, g, 4, &bad, 1, NULL, x, NULL), EC_EINVAL,
                "target 0: gamma 0 is out of range");
  bad = r[1];
  bad.half_life = -5;
  ASSERT_STATUS(phema_solve(t, g, 4, &bad, 1, NULL, x, NULL), EC_EINVAL,
                "target 0: half-life -5 is out of range");
  bad.kind = 7;
  ASSERT_STATUS(phema_solve(t, g, 4, &bad, 1, NULL, x, NULL), EC_EINVAL, "profile kind 7");
  ASSERT_STATUS(phema_profile_power(&bad, 100, 0.3), EC_EINVAL,
                "sigma_rel 0.3 is out of range: it must be in (0, 0.288675) (12^-0.5)");
  ASSERT_STATUS(phema_profile_power(&bad, 0, 0.1), EC_EINVAL, "profile time 0 is not positive");
  phema_solve_opts o;
  phema_solve_opts_init(&o);
  o.tikhonov = -2;
  ASSERT_STATUS(phema_solve(t, g, 4, r, 2, &o, x, NULL), EC_EINVAL,
                "Tikhonov lambda -2 is negative");
  /* Times stay integers: 2^53 + 1 images is accepted and distinct from 2^53. */
  int64_t tb[2] = {((int64_t)1 << 53), ((int64_t)1 << 53) + 1};
  double g2[2] = {g[0], g[0]};
  phema_profile rb;
  ASSERT_OK(phema_profile_power_gamma(&rb, tb[1], g[0]));
  ASSERT_OK(phema_solve(tb, g2, 2, &rb, 1, NULL, x, NULL));
  ASSERT_NEAR(x[1], 1, 1e-9);
}

/* A target that lives where the stored profiles have (numerically) no mass: the least-squares
 * weights are all 0, which is a valid raw answer but cannot be normalised to Σx = 1. */
TEST(unrepresentable_target_is_singular) {
  int64_t t[1] = {(int64_t)1 << 24};
  double g[1] = {1e5};
  phema_profile r;
  ASSERT_OK(phema_profile_power_gamma(&r, (int64_t)1 << 23, 1.0));
  double x[1];
  phema_diag d;
  phema_solve_opts o;
  phema_solve_opts_init(&o);
  o.raw = 1;
  ASSERT_OK(phema_solve(t, g, 1, &r, 1, &o, x, &d));
  ASSERT_TRUE(x[0] == 0);
  ASSERT_NEAR(d.rel_error, 1, 1e-12);
  for (int m = 0; m < 2; m++) {
    o.raw = 0;
    o.method = m ? PHEMA_METHOD_LSTSQ : PHEMA_METHOD_AUTO;
    ASSERT_STATUS(phema_solve(t, g, 1, &r, 1, &o, x, NULL), EC_ESINGULAR,
                  "target 0: the least-squares weights sum to 0");
  }
}

/* Allocation failures anywhere in the solver come back as EC_ENOMEM without leaks (valgrind). */
TEST(allocation_failures) {
  gcase c;
  LOAD(c, "irregular");
  double *x = ec_mallocarray(c.n * c.k, sizeof *x);
  phema_diag d[5];
  for (int m = 0; m < 2; m++) {
    int failed = 0;
    for (long i = 0; i < 60; i++) {
      ec_alloc_fail_after(i);
      ec_status st = solve_with(&c, m ? PHEMA_METHOD_LSTSQ : PHEMA_METHOD_CHOLESKY, 0, x, d);
      ec_alloc_fail_after(-1);
      if (st == EC_OK) break;
      ASSERT_EQ_INT(st, EC_ENOMEM);
      failed++;
    }
    ASSERT_TRUE(failed > 3);
  }
  gcase_free(&c);
  LOAD(c, "uniform_n8");
  for (long i = 0; i < 60; i++) {
    ec_alloc_fail_after(i);
    ec_status st = solve_with(&c, PHEMA_METHOD_INTERVAL, 0, x, d);
    ec_alloc_fail_after(-1);
    if (st == EC_OK) break;
    ASSERT_EQ_INT(st, EC_ENOMEM);
  }
  ec_freep(&x);
  gcase_free(&c);
}

TEST_MAIN(uniform_against_golden_and_tables, uniform_weight_norms, condition_numbers,
          interval_accurate_at_4096, sigma_sweep_table, defective_snapshot_sets_table,
          interval_matches_cholesky, exponential_targets, irregular_layout,
          one_and_three_profiles_per_time, target_equal_to_stored_profile,
          response_error_exact_vs_closed_form, tikhonov_matches_reference,
          target_before_last_snapshot, target_after_last_snapshot, input_order_is_kept, bad_inputs,
          unrepresentable_target_is_singular, allocation_failures)
