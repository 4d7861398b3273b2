/* The EDM2 network's structure, derived from a configuration: its modules in execution order and
 * its tensor table (state-dict names, shapes, offsets in the parameter and buffer slabs).
 *
 * The table lists every state-dict entry of the reference's Precond in the reference's order
 * (parameters and buffers interleaved, module registration order; reference/edm2-xs-tensors.txt
 * in ../shared lists XS). Parameters live in one float32 slab, buffers in another; each
 * tensor's offset is aligned to EDM2_SLAB_ALIGN floats. Gradients, Adam moments and EMA copies
 * use the parameter slab's layout, so one table serves them all, on host and device. */
#ifndef EDM2C_TRAINER_ARCH_H
#define EDM2C_TRAINER_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "trainer/netconfig.h"

#define EDM2_SLAB_ALIGN 16 /* floats: 64 bytes, a cache line and an AVX-512 vector */
#define EDM2_NAME_MAX 64

typedef enum { EDM2_PARAM = 0, EDM2_BUFFER = 1 } edm2_kind;

typedef struct {
  char name[EDM2_NAME_MAX]; /* state-dict name, e.g. "unet.enc.64x64_block0.conv_res0.weight" */
  edm2_kind kind;
  int ndim;                 /* 0 for the scalar gains */
  int64_t shape[4];
  int64_t numel;
  size_t offset;            /* in floats, in the parameter or the buffer slab */
} edm2_tensor;

typedef enum { EDM2_KEEP = 0, EDM2_DOWN, EDM2_UP } edm2_resample;

/* One U-Net Block (edm2-spec.md §2). Tensor fields are indices into the table (-1: absent). */
typedef struct {
  char name[EDM2_NAME_MAX]; /* module path, e.g. "unet.enc.32x32_down" */
  int enc;                  /* 1 encoder flavour, 0 decoder */
  edm2_resample resample;
  int in_ch, out_ch;        /* in_ch counts a concatenated skip */
  int skip_ch;              /* decoder "block" modules: channels of the skip concatenated in front
                               of the block (the main path has in_ch - skip_ch); 0 otherwise */
  int res_in, res;          /* resolution of the input and after resampling */
  int heads, head_ch;       /* attention (heads = 0: none) */
  int emb_gain, conv_res0, emb_linear, conv_res1, conv_skip, attn_qkv, attn_proj;
} edm2_block;

typedef struct {
  edm2_netcfg cfg;
  int cnoise, cemb;
  edm2_tensor *tensors; /* state-dict order */
  int n_tensors;
  size_t params_size, buffers_size; /* slab sizes in floats, alignment included */
  int64_t n_params, n_buffer_elems; /* trainable elements, buffer elements */
  edm2_block *blocks;   /* execution order: the encoder's blocks, then the decoder's */
  int n_blocks, n_enc_blocks;
  int n_skips;          /* encoder modules, each pushing one skip (the input conv included) */
  /* Tensor indices of the modules outside the blocks. emb_label = -1 when unconditional. */
  int out_gain, emb_freqs, emb_phases, emb_noise, emb_label, enc_conv, out_conv;
  int logvar_freqs, logvar_phases, logvar_linear;
} edm2_arch;

/* Builds the structure for a configuration (checked first; EC_EINVAL names what is wrong). */
ec_status edm2_arch_init(edm2_arch *a, const edm2_netcfg *cfg);
void edm2_arch_free(edm2_arch *a);

/* The index of a tensor by state-dict name, or -1. */
int edm2_arch_find(const edm2_arch *a, const char *name);
/* "[128, 5, 3, 3]" into buf. */
const char *edm2_tensor_shape_str(const edm2_tensor *t, char *buf, size_t size);
/* The shape as core/tensor.h describes shapes (for the HDF5 writers). */
ec_shape edm2_tensor_ec_shape(const edm2_tensor *t);
/* Rows and fan-in of a weight for weight normalisation (shape[0] and numel / shape[0]). */
int edm2_tensor_rows(const edm2_tensor *t);
int edm2_tensor_fan_in(const edm2_tensor *t);

/* Multiply-adds of one evaluation, counted as the reference's count_flops.py counts them
 * (edm2-spec.md §5): batch 1, eval mode (one weight normalisation per use), σ given, labels
 * given when conditional, no uncertainty head. Every traced op is counted, down to the scalar
 * σ arithmetic, so the count equals the reference's exactly (checked against traces). */
double edm2_arch_flops(const edm2_arch *a);

#endif
