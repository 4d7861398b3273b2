/* Power-function EMAs tracked during training (edm2-spec.md §6.7, paper §3.1): one float32 copy
 * of the parameter slab per profile σ_rel, updated after every step with
 * β = (1 − batch/t)^(γ+1), t = images seen after the step: p_ema ← lerp(p_ema, p, 1 − β).
 * Buffers are not averaged. At the first step t = batch, β = 0: the EMA becomes the weights.
 *
 *   edm2_ema e;
 *   edm2_ema_init(&e, sigmas, 2, nparams);   // σ_rel 0.050 and 0.100
 *   edm2_ema_update(&e, params, nimg, batch);
 */
#ifndef EDM2C_TRAINER_EMA_H
#define EDM2C_TRAINER_EMA_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define EDM2_EMA_MAX 16

typedef struct {
  int n;                       /* profiles */
  double sigma_rel[EDM2_EMA_MAX], gamma[EDM2_EMA_MAX];
  size_t size;                 /* parameters per copy */
  float *avg[EDM2_EMA_MAX];    /* the averages, parameter slab layout */
} edm2_ema;

/* Profiles must be distinct, each 0 < σ_rel < 12^-0.5 (EC_EINVAL naming the bad one). The
 * averages start at 0; the first update overwrites them. */
ec_status edm2_ema_init(edm2_ema *e, const double *sigma_rel, int n, size_t size);
void edm2_ema_free(edm2_ema *e);
/* After a step that ended at t = nimg images (batch images long). */
void edm2_ema_update(edm2_ema *e, const float *params, int64_t nimg, int64_t batch);

#endif
