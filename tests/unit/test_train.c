/* The training loop's parts and its guarantees (trainer/train.h, optim.h, ema.h): the learning
 * rate schedule, Adam against a float64 transcription of PyTorch's formula, the power-function
 * EMA against its closed form, and, on a tiny IDX dataset with the test-micro network:
 * bit-identical reruns, resume = straight through (bit for bit), accumulation rounds, a run
 * directory holding another run, and a finished run. The comparison with the reference
 * implementation's own training steps is tests/unit/test_train_golden.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "posthoc/phema_math.h"
#include "posthoc/snapshot.h"
#include "test.h"
#include "trainer/ckpt.h"
#include "trainer/ema.h"
#include "trainer/encode.h"
#include "trainer/optim.h"
#include "trainer/train.h"

/* ---- schedule and optimizer ------------------------------------------------------------------- */

TEST(lr_schedule_matches_the_reference_formula) {
  edm2_lr_sched s = {0.01, 70000, 10000000};
  ASSERT_EQ_INT(edm2_lr(&s, 0, 2048) == 0.0, 1); /* the first step learns nothing */
  ASSERT_REL(edm2_lr(&s, 2048, 2048), 0.01 * 2048 / 1e7, 1e-15);
  ASSERT_REL(edm2_lr(&s, 10000000, 2048), 0.01, 1e-15);
  ASSERT_REL(edm2_lr(&s, 70000LL * 2048, 2048), 0.01, 1e-15);
  ASSERT_REL(edm2_lr(&s, 4 * 70000LL * 2048, 2048), 0.005, 1e-15);
  edm2_lr_sched flat = {0.02, 0, 0};
  ASSERT_REL(edm2_lr(&flat, 0, 8), 0.02, 0);
  ASSERT_REL(edm2_lr(&flat, 1 << 30, 8), 0.02, 0);
}

TEST(force_finite_zeroes_nan_and_inf) {
  float g[5] = {1, NAN, -INFINITY, INFINITY, -2};
  ASSERT_EQ_INT(edm2_force_finite(g, 5), 3);
  ASSERT_TRUE(g[0] == 1 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == -2);
}

/* Five steps on random gradients (every seventh element a million times smaller) against
 * PyTorch's formula in float64. */
TEST(adam_matches_pytorch_formula) {
  enum { N = 1000, STEPS = 5 };
  edm2_adam a;
  ASSERT_OK(edm2_adam_init(&a, N));
  float p[N];
  double pd[N], m[N] = {0}, v[N] = {0};
  for (int i = 0; i < N; i++) pd[i] = p[i] = (float)ec_rng_normal(1, (uint64_t)i);
  double worst = 0;
  for (int k = 1; k <= STEPS; k++) {
    float g[N];
    for (int i = 0; i < N; i++) g[i] = (float)(ec_rng_normal(2 + (uint64_t)k, (uint64_t)i) * (i % 7 ? 1 : 1e-6));
    const double lr = 0.01 * k;
    edm2_adam_step(&a, p, g, lr);
    for (int i = 0; i < N; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * (double)g[i] * g[i];
      double denom = sqrt(v[i]) / sqrt(1 - pow(0.99, k)) + 1e-8;
      pd[i] -= lr / (1 - pow(0.9, k)) * m[i] / denom;
      worst = fmax(worst, fabs(p[i] - pd[i]) / (fabs(pd[i]) + 1e-3));
    }
  }
  ASSERT_EQ_INT(a.step, STEPS);
  edm2_adam_free(&a);
  /* float32 against float64: about eight roundings per element and step, five steps, and the
   * division by sqrt(v) + eps, which loses nothing extra here: ~1e-6 relative. */
  printf("# adam: worst relative difference from float64 %.3g\n", worst);
  ASSERT_TRUE(worst < 1e-5);
}

/* The EMA after updates β_t = ((t − Δ)/t)^(γ+1) is, in closed form,
 *   e_T = Σ_k (t_k^(γ+1) − t_(k−1)^(γ+1)) p_k / T^(γ+1),   t_k = k·Δ,
 * the power-function average of the parameter sequence (paper Eq. 3 discretised). */
TEST(ema_equals_closed_form_power_average) {
  enum { N = 64, STEPS = 300, DT = 3 };
  const double sig[2] = {0.05, 0.10};
  edm2_ema e;
  ASSERT_OK(edm2_ema_init(&e, sig, 2, N));
  float p[N];
  double num[2][N] = {{0}};
  for (int k = 1; k <= STEPS; k++) {
    for (int i = 0; i < N; i++) p[i] = (float)(sin(0.05 * k + i) + 0.01 * k);
    edm2_ema_update(&e, p, (int64_t)k * DT, DT);
    for (int s = 0; s < 2; s++) {
      const double g1 = e.gamma[s] + 1;
      /* Weights relative to T to keep the powers finite. */
      const double T = (double)STEPS * DT;
      double w = pow(k * DT / T, g1) - pow((k - 1) * DT / T, g1);
      for (int i = 0; i < N; i++) num[s][i] += w * p[i];
    }
  }
  double worst = 0;
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(e.avg[s][i] - num[s][i]));
  edm2_ema_free(&e);
  printf("# ema: worst absolute difference from the closed form %.3g (values ~1)\n", worst);
  ASSERT_TRUE(worst < 2e-5);
}

TEST(ema_profiles_are_validated) {
  edm2_ema e;
  const double dup[2] = {0.05, 0.05}, bad[1] = {0.5};
  ASSERT_STATUS(edm2_ema_init(&e, dup, 2, 4), EC_EINVAL, "listed twice");
  ASSERT_STATUS(edm2_ema_init(&e, bad, 1, 4), EC_EINVAL, "0.5");
}

/* ---- the loop on a tiny dataset ---------------------------------------------------------------- */

static void be32(unsigned char *b, uint32_t v) {
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

/* 40 images of 8×8 (blobs whose position depends on the class, 3 classes) as IDX files. */
static const char *make_dataset(void) {
  enum { N = 40, S = 8 };
  const char *dir = test_path("data");
  char path[512];
  if (test_system("mkdir -p '%s'", dir)) return NULL;
  unsigned char img[16 + N * S * S], lab[8 + N];
  be32(img, 0x803);
  be32(img + 4, N);
  be32(img + 8, S);
  be32(img + 12, S);
  be32(lab, 0x801);
  be32(lab + 4, N);
  for (int n = 0; n < N; n++) {
    int c = n % 3;
    lab[8 + n] = (unsigned char)c;
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        double d = (x - 2 - 2 * c) * (x - 2 - 2 * c) + (y - 3) * (y - 3);
        img[16 + (n * S + y) * S + x] = (unsigned char)(255 * exp(-d / 3) * (0.7 + 0.3 * (n % 5) / 4.0));
      }
  }
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
  if (test_write_file(path, img, sizeof img)) return NULL;
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
  if (test_write_file(path, lab, sizeof lab)) return NULL;
  return dir;
}

static void micro_cfg(edm2_traincfg *c, const char *data) {
  edm2_traincfg_from_preset(c, edm2_preset_find("test-micro"));
  snprintf(c->data, sizeof c->data, "%s", data);
  c->duration = 2048;
  c->batch = 8;
  c->status = 256;
  c->snapshot = 1024;
  c->checkpoint = 1024;
  c->rampup = 256;
  c->decay = 64;
  c->threads = 1;
  c->net.dropout = 0.1; /* exercises the dropout streams across resume and rounds */
}

static ec_status train_run(const edm2_traincfg *c, const char *outdir, int64_t stop_after) {
  edm2_trainer t;
  edm2_train_opts o = {.quiet = 1, .stop_after = stop_after};
  ec_status st = edm2_trainer_init(&t, c, outdir, &o);
  if (st) return st;
  st = edm2_trainer_run(&t);
  edm2_trainer_free(&t);
  return st;
}

static int same_file(const char *a, const char *b) {
  size_t na, nb;
  char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
  int same = x && y && na == nb && !memcmp(x, y, na);
  free(x);
  free(y);
  return same;
}

TEST(rerun_is_bit_identical_and_resume_equals_straight_through) {
  const char *data = make_dataset();
  ASSERT_TRUE(data != NULL);
  edm2_traincfg c;
  micro_cfg(&c, data);
  const char *a = test_path("run_a"), *b = test_path("run_b"), *r = test_path("run_resumed");
  ASSERT_OK(train_run(&c, a, 0));
  ASSERT_OK(train_run(&c, b, 0));
  ASSERT_OK(train_run(&c, r, 1024)); /* stops at 1024 with a checkpoint */
  char p1[600], p2[600];
  snprintf(p1, sizeof p1, "%s/snapshots/snapshot-000000002048.h5", r);
  ASSERT_TRUE(fopen(p1, "r") == NULL); /* not there yet */
  ASSERT_OK(train_run(&c, r, 0));
  const char *names[] = {"snapshots/snapshot-000000000000.h5", "snapshots/snapshot-000000001024.h5",
                         "snapshots/snapshot-000000002048.h5"};
  for (int i = 0; i < 3; i++) {
    snprintf(p1, sizeof p1, "%s/%s", a, names[i]);
    snprintf(p2, sizeof p2, "%s/%s", b, names[i]);
    ASSERT_TRUE(same_file(p1, p2));
    snprintf(p2, sizeof p2, "%s/%s", r, names[i]);
    ASSERT_TRUE(same_file(p1, p2));
  }
  /* The final weights and optimizer state too (the checkpoints differ only in `elapsed`). */
  edm2_trainer ta, tr;
  edm2_traincfg c3 = c;
  c3.duration = 4096; /* init resumes from the newest checkpoint */
  ASSERT_OK(edm2_trainer_init(&ta, &c3, a, &(edm2_train_opts){.quiet = 1}));
  ASSERT_OK(edm2_trainer_init(&tr, &c3, r, &(edm2_train_opts){.quiet = 1}));
  ASSERT_EQ_INT(ta.nimg, 2048);
  ASSERT_EQ_INT(tr.nimg, 2048);
  size_t P = ta.net.arch.params_size;
  int same = !memcmp(ta.net.params, tr.net.params, P * sizeof(float)) &&
             !memcmp(ta.adam.m, tr.adam.m, P * sizeof(float)) && !memcmp(ta.adam.v, tr.adam.v, P * sizeof(float)) &&
             ta.adam.step == tr.adam.step && !memcmp(ta.ema.avg[1], tr.ema.avg[1], P * sizeof(float));
  edm2_trainer_free(&ta);
  edm2_trainer_free(&tr);
  ASSERT_TRUE(same);
}

/* Snapshots hold the tracked EMAs of the weights the steps produced: recompute them in closed
 * form from the recorded weight sequence and compare with the snapshot (float16 rounding). */
TEST(snapshot_holds_closed_form_averages_of_the_weights) {
  const char *data = make_dataset();
  ASSERT_TRUE(data != NULL);
  edm2_traincfg c;
  micro_cfg(&c, data);
  c.duration = 1024;
  const char *dir = test_path("run_ema");
  edm2_trainer t;
  ASSERT_OK(edm2_trainer_init(&t, &c, dir, &(edm2_train_opts){.quiet = 1}));
  const size_t P = t.net.arch.params_size;
  const int steps = (int)(c.duration / c.batch);
  double *avg = calloc(2 * P, sizeof(double));
  ASSERT_TRUE(avg != NULL);
  for (int k = 1; k <= steps; k++) {
    double loss;
    ASSERT_OK(edm2_trainer_draw(&t, t.y, t.labels, t.sigma, t.noise));
    ASSERT_OK(edm2_trainer_step(&t, t.y, t.labels, t.sigma, t.noise, &loss));
    for (int s = 0; s < 2; s++) {
      const double g1 = t.ema.gamma[s] + 1;
      const double w = pow((double)k / steps, g1) - pow((double)(k - 1) / steps, g1);
      for (size_t i = 0; i < P; i++) avg[s * P + i] += w * t.net.params[i];
    }
  }
  ASSERT_OK(edm2_trainer_snapshot(&t));
  snap_file sf;
  char path[600];
  snprintf(path, sizeof path, "%s/snapshots/snapshot-000000001024.h5", dir);
  ASSERT_OK(snap_open(&sf, path));
  double worst = 0;
  for (int s = 0; s < 2; s++) {
    int prof = snap_find_profile(&sf, c.ema[s]);
    ASSERT_TRUE(prof >= 0);
    for (int i = 0; i < t.net.arch.n_tensors; i++) {
      const edm2_tensor *tt = &t.net.arch.tensors[i];
      if (tt->kind != EDM2_PARAM) continue;
      float *v = malloc((size_t)tt->numel * sizeof(float));
      int ti = snap_find_tensor(&sf, tt->name);
      ASSERT_TRUE(v && ti >= 0);
      ASSERT_OK(snap_read(&sf, prof, ti, 0, tt->numel, v));
      for (int64_t j = 0; j < tt->numel; j++) {
        double ref = avg[s * P + tt->offset + (size_t)j];
        worst = fmax(worst, fabs(v[j] - ref) / fmax(fabs(ref), 1e-2));
      }
      free(v);
    }
  }
  snap_close(&sf);
  edm2_trainer_free(&t);
  free(avg);
  printf("# snapshot EMA vs closed form: worst relative difference %.3g (float16 storage: 4.9e-4)\n", worst);
  ASSERT_TRUE(worst < 1e-3);
}

/* Accumulation rounds change only the summation order of the gradient. */
TEST(accumulation_rounds_agree_with_one_round) {
  const char *data = make_dataset();
  ASSERT_TRUE(data != NULL);
  edm2_traincfg c;
  micro_cfg(&c, data);
  c.duration = 512;
  c.checkpoint = 0;
  c.snapshot = 0;
  edm2_trainer t1, t2;
  ASSERT_OK(edm2_trainer_init(&t1, &c, test_path("run_rounds1"), &(edm2_train_opts){.quiet = 1}));
  c.batch_gpu = 2;
  ASSERT_OK(edm2_trainer_init(&t2, &c, test_path("run_rounds4"), &(edm2_train_opts){.quiet = 1}));
  ASSERT_EQ_INT(t2.rounds, 4);
  for (int k = 0; k < 16; k++) {
    double l1, l2;
    ASSERT_OK(edm2_trainer_draw(&t1, t1.y, t1.labels, t1.sigma, t1.noise));
    ASSERT_OK(edm2_trainer_step(&t1, t1.y, t1.labels, t1.sigma, t1.noise, &l1));
    ASSERT_OK(edm2_trainer_draw(&t2, t2.y, t2.labels, t2.sigma, t2.noise));
    ASSERT_OK(edm2_trainer_step(&t2, t2.y, t2.labels, t2.sigma, t2.noise, &l2));
    ASSERT_REL(l2, l1, 1e-5);
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < t1.net.arch.params_size; i++) {
    double d = (double)t1.net.params[i] - t2.net.params[i];
    num += d * d;
    den += (double)t1.net.params[i] * t1.net.params[i];
  }
  edm2_trainer_free(&t1);
  edm2_trainer_free(&t2);
  printf("# 1 vs 4 rounds after 16 steps: weight NMSE %.3g\n", num / den);
  ASSERT_TRUE(num / den < 1e-8);
}

TEST(outdir_of_another_run_is_refused_and_finished_run_says_so) {
  const char *data = make_dataset();
  ASSERT_TRUE(data != NULL);
  edm2_traincfg c;
  micro_cfg(&c, data);
  c.duration = 1024;
  const char *dir = test_path("run_other");
  ASSERT_OK(train_run(&c, dir, 0));
  edm2_traincfg d = c;
  d.seed = 5;
  edm2_trainer t;
  ASSERT_STATUS(edm2_trainer_init(&t, &d, dir, NULL), EC_EINVAL, "holds a different run: seed 0, not 5");
  d = c;
  d.lr_ref = 0.02;
  ASSERT_STATUS(edm2_trainer_init(&t, &d, dir, NULL), EC_EINVAL, "lr 0.01, not 0.02");
  /* The same run, already complete. */
  ASSERT_STATUS(train_run(&c, dir, 0), EC_EINVAL, "the run is complete");
  /* Settings that do not change what is trained may differ: a longer duration continues. */
  d = c;
  d.duration = 2048;
  d.status = 512;
  ASSERT_OK(train_run(&d, dir, 0));
}

TEST(config_json_round_trip) {
  edm2_traincfg c, d;
  edm2_traincfg_from_preset(&c, edm2_preset_find("fmnist"));
  c.n_ema = 3;
  c.ema[2] = 0.13;
  c.net.dropout = 0.05;
  c.batch_gpu = 16;
  char *js = edm2_traincfg_to_json(&c);
  ASSERT_TRUE(js != NULL);
  ASSERT_OK(edm2_traincfg_from_json(&d, js, "test"));
  free(js);
  ASSERT_OK(edm2_traincfg_same_run(&c, &d, "here"));
  ASSERT_EQ_INT(d.batch_gpu, 16);
  ASSERT_EQ_INT(d.n_ema, 3);
  ASSERT_STR_EQ(d.data, "fashion-mnist");
  ASSERT_STATUS(edm2_traincfg_from_json(&d, "{\"preset\": \"fmnist\"}", "cfg.json"), EC_EFORMAT, "cfg.json");
}

TEST(intervals_are_checked) {
  edm2_traincfg c;
  edm2_traincfg_from_preset(&c, edm2_preset_find("fmnist"));
  c.snapshot = 1000;
  ASSERT_STATUS(edm2_traincfg_check(&c), EC_EINVAL, "--snapshot 1000 is not a multiple of the batch");
  c.snapshot = 32 * 33;
  ASSERT_STATUS(edm2_traincfg_check(&c), EC_EINVAL, "--snapshot 1056 is not a multiple of 1024");
  edm2_traincfg_from_preset(&c, edm2_preset_find("fmnist"));
  c.batch_gpu = 12;
  ASSERT_STATUS(edm2_traincfg_check(&c), EC_EINVAL, "--batch 32 is not a multiple of --batch-gpu 12");
  edm2_traincfg_from_preset(&c, edm2_preset_find("fmnist"));
  c.duration = 100;
  ASSERT_STATUS(edm2_traincfg_check(&c), EC_EINVAL, "--duration 100 is not a multiple of the batch");
}

/* Encoders (edm2-spec.md §10.2): pixels to [-1, 1]; latents sampled afresh from the stored
 * mean and std and normalised with the reference's constants. */
TEST(encoders) {
  const uint8_t px[3] = {0, 128, 255};
  float y[3];
  edm2_encode_pixels(y, px, 3);
  ASSERT_TRUE(y[0] == -1.0f && fabsf(y[1] - 0.0039216f) < 1e-6f && y[2] == 1.0f);
  ASSERT_REL(edm2_latent_scale[0], 0.11990407, 1e-7);
  ASSERT_REL(edm2_latent_bias[3], 0.32774392, 1e-7);
  enum { P = 20000 };
  float *raw = calloc(8 * P, sizeof(float)), *z = malloc(4 * P * sizeof(float)), *z2 = malloc(4 * P * sizeof(float));
  ASSERT_TRUE(raw && z && z2);
  for (int e = 0; e < P; e++) {
    raw[0 * P + e] = 5.81f; /* channel 0: the raw mean, std 0 -> exactly the bias-cancelled 0 */
    raw[1 * P + e] = 3.25f;
    raw[5 * P + e] = 4.62f; /* channel 1: std = raw_std -> standard deviation 0.5 after scaling */
  }
  edm2_encode_latents(z, raw, P, 7, 0);
  double m1 = 0, v1 = 0;
  for (int e = 0; e < P; e++) {
    ASSERT_TRUE(fabsf(z[e]) < 1e-6f);
    m1 += z[P + e] / P;
  }
  for (int e = 0; e < P; e++) v1 += (z[P + e] - m1) * (z[P + e] - m1) / P;
  printf("# latent channel 1: mean %.4f, std %.4f (expected 0 and 0.5)\n", m1, sqrt(v1));
  ASSERT_TRUE(fabs(m1) < 0.02 && fabs(sqrt(v1) - 0.5) < 0.02);
  edm2_encode_latents(z2, raw, P, 7, 4 * P); /* the next use of the item draws anew */
  ASSERT_TRUE(memcmp(z + P, z2 + P, P * sizeof(float)) != 0);
  free(raw);
  free(z);
  free(z2);
}

TEST_MAIN(lr_schedule_matches_the_reference_formula, encoders, force_finite_zeroes_nan_and_inf, adam_matches_pytorch_formula,
          ema_equals_closed_form_power_average, ema_profiles_are_validated,
          rerun_is_bit_identical_and_resume_equals_straight_through, snapshot_holds_closed_form_averages_of_the_weights,
          accumulation_rounds_agree_with_one_round, outdir_of_another_run_is_refused_and_finished_run_says_so,
          config_json_round_trip, intervals_are_checked)
