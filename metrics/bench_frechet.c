/* Times edm2_frechet on D-dimensional statistics (default 2048) from metrics/fd_gen.h: sigma1 =
 * B₁B₁ᵀ/n, sigma2 = 2·B₂B₂ᵀ/n with n = 4D (well-conditioned), the same matrices that
 * tools/bench_frechet_scipy.py builds for scipy's sqrtm form (docs/performance.md).
 *
 *   bench_frechet [D] [REPEATS]      prints the distance and the best and median times */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "metrics/fd_gen.h"
#include "metrics/frechet.h"
#include "nn/blas.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  nn_blas_setup(argv);
  int64_t D = argc > 1 ? atoll(argv[1]) : 2048;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  if (D < 2 || D > 16384 || reps < 1 || reps > 1000) {
    fprintf(stderr, "usage: bench_frechet [D] [REPEATS]\n");
    return 2;
  }
  double *mu1 = malloc((size_t)D * sizeof(double)), *mu2 = malloc((size_t)D * sizeof(double));
  double *s1 = malloc((size_t)(D * D) * sizeof(double)), *s2 = malloc((size_t)(D * D) * sizeof(double));
  double *t = malloc((size_t)reps * sizeof(double));
  if (!mu1 || !mu2 || !s1 || !s2 || !t || !fdgen_sigma(1, D, 4 * D, 1.0, 0.0, s1) ||
      !fdgen_sigma(2, D, 4 * D, 2.0, 0.0, s2)) {
    fprintf(stderr, "bench_frechet: out of memory\n");
    return 1;
  }
  fdgen_mu(1, D, mu1);
  fdgen_mu(2, D, mu2);
  edm2_fd_result r = {0};
  for (int i = 0; i < reps; i++) {
    double t0 = now();
    if (edm2_frechet(D, mu1, s1, mu2, s2, &r)) {
      fprintf(stderr, "bench_frechet: %s\n", ec_errmsg());
      return 1;
    }
    t[i] = now() - t0;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_dbl);
  printf("edm2c eigh  D=%lld  fd=%.17g  best %.3f s  median %.3f s  (%d runs, OpenBLAS %s, %d threads)\n",
         (long long)D, r.fd, t[0], t[reps / 2], reps, nn_blas_corename(), nn_blas_threads());
  free(mu1);
  free(mu2);
  free(s1);
  free(s2);
  free(t);
  return 0;
}
