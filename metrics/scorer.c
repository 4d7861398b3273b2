/* Images → features → statistics, across ranks (metrics/scorer.h). */
#include "metrics/scorer.h"

#include <stdlib.h>
#include <string.h>

#include "metrics/weights.h"

ec_status edm2_metrics_list_parse(const char *opt, const char *s, int want[EDM2_METRIC_COUNT]) {
  memset(want, 0, EDM2_METRIC_COUNT * sizeof *want);
  int n = 0;
  const char *p = s;
  for (;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char item[32];
    edm2_metric m;
    if (len == 0 || len >= sizeof item)
      return ec_err(EC_EINVAL, "%s '%s': expected a comma list of fid and fd_dinov2", opt, s);
    memcpy(item, p, len);
    item[len] = 0;
    if (edm2_metric_parse(item, &m))
      return ec_err(EC_EINVAL, "%s: unknown metric '%s' (known: fid, fd_dinov2)", opt, item);
    want[m] = 1;
    n++;
    if (!e) break;
    p = e + 1;
  }
  return n ? EC_OK : ec_err(EC_EINVAL, "%s: no metric given", opt);
}

void edm2_scorer_free(edm2_scorer *s) {
  for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
    edm2_detector_free(s->det[m]);
    if (s->stats[m].dim) edm2_stats_free(&s->stats[m]);
  }
  free(s->feat);
  memset(s, 0, sizeof *s);
}

ec_status edm2_scorer_init(edm2_scorer *s, const int want[EDM2_METRIC_COUNT], const char *weights_dir) {
  memset(s, 0, sizeof *s);
  ec_status st = EC_OK;
  /* Every missing weights file first, before minutes of loading the other network. */
  for (int m = 0; m < EDM2_METRIC_COUNT && !st; m++) {
    if (!want[m]) continue;
    edm2_weights w;
    if (!(st = edm2_weights_open(&w, (edm2_metric)m, weights_dir))) edm2_weights_close(&w);
  }
  for (int m = 0; m < EDM2_METRIC_COUNT && !st; m++) {
    s->want[m] = want[m];
    if (!want[m]) continue;
    if (!(st = edm2_detector_open(&s->det[m], (edm2_metric)m, weights_dir)))
      st = edm2_stats_init(&s->stats[m], edm2_metric_dim((edm2_metric)m));
  }
  if (!st && !(s->feat = malloc(2048 * sizeof(float)))) st = ec_err(EC_ENOMEM, "out of memory");
  if (st) edm2_scorer_free(s);
  return st;
}

ec_status edm2_scorer_add(edm2_scorer *s, const uint8_t *img, int n, int C, int H, int W, const char *what) {
  const size_t M = (size_t)C * H * W;
  for (int i = 0; i < n; i++)
    for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
      if (!s->want[m]) continue;
      ec_status st = edm2_detector_features(s->det[m], img + i * M, 1, C, H, W, s->feat);
      if (!st) st = edm2_stats_add(&s->stats[m], s->feat, 1);
      if (st)
        return ec_err_context(st, "%s features%s%s", edm2_metric_name((edm2_metric)m), what ? " of " : "",
                              what ? what : "");
    }
  s->added += n;
  return EC_OK;
}

void edm2_scorer_reset(edm2_scorer *s) {
  for (int m = 0; m < EDM2_METRIC_COUNT; m++)
    if (s->want[m]) edm2_stats_reset(&s->stats[m]);
  s->added = 0;
}

/* Upper triangle of m2 += n·δδᵀ. */
static void add_outer(double *m2, const double *delta, double n, int64_t D) {
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i; j < D; j++) m2[i * D + j] += n * delta[i] * delta[j];
}

ec_status edm2_scorer_reduce(edm2_scorer *s, const edm2_dist *d) {
  if (d->world <= 1) return EC_OK;
  for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
    if (!s->want[m]) continue;
    edm2_stats *t = &s->stats[m];
    const int64_t D = t->dim;
    double *sum = calloc((size_t)D + 1, sizeof *sum);
    if (!sum) return ec_err(EC_ENOMEM, "out of memory");
    sum[0] = (double)t->count;
    for (int64_t i = 0; i < D; i++) sum[1 + i] = (double)t->count * t->mean[i];
    ec_status st = edm2_dist_allreduce_sum_f64(d, sum, (size_t)D + 1);
    if (!st) {
      const double N = sum[0];
      for (int64_t i = 0; i < D; i++) {
        double g = N > 0 ? sum[1 + i] / N : 0;
        t->delta[i] = t->mean[i] - g;
        t->mean[i] = g;
      }
      for (int64_t i = 0; i < D; i++) /* the lower triangle is not kept: zero it so the sum is clean */
        for (int64_t j = 0; j < i; j++) t->m2[i * D + j] = 0;
      add_outer(t->m2, t->delta, (double)t->count, D);
      st = edm2_dist_allreduce_sum_f64(d, t->m2, (size_t)(D * D));
      t->count = (int64_t)N;
    }
    free(sum);
    if (st) return st;
  }
  return EC_OK;
}

ec_status edm2_scorer_result(const edm2_scorer *s, edm2_stats_file *f) {
  memset(f, 0, sizeof *f);
  f->num_images = -1;
  for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
    if (!s->want[m]) continue;
    const edm2_stats *t = &s->stats[m];
    if (t->count < 2) {
      edm2_stats_file_free(f);
      return ec_err(EC_EINVAL, "%lld image%s: statistics need at least 2 images", (long long)t->count,
                    t->count == 1 ? "" : "s");
    }
    ec_status st = edm2_moments_alloc(&f->metric[m], t->dim);
    if (!st) st = edm2_stats_finalize(t, f->metric[m].mu, f->metric[m].sigma);
    if (st) {
      edm2_stats_file_free(f);
      return st;
    }
    f->metric[m].num_images = t->count;
    f->num_images = t->count;
  }
  return EC_OK;
}
