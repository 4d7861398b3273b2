/* Power-function EMA tracking (see ema.h). */
#include "trainer/ema.h"

#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "posthoc/phema_math.h"

ec_status edm2_ema_init(edm2_ema *e, const double *sigma_rel, int n, size_t size) {
  memset(e, 0, sizeof *e);
  if (n < 1 || n > EDM2_EMA_MAX)
    return ec_err(EC_EINVAL, "--ema: between 1 and %d profiles, got %d", EDM2_EMA_MAX, n);
  for (int i = 0; i < n; i++) {
    ec_status st = phema_sigma_to_gamma(sigma_rel[i], &e->gamma[i]);
    if (st) return ec_err_context(st, "--ema: profile %g", sigma_rel[i]);
    for (int j = 0; j < i; j++)
      if (sigma_rel[j] == sigma_rel[i]) return ec_err(EC_EINVAL, "--ema: profile %g is listed twice", sigma_rel[i]);
    e->sigma_rel[i] = sigma_rel[i];
  }
  e->n = n;
  e->size = size;
  for (int i = 0; i < n; i++) {
    e->avg[i] = ec_calloc(size ? size : 1, sizeof(float));
    if (!e->avg[i]) {
      edm2_ema_free(e);
      return ec_err(EC_ENOMEM, "out of memory for %d EMA copies of %zu parameters", n, size);
    }
  }
  return EC_OK;
}

void edm2_ema_free(edm2_ema *e) {
  for (int i = 0; i < EDM2_EMA_MAX; i++) ec_freep(&e->avg[i]);
  e->n = 0;
}

void edm2_ema_update(edm2_ema *e, const float *params, int64_t nimg, int64_t batch) {
  for (int k = 0; k < e->n; k++) {
    /* PyTorch's lerp(a, b, w) with w = 1 − β in float32: a + w·(b − a) for w < 0.5, else
     * b − (b − a)·(1 − w). */
    const double beta = phema_beta(e->gamma[k], nimg, batch);
    const float w = (float)(1.0 - beta), omw = 1.0f - w;
    float *a = e->avg[k];
    if (w < 0.5f) {
      for (size_t i = 0; i < e->size; i++) a[i] = a[i] + w * (params[i] - a[i]);
    } else {
      for (size_t i = 0; i < e->size; i++) a[i] = params[i] - (params[i] - a[i]) * omw;
    }
  }
}
