/* The Fréchet distance through symmetric eigendecompositions; see frechet.h. */
#include "metrics/frechet.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"

double edm2_frechet_rel_tol(int64_t D) { return (double)D * DBL_EPSILON; }

static ec_status check_finite(const char *what, const double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return ec_err(EC_EINVAL, "%s holds %s at element %lld: refusing to compute a distance from it",
                    what, isnan(x[i]) ? "NaN" : "an infinity", (long long)i);
  return EC_OK;
}

ec_status edm2_frechet(int64_t D, const double *mu1, const double *sigma1, const double *mu2,
                       const double *sigma2, edm2_fd_result *r) {
  memset(r, 0, sizeof *r);
  if (D < 1 || D > (1 << 16)) return ec_err(EC_EINVAL, "Fréchet distance: dimension %lld out of range", (long long)D);
  ec_status st;
  if ((st = check_finite("mu of the first statistics", mu1, D)) ||
      (st = check_finite("sigma of the first statistics", sigma1, D * D)) ||
      (st = check_finite("mu of the second statistics", mu2, D)) ||
      (st = check_finite("sigma of the second statistics", sigma2, D * D)))
    return st;

  double *V = ec_mallocarray((size_t)(D * D), sizeof(double));
  double *W = ec_mallocarray((size_t)(D * D), sizeof(double));
  double *M = ec_mallocarray((size_t)(D * D), sizeof(double));
  double *lam = ec_mallocarray((size_t)D, sizeof(double));
  double *ev = ec_mallocarray((size_t)D, sizeof(double));
  if (!V || !W || !M || !lam || !ev) {
    st = EC_ENOMEM;
    goto done;
  }

  /* Exactly symmetric copies from the upper triangles. */
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i; j < D; j++) V[i * D + j] = V[j * D + i] = sigma1[i * D + j];

  double mean_term = 0, tr1 = 0, tr2 = 0;
  for (int64_t i = 0; i < D; i++) {
    double d = mu1[i] - mu2[i];
    mean_term += d * d;
    tr1 += sigma1[i * D + i];
    tr2 += sigma2[i * D + i];
  }

  /* 1. Σ₁ = V Λ Vᵀ, eigenvalues ascending, eigenvectors in the columns of V. */
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)D, V, (lapack_int)D, lam);
  if (info != 0) {
    st = ec_err(info < 0 ? EC_EINVAL : EC_ESINGULAR,
                "Fréchet distance: the eigendecomposition of sigma failed (dsyevd info %d)", (int)info);
    goto done;
  }
  r->min_eig1 = lam[0];
  r->max_eig1 = lam[D - 1];
  const double tol1 = edm2_frechet_rel_tol(D) * fmax(lam[D - 1], 0);
  int64_t first = 0; /* columns first .. D−1 of V are kept */
  while (first < D && !(lam[first] > tol1)) first++;
  const int64_t rk = D - first;
  r->rank1 = rk;
  double trace_sqrt = 0;
  if (rk > 0) {
    /* 2. Vr = V[:, first:], W = Σ₂ Vr (D × rk), M = Vrᵀ W (rk × rk), scaled by √λ both sides. */
    cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, (int)D, (int)rk, 1.0, sigma2, (int)D,
                V + first, (int)D, 0.0, W, (int)rk);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rk, (int)rk, (int)D, 1.0, V + first,
                (int)D, W, (int)rk, 0.0, M, (int)rk);
    for (int64_t i = 0; i < rk; i++) lam[first + i] = sqrt(lam[first + i]);
    for (int64_t i = 0; i < rk; i++)
      for (int64_t j = i; j < rk; j++) {
        double m = 0.5 * (M[i * rk + j] + M[j * rk + i]) * lam[first + i] * lam[first + j];
        M[i * rk + j] = M[j * rk + i] = m;
      }
    /* 3. eigenvalues of M, clamped, summed as square roots (ascending: small ones first). */
    info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)rk, M, (lapack_int)rk, ev);
    if (info != 0) {
      st = ec_err(info < 0 ? EC_EINVAL : EC_ESINGULAR,
                  "Fréchet distance: the eigendecomposition of the product failed (dsyevd info %d)",
                  (int)info);
      goto done;
    }
    const double tolm = edm2_frechet_rel_tol(rk) * fmax(ev[rk - 1], 0);
    for (int64_t i = 0; i < rk; i++)
      if (ev[i] > tolm) {
        trace_sqrt += sqrt(ev[i]);
        r->rank_m++;
      }
  }
  r->mean_term = mean_term;
  r->trace1 = tr1;
  r->trace2 = tr2;
  r->trace_sqrt = trace_sqrt;
  r->fd_raw = mean_term + tr1 + tr2 - 2 * trace_sqrt;
  r->fd = r->fd_raw > 0 ? r->fd_raw : 0;
  st = EC_OK;
done:
  ec_freep(&V);
  ec_freep(&W);
  ec_freep(&M);
  ec_freep(&lam);
  ec_freep(&ev);
  return st;
}
