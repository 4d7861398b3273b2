/* EDM preconditioning and the EDM2 training loss (edm2-spec.md §4, §6.3), as ops: plain-C `_ref`
 * forms here; CUDA forms with the same signatures come with the CUDA backend. Shapes: N images
 * of M elements each. */
#ifndef EDM2C_TRAINER_PRECOND_H
#define EDM2C_TRAINER_PRECOND_H

#include <stddef.h>

#include "nn/nn.h"

/* Per image, from σ > 0 and σ_data: c_in = 1/sqrt(σ² + σd²), c_skip = σd²/(σ² + σd²),
 * c_out = σ·σd/sqrt(σ² + σd²), c_noise = ln(σ)/4. Each output (N) is OVERWRITTEN; computed in
 * double and rounded once. */
void edm2_precond_coefs_ref(nn_ctx *ctx, float *c_in, float *c_skip, float *c_out, float *c_noise,
                            const float *sigma, int N, double sigma_data);

/* The loss of N images: per element ℓ = λ(σ)/exp(u)·(D − y)² + u, λ = (σ² + σd²)/(σ·σd)², with u
 * the image's log-variance. loss[i] = Σ_elements ℓ of image i (double; may be NULL).
 * dD (N, M) and du (N) receive the gradients of scale·Σ_i loss[i]; both OVERWRITTEN, either may
 * be NULL. The reference back-propagates Σ ℓ / batch, i.e. scale = 1/batch. */
void edm2_loss_ref(nn_ctx *ctx, double *loss, float *dD, float *du, const float *D, const float *y,
                   const float *u, const float *sigma, int N, size_t M, double sigma_data,
                   double scale);

#endif
