/* The Fréchet distance between two Gaussians, in float64 through symmetric eigendecompositions:
 *
 *   FD = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½
 *
 * Method (docs/metrics.md):
 *   1. Σ₁ = V Λ Vᵀ (LAPACKE_dsyevd, eigenvectors); eigenvalues λ ≤ D·ε·λ_max are set to 0 (they
 *      are below what float64 can resolve in Σ₁, and most are the rounding noise of the zero
 *      eigenvalues of a rank-deficient Σ₁, which can come out slightly negative), and the
 *      columns of V with λ = 0 are dropped (r columns remain);
 *   2. M = Λ^½ (Vᵀ Σ₂ V) Λ^½ (r × r), made exactly symmetric; M = Vᵀ (Σ₁^½ Σ₂ Σ₁^½) V, so it
 *      has the same eigenvalues as Σ₁^½ Σ₂ Σ₁^½ (an orthogonal similarity), at two GEMMs instead
 *      of three and in the subspace where Σ₁ lives;
 *   3. the eigenvalues μᵢ of M (dsyevd, values only), clamped the same way, give
 *      tr (Σ₁^½ Σ₂ Σ₁^½)^½ = Σ √μᵢ.
 * No general matrix square root, no complex arithmetic, no eigenvalues of the non-symmetric
 * Σ₁Σ₂. It agrees with scipy.linalg.sqrtm's form (pytorch-fid) on well-conditioned inputs and
 * stays finite, real and non-negative on singular ones, where sqrtm fails. */
#ifndef EDM2C_METRICS_FRECHET_H
#define EDM2C_METRICS_FRECHET_H

#include <stdint.h>

#include "core/status.h"

typedef struct {
  double fd;         /* the distance, max(0, raw) */
  double fd_raw;     /* before clamping at 0 (can be −1e-13 · tr for identical statistics) */
  double mean_term;  /* |μ₁ − μ₂|² */
  double trace1;     /* tr Σ₁ */
  double trace2;     /* tr Σ₂ */
  double trace_sqrt; /* tr (Σ₁^½ Σ₂ Σ₁^½)^½ */
  double min_eig1;   /* smallest eigenvalue of Σ₁ as computed (before clamping) */
  double max_eig1;   /* largest eigenvalue of Σ₁ */
  int64_t rank1;     /* eigenvalues of Σ₁ kept (> D·ε·λ_max); < D means Σ₁ is singular */
  int64_t rank_m;    /* eigenvalues of M kept */
} edm2_fd_result;

/* Σ₁ and Σ₂ are full D × D row-major symmetric matrices (only their upper triangles are read:
 * callers check symmetry). Fails with EC_EINVAL on NaN or Inf in any input, EC_ENOMEM, or
 * EC_ESINGULAR if LAPACK's eigensolver does not converge. */
ec_status edm2_frechet(int64_t D, const double *mu1, const double *sigma1, const double *mu2,
                       const double *sigma2, edm2_fd_result *r);

/* The eigenvalue threshold, relative to the largest eigenvalue: D·ε (as numpy.linalg.matrix_rank). */
double edm2_frechet_rel_tol(int64_t D);

#endif
