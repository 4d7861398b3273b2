/* Post-hoc EMA math: σ_rel ↔ γ, β, profile inner products, Gauss–Legendre panels and the
 * closed-form response error (see phema_math.h for the formulas and docs/posthoc-solver.md for
 * the derivations and measured accuracy). */
#include "posthoc/phema_math.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"

static const double ln2 = 0.693147180559945309417232121458176568;

/* Positive 16-point Gauss–Legendre nodes on [−1, 1] and their weights (the rule is symmetric).
 * Computed by Newton iteration on P16 in 50-digit decimal arithmetic and rounded to double. */
static const double gl16[8][2] = {
    {9.89400934991649939e-01, 2.71524594117540964e-02},
    {9.44575023073232600e-01, 6.22535239386478936e-02},
    {8.65631202387831755e-01, 9.51585116824927857e-02},
    {7.55404408355002999e-01, 1.24628971255533877e-01},
    {6.17876244402643771e-01, 1.49595988816576736e-01},
    {4.58016777657227370e-01, 1.69156519395002536e-01},
    {2.81603550779258915e-01, 1.82603415044923584e-01},
    {9.50125098376374405e-02, 1.89450610455068502e-01},
};

/* Shortest of %.15g / %.17g that reads back as the same double, so messages show 0.3, not
 * 0.29999999999999999, yet never print two different values the same way. */
static const char *fmt_double(char *buf, size_t size, double v) {
  snprintf(buf, size, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, size, "%.17g", v);
  return buf;
}

ec_status phema_sigma_to_gamma(double sigma_rel, double *gamma) {
  char b[40];
  double s = sigma_rel;
  if (!(s > 0) || !(s < 1))
    return ec_err(EC_EINVAL, "sigma_rel %s is out of range: it must be in (0, %.6f) (12^-0.5)",
                  fmt_double(b, sizeof b, s), PHEMA_SIGMA_MAX);
  /* D = 1 − 12σ² without rounding error in σ²: near the limit D → 0 and γ ≈ 3D, so an absolute
   * error of 1e-16 in D would become a large relative error in γ. */
  double p = s * s, e = fma(s, s, -p);
  double D = fma(-12.0, p, 1.0) - 12.0 * e;
  if (!(D > 0))
    return ec_err(EC_EINVAL, "sigma_rel %s is out of range: it must be in (0, %.6f) (12^-0.5)",
                  fmt_double(b, sizeof b, s), PHEMA_SIGMA_MAX);
  /* Multiplying Eq. 126 by σ² and writing 16σ² − 1 = 4σ² − D, 12σ² − 1 = −D gives
   * σ² γ (γ² + 7γ + 4) = D (γ + 1): both sides are sums of positive terms, so their ratio has a
   * relative error of a few ulps for every σ. Newton on φ(y) = log(lhs/rhs), y = ln γ, has
   * slope dφ/dy = γφ'(γ) ∈ [1, 2], so the root's relative error equals φ's absolute error. */
  double g_small = D / (4 * p), g_large = sqrt(D / p);
  double y = -log(1 / g_small + 1 / g_large); /* blends γ ≈ 3D (σ → 12^-0.5) and γ ≈ 1/σ */
  for (int it = 0; it < 100; it++) {
    double g = exp(y);
    double q = g * g + 7 * g + 4;
    double phi = log((p * g * q) / (D * (g + 1)));
    double slope = 1 + g * (2 * g + 7) / q - g / (g + 1);
    double dy = phi / slope;
    y -= dy;
    if (fabs(dy) < 1e-16) break;
  }
  double g = exp(y);
  if (!(g <= PHEMA_GAMMA_MAX))
    return ec_err(EC_EINVAL, "sigma_rel %s is too small: its gamma %.6g exceeds %g",
                  fmt_double(b, sizeof b, s), g, PHEMA_GAMMA_MAX);
  *gamma = g;
  return EC_OK;
}

double phema_gamma_to_sigma(double gamma) {
  double g2 = gamma + 2;
  return sqrt((gamma + 1) / (g2 * g2 * (gamma + 3)));
}

double phema_beta(double gamma, int64_t t, int64_t dt) {
  EC_ASSERTF(dt > 0 && dt <= t, "phema_beta: need 0 < dt <= t, got dt=%lld t=%lld", (long long)dt,
             (long long)t);
  return exp((gamma + 1) * log1p(-(double)dt / (double)t));
}

double phema_log_ratio(int64_t a, int64_t b) {
  EC_ASSERT(a > 0 && b > 0);
  if (a == b) return 0;
  /* For close times the exact integer difference keeps log(a/b) accurate to its own size, which
   * matters once it is multiplied by γ ~ 1e2..1e5. */
  if (a / 2 < b && b / 2 < a) return log1p((double)(a - b) / (double)b);
  return log((double)a / (double)b);
}

/* ---- profiles ---------------------------------------------------------------------------- */

ec_status phema_profile_check(const phema_profile *p) {
  char b[40];
  if (p->kind != PHEMA_POWER && p->kind != PHEMA_EXP)
    return ec_err(EC_EINVAL, "profile kind %d is neither PHEMA_POWER nor PHEMA_EXP", p->kind);
  if (p->t <= 0) return ec_err(EC_EINVAL, "profile time %lld is not positive", (long long)p->t);
  if (p->kind == PHEMA_POWER) {
    if (!(p->gamma > 0) || !(p->gamma <= PHEMA_GAMMA_MAX))
      return ec_err(EC_EINVAL, "gamma %s is out of range: it must be in (0, %g]",
                    fmt_double(b, sizeof b, p->gamma), PHEMA_GAMMA_MAX);
  } else {
    if (!(p->half_life > 0) || !isfinite(p->half_life))
      return ec_err(EC_EINVAL,
                    "half-life %s is out of range: it must be a positive number of images",
                    fmt_double(b, sizeof b, p->half_life));
  }
  return EC_OK;
}

ec_status phema_profile_power(phema_profile *p, int64_t t, double sigma_rel) {
  double g;
  ec_status st = phema_sigma_to_gamma(sigma_rel, &g);
  if (st) return st;
  *p = (phema_profile){.kind = PHEMA_POWER, .sigma_rel = sigma_rel, .gamma = g, .t = t};
  return phema_profile_check(p);
}

ec_status phema_profile_power_gamma(phema_profile *p, int64_t t, double gamma) {
  *p = (phema_profile){.kind = PHEMA_POWER, .gamma = gamma, .t = t};
  ec_status st = phema_profile_check(p);
  if (!st) p->sigma_rel = phema_gamma_to_sigma(gamma);
  return st;
}

ec_status phema_profile_exp(phema_profile *p, int64_t t, double half_life) {
  *p = (phema_profile){.kind = PHEMA_EXP, .half_life = half_life, .t = t};
  return phema_profile_check(p);
}

/* ---- quadrature -------------------------------------------------------------------------- */

void phema_quad_init(phema_quad *q, double v0, double u0, double v1, double u1, double fast,
                     double slow) {
  *q = (phema_quad){.v0 = v0, .v1 = v1, .u1 = u1, .slow = slow, .va = v0, .ua = u0};
  q->width = fast > 0 ? 4 / fast : INFINITY;
  q->done = !(v1 > v0);
}

int phema_quad_next(phema_quad *q, phema_node *nodes) {
  if (q->done) return 0;
  /* The remaining length, from the coordinate that is exact on this side. */
  double rest = q->va < 0.5 ? q->v1 - q->va : q->ua - q->u1;
  if (rest <= 0 || q->slow * (q->va - q->v0) > 800 || q->panels >= 200 ||
      (q->u1 <= 0 && q->ua <= 1e-18 * (q->v1 - q->v0))) {
    q->done = 1;
    return 0;
  }
  double w = q->width;
  if (w > q->ua / 2) w = q->ua / 2;
  int last = 0;
  if (w >= rest) {
    w = rest;
    last = 1;
  }
  double h = w / 2, vm = q->va + h, um = q->ua - h;
  for (int i = 0; i < 8; i++) {
    double dx = h * gl16[i][0], wt = h * gl16[i][1];
    for (int sgn = 0; sgn < 2; sgn++) {
      double v = sgn ? vm + dx : vm - dx, u = sgn ? um - dx : um + dx;
      phema_node *nd = &nodes[2 * i + sgn];
      nd->v = v;
      nd->lnu = v < 0.5 ? log1p(-v) : log(u);
      nd->w = wt;
    }
  }
  q->panels++;
  if (last) {
    q->done = 1;
  } else {
    q->va += w;
    q->ua -= w;
    q->width *= 2;
  }
  return 1;
}

double phema_exp_power_kernel(double gamma, double a) {
  EC_ASSERT(gamma >= 0 && a >= 0);
  if (a <= 8) {
    /* e^(−a) Σ aⁿ / (n! (γ+n+1)): positive terms, < 45 of them for a ≤ 8. */
    double term = 1, sum = 0;
    for (int n = 0; n < 200; n++) {
      double c = term / (gamma + n + 1);
      sum += c;
      if (c < 1e-18 * sum) break;
      term *= a / (n + 1);
    }
    return exp(-a) * sum;
  }
  phema_quad q;
  phema_node nd[PHEMA_QUAD_ORDER];
  phema_quad_init(&q, 0, 1, 1, 0, gamma + a, gamma + a);
  double sum = 0;
  while (phema_quad_next(&q, nd))
    for (int i = 0; i < PHEMA_QUAD_ORDER; i++)
      sum += nd[i].w * exp(gamma * nd[i].lnu - a * nd[i].v);
  return sum;
}

/* ---- inner products ---------------------------------------------------------------------- */

double phema_inner_power(int64_t ta, double ga, int64_t tb, double gb) {
  /* Eq. 151 with r^e = exp(e · log r); the γ-dependent factor is ≤ (γ+1)/2 + 1, no overflow. */
  double c = (ga + 1) * (gb + 1) / (ga + gb + 1);
  if (ta <= tb) return c * exp(gb * phema_log_ratio(ta, tb)) / (double)tb;
  return c * exp(ga * phema_log_ratio(tb, ta)) / (double)ta;
}

static double exp_rate(const phema_profile *p) { return ln2 / p->half_life; }

/* log C for the exponential profile, C = k / (1 − e^(−k t)). */
static double exp_log_c(double k, int64_t t) { return log(k / -expm1(-k * (double)t)); }

static double inner_exp_exp(const phema_profile *a, const phema_profile *b) {
  double ka = exp_rate(a), kb = exp_rate(b), ks = ka + kb;
  int64_t m = a->t < b->t ? a->t : b->t;
  double lg =
      exp_log_c(ka, a->t) + exp_log_c(kb, b->t) - ka * (double)(a->t - m) - kb * (double)(b->t - m);
  return exp(lg) * -expm1(-ks * (double)m) / ks;
}

static double inner_exp_power(const phema_profile *e, const phema_profile *p) {
  double k = exp_rate(e), g = p->gamma;
  int64_t m = e->t < p->t ? e->t : p->t;
  double lg =
      exp_log_c(k, e->t) + log(g + 1) + (g + 1) * phema_log_ratio(m, p->t) - k * (double)(e->t - m);
  return exp(lg) * phema_exp_power_kernel(g, k * (double)m);
}

double phema_inner(const phema_profile *a, const phema_profile *b) {
  if (a->kind == PHEMA_POWER && b->kind == PHEMA_POWER)
    return phema_inner_power(a->t, a->gamma, b->t, b->gamma);
  if (a->kind == PHEMA_EXP && b->kind == PHEMA_EXP) return inner_exp_exp(a, b);
  return a->kind == PHEMA_EXP ? inner_exp_power(a, b) : inner_exp_power(b, a);
}

double phema_norm2(const phema_profile *a) {
  if (a->kind == PHEMA_POWER)
    return (a->gamma + 1) * (a->gamma + 1) / ((2 * a->gamma + 1) * (double)a->t);
  /* C² (1 − e^(−2kt)) / (2k) simplifies to (k/2) coth(kt/2), which is accurate for any kt. */
  double k = exp_rate(a);
  return 0.5 * k / tanh(0.5 * k * (double)a->t);
}

double phema_response_error_closed(const int64_t *t, const double *gamma, int n, const double *x,
                                   int stride, const phema_profile *r, double *floor) {
  double rr = phema_norm2(r), xb = 0, xax = 0, mag = rr;
  for (int i = 0; i < n; i++) {
    double xi = x[(size_t)i * stride];
    phema_profile pi = {.kind = PHEMA_POWER, .gamma = gamma[i], .t = t[i]};
    double bi = phema_inner(&pi, r);
    xb += xi * bi;
    mag += 2 * fabs(xi * bi);
    double row = 0, arow = 0;
    for (int j = 0; j < n; j++) {
      double aij = phema_inner_power(t[i], gamma[i], t[j], gamma[j]);
      row += aij * x[(size_t)j * stride];
      arow += aij * fabs(x[(size_t)j * stride]);
    }
    xax += xi * row;
    mag += fabs(xi) * arow;
  }
  /* Each term carries a relative error of a few ulps (exp/log in the inner products and the
   * summation); 8 ulps of the total magnitude is the noise level of the difference. */
  if (floor) *floor = sqrt(8 * DBL_EPSILON * mag / rr);
  double e2 = rr - 2 * xb + xax;
  return sqrt(e2 > 0 ? e2 / rr : 0);
}
