/* Feature statistics: the mean and unbiased covariance of feature vectors, accumulated in float64
 * and mergeable across batches, files and ranks.
 *
 *   edm2_stats s;
 *   edm2_stats_init(&s, 2048);
 *   edm2_stats_add(&s, feats, n);          // float32 [n, 2048], any number of times
 *   edm2_stats_merge(&s, &other);          // another rank's or file's statistics
 *   edm2_stats_finalize(&s, mu, sigma);    // mu [D], sigma [D, D] full, divided by N − 1
 *
 * Method (why not Σxxᵀ − N μμᵀ): the state is Chan, Golub and LeVeque's (count, mean, M2) with
 * M2 = Σ (x − mean)(x − mean)ᵀ. Each batch is centred on its own mean first (two passes over the
 * batch, in float64, exactly as numpy.cov does), its M2 is one rank-n update (OpenBLAS dsyrk on
 * the upper triangle), and batches combine with Chan's pairwise formula
 *     M2 = M2_a + M2_b + δδᵀ · n_a n_b / n,   δ = mean_b − mean_a.
 * EDM2's one-pass form subtracts N μμᵀ from Σxxᵀ; for features whose mean is large against their
 * spread (|μ| / σ = 10⁴ is not rare for unnormalised activations) the two terms agree in their
 * leading digits and the difference keeps only 16 − 2·log10(|μ|/σ) of them. Centred sums never
 * form those large terms, so the covariance keeps full float64 accuracy (tests/unit/test_stats.c
 * checks both against numpy.cov), and the same merge reduces ranks with MPI.
 *
 * NaN or infinite features are refused (EC_EINVAL naming the row and column): a statistic computed
 * from them would be meaningless, and nothing computed from them must ever be printed. */
#ifndef EDM2C_METRICS_STATS_H
#define EDM2C_METRICS_STATS_H

#include <stdint.h>

#include "core/status.h"

typedef struct {
  int64_t dim;   /* D */
  int64_t count; /* N: feature vectors added */
  double *mean;  /* [D] mean of the vectors added so far */
  double *m2;    /* [D, D] Σ (x − mean)(x − mean)ᵀ; only the upper triangle (j >= i) is kept */
  double *work;  /* [EDM2_STATS_BLOCK, D] centred copy of a batch block */
  double *delta; /* [D] */
} edm2_stats;

/* Rows are centred and added in blocks of at most this many. */
#define EDM2_STATS_BLOCK 1024

ec_status edm2_stats_init(edm2_stats *s, int64_t dim);
void edm2_stats_free(edm2_stats *s);
/* Empties s (keeps D and the buffers). */
void edm2_stats_reset(edm2_stats *s);

/* Adds n feature vectors x [n, D] (row-major float32). Any NaN or Inf fails before anything is
 * added, with "feature <row> (column <col>) is NaN" (rows counted from the first ever added). */
ec_status edm2_stats_add(edm2_stats *s, const float *x, int64_t n);
/* The same for float64 features. */
ec_status edm2_stats_add_f64(edm2_stats *s, const double *x, int64_t n);

/* dst += src (Chan's formula); src is unchanged. Fails with EC_EINVAL when the dimensions differ. */
ec_status edm2_stats_merge(edm2_stats *dst, const edm2_stats *src);

/* mu [D] and the unbiased covariance sigma [D, D] (divided by N − 1, both triangles filled,
 * exactly symmetric). Fails with EC_EINVAL when fewer than 2 vectors were added. */
ec_status edm2_stats_finalize(const edm2_stats *s, double *mu, double *sigma);

#endif
