/* posthoc/phema_math: σ_rel ↔ γ against 60-digit roots, β, inner products of power and
 * exponential profiles against the golden file, the quadrature, and the closed-form error. */
#include <float.h>
#include <stdlib.h>

#include "posthoc/phema_math.h"
#include "tests/test.h"
#include "tests/unit/golden_h5.h"

TEST(sigma_to_gamma_known_values) {
  static const struct {
    double sigma, gamma, rtol;
  } rows[] = {
      /* EDM2's exponents (posthoc-reference §3.3, edm2-spec §6.7), printed to 17 digits by numpy,
       * whose root finder is good to a few ulps. */
      {0.05, 16.972198602303447, 1e-15},
      {0.10, 6.937203937601809, 1e-15},
      {0.07, 11.244939447857924, 1e-15},
      {0.015, 63.658934, 1e-8},
      {0.13, 4.603597, 1e-7},
      {0.135, 4.313912, 1e-7},
      {0.20, 1.826214, 3e-7},
      {0.25, 0.719824, 1e-6},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    double g;
    ASSERT_OK(phema_sigma_to_gamma(rows[i].sigma, &g));
    ASSERT_REL(g, rows[i].gamma, rows[i].rtol);
  }
}

/* Against γ computed by Newton's method in 60-digit arithmetic for the same double σ, over
 * 0.0001 … the largest double below 12^-0.5 (where γ ≈ 3(1 − 12σ²) ~ 1e-16). */
TEST(sigma_to_gamma_against_high_precision) {
  hid_t f = golden_open();
  ASSERT_TRUE(f >= 0);
  size_t n = 0;
  double *s = golden_f64(f, "gamma/sigma", &n, NULL), *g = golden_f64(f, "gamma/gamma", NULL, NULL);
  double smax = golden_attr_f64(f, "gamma", "sigma_max_admissible");
  H5Fclose(f);
  ASSERT_TRUE(s && g && n > 150);
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double v;
    ASSERT_OK(phema_sigma_to_gamma(s[i], &v));
    double rel = fabs(v - g[i]) / g[i];
    if (rel > worst) worst = rel;
    ASSERT_TRUE(rel <= 1e-13);
    /* Round trip σ → γ → σ: a few ulps from the rational expression and its sqrt. */
    ASSERT_REL(phema_gamma_to_sigma(v), s[i], 1e-15);
  }
  printf("# sigma_to_gamma: worst relative error %.2g over %zu values\n", worst, n);
  ASSERT_TRUE(smax == PHEMA_SIGMA_MAX); /* 12^-0.5 rounded down is still admissible */
  double v;
  ASSERT_OK(phema_sigma_to_gamma(smax, &v));
  ASSERT_TRUE(v > 0 && v < 1e-14);
  ASSERT_STATUS(phema_sigma_to_gamma(nextafter(smax, 1), &v), EC_EINVAL, "(0, 0.288675) (12^-0.5)");
  free(s);
  free(g);
}

TEST(gamma_round_trip) {
  for (double g = 0.5; g <= 1e5; g *= 1.37) {
    double v;
    ASSERT_OK(phema_sigma_to_gamma(phema_gamma_to_sigma(g), &v));
    ASSERT_REL(v, g, 1e-14);
  }
}

TEST(sigma_out_of_range) {
  double g = 7;
  ASSERT_STATUS(phema_sigma_to_gamma(0.3, &g), EC_EINVAL,
                "sigma_rel 0.3 is out of range: it must be in (0, 0.288675) (12^-0.5)");
  ASSERT_STATUS(phema_sigma_to_gamma(0, &g), EC_EINVAL, "sigma_rel 0 is out of range");
  ASSERT_STATUS(phema_sigma_to_gamma(-0.1, &g), EC_EINVAL, "sigma_rel -0.1 is out of range");
  ASSERT_STATUS(phema_sigma_to_gamma(NAN, &g), EC_EINVAL, "out of range");
  ASSERT_STATUS(phema_sigma_to_gamma(INFINITY, &g), EC_EINVAL, "out of range");
  ASSERT_STATUS(phema_sigma_to_gamma(1.0 / sqrt(12.0) + 1e-12, &g), EC_EINVAL, "out of range");
  ASSERT_STATUS(phema_sigma_to_gamma(1e-7, &g), EC_EINVAL, "sigma_rel 1e-07 is too small");
  ASSERT_NEAR(g, 7, 0); /* untouched on failure */
}

TEST(beta) {
  double g05, g10;
  ASSERT_OK(phema_sigma_to_gamma(0.05, &g05));
  ASSERT_OK(phema_sigma_to_gamma(0.10, &g10));
  /* edm2-spec §6.7, batch 2048. */
  ASSERT_REL(phema_beta(g05, 4096, 2048), 3.8889e-06, 1e-4);
  ASSERT_REL(phema_beta(g10, 4096, 2048), 4.0800e-03, 1e-4);
  ASSERT_REL(phema_beta(g05, 8 << 20, 2048), 0.99562133, 1e-8);
  ASSERT_REL(phema_beta(g10, 8 << 20, 2048), 0.99806385, 1e-8);
  ASSERT_TRUE(phema_beta(g05, 2048, 2048) == 0); /* first step: the EMA is the current weights */
  /* 1 − β keeps its relative accuracy late in training (t = 2^31), where pow(1 − dt/t, γ+1)
   * would lose ~6 digits of it; the reference is long double. */
  long double ref = 1 - expl((long double)(g05 + 1) * log1pl(-2048.0L / 2147483648.0L));
  ASSERT_REL(1 - phema_beta(g05, (int64_t)1 << 31, 2048), (double)ref, 1e-12);
}

TEST(log_ratio) {
  ASSERT_NEAR(phema_log_ratio(5, 5), 0, 0);
  int64_t T = (int64_t)1 << 40;
  ASSERT_REL(phema_log_ratio(T - 1, T), (double)log1pl(-1.0L / (long double)T), 1e-15);
  ASSERT_REL(phema_log_ratio(3, 1000), log(0.003), 1e-15);
}

static void load_table(const char *name, double **rows, size_t *n) {
  hid_t f = golden_open();
  size_t cols = 0;
  *rows = f >= 0 ? golden_f64(f, name, n, &cols) : NULL;
  if (f >= 0) H5Fclose(f);
  if (cols != 5) {
    free(*rows);
    *rows = NULL;
  }
}

/* Exponential·power inner products (an incomplete-gamma-type integral) against a 60-digit series,
 * over γ 0.01 … 1e4 and a = k·min(te, tp) 1e-6 … 4000. */
TEST(inner_exp_power_golden) {
  double *rows;
  size_t n;
  load_table("inner/exp_pow", &rows, &n);
  ASSERT_TRUE(rows && n >= 100);
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    const double *r = rows + 5 * i;
    phema_profile e, p;
    ASSERT_OK(phema_profile_exp(&e, (int64_t)r[0], r[1]));
    ASSERT_OK(phema_profile_power_gamma(&p, (int64_t)r[2], r[3]));
    double v = phema_inner(&e, &p), w = phema_inner(&p, &e);
    ASSERT_TRUE(v == w);
    if (r[4] == 0) { /* e^(−k(te − tp)) below DBL_MIN: the value underflows in both */
      ASSERT_TRUE(v < 1e-300);
      continue;
    }
    double rel = fabs(v - r[4]) / r[4];
    if (rel > worst) worst = rel;
    if (!(rel <= 1e-12))
      printf("# row %zu: te %g h %g tp %g gamma %g: %.17g vs %.17g\n", i, r[0], r[1], r[2], r[3], v,
             r[4]);
    ASSERT_TRUE(rel <= 1e-12);
  }
  printf("# exp.power inner products: worst relative error %.2g over %zu values\n", worst, n);
  free(rows);
}

TEST(inner_exp_exp_and_power_power_golden) {
  double *rows;
  size_t n;
  load_table("inner/exp_exp", &rows, &n);
  ASSERT_TRUE(rows && n >= 4);
  for (size_t i = 0; i < n; i++) {
    const double *r = rows + 5 * i;
    phema_profile a, b;
    ASSERT_OK(phema_profile_exp(&a, (int64_t)r[0], r[1]));
    ASSERT_OK(phema_profile_exp(&b, (int64_t)r[2], r[3]));
    ASSERT_REL(phema_inner(&a, &b), r[4], 1e-13);
    ASSERT_REL(phema_inner(&b, &a), r[4], 1e-13);
    if (r[0] == r[2] && r[1] == r[3]) ASSERT_REL(phema_norm2(&a), r[4], 1e-14);
  }
  free(rows);
  load_table("inner/pow_pow", &rows, &n);
  ASSERT_TRUE(rows && n >= 4);
  for (size_t i = 0; i < n; i++) {
    const double *r = rows + 5 * i;
    /* γ up to 1e5 and time ratios up to 2^48 (values down to 1e-300 and below) */
    ASSERT_REL(phema_inner_power((int64_t)r[0], r[1], (int64_t)r[2], r[3]), r[4], 1e-12);
    ASSERT_REL(phema_inner_power((int64_t)r[2], r[3], (int64_t)r[0], r[1]), r[4], 1e-12);
  }
  free(rows);
}

TEST(norms_and_limits) {
  phema_profile p, e;
  ASSERT_OK(phema_profile_power(&p, 1000, 0.05));
  ASSERT_REL(phema_norm2(&p), phema_inner(&p, &p), 1e-15);
  /* A half-life far beyond t is the uniform profile on [0, t]: ⟨e, p⟩ → (1/te)(m/tp)^(γ+1). */
  ASSERT_OK(phema_profile_exp(&e, 1 << 20, 1e25));
  ASSERT_REL(phema_norm2(&e), 1.0 / (1 << 20), 1e-12);
  ASSERT_OK(phema_profile_power_gamma(&p, 1 << 21, 3.0));
  ASSERT_REL(phema_inner(&e, &p), 1.0 / (1 << 20) / 16, 1e-12);
  /* A very short half-life is ~ k e^(−k(t−τ)) at the end: ‖e‖² → k/2 and ⟨e, p⟩ → p(t). */
  ASSERT_OK(phema_profile_exp(&e, 1 << 20, 1e-3));
  ASSERT_REL(phema_norm2(&e), log(2) / 1e-3 / 2, 1e-14);
  ASSERT_OK(phema_profile_power_gamma(&p, 1 << 20, 3.0));
  ASSERT_REL(phema_inner(&e, &p), 4.0 / (1 << 20), 1e-6);
  /* γ = 1e5 with huge and tiny half-lives stays finite and positive. */
  ASSERT_OK(phema_profile_power_gamma(&p, 1 << 20, 1e5));
  for (double h = 1e-3; h < 1e30; h *= 1e3) {
    ASSERT_OK(phema_profile_exp(&e, 1 << 20, h));
    double v = phema_inner(&e, &p);
    ASSERT_TRUE(isfinite(v) && v > 0);
  }
}

/* The e^(−a(1−u)) u^γ kernel: series (a ≤ 8) and graded Gauss–Legendre panels (a > 8) agree at
 * the switch, and the panels integrate a known closed form (γ = 0: (1 − e^(−a))/a). */
TEST(quadrature_kernel) {
  for (double g = 0; g <= 2000; g = g ? g * 3.7 : 0.013) {
    double s = phema_exp_power_kernel(g, 8), q = phema_exp_power_kernel(g, nextafter(8, 9));
    ASSERT_REL(q, s, 1e-14);
  }
  for (double a = 9; a < 1e6; a *= 2.3)
    ASSERT_REL(phema_exp_power_kernel(0, a), -expm1(-a) / a, 1e-14);
  /* γ = 1: ∫ u e^(−a(1−u)) du = 1/a − (1 − e^(−a))/a². */
  for (double a = 9; a < 1e5; a *= 2.3)
    ASSERT_REL(phema_exp_power_kernel(1, a), 1 / a + expm1(-a) / (a * a), 1e-14);
  /* A panel walk toward the singular end u = 0 terminates and stays inside the range. */
  phema_quad q;
  phema_node nd[PHEMA_QUAD_ORDER];
  phema_quad_init(&q, 0, 1, 1, 0, 0, 0);
  int panels = 0;
  double sum = 0;
  while (phema_quad_next(&q, nd)) {
    panels++;
    for (int i = 0; i < PHEMA_QUAD_ORDER; i++) {
      /* v rounds to 1 within 1e-16 of u = 0; ln u stays exact there. */
      ASSERT_TRUE(nd[i].v > 0 && nd[i].v <= 1 && nd[i].lnu < 0 && exp(nd[i].lnu) < 1);
      sum += nd[i].w * exp(0.25 * nd[i].lnu); /* ∫₀¹ u^0.25 du = 0.8 */
    }
  }
  ASSERT_TRUE(panels < 100);
  ASSERT_REL(sum, 0.8, 1e-14);
}

TEST(profile_constructors) {
  phema_profile p;
  ASSERT_OK(phema_profile_power(&p, 100, 0.1));
  ASSERT_EQ_INT(p.kind, PHEMA_POWER);
  ASSERT_REL(p.gamma, 6.937203937601809, 1e-15);
  ASSERT_OK(phema_profile_power_gamma(&p, 100, 6.937203937601809));
  ASSERT_REL(p.sigma_rel, 0.1, 1e-15);
  ASSERT_STATUS(phema_profile_power_gamma(&p, 100, 2e5), EC_EINVAL, "gamma 200000 is out of range");
  ASSERT_STATUS(phema_profile_exp(&p, 100, 0), EC_EINVAL, "half-life 0 is out of range");
  ASSERT_STATUS(phema_profile_exp(&p, 100, INFINITY), EC_EINVAL, "half-life inf is out of range");
  ASSERT_STATUS(phema_profile_exp(&p, -3, 10), EC_EINVAL, "profile time -3 is not positive");
}

TEST_MAIN(sigma_to_gamma_known_values, sigma_to_gamma_against_high_precision, gamma_round_trip,
          sigma_out_of_range, beta, log_ratio, inner_exp_power_golden,
          inner_exp_exp_and_power_power_golden, norms_and_limits, quadrature_kernel,
          profile_constructors)
