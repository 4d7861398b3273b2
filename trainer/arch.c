/* The EDM2 structure and tensor table (see arch.h); module construction follows edm2-spec.md
 * §3.3–3.4 and §4, in the reference's registration order. */
#include "trainer/arch.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"

typedef struct {
  edm2_arch *a;
  int cap_tensors, cap_blocks;
  ec_status st;
} builder;

static int add_tensor(builder *b, edm2_kind kind, const char *fmt_prefix, const char *suffix, int ndim,
                      int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  edm2_arch *a = b->a;
  if (b->st) return -1;
  if (a->n_tensors == b->cap_tensors) {
    int cap = b->cap_tensors ? 2 * b->cap_tensors : 64;
    edm2_tensor *t = ec_realloc(a->tensors, (size_t)cap, sizeof *t);
    if (!t) {
      b->st = EC_ENOMEM;
      return -1;
    }
    a->tensors = t;
    b->cap_tensors = cap;
  }
  edm2_tensor *t = &a->tensors[a->n_tensors];
  memset(t, 0, sizeof *t);
  const int len = snprintf(t->name, sizeof t->name, "%s%s%s", fmt_prefix, *fmt_prefix && *suffix ? "." : "", suffix);
  EC_ASSERT(len > 0 && (size_t)len < sizeof t->name); /* EDM2_NAME_MAX fits every EDM2 name */
  t->kind = kind;
  t->ndim = ndim;
  int64_t d[4] = {d0, d1, d2, d3};
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = d[i];
    t->numel *= d[i];
  }
  size_t *size = kind == EDM2_PARAM ? &a->params_size : &a->buffers_size;
  t->offset = *size;
  *size += ((size_t)t->numel + EDM2_SLAB_ALIGN - 1) / EDM2_SLAB_ALIGN * EDM2_SLAB_ALIGN;
  if (kind == EDM2_PARAM) a->n_params += t->numel;
  else a->n_buffer_elems += t->numel;
  return a->n_tensors++;
}

static int add_weight(builder *b, const char *module, const char *param, int out, int in, int k) {
  char prefix[EDM2_NAME_MAX];
  const int len = snprintf(prefix, sizeof prefix, "%s%s%s", module, *param ? "." : "", param);
  EC_ASSERT(len > 0 && (size_t)len < sizeof prefix);
  return k ? add_tensor(b, EDM2_PARAM, prefix, "weight", 4, out, in, k, k)
           : add_tensor(b, EDM2_PARAM, prefix, "weight", 2, out, in, 0, 0);
}

static void add_block(builder *b, const char *name, int enc, edm2_resample resample, int in,
                      int out, int skip_ch, int res_in, int attention) {
  edm2_arch *a = b->a;
  if (b->st) return;
  if (a->n_blocks == b->cap_blocks) {
    int cap = b->cap_blocks ? 2 * b->cap_blocks : 32;
    edm2_block *nb = ec_realloc(a->blocks, (size_t)cap, sizeof *nb);
    if (!nb) {
      b->st = EC_ENOMEM;
      return;
    }
    a->blocks = nb;
    b->cap_blocks = cap;
  }
  edm2_block *k = &a->blocks[a->n_blocks++];
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  k->enc = enc;
  k->resample = resample;
  k->in_ch = in;
  k->out_ch = out;
  k->skip_ch = skip_ch;
  k->res_in = res_in;
  k->res = resample == EDM2_DOWN ? res_in / 2 : resample == EDM2_UP ? res_in * 2 : res_in;
  k->heads = edm2_netcfg_heads(&a->cfg, out, attention);
  k->head_ch = k->heads ? out / k->heads : 0;
  /* Registration order inside a Block (edm2-spec.md §2). */
  k->emb_gain = add_tensor(b, EDM2_PARAM, name, "emb_gain", 0, 0, 0, 0, 0);
  k->conv_res0 = add_weight(b, name, "conv_res0", out, enc ? out : in, 3);
  k->emb_linear = add_weight(b, name, "emb_linear", out, a->cemb, 0);
  k->conv_res1 = add_weight(b, name, "conv_res1", out, out, 3);
  k->conv_skip = in != out ? add_weight(b, name, "conv_skip", out, in, 1) : -1;
  k->attn_qkv = k->heads ? add_weight(b, name, "attn_qkv", 3 * out, out, 1) : -1;
  k->attn_proj = k->heads ? add_weight(b, name, "attn_proj", out, out, 1) : -1;
}

static int is_attn_res(const edm2_netcfg *c, int res) {
  for (int i = 0; i < c->n_attn; i++)
    if (c->attn_resolutions[i] == res) return 1;
  return 0;
}

ec_status edm2_arch_init(edm2_arch *a, const edm2_netcfg *cfg) {
  memset(a, 0, sizeof *a);
  ec_status st = edm2_netcfg_check(cfg, NULL);
  if (st) return st;
  a->cfg = *cfg;
  a->cnoise = edm2_netcfg_cnoise(cfg);
  a->cemb = edm2_netcfg_cemb(cfg);
  builder b = {.a = a};
  const edm2_netcfg *c = cfg;
  char name[EDM2_NAME_MAX];

  /* U-Net top level (edm2-spec.md §3.2). */
  a->out_gain = add_tensor(&b, EDM2_PARAM, "unet", "out_gain", 0, 0, 0, 0, 0);
  a->emb_freqs = add_tensor(&b, EDM2_BUFFER, "unet.emb_fourier", "freqs", 1, a->cnoise, 0, 0, 0);
  a->emb_phases = add_tensor(&b, EDM2_BUFFER, "unet.emb_fourier", "phases", 1, a->cnoise, 0, 0, 0);
  a->emb_noise = add_weight(&b, "unet.emb_noise", "", a->cemb, a->cnoise, 0);
  a->emb_label = c->label_dim ? add_weight(&b, "unet.emb_label", "", a->cemb, c->label_dim, 0) : -1;

  /* Encoder (§3.3): the skip stack records each module's output channels. */
  int skips[4 * EDM2_MAX_LEVELS * 16 + 8], n_skips = 0;
  int cout = c->img_channels + 1;
  for (int l = 0; l < c->n_levels; l++) {
    int res = c->img_resolution >> l, ch = edm2_netcfg_cblock(c, l);
    if (l == 0) {
      snprintf(name, sizeof name, "unet.enc.%dx%d_conv", res, res);
      a->enc_conv = add_weight(&b, name, "", ch, cout, 3);
      cout = ch;
    } else {
      snprintf(name, sizeof name, "unet.enc.%dx%d_down", res, res);
      add_block(&b, name, 1, EDM2_DOWN, cout, cout, 0, res * 2, 0);
    }
    if (n_skips < (int)(sizeof skips / sizeof *skips)) skips[n_skips] = cout;
    n_skips++;
    for (int i = 0; i < c->num_blocks; i++) {
      snprintf(name, sizeof name, "unet.enc.%dx%d_block%d", res, res, i);
      add_block(&b, name, 1, EDM2_KEEP, cout, ch, 0, res, is_attn_res(c, res));
      cout = ch;
      if (n_skips < (int)(sizeof skips / sizeof *skips)) skips[n_skips] = cout;
      n_skips++;
    }
  }
  if (n_skips > (int)(sizeof skips / sizeof *skips)) {
    edm2_arch_free(a);
    return ec_err(EC_EINVAL, "network configuration: too many encoder modules (%d)", n_skips);
  }
  a->n_enc_blocks = a->n_blocks;
  a->n_skips = n_skips;

  /* Decoder (§3.4). */
  for (int l = c->n_levels - 1; l >= 0; l--) {
    int res = c->img_resolution >> l, ch = edm2_netcfg_cblock(c, l);
    if (l == c->n_levels - 1) {
      snprintf(name, sizeof name, "unet.dec.%dx%d_in0", res, res);
      add_block(&b, name, 0, EDM2_KEEP, cout, cout, 0, res, 1);
      snprintf(name, sizeof name, "unet.dec.%dx%d_in1", res, res);
      add_block(&b, name, 0, EDM2_KEEP, cout, cout, 0, res, 0);
    } else {
      snprintf(name, sizeof name, "unet.dec.%dx%d_up", res, res);
      add_block(&b, name, 0, EDM2_UP, cout, cout, 0, res / 2, 0);
    }
    for (int i = 0; i <= c->num_blocks; i++) {
      int skip = skips[--n_skips];
      snprintf(name, sizeof name, "unet.dec.%dx%d_block%d", res, res, i);
      add_block(&b, name, 0, EDM2_KEEP, cout + skip, ch, skip, res, is_attn_res(c, res));
      cout = ch;
    }
  }
  EC_ASSERT(b.st || n_skips == 0);
  a->out_conv = add_weight(&b, "unet.out_conv", "", c->img_channels, cout, 3);

  /* Precond's uncertainty head (§4). */
  a->logvar_freqs = add_tensor(&b, EDM2_BUFFER, "logvar_fourier", "freqs", 1, c->logvar_channels, 0, 0, 0);
  a->logvar_phases = add_tensor(&b, EDM2_BUFFER, "logvar_fourier", "phases", 1, c->logvar_channels, 0, 0, 0);
  a->logvar_linear = add_weight(&b, "logvar_linear", "", 1, c->logvar_channels, 0);
  if (b.st) {
    edm2_arch_free(a);
    return ec_err_context(b.st, "network structure");
  }
  return EC_OK;
}

void edm2_arch_free(edm2_arch *a) {
  if (!a) return;
  ec_freep(&a->tensors);
  ec_freep(&a->blocks);
  memset(a, 0, sizeof *a);
}

int edm2_arch_find(const edm2_arch *a, const char *name) {
  for (int i = 0; i < a->n_tensors; i++)
    if (!strcmp(a->tensors[i].name, name)) return i;
  return -1;
}

const char *edm2_tensor_shape_str(const edm2_tensor *t, char *buf, size_t size) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < t->ndim && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}

ec_shape edm2_tensor_ec_shape(const edm2_tensor *t) {
  ec_shape s = {.ndim = t->ndim};
  for (int d = 0; d < t->ndim; d++) s.dims[d] = t->shape[d];
  return s;
}

int edm2_tensor_rows(const edm2_tensor *t) { return t->ndim ? (int)t->shape[0] : 1; }

int edm2_tensor_fan_in(const edm2_tensor *t) {
  return t->ndim ? (int)(t->numel / t->shape[0]) : 1;
}

/* ---- flops (count_flops.py's rules, edm2-spec.md §5) -------------------------------------------
 * A traced op counts numel(output) multiply-adds, times 2 for lerp and clamp, times 3 for silu
 * and softmax; linalg_vector_norm counts numel(input); a convolution numel(out)·numel(w[1:]); a
 * matmul numel(out)·inner. 0-dimensional results count 1. Shape ops, casts, cat and dropout
 * count 0. The functions below follow the reference's forward op by op. */

/* MPConv's weight path in eval mode: vector_norm (numel), add eps (rows), div (numel), the
 * gain quotient (python gain 1: reciprocal + mul of 0-dim tensors; a gain parameter: one div),
 * mul (numel). */
static double weight_flops(const edm2_tensor *t, int gain_param) {
  return 3.0 * (double)t->numel + edm2_tensor_rows(t) + (gain_param ? 1 : 2);
}

static double mp_silu_flops(double n) { return 3 * n + n; }  /* silu ×3, then div */
static double mp_sum_flops(double n) { return 2 * n + n; }   /* lerp ×2, then div */
static double pixelnorm_flops(double c, double l) { return c * l + l + c * l; } /* norm, add, div */

static double block_flops(const edm2_arch *a, const edm2_block *k) {
  const edm2_tensor *T = a->tensors;
  double L = (double)k->res * k->res, C = k->out_ch, f = 0;
  /* mp_cat: its two weights are computed from traced shapes (a div and a mul each, on 0-dim
   * tensors), then wa·a and wb·b. */
  if (k->skip_ch) f += 4 + (double)k->in_ch * L;
  if (k->resample == EDM2_DOWN) f += (double)k->in_ch * L * 4;       /* depthwise 2×2 conv */
  if (k->resample == EDM2_UP) f += 4 + (double)k->in_ch * L * 4;     /* filter·4, transposed conv */
  double xin_ch = k->in_ch;
  if (k->enc) {
    if (k->conv_skip >= 0) {
      f += weight_flops(&T[k->conv_skip], 0) + C * L * k->in_ch;
      xin_ch = C;
    }
    f += pixelnorm_flops(xin_ch, L);
  }
  f += mp_silu_flops(xin_ch * L);
  f += weight_flops(&T[k->conv_res0], 0) + C * L * edm2_tensor_fan_in(&T[k->conv_res0]);
  f += weight_flops(&T[k->emb_linear], 1) + C * a->cemb + C; /* matmul, + 1 */
  f += C * L;                                                 /* y · c */
  f += mp_silu_flops(C * L);
  f += weight_flops(&T[k->conv_res1], 0) + C * L * C * 9;
  if (!k->enc && k->conv_skip >= 0) f += weight_flops(&T[k->conv_skip], 0) + C * L * k->in_ch;
  f += mp_sum_flops(C * L);
  if (k->heads) {
    double h = k->heads, ch = k->head_ch;
    f += weight_flops(&T[k->attn_qkv], 0) + 3 * C * L * C;
    f += 1;                                 /* H·W of the reshape, a traced 0-dim mul */
    f += 3 * C * L + h * 3 * L + 3 * C * L; /* normalize q, k, v: norm, add, div */
    f += C * L;                             /* k / sqrt(Ch) */
    f += h * L * L * ch;                    /* logits */
    f += 3 * h * L * L;                     /* softmax */
    f += h * ch * L * L;                    /* P · v */
    f += weight_flops(&T[k->attn_proj], 0) + C * L * C;
    f += mp_sum_flops(C * L);
  }
  if (a->cfg.clip_act > 0) f += 2 * C * L;
  return f;
}

double edm2_arch_flops(const edm2_arch *a) {
  const edm2_netcfg *c = &a->cfg;
  const edm2_tensor *T = a->tensors;
  double R2 = (double)c->img_resolution * c->img_resolution, img = c->img_channels * R2;
  double f = 16;   /* c_skip (4), c_out (5), c_in (5), c_noise (2) on the 1-element σ */
  f += img;        /* c_in · x */
  /* Embedding: Fourier features (outer, add, cos, mul), emb_noise, then labels. */
  f += 4.0 * a->cnoise;
  f += weight_flops(&T[a->emb_noise], 0) + (double)a->cemb * a->cnoise;
  if (a->emb_label >= 0) {
    f += c->label_dim;                                            /* labels · sqrt(L) */
    f += weight_flops(&T[a->emb_label], 0) + (double)a->cemb * c->label_dim;
    f += mp_sum_flops(a->cemb);
  }
  f += mp_silu_flops(a->cemb);
  /* Input convolution. */
  f += weight_flops(&T[a->enc_conv], 0) + (double)T[a->enc_conv].shape[0] * R2 * (c->img_channels + 1) * 9;
  for (int i = 0; i < a->n_blocks; i++) f += block_flops(a, &a->blocks[i]);
  f += weight_flops(&T[a->out_conv], 1) + img * T[a->out_conv].shape[1] * 9;
  f += 3 * img; /* c_skip · x, c_out · F, their sum */
  return f;
}
