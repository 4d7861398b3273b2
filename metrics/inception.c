/* The FID Inception-v3 forward on nn/ ops (metrics/inception.h). Images run one at a time through
 * two ping-pong activation buffers (a block's input and its concatenated output; branches write
 * straight into their channel slice of the output) and two branch temporaries. */
#include "metrics/inception.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "metrics/hash_weights.h"
#include "nn/conv_any.h"
#include "nn/pool.h"

typedef struct {
  char name[40];
  int cin, cout;
  nn_conv_geom g;
  float *w, *b; /* folded weight (Cout, Cin, kh, kw) and bias (Cout) */
} inc_layer;

struct inception_fid {
  inc_layer layer[INCEPTION_FID_LAYERS];
  int nlayers;
  size_t conv_ws; /* the largest nn_conv2d_any_workspace of any layer at its input size */
};

/* ---- the architecture ------------------------------------------------------------------------- */

typedef struct {
  inc_layer *l;
  int n;
} layer_list;

static void add(layer_list *ls, const char *block, const char *name, int cin, int cout, int kh,
                int kw, int s, int ph, int pw) {
  EC_ASSERT(ls->n < INCEPTION_FID_LAYERS);
  inc_layer *l = &ls->l[ls->n++];
  memset(l, 0, sizeof *l);
  snprintf(l->name, sizeof l->name, "%s%s%s", block, *block ? "." : "", name);
  l->cin = cin;
  l->cout = cout;
  l->g = (nn_conv_geom){kh, kw, s, s, ph, pw};
}

static void block_a(layer_list *ls, const char *b, int in, int pool_features) {
  add(ls, b, "branch1x1", in, 64, 1, 1, 1, 0, 0);
  add(ls, b, "branch5x5_1", in, 48, 1, 1, 1, 0, 0);
  add(ls, b, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
  add(ls, b, "branch3x3dbl_1", in, 64, 1, 1, 1, 0, 0);
  add(ls, b, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  add(ls, b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
  add(ls, b, "branch_pool", in, pool_features, 1, 1, 1, 0, 0);
}

static void block_c(layer_list *ls, const char *b, int c7) {
  add(ls, b, "branch1x1", 768, 192, 1, 1, 1, 0, 0);
  add(ls, b, "branch7x7_1", 768, c7, 1, 1, 1, 0, 0);
  add(ls, b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
  add(ls, b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
  add(ls, b, "branch7x7dbl_1", 768, c7, 1, 1, 1, 0, 0);
  add(ls, b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
  add(ls, b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
  add(ls, b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
  add(ls, b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
  add(ls, b, "branch_pool", 768, 192, 1, 1, 1, 0, 0);
}

static void block_e(layer_list *ls, const char *b, int in) {
  add(ls, b, "branch1x1", in, 320, 1, 1, 1, 0, 0);
  add(ls, b, "branch3x3_1", in, 384, 1, 1, 1, 0, 0);
  add(ls, b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
  add(ls, b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
  add(ls, b, "branch3x3dbl_1", in, 448, 1, 1, 1, 0, 0);
  add(ls, b, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
  add(ls, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
  add(ls, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
  add(ls, b, "branch_pool", in, 192, 1, 1, 1, 0, 0);
}

/* All 94 layers in forward order (torchvision's Inception3 with pytorch-fid's FID blocks). */
static int build_layers(inc_layer *l) {
  layer_list ls = {l, 0};
  add(&ls, "", "Conv2d_1a_3x3", 3, 32, 3, 3, 2, 0, 0);
  add(&ls, "", "Conv2d_2a_3x3", 32, 32, 3, 3, 1, 0, 0);
  add(&ls, "", "Conv2d_2b_3x3", 32, 64, 3, 3, 1, 1, 1);
  add(&ls, "", "Conv2d_3b_1x1", 64, 80, 1, 1, 1, 0, 0);
  add(&ls, "", "Conv2d_4a_3x3", 80, 192, 3, 3, 1, 0, 0);
  block_a(&ls, "Mixed_5b", 192, 32);
  block_a(&ls, "Mixed_5c", 256, 64);
  block_a(&ls, "Mixed_5d", 288, 64);
  add(&ls, "Mixed_6a", "branch3x3", 288, 384, 3, 3, 2, 0, 0);
  add(&ls, "Mixed_6a", "branch3x3dbl_1", 288, 64, 1, 1, 1, 0, 0);
  add(&ls, "Mixed_6a", "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
  add(&ls, "Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
  block_c(&ls, "Mixed_6b", 128);
  block_c(&ls, "Mixed_6c", 160);
  block_c(&ls, "Mixed_6d", 160);
  block_c(&ls, "Mixed_6e", 192);
  add(&ls, "Mixed_7a", "branch3x3_1", 768, 192, 1, 1, 1, 0, 0);
  add(&ls, "Mixed_7a", "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
  add(&ls, "Mixed_7a", "branch7x7x3_1", 768, 192, 1, 1, 1, 0, 0);
  add(&ls, "Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
  add(&ls, "Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
  add(&ls, "Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
  block_e(&ls, "Mixed_7b", 1280);
  block_e(&ls, "Mixed_7c", 2048);
  return ls.n;
}

/* The input side of each layer, for the workspace: 299 for the first, then by stage. */
static int layer_input_size(const char *name) {
  if (!strcmp(name, "Conv2d_1a_3x3")) return 299;
  if (!strcmp(name, "Conv2d_2a_3x3")) return 149;
  if (!strcmp(name, "Conv2d_2b_3x3")) return 147;
  if (!strcmp(name, "Conv2d_3b_1x1") || !strcmp(name, "Conv2d_4a_3x3")) return 73;
  if (!strncmp(name, "Mixed_5", 7) || !strncmp(name, "Mixed_6a", 8)) return 35;
  if (!strncmp(name, "Mixed_6", 7) || !strncmp(name, "Mixed_7a", 8)) return 17;
  return 8;
}

const char *inception_fid_layer(int i, int *cout, int *cin, int *kh, int *kw) {
  static inc_layer table[INCEPTION_FID_LAYERS];
  static int n = 0;
  if (n == 0) n = build_layers(table); /* idempotent: every call builds the same table */
  if (i < 0 || i >= n) return NULL;
  if (cout) *cout = table[i].cout;
  if (cin) *cin = table[i].cin;
  if (kh) *kh = table[i].g.kh;
  if (kw) *kw = table[i].g.kw;
  return table[i].name;
}

/* ---- loading ---------------------------------------------------------------------------------- */

void inception_fid_free(inception_fid *net) {
  if (!net) return;
  for (int i = 0; i < net->nlayers; i++) {
    free(net->layer[i].w);
    free(net->layer[i].b);
  }
  free(net);
}

static ec_status get(inception_fid_source src, void *user, const char *layer, const char *suffix,
                     float *dst, size_t n) {
  char name[80];
  snprintf(name, sizeof name, "%s.%s", layer, suffix);
  return src(user, name, dst, n);
}

ec_status inception_fid_create(inception_fid **out, inception_fid_source src, void *user) {
  *out = NULL;
  inception_fid *net = calloc(1, sizeof *net);
  if (!net) return ec_err(EC_ENOMEM, "inception: out of memory");
  net->nlayers = build_layers(net->layer);
  EC_ASSERT(net->nlayers == INCEPTION_FID_LAYERS);
  float *bn = NULL;
  ec_status st = EC_OK;
  for (int i = 0; i < net->nlayers && st == EC_OK; i++) {
    inc_layer *l = &net->layer[i];
    const size_t C = (size_t)l->cout, K = (size_t)l->cin * l->g.kh * l->g.kw;
    l->w = malloc(C * K * sizeof(float));
    l->b = malloc(C * sizeof(float));
    free(bn);
    bn = malloc(4 * C * sizeof(float));
    if (!l->w || !l->b || !bn) {
      st = ec_err(EC_ENOMEM, "inception: out of memory");
      break;
    }
    float *gamma = bn, *beta = bn + C, *mean = bn + 2 * C, *var = bn + 3 * C;
    if ((st = get(src, user, l->name, "conv.weight", l->w, C * K)) ||
        (st = get(src, user, l->name, "bn.weight", gamma, C)) ||
        (st = get(src, user, l->name, "bn.bias", beta, C)) ||
        (st = get(src, user, l->name, "bn.running_mean", mean, C)) ||
        (st = get(src, user, l->name, "bn.running_var", var, C)))
      break;
    for (size_t c = 0; c < C; c++) {
      if (!(var[c] >= 0) || !isfinite(gamma[c]) || !isfinite(beta[c]) || !isfinite(mean[c])) {
        st = ec_err(EC_EFORMAT, "inception: %s.bn: channel %zu: running_var %g, weight %g, "
                    "bias %g, running_mean %g (need finite values and running_var >= 0)",
                    l->name, c, var[c], gamma[c], beta[c], mean[c]);
        break;
      }
      const double s = (double)gamma[c] / sqrt((double)var[c] + INCEPTION_FID_BN_EPS);
      for (size_t k = 0; k < K; k++) l->w[c * K + k] = (float)((double)l->w[c * K + k] * s);
      l->b[c] = (float)((double)beta[c] - (double)mean[c] * s);
    }
    const int HW = layer_input_size(l->name);
    const size_t ws = nn_conv2d_any_workspace(l->cin, HW, HW, &l->g);
    if (ws > net->conv_ws) net->conv_ws = ws;
  }
  free(bn);
  if (st != EC_OK) {
    inception_fid_free(net);
    return st;
  }
  *out = net;
  return EC_OK;
}

/* ---- forward ---------------------------------------------------------------------------------- */

/* Per-image buffer sizes (floats): the stem's largest activation (64 × 147 × 147) for the two
 * main buffers, the largest branch temporary (Mixed_5d's pool branch input, 288 × 35 × 35). */
#define MAIN_FLOATS ((size_t)64 * 147 * 147)
#define TEMP_FLOATS ((size_t)288 * 35 * 35)

size_t inception_fid_workspace(const inception_fid *net) {
  return 2 * MAIN_FLOATS + 2 * TEMP_FLOATS + net->conv_ws;
}

typedef struct {
  const inception_fid *net;
  float *ws; /* conv scratch */
} fwd;

static const inc_layer *find(const inception_fid *net, const char *block, const char *name) {
  char full[48];
  snprintf(full, sizeof full, "%s%s%s", block, *block ? "." : "", name);
  for (int i = 0; i < net->nlayers; i++)
    if (!strcmp(net->layer[i].name, full)) return &net->layer[i];
  EC_ASSERT(!"inception: unknown layer");
  return NULL;
}

/* y (channel slice of one image, dense) = BasicConv2d `name` of x (Cin × S × S); returns the output
 * size. */
static int conv(const fwd *f, const char *block, const char *name, float *y, const float *x, int S) {
  const inc_layer *l = find(f->net, block, name);
  nn_conv2d_any_fwd_ref(NULL, y, 0, x, l->w, l->b, 1, l->cin, l->cout, S, S, &l->g, NN_CONV_RELU,
                        f->ws);
  return nn_conv_out_h(&l->g, S);
}

static const nn_conv_geom POOL_3S2 = {3, 3, 2, 2, 0, 0}, POOL_3S1P1 = {3, 3, 1, 1, 1, 1};

/* FIDInceptionA: x (in × 35 × 35) → y (224 + pool_features channels). */
static void fwd_a(const fwd *f, const char *b, float *y, const float *x, int in, float *t1,
                  float *t2) {
  const int S = 35;
  const size_t L = (size_t)S * S;
  conv(f, b, "branch1x1", y, x, S);
  conv(f, b, "branch5x5_1", t1, x, S);
  conv(f, b, "branch5x5_2", y + 64 * L, t1, S);
  conv(f, b, "branch3x3dbl_1", t1, x, S);
  conv(f, b, "branch3x3dbl_2", t2, t1, S);
  conv(f, b, "branch3x3dbl_3", y + 128 * L, t2, S);
  nn_avgpool2d_ref(NULL, t1, 0, x, 1, in, S, S, &POOL_3S1P1, 0);
  conv(f, b, "branch_pool", y + 224 * L, t1, S);
}

/* InceptionB (Mixed_6a): x (288 × 35 × 35) → y (768 × 17 × 17). */
static void fwd_b(const fwd *f, float *y, const float *x, float *t1, float *t2) {
  const char *b = "Mixed_6a";
  const size_t L = 17 * 17;
  conv(f, b, "branch3x3", y, x, 35);
  conv(f, b, "branch3x3dbl_1", t1, x, 35);
  conv(f, b, "branch3x3dbl_2", t2, t1, 35);
  conv(f, b, "branch3x3dbl_3", y + 384 * L, t2, 35);
  nn_maxpool2d_ref(NULL, y + 480 * L, 0, x, 1, 288, 35, 35, &POOL_3S2);
}

/* FIDInceptionC: x (768 × 17 × 17) → y (768 × 17 × 17). */
static void fwd_c(const fwd *f, const char *b, float *y, const float *x, float *t1, float *t2) {
  const int S = 17;
  const size_t L = (size_t)S * S;
  conv(f, b, "branch1x1", y, x, S);
  conv(f, b, "branch7x7_1", t1, x, S);
  conv(f, b, "branch7x7_2", t2, t1, S);
  conv(f, b, "branch7x7_3", y + 192 * L, t2, S);
  conv(f, b, "branch7x7dbl_1", t1, x, S);
  conv(f, b, "branch7x7dbl_2", t2, t1, S);
  conv(f, b, "branch7x7dbl_3", t1, t2, S);
  conv(f, b, "branch7x7dbl_4", t2, t1, S);
  conv(f, b, "branch7x7dbl_5", y + 384 * L, t2, S);
  nn_avgpool2d_ref(NULL, t1, 0, x, 1, 768, S, S, &POOL_3S1P1, 0);
  conv(f, b, "branch_pool", y + 576 * L, t1, S);
}

/* InceptionD (Mixed_7a): x (768 × 17 × 17) → y (1280 × 8 × 8). */
static void fwd_d(const fwd *f, float *y, const float *x, float *t1, float *t2) {
  const char *b = "Mixed_7a";
  const size_t L = 8 * 8;
  conv(f, b, "branch3x3_1", t1, x, 17);
  conv(f, b, "branch3x3_2", y, t1, 17);
  conv(f, b, "branch7x7x3_1", t1, x, 17);
  conv(f, b, "branch7x7x3_2", t2, t1, 17);
  conv(f, b, "branch7x7x3_3", t1, t2, 17);
  conv(f, b, "branch7x7x3_4", y + 320 * L, t1, 17);
  nn_maxpool2d_ref(NULL, y + 512 * L, 0, x, 1, 768, 17, 17, &POOL_3S2);
}

/* FIDInceptionE_1 (avg pool) and E_2 (max pool): x (in × 8 × 8) → y (2048 × 8 × 8). */
static void fwd_e(const fwd *f, const char *b, float *y, const float *x, int in, int max_pool,
                  float *t1, float *t2) {
  const int S = 8;
  const size_t L = (size_t)S * S;
  conv(f, b, "branch1x1", y, x, S);
  conv(f, b, "branch3x3_1", t1, x, S);
  conv(f, b, "branch3x3_2a", y + 320 * L, t1, S);
  conv(f, b, "branch3x3_2b", y + 704 * L, t1, S);
  conv(f, b, "branch3x3dbl_1", t1, x, S);
  conv(f, b, "branch3x3dbl_2", t2, t1, S);
  conv(f, b, "branch3x3dbl_3a", y + 1088 * L, t2, S);
  conv(f, b, "branch3x3dbl_3b", y + 1472 * L, t2, S);
  if (max_pool)
    nn_maxpool2d_ref(NULL, t1, 0, x, 1, in, S, S, &POOL_3S1P1);
  else
    nn_avgpool2d_ref(NULL, t1, 0, x, 1, in, S, S, &POOL_3S1P1, 0);
  conv(f, b, "branch_pool", y + 1856 * L, t1, S);
}

#define SWAP(a, b)                                                                                 \
  do {                                                                                             \
    float *t_ = a;                                                                                 \
    a = b;                                                                                         \
    b = t_;                                                                                        \
  } while (0)

void inception_fid_forward(const inception_fid *net, float *feat, const float *x, int N, float *ws,
                           const inception_fid_taps *taps) {
  EC_ASSERT(net && feat && x && ws && N > 0);
  float *p = ws, *q = ws + MAIN_FLOATS, *t1 = q + MAIN_FLOATS, *t2 = t1 + TEMP_FLOATS;
  const fwd f = {net, t2 + TEMP_FLOATS};
  const size_t in_floats = (size_t)3 * 299 * 299;
  for (int n = 0; n < N; n++) {
    /* stem */
    int S = conv(&f, "", "Conv2d_1a_3x3", p, x + (size_t)n * in_floats, 299); /* 32 × 149 */
    S = conv(&f, "", "Conv2d_2a_3x3", q, p, S);                                /* 32 × 147 */
    S = conv(&f, "", "Conv2d_2b_3x3", p, q, S);                                /* 64 × 147 */
    nn_maxpool2d_ref(NULL, q, 0, p, 1, 64, S, S, &POOL_3S2);                   /* 64 × 73 */
    S = nn_conv_out_h(&POOL_3S2, S);
    if (taps && taps->block0) memcpy(taps->block0 + (size_t)n * 64 * S * S, q, 64 * S * S * sizeof(float));
    S = conv(&f, "", "Conv2d_3b_1x1", p, q, S);              /* 80 × 73 */
    S = conv(&f, "", "Conv2d_4a_3x3", q, p, S);              /* 192 × 71 */
    nn_maxpool2d_ref(NULL, p, 0, q, 1, 192, S, S, &POOL_3S2); /* 192 × 35 */
    EC_ASSERT(nn_conv_out_h(&POOL_3S2, S) == 35);
    /* Mixed blocks: input in p, output in q, then swapped */
    fwd_a(&f, "Mixed_5b", q, p, 192, t1, t2);
    SWAP(p, q);
    if (taps && taps->mixed_5b) memcpy(taps->mixed_5b + (size_t)n * 256 * 35 * 35, p, 256 * 35 * 35 * sizeof(float));
    fwd_a(&f, "Mixed_5c", q, p, 256, t1, t2);
    SWAP(p, q);
    fwd_a(&f, "Mixed_5d", q, p, 288, t1, t2);
    SWAP(p, q);
    fwd_b(&f, q, p, t1, t2);
    SWAP(p, q);
    fwd_c(&f, "Mixed_6b", q, p, t1, t2);
    SWAP(p, q);
    fwd_c(&f, "Mixed_6c", q, p, t1, t2);
    SWAP(p, q);
    fwd_c(&f, "Mixed_6d", q, p, t1, t2);
    SWAP(p, q);
    fwd_c(&f, "Mixed_6e", q, p, t1, t2);
    SWAP(p, q);
    if (taps && taps->mixed_6e) memcpy(taps->mixed_6e + (size_t)n * 768 * 17 * 17, p, 768 * 17 * 17 * sizeof(float));
    fwd_d(&f, q, p, t1, t2);
    SWAP(p, q);
    fwd_e(&f, "Mixed_7b", q, p, 1280, 0, t1, t2);
    SWAP(p, q);
    fwd_e(&f, "Mixed_7c", q, p, 2048, 1, t1, t2);
    SWAP(p, q);
    nn_global_avgpool_ref(NULL, feat + (size_t)n * INCEPTION_FID_DIM, p, 1, INCEPTION_FID_DIM, 8, 8);
  }
}

/* ---- the deterministic test weights ----------------------------------------------------------- */

uint64_t inception_fid_hash_bits(const char *name, uint64_t i) {
  return hash_weights_bits(hash_weights_name(name), i);
}

double inception_fid_hash_normal(const char *name, uint64_t i) {
  return hash_weights_normal(hash_weights_name(name), i);
}

float inception_fid_hash_input(uint64_t i) {
  return (float)(((double)(inception_fid_hash_bits("input", i) >> 56) - 128.0) / 128.0);
}

static int ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

ec_status inception_fid_hash_source(void *user, const char *name, float *dst, size_t n) {
  (void)user;
  if (ends_with(name, ".conv.weight")) {
    int cout = 0; /* fan_in = n / Cout: find the layer's Cout */
    char layer[48];
    snprintf(layer, sizeof layer, "%.*s", (int)(strlen(name) - strlen(".conv.weight")), name);
    for (int i = 0; i < INCEPTION_FID_LAYERS; i++) {
      int co;
      const char *ln = inception_fid_layer(i, &co, NULL, NULL, NULL);
      if (!strcmp(ln, layer)) cout = co;
    }
    if (cout == 0) return ec_err(EC_ENOENT, "inception hash weights: no tensor %s", name);
    const double a = sqrt(2.0 / (double)(n / (size_t)cout));
    for (size_t i = 0; i < n; i++) dst[i] = (float)(inception_fid_hash_normal(name, i) * a);
  } else if (ends_with(name, ".bn.weight")) {
    for (size_t i = 0; i < n; i++) dst[i] = 1.0f;
  } else if (ends_with(name, ".bn.bias") || ends_with(name, ".bn.running_mean")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(0.1 * inception_fid_hash_normal(name, i));
  } else if (ends_with(name, ".bn.running_var")) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(1.0 + 0.2 * inception_fid_hash_normal(name, i));
  } else {
    return ec_err(EC_ENOENT, "inception hash weights: no tensor %s", name);
  }
  return EC_OK;
}
