/* The FID Inception-v3 (metrics-reference.md §1.1): TF's inception-2015-12-05 graph as pytorch-fid's
 * FID Inception builds it (torchvision names, FIDInceptionA/C/E_1/E_2 blocks: 3×3 stride-1 average
 * pools with count_include_pad = false, a max pool in Mixed_7c's pool branch), from an already
 * preprocessed (N, 3, 299, 299) float input ((x − 128)/128 of uint8 RGB after the TF-style
 * bilinear resize, nn/resize.h) to the 2048-d pool_3 features. CPU, float32, on nn/ ops.
 *
 * Every one of the 94 BasicConv2d layers (conv without bias, BatchNorm eps 1e-3, ReLU) has its
 * BatchNorm folded into the convolution at load time, in double:
 *     s = gamma / sqrt(running_var + 1e-3),  w' = w·s (per output channel),  b' = beta − mean·s,
 * and runs as y = relu(conv(x, w') + b') (nn/conv_any.h). The FC layer (IS logits) is not part of
 * the features and is not loaded. */
#ifndef EDM2C_METRICS_INCEPTION_H
#define EDM2C_METRICS_INCEPTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define INCEPTION_FID_SIZE 299 /* input height and width */
#define INCEPTION_FID_DIM 2048 /* feature dimension (pool_3) */
#define INCEPTION_FID_LAYERS 94
#define INCEPTION_FID_BN_EPS 1e-3

typedef struct inception_fid inception_fid;

/* The layers, in forward order: name ("Mixed_5b.branch5x5_2"), Cout, Cin, kh, kw. */
const char *inception_fid_layer(int i, int *cout, int *cin, int *kh, int *kw);

/* A weight source: fills dst (n float32 elements, row-major) with the tensor `name` in pytorch-fid's
 * state-dict naming: "<layer>.conv.weight" (Cout, Cin, kh, kw), "<layer>.bn.weight",
 * "<layer>.bn.bias", "<layer>.bn.running_mean", "<layer>.bn.running_var" (Cout). On failure it
 * records the message (ec_err, naming the tensor) and returns its status. */
typedef ec_status (*inception_fid_source)(void *user, const char *name, float *dst, size_t n);

/* Builds the network from `src` (94 layers × 5 tensors, folded as above). */
ec_status inception_fid_create(inception_fid **out, inception_fid_source src, void *user);
void inception_fid_free(inception_fid *net);

/* Scratch floats needed by inception_fid_forward (independent of N: images run one at a time). */
size_t inception_fid_workspace(const inception_fid *net);

/* Optional intermediate outputs, each for all N images (NULL = not wanted): block0 after the
 * first max pool (N, 64, 73, 73), mixed_5b (N, 256, 35, 35), mixed_6e (N, 768, 17, 17). */
typedef struct {
  float *block0, *mixed_5b, *mixed_6e;
} inception_fid_taps;

/* feat (N, 2048) = pool_3 features of x (N, 3, 299, 299). OVERWRITES feat; ws:
 * inception_fid_workspace() floats; taps may be NULL. The GEMMs use OpenBLAS's threads. */
void inception_fid_forward(const inception_fid *net, float *feat, const float *x, int N, float *ws,
                           const inception_fid_taps *taps);

/* The deterministic test weights (tests/golden/gen_inception.py implements the same):
 * inception_fid_hash_normal(name, i) = (((u0 + u1) + u2) + u3 − 2)·sqrt(3) in double, where
 * r = splitmix64(FNV-1a-64(name) + i) and u_k = (2·((r >> 16k) & 0xffff) + 1)/131072 (an
 * Irwin-Hall sum, mean 0, variance 1, bit-identical in numpy). The source gives
 *   conv.weight = float(n·sqrt(2/(Cin·kh·kw))), bn.weight = 1, bn.bias = float(0.1·n),
 *   bn.running_mean = float(0.1·n), bn.running_var = float(1 + 0.2·n);
 * the test inputs are inception_fid_hash_input(i) = float((r("input", i) >> 56) − 128)/128 over
 * the row-major index of the whole (N, 3, 299, 299) tensor. `user` is unused. */
uint64_t inception_fid_hash_bits(const char *name, uint64_t i);
double inception_fid_hash_normal(const char *name, uint64_t i);
float inception_fid_hash_input(uint64_t i);
ec_status inception_fid_hash_source(void *user, const char *name, float *dst, size_t n);

#endif
