/* An EDM2 network's state: its structure (arch.h) and two float32 slabs, parameters and
 * buffers, laid out by the structure's tensor table. Host memory. */
#ifndef EDM2C_TRAINER_NET_H
#define EDM2C_TRAINER_NET_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/arch.h"

typedef struct {
  edm2_arch arch;
  float *params;  /* arch.params_size floats (alignment gaps are zero) */
  float *buffers; /* arch.buffers_size floats */
} edm2_net;

/* Builds the structure and zeroed slabs. */
ec_status edm2_net_init(edm2_net *net, const edm2_netcfg *cfg);
void edm2_net_free(edm2_net *net);

/* Tensor i of the table: a pointer into the parameter or the buffer slab. */
float *edm2_net_tensor(const edm2_net *net, int i);

/* The reference's initialisation with our counter-based generator (core/rng.h; the values
 * differ from PyTorch's, the distributions do not): weights N(0, 1), gains 0, Fourier
 * frequencies 2π·N(0, 1) and phases 2π·U(0, 1). Tensor i draws from stream seed + i, so the
 * result does not depend on the order of initialisation. */
void edm2_net_randomize(edm2_net *net, uint64_t seed);

/* The first tensor holding a NaN or an infinity (index, or -1 when all are finite), and the
 * element. */
int edm2_net_first_nonfinite(const edm2_net *net, int64_t *element);

#endif
