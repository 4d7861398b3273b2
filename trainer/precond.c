/* Preconditioning coefficients and the training loss (see precond.h). */
#include "trainer/precond.h"

#include <math.h>

#include "core/check.h"

void edm2_precond_coefs_ref(nn_ctx *ctx, float *c_in, float *c_skip, float *c_out, float *c_noise,
                            const float *sigma, int N, double sigma_data) {
  (void)ctx;
  double sd2 = sigma_data * sigma_data;
  for (int i = 0; i < N; i++) {
    double s = sigma[i], q = s * s + sd2;
    EC_ASSERTF(s > 0, "sigma[%d] = %g must be positive", i, s);
    if (c_in) c_in[i] = (float)(1 / sqrt(q));
    if (c_skip) c_skip[i] = (float)(sd2 / q);
    if (c_out) c_out[i] = (float)(s * sigma_data / sqrt(q));
    if (c_noise) c_noise[i] = (float)(log(s) / 4);
  }
}

void edm2_loss_ref(nn_ctx *ctx, double *loss, float *dD, float *du, const float *D, const float *y,
                   const float *u, const float *sigma, int N, size_t M, double sigma_data,
                   double scale) {
  (void)ctx;
  for (int i = 0; i < N; i++) {
    double s = sigma[i], sd = sigma_data;
    double lambda = (s * s + sd * sd) / ((s * sd) * (s * sd));
    double w = lambda / exp((double)u[i]); /* λ / e^u */
    const float *Di = D + (size_t)i * M, *yi = y + (size_t)i * M;
    double sq = 0;
    for (size_t j = 0; j < M; j++) {
      double d = (double)Di[j] - (double)yi[j];
      sq += d * d;
      if (dD) dD[(size_t)i * M + j] = (float)(scale * 2 * w * d);
    }
    /* Σ ℓ = w·Σ(D − y)² + M·u;  d/du = −w·Σ(D − y)² + M. */
    if (loss) loss[i] = w * sq + (double)M * u[i];
    if (du) du[i] = (float)(scale * ((double)M - w * sq));
  }
}
