/* Network state: slabs and initialisation (see net.h). */
#include "trainer/net.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/rng.h"

ec_status edm2_net_init(edm2_net *net, const edm2_netcfg *cfg) {
  memset(net, 0, sizeof *net);
  ec_status st = edm2_arch_init(&net->arch, cfg);
  if (st) return st;
  net->params = ec_calloc(net->arch.params_size, sizeof(float));
  net->buffers = ec_calloc(net->arch.buffers_size ? net->arch.buffers_size : 1, sizeof(float));
  if (!net->params || !net->buffers) {
    edm2_net_free(net);
    return ec_err(EC_ENOMEM, "out of memory for the network's parameters");
  }
  return EC_OK;
}

void edm2_net_free(edm2_net *net) {
  if (!net) return;
  ec_freep(&net->params);
  ec_freep(&net->buffers);
  edm2_arch_free(&net->arch);
}

float *edm2_net_tensor(const edm2_net *net, int i) {
  EC_ASSERT(i >= 0 && i < net->arch.n_tensors);
  const edm2_tensor *t = &net->arch.tensors[i];
  return (t->kind == EDM2_PARAM ? net->params : net->buffers) + t->offset;
}

void edm2_net_randomize(edm2_net *net, uint64_t seed) {
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const edm2_tensor *t = &net->arch.tensors[i];
    float *p = edm2_net_tensor(net, i);
    uint64_t s = seed + (uint64_t)i;
    size_t len = strlen(t->name);
    int phases = len >= 6 && !strcmp(t->name + len - 6, "phases");
    int freqs = len >= 5 && !strcmp(t->name + len - 5, "freqs");
    if (t->ndim == 0) {
      p[0] = 0; /* gains start at 0 */
    } else if (phases) {
      for (int64_t j = 0; j < t->numel; j++) p[j] = (float)(2 * M_PI * ec_rng_uniform(s, (uint64_t)j));
    } else {
      ec_rng_normal_fill(p, (uint64_t)t->numel, s, 0);
      if (freqs)
        for (int64_t j = 0; j < t->numel; j++) p[j] = (float)(2 * M_PI * p[j]);
    }
  }
}

int edm2_net_first_nonfinite(const edm2_net *net, int64_t *element) {
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const float *p = edm2_net_tensor(net, i);
    for (int64_t j = 0; j < net->arch.tensors[i].numel; j++)
      if (!isfinite(p[j])) {
        if (element) *element = j;
        return i;
      }
  }
  return -1;
}
