/* The EDM2 sampler's properties (trainer/generate.h) that the golden test does not reach: the
 * time steps against edm2-spec.md §8.1's list, the per-seed streams (an image depends only on
 * its seed, never on its batch), the Heun integrator on a network whose output gain is 0
 * (D = c_skip·x, a linear ODE), guidance plumbing (w = 1 never touches the guiding net, w = 0
 * samples the guiding net, gnet = net changes nothing), and the option checks' messages. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "test.h"
#include "trainer/generate.h"
#include "trainer/net.h"
#include "trainer/netconfig.h"
#include "trainer/pass.h"

/* ---- time steps ------------------------------------------------------------------------------ */

/* edm2-spec.md §8.1, N = 32, as printed there. */
static const char *SPEC_T32[] = {
    "79.99998",  "66.93087",   "55.73619",   "46.18639",   "38.07486",    "31.21641",
    "25.44535",  "20.61405",   "16.59137",   "13.26122",   "10.52124",    "8.281582",
    "6.463664",  "4.999110",   "3.828727",   "2.901531",   "2.173860",    "1.608570",
    "1.174270",  "0.8446196",  "0.5977004",  "0.4154319",  "0.2830441",   "0.1885995",
    "0.1225656", "0.07743050", "0.04736365", "0.02791576", "0.01575746",  "0.008453050",
    "0.004266835", "0.0019999996"};

TEST(timesteps_match_spec_n32) {
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  ASSERT_EQ_INT(o.steps, 32);
  float t[33];
  edm2_gen_timesteps(&o, t);
  for (int i = 0; i < 32; i++) {
    /* Equal to the printed digits: within half a unit of the last printed decimal. */
    const char *s = SPEC_T32[i];
    const char *dot = strchr(s, '.');
    int decimals = dot ? (int)strlen(dot + 1) : 0;
    double half = 0.5 * pow(10.0, -decimals);
    ASSERT_NEAR(t[i], strtod(s, NULL), half * (1 + 1e-9));
  }
  ASSERT_TRUE(t[32] == 0.0f);
  ASSERT_REL(t[31], 0.002, 1e-6);
  ASSERT_REL(t[0], 80.0, 1e-6);
}

TEST(timesteps_ends_and_order) {
  const struct {
    int steps;
    double smin, smax, rho;
  } C[] = {{32, 0.002, 80, 7}, {5, 0.01, 20, 3}, {2, 0.002, 80, 7}, {64, 0.02, 1, 1},
           {18, 0.5, 2, 0.5}, {40, 0.001, 160, 2}, {256, 0.002, 80, 9.5}};
  for (size_t c = 0; c < sizeof C / sizeof C[0]; c++) {
    edm2_gen_opts o;
    edm2_gen_opts_default(&o);
    o.steps = C[c].steps;
    o.sigma_min = C[c].smin;
    o.sigma_max = C[c].smax;
    o.rho = C[c].rho;
    ASSERT_OK(edm2_gen_opts_check(&o));
    float *t = malloc(((size_t)o.steps + 1) * sizeof *t);
    ASSERT_TRUE(t);
    edm2_gen_timesteps(&o, t);
    /* Within float rounding of the formula in double: base = a + i/(N−1)·(b − a) is a float32
     * sum of terms up to a, so it is off by about ulp(a), relatively ulp(a)/base, which the
     * power ρ multiplies; plus a few roundings. Strictly decreasing. */
    double a = pow(o.sigma_max, 1 / o.rho), b = pow(o.sigma_min, 1 / o.rho);
    int ok = t[o.steps] == 0.0f;
    for (int i = 0; i < o.steps; i++) {
      double base = a + (double)i / (o.steps - 1) * (b - a), exact = pow(base, o.rho);
      double tol = o.rho * 2 * FLT_EPSILON * a / base + 4 * FLT_EPSILON;
      ok &= fabs(t[i] / exact - 1) < tol;
      ok &= t[i + 1] < t[i];
      if (i == 0) ok &= fabs(t[i] / o.sigma_max - 1) < tol;
      if (i == o.steps - 1) ok &= fabs(t[i] / o.sigma_min - 1) < tol;
    }
    if (!ok) printf("# case %zu: t_0 %.9g, t_N-1 %.9g\n", c, (double)t[0], (double)t[o.steps - 1]);
    free(t);
    ASSERT_TRUE(ok);
  }
  /* One step: t_0 = σ_max (the reference's 0/0 would give NaN), then 0. */
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.steps = 1;
  float t[2];
  edm2_gen_timesteps(&o, t);
  ASSERT_REL(t[0], 80.0, 1e-6);
  ASSERT_TRUE(t[1] == 0.0f);
}

TEST(t_hat_churn_window) {
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  ASSERT_TRUE(edm2_gen_t_hat(&o, 3.0f) == 3.0f); /* S_churn = 0 */
  o.S_churn = 40;                                  /* γ = sqrt(2) − 1 (40/32 is larger) */
  o.S_min = 0.05;
  o.S_max = 50;
  ASSERT_TRUE(edm2_gen_t_hat(&o, 60.0f) == 60.0f);
  ASSERT_TRUE(edm2_gen_t_hat(&o, 0.04f) == 0.04f);
  float g = (float)(sqrt(2.0) - 1);
  ASSERT_TRUE(edm2_gen_t_hat(&o, 3.0f) == 3.0f + g * 3.0f);
  ASSERT_REL(edm2_gen_t_hat(&o, 3.0f), 3.0 * sqrt(2.0), 1e-6);
  o.S_churn = 8; /* γ = 0.25 */
  ASSERT_TRUE(edm2_gen_t_hat(&o, 4.0f) == 5.0f);
  /* The window compares in float32: S_max just below float(0.1) in double still admits it. */
  o.S_min = 0;
  o.S_max = nextafter((double)0.1f, 0.0);
  ASSERT_TRUE(edm2_gen_t_hat(&o, 0.1f) != 0.1f);
}

/* ---- option checks --------------------------------------------------------------------------- */

static void expect_einval(const edm2_gen_opts *o, const char *option) {
  ec_err_clear();
  ec_status st = edm2_gen_opts_check(o);
  if (st != EC_EINVAL || !strstr(ec_errmsg(), option))
    test_fail_(__FILE__, __LINE__, "expected EC_EINVAL naming %s, got %d: %s", option, st,
               ec_errmsg());
}

TEST(opts_check_names_the_option) {
  edm2_gen_opts d, o;
  edm2_gen_opts_default(&d);
  ASSERT_OK(edm2_gen_opts_check(&d));
#define BAD(field, value, option)                                                                  \
  do {                                                                                             \
    o = d;                                                                                         \
    o.field = value;                                                                               \
    expect_einval(&o, option);                                                                     \
    if (test_failed_) return;                                                                      \
  } while (0)
  BAD(steps, 0, "--steps");
  BAD(steps, -3, "--steps");
  BAD(sigma_min, 0, "--sigma-min");
  BAD(sigma_min, -1, "--sigma-min");
  BAD(sigma_min, NAN, "--sigma-min");
  BAD(sigma_max, 0.001, "--sigma-max");
  BAD(sigma_max, 0.002, "--sigma-max");
  BAD(sigma_max, INFINITY, "--sigma-max");
  BAD(rho, 0, "--rho");
  BAD(rho, -7, "--rho");
  BAD(rho, NAN, "--rho");
  BAD(S_churn, -1, "--S-churn");
  BAD(S_churn, INFINITY, "--S-churn");
  BAD(S_noise, -0.5, "--S-noise");
  BAD(S_noise, NAN, "--S-noise");
  BAD(S_min, NAN, "--S-min/--S-max");
#undef BAD
}

TEST(opts_check_pairs_and_ranges) {
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.S_min = 5;
  o.S_max = 1;
  expect_einval(&o, "--S-min/--S-max");
  edm2_gen_opts_default(&o);
  o.S_max = NAN;
  expect_einval(&o, "--S-min/--S-max");
  edm2_gen_opts_default(&o);
  o.guidance = NAN;
  expect_einval(&o, "--guidance");
  edm2_gen_opts_default(&o);
  o.guidance = INFINITY;
  expect_einval(&o, "--guidance");
  /* Out of float32's range: the time steps would be 0 or infinite. */
  edm2_gen_opts_default(&o);
  o.sigma_min = 1e-60;
  expect_einval(&o, "--sigma-min/--sigma-max/--rho");
  edm2_gen_opts_default(&o);
  o.sigma_max = 1e50;
  expect_einval(&o, "--sigma-min/--sigma-max/--rho");
  /* ρ < 1 with a wide range: base = σmax^(1/ρ) + (σmin^(1/ρ) − σmax^(1/ρ)) cancels to 0 in
   * float32 at the last step (the reference would divide by t = 0 there). */
  edm2_gen_opts_default(&o);
  o.rho = 0.5;
  expect_einval(&o, "--sigma-min/--sigma-max/--rho");
  /* Fine: negative guidance, S_min = S_max, S_noise 0, one step. */
  edm2_gen_opts_default(&o);
  o.guidance = -0.5;
  o.S_min = o.S_max = 3;
  o.S_noise = 0;
  o.steps = 1;
  ASSERT_OK(edm2_gen_opts_check(&o));
}

/* ---- per-seed streams ------------------------------------------------------------------------ */

TEST(seed_streams) {
  enum { M = 64 };
  float a[M], b[M], c[M];
  edm2_seed_noise(6, a, M);
  edm2_seed_noise(6, b, M);
  ASSERT_TRUE(memcmp(a, b, sizeof a) == 0);
  edm2_seed_noise(7, c, M);
  ASSERT_TRUE(memcmp(a, c, sizeof a) != 0);
  edm2_seed_noise(-6, c, M);
  ASSERT_TRUE(memcmp(a, c, sizeof a) != 0);
  /* A shorter draw is a prefix. */
  edm2_seed_noise(6, c, 10);
  ASSERT_TRUE(memcmp(a, c, 10 * sizeof *a) == 0);
  /* Churn: its own stream, element e of step i at index i·M + e. */
  int64_t seeds[2] = {6, 9};
  float ch[2 * M];
  edm2_seed_churn(seeds, 0, 0, ch, 2 * M);
  ASSERT_TRUE(memcmp(ch, a, sizeof a) != 0);
  edm2_seed_churn(seeds, 1, 0, b, M);
  ASSERT_TRUE(memcmp(ch + M, b, sizeof b) == 0);
  edm2_seed_churn(seeds, 1, 1, c, M);
  ASSERT_TRUE(memcmp(b, c, sizeof b) != 0);
  /* Normal: mean and variance of many draws. */
  enum { BIG = 1 << 16 };
  float *z = malloc(BIG * sizeof *z);
  ASSERT_TRUE(z);
  edm2_seed_noise(12345, z, BIG);
  double s = 0, s2 = 0;
  for (int i = 0; i < BIG; i++) {
    s += z[i];
    s2 += (double)z[i] * z[i];
  }
  free(z);
  ASSERT_NEAR(s / BIG, 0, 0.02);
  ASSERT_NEAR(s2 / BIG, 1, 0.03);
}

TEST(seed_classes) {
  ASSERT_EQ_INT(edm2_seed_class(3, 0), -1);
  ASSERT_EQ_INT(edm2_seed_class(3, 1), 0);
  int count[10] = {0};
  for (int64_t s = 0; s < 20000; s++) {
    int c = edm2_seed_class(s, 10);
    ASSERT_TRUE(c >= 0 && c < 10);
    count[c]++;
  }
  for (int c = 0; c < 10; c++) ASSERT_TRUE(count[c] > 1800 && count[c] < 2200);
  ASSERT_EQ_INT(edm2_seed_class(77, 1000), edm2_seed_class(77, 1000));
}

/* ---- sampling with a network ----------------------------------------------------------------- */

typedef struct {
  edm2_net net;
  size_t M;
  int L;
} micro;

/* test-micro with random weights scaled off the unit sphere and gains `gain` (0: D = c_skip·x,
 * the output convolution's gain being 0). */
static int micro_init(micro *m, uint64_t seed, float gain) {
  memset(m, 0, sizeof *m);
  edm2_netcfg c = edm2_preset_find("test-micro")->net;
  if (edm2_net_init(&m->net, &c)) return -1;
  edm2_net_randomize(&m->net, seed);
  for (int i = 0; i < m->net.arch.n_tensors; i++) {
    const edm2_tensor *t = &m->net.arch.tensors[i];
    float *p = edm2_net_tensor(&m->net, i);
    if (t->kind != EDM2_PARAM) continue;
    if (t->ndim == 0) p[0] = gain;
    else
      for (int64_t j = 0; j < t->numel; j++) p[j] *= 3;
  }
  m->M = (size_t)c.img_channels * c.img_resolution * c.img_resolution;
  m->L = c.label_dim;
  return 0;
}

/* Noise and one-hot labels of the seeds, as edm2-generate makes them. */
static void seed_inputs(const micro *m, const int64_t *seeds, int n, float *x, float *labels) {
  memset(labels, 0, (size_t)n * m->L * sizeof *labels);
  for (int j = 0; j < n; j++) {
    edm2_seed_noise(seeds[j], x + (size_t)j * m->M, m->M);
    labels[(size_t)j * m->L + edm2_seed_class(seeds[j], m->L)] = 1;
  }
}

static ec_status sample(micro *m, micro *g, const edm2_gen_opts *o, const int64_t *seeds, int n,
                        float *x, int threads) {
  float *labels = malloc((size_t)n * m->L * sizeof *labels);
  if (!labels) return EC_ENOMEM;
  seed_inputs(m, seeds, n, x, labels);
  edm2_pass p = {0}, gp = {0};
  ec_status st = edm2_pass_init(&p, &m->net, n, 0, threads);
  if (!st && g) st = edm2_pass_init(&gp, &g->net, n, 0, threads);
  if (!st) st = edm2_generate(o, &p, g ? &gp : NULL, n, x, labels, edm2_seed_churn, (void *)seeds);
  edm2_pass_free(&p);
  edm2_pass_free(&gp);
  free(labels);
  return st;
}

static double max_rel(const float *a, const float *ref, size_t n) {
  double md = 0, mr = 0;
  for (size_t k = 0; k < n; k++) {
    double d = fabs((double)a[k] - ref[k]);
    if (!(d <= md)) md = d;
    if (fabs(ref[k]) > mr) mr = fabs(ref[k]);
  }
  return mr > 0 ? md / mr : md;
}

/* Seed 6's image alone and in the middle of {5, 6, 7}, with churn. Everything the sampler adds
 * (noise, churn, the per-image arithmetic) is per seed: with a network whose output gain is 0
 * (D = c_skip·x, per image) the two are equal bit for bit. A real network batches the images of
 * a call into its GEMMs, whose float32 sums then change in the last bits with the batch size, so
 * there the two agree to ~1e-6, as they do when the call is split across threads. Repeating a
 * call changes nothing. */
TEST(image_depends_only_on_its_seed) {
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.steps = 6;
  o.S_churn = 4;
  o.S_min = 0.01;
  o.S_max = 20;
  const int64_t three[3] = {5, 6, 7}, one[1] = {6};
  int same_linear = 0, repeat = 0, threads = 0, differs = 0, finite = 1;
  double rel = 1;
  for (int real = 0; real < 2; real++) {
    micro m;
    ASSERT_TRUE(micro_init(&m, 3, real ? 0.7f : 0.0f) == 0);
    float *x3 = malloc(3 * m.M * sizeof *x3), *x1 = malloc(m.M * sizeof *x1);
    float *again = malloc(3 * m.M * sizeof *again);
    ASSERT_TRUE(x3 && x1 && again);
    o.S_churn = 4;
    ASSERT_OK(sample(&m, NULL, &o, three, 3, x3, 1));
    ASSERT_OK(sample(&m, NULL, &o, one, 1, x1, 1));
    if (!real) {
      same_linear = memcmp(x3 + m.M, x1, m.M * sizeof *x1) == 0;
    } else {
      rel = max_rel(x1, x3 + m.M, m.M);
      printf("# seed 6 alone vs in a batch of 3 (real network): rel %.3g\n", rel);
      ASSERT_OK(sample(&m, NULL, &o, three, 3, again, 1));
      repeat = memcmp(x3, again, 3 * m.M * sizeof *x3) == 0;
      ASSERT_OK(sample(&m, NULL, &o, three, 3, again, 3)); /* one image per thread */
      threads = max_rel(again, x3, 3 * m.M) < 1e-5;
      /* Churn matters: without it the samples differ. */
      o.S_churn = 0;
      ASSERT_OK(sample(&m, NULL, &o, three, 3, again, 1));
      differs = memcmp(x3, again, 3 * m.M * sizeof *x3) != 0;
      for (size_t k = 0; k < 3 * m.M; k++) finite &= isfinite(x3[k]) != 0;
    }
    free(x3);
    free(x1);
    free(again);
    edm2_net_free(&m.net);
  }
  ASSERT_TRUE(same_linear);
  ASSERT_TRUE(rel < 1e-5);
  ASSERT_TRUE(finite);
  ASSERT_TRUE(repeat);
  ASSERT_TRUE(threads);
  ASSERT_TRUE(differs);
}

/* With the output gain 0, D(x, σ) = c_skip·x = σd²/(σ² + σd²)·x is linear, so every step of the
 * sampler multiplies x by a scalar: Heun of the ODE dx/dt = (x − D)/t = x·(1 − c_skip(t))/t,
 * computed here in double. The float32 sampler follows it; both differ from the ODE's exact
 * solution x(0) = x(t_0)·σd/sqrt(t_0² + σd²) by Heun's discretisation error (1.6% at 32 steps).
 * One step (N = 1, Euler only) lands on D(x_0, σ_max) = c_skip·x_0, computed as
 * x_0 − t_0·(x_0 − D)/t_0: in float32 that cancels all but c_skip(80) ≈ 4e-5 of x_0, so it
 * keeps only ~FLT_EPSILON/4e-5 ≈ 3e-3 relative accuracy (the reference's float32 too). */
static double heun_factor(const float *t, int N, double sd2) {
  double m = t[0];
  for (int i = 0; i < N; i++) {
    double tc = t[i], tn = t[i + 1], h = tn - tc;
    double d = (1 - sd2 / (tc * tc + sd2)) / tc, x1 = 1 + h * d;
    if (i < N - 1) {
      double dp = x1 * (1 - sd2 / (tn * tn + sd2)) / tn;
      x1 = 1 + h * (0.5 * d + 0.5 * dp);
    }
    m *= x1;
  }
  return m;
}

TEST(heun_on_a_linear_denoiser) {
  micro m;
  ASSERT_TRUE(micro_init(&m, 4, 0.0f) == 0);
  const double sd2 = 0.25;
  const int64_t seeds[2] = {1, 2};
  size_t nm = 2 * m.M;
  float *x = malloc(nm * sizeof *x), *z = malloc(nm * sizeof *z), *want = malloc(nm * sizeof *want);
  ASSERT_TRUE(x && z && want);
  for (int j = 0; j < 2; j++) edm2_seed_noise(seeds[j], z + (size_t)j * m.M, m.M);
  const int steps[3] = {32, 7, 1};
  double rel[3], ode = 0;
  for (int c = 0; c < 3; c++) {
    edm2_gen_opts o;
    edm2_gen_opts_default(&o);
    o.steps = steps[c];
    float t[33];
    edm2_gen_timesteps(&o, t);
    ASSERT_OK(sample(&m, NULL, &o, seeds, 2, x, 1));
    double f = heun_factor(t, o.steps, sd2);
    for (size_t k = 0; k < nm; k++) want[k] = (float)(f * z[k]);
    rel[c] = max_rel(x, want, nm);
    printf("# %d steps: rel %.3g against Heun in double\n", steps[c], rel[c]);
    if (c == 0) ode = f / (t[0] * sqrt(sd2 / ((double)t[0] * t[0] + sd2))) - 1;
    if (c == 2) ASSERT_REL(f, o.sigma_max * sd2 / (o.sigma_max * o.sigma_max + sd2), 1e-6);
  }
  printf("# 32-step Heun vs the exact ODE solution: %.3g\n", ode);
  free(x);
  free(z);
  free(want);
  edm2_net_free(&m.net);
  ASSERT_TRUE(rel[0] < 1e-5);
  ASSERT_TRUE(rel[1] < 1e-5);
  ASSERT_TRUE(rel[2] < 1e-2);
  ASSERT_TRUE(fabs(ode) < 0.02);
}

/* Guidance 1 never touches gnet; gnet = main net gives the unguided samples exactly (lerp of
 * equal values); w = 0 samples the guiding net itself. */
TEST(guidance_plumbing) {
  micro a, b;
  ASSERT_TRUE(micro_init(&a, 5, 0.6f) == 0);
  ASSERT_TRUE(micro_init(&b, 6, 0.9f) == 0);
  const int64_t seeds[2] = {10, 11};
  size_t nm = 2 * a.M;
  float *x0 = malloc(nm * sizeof *x0), *x1 = malloc(nm * sizeof *x1), *labels = NULL;
  ASSERT_TRUE(x0 && x1);
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.steps = 5;
  ASSERT_OK(sample(&a, NULL, &o, seeds, 2, x0, 1));
  /* w = 1 with a bogus guiding pass: untouched. */
  labels = calloc(2 * (size_t)a.L, sizeof *labels);
  ASSERT_TRUE(labels);
  seed_inputs(&a, seeds, 2, x1, labels);
  edm2_pass p = {0}, bogus;
  memset(&bogus, 0xff, sizeof bogus);
  bogus.net = NULL;
  ASSERT_OK(edm2_pass_init(&p, &a.net, 2, 0, 1));
  ASSERT_OK(edm2_generate(&o, &p, &bogus, 2, x1, labels, NULL, NULL));
  edm2_pass_free(&p);
  int untouched = memcmp(x0, x1, nm * sizeof *x0) == 0;
  /* gnet = the same network, w = 1.7 and 0.2 (both lerp branches). */
  int same_net = 1;
  for (int k = 0; k < 2; k++) {
    o.guidance = k ? 0.2 : 1.7;
    ASSERT_OK(sample(&a, &a, &o, seeds, 2, x1, 1));
    same_net &= memcmp(x0, x1, nm * sizeof *x0) == 0;
  }
  /* w = 0: the guiding net's samples (with the main net's labels). */
  o.guidance = 1;
  ASSERT_OK(sample(&b, NULL, &o, seeds, 2, x0, 1));
  o.guidance = 0;
  ASSERT_OK(sample(&a, &b, &o, seeds, 2, x1, 1));
  int w0 = memcmp(x0, x1, nm * sizeof *x0) == 0;
  /* w = 2 differs from both. */
  o.guidance = 2;
  ASSERT_OK(sample(&a, &b, &o, seeds, 2, x1, 1));
  int w2 = memcmp(x0, x1, nm * sizeof *x0) != 0;
  free(x0);
  free(x1);
  free(labels);
  edm2_net_free(&a.net);
  edm2_net_free(&b.net);
  ASSERT_TRUE(untouched);
  ASSERT_TRUE(same_net);
  ASSERT_TRUE(w0);
  ASSERT_TRUE(w2);
}

TEST(generate_argument_errors) {
  micro a, u;
  ASSERT_TRUE(micro_init(&a, 5, 0.6f) == 0);
  /* A guiding net with other images: 8x8x2. */
  edm2_netcfg c = edm2_preset_find("test-micro")->net;
  c.img_channels = 2;
  memset(&u, 0, sizeof u);
  ASSERT_OK(edm2_net_init(&u.net, &c));
  float x[3 * 64] = {0};
  edm2_pass p = {0}, gp = {0}, tp = {0};
  ASSERT_OK(edm2_pass_init(&p, &a.net, 2, 0, 1));
  ASSERT_OK(edm2_pass_init(&gp, &u.net, 2, 0, 1));
  ASSERT_OK(edm2_pass_init(&tp, &a.net, 2, 1, 1));
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.steps = 2;
  ec_status e1 = edm2_generate(&o, &p, NULL, 3, x, NULL, NULL, NULL);  /* above capacity */
  ec_status e2 = edm2_generate(&o, &tp, NULL, 2, x, NULL, NULL, NULL); /* training mode */
  o.guidance = 2;
  ec_err_clear();
  ec_status e3 = edm2_generate(&o, &p, NULL, 2, x, NULL, NULL, NULL); /* no gnet */
  int names_gnet = strstr(ec_errmsg(), "--gnet") != NULL;
  ec_status e4 = edm2_generate(&o, &p, &gp, 2, x, NULL, NULL, NULL); /* other image shape */
  o.guidance = 1;
  o.S_churn = 1;
  ec_status e5 = edm2_generate(&o, &p, NULL, 2, x, NULL, NULL, NULL); /* no churn source */
  o.steps = 0;
  ec_err_clear();
  ec_status e6 = edm2_generate(&o, &p, NULL, 2, x, NULL, NULL, NULL);
  int names_steps = strstr(ec_errmsg(), "--steps") != NULL;
  o.steps = 2;
  o.S_churn = 0;
  ec_status e7 = edm2_generate(&o, &p, NULL, 0, x, NULL, NULL, NULL); /* nothing to do */
  edm2_pass_free(&p);
  edm2_pass_free(&gp);
  edm2_pass_free(&tp);
  edm2_net_free(&a.net);
  edm2_net_free(&u.net);
  ASSERT_EQ_INT(e1, EC_EINVAL);
  ASSERT_EQ_INT(e2, EC_EINVAL);
  ASSERT_EQ_INT(e3, EC_EINVAL);
  ASSERT_TRUE(names_gnet);
  ASSERT_EQ_INT(e4, EC_EINVAL);
  ASSERT_EQ_INT(e5, EC_EINVAL);
  ASSERT_EQ_INT(e6, EC_EINVAL);
  ASSERT_TRUE(names_steps);
  ASSERT_EQ_INT(e7, EC_OK);
}

TEST_MAIN(timesteps_match_spec_n32, timesteps_ends_and_order, t_hat_churn_window,
          opts_check_names_the_option, opts_check_pairs_and_ranges, seed_streams, seed_classes,
          image_depends_only_on_its_seed, heun_on_a_linear_denoiser, guidance_plumbing,
          generate_argument_errors)
