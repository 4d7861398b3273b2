/* Forward and backward of the EDM2 denoiser (see pass.h). The forward follows the reference op by
 * op (edm2-spec.md §2 for a block, §3.5 for the U-Net, §4 for Precond); the backward walks it in
 * reverse. Every tensor the backward reads is kept in the arena by the forward. */
#include "trainer/pass.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/check.h"
#include "core/pool.h"
#include "nn/blas.h"
#include "nn/act.h"
#include "nn/attn.h"
#include "nn/conv.h"
#include "nn/dropout.h"
#include "nn/fourier.h"
#include "nn/norm.h"
#include "nn/resample.h"
#include "trainer/precond.h"

/* What one block keeps (N = the pass's capacity; C = out channels, Ci = in channels, L = pixels
 * at the block's resolution, Li = at its input's). Pointers may alias where noted. */
typedef struct edm2_block_acts edm2_block_acts;
struct edm2_block_acts {
  float *in;    /* the block's input: the previous module's output or x_cat (not owned) */
  float *x_cat; /* (N, Ci, Li) decoder blocks: mp_cat(main, skip) */
  float *x_r;   /* (N, Ci, L) resampled input; = in when the block keeps the resolution */
  float *x_s;   /* (N, C, L) encoder: conv_skip(x_r) */
  float *x_pre; /* encoder: what the pixel norm normalised (x_s or x_r) */
  float *m;     /* (N, Cm, L) the residual branch's input: pixel-normed (encoder) or x_r */
  float *a0;    /* (N, Cm, L) mp_silu(m) */
  float *y0;    /* (N, C, L) conv_res0(a0) */
  float *s;     /* (N, C) emb_linear(emb) */
  float *y1;    /* (N, C, L) y0 · (1 + s) */
  float *a1;    /* (N, C, L) dropout(mp_silu(y1)) */
  float *y2;    /* (N, C, L) conv_res1(a1) */
  float *x_k;   /* (N, C, L) decoder: conv_skip(m) */
  float *x2;    /* (N, C, L) mp_sum(main, y2) */
  float *qkv;   /* (N, 3C, L) attention input */
  float *att;   /* attention's saved state */
  float *o;     /* (N, C, L) attention output */
  float *y3;    /* (N, C, L) attn_proj(o) */
  float *x3;    /* (N, C, L) mp_sum(x2, y3) */
  float *out;   /* (N, C, L) clipped output */
};

/* One slice of the batch: everything the forward keeps and the backward needs for its images.
 * net, train, what, gain_of and skip_of are the pass's (shared, read-only during a pass). */
struct edm2_shard {
  edm2_net *net;
  int cap, train;
  const float *what;
  const int *gain_of, *skip_of;
  float *dwhat; /* this slice's gradient of the normalised weights (training mode) */
  /* Memory: activations (and gradients in training mode) in one arena; op scratch. */
  float *arena, *ws;
  size_t arena_size, ws_size;
  /* Per-image and top-level activations (cap rows each). */
  float *c_in, *c_skip, *c_out, *c_noise;
  float *x_in, *x_ones, *fourier, *e_noise, *labels, *e_label, *e_sum, *emb, *h0, *F, *lv_fourier;
  edm2_block_acts *blocks;
  float **skip_out; /* encoder module outputs (the skips), module 0 = input convolution */
  /* Gradient buffers (training mode). */
  float **dskip, *g_a, *g_b, *t1, *t2, *t3, *t4, *ds, *demb, *demb_t, *de0, *de1;
  /* The last forward: n images starting at image i0 of the pass's batch; their dropout masks
   * are those of images img0, img0 + 1, … (i0 + the pass's image_base). */
  int n, i0;
  int64_t img0;
  uint64_t seed;
  const float *x, *in_labels;
  const float *sigma;             /* inputs of the slice (forward jobs) */
  float *D, *logvar;              /* outputs of the slice (forward jobs) */
  const float *dD, *dlogvar;      /* inputs of the slice (backward jobs) */
};

#define ROUND(n) (((n) + 15) / 16 * 16)

/* Bump allocation in the arena: with base NULL it only counts (the planning pass). */
typedef struct {
  float *base;
  size_t used;
} bump;

static float *take(bump *b, size_t n) {
  float *p = b->base ? b->base + b->used : NULL;
  b->used += ROUND(n ? n : 1);
  return p;
}

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

static const float *W(const edm2_shard *p, int i) { return p->what + p->net->arch.tensors[i].offset; }
static float *dW(const edm2_shard *p, int i) { return p->dwhat + p->net->arch.tensors[i].offset; }

static int in_main_ch(const edm2_block *k) { return k->in_ch - k->skip_ch; }
static int resid_ch(const edm2_block *k) { return k->enc ? k->out_ch : k->in_ch; }

/* Assigns every activation and gradient buffer; counts only when b->base is NULL. Returns the
 * largest activation (elements) and the scratch the ops need. */
static void plan(edm2_shard *p, bump *b, size_t *ws_need) {
  const edm2_arch *a = &p->net->arch;
  const edm2_netcfg *c = &a->cfg;
  size_t N = (size_t)p->cap, R2 = (size_t)c->img_resolution * c->img_resolution;
  size_t I = (size_t)c->img_channels, C0 = (size_t)edm2_netcfg_cblock(c, 0);
  size_t ws = 0, big = N * (I + 1) * R2;
  p->c_in = take(b, N);
  p->c_skip = take(b, N);
  p->c_out = take(b, N);
  p->c_noise = take(b, N);
  p->x_in = take(b, N * I * R2);
  p->x_ones = take(b, N * (I + 1) * R2);
  p->fourier = take(b, N * (size_t)a->cnoise);
  p->e_noise = take(b, N * (size_t)a->cemb);
  p->labels = take(b, N * (size_t)(c->label_dim ? c->label_dim : 1));
  p->e_label = take(b, N * (size_t)a->cemb);
  p->e_sum = take(b, N * (size_t)a->cemb);
  p->emb = take(b, N * (size_t)a->cemb);
  p->h0 = take(b, N * C0 * R2);
  ws = max_z(ws, nn_conv2d_workspace(p->cap, c->img_channels + 1, (int)C0, c->img_resolution, c->img_resolution, 3));
  int si = 0;
  if (p->skip_out) p->skip_out[si] = p->h0;
  si++;
  for (int i = 0; i < a->n_blocks; i++) {
    const edm2_block *k = &a->blocks[i];
    edm2_block_acts *A = &p->blocks[i];
    size_t C = (size_t)k->out_ch, Ci = (size_t)k->in_ch, Cm = (size_t)resid_ch(k);
    size_t L = (size_t)k->res * k->res, Li = (size_t)k->res_in * k->res_in;
    memset(A, 0, sizeof *A);
    A->x_cat = k->skip_ch ? take(b, N * Ci * Li) : NULL;
    A->x_r = k->resample != EDM2_KEEP ? take(b, N * Ci * L) : NULL;
    if (k->enc) {
      A->x_s = k->conv_skip >= 0 ? take(b, N * C * L) : NULL;
      A->m = take(b, N * C * L);
    }
    A->a0 = take(b, N * Cm * L);
    A->y0 = take(b, N * C * L);
    A->s = take(b, N * C);
    A->y1 = take(b, N * C * L);
    A->a1 = take(b, N * C * L);
    A->y2 = take(b, N * C * L);
    A->x_k = !k->enc && k->conv_skip >= 0 ? take(b, N * C * L) : NULL;
    A->x2 = take(b, N * C * L);
    if (k->heads) {
      A->qkv = take(b, N * 3 * C * L);
      A->att = take(b, nn_attn_saved_size(p->cap, k->heads, k->head_ch, L));
      A->o = take(b, N * C * L);
      A->y3 = take(b, N * C * L);
      A->x3 = take(b, N * C * L);
      ws = max_z(ws, nn_attn_workspace(p->cap, k->heads, k->head_ch, L));
    }
    A->out = take(b, N * C * L);
    if (k->enc && p->skip_out) p->skip_out[si] = A->out;
    if (k->enc) si++;
    big = max_z(big, N * max_z(Ci * Li, (k->heads ? 3 : 1) * C * L));
    big = max_z(big, N * Ci * L);
    ws = max_z(ws, nn_conv2d_workspace(p->cap, (int)Cm, (int)C, k->res, k->res, 3));
    ws = max_z(ws, nn_conv2d_workspace(p->cap, (int)C, (int)C, k->res, k->res, 3));
    ws = max_z(ws, nn_conv2d_workspace(p->cap, (int)Ci, (int)C, k->res, k->res, 1));
    (void)in_main_ch;
  }
  const edm2_tensor *oc = &a->tensors[a->out_conv];
  ws = max_z(ws, nn_conv2d_workspace(p->cap, (int)oc->shape[1], c->img_channels, c->img_resolution, c->img_resolution, 3));
  p->F = take(b, N * I * R2);
  p->lv_fourier = take(b, N * (size_t)c->logvar_channels);
  if (p->train) {
    for (int s = 0; s < a->n_skips; s++) {
      /* The skip's size: its producer's output. */
      size_t sz = s == 0 ? N * C0 * R2 : 0;
      if (s > 0) {
        int e = 0;
        for (int i = 0; i < a->n_enc_blocks; i++)
          if (++e == s) sz = N * (size_t)a->blocks[i].out_ch * a->blocks[i].res * a->blocks[i].res;
      }
      float *d = take(b, sz);
      if (p->dskip) p->dskip[s] = d;
    }
    p->g_a = take(b, big);
    p->g_b = take(b, big);
    p->t1 = take(b, big);
    p->t2 = take(b, big);
    p->t3 = take(b, big);
    p->t4 = take(b, big);
    size_t cmax = 0;
    for (int i = 0; i < a->n_blocks; i++) cmax = max_z(cmax, (size_t)a->blocks[i].out_ch);
    p->ds = take(b, N * cmax);
    p->demb = take(b, N * (size_t)a->cemb);
    p->demb_t = take(b, N * (size_t)a->cemb);
    p->de0 = take(b, N * (size_t)a->cemb);
    p->de1 = take(b, N * (size_t)a->cemb);
  }
  *ws_need = ws;
}

static void shard_free(edm2_shard *s) {
  ec_freep(&s->blocks);
  ec_freep(&s->skip_out);
  ec_freep(&s->dskip);
  ec_freep(&s->dwhat);
  ec_freep(&s->arena);
  ec_freep(&s->ws);
}

static ec_status shard_init(edm2_shard *s, const edm2_pass *p, int cap) {
  const edm2_arch *a = &p->net->arch;
  memset(s, 0, sizeof *s);
  s->net = p->net;
  s->cap = cap;
  s->train = p->train;
  s->what = p->what;
  s->gain_of = p->gain_of;
  s->skip_of = p->skip_of;
  s->blocks = ec_calloc((size_t)a->n_blocks, sizeof *s->blocks);
  s->skip_out = ec_calloc((size_t)a->n_skips, sizeof *s->skip_out);
  s->dskip = s->train ? ec_calloc((size_t)a->n_skips, sizeof *s->dskip) : NULL;
  s->dwhat = s->train ? ec_aligned_alloc(a->params_size * sizeof(float)) : NULL;
  if (!s->blocks || !s->skip_out || (s->train && (!s->dskip || !s->dwhat))) return EC_ENOMEM;
  bump b = {0};
  size_t ws;
  plan(s, &b, &ws);
  s->arena_size = b.used;
  s->ws_size = ROUND(ws ? ws : 1);
  s->arena = ec_aligned_alloc(s->arena_size * sizeof(float));
  s->ws = ec_aligned_alloc(s->ws_size * sizeof(float));
  if (!s->arena || !s->ws) return EC_ENOMEM;
  b = (bump){.base = s->arena};
  plan(s, &b, &ws);
  EC_ASSERT(b.used == s->arena_size);
  return EC_OK;
}

ec_status edm2_pass_init(edm2_pass *p, edm2_net *net, int cap, int train, int threads) {
  memset(p, 0, sizeof *p);
  EC_ASSERT(cap >= 1 && threads >= 1);
  const edm2_arch *a = &net->arch;
  p->net = net;
  p->cap = cap;
  p->train = train;
  p->threads = threads;
  p->nshards = threads < cap ? threads : cap;
  p->shards = ec_calloc((size_t)p->nshards, sizeof *p->shards);
  p->skip_of = ec_calloc((size_t)a->n_blocks, sizeof *p->skip_of);
  p->gain_of = ec_calloc((size_t)a->n_tensors, sizeof *p->gain_of);
  p->what = ec_aligned_alloc(a->params_size * sizeof(float));
  if (!p->shards || !p->skip_of || !p->gain_of || !p->what) goto oom;
  memset(p->what, 0, a->params_size * sizeof(float));

  /* Which gain scales which weight: a block's emb_linear uses its emb_gain, out_conv out_gain. */
  for (int i = 0; i < a->n_tensors; i++) p->gain_of[i] = -1;
  for (int i = 0; i < a->n_blocks; i++) p->gain_of[a->blocks[i].emb_linear] = a->blocks[i].emb_gain;
  p->gain_of[a->out_conv] = a->out_gain;

  /* The skip each decoder block pops (the stack of encoder module outputs, §3.5). */
  int stack = a->n_skips;
  for (int i = 0; i < a->n_blocks; i++) p->skip_of[i] = a->blocks[i].skip_ch ? --stack : -1;
  EC_ASSERT(stack == 0);

  /* Slices of ceil(cap / nshards) images: any batch up to cap splits into nshards slices no
   * larger than that. */
  int per = (cap + p->nshards - 1) / p->nshards;
  for (int t = 0; t < p->nshards; t++)
    if (shard_init(&p->shards[t], p, per)) goto oom;
  if (p->nshards > 1) {
    ec_status st = ec_pool_create(&p->pool, p->nshards);
    if (st) {
      edm2_pass_free(p);
      return st;
    }
  }
  return EC_OK;
oom:
  edm2_pass_free(p);
  return ec_err(EC_ENOMEM, "out of memory for a batch of %d images (network activations)", cap);
}

void edm2_pass_free(edm2_pass *p) {
  if (!p) return;
  ec_pool_destroy(&p->pool);
  if (p->shards)
    for (int t = 0; t < p->nshards; t++) shard_free(&p->shards[t]);
  ec_freep(&p->shards);
  ec_freep(&p->skip_of);
  ec_freep(&p->gain_of);
  ec_freep(&p->what);
  memset(p, 0, sizeof *p);
}

size_t edm2_pass_bytes(const edm2_pass *p) {
  size_t n = p->net->arch.params_size; /* what */
  for (int t = 0; t < p->nshards; t++) {
    const edm2_shard *s = &p->shards[t];
    n += s->arena_size + s->ws_size + (s->dwhat ? p->net->arch.params_size : 0);
  }
  return n * sizeof(float);
}

/* ---- running jobs on the shards -------------------------------------------------------------- */

/* Runs fn(ctx, i) for i in [0, n): on the pool's threads with single-threaded OpenBLAS when
 * there is more than one item and a pool, else here with OpenBLAS's threads. */
typedef struct {
  void (*fn)(void *ctx, int64_t i);
  void *ctx;
} job;

static void job_run(void *ctx, int64_t i, int worker) {
  (void)worker;
  const job *j = ctx;
  j->fn(j->ctx, i);
}

static void run_jobs(edm2_pass *p, int64_t n, void (*fn)(void *ctx, int64_t i), void *ctx) {
  if (n <= 0) return;
  if (n == 1 || !p->pool) {
    nn_blas_set_threads(p->threads);
    for (int64_t i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  nn_blas_set_threads(1);
  job j = {fn, ctx};
  ec_pool_start(p->pool, n, job_run, &j);
  ec_pool_wait(p->pool);
}

/* ---- forward --------------------------------------------------------------------------------- */

/* Normalises weight i into p->what; in training mode first normalises it in place. */
static void normalize_weight(void *ctx, int64_t i) {
  edm2_pass *p = ctx;
  edm2_net *net = p->net;
  const edm2_arch *a = &net->arch;
  const edm2_tensor *t = &a->tensors[i];
  if (t->kind != EDM2_PARAM || t->ndim < 2) return;
  float *w = net->params + t->offset;
  int rows = edm2_tensor_rows(t), fan_in = edm2_tensor_fan_in(t);
  if (p->train) nn_weightnorm_force_ref(NULL, w, rows, fan_in);
  const float *gain = p->gain_of[i] >= 0 ? net->params + a->tensors[p->gain_of[i]].offset : NULL;
  nn_weightnorm_fwd_ref(NULL, p->what + t->offset, w, gain, rows, fan_in);
}

/* Block bi's dropout masks are elements (bi << 40) + (image · per_image + j) of the seed's
 * stream, so they do not depend on how the batch is sliced. */
static uint64_t dropout_offset(const edm2_shard *p, int bi, size_t per_image) {
  return ((uint64_t)bi << 40) + (uint64_t)p->img0 * per_image;
}

static void block_forward(edm2_shard *p, int bi, float *in) {
  const edm2_arch *a = &p->net->arch;
  const edm2_netcfg *c = &a->cfg;
  const edm2_block *k = &a->blocks[bi];
  edm2_block_acts *A = &p->blocks[bi];
  int n = p->n, C = k->out_ch, Ci = k->in_ch, res = k->res;
  size_t L = (size_t)res * res, nCL = (size_t)n * C * L;
  A->in = in;
  float *x = in;
  if (k->resample == EDM2_DOWN) nn_down2_fwd_ref(NULL, A->x_r, x, n, Ci, k->res_in, k->res_in);
  if (k->resample == EDM2_UP) nn_up2_fwd_ref(NULL, A->x_r, x, n, Ci, k->res_in, k->res_in);
  if (k->resample != EDM2_KEEP) x = A->x_r;
  else A->x_r = x;
  int Cm = resid_ch(k);
  if (k->enc) {
    A->x_pre = x;
    if (k->conv_skip >= 0) {
      nn_conv2d_fwd_ref(NULL, A->x_s, x, W(p, k->conv_skip), n, Ci, C, res, res, 1, p->ws);
      A->x_pre = A->x_s;
    }
    nn_pixelnorm_fwd_ref(NULL, A->m, A->x_pre, n, C, L);
  } else {
    A->m = x;
  }
  /* Residual branch. */
  nn_mp_silu_fwd_ref(NULL, A->a0, A->m, (size_t)n * Cm * L);
  nn_conv2d_fwd_ref(NULL, A->y0, A->a0, W(p, k->conv_res0), n, Cm, C, res, res, 3, p->ws);
  nn_linear_fwd_ref(NULL, A->s, p->emb, W(p, k->emb_linear), n, a->cemb, C);
  nn_modulate_fwd_ref(NULL, A->y1, A->y0, A->s, n, C, L);
  nn_mp_silu_fwd_ref(NULL, A->a1, A->y1, nCL);
  if (p->train && c->dropout > 0)
    nn_dropout_fwd_ref(NULL, A->a1, A->a1, nCL, c->dropout, p->seed, dropout_offset(p, bi, C * L));
  nn_conv2d_fwd_ref(NULL, A->y2, A->a1, W(p, k->conv_res1), n, C, C, res, res, 3, p->ws);
  /* Main path and the join. */
  const float *main_x = A->m;
  if (!k->enc && k->conv_skip >= 0) {
    nn_conv2d_fwd_ref(NULL, A->x_k, A->m, W(p, k->conv_skip), n, Ci, C, res, res, 1, p->ws);
    main_x = A->x_k;
  }
  nn_mp_sum_fwd_ref(NULL, A->x2, main_x, A->y2, c->res_balance, nCL);
  const float *h = A->x2;
  if (k->heads) {
    nn_conv2d_fwd_ref(NULL, A->qkv, A->x2, W(p, k->attn_qkv), n, C, 3 * C, res, res, 1, p->ws);
    nn_attn_fwd_ref(NULL, A->o, A->att, A->qkv, n, k->heads, k->head_ch, L, p->ws);
    nn_conv2d_fwd_ref(NULL, A->y3, A->o, W(p, k->attn_proj), n, C, C, res, res, 1, p->ws);
    nn_mp_sum_fwd_ref(NULL, A->x3, A->x2, A->y3, c->attn_balance, nCL);
    h = A->x3;
  }
  if (c->clip_act > 0) nn_clip_fwd_ref(NULL, A->out, h, c->clip_act, nCL);
  else memcpy(A->out, h, nCL * sizeof(float));
}

/* The forward of one slice: its inputs and outputs are set in the shard by edm2_forward. */
static void shard_forward(void *ctx, int64_t shard) {
  edm2_shard *p = &((edm2_pass *)ctx)->shards[shard];
  const edm2_arch *a = &p->net->arch;
  const edm2_netcfg *c = &a->cfg;
  const int n = p->n;
  const float *x = p->x, *sigma = p->sigma, *labels = p->in_labels;
  float *D = p->D, *logvar = p->logvar;
  int I = c->img_channels, R = c->img_resolution;
  size_t M = (size_t)I * R * R, ne = (size_t)n * a->cemb;
  const float *buf = p->net->buffers;

  /* Preconditioning (§4) and the embedding (§3.5 step 1). */
  edm2_precond_coefs_ref(NULL, p->c_in, p->c_skip, p->c_out, p->c_noise, sigma, n, c->sigma_data);
  nn_rows_axpby_ref(NULL, p->x_in, p->c_in, x, NULL, NULL, n, M);
  nn_fourier_fwd_ref(NULL, p->fourier, p->c_noise, buf + a->tensors[a->emb_freqs].offset,
                     buf + a->tensors[a->emb_phases].offset, n, a->cnoise);
  nn_linear_fwd_ref(NULL, p->e_noise, p->fourier, W(p, a->emb_noise), n, a->cnoise, a->cemb);
  const float *e = p->e_noise;
  if (a->emb_label >= 0) {
    size_t nl = (size_t)n * c->label_dim;
    if (labels) nn_scale_ref(NULL, p->labels, labels, sqrt((double)c->label_dim), nl);
    else memset(p->labels, 0, nl * sizeof(float));
    nn_linear_fwd_ref(NULL, p->e_label, p->labels, W(p, a->emb_label), n, c->label_dim, a->cemb);
    nn_mp_sum_fwd_ref(NULL, p->e_sum, p->e_noise, p->e_label, c->label_balance, ne);
    e = p->e_sum;
  }
  nn_mp_silu_fwd_ref(NULL, p->emb, e, ne);

  /* Encoder, with the constant-one channel; every module's output is a skip. */
  nn_append_ones_fwd_ref(NULL, p->x_ones, p->x_in, n, I, (size_t)R * R);
  nn_conv2d_fwd_ref(NULL, p->h0, p->x_ones, W(p, a->enc_conv), n, I + 1, edm2_netcfg_cblock(c, 0), R, R,
                    3, p->ws);
  float *cur = p->h0;
  for (int i = 0; i < a->n_blocks; i++) {
    const edm2_block *k = &a->blocks[i];
    if (k->skip_ch) {
      edm2_block_acts *A = &p->blocks[i];
      nn_mp_cat_fwd_ref(NULL, A->x_cat, cur, p->skip_out[p->skip_of[i]], n, in_main_ch(k), k->skip_ch,
                        (size_t)k->res_in * k->res_in, c->concat_balance);
      cur = A->x_cat;
    }
    block_forward(p, i, cur);
    cur = p->blocks[i].out;
  }

  /* Output: F, then D = c_skip·x + c_out·F; the log-variance head. */
  const edm2_tensor *oc = &a->tensors[a->out_conv];
  nn_conv2d_fwd_ref(NULL, p->F, cur, W(p, a->out_conv), n, (int)oc->shape[1], I, R, R, 3, p->ws);
  nn_rows_axpby_ref(NULL, D, p->c_skip, x, p->c_out, p->F, n, M);
  nn_fourier_fwd_ref(NULL, p->lv_fourier, p->c_noise, buf + a->tensors[a->logvar_freqs].offset,
                     buf + a->tensors[a->logvar_phases].offset, n, c->logvar_channels);
  if (logvar) nn_linear_fwd_ref(NULL, logvar, p->lv_fourier, W(p, a->logvar_linear), n, c->logvar_channels, 1);
}

/* Image range [lo, hi) of slice t when n images are cut into `active` slices. */
static void slice(int n, int active, int t, int *lo, int *hi) {
  *lo = (int)((int64_t)n * t / active);
  *hi = (int)((int64_t)n * (t + 1) / active);
}

void edm2_forward(edm2_pass *p, int n, const float *x, const float *sigma, const float *labels,
                  float *D, float *logvar, uint64_t seed) {
  const edm2_netcfg *c = &p->net->arch.cfg;
  EC_ASSERTF(n >= 1 && n <= p->cap, "batch %d outside 1..%d", n, p->cap);
  p->n = n;
  p->have_forward = 0;
  run_jobs(p, p->net->arch.n_tensors, normalize_weight, p);
  p->active = n < p->nshards ? n : p->nshards;
  const size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  const size_t Ld = (size_t)(c->label_dim ? c->label_dim : 0);
  for (int t = 0; t < p->active; t++) {
    edm2_shard *s = &p->shards[t];
    int lo, hi;
    slice(n, p->active, t, &lo, &hi);
    EC_ASSERT(hi - lo >= 1 && hi - lo <= s->cap);
    s->n = hi - lo;
    s->i0 = lo;
    s->img0 = p->image_base + lo;
    s->seed = seed;
    s->x = x + (size_t)lo * M;
    s->sigma = sigma + lo;
    s->in_labels = labels ? labels + (size_t)lo * Ld : NULL;
    s->D = D + (size_t)lo * M;
    s->logvar = logvar ? logvar + lo : NULL;
  }
  run_jobs(p, p->active, shard_forward, p);
  p->have_forward = 1;
}

/* ---- backward -------------------------------------------------------------------------------- */

/* g: (n, C, L) gradient of the block's output (clobbered). gin: (n, Ci, Li) gradient of its
 * input, OVERWRITTEN. Weight gradients accumulate into dwhat, the embedding's into p->demb. */
static void block_backward(edm2_shard *p, int bi, float *g, float *gin) {
  const edm2_arch *a = &p->net->arch;
  const edm2_netcfg *c = &a->cfg;
  const edm2_block *k = &a->blocks[bi];
  edm2_block_acts *A = &p->blocks[bi];
  int n = p->n, C = k->out_ch, Ci = k->in_ch, Cm = resid_ch(k), res = k->res;
  size_t L = (size_t)res * res, nCL = (size_t)n * C * L;
  float *t1 = p->t1, *t2 = p->t2, *t3 = p->t3, *t4 = p->t4;

  if (c->clip_act > 0) nn_clip_bwd_ref(NULL, g, g, A->out, c->clip_act, nCL);
  float *gx2 = g;
  if (k->heads) {
    nn_mp_sum_bwd_ref(NULL, t1, t2, g, c->attn_balance, nCL); /* t1 = d x2, t2 = d y3 */
    nn_conv2d_bwd_ref(NULL, t3, dW(p, k->attn_proj), t2, A->o, W(p, k->attn_proj), n, C, C, res, res, 1, p->ws);
    nn_attn_bwd_ref(NULL, t2, t3, A->att, A->qkv, n, k->heads, k->head_ch, L, p->ws); /* t2 = d qkv */
    nn_conv2d_bwd_ref(NULL, t3, dW(p, k->attn_qkv), t2, A->x2, W(p, k->attn_qkv), n, C, 3 * C, res, res, 1, p->ws);
    nn_acc_ref(NULL, t1, t3, nCL);
    gx2 = t1;
  }
  /* x2 = mp_sum(main, y2): t2 = d main, t3 = d y2. */
  nn_mp_sum_bwd_ref(NULL, t2, t3, gx2, c->res_balance, nCL);
  nn_conv2d_bwd_ref(NULL, t4, dW(p, k->conv_res1), t3, A->a1, W(p, k->conv_res1), n, C, C, res, res, 3, p->ws);
  if (p->train && c->dropout > 0)
    nn_dropout_bwd_ref(NULL, t4, t4, nCL, c->dropout, p->seed, dropout_offset(p, bi, C * L));
  nn_mp_silu_bwd_ref(NULL, t4, t4, A->y1, nCL);                       /* d y1 */
  nn_modulate_bwd_ref(NULL, t4, p->ds, t4, A->y0, A->s, n, C, L);     /* d y0, d s */
  nn_linear_bwd_ref(NULL, p->demb_t, dW(p, k->emb_linear), p->ds, p->emb, W(p, k->emb_linear), n, a->cemb, C);
  nn_acc_ref(NULL, p->demb, p->demb_t, (size_t)n * a->cemb);
  nn_conv2d_bwd_ref(NULL, t3, dW(p, k->conv_res0), t4, A->a0, W(p, k->conv_res0), n, Cm, C, res, res, 3, p->ws);
  nn_mp_silu_bwd_ref(NULL, t3, t3, A->m, (size_t)n * Cm * L);         /* t3 = d m (residual) */
  if (!k->enc && k->conv_skip >= 0) {
    nn_conv2d_bwd_ref(NULL, t4, dW(p, k->conv_skip), t2, A->m, W(p, k->conv_skip), n, Ci, C, res, res, 1, p->ws);
    nn_acc_ref(NULL, t3, t4, (size_t)n * Ci * L);
  } else {
    nn_acc_ref(NULL, t3, t2, (size_t)n * Cm * L);
  }
  float *gx = t3; /* d x_r (decoder) or d m (encoder) */
  if (k->enc) {
    nn_pixelnorm_bwd_ref(NULL, t4, t3, A->x_pre, n, C, L);
    gx = t4;
    if (k->conv_skip >= 0) {
      nn_conv2d_bwd_ref(NULL, t3, dW(p, k->conv_skip), t4, A->x_r, W(p, k->conv_skip), n, Ci, C, res, res, 1, p->ws);
      gx = t3;
    }
  }
  if (k->resample == EDM2_DOWN) nn_down2_bwd_ref(NULL, gin, gx, n, Ci, k->res_in, k->res_in);
  else if (k->resample == EDM2_UP) nn_up2_bwd_ref(NULL, gin, gx, n, Ci, k->res_in, k->res_in);
  else memcpy(gin, gx, (size_t)n * Ci * L * sizeof(float));
}

/* The backward of one slice, into its own dwhat (overwritten). */
static void shard_backward(void *ctx, int64_t shard) {
  edm2_shard *p = &((edm2_pass *)ctx)->shards[shard];
  const edm2_arch *a = &p->net->arch;
  const edm2_netcfg *c = &a->cfg;
  const float *dD = p->dD, *dlogvar = p->dlogvar;
  int n = p->n, I = c->img_channels, R = c->img_resolution;
  size_t M = (size_t)I * R * R, ne = (size_t)n * a->cemb;
  memset(p->dwhat, 0, a->params_size * sizeof(float));
  memset(p->demb, 0, ne * sizeof(float));

  /* Uncertainty head. */
  if (dlogvar)
    nn_linear_bwd_ref(NULL, NULL, dW(p, a->logvar_linear), dlogvar, p->lv_fourier, W(p, a->logvar_linear),
                      n, c->logvar_channels, 1);

  /* D = c_skip·x + c_out·F  →  dF = c_out·dD; then the output convolution. */
  const edm2_tensor *oc = &a->tensors[a->out_conv];
  nn_rows_axpby_ref(NULL, p->t1, p->c_out, dD, NULL, NULL, n, M);
  float *g = p->g_a, *gin = p->g_b;
  const float *last = p->blocks[a->n_blocks - 1].out;
  nn_conv2d_bwd_ref(NULL, g, dW(p, a->out_conv), p->t1, last, W(p, a->out_conv), n, (int)oc->shape[1], I, R, R,
                    3, p->ws);

  /* Decoder, last block first; each concatenation hands its skip's gradient to dskip. */
  for (int i = a->n_blocks - 1; i >= a->n_enc_blocks; i--) {
    const edm2_block *k = &a->blocks[i];
    block_backward(p, i, g, gin);
    if (k->skip_ch) {
      nn_mp_cat_bwd_ref(NULL, g, p->dskip[p->skip_of[i]], gin, n, in_main_ch(k), k->skip_ch,
                        (size_t)k->res_in * k->res_in, c->concat_balance);
    } else {
      float *t = g;
      g = gin;
      gin = t;
    }
  }
  /* Encoder: a module's output gradient is the next module's input gradient plus its skip's. */
  for (int i = a->n_enc_blocks - 1; i >= 0; i--) {
    const edm2_block *k = &a->blocks[i];
    nn_acc_ref(NULL, g, p->dskip[i + 1], (size_t)n * k->out_ch * k->res * k->res);
    block_backward(p, i, g, gin);
    float *t = g;
    g = gin;
    gin = t;
  }
  size_t C0 = (size_t)edm2_netcfg_cblock(c, 0);
  nn_acc_ref(NULL, g, p->dskip[0], (size_t)n * C0 * R * R);
  nn_conv2d_bwd_ref(NULL, NULL, dW(p, a->enc_conv), g, p->x_ones, W(p, a->enc_conv), n, I + 1, (int)C0, R, R, 3,
                    p->ws);

  /* Embedding: emb = mp_silu(mp_sum(e_noise, e_label)). */
  const float *e = a->emb_label >= 0 ? p->e_sum : p->e_noise;
  nn_mp_silu_bwd_ref(NULL, p->demb, p->demb, e, ne);
  const float *de_noise = p->demb;
  if (a->emb_label >= 0) {
    nn_mp_sum_bwd_ref(NULL, p->de0, p->de1, p->demb, c->label_balance, ne);
    nn_linear_bwd_ref(NULL, NULL, dW(p, a->emb_label), p->de1, p->labels, W(p, a->emb_label), n, c->label_dim,
                      a->cemb);
    de_noise = p->de0;
  }
  nn_linear_bwd_ref(NULL, NULL, dW(p, a->emb_noise), de_noise, p->fourier, W(p, a->emb_noise), n, a->cnoise,
                    a->cemb);

}

/* Chunks of the parameter slab that the gradient reduction hands out. */
#define REDUCE_CHUNK ((size_t)1 << 16)

typedef struct {
  edm2_pass *p;
  float *grads;
} bwd_ctx;

/* Shard 0's dwhat += the other active shards', for one chunk. */
static void reduce_chunk(void *ctx, int64_t k) {
  edm2_pass *p = ((bwd_ctx *)ctx)->p;
  size_t lo = (size_t)k * REDUCE_CHUNK, hi = lo + REDUCE_CHUNK;
  if (hi > p->net->arch.params_size) hi = p->net->arch.params_size;
  for (int t = 1; t < p->active; t++)
    nn_acc_ref(NULL, p->shards[0].dwhat + lo, p->shards[t].dwhat + lo, hi - lo);
}

/* Through the weight normalisation of tensor i to the stored weight and its gain. Each gain
 * scales one weight, so tensors can run concurrently. */
static void weightnorm_backward(void *ctx, int64_t i) {
  edm2_pass *p = ((bwd_ctx *)ctx)->p;
  float *grads = ((bwd_ctx *)ctx)->grads;
  const edm2_net *net = p->net;
  const edm2_arch *a = &net->arch;
  const edm2_tensor *t = &a->tensors[i];
  if (t->kind != EDM2_PARAM || t->ndim < 2) return;
  int gi = p->gain_of[i];
  const float *gain = gi >= 0 ? net->params + a->tensors[gi].offset : NULL;
  nn_weightnorm_bwd_ref(NULL, grads + t->offset, gi >= 0 ? grads + a->tensors[gi].offset : NULL,
                        p->shards[0].dwhat + t->offset, net->params + t->offset, gain, edm2_tensor_rows(t),
                        edm2_tensor_fan_in(t));
}

void edm2_backward(edm2_pass *p, const float *dD, const float *dlogvar, float *grads) {
  EC_ASSERTF(p->train && p->have_forward, "edm2_backward needs a training-mode forward first");
  const edm2_netcfg *c = &p->net->arch.cfg;
  const size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  for (int t = 0; t < p->active; t++) {
    edm2_shard *s = &p->shards[t];
    s->dD = dD + (size_t)s->i0 * M;
    s->dlogvar = dlogvar ? dlogvar + s->i0 : NULL;
  }
  run_jobs(p, p->active, shard_backward, p);
  bwd_ctx ctx = {p, grads};
  if (p->active > 1)
    run_jobs(p, (int64_t)((p->net->arch.params_size + REDUCE_CHUNK - 1) / REDUCE_CHUNK), reduce_chunk, &ctx);
  run_jobs(p, p->net->arch.n_tensors, weightnorm_backward, &ctx);
}

/* ---- activation magnitudes -------------------------------------------------------------------- */

/* "unet.enc.32x32_block0" → "enc32"; 0 for a name outside the encoder and decoder. */
static int block_bucket(const char *name, char *out, size_t size) {
  const char *side = !strncmp(name, "unet.enc.", 9) ? "enc" : !strncmp(name, "unet.dec.", 9) ? "dec" : NULL;
  if (!side) return 0;
  snprintf(out, size, "%s%d", side, atoi(name + 9));
  return 1;
}

/* Adds, per feature c, the image-average of sqrt(mean_l h[i, c, l]²) over the shards' images
 * to acc[c], for the activation found at byte offset `field` of each shard's block record. */
static void feature_magnitudes(const edm2_pass *p, int bi, size_t field, int C, size_t L, double *acc) {
  for (int t = 0; t < p->active; t++) {
    const edm2_shard *s = &p->shards[t];
    const float *h = *(float *const *)((const char *)&s->blocks[bi] + field);
    for (int i = 0; i < s->n; i++)
      for (int c = 0; c < C; c++) {
        const float *v = h + ((size_t)i * C + c) * L;
        double q = 0;
        for (size_t l = 0; l < L; l++) q += (double)v[l] * v[l];
        acc[c] += sqrt(q / (double)L) / p->n;
      }
  }
}

int edm2_pass_act_magnitudes(const edm2_pass *p, edm2_act_magnitude *out, int cap) {
  EC_ASSERTF(p->have_forward, "edm2_pass_act_magnitudes needs a forward first");
  const edm2_arch *a = &p->net->arch;
  int nb = 0;
  int64_t count[64] = {0};
  double *acc = NULL;
  size_t acc_cap = 0;
  for (int bi = 0; bi < a->n_blocks; bi++) {
    const edm2_block *k = &a->blocks[bi];
    char b[16];
    if (!block_bucket(k->name, b, sizeof b)) continue;
    int j = 0;
    while (j < nb && strcmp(out[j].bucket, b)) j++;
    if (j == nb) {
      if (nb == cap || nb == 64) continue;
      snprintf(out[nb].bucket, sizeof out[nb].bucket, "%s", b);
      out[nb].max = out[nb].mean = 0;
      nb++;
    }
    /* The block's weight-using outputs: (field, features, pixels). */
    const size_t L = (size_t)k->res * k->res;
    struct {
      size_t field;
      int C;
      size_t L;
      int present;
    } acts[] = {
        {offsetof(edm2_block_acts, x_s), k->out_ch, L, k->enc && k->conv_skip >= 0},
        {offsetof(edm2_block_acts, y0), k->out_ch, L, 1},
        {offsetof(edm2_block_acts, s), k->out_ch, 1, 1},
        {offsetof(edm2_block_acts, y2), k->out_ch, L, 1},
        {offsetof(edm2_block_acts, x_k), k->out_ch, L, !k->enc && k->conv_skip >= 0},
        {offsetof(edm2_block_acts, qkv), 3 * k->out_ch, L, k->heads > 0},
        {offsetof(edm2_block_acts, y3), k->out_ch, L, k->heads > 0},
    };
    for (size_t q = 0; q < sizeof acts / sizeof *acts; q++) {
      if (!acts[q].present) continue;
      const size_t C = (size_t)acts[q].C;
      if (C > acc_cap) {
        double *nacc = realloc(acc, C * sizeof *acc);
        EC_ASSERT(nacc != NULL);
        acc = nacc;
        acc_cap = C;
      }
      memset(acc, 0, C * sizeof *acc);
      feature_magnitudes(p, bi, acts[q].field, acts[q].C, acts[q].L, acc);
      for (size_t c = 0; c < C; c++) {
        out[j].max = fmax(out[j].max, acc[c]);
        out[j].mean += acc[c];
        count[j]++;
      }
    }
  }
  for (int j = 0; j < nb; j++) out[j].mean /= count[j] ? (double)count[j] : 1;
  free(acc);
  return nb;
}
