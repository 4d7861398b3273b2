/* Feature statistics in float64 with Chan's pairwise merge; see stats.h. */
#include "metrics/stats.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"

ec_status edm2_stats_init(edm2_stats *s, int64_t dim) {
  memset(s, 0, sizeof *s);
  if (dim < 1 || dim > (1 << 16)) return ec_err(EC_EINVAL, "feature dimension %lld out of range", (long long)dim);
  s->dim = dim;
  s->mean = ec_calloc((size_t)dim, sizeof(double));
  s->m2 = ec_calloc((size_t)(dim * dim), sizeof(double));
  s->work = ec_mallocarray((size_t)(EDM2_STATS_BLOCK * dim), sizeof(double));
  s->delta = ec_mallocarray((size_t)dim, sizeof(double));
  if (!s->mean || !s->m2 || !s->work || !s->delta) {
    edm2_stats_free(s);
    return EC_ENOMEM;
  }
  return EC_OK;
}

void edm2_stats_free(edm2_stats *s) {
  ec_freep(&s->mean);
  ec_freep(&s->m2);
  ec_freep(&s->work);
  ec_freep(&s->delta);
  s->count = 0;
}

void edm2_stats_reset(edm2_stats *s) {
  s->count = 0;
  memset(s->mean, 0, (size_t)s->dim * sizeof(double));
  memset(s->m2, 0, (size_t)(s->dim * s->dim) * sizeof(double));
}

/* Folds a block's (nb, mean_b, M2_b) into s, where M2_b has already been added to s->m2's upper
 * triangle: mean += δ nb / n and M2 += δδᵀ na nb / n. */
static void fold_mean(edm2_stats *s, int64_t nb, const double *mean_b) {
  const int64_t D = s->dim, na = s->count, n = na + nb;
  if (na == 0) {
    memcpy(s->mean, mean_b, (size_t)D * sizeof(double));
  } else {
    for (int64_t j = 0; j < D; j++) s->delta[j] = mean_b[j] - s->mean[j];
    cblas_dsyr(CblasRowMajor, CblasUpper, (int)D, (double)na * (double)nb / (double)n, s->delta, 1,
               s->m2, (int)D);
    const double f = (double)nb / (double)n;
    for (int64_t j = 0; j < D; j++) s->mean[j] += s->delta[j] * f;
  }
  s->count = n;
}

#define DEFINE_ADD(NAME, T)                                                                        \
  ec_status NAME(edm2_stats *s, const T *x, int64_t n) {                                           \
    const int64_t D = s->dim;                                                                      \
    if (n < 0) return ec_err(EC_EINVAL, "negative number of features (%lld)", (long long)n);     \
    for (int64_t i = 0; i < n; i++)                                                                \
      for (int64_t j = 0; j < D; j++)                                                              \
        if (!isfinite(x[i * D + j]))                                                               \
          return ec_err(EC_EINVAL,                                                                 \
                        "feature %lld (column %lld) is %s: refusing to compute statistics from "   \
                        "it",                                                                      \
                        (long long)(s->count + i), (long long)j,                                   \
                        isnan(x[i * D + j]) ? "NaN" : "infinite");                                \
    for (int64_t i0 = 0; i0 < n; i0 += EDM2_STATS_BLOCK) {                                         \
      const int64_t nb = n - i0 < EDM2_STATS_BLOCK ? n - i0 : EDM2_STATS_BLOCK;                    \
      const T *xb = x + i0 * D;                                                                    \
      double *mb = s->delta; /* block mean; fold_mean copies it before reusing delta */            \
      memset(mb, 0, (size_t)D * sizeof(double));                                                   \
      for (int64_t i = 0; i < nb; i++)                                                             \
        for (int64_t j = 0; j < D; j++) mb[j] += (double)xb[i * D + j];                            \
      for (int64_t j = 0; j < D; j++) mb[j] /= (double)nb;                                         \
      for (int64_t i = 0; i < nb; i++)                                                             \
        for (int64_t j = 0; j < D; j++) s->work[i * D + j] = (double)xb[i * D + j] - mb[j];        \
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)D, (int)nb, 1.0, s->work, (int)D,    \
                  1.0, s->m2, (int)D);                                                             \
      /* fold_mean needs delta as scratch: keep the block mean in the first work row. */           \
      memcpy(s->work, mb, (size_t)D * sizeof(double));                                             \
      fold_mean(s, nb, s->work);                                                                   \
    }                                                                                              \
    return EC_OK;                                                                                  \
  }

DEFINE_ADD(edm2_stats_add, float)
DEFINE_ADD(edm2_stats_add_f64, double)

ec_status edm2_stats_merge(edm2_stats *dst, const edm2_stats *src) {
  const int64_t D = dst->dim;
  if (src->dim != D)
    return ec_err(EC_EINVAL, "cannot merge statistics of dimension %lld into dimension %lld",
                  (long long)src->dim, (long long)D);
  if (src == dst) return ec_err(EC_EINVAL, "cannot merge statistics with themselves");
  if (src->count == 0) return EC_OK;
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i; j < D; j++) dst->m2[i * D + j] += src->m2[i * D + j];
  fold_mean(dst, src->count, src->mean);
  return EC_OK;
}

ec_status edm2_stats_finalize(const edm2_stats *s, double *mu, double *sigma) {
  const int64_t D = s->dim;
  if (s->count < 2)
    return ec_err(EC_EINVAL, "fewer than 2 images (%lld): the covariance is undefined",
                  (long long)s->count);
  const double f = 1.0 / (double)(s->count - 1);
  memcpy(mu, s->mean, (size_t)D * sizeof(double));
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i; j < D; j++) sigma[i * D + j] = sigma[j * D + i] = s->m2[i * D + j] * f;
  return EC_OK;
}
