/* Shared parts of edm2-metrics' commands (metrics/cmd_common.h). */
#include "metrics/cmd_common.h"

#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "metrics/frechet.h"

void metrics_common_default(metrics_common *c) {
  memset(c, 0, sizeof *c);
  c->want[EDM2_METRIC_FID] = c->want[EDM2_METRIC_FD_DINOV2] = 1;
  c->threads = ec_cpu_count();
}

ec_status metrics_ref_load(const char *path, const int want[EDM2_METRIC_COUNT], edm2_stats_file *f,
                           edm2_moments *ref[EDM2_METRIC_COUNT]) {
  ec_status st = edm2_stats_read(path, f);
  if (st) return st;
  for (int m = 0; m < EDM2_METRIC_COUNT; m++) ref[m] = NULL;
  if (f->is_npz) {
    int nwant = want[0] + want[1];
    edm2_metric m = f->unnamed.dim == edm2_metric_dim(EDM2_METRIC_FD_DINOV2) ? EDM2_METRIC_FD_DINOV2 : EDM2_METRIC_FID;
    if (f->unnamed.dim != edm2_metric_dim(m))
      st = ec_err(EC_EINVAL, "%s: %lld-dimensional statistics fit neither fid (2048) nor fd_dinov2 (1024)", path,
                  (long long)f->unnamed.dim);
    else if (nwant > 1 || !want[m])
      st = ec_err(EC_EINVAL, "%s holds one unnamed set of %lld-dimensional statistics (%s); say --metrics %s", path,
                  (long long)f->unnamed.dim, edm2_metric_name(m), edm2_metric_name(m));
    else
      ref[m] = &f->unnamed;
  } else {
    for (int m = 0; m < EDM2_METRIC_COUNT && !st; m++) {
      if (!want[m]) continue;
      edm2_moments *r = &f->metric[m];
      if (!r->dim)
        st = ec_err(EC_EINVAL, "mixed metrics: %s holds no %s statistics (it has %s); choose with --metrics", path,
                    edm2_metric_name((edm2_metric)m), f->metric[1 - m].dim ? edm2_metric_name((edm2_metric)(1 - m)) : "none");
      else if (r->dim != edm2_metric_dim((edm2_metric)m))
        st = ec_err(EC_EINVAL, "%s:/%s has %lld-dimensional statistics, %s features are %lld-dimensional", path,
                    edm2_metric_name((edm2_metric)m), (long long)r->dim, edm2_metric_name((edm2_metric)m),
                    (long long)edm2_metric_dim((edm2_metric)m));
      else
        ref[m] = r;
    }
  }
  if (st) edm2_stats_file_free(f);
  return st;
}

ec_status metrics_report(const edm2_stats_file *got, edm2_moments *const ref[EDM2_METRIC_COUNT],
                         const int want[EDM2_METRIC_COUNT], const metrics_common *c, const edm2_dist *d) {
  double fd[EDM2_METRIC_COUNT] = {0};
  for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
    if (!want[m]) continue;
    const edm2_moments *a = &got->metric[m];
    edm2_fd_result r;
    ec_status st = edm2_frechet(a->dim, a->mu, a->sigma, ref[m]->mu, ref[m]->sigma, &r);
    if (st) return st;
    fd[m] = r.fd;
  }
  if (d->rank != 0) return EC_OK;
  if (c->json) {
    printf("{");
    for (int m = 0; m < EDM2_METRIC_COUNT; m++)
      if (want[m]) printf("\"%s\": %.17g, ", edm2_metric_name((edm2_metric)m), fd[m]);
    printf("\"num_images\": %lld}\n", (long long)got->num_images);
  } else {
    for (int m = 0; m < EDM2_METRIC_COUNT; m++)
      if (want[m]) printf("%s = %.4f\n", edm2_metric_name((edm2_metric)m), fd[m]);
  }
  fflush(stdout);
  return EC_OK;
}
