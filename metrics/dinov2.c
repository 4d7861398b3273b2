/* The DINOv2 ViT-L/14 forward on nn/ ops (metrics/dinov2.h). Images run one at a time; the token
 * matrices are token-major (257 rows of 1024), so every linear layer is one GEMM of 257 rows. */
#include "metrics/dinov2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "metrics/hash_weights.h"
#include "nn/gelu.h"
#include "nn/layernorm.h"
#include "nn/linear.h"
#include "nn/sdpa.h"

enum { D = DINOV2_DIM, T = DINOV2_TOKENS, HID = DINOV2_MLP, S16 = DINOV2_SIZE / DINOV2_PATCH };
#define PATCH_K (3 * DINOV2_PATCH * DINOV2_PATCH) /* 588, the patch embedding's fan-in */

typedef struct {
  float *norm1_w, *norm1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ls1;
  float *norm2_w, *norm2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ls2;
} dino_block;

struct dinov2 {
  float *patch_w, *patch_b; /* (1024, 588), (1024) */
  float *cls;               /* (1024) */
  float *pos;               /* (257, 1024), interpolated */
  float *norm_w, *norm_b;
  dino_block blk[DINOV2_DEPTH];
};

/* ---- loading --------------------------------------------------------------------------------- */

static void free_block(dino_block *b) {
  float **p = (float **)b;
  for (size_t i = 0; i < sizeof *b / sizeof(float *); i++) free(p[i]);
}

void dinov2_free(dinov2 *net) {
  if (!net) return;
  free(net->patch_w), free(net->patch_b), free(net->cls), free(net->pos), free(net->norm_w);
  free(net->norm_b);
  for (int i = 0; i < DINOV2_DEPTH; i++) free_block(&net->blk[i]);
  free(net);
}

/* *dst = a new array of n floats filled by src with tensor `name`, checked finite. */
static ec_status load(float **dst, dinov2_source src, void *user, const char *name, size_t n) {
  float *p = malloc(n * sizeof(float));
  if (!p) return ec_err(EC_ENOMEM, "dinov2: out of memory for %s", name);
  ec_status st = src(user, name, p, n);
  for (size_t i = 0; st == EC_OK && i < n; i++)
    if (!isfinite(p[i]))
      st = ec_err(EC_EFORMAT, "dinov2: %s: element %zu is %g (need finite weights)", name, i, p[i]);
  if (st != EC_OK) {
    free(p);
    return st;
  }
  *dst = p;
  return EC_OK;
}

static ec_status load_block(dino_block *b, int i, dinov2_source src, void *user) {
  static const struct {
    const char *name;
    size_t off, n;
  } t[] = {
      {"norm1.weight", offsetof(dino_block, norm1_w), D},
      {"norm1.bias", offsetof(dino_block, norm1_b), D},
      {"attn.qkv.weight", offsetof(dino_block, qkv_w), (size_t)3 * D * D},
      {"attn.qkv.bias", offsetof(dino_block, qkv_b), 3 * D},
      {"attn.proj.weight", offsetof(dino_block, proj_w), (size_t)D * D},
      {"attn.proj.bias", offsetof(dino_block, proj_b), D},
      {"ls1.gamma", offsetof(dino_block, ls1), D},
      {"norm2.weight", offsetof(dino_block, norm2_w), D},
      {"norm2.bias", offsetof(dino_block, norm2_b), D},
      {"mlp.fc1.weight", offsetof(dino_block, fc1_w), (size_t)HID * D},
      {"mlp.fc1.bias", offsetof(dino_block, fc1_b), HID},
      {"mlp.fc2.weight", offsetof(dino_block, fc2_w), (size_t)D * HID},
      {"mlp.fc2.bias", offsetof(dino_block, fc2_b), D},
      {"ls2.gamma", offsetof(dino_block, ls2), D},
  };
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.%s", i, t[k].name);
    ec_status st = load((float **)((char *)b + t[k].off), src, user, name, t[k].n);
    if (st != EC_OK) return st;
  }
  return EC_OK;
}

/* PyTorch's cubic convolution coefficients (aten/src/ATen/native/UpSample.h,
 * get_cubic_upsample_coefficients, A = −0.75) in float, as upsample_bicubic2d computes them. */
static void cubic_coeffs(float c[4], float t) {
  const float A = -0.75f;
  const float x1 = t, x2 = (float)(1.0 - (double)t);
  const float y0 = (float)((double)x1 + 1.0), y3 = (float)((double)x2 + 1.0);
  c[0] = ((A * y0 - 5 * A) * y0 + 8 * A) * y0 - 4 * A;
  c[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
  c[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
  c[3] = ((A * y3 - 5 * A) * y3 + 8 * A) * y3 - 4 * A;
}

/* pos (257, 1024) from the checkpoint's pos_embed (1 + 37², 1024): the official
 * interpolate_pos_encoding for a 224×224 input. F.interpolate(grid (1, 1024, 37, 37),
 * scale_factor = (16 + 0.1)/37, mode='bicubic', align_corners=False) gives floor(37·s) = 16 outputs
 * per side, and the kernel maps with the GIVEN scale (compute_scales_value: 1/s, in float), not
 * 37/16: src = float((double)(1/s)·(dst + 0.5) − 0.5), taps floor(src) − 1 .. + 2 clamped to
 * [0, 36], coefficients from t = src − floor(src); rows (height) outer, columns inner, summed in
 * float in tap order like PyTorch's separable CPU kernel. Agrees with torch 1.13 to ~2e-6 relative,
 * not bit for bit (tests/unit/test_dinov2.c). */
static void interpolate_pos(float *pos, const float *raw) {
  const int M = DINOV2_GRID;
  const double s = (double)(S16 + 0.1) / M;
  const float scale = (float)(1.0 / s);
  int idx[S16][4];
  float w[S16][4];
  for (int o = 0; o < S16; o++) {
    const float src = (float)((double)scale * (o + 0.5) - 0.5);
    const float fl = floorf(src);
    const int i0 = (int)fl;
    cubic_coeffs(w[o], src - fl);
    for (int k = 0; k < 4; k++) {
      int j = i0 - 1 + k;
      idx[o][k] = j < 0 ? 0 : j > M - 1 ? M - 1 : j;
    }
  }
  memcpy(pos, raw, D * sizeof(float)); /* the cls row */
  const float *grid = raw + D;         /* (37·37, 1024), token-major */
  for (int oy = 0; oy < S16; oy++)
    for (int ox = 0; ox < S16; ox++) {
      float *dst = pos + (size_t)(1 + oy * S16 + ox) * D;
      for (int c = 0; c < D; c++) {
        float out = 0;
        for (int ky = 0; ky < 4; ky++) {
          const float *row = grid + (size_t)idx[oy][ky] * M * D + c;
          float t = 0;
          for (int kx = 0; kx < 4; kx++) {
            const float v = row[(size_t)idx[ox][kx] * D] * w[ox][kx];
            t = kx == 0 ? v : t + v;
          }
          out = ky == 0 ? t * w[oy][ky] : out + t * w[oy][ky];
        }
        dst[c] = out;
      }
    }
}

ec_status dinov2_create(dinov2 **out, dinov2_source src, void *user) {
  *out = NULL;
  dinov2 *net = calloc(1, sizeof *net);
  if (!net) return ec_err(EC_ENOMEM, "dinov2: out of memory");
  float *raw = NULL;
  ec_status st;
  const size_t npos = (size_t)(1 + DINOV2_GRID * DINOV2_GRID) * D;
  if ((st = load(&net->cls, src, user, "cls_token", D)) ||
      (st = load(&raw, src, user, "pos_embed", npos)) ||
      (st = load(&net->patch_w, src, user, "patch_embed.proj.weight", (size_t)D * PATCH_K)) ||
      (st = load(&net->patch_b, src, user, "patch_embed.proj.bias", D)))
    goto fail;
  for (int i = 0; i < DINOV2_DEPTH; i++)
    if ((st = load_block(&net->blk[i], i, src, user))) goto fail;
  if ((st = load(&net->norm_w, src, user, "norm.weight", D)) ||
      (st = load(&net->norm_b, src, user, "norm.bias", D)))
    goto fail;
  net->pos = malloc((size_t)T * D * sizeof(float));
  if (!net->pos) {
    st = ec_err(EC_ENOMEM, "dinov2: out of memory");
    goto fail;
  }
  interpolate_pos(net->pos, raw);
  free(raw);
  *out = net;
  return EC_OK;
fail:
  free(raw);
  dinov2_free(net);
  return st;
}

const float *dinov2_pos_embed(const dinov2 *net) { return net->pos; }

/* ---- forward --------------------------------------------------------------------------------- */

/* Workspace layout (floats): x (T·D) the residual stream, h (T·D) a normalised copy or a branch
 * output, a (T·D) the attention output, big (T·HID) the qkv (T·3D) or the MLP hidden layer,
 * p (T·T) one head's probabilities, col (256·588) the patches. */
size_t dinov2_workspace(const dinov2 *net) {
  (void)net;
  return (size_t)3 * T * D + (size_t)T * HID + nn_sdpa_workspace(T) + (size_t)(T - 1) * PATCH_K;
}

void dinov2_forward(const dinov2 *net, float *feat, const float *x, int N, float *ws,
                    const dinov2_taps *taps) {
  EC_ASSERT(N >= 0);
  float *xs = ws, *h = xs + (size_t)T * D, *a = h + (size_t)T * D, *big = a + (size_t)T * D;
  float *p = big + (size_t)T * HID, *col = p + nn_sdpa_workspace(T);
  const int P = DINOV2_PATCH, W = DINOV2_SIZE;
  for (int n = 0; n < N; n++) {
    const float *img = x + (size_t)n * 3 * W * W;
    /* patches: col[py·16 + px][(ci·14 + ky)·14 + kx] = img[ci][py·14 + ky][px·14 + kx] */
    for (int py = 0; py < S16; py++)
      for (int px = 0; px < S16; px++) {
        float *c = col + (size_t)(py * S16 + px) * PATCH_K;
        for (int ci = 0; ci < 3; ci++)
          for (int ky = 0; ky < P; ky++)
            memcpy(c + (ci * P + ky) * P, img + ((size_t)ci * W + py * P + ky) * W + px * P,
                   P * sizeof(float));
      }
    nn_linear_bias_fwd_ref(NULL, xs + D, col, net->patch_w, net->patch_b, T - 1, PATCH_K, D);
    memcpy(xs, net->cls, D * sizeof(float));
    nn_rows_scale_acc_ref(NULL, xs, net->pos, NULL, T, D);
    for (int i = 0; i < DINOV2_DEPTH; i++) {
      const dino_block *b = &net->blk[i];
      nn_layernorm_fwd_ref(NULL, h, xs, b->norm1_w, b->norm1_b, T, D, DINOV2_LN_EPS);
      nn_linear_bias_fwd_ref(NULL, big, h, b->qkv_w, b->qkv_b, T, D, 3 * D);
      nn_sdpa_fwd_ref(NULL, a, big, 1, DINOV2_HEADS, D / DINOV2_HEADS, T,
                      1.0 / sqrt((double)(D / DINOV2_HEADS)), p);
      nn_linear_bias_fwd_ref(NULL, h, a, b->proj_w, b->proj_b, T, D, D);
      nn_rows_scale_acc_ref(NULL, xs, h, b->ls1, T, D);
      nn_layernorm_fwd_ref(NULL, h, xs, b->norm2_w, b->norm2_b, T, D, DINOV2_LN_EPS);
      nn_linear_bias_fwd_ref(NULL, big, h, b->fc1_w, b->fc1_b, T, D, HID);
      nn_gelu_fwd_ref(NULL, big, big, (size_t)T * HID);
      nn_linear_bias_fwd_ref(NULL, h, big, b->fc2_w, b->fc2_b, T, HID, D);
      nn_rows_scale_acc_ref(NULL, xs, h, b->ls2, T, D);
      if (taps && taps->block0 && i == 0)
        memcpy(taps->block0 + (size_t)n * T * D, xs, (size_t)T * D * sizeof(float));
      if (taps && taps->block11 && i == 11)
        memcpy(taps->block11 + (size_t)n * T * D, xs, (size_t)T * D * sizeof(float));
    }
    /* only the CLS token is needed after the final LayerNorm (it is per token) */
    nn_layernorm_fwd_ref(NULL, feat + (size_t)n * D, xs, net->norm_w, net->norm_b, 1, D,
                         DINOV2_LN_EPS);
  }
}

/* ---- test weights ---------------------------------------------------------------------------- */

double dinov2_hash_normal(const char *name, uint64_t i) { return hash_weights_normal(hash_weights_name(name), i); }

float dinov2_hash_input(uint64_t i) {
  static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  const double b = (double)(hash_weights_bits(hash_weights_name("input"), i) >> 56);
  const int c = (int)((i / ((uint64_t)DINOV2_SIZE * DINOV2_SIZE)) % 3);
  return (float)((b / 255.0 - mean[c]) / std[c]);
}

static int ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

ec_status dinov2_hash_source(void *user, const char *name, float *dst, size_t n) {
  (void)user;
  const uint64_t h = hash_weights_name(name);
  if (!strcmp(name, "cls_token") || !strcmp(name, "pos_embed")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(0.5 * hash_weights_normal(h, i));
  } else if (!strcmp(name, "patch_embed.proj.weight")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(hash_weights_normal(h, i) / sqrt(588.0));
  } else if (ends_with(name, ".bias")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(0.05 * hash_weights_normal(h, i));
  } else if (ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") ||
             !strcmp(name, "norm.weight")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(1.0 + 0.1 * hash_weights_normal(h, i));
  } else if (ends_with(name, ".gamma")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(0.5 + 0.1 * hash_weights_normal(h, i));
  } else if (ends_with(name, ".weight") && !strncmp(name, "blocks.", 7)) {
    const double fan_in = ends_with(name, "mlp.fc2.weight") ? HID : D;
    const double sd = sqrt(fan_in);
    for (size_t i = 0; i < n; i++) dst[i] = (float)(hash_weights_normal(h, i) / sd);
  } else {
    return ec_err(EC_ENOENT, "dinov2 hash weights: no tensor %s", name);
  }
  return EC_OK;
}
