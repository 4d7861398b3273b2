/* Learning rate, force_finite and Adam (see optim.h). */
#include "trainer/optim.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"

double edm2_lr(const edm2_lr_sched *s, int64_t nimg, int64_t batch) {
  EC_ASSERT(nimg >= 0 && batch > 0);
  double lr = s->lr_ref;
  if (s->decay > 0) lr /= sqrt(fmax((double)nimg / ((double)s->decay * (double)batch), 1.0));
  if (s->rampup > 0) lr *= fmin((double)nimg / (double)s->rampup, 1.0);
  return lr;
}

int64_t edm2_force_finite(float *g, size_t n) {
  int64_t bad = 0;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(g[i])) {
      g[i] = 0;
      bad++;
    }
  return bad;
}

ec_status edm2_adam_init(edm2_adam *a, size_t n) {
  memset(a, 0, sizeof *a);
  a->n = n;
  a->m = ec_calloc(n ? n : 1, sizeof(float));
  a->v = ec_calloc(n ? n : 1, sizeof(float));
  if (!a->m || !a->v) {
    edm2_adam_free(a);
    return ec_err(EC_ENOMEM, "out of memory for the optimizer state (%zu parameters)", n);
  }
  return EC_OK;
}

void edm2_adam_free(edm2_adam *a) {
  ec_freep(&a->m);
  ec_freep(&a->v);
}

void edm2_adam_step(edm2_adam *a, float *params, const float *grads, double lr) {
  a->step++;
  /* The scalars as PyTorch forms them: bias corrections in double, then used as float32
   * multipliers of float32 tensors. */
  const double bc1 = 1.0 - pow(EDM2_ADAM_BETA1, (double)a->step);
  const double bc2 = 1.0 - pow(EDM2_ADAM_BETA2, (double)a->step);
  const float b1 = (float)EDM2_ADAM_BETA1, c1 = (float)(1.0 - EDM2_ADAM_BETA1);
  const float b2 = (float)EDM2_ADAM_BETA2, c2 = (float)(1.0 - EDM2_ADAM_BETA2);
  const float bc2_sqrt = (float)sqrt(bc2), eps = (float)EDM2_ADAM_EPS;
  const float step_size = (float)(lr / bc1);
  float *m = a->m, *v = a->v;
  for (size_t i = 0; i < a->n; i++) {
    const float g = grads[i];
    m[i] = m[i] * b1 + g * c1;
    v[i] = v[i] * b2 + c2 * g * g;
    const float denom = sqrtf(v[i]) / bc2_sqrt + eps;
    params[i] = params[i] - step_size * (m[i] / denom);
  }
}
