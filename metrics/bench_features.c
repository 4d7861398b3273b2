/* bench_features: throughput of the metric feature networks (metrics/inception.h,
 * metrics/dinov2.h) on the CPU, in images per second. scripts/bench-metrics runs it next to the
 * same architectures in PyTorch (tools/bench_features_torch.py) with the same thread count and
 * prints the ratio; docs/performance.md has the numbers.
 *
 *   bench_features --net inception|dinov2 [--images N] [--threads T] [--json]
 *
 * The weights are the hash test weights (inception_fid_hash_source, dinov2_hash_source; their
 * values do not change the cost) and the inputs the hash test inputs, already preprocessed
 * (299×299 for Inception, 224×224 for DINOv2). Both networks run images one at a time on
 * OpenBLAS's threads, so one call on N images is timed after an untimed one-image warm-up; set-up
 * (weight generation, BatchNorm folding) is excluded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cli.h"
#include "core/pool.h"
#include "metrics/dinov2.h"
#include "metrics/inception.h"
#include "nn/blas.h"

enum { OPT_NET, OPT_IMAGES, OPT_THREADS, OPT_JSON, OPT_HELP };

static const ec_cli_opt options[] = {
    {"net", 1, OPT_NET, "NAME", "inception (FID Inception-v3) or dinov2 (ViT-L/14)"},
    {"images", 1, OPT_IMAGES, "N", "timed images (default 8)"},
    {"threads", 1, OPT_THREADS, "N", "OpenBLAS threads (default: all online CPUs)"},
    {"json", 0, OPT_JSON, NULL, "one JSON object on stdout"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  ec_cli cli = {.prog = "bench_features", .synopsis = "--net inception|dinov2 [--images N] [--threads N] [--json]",
                .description = "Throughput of the FID Inception-v3 and DINOv2 ViT-L/14 feature networks on the CPU.",
                .opts = options};
  const char *netname = NULL, *arg;
  int64_t images = 8, threads = ec_cpu_count();
  int json = 0;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_NET: netname = arg; break;
    case OPT_IMAGES: st = ec_parse_int_range("--images", arg, 1, 100000, &images); break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &threads); break;
    case OPT_JSON: json = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, "bench_features: %s\n", ec_errmsg());
      return 2;
    }
  }
  int is_inc = netname && !strcmp(netname, "inception"), is_dino = netname && !strcmp(netname, "dinov2");
  if (!is_inc && !is_dino) {
    fprintf(stderr, "bench_features: --net inception or --net dinov2 is required\n");
    return 2;
  }
  nn_blas_set_threads((int)threads);
  const int n = (int)images;
  const size_t side = is_inc ? INCEPTION_FID_SIZE : DINOV2_SIZE, dim = is_inc ? INCEPTION_FID_DIM : DINOV2_DIM;
  const size_t per = 3 * side * side;
  inception_fid *inc = NULL;
  dinov2 *dino = NULL;
  double t0 = now();
  st = is_inc ? inception_fid_create(&inc, inception_fid_hash_source, NULL)
              : dinov2_create(&dino, dinov2_hash_source, NULL);
  if (st) {
    fprintf(stderr, "bench_features: %s\n", ec_errmsg());
    return 1;
  }
  double t_load = now() - t0;
  size_t wsn = is_inc ? inception_fid_workspace(inc) : dinov2_workspace(dino);
  float *ws = malloc(wsn * sizeof(float)), *x = malloc((size_t)n * per * sizeof(float)),
        *feat = malloc((size_t)n * dim * sizeof(float));
  if (!ws || !x || !feat) {
    fprintf(stderr, "bench_features: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < (size_t)n * per; i++) x[i] = is_inc ? inception_fid_hash_input(i) : dinov2_hash_input(i);
  /* Warm-up: one image (first-touch of the workspace, OpenBLAS's thread start). */
  if (is_inc) inception_fid_forward(inc, feat, x, 1, ws, NULL);
  else dinov2_forward(dino, feat, x, 1, ws, NULL);
  t0 = now();
  if (is_inc) inception_fid_forward(inc, feat, x, n, ws, NULL);
  else dinov2_forward(dino, feat, x, n, ws, NULL);
  double dt = now() - t0, ips = n / dt;
  double chk = 0;
  for (size_t i = 0; i < (size_t)n * dim; i++) chk += feat[i];
  const char *label = is_inc ? "inception" : "dinov2";
  if (json)
    printf("{\"impl\": \"edm2c\", \"net\": \"%s\", \"images\": %d, \"threads\": %d, \"seconds\": %.6f, "
           "\"images_per_second\": %.6f, \"load_seconds\": %.3f, \"blas_core\": \"%s\", \"feature_sum\": %.9g}\n",
           label, n, (int)threads, dt, ips, t_load, nn_blas_corename(), chk);
  else
    printf("edm2c %s: %d images, %d threads: %.3f s, %.4f images/s (%.3f s/image; set-up %.2f s; OpenBLAS %s; "
           "feature sum %.9g)\n",
           label, n, (int)threads, dt, ips, dt / n, t_load, nn_blas_corename(), chk);
  free(ws);
  free(x);
  free(feat);
  inception_fid_free(inc);
  dinov2_free(dino);
  return 0;
}
