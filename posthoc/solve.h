/* Post-hoc EMA least-squares solver: weights X[N×K] that combine N stored power-function
 * snapshots (t_i, γ_i) into K target profiles (power or exponential), with diagnostics.
 *
 *   phema_solve_opts o;
 *   phema_solve_opts_init(&o);                       // AUTO method, Σx = 1 columns, no Tikhonov
 *   phema_profile r[2];
 *   phema_profile_power(&r[0], t_last, 0.13);
 *   phema_profile_exp(&r[1], t_last, 50e6);          // half-life 50 M images
 *   st = phema_solve(t, gamma, n, r, 2, &o, x, diag); // x: row-major n×2, x[i*2 + k]
 *
 * Methods (docs/posthoc-solver.md has the math and measured accuracy):
 *   INTERVAL  exact O(N) decomposition of posthoc-reference §3.2: when every snapshot time carries
 *             the same set of P profiles, the least-squares problem splits into one P×P problem
 *             per interval (t_{j−1}, t_j], solved in a divided-difference basis of u = τ/t_j that
 *             stays well conditioned, then differenced into weights. No LAPACK.
 *   CHOLESKY  dense Gram matrix A and right-hand sides B from the closed forms, LAPACKE
 *             dpotrf/dpotrs; falls back to LSTSQ when A is not numerically positive definite
 *             (dpotrf fails or dpocon's rcond < N·eps).
 *   LSTSQ     LAPACKE dgelsd: rank-revealing SVD, minimum-norm solution (rcond N·eps).
 *   LU        LAPACKE dgesv: EDM2's np.linalg.solve, kept as the baseline for comparisons.
 *   AUTO      INTERVAL for regular layouts (any P ≥ 1, including one profile per time), else
 *             CHOLESKY (with its LSTSQ fallback).
 *
 * Stored profiles may come in any order; X rows follow the input order. Snapshots later than a
 * target's time are allowed: when the target time is a snapshot time they get weight 0 (exactly
 * so in INTERVAL). Callers that want EDM2's behaviour drop them, as reconstruct_phema.py does.
 *
 * Input rules (EC_EINVAL, one message naming the offending entry): n ≥ 1, k ≥ 1; stored times
 * > 0 (the caller drops t ≤ 0 snapshots, as EDM2 does: a profile ending at 0 is 0/0); stored
 * γ in (0, PHEMA_GAMMA_MAX]; no two stored profiles with the same time and a γ equal to within
 * 1e-12 relative (the Gram matrix would be singular); valid targets. A target may end after the
 * last snapshot: the weights then fit its part up to the last snapshot, and rel_error includes
 * the part no snapshot covers. EC_ESINGULAR: dgesv finds A singular, dgelsd does not converge, or a column's weights
 * sum to ~0 so Σx = 1 normalisation is impossible. */
#ifndef EDM2C_POSTHOC_SOLVE_H
#define EDM2C_POSTHOC_SOLVE_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "posthoc/phema_math.h"

typedef enum {
  PHEMA_METHOD_AUTO = 0,
  PHEMA_METHOD_INTERVAL = 1,
  PHEMA_METHOD_CHOLESKY = 2,
  PHEMA_METHOD_LSTSQ = 3,
  PHEMA_METHOD_LU = 4,
} phema_method;

/* "auto", "interval", "cholesky", "lstsq", "lu". */
const char *phema_method_name(phema_method m);

/* Most profiles per snapshot time that the interval solver takes (more go to the dense path). */
#define PHEMA_MAX_P 6

/* opts.tikhonov value: choose λ from the snapshot dtype (see below). */
#define PHEMA_TIKHONOV_AUTO (-1.0)

typedef struct {
  phema_method method; /* default AUTO */
  /* 0 (default): divide each target's weights by their sum, as EDM2 does after its solve, so the
   * reconstruction's mean parameter scale is exact. 1: the raw least-squares solution. */
  int raw;
  /* 0 (default): off. λ > 0: solve (A + λ·λ_max(A)·I) x = b with dense Cholesky for every target.
   * PHEMA_TIKHONOV_AUTO: λ = 1e-6 for targets whose unregularised ‖x‖₂ > 5 when snapshots are
   * fp16 or bf16, else off. Regularising never lowers the response-function error; it trades it
   * for less amplification of snapshot rounding, which pays only for narrow targets on 16-bit
   * snapshots (posthoc-reference §3.4.4: σ_rel 0.015 at n = 256 from fp16 snapshots, weight
   * error 8.5e-3 exact vs 6.9e-4 with λ = 1e-6; with fp32 snapshots no λ helps). */
  double tikhonov;
  /* Precision of the stored snapshots, for noise_floor and the automatic λ (default EC_F16, as
   * EDM2 stores them). */
  ec_dtype snapshot_dtype;
} phema_solve_opts;

void phema_solve_opts_init(phema_solve_opts *o);

/* Per-target diagnostics. */
typedef struct {
  phema_method method; /* the method that produced this column, after any fallback */
  double rel_error; /* ‖p* − p_r‖ / ‖p_r‖ of the returned weights (relative L2, not squared),
                     * evaluated exactly by phema_response_error() */
  double cond;      /* condition number of the Gram matrix A of the stored profiles */
  int cond_norm;    /* 1: LAPACK 1-norm estimate (dpocon, dgecon); 2: 2-norm (singular values
                     * for LSTSQ, power iteration on A and A⁻¹ for INTERVAL); 0: not computed */
  double norm1, norm2; /* ‖x‖₁, ‖x‖₂ of the returned weights */
  double sum_raw;      /* Σx of the least-squares solution before normalisation */
  double tikhonov;     /* λ that was used (0: none) */
  int rank;            /* numerical rank of A for LSTSQ, N otherwise */
  /* ≈ ‖x‖₂ × unit roundoff of snapshot_dtype (fp16 2^-11, bf16 2^-8, fp32 2^-24, fp64 2^-53):
   * the weight error that independent snapshot rounding adds to the reconstruction, relative to
   * the parameter scale. */
  double noise_floor;
  int warn_narrow; /* ‖x‖₂ > 5: the target is much narrower than the narrowest stored profile */
} phema_diag;

/* Solves for X (row-major n×k, x[i*k + j], written only on success) and, when diag is not NULL,
 * fills diag[0..k-1]. t: [n] snapshot times in images; gamma: [n] their exponents (use
 * phema_sigma_to_gamma for σ_rel). */
ec_status phema_solve(const int64_t *t, const double *gamma, int n, const phema_profile *targets,
                      int k, const phema_solve_opts *opts, double *x, phema_diag *diag);

/* 1 when every distinct time carries the same set of P ≤ PHEMA_MAX_P exponents (the interval
 * solver's layout), with *p set to P; 0 otherwise. Inputs must be valid (no duplicates). */
int phema_layout_regular(const int64_t *t, const double *gamma, int n, int *p);

/* Relative L2 response error ‖Σ x_i p_i − p_r‖ / ‖p_r‖ of any weights (x[i*stride]) for any
 * layout, without the cancellation of the closed form: on each interval between consecutive
 * snapshot times the reconstruction is Σ_g β_g τ^g, so the residual is evaluated pointwise and
 * its square integrated with Gauss–Legendre panels. Relative accuracy ~1e-10 for errors down to
 * ~1e-12 (see docs/posthoc-solver.md). A target ending after the last snapshot counts its
 * uncovered tail, ∫ p_r² over (t_last, t_r], in full. */
ec_status phema_response_error(const int64_t *t, const double *gamma, int n, const double *x,
                               int stride, const phema_profile *r, double *rel_error);

/* Unit roundoff of a snapshot dtype (2^-11 for EC_F16, ...); 0 for non-float types. */
double phema_dtype_roundoff(ec_dtype t);

#endif
