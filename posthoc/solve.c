/* Post-hoc EMA least-squares solver: the O(N) interval decomposition, dense Cholesky / dgelsd /
 * dgesv paths, Tikhonov regularisation, Σx = 1 normalisation, the exact response error and the
 * per-target diagnostics (API and rules in solve.h, math in docs/posthoc-solver.md). */
#include "posthoc/solve.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"

static const double ln2 = 0.693147180559945309417232121458176568;

const char *phema_method_name(phema_method m) {
  switch (m) {
  case PHEMA_METHOD_AUTO: return "auto";
  case PHEMA_METHOD_INTERVAL: return "interval";
  case PHEMA_METHOD_CHOLESKY: return "cholesky";
  case PHEMA_METHOD_LSTSQ: return "lstsq";
  case PHEMA_METHOD_LU: return "lu";
  }
  return "?";
}

void phema_solve_opts_init(phema_solve_opts *o) {
  *o = (phema_solve_opts){.method = PHEMA_METHOD_AUTO, .snapshot_dtype = EC_F16};
}

double phema_dtype_roundoff(ec_dtype t) {
  switch (t) {
  case EC_F16: return ldexp(1, -11);
  case EC_BF16: return ldexp(1, -8);
  case EC_F32: return ldexp(1, -24);
  case EC_F64: return ldexp(1, -53);
  default: return 0;
  }
}

/* ---- layout: stored profiles sorted by (t, γ), grouped by time and exponent ---------------- */

typedef struct {
  int n;       /* stored profiles */
  int m;       /* distinct times */
  int q;       /* distinct exponents */
  int64_t *T;  /* [m] distinct times, ascending */
  double *g;   /* [q] distinct exponents, ascending */
  int *ti;     /* [n] time index of input profile i */
  int *gi;     /* [n] exponent index of input profile i */
  int *slot;   /* [m*q] input index of the profile at (time, exponent), −1 if absent */
  int regular; /* every time carries all q exponents and q ≤ PHEMA_MAX_P */
} layout;

static void layout_free(layout *L) {
  ec_freep(&L->T);
  ec_freep(&L->g);
  ec_freep(&L->ti);
  ec_freep(&L->gi);
  ec_freep(&L->slot);
}

typedef struct {
  int64_t t;
  double g;
  int idx;
} tg_entry;

static int cmp_tg(const void *a, const void *b) {
  const tg_entry *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  if (x->g != y->g) return x->g < y->g ? -1 : 1;
  return x->idx - y->idx;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Validates the stored profiles and builds the layout. */
static ec_status layout_build(layout *L, const int64_t *t, const double *gamma, int n) {
  *L = (layout){.n = n};
  if (n <= 0) return ec_err(EC_EINVAL, "no stored profiles to solve from");
  for (int i = 0; i < n; i++) {
    if (t[i] <= 0)
      return ec_err(EC_EINVAL,
                    "stored profile %d: time %lld is not positive (drop snapshots at t <= 0 "
                    "before solving)",
                    i, (long long)t[i]);
    if (!(gamma[i] > 0) || !(gamma[i] <= PHEMA_GAMMA_MAX))
      return ec_err(EC_EINVAL, "stored profile %d (t=%lld): gamma %.17g is out of range (0, %g]", i,
                    (long long)t[i], gamma[i], PHEMA_GAMMA_MAX);
  }
  ec_status st = EC_OK;
  tg_entry *e = ec_mallocarray((size_t)n, sizeof *e);
  if (!e) return EC_ENOMEM;
  for (int i = 0; i < n; i++) e[i] = (tg_entry){t[i], gamma[i], i};
  qsort(e, (size_t)n, sizeof *e, cmp_tg);
  for (int i = 1; i < n; i++)
    if (e[i].t == e[i - 1].t && e[i].g - e[i - 1].g <= 1e-12 * e[i].g) {
      st = ec_err(EC_EINVAL,
                  "duplicate stored profile: t=%lld sigma_rel=%.6g (gamma %.17g) appears twice "
                  "(profiles %d and %d)",
                  (long long)e[i].t, phema_gamma_to_sigma(e[i].g), e[i].g, e[i - 1].idx, e[i].idx);
      goto fail;
    }
  L->T = ec_mallocarray((size_t)n, sizeof *L->T);
  L->g = ec_mallocarray((size_t)n, sizeof *L->g);
  L->ti = ec_mallocarray((size_t)n, sizeof *L->ti);
  L->gi = ec_mallocarray((size_t)n, sizeof *L->gi);
  if (!L->T || !L->g || !L->ti || !L->gi) {
    st = EC_ENOMEM;
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    if (i == 0 || e[i].t != e[i - 1].t) L->T[L->m++] = e[i].t;
    L->ti[e[i].idx] = L->m - 1;
    L->g[i] = gamma[i];
  }
  qsort(L->g, (size_t)n, sizeof *L->g, cmp_dbl);
  for (int i = 0; i < n; i++)
    if (L->q == 0 || L->g[i] != L->g[L->q - 1]) L->g[L->q++] = L->g[i];
  for (int i = 0; i < n; i++) {
    double *hit = bsearch(&gamma[i], L->g, (size_t)L->q, sizeof *L->g, cmp_dbl);
    EC_ASSERT(hit);
    L->gi[i] = (int)(hit - L->g);
  }
  if ((size_t)L->m * (size_t)L->q > (size_t)1 << 26) {
    /* Irregular layouts with very many distinct exponents would make the (time, exponent) table
     * huge; such inputs are not post-hoc EMA snapshot sets. */
    st = ec_err(EC_EINVAL, "%d snapshot times x %d distinct exponents is too many to lay out", L->m,
                L->q);
    goto fail;
  }
  L->slot = ec_mallocarray((size_t)L->m * (size_t)L->q, sizeof *L->slot);
  if (!L->slot) {
    st = EC_ENOMEM;
    goto fail;
  }
  for (size_t i = 0; i < (size_t)L->m * (size_t)L->q; i++) L->slot[i] = -1;
  for (int i = 0; i < n; i++) L->slot[(size_t)L->ti[i] * L->q + L->gi[i]] = i;
  L->regular = L->q <= PHEMA_MAX_P && n == L->m * L->q;
  ec_freep(&e);
  return EC_OK;
fail:
  ec_freep(&e);
  layout_free(L);
  return st;
}

int phema_layout_regular(const int64_t *t, const double *gamma, int n, int *p) {
  layout L;
  if (layout_build(&L, t, gamma, n)) {
    ec_err_clear();
    return 0;
  }
  int r = L.regular;
  if (p) *p = r ? L.q : 0;
  layout_free(&L);
  return r;
}

/* A target may end after the last snapshot (posthoc-ema --at between snapshot times uses only
 * the snapshots before it): no stored profile reaches (t_last, t_r], so that part of the target
 * is simply not reconstructed; the weights are those of the target restricted to [0, t_last], and
 * the response error includes the uncovered tail (tail_norm2 below). */
static ec_status check_target(const phema_profile *r, int j) {
  ec_status st = phema_profile_check(r);
  if (st) return ec_err_context(st, "target %d", j);
  return EC_OK;
}

/* ∫ p_r² over (t_last, t_r], the part of a target no snapshot covers (0 when t_r <= t_last). */
static double tail_norm2(const phema_profile *r, int64_t t_last) {
  if (r->t <= t_last) return 0;
  if (r->kind == PHEMA_POWER) /* ‖p_r‖² (1 − (t_last/t_r)^(2γ+1)) */
    return phema_norm2(r) * -expm1((2 * r->gamma + 1) * phema_log_ratio(t_last, r->t));
  double k = ln2 / r->half_life, c = k / -expm1(-k * (double)r->t); /* C of the profile */
  return c * c * -expm1(-2 * k * (double)(r->t - t_last)) / (2 * k);
}

/* ---- the target density on an interval ------------------------------------------------------
 * On interval j, with u = τ/T_j and v = 1 − u, q_j(u) = T_j · p_r(T_j u), for T_j u ≤ t_r.
 *   power:       q = exp(logk + γ_r ln u),   logk = log(γ_r+1) + (γ_r+1) log(T_j/t_r)
 *   exponential: q = exp(logk − a v),        logk = log(T_j C) − k (t_r − T_j),  a = k T_j */
typedef struct {
  int power;
  double logk, rate; /* rate: γ_r (power) or a = k T_j (exponential) */
} tdens;

static tdens target_density(const phema_profile *r, int64_t Tj) {
  tdens d;
  if (r->kind == PHEMA_POWER) {
    d.power = 1;
    d.rate = r->gamma;
    d.logk = log(r->gamma + 1) + (r->gamma + 1) * phema_log_ratio(Tj, r->t);
  } else {
    double k = ln2 / r->half_life;
    d.power = 0;
    d.rate = k * (double)Tj;
    d.logk = log((double)Tj * k / -expm1(-k * (double)r->t)) - k * (double)(r->t - Tj);
  }
  return d;
}

static inline double tdens_eval(const tdens *d, const phema_node *nd) {
  return exp(d->power ? d->logk + d->rate * nd->lnu : d->logk - d->rate * nd->v);
}

/* ---- exact response error for any layout --------------------------------------------------- */

static double response_error_layout(const layout *L, const double *x, int stride,
                                    const phema_profile *r, double *beta /* [m*q] scratch */) {
  int m = L->m, q = L->q;
  /* β_{j,e}: coefficient of u^{g_e}/T_j of the reconstruction on interval j, from the suffix
   * recursion β_j = (g+1) x_j + (T_j/T_{j+1})^(g+1) β_{j+1}. */
  for (int j = m - 1; j >= 0; j--)
    for (int e = 0; e < q; e++) {
      double b = 0;
      if (j + 1 < m)
        b = beta[(size_t)(j + 1) * q + e] *
            exp((L->g[e] + 1) * phema_log_ratio(L->T[j], L->T[j + 1]));
      int s = L->slot[(size_t)j * q + e];
      if (s >= 0) b += (L->g[e] + 1) * x[(size_t)s * stride];
      beta[(size_t)j * q + e] = b;
    }
  double gmin = L->g[0], gmax = L->g[q - 1], total = 0;
  phema_node nd[PHEMA_QUAD_ORDER];
  for (int j = 0; j < m; j++) {
    int64_t lo = j ? L->T[j - 1] : 0, Tj = L->T[j];
    const double *bj = beta + (size_t)j * q;
    double d = (double)(Tj - lo) / (double)Tj, rho = (double)lo / (double)Tj;
    double acc = 0;
    for (int part = 0; part < 2; part++) {
      /* part 0: where the target lives, [lo, min(T_j, t_r)]; part 1: (t_r, T_j], target 0. */
      double v0, u0, v1 = d, u1 = rho;
      tdens td = {0};
      double fast, slow;
      if (part == 0) {
        if (lo >= r->t) continue;
        v0 = Tj <= r->t ? 0 : (double)(Tj - r->t) / (double)Tj;
        u0 = Tj <= r->t ? 1 : (double)r->t / (double)Tj;
        td = target_density(r, Tj);
        fast = 2 * fmax(gmax, td.rate);
        slow = 2 * fmin(gmin, td.rate);
      } else {
        if (Tj <= r->t) continue;
        int any = 0;
        for (int e = 0; e < q; e++) any |= bj[e] != 0;
        if (!any) continue;
        v0 = 0;
        u0 = 1;
        if (lo < r->t) {
          v1 = (double)(Tj - r->t) / (double)Tj;
          u1 = (double)r->t / (double)Tj;
        }
        fast = 2 * gmax;
        slow = 2 * gmin;
      }
      phema_quad qd;
      phema_quad_init(&qd, v0, u0, v1, u1, fast, slow);
      while (phema_quad_next(&qd, nd))
        for (int i = 0; i < PHEMA_QUAD_ORDER; i++) {
          double res = part == 0 ? -tdens_eval(&td, &nd[i]) : 0;
          for (int e = 0; e < q; e++)
            if (bj[e] != 0) res += bj[e] * exp(L->g[e] * nd[i].lnu);
          acc += nd[i].w * res * res;
        }
    }
    /* ∫_{I_j} (p* − p_r)² dτ = acc / T_j; scaled by t_r to stay O(1). */
    total += acc * ((double)r->t / (double)Tj);
  }
  total += (double)r->t * tail_norm2(r, L->T[m - 1]);
  return sqrt(total / ((double)r->t * phema_norm2(r)));
}

ec_status phema_response_error(const int64_t *t, const double *gamma, int n, const double *x,
                               int stride, const phema_profile *r, double *rel_error) {
  layout L;
  ec_status st = layout_build(&L, t, gamma, n);
  if (st) return st;
  if ((st = check_target(r, 0))) goto done;
  double *beta = ec_mallocarray((size_t)L.m * L.q, sizeof *beta);
  if (!beta) {
    st = EC_ENOMEM;
    goto done;
  }
  *rel_error = response_error_layout(&L, x, stride, r, beta);
  ec_freep(&beta);
done:
  layout_free(&L);
  return st;
}

/* ---- the interval solver --------------------------------------------------------------------
 * On interval j the reconstruction is (1/T_j) Σ_k β_{j,k} u^{g_k}. It is represented in the
 * Newton divided-difference basis of the exponents, ψ_1 = u^{g_1}, ψ_m = u^[g_1..g_m] (divided
 * difference of g ↦ e^{g ln u}), u^{g_k} = Σ_{m≤k} M[k][m] ψ_m with M[k][m] = Π_{l<m} (g_k − g_l).
 * On a narrow interval the monomials u^{g_k} are nearly parallel (Gram condition ~ (T_j/Δ)²),
 * while ψ_m ≈ (ln u)^{m−1}/(m−1)! behave like 1, v, v², ... whose Jacobi-scaled Gram matrix has a
 * condition number of a few tens; ψ_m is computed pointwise without cancellation (expm1 for m = 2,
 * a Taylor series in (g − g_1) ln u for higher orders when that is small). */

typedef struct {
  const layout *L;
  int P, m;
  double *M;         /* [P*P] row k, column m */
  double *G;         /* [m*P*P] ψ Gram matrices */
  double *C;         /* [m*P*P] Cholesky factors of the Jacobi-scaled Gram matrices (lower) */
  double *S;         /* [m*P] Jacobi scales 1/sqrt(G_mm) */
  double *rf;        /* [m*P] (T_j/T_{j+1})^(g_k+1), 0 for the last time */
  double *pf;        /* [m*P] (T_{j−1}/T_j)^(g_k), 0 for the first time */
  int *cached;       /* [m] 1: the interval is one panel; nodes and ψ values below */
  phema_node *nodes; /* [m*16] */
  double *psi;       /* [m*16*P] */
} ivsolver;

static void ivsolver_free(ivsolver *s) {
  ec_freep(&s->M);
  ec_freep(&s->G);
  ec_freep(&s->C);
  ec_freep(&s->S);
  ec_freep(&s->rf);
  ec_freep(&s->pf);
  ec_freep(&s->cached);
  ec_freep(&s->nodes);
  ec_freep(&s->psi);
}

/* Divided difference f[g_i..g_j] of f(g) = e^{g L}. */
static double dd_exp(double L, const double *g, int i, int j) {
  if (i == j) return exp(g[i] * L);
  double span = g[j] - g[i];
  if (j == i + 1) return exp(g[i] * L) * expm1(span * L) / span;
  int order = j - i;
  if (fabs(span * L) <= 1) {
    /* e^{g_i L} Σ_{n≥order} Lⁿ/n! h_{n−order}(δ), δ_l = g_l − g_i ∈ [0, span], where h_k are the
     * complete homogeneous symmetric polynomials; terms fall like (span·|L|)^k / k!. */
    enum { NT = 40 };
    double h[NT];
    for (int k = 0; k < NT; k++) h[k] = k == 0;
    for (int l = i + 1; l <= j; l++) {
      double dl = g[l] - g[i];
      for (int k = 1; k < NT; k++) h[k] += dl * h[k - 1];
    }
    double c = 1, sum = 0; /* c = Lⁿ/n! */
    for (int n = 1; n <= order; n++) c *= L / n;
    for (int n = order; n < order + NT; n++) {
      double term = c * h[n - order];
      sum += term;
      if (fabs(term) <= 1e-18 * fabs(sum) && n > order + 2) break;
      c *= L / (n + 1);
    }
    return exp(g[i] * L) * sum;
  }
  return (dd_exp(L, g, i + 1, j) - dd_exp(L, g, i, j - 1)) / span;
}

static inline void psi_eval(const double *g, int P, double lnu, double *psi) {
  psi[0] = exp(g[0] * lnu);
  if (P > 1) psi[1] = psi[0] * expm1((g[1] - g[0]) * lnu) / (g[1] - g[0]);
  for (int mm = 2; mm < P; mm++) psi[mm] = dd_exp(lnu, g, 0, mm);
}

/* Solves the scaled Cholesky system of interval j in place: c = G⁻¹ h. */
static void iv_chol_solve(const ivsolver *s, int j, double *h) {
  int P = s->P;
  const double *C = s->C + (size_t)j * P * P, *S = s->S + (size_t)j * P;
  for (int a = 0; a < P; a++) h[a] *= S[a];
  for (int a = 0; a < P; a++) {
    double v = h[a];
    for (int b = 0; b < a; b++) v -= C[a * P + b] * h[b];
    h[a] = v / C[a * P + a];
  }
  for (int a = P - 1; a >= 0; a--) {
    double v = h[a];
    for (int b = a + 1; b < P; b++) v -= C[b * P + a] * h[b];
    h[a] = v / C[a * P + a];
  }
  for (int a = 0; a < P; a++) h[a] *= S[a];
}

/* β = M⁻ᵀ c (c = Mᵀ β, Mᵀ upper triangular), in place. */
static void iv_psi_to_mono(const ivsolver *s, double *c) {
  int P = s->P;
  for (int k = P - 1; k >= 0; k--) {
    double v = c[k];
    for (int l = k + 1; l < P; l++) v -= s->M[l * P + k] * c[l];
    c[k] = v / s->M[k * P + k];
  }
}

static ec_status ivsolver_init(ivsolver *s, const layout *L) {
  int P = L->q, m = L->m;
  *s = (ivsolver){.L = L, .P = P, .m = m};
  s->M = ec_mallocarray((size_t)P * P, sizeof *s->M);
  s->G = ec_mallocarray((size_t)m * P * P, sizeof *s->G);
  s->C = ec_mallocarray((size_t)m * P * P, sizeof *s->C);
  s->S = ec_mallocarray((size_t)m * P, sizeof *s->S);
  s->rf = ec_mallocarray((size_t)m * P, sizeof *s->rf);
  s->pf = ec_mallocarray((size_t)m * P, sizeof *s->pf);
  s->cached = ec_calloc((size_t)m, sizeof *s->cached);
  s->nodes = ec_mallocarray((size_t)m * PHEMA_QUAD_ORDER, sizeof *s->nodes);
  s->psi = ec_mallocarray((size_t)m * PHEMA_QUAD_ORDER * P, sizeof *s->psi);
  if (!s->M || !s->G || !s->C || !s->S || !s->rf || !s->pf || !s->cached || !s->nodes || !s->psi) {
    ivsolver_free(s);
    return EC_ENOMEM;
  }
  const double *g = L->g;
  for (int k = 0; k < P; k++)
    for (int mm = 0; mm < P; mm++) {
      double v = mm <= k;
      if (mm <= k)
        for (int l = 0; l < mm; l++) v *= g[k] - g[l];
      s->M[k * P + mm] = v;
    }
  phema_node nd[PHEMA_QUAD_ORDER];
  double psi[PHEMA_MAX_P];
  for (int j = 0; j < m; j++) {
    int64_t lo = j ? L->T[j - 1] : 0, Tj = L->T[j];
    double d = (double)(Tj - lo) / (double)Tj, rho = (double)lo / (double)Tj;
    for (int k = 0; k < P; k++) {
      s->rf[j * P + k] = j + 1 < m ? exp((g[k] + 1) * phema_log_ratio(Tj, L->T[j + 1])) : 0;
      s->pf[j * P + k] = j ? exp(g[k] * phema_log_ratio(lo, Tj)) : 0;
    }
    double *G = s->G + (size_t)j * P * P;
    memset(G, 0, sizeof *G * P * P);
    double fast = 2 * g[P - 1], slow = 2 * g[0];
    phema_quad qd;
    phema_quad_init(&qd, 0, 1, d, rho, fast, slow);
    int panels = 0;
    while (phema_quad_next(&qd, nd)) {
      for (int i = 0; i < PHEMA_QUAD_ORDER; i++) {
        psi_eval(g, P, nd[i].lnu, psi);
        for (int a = 0; a < P; a++)
          for (int b = 0; b <= a; b++) G[a * P + b] += nd[i].w * psi[a] * psi[b];
        if (panels == 0) {
          s->nodes[(size_t)j * PHEMA_QUAD_ORDER + i] = nd[i];
          memcpy(s->psi + ((size_t)j * PHEMA_QUAD_ORDER + i) * P, psi, sizeof *psi * P);
        }
      }
      panels++;
    }
    s->cached[j] = panels == 1;
    /* Jacobi-scaled Cholesky. */
    double *C = s->C + (size_t)j * P * P, *S = s->S + (size_t)j * P;
    for (int a = 0; a < P; a++) S[a] = 1 / sqrt(G[a * P + a]);
    for (int a = 0; a < P; a++)
      for (int b = 0; b <= a; b++) {
        double v = G[a * P + b] * S[a] * S[b];
        for (int c = 0; c < b; c++) v -= C[a * P + c] * C[b * P + c];
        if (a == b) {
          if (!(v > 0)) {
            ivsolver_free(s);
            return ec_err(EC_ESINGULAR,
                          "interval (%lld, %lld]: the %d stored profiles are numerically dependent",
                          (long long)lo, (long long)Tj, P);
          }
          C[a * P + a] = sqrt(v);
        } else {
          C[a * P + b] = v / C[b * P + b];
        }
      }
    for (int a = 0; a < P; a++)
      for (int b = a + 1; b < P; b++) G[a * P + b] = G[b * P + a];
  }
  return EC_OK;
}

/* Weights for one target, in input order, x[i * stride]. beta: [m*P] scratch. */
static void ivsolver_target(const ivsolver *s, const phema_profile *r, double *x, int stride,
                            double *beta) {
  const layout *L = s->L;
  int P = s->P, m = s->m;
  const double *g = L->g;
  phema_node nd[PHEMA_QUAD_ORDER];
  double psi[PHEMA_MAX_P];
  for (int j = 0; j < m; j++) {
    double *h = beta + (size_t)j * P;
    for (int a = 0; a < P; a++) h[a] = 0;
    int64_t lo = j ? L->T[j - 1] : 0, Tj = L->T[j];
    if (lo >= r->t) continue;
    tdens td = target_density(r, Tj);
    double fast = g[P - 1] + td.rate, slow = g[0] + td.rate;
    double d = (double)(Tj - lo) / (double)Tj;
    int full = Tj <= r->t;
    if (full && s->cached[j] && fast * d <= 4) {
      const phema_node *cn = s->nodes + (size_t)j * PHEMA_QUAD_ORDER;
      const double *cp = s->psi + (size_t)j * PHEMA_QUAD_ORDER * P;
      for (int i = 0; i < PHEMA_QUAD_ORDER; i++) {
        double wq = cn[i].w * tdens_eval(&td, &cn[i]);
        for (int a = 0; a < P; a++) h[a] += wq * cp[i * P + a];
      }
    } else {
      double v0 = full ? 0 : (double)(Tj - r->t) / (double)Tj;
      double u0 = full ? 1 : (double)r->t / (double)Tj;
      phema_quad qd;
      phema_quad_init(&qd, v0, u0, d, (double)lo / (double)Tj, fast, slow);
      while (phema_quad_next(&qd, nd))
        for (int i = 0; i < PHEMA_QUAD_ORDER; i++) {
          psi_eval(g, P, nd[i].lnu, psi);
          double wq = nd[i].w * tdens_eval(&td, &nd[i]);
          for (int a = 0; a < P; a++) h[a] += wq * psi[a];
        }
    }
    iv_chol_solve(s, j, h);
    iv_psi_to_mono(s, h);
  }
  /* x_{j,k} = (β_{j,k} − β_{j+1,k} (T_j/T_{j+1})^(g_k+1)) / (g_k + 1). */
  for (int j = 0; j < m; j++)
    for (int k = 0; k < P; k++) {
      double next = j + 1 < m ? beta[(size_t)(j + 1) * P + k] * s->rf[j * P + k] : 0;
      x[(size_t)L->slot[(size_t)j * P + k] * stride] =
          (beta[(size_t)j * P + k] - next) / (g[k] + 1);
    }
}

/* y = A x for the Gram matrix A in the sorted (time, exponent) order, O(N). */
static void ivsolver_apply_a(const ivsolver *s, const double *x, double *y, double *beta) {
  int P = s->P, m = s->m;
  const double *g = s->L->g;
  double c[PHEMA_MAX_P], z[PHEMA_MAX_P];
  for (int j = m - 1; j >= 0; j--)
    for (int k = 0; k < P; k++)
      beta[j * P + k] =
          (g[k] + 1) * x[j * P + k] + (j + 1 < m ? s->rf[j * P + k] * beta[(j + 1) * P + k] : 0);
  for (int j = 0; j < m; j++) {
    const double *b = beta + (size_t)j * P, *G = s->G + (size_t)j * P * P;
    for (int a = 0; a < P; a++) { /* c = Mᵀ β */
      c[a] = 0;
      for (int k = a; k < P; k++) c[a] += s->M[k * P + a] * b[k];
    }
    for (int a = 0; a < P; a++) { /* z = G c */
      z[a] = 0;
      for (int b2 = 0; b2 < P; b2++) z[a] += G[a * P + b2] * c[b2];
    }
    for (int k = 0; k < P; k++) { /* ⟨u^{g_k}, R⟩ = (M z)_k, then the prefix sum */
      double v = 0;
      for (int a = 0; a <= k; a++) v += s->M[k * P + a] * z[a];
      double prev = j ? y[(j - 1) * P + k] * (double)s->L->T[j - 1] / (g[k] + 1) : 0;
      double S = (j ? s->pf[j * P + k] * prev : 0) + v;
      y[j * P + k] = (g[k] + 1) * S / (double)s->L->T[j];
    }
  }
}

/* x = A⁻¹ y, O(N): the steps of ivsolver_apply_a inverted. */
static void ivsolver_apply_ainv(const ivsolver *s, const double *y, double *x, double *beta) {
  int P = s->P, m = s->m;
  const double *g = s->L->g;
  double z[PHEMA_MAX_P];
  for (int j = 0; j < m; j++) {
    for (int k = 0; k < P; k++) {
      double S = (double)s->L->T[j] * y[j * P + k] / (g[k] + 1);
      double Sp = j ? (double)s->L->T[j - 1] * y[(j - 1) * P + k] / (g[k] + 1) : 0;
      z[k] = S - (j ? s->pf[j * P + k] * Sp : 0);
    }
    for (int k = 0; k < P; k++) { /* M z̃ = z, forward substitution */
      double v = z[k];
      for (int a = 0; a < k; a++) v -= s->M[k * P + a] * z[a];
      z[k] = v / s->M[k * P + k];
    }
    iv_chol_solve(s, j, z);
    iv_psi_to_mono(s, z);
    memcpy(beta + (size_t)j * P, z, sizeof *z * P);
  }
  for (int j = 0; j < m; j++)
    for (int k = 0; k < P; k++)
      x[j * P + k] =
          (beta[j * P + k] - (j + 1 < m ? s->rf[j * P + k] * beta[(j + 1) * P + k] : 0)) /
          (g[k] + 1);
}

/* Largest eigenvalue of A (inv = 0) or of A⁻¹ (inv = 1) by power iteration. A's spectrum spreads
 * over many decades, so the top eigenvalue is well separated and a few dozen steps give 3+
 * digits, which is all a condition number is reported with. */
static double ivsolver_top_eig(const ivsolver *s, int inv, double *v, double *w, double *scratch) {
  int N = s->m * s->P;
  for (int i = 0; i < N; i++) v[i] = 1 + 0.5 * sin(1.0 + 7.0 * i);
  double lam = 0;
  for (int it = 0; it < 500; it++) {
    double nv = 0;
    for (int i = 0; i < N; i++) nv += v[i] * v[i];
    nv = sqrt(nv);
    for (int i = 0; i < N; i++) v[i] /= nv;
    if (inv)
      ivsolver_apply_ainv(s, v, w, scratch);
    else
      ivsolver_apply_a(s, v, w, scratch);
    double l = 0;
    for (int i = 0; i < N; i++) l += v[i] * w[i];
    memcpy(v, w, sizeof *v * N);
    if (it > 5 && fabs(l - lam) <= 1e-9 * fabs(l)) return l;
    lam = l;
  }
  return lam;
}

static ec_status ivsolver_cond(const ivsolver *s, double *cond) {
  size_t N = (size_t)s->m * s->P;
  double *v = ec_mallocarray(N, sizeof *v), *w = ec_mallocarray(N, sizeof *w),
         *sc = ec_mallocarray(N, sizeof *sc);
  ec_status st = EC_OK;
  if (!v || !w || !sc) {
    st = EC_ENOMEM;
  } else {
    double lmax = ivsolver_top_eig(s, 0, v, w, sc), linv = ivsolver_top_eig(s, 1, v, w, sc);
    *cond = lmax * linv;
  }
  ec_freep(&v);
  ec_freep(&w);
  ec_freep(&sc);
  return st;
}

/* ---- dense paths ------------------------------------------------------------------------- */

typedef struct {
  int N;
  double *A; /* [N*N] Gram matrix, row-major, input order */
  double lmax;
} dense;

static ec_status dense_build(dense *D, const int64_t *t, const double *gamma, int n) {
  D->N = n;
  D->lmax = -1;
  D->A = ec_mallocarray((size_t)n * n, sizeof *D->A);
  if (!D->A) return EC_ENOMEM;
  for (int i = 0; i < n; i++)
    for (int j = 0; j <= i; j++)
      D->A[(size_t)i * n + j] = D->A[(size_t)j * n + i] =
          phema_inner_power(t[i], gamma[i], t[j], gamma[j]);
  return EC_OK;
}

static ec_status dense_lmax(dense *D) {
  if (D->lmax >= 0) return EC_OK;
  int N = D->N;
  double *a = ec_mallocarray((size_t)N * N, sizeof *a), *w = ec_mallocarray((size_t)N, sizeof *w),
         *z = ec_mallocarray((size_t)N, sizeof *z);
  lapack_int *sup = ec_mallocarray(2 * (size_t)N, sizeof *sup);
  ec_status st = EC_OK;
  if (!a || !w || !z || !sup) {
    st = EC_ENOMEM;
    goto done;
  }
  memcpy(a, D->A, sizeof *a * N * N);
  lapack_int found = 0;
  lapack_int info =
      LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'I', 'L', N, a, N, 0, 0, N, N, 0, &found, w, z, 1, sup);
  if (info != 0 || found != 1) {
    st =
        ec_err(EC_ESINGULAR, "dsyevr failed (info %d) computing the largest eigenvalue", (int)info);
    goto done;
  }
  D->lmax = w[0];
done:
  ec_freep(&a);
  ec_freep(&w);
  ec_freep(&z);
  ec_freep(&sup);
  return st;
}

/* Solves A X = B (or (A + mu I) X = B) for the cols columns of B (row-major N×cols, overwritten
 * with X). *method is the requested dense method on entry and the one used on return. */
static ec_status dense_solve(const dense *D, double mu, double *B, int cols, phema_method *method,
                             double *cond, int *cond_norm, int *rank) {
  int N = D->N;
  ec_status st = EC_OK;
  double *F = ec_mallocarray((size_t)N * N, sizeof *F), *sv = NULL;
  lapack_int *ipiv = NULL;
  if (!F) return EC_ENOMEM;
  memcpy(F, D->A, sizeof *F * N * N);
  for (int i = 0; i < N; i++) F[(size_t)i * N + i] += mu;
  *rank = N;
  if (*method == PHEMA_METHOD_CHOLESKY) {
    double anorm = LAPACKE_dlansy(LAPACK_ROW_MAJOR, '1', 'L', N, F, N), rcond = 0;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', N, F, N);
    if (info == 0) info = LAPACKE_dpocon(LAPACK_ROW_MAJOR, 'L', N, F, N, anorm, &rcond);
    if (info == 0 && rcond >= N * DBL_EPSILON) {
      LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', N, cols, F, N, B, cols);
      *cond = 1 / rcond;
      *cond_norm = 1;
      goto done;
    }
    /* Not numerically positive definite: the rank-revealing solver gives the minimum-norm
     * least-squares weights instead. */
    memcpy(F, D->A, sizeof *F * N * N);
    for (int i = 0; i < N; i++) F[(size_t)i * N + i] += mu;
    *method = PHEMA_METHOD_LSTSQ;
  }
  if (*method == PHEMA_METHOD_LSTSQ) {
    sv = ec_mallocarray((size_t)N, sizeof *sv);
    if (!sv) {
      st = EC_ENOMEM;
      goto done;
    }
    lapack_int rk = 0;
    lapack_int info =
        LAPACKE_dgelsd(LAPACK_ROW_MAJOR, N, N, cols, F, N, B, cols, sv, N * DBL_EPSILON, &rk);
    if (info != 0) {
      st = ec_err(EC_ESINGULAR, "dgelsd did not converge (info %d) on the %dx%d Gram matrix",
                  (int)info, N, N);
      goto done;
    }
    *rank = (int)rk;
    *cond = sv[N - 1] > 0 ? sv[0] / sv[N - 1] : INFINITY;
    *cond_norm = 2;
    goto done;
  }
  if (*method == PHEMA_METHOD_LU) {
    ipiv = ec_mallocarray((size_t)N, sizeof *ipiv);
    if (!ipiv) {
      st = EC_ENOMEM;
      goto done;
    }
    double anorm = LAPACKE_dlange(LAPACK_ROW_MAJOR, '1', N, N, F, N), rcond = 0;
    lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, N, cols, F, N, ipiv, B, cols);
    if (info != 0) {
      st = ec_err(EC_ESINGULAR, "dgesv: the %dx%d Gram matrix is singular (info %d)", N, N,
                  (int)info);
      goto done;
    }
    LAPACKE_dgecon(LAPACK_ROW_MAJOR, '1', N, F, N, anorm, &rcond);
    *cond = rcond > 0 ? 1 / rcond : INFINITY;
    *cond_norm = 1;
    goto done;
  }
  EC_ABORT("dense_solve: method %d", (int)*method);
done:
  ec_freep(&F);
  ec_freep(&sv);
  ec_freep(&ipiv);
  return st;
}

/* ---- the driver ---------------------------------------------------------------------------- */

ec_status phema_solve(const int64_t *t, const double *gamma, int n, const phema_profile *targets,
                      int k, const phema_solve_opts *opts, double *x, phema_diag *diag) {
  phema_solve_opts def;
  if (!opts) {
    phema_solve_opts_init(&def);
    opts = &def;
  }
  layout L;
  ec_status st = layout_build(&L, t, gamma, n);
  if (st) return st;
  ivsolver iv = {0};
  dense D = {0};
  double *X = NULL, *B = NULL, *scratch = NULL;
  phema_diag *dg = NULL;
  if (k <= 0) {
    st = ec_err(EC_EINVAL, "no targets to solve for");
    goto done;
  }
  for (int j = 0; j < k; j++)
    if ((st = check_target(&targets[j], j))) goto done;
  if (opts->tikhonov < 0 && opts->tikhonov != PHEMA_TIKHONOV_AUTO) {
    st = ec_err(EC_EINVAL, "Tikhonov lambda %g is negative", opts->tikhonov);
    goto done;
  }
  phema_method method = opts->method;
  if (method == PHEMA_METHOD_AUTO)
    method = L.regular ? PHEMA_METHOD_INTERVAL : PHEMA_METHOD_CHOLESKY;
  if (opts->tikhonov > 0) method = PHEMA_METHOD_CHOLESKY;
  if (method == PHEMA_METHOD_INTERVAL && !L.regular) {
    st = ec_err(EC_EINVAL,
                "the interval solver needs every snapshot time to carry the same set of at most %d "
                "profiles (%d times, %d distinct exponents, %d profiles)",
                PHEMA_MAX_P, L.m, L.q, n);
    goto done;
  }
  X = ec_mallocarray((size_t)n * k, sizeof *X);
  dg = ec_calloc((size_t)k, sizeof *dg);
  scratch = ec_mallocarray((size_t)L.m * L.q, sizeof *scratch);
  if (!X || !dg || !scratch) {
    st = EC_ENOMEM;
    goto done;
  }
  double cond = NAN;
  int cond_norm = 0, rank = n;
  if (method == PHEMA_METHOD_INTERVAL) {
    if ((st = ivsolver_init(&iv, &L))) goto done;
    for (int j = 0; j < k; j++) ivsolver_target(&iv, &targets[j], X + j, k, scratch);
    /* cond₂(A) costs two power iterations (~0.1 s at N = 8192); only diagnostics need it. */
    if (diag) {
      if ((st = ivsolver_cond(&iv, &cond))) goto done;
      cond_norm = 2;
    }
  } else {
    if ((st = dense_build(&D, t, gamma, n))) goto done;
    double mu = 0;
    if (opts->tikhonov > 0) {
      if ((st = dense_lmax(&D))) goto done;
      mu = opts->tikhonov * D.lmax;
    }
    for (int i = 0; i < n; i++) {
      phema_profile pi = {.kind = PHEMA_POWER, .gamma = gamma[i], .t = t[i]};
      for (int j = 0; j < k; j++) X[(size_t)i * k + j] = phema_inner(&pi, &targets[j]);
    }
    if ((st = dense_solve(&D, mu, X, k, &method, &cond, &cond_norm, &rank))) goto done;
  }
  for (int j = 0; j < k; j++) {
    dg[j].method = method;
    dg[j].cond = cond;
    dg[j].cond_norm = cond_norm;
    dg[j].rank = rank;
    dg[j].tikhonov = opts->tikhonov > 0 ? opts->tikhonov : 0;
  }
  /* Automatic Tikhonov: only where rounding noise in 16-bit snapshots is amplified (‖x‖₂ > 5). */
  if (opts->tikhonov == PHEMA_TIKHONOV_AUTO &&
      (opts->snapshot_dtype == EC_F16 || opts->snapshot_dtype == EC_BF16)) {
    const double lam = 1e-6;
    for (int j = 0; j < k; j++) {
      double n2 = 0;
      for (int i = 0; i < n; i++) n2 += X[(size_t)i * k + j] * X[(size_t)i * k + j];
      if (sqrt(n2) <= 5) continue;
      if (!D.A && (st = dense_build(&D, t, gamma, n))) goto done;
      if ((st = dense_lmax(&D))) goto done;
      if (!B) B = ec_mallocarray((size_t)n, sizeof *B);
      if (!B) {
        st = EC_ENOMEM;
        goto done;
      }
      for (int i = 0; i < n; i++) {
        phema_profile pi = {.kind = PHEMA_POWER, .gamma = gamma[i], .t = t[i]};
        B[i] = phema_inner(&pi, &targets[j]);
      }
      phema_method m2 = PHEMA_METHOD_CHOLESKY;
      double c2;
      int cn2, r2;
      if ((st = dense_solve(&D, lam * D.lmax, B, 1, &m2, &c2, &cn2, &r2))) goto done;
      for (int i = 0; i < n; i++) X[(size_t)i * k + j] = B[i];
      dg[j].method = m2;
      dg[j].tikhonov = lam;
    }
  }
  double u = phema_dtype_roundoff(opts->snapshot_dtype);
  for (int j = 0; j < k; j++) {
    /* Neumaier-compensated Σx: the normalisation divides by it. */
    double s = 0, c = 0, n1 = 0;
    for (int i = 0; i < n; i++) {
      double v = X[(size_t)i * k + j], tt = s + v;
      c += fabs(s) >= fabs(v) ? (s - tt) + v : (v - tt) + s;
      s = tt;
      n1 += fabs(v);
    }
    s += c;
    if (!isfinite(s)) {
      st = ec_err(EC_ESINGULAR, "target %d: the weights are not finite", j);
      goto done;
    }
    dg[j].sum_raw = s;
    if (!opts->raw) {
      if (!(fabs(s) > 1e-12 * n1)) {
        st = ec_err(EC_ESINGULAR,
                    "target %d: the least-squares weights sum to %.3g (|x|_1 %.3g), so they cannot "
                    "be normalised to sum 1",
                    j, s, n1);
        goto done;
      }
      for (int i = 0; i < n; i++) X[(size_t)i * k + j] /= s;
    }
    double a1 = 0, a2 = 0;
    for (int i = 0; i < n; i++) {
      double v = X[(size_t)i * k + j];
      a1 += fabs(v);
      a2 += v * v;
    }
    dg[j].norm1 = a1;
    dg[j].norm2 = sqrt(a2);
    dg[j].noise_floor = dg[j].norm2 * u;
    dg[j].warn_narrow = dg[j].norm2 > 5;
    if (diag) dg[j].rel_error = response_error_layout(&L, X + j, k, &targets[j], scratch);
  }
  memcpy(x, X, sizeof *x * n * k);
  if (diag) memcpy(diag, dg, sizeof *diag * k);
done:
  ivsolver_free(&iv);
  ec_freep(&D.A);
  ec_freep(&X);
  ec_freep(&B);
  ec_freep(&scratch);
  ec_freep(&dg);
  layout_free(&L);
  return st;
}
