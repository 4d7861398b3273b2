/* Properties of the network's passes (trainer/pass.h) that the golden test does not reach:
 * forced weight normalisation happens in place before use, dropout masks are reproducible and
 * back-propagated correctly (finite differences through the whole network), gradients
 * accumulate, and random initialisation follows the reference's distributions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "test.h"
#include "trainer/net.h"
#include "trainer/pass.h"
#include "trainer/precond.h"

typedef struct {
  edm2_net net;
  int n;
  size_t M;
  float *x, *y, *sigma, *labels, *D, *lv, *dD, *du;
} fixture;

/* test-micro (optionally with dropout), random weights scaled off the unit sphere, gains 0.7, a
 * batch of 3 with σ from 0.3 to 2. */
static int setup(fixture *f, double dropout) {
  memset(f, 0, sizeof *f);
  edm2_netcfg c = edm2_preset_find("test-micro")->net;
  c.dropout = dropout;
  if (edm2_net_init(&f->net, &c)) return -1;
  edm2_net_randomize(&f->net, 7);
  for (int i = 0; i < f->net.arch.n_tensors; i++) {
    const edm2_tensor *t = &f->net.arch.tensors[i];
    float *p = edm2_net_tensor(&f->net, i);
    if (t->kind != EDM2_PARAM) continue;
    if (t->ndim == 0) p[0] = 0.7f;
    else
      for (int64_t j = 0; j < t->numel; j++) p[j] *= 3;
  }
  f->n = 3;
  f->M = (size_t)c.img_channels * c.img_resolution * c.img_resolution;
  size_t nm = (size_t)f->n * f->M;
  f->x = malloc(nm * sizeof(float));
  f->y = malloc(nm * sizeof(float));
  f->D = malloc(nm * sizeof(float));
  f->dD = malloc(nm * sizeof(float));
  f->sigma = malloc((size_t)f->n * sizeof(float));
  f->lv = malloc((size_t)f->n * sizeof(float));
  f->du = malloc((size_t)f->n * sizeof(float));
  f->labels = calloc((size_t)f->n * c.label_dim, sizeof(float));
  if (!f->x || !f->y || !f->D || !f->dD || !f->sigma || !f->lv || !f->du || !f->labels) return -1;
  const float sig[3] = {0.3f, 0.9f, 2.0f};
  for (int i = 0; i < f->n; i++) {
    f->sigma[i] = sig[i];
    f->labels[i * c.label_dim + i % c.label_dim] = 1;
  }
  for (size_t i = 0; i < nm; i++) {
    f->y[i] = 0.5f * (float)ec_rng_normal(11, i);
    f->x[i] = f->y[i] + f->sigma[i / f->M] * (float)ec_rng_normal(12, i);
  }
  return 0;
}

static void teardown(fixture *f) {
  edm2_net_free(&f->net);
  free(f->x);
  free(f->y);
  free(f->D);
  free(f->dD);
  free(f->sigma);
  free(f->lv);
  free(f->du);
  free(f->labels);
}

/* Mean loss of a training-mode forward with the given dropout seed. */
static double train_loss(fixture *f, edm2_pass *p, uint64_t seed) {
  edm2_forward(p, f->n, f->x, f->sigma, f->labels, f->D, f->lv, seed);
  double loss[3], total = 0;
  edm2_loss_ref(NULL, loss, f->dD, f->du, f->D, f->y, f->lv, f->sigma, f->n, f->M, 0.5, 1.0 / f->n);
  for (int i = 0; i < f->n; i++) total += loss[i];
  return total / f->n;
}

TEST(forced_normalisation_in_place_before_use) {
  fixture f;
  edm2_pass p = {0}, pe = {0};
  ASSERT_TRUE(setup(&f, 0) == 0);
  const edm2_arch *a = &f.net.arch;
  float *D_eval = malloc((size_t)f.n * f.M * sizeof(float));
  ASSERT_TRUE(D_eval != NULL);
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 1, 1));
  ASSERT_OK(edm2_pass_init(&pe, &f.net, f.n, 0, 1));
  edm2_forward(&p, f.n, f.x, f.sigma, f.labels, f.D, f.lv, 0);
  /* Every weight row of the network itself now has norm sqrt(fan_in) (to eps·sqrt(fan_in) /
   * ||w||, about 3e-5 here); gains are untouched. */
  double worst = 0;
  for (int i = 0; i < a->n_tensors; i++) {
    const edm2_tensor *t = &a->tensors[i];
    const float *w = edm2_net_tensor(&f.net, i);
    if (t->kind != EDM2_PARAM) continue;
    if (t->ndim == 0) {
      ASSERT_NEAR(w[0], 0.7f, 0);
      continue;
    }
    int rows = edm2_tensor_rows(t), fan = edm2_tensor_fan_in(t);
    for (int r = 0; r < rows; r++) {
      double s = 0;
      for (int j = 0; j < fan; j++) s += (double)w[(size_t)r * fan + j] * w[(size_t)r * fan + j];
      worst = fmax(worst, fabs(sqrt(s) / sqrt(fan) - 1));
    }
  }
  ASSERT_TRUE(worst < 2e-4);
  /* The training forward used the normalised weights: an eval forward on them gives the same
   * bits. */
  edm2_forward(&pe, f.n, f.x, f.sigma, f.labels, D_eval, NULL, 0);
  ASSERT_TRUE(memcmp(D_eval, f.D, (size_t)f.n * f.M * sizeof(float)) == 0);
  edm2_pass_free(&p);
  edm2_pass_free(&pe);
  free(D_eval);
  teardown(&f);
}

TEST(gradients_accumulate) {
  fixture f;
  edm2_pass p = {0};
  ASSERT_TRUE(setup(&f, 0) == 0);
  size_t np = f.net.arch.params_size;
  float *g1 = calloc(np, sizeof(float)), *g2 = calloc(np, sizeof(float));
  ASSERT_TRUE(g1 && g2);
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 1, 1));
  train_loss(&f, &p, 0);
  edm2_backward(&p, f.dD, f.du, g1);
  edm2_backward(&p, f.dD, f.du, g2);
  edm2_backward(&p, f.dD, f.du, g2);
  int ok = 1, nonzero = 0;
  for (size_t i = 0; i < np; i++) {
    ok &= g2[i] == 2 * g1[i];
    nonzero += g1[i] != 0;
  }
  edm2_pass_free(&p);
  free(g1);
  free(g2);
  teardown(&f);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(nonzero > 1000);
}

TEST(dropout_masks_are_reproducible) {
  fixture f;
  edm2_pass p = {0};
  ASSERT_TRUE(setup(&f, 0.25) == 0);
  size_t nm = (size_t)f.n * f.M;
  float *D1 = malloc(nm * sizeof(float)), *D2 = malloc(nm * sizeof(float));
  ASSERT_TRUE(D1 && D2);
  size_t np = f.net.arch.params_size;
  float *base = malloc(np * sizeof(float));
  ASSERT_TRUE(base != NULL);
  /* Each training forward renormalises the weights in place, which moves their last bits; every
   * run below starts from the same weights. */
  memcpy(base, f.net.params, np * sizeof(float));
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 1, 1));
  train_loss(&f, &p, 5);
  memcpy(D1, f.D, nm * sizeof(float));
  memcpy(f.net.params, base, np * sizeof(float));
  train_loss(&f, &p, 5);
  memcpy(D2, f.D, nm * sizeof(float));
  int same = memcmp(D1, D2, nm * sizeof(float)) == 0;
  memcpy(f.net.params, base, np * sizeof(float));
  train_loss(&f, &p, 6);
  int differs = memcmp(D1, f.D, nm * sizeof(float)) != 0;
  free(base);
  edm2_pass_free(&p);
  free(D1);
  free(D2);
  teardown(&f);
  ASSERT_TRUE(same);
  ASSERT_TRUE(differs);
}

/* The backward of the whole network against central differences of the loss, with dropout on
 * (the mask is a function of the seed, so it is the same in every evaluation). Forced
 * normalisation re-projects a perturbed weight, which the analytic gradient, tangent to the
 * sphere, already accounts for; the tolerance covers float32 loss evaluation (relative noise
 * ~1e-6 of a loss of ~1e2, over 2h = 2e-2) and O(h²) terms. */
TEST(whole_network_gradient_by_finite_differences) {
  fixture f;
  edm2_pass p = {0};
  ASSERT_TRUE(setup(&f, 0.25) == 0);
  const edm2_arch *a = &f.net.arch;
  size_t np = a->params_size;
  float *g = calloc(np, sizeof(float)), *base = malloc(np * sizeof(float));
  ASSERT_TRUE(g && base);
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 1, 1));
  const uint64_t seed = 9;
  train_loss(&f, &p, seed);
  memcpy(base, f.net.params, np * sizeof(float));
  train_loss(&f, &p, seed);
  edm2_backward(&p, f.dD, f.du, g);
  const char *names[] = {
      "unet.out_gain", "unet.emb_noise.weight", "unet.emb_label.weight", "unet.enc.8x8_conv.weight",
      "unet.enc.8x8_block0.emb_gain", "unet.enc.8x8_block0.conv_res0.weight",
      "unet.enc.8x8_block0.emb_linear.weight", "unet.enc.8x8_block0.conv_res1.weight",
      "unet.enc.4x4_down.conv_res1.weight", "unet.enc.4x4_block0.conv_skip.weight",
      "unet.enc.4x4_block0.attn_qkv.weight", "unet.enc.4x4_block0.attn_proj.weight",
      "unet.dec.4x4_in0.attn_qkv.weight", "unet.dec.4x4_block0.conv_skip.weight",
      "unet.dec.8x8_up.conv_res0.weight", "unet.dec.8x8_block1.conv_res0.weight",
      "unet.out_conv.weight", "logvar_linear.weight"};
  int bad = 0, checked = 0;
  for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
    int i = edm2_arch_find(a, names[k]);
    ASSERT_TRUE(i >= 0);
    const edm2_tensor *t = &a->tensors[i];
    /* The element with the largest gradient, where the relative comparison is meaningful. */
    size_t j = 0;
    for (size_t e = 0; e < (size_t)t->numel; e++)
      if (fabsf(g[t->offset + e]) > fabsf(g[t->offset + j])) j = e;
    double h = 1e-2, an = g[t->offset + j], lp, lm;
    memcpy(f.net.params, base, np * sizeof(float));
    f.net.params[t->offset + j] += (float)h;
    lp = train_loss(&f, &p, seed);
    memcpy(f.net.params, base, np * sizeof(float));
    f.net.params[t->offset + j] -= (float)h;
    lm = train_loss(&f, &p, seed);
    double fd = (lp - lm) / (2 * h);
    checked++;
    if (!(fabs(fd - an) <= 2e-2 * fabs(an) + 1e-3)) {
      printf("# %s[%zu]: analytic %.6g, finite differences %.6g\n", t->name, j, an, fd);
      bad++;
    }
  }
  edm2_pass_free(&p);
  free(g);
  free(base);
  teardown(&f);
  ASSERT_EQ_INT(checked, 18);
  ASSERT_EQ_INT(bad, 0);
}

/* Initialisation: weights N(0, 1), gains 0, frequencies 2π·N(0, 1), phases 2π·U(0, 1); the
 * same seed gives the same network. */
TEST(randomize_follows_reference_distributions) {
  edm2_net a, b;
  ASSERT_OK(edm2_net_init(&a, &edm2_preset_find("fmnist")->net));
  ASSERT_OK(edm2_net_init(&b, &edm2_preset_find("fmnist")->net));
  edm2_net_randomize(&a, 3);
  edm2_net_randomize(&b, 3);
  ASSERT_TRUE(memcmp(a.params, b.params, a.arch.params_size * sizeof(float)) == 0);
  double s1 = 0, s2 = 0, n = 0;
  int gains_zero = 1, phases_ok = 1;
  for (int i = 0; i < a.arch.n_tensors; i++) {
    const edm2_tensor *t = &a.arch.tensors[i];
    const float *v = edm2_net_tensor(&a, i);
    if (t->kind == EDM2_PARAM && t->ndim == 0) gains_zero &= v[0] == 0;
    if (t->kind == EDM2_PARAM && t->ndim >= 2)
      for (int64_t j = 0; j < t->numel; j++) {
        s1 += v[j];
        s2 += (double)v[j] * v[j];
        n++;
      }
    if (strstr(t->name, "phases"))
      for (int64_t j = 0; j < t->numel; j++) phases_ok &= v[j] >= 0 && v[j] < 2 * M_PI;
  }
  double mean = s1 / n, var = s2 / n - mean * mean;
  int freqs = edm2_arch_find(&a.arch, "unet.emb_fourier.freqs");
  double f2 = 0;
  const float *fv = edm2_net_tensor(&a, freqs);
  for (int64_t j = 0; j < a.arch.tensors[freqs].numel; j++) f2 += (double)fv[j] * fv[j];
  f2 /= (double)a.arch.tensors[freqs].numel;
  edm2_net_free(&a);
  edm2_net_free(&b);
  ASSERT_TRUE(gains_zero);
  ASSERT_TRUE(phases_ok);
  ASSERT_NEAR(mean, 0, 5 / sqrt(n));
  ASSERT_NEAR(var, 1, 5 * sqrt(2 / n));
  ASSERT_REL(sqrt(f2), 2 * M_PI, 0.35); /* 32 frequencies: the RMS of 2π·N(0,1) within ~3 SE */
}

/* Slicing the batch across threads (pass.h) changes only rounding: GEMMs of different widths
 * sum in different orders, and so does the reduction of the slices' weight gradients. With
 * dropout on, D, logvar and the gradients for 2 and 3 threads agree with 1 thread to float32
 * rounding; a dropout mask that followed the slice instead of the image would change D by
 * O(1). */
TEST(threads_do_not_change_results) {
  fixture f;
  ASSERT_TRUE(setup(&f, 0.25) == 0);
  size_t nm = (size_t)f.n * f.M, np = f.net.arch.params_size;
  float *base = malloc(np * sizeof(float)), *D1 = malloc(nm * sizeof(float));
  float *g1 = calloc(np, sizeof(float)), *g = calloc(np, sizeof(float)), lv1[3];
  ASSERT_TRUE(base && D1 && g1 && g);
  memcpy(base, f.net.params, np * sizeof(float));
  int ok = 1;
  for (int threads = 1; threads <= 3; threads++) {
    edm2_pass p = {0};
    memcpy(f.net.params, base, np * sizeof(float));
    ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 1, threads));
    train_loss(&f, &p, 5);
    memset(g, 0, np * sizeof(float));
    edm2_backward(&p, f.dD, f.du, g);
    edm2_pass_free(&p);
    if (threads == 1) {
      memcpy(D1, f.D, nm * sizeof(float));
      memcpy(lv1, f.lv, sizeof lv1);
      memcpy(g1, g, np * sizeof(float));
      continue;
    }
    double dmax = 0, scale = 0;
    for (size_t i = 0; i < nm; i++) {
      dmax = fmax(dmax, fabs((double)f.D[i] - D1[i]));
      scale = fmax(scale, fabs((double)D1[i]));
    }
    for (int i = 0; i < f.n; i++) dmax = fmax(dmax, fabs((double)f.lv[i] - lv1[i]));
    if (!(dmax <= 1e-5 * scale)) {
      printf("# %d threads: D or logvar differs from 1 thread by %.3g (max |D| %.3g)\n", threads, dmax, scale);
      ok = 0;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < np; i++) {
      num += ((double)g[i] - g1[i]) * ((double)g[i] - g1[i]);
      den += (double)g1[i] * g1[i];
    }
    if (!(num <= 1e-12 * den)) {
      printf("# %d threads: gradient nmse %.3g against 1 thread\n", threads, num / den);
      ok = 0;
    }
  }
  free(base);
  free(D1);
  free(g1);
  free(g);
  teardown(&f);
  ASSERT_TRUE(ok);
}

/* Activation magnitudes (paper A.6): one entry per resolution bucket in network order, near 1
 * for the magnitude-preserving network at initialisation, independent of the thread count, and
 * averaged over images: the batch's bucket mean is the mean of the single images' means. */
TEST(activation_magnitudes) {
  fixture f;
  ASSERT_TRUE(setup(&f, 0) == 0);
  edm2_act_magnitude m3[8], m1[8], mt[8];
  edm2_pass p = {0};
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 0, 1));
  edm2_forward(&p, f.n, f.x, f.sigma, f.labels, f.D, f.lv, 0);
  int nb = edm2_pass_act_magnitudes(&p, m3, 8);
  ASSERT_EQ_INT(nb, 4);
  ASSERT_STR_EQ(m3[0].bucket, "enc8");
  ASSERT_STR_EQ(m3[1].bucket, "enc4");
  ASSERT_STR_EQ(m3[2].bucket, "dec4");
  ASSERT_STR_EQ(m3[3].bucket, "dec8");
  for (int j = 0; j < nb; j++) {
    printf("# %s: max %.3f mean %.3f\n", m3[j].bucket, m3[j].max, m3[j].mean);
    ASSERT_TRUE(m3[j].mean > 0.2 && m3[j].mean < 5 && m3[j].max >= m3[j].mean);
  }
  double mean_of_singles[8] = {0};
  for (int i = 0; i < f.n; i++) {
    edm2_forward(&p, 1, f.x + (size_t)i * f.M, f.sigma + i, f.labels + (size_t)i * 3, f.D, f.lv, 0);
    ASSERT_EQ_INT(edm2_pass_act_magnitudes(&p, m1, 8), 4);
    for (int j = 0; j < 4; j++) mean_of_singles[j] += m1[j].mean / f.n;
  }
  for (int j = 0; j < 4; j++) ASSERT_REL(m3[j].mean, mean_of_singles[j], 1e-5);
  edm2_pass_free(&p);
  ASSERT_OK(edm2_pass_init(&p, &f.net, f.n, 0, 3));
  edm2_forward(&p, f.n, f.x, f.sigma, f.labels, f.D, f.lv, 0);
  ASSERT_EQ_INT(edm2_pass_act_magnitudes(&p, mt, 8), 4);
  for (int j = 0; j < 4; j++) {
    ASSERT_REL(mt[j].mean, m3[j].mean, 1e-5);
    ASSERT_REL(mt[j].max, m3[j].max, 1e-5);
  }
  edm2_pass_free(&p);
  teardown(&f);
}

TEST_MAIN(threads_do_not_change_results, activation_magnitudes, forced_normalisation_in_place_before_use, gradients_accumulate, dropout_masks_are_reproducible,
          whole_network_gradient_by_finite_differences, randomize_follows_reference_distributions)
