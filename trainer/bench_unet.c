/* bench_unet: training throughput of the CPU reference network (forward in training mode, the
 * EDM2 loss, backward), in images per second. scripts/bench-unet runs it next to the reference
 * implementation in PyTorch (tools/bench_unet_torch.py) with the same thread count and prints the
 * ratio; docs/performance.md has the numbers.
 *
 *   bench_unet --preset fmnist --batch 32 [--iters 10] [--warmup 2] [--threads 2] [--json]
 *
 * Inputs are random (σ log-normal as in training, one-hot labels); the timing excludes set-up. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "core/pool.h"
#include "nn/blas.h"
#include "core/rng.h"
#include "trainer/ema.h"
#include "trainer/optim.h"
#include "trainer/pass.h"
#include "trainer/precond.h"

enum { OPT_PRESET, OPT_BATCH, OPT_ITERS, OPT_WARMUP, OPT_THREADS, OPT_BLAS_THREADS, OPT_OPTIMIZER, OPT_JSON, OPT_EVAL, OPT_HELP };

static const ec_cli_opt options[] = {
    {"preset", 1, OPT_PRESET, "NAME", "network preset (default fmnist)"},
    {"batch", 1, OPT_BATCH, "N", "images per iteration (default 32)"},
    {"iters", 1, OPT_ITERS, "N", "timed iterations (default 10)"},
    {"warmup", 1, OPT_WARMUP, "N", "untimed iterations first (default 2)"},
    {"threads", 1, OPT_THREADS, "N", "threads (default: all online CPUs)"},
    {"blas-threads", 0, OPT_BLAS_THREADS, NULL,
     "do not slice the batch: one slice on OpenBLAS's threads (the baseline of the slicing)"},
    {"optimizer", 0, OPT_OPTIMIZER, NULL,
     "time whole training steps: also zero the gradient, force_finite, Adam and two EMA updates"},
    {"eval", 0, OPT_EVAL, NULL, "time eval-mode forwards only"},
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
  ec_cli cli = {.prog = "bench_unet", .synopsis = "[--preset NAME] [--batch N] [--iters N] [--threads N] [--json]",
                .description = "Training-step throughput of the CPU reference EDM2 network.", .opts = options};
  const char *preset = "fmnist", *arg;
  int64_t batch = 32, iters = 10, warmup = 2, threads = ec_cpu_count();
  int json = 0, eval = 0, blas_threads = 0, optimizer = 0;
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_PRESET: preset = arg; break;
    case OPT_BATCH: st = ec_parse_int_range("--batch", arg, 1, 4096, &batch); break;
    case OPT_ITERS: st = ec_parse_int_range("--iters", arg, 1, 1000000, &iters); break;
    case OPT_WARMUP: st = ec_parse_int_range("--warmup", arg, 0, 1000000, &warmup); break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &threads); break;
    case OPT_JSON: json = 1; break;
    case OPT_EVAL: eval = 1; break;
    case OPT_BLAS_THREADS: blas_threads = 1; break;
    case OPT_OPTIMIZER: optimizer = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, "bench_unet: %s\n", ec_errmsg());
      return 2;
    }
  }
  const edm2_preset *p;
  edm2_net net;
  edm2_pass pass;
  if ((st = edm2_preset_get(preset, &p)) || (st = edm2_net_init(&net, &p->net))) {
    fprintf(stderr, "bench_unet: %s\n", ec_errmsg());
    return 1;
  }
  edm2_net_randomize(&net, 1);
  /* Nonzero gains, so that the embedding and output paths carry real values. */
  for (int i = 0; i < net.arch.n_tensors; i++)
    if (net.arch.tensors[i].kind == EDM2_PARAM && net.arch.tensors[i].ndim == 0) *edm2_net_tensor(&net, i) = 0.5f;
  if ((st = edm2_pass_init(&pass, &net, (int)batch, !eval, blas_threads ? 1 : (int)threads))) {
    fprintf(stderr, "bench_unet: %s\n", ec_errmsg());
    return 1;
  }
  /* One slice runs on pass.threads OpenBLAS threads (pass.h). */
  if (blas_threads) pass.threads = (int)threads;
  const edm2_netcfg *c = &net.arch.cfg;
  int n = (int)batch;
  size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  float *y = ec_mallocarray((size_t)n * M, sizeof *y), *x = ec_mallocarray((size_t)n * M, sizeof *x);
  float *D = ec_mallocarray((size_t)n * M, sizeof *D), *dD = ec_mallocarray((size_t)n * M, sizeof *dD);
  float *sigma = ec_mallocarray((size_t)n, sizeof *sigma), *lv = ec_mallocarray((size_t)n, sizeof *lv);
  float *du = ec_mallocarray((size_t)n, sizeof *du);
  float *labels = ec_calloc((size_t)n * (c->label_dim ? c->label_dim : 1), sizeof *labels);
  float *grads = ec_calloc(net.arch.params_size, sizeof *grads);
  if (!y || !x || !D || !dD || !sigma || !lv || !du || !labels || !grads) {
    fprintf(stderr, "bench_unet: out of memory\n");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    sigma[i] = (float)exp(ec_rng_normal(2, (uint64_t)i) * p->P_std + p->P_mean);
    if (c->label_dim) labels[(size_t)i * c->label_dim + (size_t)i % c->label_dim] = 1;
  }
  for (size_t i = 0; i < (size_t)n * M; i++) {
    y[i] = 0.5f * (float)ec_rng_normal(3, i);
    x[i] = y[i] + sigma[i / M] * (float)ec_rng_normal(4, i);
  }
  edm2_adam adam = {0};
  edm2_ema ema = {0};
  const double profiles[2] = {0.05, 0.10};
  if (optimizer && ((st = edm2_adam_init(&adam, net.arch.params_size)) ||
                    (st = edm2_ema_init(&ema, profiles, 2, net.arch.params_size)))) {
    fprintf(stderr, "bench_unet: %s\n", ec_errmsg());
    return 1;
  }
  double t0 = 0;
  for (int64_t it = 0; it < warmup + iters; it++) {
    if (it == warmup) t0 = now();
    edm2_forward(&pass, n, x, sigma, labels, D, lv, (uint64_t)it);
    if (!eval) {
      if (optimizer) memset(grads, 0, net.arch.params_size * sizeof *grads);
      edm2_loss_ref(NULL, NULL, dD, du, D, y, lv, sigma, n, M, c->sigma_data, 1.0 / n);
      edm2_backward(&pass, dD, du, grads);
    }
    if (optimizer && !eval) {
      const int64_t nimg = (it + 1) * n;
      edm2_force_finite(grads, net.arch.params_size);
      edm2_adam_step(&adam, net.params, grads, edm2_lr(&(edm2_lr_sched){p->lr_ref, p->decay, 1}, nimg, n));
      edm2_ema_update(&ema, net.params, nimg, n);
    }
  }
  double dt = (now() - t0) / (double)iters, ips = (double)n / dt;
  if (json)
    printf("{\"impl\": \"edm2c\", \"preset\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"threads\": %d, "
           "\"iters\": %lld, \"seconds_per_iter\": %.6f, \"images_per_second\": %.3f, \"memory_bytes\": %zu, "
           "\"blas_core\": \"%s\", \"slices\": %d}\n",
           p->name, eval ? "eval" : optimizer ? "step" : "train", n, (int)threads, (long long)iters, dt, ips,
           edm2_pass_bytes(&pass), nn_blas_corename(), pass.nshards);
  else
    printf("edm2c %s %s batch %d, %d threads, %d slices: %.4f s/iter, %.2f images/s (pass memory %.1f MiB, "
           "OpenBLAS %s)\n",
           p->name, eval ? "eval forward" : optimizer ? "training step" : "forward+backward", n, (int)threads, pass.nshards, dt, ips,
           (double)edm2_pass_bytes(&pass) / (1 << 20), nn_blas_corename());
  edm2_adam_free(&adam);
  edm2_ema_free(&ema);
  edm2_pass_free(&pass);
  edm2_net_free(&net);
  free(y);
  free(x);
  free(D);
  free(dD);
  free(sigma);
  free(lv);
  free(du);
  free(labels);
  free(grads);
  return 0;
}
