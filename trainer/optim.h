/* The optimizer side of a training step (edm2-spec.md §6.4-6.5): the learning-rate schedule,
 * the replacement of non-finite gradients, and Adam as PyTorch 1.13 computes it.
 *
 *   edm2_adam opt;
 *   edm2_adam_init(&opt, n);                         // m = v = 0, step 0
 *   double lr = edm2_lr(&sched, nimg, batch);        // nimg = images seen before this step
 *   edm2_force_finite(grads, n);
 *   edm2_adam_step(&opt, params, grads, lr);
 */
#ifndef EDM2C_TRAINER_OPTIM_H
#define EDM2C_TRAINER_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
  double lr_ref;  /* α_ref */
  int64_t decay;  /* t_ref in iterations (batches); 0 = no decay */
  int64_t rampup; /* linear warm-up length in images (the reference: 10,000,000); 0 = none */
} edm2_lr_sched;

/* lr = α_ref / sqrt(max(t / (t_ref · batch), 1)) · min(t / rampup, 1), t = images seen before the
 * step. The first step (t = 0) has lr 0 when there is a warm-up, as in the reference. */
double edm2_lr(const edm2_lr_sched *s, int64_t nimg, int64_t batch);

/* Sets every NaN or ±Inf element to 0 (the reference's force_finite); returns how many. */
int64_t edm2_force_finite(float *g, size_t n);

#define EDM2_ADAM_BETA1 0.9
#define EDM2_ADAM_BETA2 0.99
#define EDM2_ADAM_EPS 1e-8

typedef struct {
  size_t n;
  float *m, *v; /* first and second moments, parameter slab layout */
  int64_t step; /* steps taken */
} edm2_adam;

ec_status edm2_adam_init(edm2_adam *a, size_t n);
void edm2_adam_free(edm2_adam *a);
/* One step with learning rate lr: step += 1, then per element, in float32,
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g·g;
 *   p -= (lr / (1 - β1^step)) · m / (sqrt(v) / sqrt(1 - β2^step) + ε),
 * PyTorch's formula with its scalars (bias corrections in double, rounded to float). PyTorch's
 * CPU kernels fuse two of the multiply-adds and apply step_size before the division; that moves
 * about 1 % of elements by one ulp per step, far below what gradients of a different summation
 * order change (tests/unit/test_train_golden.c), so the portable form is kept. */
void edm2_adam_step(edm2_adam *a, float *params, const float *grads, double lr);

#endif
