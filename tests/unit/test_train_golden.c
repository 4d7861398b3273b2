/* Ten training steps of the tiny network against the reference implementation (NVlabs/edm2's
 * Precond in training mode, its learning_rate_schedule and PowerFunctionEMA, torch.optim.Adam; run
 * on CPU in float32 by tests/golden/gen_edm2_train.py into tests/golden/edm2_train_tiny.h5):
 * edm2_trainer_step on the file's data must reproduce every step's learning rate and loss, and at
 * the end the weights, Adam's moments and both EMAs (and the EMAs' lag behind the weights).
 *
 * Checked by hand to fail (on copies of train.c and optim.c linked ahead of the library) when:
 * the EMA is updated with the images before the step (phema_beta's check aborts) or one step
 * late, or before Adam's update, or on the renormalised weights; lr is taken after the
 * increment; the loss is divided by batch_gpu instead of batch; Adam's bias corrections are
 * dropped or use step + 1; Adam's ε is 1e-6 or β2 is 0.999. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "golden_compare.h"
#include "golden_h5.h"
#include "test.h"
#include "trainer/netconfig.h"
#include "trainer/optim.h"
#include "trainer/train.h"
#include "trainer/traincfg.h"

enum { Q_LOSS, Q_PARAMS, Q_ADAM_M, Q_ADAM_V, Q_EMA0, Q_EMA1, Q_LAG0, Q_LAG1, NQ };

/* Tolerances per quantity, each with its reason; rel = max|ours − ref| / max|ref| per tensor (for
 * the loss |ours − ref| / |ref| per step), nmse = Σ(ours − ref)² / Σref². The "measured" numbers
 * are the worst over one and two threads on the CPU development machine, over Debian
 * OpenBLAS's kernels Prescott, Nehalem, Sandybridge, Haswell, SkylakeX and Zen
 * (OPENBLAS_CORETYPE), which change the order of sums (they moved by less than a factor of 2);
 * every tolerance keeps a margin of at least 10 over them.
 *
 * Adam divides by sqrt(v) + ε, so an element whose whole gradient history is tiny turns an
 * absolute gradient error into a large update error. In this run the smallest history sqrt(v̂)
 * of any element, at a step with lr > 0, is 3.7e-5 of its tensor's largest gradient
 * (unet.enc.8x8_block0.conv_res0.weight, step 1; single gradients go down to 3e-8 of the
 * tensor's largest, at step 6, but with a larger history). The gradient errors of such elements
 * are relative to the elements' own size, not to their tensor's largest, so nothing is
 * amplified: the worst weight differs by 1.5e-6 = 2e-5 of Σ lr = 0.068 (the report prints this
 * in units of Σ lr). The weight tolerance allows at most 5e-6 · max|w| = 2.2e-5 (max|w| = 4.4),
 * about 0.3% of one step's lr, so an element whose update changed sign, or any update off by
 * more than that, fails: no element class is exempted. */
static const struct {
  const char *what;
  double rel, nmse;
  const char *why;
} TOL[NQ] = {
    {"loss", 1e-5, 1e-10,
     "the network golden's loss tolerance: one forward's float32 rounding (measured 2.4e-7); "
     "after ten steps the weights differ by a few ulps more, which the loss does not amplify"},
    {"params", 5e-6, 1e-12,
     "weights of magnitude up to ~4 (1 ulp = 2.4e-7..4.8e-7): float32 rounding of the forced "
     "normalisation and of ten Adam updates of at most lr ≈ 0.01 each (measured 4.5e-7 / 3.6e-14)"},
    {"adam_m", 2e-4, 1e-8,
     "m = Σ 0.1·0.9^j·g is a sum of gradients whose sign changes between steps; for a scalar gain "
     "(max|m| = |m|) it cancels to ~1/45 of the gradients' RMS, so its relative error is ~45× the "
     "gradients' (1e-6..3e-5 in the network golden; measured 1.7e-5 / 2.8e-10 on "
     "unet.enc.16x16_block0.emb_gain)"},
    {"adam_v", 5e-5, 2e-10,
     "v = Σ 0.01·0.99^j·g² does not cancel: twice the gradients' relative error, at the "
     "σ = 0.002 step's amplified dD included (measured 3.4e-6 / 8.9e-12)"},
    {"ema_0.050", 5e-6, 1e-12, "a convex combination of the weights of the ten steps: as params"},
    {"ema_0.100", 5e-6, 1e-12, "a convex combination of the weights of the ten steps: as params"},
    {"lag_0.050", 3e-3, 1e-7,
     "EMA − weights (|lag| <= 7e-4): a difference of two float32 numbers of magnitude up to ~4 "
     "that each carry the weights' 1-2 ulp disagreement (2.4e-7..4.8e-7), so ~1e-3 is the "
     "floor (measured 3.7e-4 / 9.8e-9); it checks the β sequence far more sharply than the EMA "
     "itself (a one-step shift of t changes the lag by ~20%)"},
    {"lag_0.100", 3e-3, 1e-7, "as lag_0.050 (measured 1.2e-4 / 1.8e-9)"},
};


/* The worst agreement seen per quantity over all runs, printed by report_worst_agreement. */
static double worst_rel[NQ], worst_nmse[NQ], worst_abs[NQ], sum_lr;
static char worst_name[NQ][128];

static void note(int q, const char *name, double rel, double nmse, double maxabs) {
  if (maxabs > worst_abs[q]) worst_abs[q] = maxabs;
  if (rel > worst_rel[q]) {
    worst_rel[q] = rel;
    snprintf(worst_name[q], sizeof worst_name[q], "%s", name);
  }
  if (nmse > worst_nmse[q]) worst_nmse[q] = nmse;
}


static hid_t gf = H5I_INVALID_HID;

static hid_t golden(void) {
  if (gf < 0) gf = golden_open_file("edm2_train_tiny.h5");
  return gf;
}

/* The training settings of the file (its train_config attribute). */
typedef struct {
  int64_t batch, batch_gpu, ref_batches, rampup_images, steps;
  double ref_lr, rampup_Mimg, ema[2];
} golden_train_cfg;

/* o[key] as a number; clears *ok when it is missing or not a number. */
static double json_num(const cJSON *o, const char *key, int *ok) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v)) {
    fprintf(stderr, "golden train_config: no number '%s'\n", key);
    *ok = 0;
    return 0;
  }
  return v->valuedouble;
}

static int read_train_cfg(golden_train_cfg *g) {
  char *json = golden_attr_str(golden(), "/", "train_config");
  cJSON *o = json ? cJSON_Parse(json) : NULL;
  free(json);
  if (!o) return -1;
  int ok = 1;
  g->batch = (int64_t)json_num(o, "batch", &ok);
  g->batch_gpu = (int64_t)json_num(o, "batch_gpu", &ok);
  g->ref_batches = (int64_t)json_num(o, "ref_batches", &ok);
  g->rampup_images = (int64_t)json_num(o, "rampup_images", &ok);
  g->steps = (int64_t)json_num(o, "steps", &ok);
  g->ref_lr = json_num(o, "ref_lr", &ok);
  g->rampup_Mimg = json_num(o, "rampup_Mimg", &ok);
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "ema_stds");
  if (cJSON_GetArraySize(e) != 2) ok = 0;
  for (int i = 0; ok && i < 2; i++) {
    const cJSON *v = cJSON_GetArrayItem(e, i);
    if (cJSON_IsNumber(v))
      g->ema[i] = v->valuedouble;
    else
      ok = 0;
  }
  cJSON_Delete(o);
  return ok ? 0 : -1;
}

/* The test's configuration: the test-tiny preset (the golden network) with the generator's
 * training settings, in our units (decay in steps, warm-up in images). */
static int make_cfg(edm2_traincfg *cfg, int threads) {
  golden_train_cfg g;
  if (read_train_cfg(&g)) return -1;
  const edm2_preset *p = edm2_preset_find("test-tiny");
  if (!p) return -1;
  edm2_traincfg_from_preset(cfg, p);
  cfg->batch = 4;
  cfg->batch_gpu = 2;
  cfg->lr_ref = 0.01;
  cfg->decay = 4;
  cfg->rampup = 12; /* images: the reference's rampup_Mimg = 12e-6 */
  cfg->n_ema = 2;
  cfg->ema[0] = 0.050;
  cfg->ema[1] = 0.100;
  cfg->threads = threads;
  cfg->duration = cfg->batch * 10;
  cfg->status = cfg->snapshot = cfg->checkpoint = 0;
  /* The same settings as the generator's. */
  if (g.batch != cfg->batch || g.batch_gpu != cfg->batch_gpu || g.ref_lr != cfg->lr_ref ||
      g.ref_batches != cfg->decay || g.rampup_images != cfg->rampup ||
      llround(g.rampup_Mimg * 1e6) != cfg->rampup || g.ema[0] != cfg->ema[0] || g.ema[1] != cfg->ema[1] ||
      g.steps != 10) {
    fprintf(stderr, "train_config of the golden file differs from the test's settings\n");
    return -1;
  }
  /* The same network as the file's config attribute (the reference constructor's arguments). */
  char *json = golden_attr_str(golden(), "/", "config");
  edm2_netcfg fnet = cfg->net;
  int same = json && !edm2_netcfg_apply_json(&fnet, json, "config", 1);
  free(json);
  if (same) {
    char *a = edm2_netcfg_to_json(&fnet), *b = edm2_netcfg_to_json(&cfg->net);
    same = a && b && !strcmp(a, b);
    if (!same) fprintf(stderr, "test-tiny:   %s\ngolden file: %s\n", b, a);
    free(a);
    free(b);
  }
  return same ? 0 : -1;
}

static int verbose(void) { return getenv("EDM2C_GOLDEN_VERBOSE") != NULL; }

/* Reads tensor t from `group`; NULL (reported) when missing or of the wrong size. */
static float *read_tensor(const char *group, const edm2_tensor *t) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", group, t->name);
  size_t n;
  float *v = golden_f32_flat(golden(), path, &n);
  if (!v || n != (size_t)t->numel) {
    printf("# golden %s missing or of the wrong size\n", path);
    free(v);
    return NULL;
  }
  return v;
}

/* Compares a parameter-slab-shaped array with the file's group, tensor by tensor; with `sub`,
 * the difference ours − sub against group − sub_group. Returns the number of tensors outside the
 * tolerance (each reported). */
static int compare_slab(const edm2_net *net, const float *ours, const char *group, const float *sub,
                        const char *sub_group, int q, int threads) {
  int bad = 0;
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const edm2_tensor *t = &net->arch.tensors[i];
    if (t->kind != EDM2_PARAM) continue;
    const size_t n = (size_t)t->numel;
    float *ref = read_tensor(group, t), *ref_sub = sub ? read_tensor(sub_group, t) : NULL;
    float *mine = ec_mallocarray(n, sizeof *mine);
    if (!ref || (sub && !ref_sub) || !mine) {
      bad++;
    } else {
      for (size_t e = 0; e < n; e++) {
        mine[e] = ours[t->offset + e];
        if (sub) {
          mine[e] -= sub[t->offset + e];
          ref[e] -= ref_sub[e];
        }
      }
      cmp_result c = compare(mine, ref, n);
      note(q, t->name, c.rel, c.nmse, c.maxabs);
      const int fail = !(c.rel <= TOL[q].rel && c.nmse <= TOL[q].nmse);
      if (fail || verbose())
        printf("# %s%s %-40s rel %.3g, nmse %.3g; worst element %zu: %.9g vs %.9g (threads %d)\n",
               fail ? "FAIL " : "", TOL[q].what, t->name, c.rel, c.nmse, c.worst, (double)mine[c.worst],
               (double)ref[c.worst], threads);
      bad += fail;
    }
    free(ref);
    free(ref_sub);
    free(mine);
  }
  return bad;
}

/* Fills the net's tensors of `kind` from `group`. */
static int fill(edm2_net *net, const char *group, edm2_kind kind) {
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const edm2_tensor *t = &net->arch.tensors[i];
    if (t->kind != kind) continue;
    float *v = read_tensor(group, t);
    if (!v) return -1;
    memcpy(edm2_net_tensor(net, i), v, (size_t)t->numel * sizeof(float));
    free(v);
  }
  return 0;
}

static void run_case(int threads) {
  edm2_traincfg cfg;
  edm2_trainer t;
  int have_t = 0, bad = 0;
  float *y = NULL, *noise = NULL, *sigma = NULL, *labels = NULL;
  if (golden() < 0) {
    test_fail_(__FILE__, __LINE__, "tests/golden/edm2_train_tiny.h5 not found");
    return;
  }
  ASSERT_TRUE(make_cfg(&cfg, threads) == 0);
  ASSERT_OK(edm2_trainer_init(&t, &cfg, NULL, NULL));
  have_t = 1;
  if (fill(&t.net, "/init/params", EDM2_PARAM) || fill(&t.net, "/buffers", EDM2_BUFFER)) {
    test_fail_(__FILE__, __LINE__, "golden weights unreadable");
    goto done;
  }
  const edm2_lr_sched sched = {cfg.lr_ref, cfg.decay, cfg.rampup};
  double lr_total = 0;
  const size_t M = t.M, B = (size_t)cfg.batch, L = (size_t)cfg.net.label_dim;
  for (int k = 0; k < 10; k++) {
    char path[256];
    size_t ny = 0, nn = 0, ns = 0, nl = 0, one = 0;
#define READ(var, name, cnt, want)                                                                 \
  snprintf(path, sizeof path, "/steps/%d/%s", k, name);                                            \
  free(var);                                                                                       \
  var = golden_f32_flat(golden(), path, &cnt);                                                     \
  if (!var || cnt != (want)) {                                                                     \
    test_fail_(__FILE__, __LINE__, "golden %s missing or of the wrong size", path);                \
    goto done;                                                                                     \
  }
    READ(y, "y", ny, B * M);
    READ(noise, "noise", nn, B * M);
    READ(sigma, "sigma", ns, B);
    READ(labels, "labels", nl, B * L);
#undef READ
    snprintf(path, sizeof path, "/steps/%d/lr", k);
    double *lr_ref = golden_f64(golden(), path, &one, NULL);
    snprintf(path, sizeof path, "/steps/%d/loss", k);
    double *loss_ref = golden_f64(golden(), path, &one, NULL);
    if (!lr_ref || !loss_ref) {
      free(lr_ref);
      free(loss_ref);
      test_fail_(__FILE__, __LINE__, "golden step %d: lr or loss missing", k);
      goto done;
    }
    /* The learning rate of this step: the schedule at the images seen before it. */
    const double lr = edm2_lr(&sched, t.nimg, cfg.batch), lr_want = lr_ref[0];
    lr_total += lr_want;
    double loss = NAN;
    ec_status st = edm2_trainer_step(&t, y, labels, sigma, noise, &loss);
    const double loss_want = loss_ref[0];
    free(lr_ref);
    free(loss_ref);
    if (st) {
      test_fail_(__FILE__, __LINE__, "step %d: %s", k, ec_errmsg());
      goto done;
    }
    if (!(fabs(lr - lr_want) <= 1e-12 * fabs(lr_want)) || (k == 0 && lr != 0)) {
      test_fail_(__FILE__, __LINE__, "step %d: lr %.17g, reference %.17g", k, lr, lr_want);
      goto done;
    }
    const double lrel = fabs(loss - loss_want) / fabs(loss_want);
    char name[32];
    snprintf(name, sizeof name, "step %d", k);
    note(Q_LOSS, name, lrel, lrel * lrel, fabs(loss - loss_want));
    if (verbose()) printf("# step %d: lr %.9g, loss %.12g vs %.12g (rel %.3g)\n", k, lr, loss, loss_want, lrel);
    if (!(lrel <= TOL[Q_LOSS].rel)) {
      test_fail_(__FILE__, __LINE__, "step %d: loss %.12g, reference %.12g (rel %.3g > %.3g)", k, loss, loss_want,
                 lrel, TOL[Q_LOSS].rel);
      goto done;
    }
  }
  sum_lr = lr_total;
  if (t.nimg != 40 || t.adam.step != 10) {
    test_fail_(__FILE__, __LINE__, "after 10 steps: nimg %lld, Adam step %lld", (long long)t.nimg,
               (long long)t.adam.step);
    goto done;
  }
  const float *P = t.net.params;
  bad += compare_slab(&t.net, P, "/final/params", NULL, NULL, Q_PARAMS, threads);
  bad += compare_slab(&t.net, t.adam.m, "/final/adam_m", NULL, NULL, Q_ADAM_M, threads);
  bad += compare_slab(&t.net, t.adam.v, "/final/adam_v", NULL, NULL, Q_ADAM_V, threads);
  bad += compare_slab(&t.net, t.ema.avg[0], "/final/ema_0.050", NULL, NULL, Q_EMA0, threads);
  bad += compare_slab(&t.net, t.ema.avg[1], "/final/ema_0.100", NULL, NULL, Q_EMA1, threads);
  /* The EMAs' lag behind the live weights: the averaging itself, without the weights' own error. */
  bad += compare_slab(&t.net, t.ema.avg[0], "/final/ema_0.050", P, "/final/params", Q_LAG0, threads);
  bad += compare_slab(&t.net, t.ema.avg[1], "/final/ema_0.100", P, "/final/params", Q_LAG1, threads);
  if (bad) test_fail_(__FILE__, __LINE__, "%d final tensors outside the tolerance (threads %d)", bad, threads);
done:
  free(y);
  free(noise);
  free(sigma);
  free(labels);
  if (have_t) edm2_trainer_free(&t);
}

TEST(golden_file_is_current) {
  if (golden() < 0) {
    test_fail_(__FILE__, __LINE__, "tests/golden/edm2_train_tiny.h5 not found");
    return;
  }
  char *fmt = golden_attr_str(golden(), "/", "format");
  ASSERT_STR_EQ(fmt, "edm2c-golden-train");
  free(fmt);
  ASSERT_EQ_INT(golden_attr_f64(golden(), "/", "format_version"), 1);
  ASSERT_EQ_INT(golden_attr_f64(golden(), "/", "steps"), 10);
}

TEST(ten_steps_one_thread) { run_case(1); }
/* One image per slice: the slices' weight gradients are summed in another order. */
TEST(ten_steps_two_threads) { run_case(2); }

TEST(report_worst_agreement) {
  for (int q = 0; q < NQ; q++)
    printf("# %-10s worst rel %.2e (tolerance %.0e; %s), worst nmse %.2e (tolerance %.0e)\n", TOL[q].what,
           worst_rel[q], TOL[q].rel, worst_name[q], worst_nmse[q], TOL[q].nmse);
  /* How far off the worst element is in Adam steps: each step moves an element by about lr. */
  if (sum_lr > 0)
    printf("# worst |Δ| in units of Σ lr = %.4g: params %.2e, ema_0.050 %.2e, ema_0.100 %.2e\n", sum_lr,
           worst_abs[Q_PARAMS] / sum_lr, worst_abs[Q_EMA0] / sum_lr, worst_abs[Q_EMA1] / sum_lr);
}

TEST_MAIN(golden_file_is_current, ten_steps_one_thread, ten_steps_two_threads, report_worst_agreement)
