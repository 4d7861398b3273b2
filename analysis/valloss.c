/* val-loss (valloss.h): held-out items read and encoded once per set, then per model the
 * (item, σ) pairs in item-major order, `batch` pairs per eval-mode forward, noise drawn per
 * pair from its own stream, the loss summed in float64 in that fixed order. */
#include "analysis/valloss.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "core/rng.h"
#include "trainer/dataset.h"
#include "trainer/encode.h"
#include "trainer/pass.h"
#include "trainer/precond.h"

struct edm2_valloss_set {
  char *path;              /* the dataset's resolved path, for messages */
  int64_t first, num;
  int nsigma, batch, threads;
  int resolution, channels, label_dim; /* the network shape it was opened for */
  size_t M, L;             /* elements per image, label floats per item (>= 1) */
  float *y;                /* num × M encoded items */
  float *labels;           /* num × L, or NULL when unconditional */
  float *sigma;            /* nsigma, float32 as the network sees them */
  uint64_t *keys;          /* nsigma noise stream keys */
};

void edm2_valloss_opts_default(edm2_valloss_opts *o) {
  *o = (edm2_valloss_opts){
      .data = "fashion-mnist:test",
      .first = 0,
      .num = 128,
      .nsigma = 4,
      .seed = 0,
      .P_mean = -0.8,
      .P_std = 1.6,
      .batch = 16,
      .threads = 0,
  };
}

ec_status edm2_valloss_opts_from_config(edm2_valloss_opts *o, const char *json, const char *what) {
  cJSON *root = cJSON_Parse(json ? json : "");
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return ec_err(EC_EFORMAT, "%s: the configuration is not a JSON object", what);
  }
  ec_status st = EC_OK;
  double v[2] = {o->P_mean, o->P_std};
  static const char *const keys[2] = {"P_mean", "P_std"};
  for (int i = 0; i < 2 && !st; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
    if (!x) continue;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || (i == 1 && !(x->valuedouble > 0)))
      st = ec_err(EC_EFORMAT, "%s: '%s' must be a finite number%s", what, keys[i], i == 1 ? " above 0" : "");
    else v[i] = x->valuedouble;
  }
  cJSON_Delete(root);
  if (!st) {
    o->P_mean = v[0];
    o->P_std = v[1];
  }
  return st;
}

/* ---- Φ⁻¹ ------------------------------------------------------------------------------------ */

/* Acklam's coefficients (central region |p − ½| <= ½ − P_LOW, and the tails). */
static const double QA[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
static const double QB[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
static const double QC[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
static const double QD[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
#define P_LOW 0.02425

double edm2_normal_quantile(double p) {
  if (!(p >= 0 && p <= 1)) return NAN;
  if (p == 0) return -INFINITY;
  if (p == 1) return INFINITY;
  /* Upper half by symmetry: 1 − p is exact for p >= ½, and the refinement below is accurate
   * where Φ(x) is computed from erfc of a non-negative argument. */
  if (p > 0.5) return -edm2_normal_quantile(1 - p);
  double x;
  if (p < P_LOW) {
    double q = sqrt(-2 * log(p));
    x = (((((QC[0] * q + QC[1]) * q + QC[2]) * q + QC[3]) * q + QC[4]) * q + QC[5]) /
        ((((QD[0] * q + QD[1]) * q + QD[2]) * q + QD[3]) * q + 1);
  } else {
    double q = p - 0.5, r = q * q;
    x = (((((QA[0] * r + QA[1]) * r + QA[2]) * r + QA[3]) * r + QA[4]) * r + QA[5]) * q /
        (((((QB[0] * r + QB[1]) * r + QB[2]) * r + QB[3]) * r + QB[4]) * r + 1);
  }
  /* One Halley step: e = Φ(x) − p, u = e/φ(x); from Acklam's 1.2e-9 to full precision. */
  double e = 0.5 * erfc(-x / M_SQRT2) - p;
  double u = e * sqrt(2 * M_PI) * exp(0.5 * x * x);
  return x - u / (1 + 0.5 * x * u);
}

/* ---- keys and σ --------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t edm2_valloss_key(uint64_t seed, int64_t j) {
  return mix64(mix64(seed) + 0x76616c6c6f737300ull + (uint64_t)j);
}

static ec_status check_grid(const edm2_valloss_opts *o) {
  if (o->nsigma < 1 || o->nsigma > EDM2_VALLOSS_MAX_SIGMA)
    return ec_err(EC_EINVAL, "val-loss: nsigma must be 1 to %d (got %d)", EDM2_VALLOSS_MAX_SIGMA, o->nsigma);
  if (!(o->P_std > 0) || !isfinite(o->P_std))
    return ec_err(EC_EINVAL, "val-loss: P_std must be positive and finite (got %g)", o->P_std);
  if (!isfinite(o->P_mean)) return ec_err(EC_EINVAL, "val-loss: P_mean must be finite (got %g)", o->P_mean);
  return EC_OK;
}

ec_status edm2_valloss_sigmas(const edm2_valloss_opts *o, double *sigma) {
  ec_status st = check_grid(o);
  if (st) return st;
  for (int j = 0; j < o->nsigma; j++) {
    double z = edm2_normal_quantile((j + 0.5) / o->nsigma);
    float s = (float)exp(o->P_mean + o->P_std * z);
    if (!(s > 0) || !isfinite(s))
      return ec_err(EC_EINVAL, "val-loss: σ level %d is %g in float32 (P_mean %g, P_std %g, nsigma %d)", j,
                    (double)s, o->P_mean, o->P_std, o->nsigma);
    sigma[j] = s;
  }
  return EC_OK;
}

/* ---- the set ---------------------------------------------------------------------------------- */

void edm2_valloss_close(edm2_valloss_set **sp) {
  edm2_valloss_set *s = *sp;
  if (!s) return;
  ec_freep(&s->path);
  ec_freep(&s->y);
  ec_freep(&s->labels);
  ec_freep(&s->sigma);
  ec_freep(&s->keys);
  ec_freep(sp);
}

/* Checks the dataset against the options and the network shape; every message names it. */
static ec_status check_data(const edm2_dataset_info *in, const edm2_valloss_opts *o, const edm2_netcfg *cfg) {
  const char *p = in->path;
  if (o->num < 1)
    return ec_err(EC_EINVAL, "%s: val-loss needs at least one held-out item (num is %lld)", p, (long long)o->num);
  if (o->first < 0 || o->first > in->n || o->num > in->n - o->first)
    return ec_err(EC_EINVAL, "%s: held-out items [%lld, %lld) are out of range: the dataset holds %lld", p,
                  (long long)o->first, (long long)o->first + (long long)o->num, (long long)in->n);
  int latent = in->type == EDM2_ITEM_F32;
  if (latent && in->channels != 2 * EDM2_LATENT_CHANNELS)
    return ec_err(EC_EINVAL, "%s: float32 items must be VAE latents of %d channels (mean and std), not %d", p,
                  2 * EDM2_LATENT_CHANNELS, in->channels);
  int channels = latent ? EDM2_LATENT_CHANNELS : in->channels;
  if (channels != cfg->img_channels || in->height != cfg->img_resolution || in->width != cfg->img_resolution)
    return ec_err(EC_EINVAL, "%s: items are %d×%d×%d%s; the network takes %d×%d×%d", p, in->channels, in->height,
                  in->width, latent ? " (latent mean and std)" : "", cfg->img_channels, cfg->img_resolution,
                  cfg->img_resolution);
  if (cfg->label_dim > 0 && in->label_dim == 0)
    return ec_err(EC_EINVAL, "%s: the network is class-conditional (label_dim %d) and the dataset has no labels", p,
                  cfg->label_dim);
  if (cfg->label_dim > 0 && in->label_dim != cfg->label_dim)
    return ec_err(EC_EINVAL, "%s: the dataset's labels have %d classes; the network's label_dim is %d", p,
                  in->label_dim, cfg->label_dim);
  return EC_OK;
}

ec_status edm2_valloss_open(edm2_valloss_set **out, const edm2_valloss_opts *o, const edm2_netcfg *cfg) {
  *out = NULL;
  ec_status st = check_grid(o);
  if (st) return st;
  if (o->batch < 1) return ec_err(EC_EINVAL, "val-loss: batch must be positive (got %d)", o->batch);
  if (o->threads < 0) return ec_err(EC_EINVAL, "val-loss: threads must be >= 0 (got %d)", o->threads);
  if (!o->data || !o->data[0]) return ec_err(EC_EINVAL, "val-loss: no dataset given");
  edm2_dataset *d = NULL;
  if ((st = edm2_dataset_open(&d, o->data, &(edm2_dataset_opts){.use_labels = cfg->label_dim > 0})))
    return ec_err_context(st, "val-loss");
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  edm2_valloss_set *s = NULL;
  void *raw = NULL;
  if ((st = check_data(in, o, cfg))) goto done;
  if (!(s = ec_calloc(1, sizeof *s))) {
    st = EC_ENOMEM;
    goto done;
  }
  s->first = o->first;
  s->num = o->num;
  s->nsigma = o->nsigma;
  s->batch = o->batch;
  s->threads = o->threads ? o->threads : ec_cpu_count();
  s->resolution = cfg->img_resolution;
  s->channels = cfg->img_channels;
  s->label_dim = cfg->label_dim;
  s->M = (size_t)cfg->img_channels * (size_t)cfg->img_resolution * (size_t)cfg->img_resolution;
  s->L = (size_t)(cfg->label_dim > 0 ? cfg->label_dim : 1);
  const size_t n = (size_t)o->num, M = s->M;
  s->path = ec_strdup(in->path);
  s->y = ec_mallocarray(n * M, sizeof *s->y);
  s->labels = cfg->label_dim > 0 ? ec_calloc(n * s->L, sizeof *s->labels) : NULL;
  s->sigma = ec_mallocarray((size_t)o->nsigma, sizeof *s->sigma);
  s->keys = ec_mallocarray((size_t)o->nsigma, sizeof *s->keys);
  raw = ec_malloc(in->item_bytes);
  double *grid = ec_mallocarray((size_t)o->nsigma, sizeof *grid);
  if (!s->path || !s->y || (cfg->label_dim > 0 && !s->labels) || !s->sigma || !s->keys || !raw || !grid) {
    ec_freep(&grid);
    st = ec_err(EC_ENOMEM, "%s: out of memory for %lld held-out items", in->path, (long long)o->num);
    goto done;
  }
  st = edm2_valloss_sigmas(o, grid);
  for (int j = 0; j < o->nsigma && !st; j++) {
    s->sigma[j] = (float)grid[j];
    s->keys[j] = edm2_valloss_key(o->seed, j);
  }
  ec_freep(&grid);
  if (st) goto done;
  const uint64_t latent_key = edm2_valloss_key(o->seed, -1);
  for (size_t i = 0; i < n && !st; i++) {
    int64_t k = o->first + (int64_t)i;
    if ((st = edm2_dataset_read(d, k, raw, s->labels ? s->labels + i * s->L : NULL))) break;
    if (in->type == EDM2_ITEM_U8) edm2_encode_pixels(s->y + i * M, raw, M);
    else edm2_encode_latents(s->y + i * M, raw, M / EDM2_LATENT_CHANNELS, latent_key, (uint64_t)k * M);
  }
done:
  ec_freep(&raw);
  edm2_dataset_close(&d);
  if (st) edm2_valloss_close(&s);
  *out = s;
  return st;
}

/* ---- evaluation --------------------------------------------------------------------------- */

ec_status edm2_valloss_eval(edm2_valloss_set *s, edm2_net *net, double *value, double *per_sigma,
                            double *std_err, double *per_item) {
  const edm2_netcfg *cfg = &net->arch.cfg;
  if (cfg->img_resolution != s->resolution || cfg->img_channels != s->channels || cfg->label_dim != s->label_dim)
    return ec_err(EC_EINVAL,
                  "%s: the held-out set was read for networks of %d×%d×%d with label_dim %d; this one is "
                  "%d×%d×%d with label_dim %d",
                  s->path, s->channels, s->resolution, s->resolution, s->label_dim, cfg->img_channels,
                  cfg->img_resolution, cfg->img_resolution, cfg->label_dim);
  const size_t M = s->M, L = s->L, S = (size_t)s->nsigma;
  const int64_t pairs = s->num * s->nsigma;
  const int cap = (int)(pairs < s->batch ? pairs : s->batch);
  edm2_pass pass = {0};
  ec_status st = edm2_pass_init(&pass, net, cap, 0, s->threads);
  if (st) return st;
  float *x = ec_mallocarray((size_t)cap * M, sizeof *x), *y = ec_mallocarray((size_t)cap * M, sizeof *y);
  float *D = ec_mallocarray((size_t)cap * M, sizeof *D), *noise = ec_mallocarray(M, sizeof *noise);
  float *sig = ec_mallocarray((size_t)cap, sizeof *sig), *u = ec_calloc((size_t)cap, sizeof *u);
  float *lab = s->labels ? ec_mallocarray((size_t)cap * L, sizeof *lab) : NULL;
  double *loss = ec_mallocarray((size_t)cap, sizeof *loss);
  double *row = ec_calloc((size_t)s->num, sizeof *row), *col = ec_calloc(S, sizeof *col);
  if (!x || !y || !D || !noise || !sig || !u || (s->labels && !lab) || !loss || !row || !col) {
    st = ec_err(EC_ENOMEM, "%s: out of memory for val-loss batches of %d", s->path, cap);
    goto done;
  }
  for (int64_t p0 = 0; p0 < pairs; p0 += cap) {
    int n = (int)(pairs - p0 < cap ? pairs - p0 : cap);
    for (int b = 0; b < n; b++) {
      int64_t p = p0 + b, i = p / s->nsigma;
      int j = (int)(p % s->nsigma);
      uint64_t k = (uint64_t)(s->first + i);
      const float *yi = s->y + (size_t)i * M;
      float *xb = x + (size_t)b * M;
      sig[b] = s->sigma[j];
      ec_rng_normal_fill(noise, M, s->keys[j], k * M);
      for (size_t e = 0; e < M; e++) xb[e] = yi[e] + sig[b] * noise[e];
      memcpy(y + (size_t)b * M, yi, M * sizeof *y);
      if (lab) memcpy(lab + (size_t)b * L, s->labels + (size_t)i * L, L * sizeof *lab);
    }
    edm2_forward(&pass, n, x, sig, lab, D, NULL, 0);
    /* Σ_e λ(σ)·(D − y)² per pair: the training loss with u = 0. */
    edm2_loss_ref(NULL, loss, NULL, NULL, D, y, u, sig, n, M, cfg->sigma_data, 1.0);
    for (int b = 0; b < n; b++) {
      int64_t p = p0 + b, i = p / s->nsigma;
      int j = (int)(p % s->nsigma);
      double l = loss[b] / (double)M;
      row[i] += l;
      col[j] += l;
    }
  }
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < s->num; i++) sum += row[i] / (double)S;
  const double mean = sum / (double)s->num;
  for (int64_t i = 0; i < s->num; i++) {
    double d = row[i] / (double)S - mean;
    sum2 += d * d;
  }
  if (value) *value = mean;
  if (per_sigma)
    for (size_t j = 0; j < S; j++) per_sigma[j] = col[j] / (double)s->num;
  if (std_err) *std_err = s->num > 1 ? sqrt(sum2 / (double)(s->num - 1) / (double)s->num) : NAN;
  if (per_item)
    for (int64_t i = 0; i < s->num; i++) per_item[i] = row[i] / (double)S;
done:
  edm2_pass_free(&pass);
  free(x);
  free(y);
  free(D);
  free(noise);
  free(sig);
  free(u);
  free(lab);
  free(loss);
  free(row);
  free(col);
  return st;
}

ec_status edm2_valloss(edm2_net *net, const edm2_valloss_opts *o, double *value, double *per_sigma,
                       double *std_err) {
  edm2_valloss_set *s = NULL;
  ec_status st = edm2_valloss_open(&s, o, &net->arch.cfg);
  if (!st) st = edm2_valloss_eval(s, net, value, per_sigma, std_err, NULL);
  edm2_valloss_close(&s);
  return st;
}
