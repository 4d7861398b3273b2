/* Benchmark of the post-hoc EMA solver: the O(N) interval decomposition against EDM2's dense LU
 * (LAPACKE dgesv on the N×N Gram matrix), on the same problem in the same run.
 *
 *   bench_solve [--times N] [--targets K] [--threads T]
 *
 * Defaults: 4096 snapshot times (t_i = i·8 Mi images) × σ_rel {0.05, 0.10} = 8192 stored
 * profiles, 100 targets σ_rel 0.010…0.250 at the last time, OpenBLAS on 1 thread. Prints the
 * machine, both times, their ratio, how far the LU weights are from the interval weights, and
 * the exact response errors of both for a few targets. Registered with meson's benchmark(), so
 * `meson test` never runs it. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "posthoc/solve.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  int times = 4096, ntargets = 100, threads = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--times") && i + 1 < argc)
      times = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--targets") && i + 1 < argc)
      ntargets = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--times N] [--targets K] [--threads T]\n", argv[0]);
      return 2;
    }
  }
  if (times < 2 || ntargets < 1 || threads < 1) {
    fprintf(stderr, "bench_solve: need --times >= 2, --targets >= 1, --threads >= 1\n");
    return 2;
  }
  openblas_set_num_threads(threads);
  char model[256];
  ec_cpu_model(model, sizeof model);
  printf("machine: %s, %ld online CPUs\n", model, sysconf(_SC_NPROCESSORS_ONLN));
  printf("OpenBLAS: %s, %d thread(s)\n", openblas_get_config(), openblas_get_num_threads());

  int n = 2 * times;
  int64_t *t = ec_mallocarray((size_t)n, sizeof *t);
  double *g = ec_mallocarray((size_t)n, sizeof *g);
  phema_profile *r = ec_mallocarray((size_t)ntargets, sizeof *r);
  double *xi = ec_mallocarray((size_t)n * ntargets, sizeof *xi);
  double *xl = ec_mallocarray((size_t)n * ntargets, sizeof *xl);
  phema_diag *di = ec_mallocarray((size_t)ntargets, sizeof *di);
  if (!t || !g || !r || !xi || !xl || !di) {
    fprintf(stderr, "bench_solve: %s\n", ec_errmsg());
    return 1;
  }
  double g05, g10;
  phema_sigma_to_gamma(0.05, &g05);
  phema_sigma_to_gamma(0.10, &g10);
  for (int i = 0; i < times; i++) {
    t[2 * i] = t[2 * i + 1] = (int64_t)(i + 1) << 23;
    g[2 * i] = g05;
    g[2 * i + 1] = g10;
  }
  for (int j = 0; j < ntargets; j++) {
    double s = ntargets > 1 ? 0.010 + 0.240 * j / (ntargets - 1) : 0.13;
    if (phema_profile_power(&r[j], t[n - 1], s)) {
      fprintf(stderr, "bench_solve: %s\n", ec_errmsg());
      return 1;
    }
  }
  printf("problem: %d times x 2 profiles = %d stored, %d targets sigma_rel 0.010..0.250\n", times,
         n, ntargets);

  phema_solve_opts o;
  phema_solve_opts_init(&o);
  o.raw = 1;
  o.method = PHEMA_METHOD_INTERVAL;
  double t0 = now();
  ec_status st = phema_solve(t, g, n, r, ntargets, &o, xi, NULL);
  double t_iv = now() - t0;
  if (st) {
    fprintf(stderr, "bench_solve: interval: %s\n", ec_errmsg());
    return 1;
  }
  printf("interval solver: %.4f s (weights only)\n", t_iv);
  t0 = now();
  st = phema_solve(t, g, n, r, ntargets, &o, xi, di);
  printf("interval solver + diagnostics (cond2(A), exact response errors): %.4f s\n", now() - t0);
  if (st) return 1;

  o.method = PHEMA_METHOD_LU;
  t0 = now();
  st = phema_solve(t, g, n, r, ntargets, &o, xl, NULL);
  double t_lu = now() - t0;
  if (st) {
    fprintf(stderr, "bench_solve: dense LU: %s\n", ec_errmsg());
    return 1;
  }
  printf("dense LU (dgesv), incl. building A: %.3f s\n", t_lu);
  printf("ratio dense/interval: %.0fx\n", t_lu / t_iv);

  double worst = 0, maxabs = 0;
  int worst_j = 0;
  for (int j = 0; j < ntargets; j++) {
    double d2 = 0, n2 = 0;
    for (int i = 0; i < n; i++) {
      double a = xi[(size_t)i * ntargets + j], b = xl[(size_t)i * ntargets + j];
      d2 += (a - b) * (a - b);
      n2 += a * a;
      if (fabs(a - b) > maxabs) maxabs = fabs(a - b);
    }
    double rel = sqrt(d2 / n2);
    if (rel > worst) {
      worst = rel;
      worst_j = j;
    }
  }
  printf("max deviation LU vs interval: |x_lu - x_iv|_2/|x_iv|_2 = %.2e (sigma_rel %.4f), "
         "max |dx_i| = %.2e\n",
         worst, r[worst_j].sigma_rel, maxabs);
  int show[3] = {0, worst_j, ntargets - 1};
  for (int a = 0; a < 3; a++) {
    int j = show[a];
    double e_lu;
    if (phema_response_error(t, g, n, xl + j, ntargets, &r[j], &e_lu)) return 1;
    printf("  sigma_rel %.4f: response error interval %.4e, LU %.4e; |x|_2 %.3g, cond2(A) %.3g\n",
           r[j].sigma_rel, di[j].rel_error, e_lu, di[j].norm2, di[j].cond);
  }
  ec_freep(&t);
  ec_freep(&g);
  ec_freep(&r);
  ec_freep(&xi);
  ec_freep(&xl);
  ec_freep(&di);
  return 0;
}
