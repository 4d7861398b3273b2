/* Network configuration, presets and their JSON form (see netconfig.h). */
#include "trainer/netconfig.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void edm2_netcfg_default(edm2_netcfg *c) {
  memset(c, 0, sizeof *c);
  c->img_resolution = 64;
  c->img_channels = 3;
  c->label_dim = 1000;
  c->model_channels = 192;
  c->n_levels = 4;
  for (int l = 0; l < 4; l++) c->channel_mult[l] = l + 1;
  c->num_blocks = 3;
  c->n_attn = 2;
  c->attn_resolutions[0] = 16;
  c->attn_resolutions[1] = 8;
  c->label_balance = 0.5;
  c->concat_balance = 0.5;
  c->channels_per_head = 64;
  c->dropout = 0;
  c->res_balance = 0.3;
  c->attn_balance = 0.3;
  c->clip_act = 256;
  c->sigma_data = 0.5;
  c->logvar_channels = 128;
}

int edm2_netcfg_cblock(const edm2_netcfg *c, int level) {
  return c->model_channels * c->channel_mult[level];
}

int edm2_netcfg_cnoise(const edm2_netcfg *c) {
  return c->channel_mult_noise ? c->model_channels * c->channel_mult_noise
                               : edm2_netcfg_cblock(c, 0);
}

int edm2_netcfg_cemb(const edm2_netcfg *c) {
  if (c->channel_mult_emb) return c->model_channels * c->channel_mult_emb;
  int m = 0;
  for (int l = 0; l < c->n_levels; l++)
    if (edm2_netcfg_cblock(c, l) > m) m = edm2_netcfg_cblock(c, l);
  return m;
}

int edm2_netcfg_heads(const edm2_netcfg *c, int out, int attention) {
  return attention ? out / c->channels_per_head : 0;
}

static int is_attn_res(const edm2_netcfg *c, int res) {
  for (int i = 0; i < c->n_attn; i++)
    if (c->attn_resolutions[i] == res) return 1;
  return 0;
}

ec_status edm2_netcfg_check(const edm2_netcfg *c, const char *what) {
  const char *w = what ? what : "network configuration";
#define BAD(...) return ec_err(EC_EINVAL, __VA_ARGS__)
  if (c->img_resolution < 1) BAD("%s: img_resolution must be positive (is %d)", w, c->img_resolution);
  if (c->img_channels < 1) BAD("%s: img_channels must be positive (is %d)", w, c->img_channels);
  if (c->label_dim < 0) BAD("%s: label_dim must be >= 0 (is %d)", w, c->label_dim);
  if (c->model_channels < 1) BAD("%s: model_channels must be positive (is %d)", w, c->model_channels);
  if (c->n_levels < 1 || c->n_levels > EDM2_MAX_LEVELS)
    BAD("%s: channel_mult must have 1 to %d entries (has %d)", w, EDM2_MAX_LEVELS, c->n_levels);
  for (int l = 0; l < c->n_levels; l++)
    if (c->channel_mult[l] < 1) BAD("%s: channel_mult[%d] must be positive (is %d)", w, l, c->channel_mult[l]);
  if (c->img_resolution % (1 << (c->n_levels - 1)))
    BAD("%s: img_resolution %d cannot be halved %d times (channel_mult has %d levels)", w,
        c->img_resolution, c->n_levels - 1, c->n_levels);
  if (c->channel_mult_noise < 0 || c->channel_mult_emb < 0)
    BAD("%s: channel_mult_noise and channel_mult_emb must be positive or null", w);
  if (c->num_blocks < 1) BAD("%s: num_blocks must be positive (is %d)", w, c->num_blocks);
  if (c->channels_per_head < 1) BAD("%s: channels_per_head must be positive (is %d)", w, c->channels_per_head);
  if (!(c->dropout >= 0 && c->dropout < 1)) BAD("%s: dropout must be in [0, 1) (is %g)", w, c->dropout);
  const double *bal[] = {&c->label_balance, &c->concat_balance, &c->res_balance, &c->attn_balance};
  const char *bname[] = {"label_balance", "concat_balance", "res_balance", "attn_balance"};
  for (int i = 0; i < 4; i++)
    if (!(*bal[i] >= 0 && *bal[i] <= 1)) BAD("%s: %s must be in [0, 1] (is %g)", w, bname[i], *bal[i]);
  if (!(c->clip_act >= 0 && isfinite(c->clip_act))) BAD("%s: clip_act must be positive or null", w);
  if (!(c->sigma_data > 0 && isfinite(c->sigma_data))) BAD("%s: sigma_data must be positive", w);
  if (c->logvar_channels < 1) BAD("%s: logvar_channels must be positive (is %d)", w, c->logvar_channels);
  /* Every block with attention must split its channels evenly into heads. The lowest level's
   * first decoder block always has attention. */
  for (int l = 0; l < c->n_levels; l++) {
    int res = c->img_resolution >> l, ch = edm2_netcfg_cblock(c, l);
    int attn = is_attn_res(c, res) || l == c->n_levels - 1;
    int heads = edm2_netcfg_heads(c, ch, attn);
    if (heads > 0 && ch % heads)
      BAD("%s: %d channels at %dx%d do not split into %d attention heads (channels_per_head %d)",
          w, ch, res, res, heads, c->channels_per_head);
  }
#undef BAD
  return EC_OK;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static ec_status json_int(const cJSON *v, const char *key, int min, int *out, const char *w) {
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
      v->valuedouble > 1e9)
    return ec_err(EC_EINVAL, "%s: config key '%s' must be an integer >= %d", w, key, min);
  *out = (int)v->valuedouble;
  return EC_OK;
}

static ec_status json_num(const cJSON *v, const char *key, double *out, const char *w) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return ec_err(EC_EINVAL, "%s: config key '%s' must be a number", w, key);
  *out = v->valuedouble;
  return EC_OK;
}

static ec_status json_int_list(const cJSON *v, const char *key, int *out, int *n, int allow_empty,
                               const char *w) {
  if (!cJSON_IsArray(v)) return ec_err(EC_EINVAL, "%s: config key '%s' must be a list of integers", w, key);
  int k = cJSON_GetArraySize(v);
  if (k > EDM2_MAX_LEVELS || (!allow_empty && k == 0))
    return ec_err(EC_EINVAL, "%s: config key '%s' must have %d to %d entries (has %d)", w, key,
                  allow_empty ? 0 : 1, EDM2_MAX_LEVELS, k);
  for (int i = 0; i < k; i++) {
    ec_status st = json_int(cJSON_GetArrayItem(v, i), key, 1, &out[i], w);
    if (st) return st;
  }
  *n = k;
  return EC_OK;
}

/* null or a positive integer (the reference's "None = derive"). */
static ec_status json_opt_int(const cJSON *v, const char *key, int *out, const char *w) {
  if (cJSON_IsNull(v)) {
    *out = 0;
    return EC_OK;
  }
  return json_int(v, key, 1, out, w);
}

ec_status edm2_netcfg_apply_json(edm2_netcfg *c, const char *json, const char *what, int strict) {
  const char *w = what ? what : "config";
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ec_err(EC_EINVAL, "%s: config is not a JSON object", w);
  }
  edm2_netcfg t = *c;
  ec_status st = EC_OK;
  for (const cJSON *v = root->child; v && !st; v = v->next) {
    const char *k = v->string;
    if (!strcmp(k, "img_resolution")) st = json_int(v, k, 1, &t.img_resolution, w);
    else if (!strcmp(k, "img_channels")) st = json_int(v, k, 1, &t.img_channels, w);
    else if (!strcmp(k, "label_dim")) st = json_int(v, k, 0, &t.label_dim, w);
    else if (!strcmp(k, "model_channels")) st = json_int(v, k, 1, &t.model_channels, w);
    else if (!strcmp(k, "channel_mult")) st = json_int_list(v, k, t.channel_mult, &t.n_levels, 0, w);
    else if (!strcmp(k, "channel_mult_noise")) st = json_opt_int(v, k, &t.channel_mult_noise, w);
    else if (!strcmp(k, "channel_mult_emb")) st = json_opt_int(v, k, &t.channel_mult_emb, w);
    else if (!strcmp(k, "num_blocks")) st = json_int(v, k, 1, &t.num_blocks, w);
    else if (!strcmp(k, "attn_resolutions")) st = json_int_list(v, k, t.attn_resolutions, &t.n_attn, 1, w);
    else if (!strcmp(k, "label_balance")) st = json_num(v, k, &t.label_balance, w);
    else if (!strcmp(k, "concat_balance")) st = json_num(v, k, &t.concat_balance, w);
    else if (!strcmp(k, "channels_per_head")) st = json_int(v, k, 1, &t.channels_per_head, w);
    else if (!strcmp(k, "dropout")) st = json_num(v, k, &t.dropout, w);
    else if (!strcmp(k, "res_balance")) st = json_num(v, k, &t.res_balance, w);
    else if (!strcmp(k, "attn_balance")) st = json_num(v, k, &t.attn_balance, w);
    else if (!strcmp(k, "clip_act")) {
      if (cJSON_IsNull(v)) t.clip_act = 0;
      else st = json_num(v, k, &t.clip_act, w);
    } else if (!strcmp(k, "sigma_data")) st = json_num(v, k, &t.sigma_data, w);
    else if (!strcmp(k, "logvar_channels")) st = json_int(v, k, 1, &t.logvar_channels, w);
    else if (!strcmp(k, "use_fp16")) {
      /* Accepted for compatibility with the reference's constructor; precision is the
       * backend's choice here. */
      if (!cJSON_IsBool(v)) st = ec_err(EC_EINVAL, "%s: config key 'use_fp16' must be true or false", w);
    } else if (!strcmp(k, "resample_filter")) {
      /* Only the [1, 1] filter of every EDM2 configuration is implemented. */
      int f[EDM2_MAX_LEVELS], n = 0;
      st = json_int_list(v, k, f, &n, 0, w);
      if (!st && !(n == 2 && f[0] == 1 && f[1] == 1))
        st = ec_err(EC_EINVAL, "%s: config key 'resample_filter': only [1, 1] is supported", w);
    } else if (strict)
      st = ec_err(EC_EINVAL, "%s: unknown config key '%s'", w, k);
  }
  cJSON_Delete(root);
  if (!st) st = edm2_netcfg_check(&t, w);
  if (!st) *c = t;
  return st;
}

char *edm2_netcfg_to_json(const edm2_netcfg *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "img_resolution", c->img_resolution);
  cJSON_AddNumberToObject(o, "img_channels", c->img_channels);
  cJSON_AddNumberToObject(o, "label_dim", c->label_dim);
  cJSON_AddNumberToObject(o, "model_channels", c->model_channels);
  cJSON_AddItemToObject(o, "channel_mult", cJSON_CreateIntArray(c->channel_mult, c->n_levels));
  if (c->channel_mult_noise) cJSON_AddNumberToObject(o, "channel_mult_noise", c->channel_mult_noise);
  else cJSON_AddNullToObject(o, "channel_mult_noise");
  if (c->channel_mult_emb) cJSON_AddNumberToObject(o, "channel_mult_emb", c->channel_mult_emb);
  else cJSON_AddNullToObject(o, "channel_mult_emb");
  cJSON_AddNumberToObject(o, "num_blocks", c->num_blocks);
  cJSON_AddItemToObject(o, "attn_resolutions", cJSON_CreateIntArray(c->attn_resolutions, c->n_attn));
  cJSON_AddNumberToObject(o, "label_balance", c->label_balance);
  cJSON_AddNumberToObject(o, "concat_balance", c->concat_balance);
  cJSON_AddNumberToObject(o, "channels_per_head", c->channels_per_head);
  cJSON_AddNumberToObject(o, "dropout", c->dropout);
  cJSON_AddNumberToObject(o, "res_balance", c->res_balance);
  cJSON_AddNumberToObject(o, "attn_balance", c->attn_balance);
  if (c->clip_act > 0) cJSON_AddNumberToObject(o, "clip_act", c->clip_act);
  else cJSON_AddNullToObject(o, "clip_act");
  cJSON_AddNumberToObject(o, "sigma_data", c->sigma_data);
  cJSON_AddNumberToObject(o, "logvar_channels", c->logvar_channels);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

int edm2_netcfg_equal(const edm2_netcfg *a, const edm2_netcfg *b) {
  if (a->img_resolution != b->img_resolution || a->img_channels != b->img_channels ||
      a->label_dim != b->label_dim || a->model_channels != b->model_channels ||
      a->n_levels != b->n_levels || a->channel_mult_noise != b->channel_mult_noise ||
      a->channel_mult_emb != b->channel_mult_emb || a->num_blocks != b->num_blocks ||
      a->n_attn != b->n_attn || a->channels_per_head != b->channels_per_head ||
      a->logvar_channels != b->logvar_channels)
    return 0;
  if (memcmp(a->channel_mult, b->channel_mult, sizeof(int) * (size_t)a->n_levels) ||
      memcmp(a->attn_resolutions, b->attn_resolutions, sizeof(int) * (size_t)a->n_attn))
    return 0;
  return a->label_balance == b->label_balance && a->concat_balance == b->concat_balance &&
         a->dropout == b->dropout && a->res_balance == b->res_balance &&
         a->attn_balance == b->attn_balance && a->clip_act == b->clip_act &&
         a->sigma_data == b->sigma_data;
}

/* ---- presets --------------------------------------------------------------------------------- */

#define KI ((int64_t)1 << 10)
#define MI ((int64_t)1 << 20)
enum { N_PRESETS = 15 };
static edm2_preset presets[N_PRESETS];
static int presets_ready;

/* One of the paper's presets (edm2-spec.md §6.1): the default U-Net with `channels`, on
 * ImageNet-512 latents (64×64×4) or ImageNet-64 pixels (64×64×3), 1000 classes. */
static void paper_preset(edm2_preset *p, const char *name, const char *about, int img512,
                         int channels, double dropout, int64_t duration_mi, double lr) {
  p->name = name;
  p->about = about;
  edm2_netcfg_default(&p->net);
  p->net.img_resolution = 64;
  p->net.img_channels = img512 ? 4 : 3;
  p->net.label_dim = 1000;
  p->net.model_channels = channels;
  p->net.dropout = dropout;
  p->duration = duration_mi * MI;
  p->batch = 2048;
  p->lr_ref = lr;
  p->decay = img512 ? 70000 : 35000;
  p->P_mean = img512 ? -0.4 : -0.8;
  p->P_std = img512 ? 1.0 : 1.6;
  p->rampup = 10000000;
  p->status = 128 * KI;
  p->snapshot = 8 * MI;
  p->checkpoint = 128 * MI;
}

/* The network of a small preset: the default U-Net at the given size, with attention at one
 * resolution. mult lists the channel multipliers of the levels (n_levels of them). */
static void small_net(edm2_preset *p, const char *name, const char *about, int res, int channels, int labels,
                      int model_channels, int n_levels, const int *mult, int num_blocks, int attn_res,
                      int channels_per_head) {
  p->name = name;
  p->about = about;
  edm2_netcfg_default(&p->net);
  p->net.img_resolution = res;
  p->net.img_channels = channels;
  p->net.label_dim = labels;
  p->net.model_channels = model_channels;
  p->net.n_levels = n_levels;
  for (int i = 0; i < n_levels; i++) p->net.channel_mult[i] = mult[i];
  p->net.num_blocks = num_blocks;
  p->net.n_attn = 1;
  p->net.attn_resolutions[0] = attn_res;
  p->net.channels_per_head = channels_per_head;
}

/* Training settings of the small presets: warm-up, status, snapshot and checkpoint intervals. */
static void small_training(edm2_preset *p, int64_t duration, int64_t batch, double lr, int64_t decay,
                           int64_t rampup, int64_t status, int64_t snapshot, int64_t checkpoint) {
  p->duration = duration;
  p->batch = batch;
  p->lr_ref = lr;
  p->decay = decay;
  p->P_mean = -0.8;
  p->P_std = 1.6;
  p->rampup = rampup;
  p->status = status;
  p->snapshot = snapshot;
  p->checkpoint = checkpoint;
}

static void init_presets(void) {
  if (presets_ready) return;
  edm2_preset *p = presets;
  paper_preset(p++, "img512-xxs", "ImageNet-512 latents, 64 channels, 31.3M parameters", 1, 64, 0.00, 2048, 0.0170);
  paper_preset(p++, "img512-xs", "ImageNet-512 latents, 128 channels, 124.7M parameters", 1, 128, 0.00, 2048, 0.0120);
  paper_preset(p++, "img512-s", "ImageNet-512 latents, 192 channels, 280.2M parameters", 1, 192, 0.00, 2048, 0.0100);
  paper_preset(p++, "img512-m", "ImageNet-512 latents, 256 channels, 497.8M parameters", 1, 256, 0.10, 2048, 0.0090);
  paper_preset(p++, "img512-l", "ImageNet-512 latents, 320 channels, 777.5M parameters", 1, 320, 0.10, 1792, 0.0080);
  paper_preset(p++, "img512-xl", "ImageNet-512 latents, 384 channels, 1119.3M parameters", 1, 384, 0.10, 1280, 0.0070);
  paper_preset(p++, "img512-xxl", "ImageNet-512 latents, 448 channels, 1523.2M parameters", 1, 448, 0.10, 896, 0.0065);
  paper_preset(p++, "img64-xs", "ImageNet-64 pixels, 128 channels, 124.7M parameters", 0, 128, 0.00, 1024, 0.0120);
  paper_preset(p++, "img64-s", "ImageNet-64 pixels, 192 channels, 280.2M parameters", 0, 192, 0.00, 1024, 0.0100);
  paper_preset(p++, "img64-m", "ImageNet-64 pixels, 256 channels, 497.8M parameters", 0, 256, 0.10, 2048, 0.0090);
  paper_preset(p++, "img64-l", "ImageNet-64 pixels, 320 channels, 777.5M parameters", 0, 320, 0.10, 1024, 0.0080);
  paper_preset(p++, "img64-xl", "ImageNet-64 pixels, 384 channels, 1119.3M parameters", 0, 384, 0.10, 640, 0.0070);

  /* Fashion-MNIST (28×28 padded to 32×32, one channel, ten classes), small enough to learn
   * visibly in minutes on two CPU cores; the pixel-space σ distribution of ImageNet-64. */
  small_net(p, "fmnist", "Fashion-MNIST 32x32x1, 10 classes, 32 channels: trains on a CPU", 32, 1, 10, 32, 3,
            (const int[]){1, 2, 2}, 2, 8, 32);
  /* Batch 32, warm-up over the first 8Ki images, decay after 2048 steps: the loss falls within
   * the first thousand images; a snapshot every 1Ki images gives 16 pairs in about 5 minutes on
   * two cores. */
  small_training(p, 256 * KI, 32, 0.01, 2048, 8 * KI, 1 * KI, 1 * KI, 16 * KI);
  p++;

  /* The configuration of the golden tests (tests/golden/gen_edm2_net.py): two levels,
   * attention with two heads at the lower one, four classes. */
  small_net(p, "test-tiny", "16x16x2, 4 classes, 8 channels: the golden tests' network", 16, 2, 4, 8, 2,
            (const int[]){1, 2}, 2, 8, 8);
  small_training(p, 4 * KI, 8, 0.01, 64, 64, 64, 1 * KI, 1 * KI);
  p++;

  /* A two-level 8×8 network for quick end-to-end tests of the programs. */
  small_net(p, "test-micro", "8x8x1, 3 classes, 8 channels: for quick tests", 8, 1, 3, 8, 2, (const int[]){1, 2}, 1, 4,
            8);
  small_training(p, 4 * KI, 8, 0.01, 64, 64, 64, 1 * KI, 1 * KI);
  p++;
  presets_ready = 1;
}

int edm2_preset_count(void) { return N_PRESETS; }

const edm2_preset *edm2_preset_at(int i) {
  init_presets();
  return i >= 0 && i < N_PRESETS ? &presets[i] : NULL;
}

const edm2_preset *edm2_preset_find(const char *name) {
  init_presets();
  if (!name) return NULL;
  if (!strncmp(name, "edm2-", 5)) name += 5;
  for (int i = 0; i < N_PRESETS; i++)
    if (!strcmp(presets[i].name, name)) return &presets[i];
  return NULL;
}

ec_status edm2_preset_get(const char *name, const edm2_preset **out) {
  *out = edm2_preset_find(name);
  if (*out) return EC_OK;
  char known[512] = "";
  for (int i = 0; i < N_PRESETS; i++) {
    size_t n = strlen(known);
    snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", presets[i].name);
  }
  return ec_err(EC_EINVAL, "unknown preset '%s' (known: %s)", name ? name : "(none)", known);
}
