/* Post-hoc EMA math in float64: σ_rel ↔ γ, the trainer's per-step β, response profiles (EDM2's
 * power function and a fixed half-life exponential), their inner products, the Gauss–Legendre
 * panels used for integrals without a closed form, and the closed-form response error.
 *
 * Times are image counts (int64) and are never rounded; only their ratios and differences enter
 * the formulas, so any time unit gives the same weights. The math follows Karras et al. 2024,
 * Appendix C (Eqs. 121–127, 151) and docs/posthoc-solver.md.
 *
 * Profiles (each has unit mass on [0, t]):
 *   power (t, γ):        p(τ) = (γ+1) τ^γ / t^(γ+1),                     0 ≤ τ ≤ t
 *   exponential (t, h):  p(τ) = C exp(−k (t − τ)),  k = ln 2 / h,         0 ≤ τ ≤ t
 *                        C = k / (1 − exp(−k t)).
 * The exponential profile is what an EMA with a constant β = 2^(−1/h) per image averages, cut off
 * at τ = 0 and renormalised to unit mass. A classic EMA instead puts the missing mass
 * exp(−k t) on the initial weights θ(0) (paper Eq. 110); the two differ by that mass, which is
 * negligible once h ≪ t. Snapshots cannot represent a point mass at τ = 0, so the truncated form
 * is the one a reconstruction can aim for. */
#ifndef EDM2C_POSTHOC_PHEMA_MATH_H
#define EDM2C_POSTHOC_PHEMA_MATH_H

#include <stdint.h>

#include "core/status.h"

/* 12^-0.5 rounded to double; it is the largest admissible double (checked exactly in the
 * golden generator). The admissibility test is 1 − 12σ² > 0 (γ > 0), evaluated without rounding
 * error; for this σ it gives γ ≈ 6e-17. */
#define PHEMA_SIGMA_MAX 0.28867513459481287
/* Largest accepted exponent (σ_rel ≈ 1e-5). The inner products stay finite far beyond it; the
 * cap only catches unit mistakes such as passing an iteration count as γ. */
#define PHEMA_GAMMA_MAX 1e5

/* γ for a relative standard deviation: the unique positive root of
 * γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) = 0 (paper Eq. 126). Relative error ≤ 3e-15 against
 * 60-digit roots for every double σ in [1e-4, 12^-0.5), including γ → 0 at the upper end.
 * EC_EINVAL (with the admissible range in the message) unless 0 < σ_rel < 12^-0.5 and the
 * resulting γ ≤ PHEMA_GAMMA_MAX. */
ec_status phema_sigma_to_gamma(double sigma_rel, double *gamma);

/* σ_rel = sqrt((γ+1) / ((γ+2)² (γ+3))) (paper Eq. 123). */
double phema_gamma_to_sigma(double gamma);

/* The trainer's EMA coefficient after a step of dt images that ends at image t:
 * β = (1 − dt/t)^(γ+1) (paper Eq. 127), evaluated as exp((γ+1) log1p(−dt/t)) so that the
 * 8 Mi-image regime (β ≈ 0.996, 1 − β small) keeps full relative accuracy in 1 − β.
 * Requires 0 < dt ≤ t (asserted); dt = t gives β = 0 (the EMA starts at the current weights). */
double phema_beta(double gamma, int64_t t, int64_t dt);

/* log(a / b) for positive integers, via log1p of the exact difference when a and b are close, so
 * that (a/b)^γ stays accurate for large γ. */
double phema_log_ratio(int64_t a, int64_t b);

enum { PHEMA_POWER = 0, PHEMA_EXP = 1 };

/* A response profile: a stored snapshot's EMA or a reconstruction target. */
typedef struct {
  int kind;         /* PHEMA_POWER or PHEMA_EXP */
  double sigma_rel; /* PHEMA_POWER: σ_rel, kept for messages; the math uses gamma */
  double gamma;     /* PHEMA_POWER: exponent γ, 0 < γ ≤ PHEMA_GAMMA_MAX */
  double half_life; /* PHEMA_EXP: half-life in images, > 0 */
  int64_t t;        /* end time in images, > 0 */
} phema_profile;

/* Constructors; each validates its arguments (EC_EINVAL with a message naming the bad value). */
ec_status phema_profile_power(phema_profile *p, int64_t t, double sigma_rel);
ec_status phema_profile_power_gamma(phema_profile *p, int64_t t, double gamma);
ec_status phema_profile_exp(phema_profile *p, int64_t t, double half_life);
/* Validates a filled-in profile (kind, t > 0, γ or half-life in range). */
ec_status phema_profile_check(const phema_profile *p);

/* ⟨p_a, p_b⟩ = ∫ p_a p_b dτ for any combination of kinds; the profiles must be valid.
 *   power·power: paper Eq. 151, (γa+1)(γb+1)/(γa+γb+1) · r^e / max(ta, tb), r = ta/tb,
 *                e = γb if ta < tb else −γa, with r^e evaluated as exp(e·log r);
 *   exp·exp and exp·exp self: closed forms with expm1 (self: (k/2) / tanh(k t / 2));
 *   exp·power: C (γ+1) (m/tp)^(γ+1) e^(−k(te−m)) J(γ, k m), m = min(te, tp), where
 *              J(γ, a) = ∫₀¹ u^γ e^(−a(1−u)) du is integrated with graded Gauss–Legendre panels
 *              (relative error ~1e-15; checked against a 60-digit series in the golden file).
 * Prefactors are combined in logs, so γ up to PHEMA_GAMMA_MAX and any time ratio neither
 * overflow nor lose accuracy; results far below DBL_MIN flush to 0. */
double phema_inner(const phema_profile *a, const phema_profile *b);
double phema_norm2(const phema_profile *a); /* ⟨a, a⟩ */
double phema_inner_power(int64_t ta, double gamma_a, int64_t tb, double gamma_b);

/* Relative L2 error ‖p* − p_r‖ / ‖p_r‖ (not squared) of the weights x (x[i * stride]) on the
 * stored power profiles (t[i], gamma[i]), from the closed form
 *   ‖p* − p_r‖² = ⟨p_r,p_r⟩ − 2 xᵀb + xᵀA x,   A_ij = ⟨p_i,p_j⟩, b_i = ⟨p_i,p_r⟩,   O(n²).
 * The three terms are O(1) relative to ⟨p_r,p_r⟩ and cancel, so results below
 * sqrt(~1e-15 · (⟨p_r,p_r⟩ + 2|x|ᵀ|b| + |x|ᵀA|x|) / ⟨p_r,p_r⟩), i.e. ~3e-8 for ‖x‖ ≈ 1, are
 * noise. *floor (may be NULL) receives that estimate. phema_response_error() in solve.h
 * evaluates the same quantity without cancellation. */
double phema_response_error_closed(const int64_t *t, const double *gamma, int n, const double *x,
                                   int stride, const phema_profile *r, double *floor);

/* Gauss–Legendre panels for ∫ f(v) dv over [v0, v1] ⊂ [0, 1], u = 1 − v. The integrands here
 * are products of u^g = exp(g ln u), expm1 terms and e^(−a v): analytic except at u = 0, and
 * decaying at least like e^(−λ v). Panels start 4/λ wide at v0 and double (so each carries
 * λ·width ≤ 4·2^i over a mass ≤ e^(−4(2^i − 1))), never get wider than half their distance to
 * u = 0 (so the branch point lies ≥ 3 half-widths away and 16 nodes give ~1e-25), stop once
 * λ(v − v0) > 800 for the slowest rate λ, and when u1 = 0 stop at u < 1e-18. The caller passes both
 * coordinates of each end (u0 = 1 − v0, u1 = 1 − v1) computed from exact integers, so nodes near u
 * = 0 and near v = 0 both keep full relative accuracy. */
#define PHEMA_QUAD_ORDER 16
typedef struct {
  double v;   /* node, v = 1 − u */
  double lnu; /* ln u, from whichever of u and v is accurate there */
  double w;   /* weight (for dv) */
} phema_node;
typedef struct {
  double v0, v1, u1, slow, va, ua, width;
  int panels, done;
} phema_quad;
/* fast: the largest decay or variation rate among the integrand's factors (sets the first panel,
 * 4/fast wide); slow: the smallest decay rate (sets the cut-off λ(v − v0) > 800). */
void phema_quad_init(phema_quad *q, double v0, double u0, double v1, double u1, double fast,
                     double slow);
/* Writes the next panel's PHEMA_QUAD_ORDER nodes; returns 0 (and writes nothing) when done. */
int phema_quad_next(phema_quad *q, phema_node *nodes);

/* J(γ, a) = ∫₀¹ u^γ e^(−a(1−u)) du for γ ≥ 0, a ≥ 0 (the exponential·power kernel). */
double phema_exp_power_kernel(double gamma, double a);

#endif
