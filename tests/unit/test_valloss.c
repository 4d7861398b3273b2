/* val-loss (analysis/valloss.h): Φ⁻¹ against known quantiles, the σ grid, a known-answer test
 * against a plain recomputation with edm2_forward one pair at a time, independence of the batch,
 * the thread count and the slice, the seed, latent data, bad input; and on the real Fashion-MNIST
 * test split with the fmnist preset's shape when Debian's dataset-fashion-mnist is installed
 * (the timing of one default evaluation is printed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "analysis/valloss.h"
#include "core/fs.h"
#include "core/rng.h"
#include "test.h"
#include "trainer/dataset.h"
#include "trainer/encode.h"
#include "trainer/pass.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

static int mkdirs(const char *path) { return ec_mkdirs(path) == EC_OK ? 0 : -1; }

static void put_be32(uint8_t *b, uint32_t v) {
  b[0] = (uint8_t)(v >> 24);
  b[1] = (uint8_t)(v >> 16);
  b[2] = (uint8_t)(v >> 8);
  b[3] = (uint8_t)v;
}

static int write_gz(const char *path, const uint8_t *data, size_t size) {
  gzFile f = gzopen(path, "wb");
  if (!f) return -1;
  int ok = gzwrite(f, data, (unsigned)size) == (int)size;
  return gzclose(f) == Z_OK && ok ? 0 : -1;
}

/* An IDX directory for test-micro (8×8, 1 channel, 3 classes): `prefix` ("train" or "t10k"),
 * n images of pseudo-random pixels and labels 0, 1, 2, 0, … */
static int write_idx(const char *dir, const char *prefix, uint32_t n, uint32_t salt) {
  size_t px = (size_t)n * 64;
  uint8_t *b = malloc(16 + px), lab[8 + 256];
  if (!b || n > 256) return -1;
  put_be32(b, 0x803);
  put_be32(b + 4, n);
  put_be32(b + 8, 8);
  put_be32(b + 12, 8);
  for (size_t i = 0; i < px; i++) b[16 + i] = (uint8_t)(ec_rng_u32(salt, i) >> 24);
  put_be32(lab, 0x801);
  put_be32(lab + 4, n);
  for (uint32_t i = 0; i < n; i++) lab[8 + i] = (uint8_t)(i % 3);
  char path[4200];
  snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
  int rc = write_gz(path, b, 16 + px);
  snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
  if (!rc) rc = write_gz(path, lab, 8 + n);
  free(b);
  return rc;
}

/* The IDX fixture directory (train: 10 images, t10k: 12), written once. */
static const char *idx_dir(void) {
  static char dir[4096];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s", test_path("idx"));
    if (mkdirs(dir) || write_idx(dir, "train", 10, 11) || write_idx(dir, "t10k", 12, 22)) dir[0] = '\0';
  }
  return dir;
}

static const char *idx_test_spec(void) {
  static char spec[4200];
  snprintf(spec, sizeof spec, "%s:test", idx_dir());
  return spec;
}

/* test-micro with random weights and non-zero gains (so that D is not just c_skip·x). */
static int micro_net(edm2_net *net, const char *config_json, uint64_t seed) {
  edm2_netcfg c = edm2_preset_find("test-micro")->net;
  if (config_json && edm2_netcfg_apply_json(&c, config_json, "test", 1)) return -1;
  if (edm2_net_init(net, &c)) return -1;
  edm2_net_randomize(net, seed);
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const edm2_tensor *t = &net->arch.tensors[i];
    if (t->kind == EDM2_PARAM && t->ndim == 0) edm2_net_tensor(net, i)[0] = 0.7f;
  }
  return 0;
}

static edm2_valloss_opts micro_opts(const char *data, int64_t first, int64_t num) {
  edm2_valloss_opts o;
  edm2_valloss_opts_default(&o);
  o.data = data;
  o.first = first;
  o.num = num;
  o.nsigma = 3;
  o.batch = 4;
  o.threads = 1;
  return o;
}

/* ---- a plain recomputation ------------------------------------------------------------------ */

/* valloss.h's definition, one (item, σ) pair per forward, the loss written out. */
static ec_status recompute(edm2_net *net, const edm2_valloss_opts *o, double *value, double *per_sigma,
                           double *std_err) {
  const edm2_netcfg *c = &net->arch.cfg;
  const size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  const size_t L = (size_t)(c->label_dim ? c->label_dim : 1);
  edm2_dataset *d = NULL;
  ec_status st = edm2_dataset_open(&d, o->data, &(edm2_dataset_opts){.use_labels = c->label_dim > 0});
  if (st) return st;
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  edm2_pass pass;
  if ((st = edm2_pass_init(&pass, net, 1, 0, 1))) {
    edm2_dataset_close(&d);
    return st;
  }
  double sigma[16], rows[64] = {0}, col[16] = {0};
  float *y = malloc(M * 4), *x = malloc(M * 4), *D = malloc(M * 4), *label = calloc(L, 4);
  void *raw = malloc(in->item_bytes);
  st = edm2_valloss_sigmas(o, sigma);
  for (int64_t i = 0; i < o->num && !st; i++) {
    int64_t k = o->first + i;
    if ((st = edm2_dataset_read(d, k, raw, c->label_dim ? label : NULL))) break;
    if (in->type == EDM2_ITEM_U8)
      for (size_t e = 0; e < M; e++) y[e] = (float)((const uint8_t *)raw)[e] / 127.5f - 1.0f;
    else
      edm2_encode_latents(y, raw, M / 4, edm2_valloss_key(o->seed, -1), (uint64_t)k * M);
    for (int j = 0; j < o->nsigma; j++) {
      float s = (float)sigma[j];
      uint64_t key = edm2_valloss_key(o->seed, j);
      for (size_t e = 0; e < M; e++) x[e] = y[e] + s * (float)ec_rng_normal(key, (uint64_t)k * M + e);
      edm2_forward(&pass, 1, x, &s, c->label_dim ? label : NULL, D, NULL, 0);
      double sd = c->sigma_data, ss = s, sq = 0;
      for (size_t e = 0; e < M; e++) sq += ((double)D[e] - y[e]) * ((double)D[e] - y[e]);
      double l = (ss * ss + sd * sd) / (ss * sd * ss * sd) * sq / (double)M;
      rows[i] += l / o->nsigma;
      col[j] += l / (double)o->num;
    }
  }
  double mean = 0, var = 0;
  for (int64_t i = 0; i < o->num; i++) mean += rows[i] / (double)o->num;
  for (int64_t i = 0; i < o->num; i++) var += (rows[i] - mean) * (rows[i] - mean) / (double)(o->num - 1);
  *value = mean;
  for (int j = 0; j < o->nsigma; j++) per_sigma[j] = col[j];
  *std_err = sqrt(var / (double)o->num);
  free(y);
  free(x);
  free(D);
  free(label);
  free(raw);
  edm2_pass_free(&pass);
  edm2_dataset_close(&d);
  return st;
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(normal_quantile_known_values) {
  /* Exact quantiles of the double p (mpmath, 40 digits). */
  static const struct {
    double p, x;
  } known[] = {
      {1e-300, -37.047096299361199237},
      {1e-20, -9.2623400897984075796},
      {1e-10, -6.3613409024040561991},
      {0.001, -3.0902323061678135354},
      {0.02425, -1.9729610513118848376},
      {0.025, -1.9599639845400542118},
      {0.125, -1.1503493803760081783},
      {0.375, -0.31863936396437516302},
      {0.5, 0.0},
      {0.625, 0.31863936396437516302},
      {0.875, 1.1503493803760081783},
      {0.975, 1.9599639845400538556},
      {0.999, 3.0902323061678132778},
      {0.9999999, 5.1993375822906610937},
      {1 - 0x1p-52, 8.1258906647019068585},
      {1 - 0x1p-53, 8.2095361516013868556},
  };
  double worst = 0;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    double x = edm2_normal_quantile(known[i].p), tol = 1e-12 * (fabs(known[i].x) > 1 ? fabs(known[i].x) : 1);
    ASSERT_NEAR(x, known[i].x, tol);
    double err = fabs(x - known[i].x) / (fabs(known[i].x) > 1 ? fabs(known[i].x) : 1);
    if (err > worst) worst = err;
  }
  printf("# worst relative error %.2g\n", worst);
  ASSERT_TRUE(edm2_normal_quantile(0) == -INFINITY);
  ASSERT_TRUE(edm2_normal_quantile(1) == INFINITY);
  ASSERT_TRUE(isnan(edm2_normal_quantile(-0.1)));
  ASSERT_TRUE(isnan(edm2_normal_quantile(1.5)));
  ASSERT_TRUE(isnan(edm2_normal_quantile(NAN)));
  /* Symmetric and increasing on a fine dyadic grid (where 1 − p is exact). */
  double prev = -INFINITY;
  for (int i = 1; i < 8192; i++) {
    double p = i / 8192.0, x = edm2_normal_quantile(p);
    ASSERT_TRUE(x > prev);
    ASSERT_NEAR(x, -edm2_normal_quantile(1 - p), 1e-15 * (1 + fabs(x)));
    /* Φ(x) = p back. */
    ASSERT_NEAR(0.5 * erfc(-x / sqrt(2.0)), p, 2e-16);
    prev = x;
  }
}

TEST(sigma_grid_midpoint_quantiles) {
  edm2_valloss_opts o;
  edm2_valloss_opts_default(&o);
  ASSERT_EQ_INT(o.nsigma, 4);
  ASSERT_NEAR(o.P_mean, -0.8, 0);
  ASSERT_NEAR(o.P_std, 1.6, 0);
  double s[EDM2_VALLOSS_MAX_SIGMA];
  ASSERT_OK(edm2_valloss_sigmas(&o, s));
  static const double z[4] = {-1.1503493803760081783, -0.31863936396437516302, 0.31863936396437516302,
                              1.1503493803760081783};
  for (int j = 0; j < 4; j++) {
    ASSERT_NEAR(s[j], (float)exp(-0.8 + 1.6 * z[j]), 0);
    printf("# sigma[%d] = %.6g\n", j, s[j]);
  }
  o.nsigma = 1;
  ASSERT_OK(edm2_valloss_sigmas(&o, s));
  ASSERT_NEAR(s[0], (float)exp(-0.8), 0);
  o.nsigma = 0;
  ASSERT_STATUS(edm2_valloss_sigmas(&o, s), EC_EINVAL, "nsigma must be 1 to 1024 (got 0)");
  o.nsigma = 4;
  o.P_std = 0;
  ASSERT_STATUS(edm2_valloss_sigmas(&o, s), EC_EINVAL, "P_std must be positive");
  o.P_std = 1.6;
  o.P_mean = NAN;
  ASSERT_STATUS(edm2_valloss_sigmas(&o, s), EC_EINVAL, "P_mean must be finite");
  /* Distinct keys per level, per seed, and for latents. */
  ASSERT_NE_INT(edm2_valloss_key(0, 0), edm2_valloss_key(0, 1));
  ASSERT_NE_INT(edm2_valloss_key(0, 0), edm2_valloss_key(1, 0));
  ASSERT_NE_INT(edm2_valloss_key(0, -1), edm2_valloss_key(0, 0));
}

TEST(opts_from_run_config) {
  edm2_valloss_opts o;
  edm2_valloss_opts_default(&o);
  ASSERT_OK(edm2_valloss_opts_from_config(&o, "{\"preset\": \"img64-s\", \"P_mean\": -0.4, \"P_std\": 1.0}", "c.json"));
  ASSERT_NEAR(o.P_mean, -0.4, 0);
  ASSERT_NEAR(o.P_std, 1.0, 0);
  ASSERT_OK(edm2_valloss_opts_from_config(&o, "{\"label_dim\": 10}", "c.json"));
  ASSERT_NEAR(o.P_mean, -0.4, 0);
  ASSERT_STATUS(edm2_valloss_opts_from_config(&o, "{\"P_std\": 0}", "c.json"), EC_EFORMAT,
                "c.json: 'P_std' must be a finite number above 0");
  ASSERT_STATUS(edm2_valloss_opts_from_config(&o, "{\"P_mean\": \"x\", \"P_std\": 2}", "c.json"), EC_EFORMAT,
                "c.json: 'P_mean' must be a finite number");
  ASSERT_NEAR(o.P_std, 1.0, 0);
  ASSERT_STATUS(edm2_valloss_opts_from_config(&o, "[1]", "c.json"), EC_EFORMAT, "c.json: the configuration is not");
  ASSERT_STATUS(edm2_valloss_opts_from_config(&o, NULL, "c.json"), EC_EFORMAT, "c.json: the configuration is not");
}

TEST(known_answer_two_images) {
  ASSERT_TRUE(idx_dir()[0]);
  edm2_net net;
  ASSERT_EQ_INT(micro_net(&net, NULL, 5), 0);
  edm2_valloss_opts o = micro_opts(idx_test_spec(), 1, 2);
  double v, ps[3], se, rv, rps[3], rse;
  ASSERT_OK(edm2_valloss(&net, &o, &v, ps, &se));
  ASSERT_OK(recompute(&net, &o, &rv, rps, &rse));
  printf("# value %.9g (recomputed %.9g), stderr %.3g, per sigma %.6g %.6g %.6g\n", v, rv, se, ps[0], ps[1], ps[2]);
  ASSERT_TRUE(v > 0 && isfinite(v));
  /* Batch 4 against batch 1 per pair: the same arithmetic but for OpenBLAS's blocking. */
  ASSERT_REL(v, rv, 1e-6);
  ASSERT_REL(se, rse, 1e-5);
  for (int j = 0; j < 3; j++) ASSERT_REL(ps[j], rps[j], 1e-6);
  /* The network is not changed by an evaluation. */
  edm2_net fresh;
  ASSERT_EQ_INT(micro_net(&fresh, NULL, 5), 0);
  ASSERT_EQ_INT(memcmp(fresh.params, net.params, net.arch.params_size * sizeof(float)), 0);
  edm2_net_free(&fresh);
  edm2_net_free(&net);
}

TEST(batch_threads_slice_and_seed) {
  ASSERT_TRUE(idx_dir()[0]);
  edm2_net net;
  ASSERT_EQ_INT(micro_net(&net, NULL, 9), 0);
  edm2_valloss_opts o = micro_opts(idx_test_spec(), 0, 12);
  o.nsigma = 5;
  double ref, ref_ps[5], ref_se, v, ps[5], se;
  o.batch = 16;
  ASSERT_OK(edm2_valloss(&net, &o, &ref, ref_ps, &ref_se));
  /* The same options twice: the same bits. */
  ASSERT_OK(edm2_valloss(&net, &o, &v, ps, &se));
  ASSERT_TRUE(v == ref && se == ref_se);
  static const int batches[3] = {3, 16, 60}, threads[2] = {1, 2};
  double worst = 0;
  for (int b = 0; b < 3; b++)
    for (int t = 0; t < 2; t++) {
      o.batch = batches[b];
      o.threads = threads[t];
      ASSERT_OK(edm2_valloss(&net, &o, &v, ps, &se));
      ASSERT_REL(v, ref, 1e-6);
      ASSERT_REL(se, ref_se, 1e-5);
      for (int j = 0; j < 5; j++) ASSERT_REL(ps[j], ref_ps[j], 1e-6);
      if (fabs(v - ref) / ref > worst) worst = fabs(v - ref) / ref;
    }
  printf("# value %.9g; batch 3/16/60 × threads 1/2: largest relative difference %.2g\n", ref, worst);
  /* A slice is the mean of its parts: every item keeps its noise whatever range holds it. */
  o.batch = 7;
  o.threads = 1;
  double a, b2;
  o.num = 5;
  ASSERT_OK(edm2_valloss(&net, &o, &a, NULL, NULL));
  o.first = 5;
  o.num = 7;
  ASSERT_OK(edm2_valloss(&net, &o, &b2, NULL, NULL));
  ASSERT_REL((5 * a + 7 * b2) / 12, ref, 1e-6);
  /* Another seed: other noise, another value. */
  o.first = 0;
  o.num = 12;
  o.seed = 1;
  ASSERT_OK(edm2_valloss(&net, &o, &v, NULL, NULL));
  printf("# seed 1: %.9g\n", v);
  ASSERT_TRUE(fabs(v - ref) > 1e-4 * ref);
  /* A held-out slice of the training split, through the set API: two models on the same set. */
  edm2_valloss_opts tr = micro_opts(idx_dir(), 6, 4);
  edm2_valloss_set *s = NULL;
  ASSERT_OK(edm2_valloss_open(&s, &tr, &net.arch.cfg));
  double v1, v2, r1, rps[3], rse;
  ASSERT_OK(edm2_valloss_eval(s, &net, &v1, NULL, NULL, NULL));
  ASSERT_OK(recompute(&net, &tr, &r1, rps, &rse));
  ASSERT_REL(v1, r1, 1e-6);
  edm2_net other;
  ASSERT_EQ_INT(micro_net(&other, NULL, 10), 0);
  ASSERT_OK(edm2_valloss_eval(s, &other, &v2, NULL, NULL, NULL));
  ASSERT_OK(recompute(&other, &tr, &r1, rps, &rse));
  ASSERT_REL(v2, r1, 1e-6);
  ASSERT_TRUE(v1 != v2);
  edm2_valloss_close(&s);
  ASSERT_TRUE(s == NULL);
  edm2_net_free(&other);
  edm2_net_free(&net);
}

/* A little-endian float32 .npy of shape (8, 8, 8): VAE mean (channels 0–3) and std (4–7). */
static int write_latent(const char *path, uint32_t salt) {
  const char *hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 8, 8), }";
  size_t len = strlen(hdr), pad = 64 - (10 + len + 1) % 64, hlen = len + pad + 1, size = 10 + hlen + 512 * 4;
  uint8_t *b = malloc(size);
  if (!b) return -1;
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hlen;
  b[9] = (uint8_t)(hlen >> 8);
  memcpy(b + 10, hdr, len);
  memset(b + 10 + len, ' ', pad);
  b[10 + hlen - 1] = '\n';
  for (size_t k = 0; k < 512; k++) {
    float v = k < 256 ? 4.0f * (float)ec_rng_normal(salt, k) : 0.5f + ec_rng_uniform(salt, k);
    memcpy(b + 10 + hlen + 4 * k, &v, 4);
  }
  int rc = test_write_file(path, b, size);
  free(b);
  return rc;
}

TEST(latent_data) {
  ASSERT_EQ_INT(mkdirs(test_path("lat")), 0);
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "lat/img-%02d.npy", i);
    ASSERT_EQ_INT(write_latent(test_path(name), (uint32_t)i + 100), 0);
  }
  edm2_net net;
  ASSERT_EQ_INT(micro_net(&net, "{\"img_channels\": 4, \"label_dim\": 0}", 3), 0);
  edm2_valloss_opts o = micro_opts(test_path("lat"), 1, 3);
  double v, ps[3], se, rv, rps[3], rse;
  ASSERT_OK(edm2_valloss(&net, &o, &v, ps, &se));
  ASSERT_OK(recompute(&net, &o, &rv, rps, &rse));
  printf("# latents: value %.9g (recomputed %.9g)\n", v, rv);
  ASSERT_REL(v, rv, 1e-6);
  for (int j = 0; j < 3; j++) ASSERT_REL(ps[j], rps[j], 1e-6);
  /* A pixel network does not take latents. */
  edm2_net pix;
  ASSERT_EQ_INT(micro_net(&pix, "{\"label_dim\": 0}", 3), 0);
  ASSERT_STATUS(edm2_valloss(&pix, &o, &v, NULL, NULL), EC_EINVAL,
                "items are 8×8×8 (latent mean and std); the network takes 1×8×8");
  ASSERT_CONTAINS(ec_errmsg(), test_path("lat"));
  edm2_net_free(&pix);
  edm2_net_free(&net);
}

TEST(bad_input_names_the_dataset) {
  ASSERT_TRUE(idx_dir()[0]);
  edm2_net net;
  ASSERT_EQ_INT(micro_net(&net, NULL, 1), 0);
  edm2_valloss_opts o = micro_opts(idx_test_spec(), 10, 3);
  double v;
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_EINVAL,
                "idx:test: held-out items [10, 13) are out of range: the dataset holds 12");
  o.first = -1;
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_EINVAL, "idx:test: held-out items [-1, 2) are out of range");
  o.first = 0;
  o.num = 0;
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_EINVAL,
                "idx:test: val-loss needs at least one held-out item (num is 0)");
  o.num = 1;
  double se;
  ASSERT_OK(edm2_valloss(&net, &o, &v, NULL, &se));
  ASSERT_TRUE(isnan(se));
  o.batch = 0;
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_EINVAL, "batch must be positive");
  o.batch = 4;
  o.data = test_path("missing");
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_ENOENT, "val-loss: ");
  ASSERT_CONTAINS(ec_errmsg(), "missing");
  o.data = "";
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_EINVAL, "no dataset given");
  /* Labels: other class count, or none for a conditional network. */
  edm2_net five;
  ASSERT_EQ_INT(micro_net(&five, "{\"label_dim\": 5}", 1), 0);
  o.data = idx_test_spec();
  ASSERT_STATUS(edm2_valloss(&five, &o, &v, NULL, NULL), EC_EINVAL,
                "idx:test: the dataset's labels have 3 classes; the network's label_dim is 5");
  edm2_net_free(&five);
  ASSERT_EQ_INT(mkdirs(test_path("nolabels")), 0);
  ASSERT_EQ_INT(write_idx(test_path("nolabels"), "train", 4, 1), 0);
  ASSERT_EQ_INT(remove(test_path("nolabels/train-labels-idx1-ubyte.gz")), 0);
  o.data = test_path("nolabels");
  ASSERT_STATUS(edm2_valloss(&net, &o, &v, NULL, NULL), EC_ENOENT, "train-labels-idx1-ubyte[.gz]: missing");
  /* The set refuses a network of another shape. */
  o.data = idx_test_spec();
  edm2_valloss_set *s = NULL;
  ASSERT_OK(edm2_valloss_open(&s, &o, &net.arch.cfg));
  edm2_net uncond;
  ASSERT_EQ_INT(micro_net(&uncond, "{\"label_dim\": 0}", 1), 0);
  ASSERT_STATUS(edm2_valloss_eval(s, &uncond, &v, NULL, NULL, NULL), EC_EINVAL,
                "idx:test: the held-out set was read for networks of 1×8×8 with label_dim 3");
  /* An unconditional network on labelled data: the labels are not read. */
  ASSERT_OK(edm2_valloss(&uncond, &o, &v, NULL, NULL));
  edm2_net_free(&uncond);
  edm2_valloss_close(&s);
  edm2_net_free(&net);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The defaults on the real data with the fmnist preset's shape (random weights): the set's
 * shape, and the time of one evaluation (EDM2C_VALLOSS_TIME=1 runs the full default; otherwise
 * 32 images keep the test quick). */
TEST(fashion_mnist_defaults) {
  FILE *probe = fopen("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb");
  if (!probe) TEST_SKIP("Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)");
  fclose(probe);
  edm2_net net;
  ASSERT_OK(edm2_net_init(&net, &edm2_preset_find("fmnist")->net));
  edm2_net_randomize(&net, 0);
  edm2_valloss_opts o;
  edm2_valloss_opts_default(&o);
  ASSERT_STR_EQ(o.data, "fashion-mnist:test");
  ASSERT_EQ_INT(o.num, 128);
  ASSERT_EQ_INT(o.nsigma, 4);
  const char *full = getenv("EDM2C_VALLOSS_TIME");
  if (!full || !full[0]) o.num = 32;
  double t0 = now();
  edm2_valloss_set *s = NULL;
  ASSERT_OK(edm2_valloss_open(&s, &o, &net.arch.cfg));
  double t1 = now(), v, ps[4], se;
  ASSERT_OK(edm2_valloss_eval(s, &net, &v, ps, &se, NULL));
  double t2 = now();
  printf("# fmnist shape, %lld images × %d σ, batch %d, threads %d: open %.3f s, eval %.3f s (%.2f ms per pair); "
         "value %.6g ± %.2g, per σ %.4g %.4g %.4g %.4g\n",
         (long long)o.num, o.nsigma, o.batch, o.threads, t1 - t0, t2 - t1, 1e3 * (t2 - t1) / (double)(o.num * o.nsigma),
         v, se, ps[0], ps[1], ps[2], ps[3]);
  ASSERT_TRUE(isfinite(v) && v > 0);
  edm2_valloss_close(&s);
  edm2_net_free(&net);
}

TEST_MAIN(normal_quantile_known_values, sigma_grid_midpoint_quantiles, opts_from_run_config, known_answer_two_images,
          batch_threads_slice_and_seed, latent_data, bad_input_names_the_dataset, fashion_mnist_defaults)
