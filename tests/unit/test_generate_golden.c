/* The EDM2 sampler (trainer/generate.h) against the reference's edm_sampler (NVlabs/edm2
 * generate_images.py, run on CPU in float32 by tests/golden/gen_edm2_sample.py into
 * tests/golden/edm2_sample_tiny.h5) on the golden tiny networks of tests/golden/edm2_tiny.h5:
 * deterministic Heun, classifier-free guidance by the unconditional net (w = 1.8 and 0.3),
 * stochastic churn with the reference's churn noise replayed, autoguidance by another
 * conditional net with churn, and ρ = 3 with labels = NULL; each with 1 and 2 threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "golden_compare.h"
#include "golden_h5.h"
#include "test.h"
#include "trainer/generate.h"
#include "trainer/net.h"
#include "trainer/netconfig.h"
#include "trainer/pass.h"

/* rel = max|ours − ref| / max|ref|, nmse = Σ(ours − ref)² / Σref². The network alone agrees to
 * ~1e-6 (test_unet_golden.c); 2N − 1 evaluations feed into each other, and the Heun steps near
 * σ_min divide by t ≈ 0.002, but the sampler contracts what the early steps got wrong. The issue
 * asks for 1e-5. */
#define TOL_REL 1e-5
#define TOL_NMSE 1e-10

static const char *CASES[] = {"det", "guid_uncond", "churn", "rho3", "autog_churn", "guid_small_w"};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

static hid_t nets_file = H5I_INVALID_HID, sample_file = H5I_INVALID_HID;

static hid_t nets_h5(void) {
  if (nets_file < 0) nets_file = golden_open_file("edm2_tiny.h5");
  return nets_file;
}
static hid_t sample_h5(void) {
  if (sample_file < 0) sample_file = golden_open_file("edm2_sample_tiny.h5");
  return sample_file;
}

/* The network of config attribute `attr` of `f` with tensors from `params`/`buffers` there. */
static int load_net(edm2_net *net, hid_t f, const char *attr, const char *params,
                    const char *buffers) {
  char *json = golden_attr_str(f, "/", attr);
  if (!json) return -1;
  edm2_netcfg cfg;
  edm2_netcfg_default(&cfg);
  ec_status st = edm2_netcfg_apply_json(&cfg, json, attr, 1);
  free(json);
  if (!st) st = edm2_net_init(net, &cfg);
  if (st) {
    fprintf(stderr, "%s\n", ec_errmsg());
    return -1;
  }
  for (int i = 0; i < net->arch.n_tensors; i++) {
    const edm2_tensor *t = &net->arch.tensors[i];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", t->kind == EDM2_PARAM ? params : buffers, t->name);
    size_t n;
    float *v = golden_f32_flat(f, path, &n);
    if (!v || n != (size_t)t->numel) {
      fprintf(stderr, "golden %s: missing or %zu elements (expected %lld)\n", path, v ? n : 0,
              (long long)t->numel);
      free(v);
      return -1;
    }
    memcpy(edm2_net_tensor(net, i), v, n * sizeof(float));
    free(v);
  }
  return 0;
}

/* The churn callback: replays the reference's randn_like tensors ([steps, n, M]) and records
 * at which steps it was called. */
typedef struct {
  const float *churn;
  int n, steps;
  size_t M;
  int *called; /* per step: calls */
  int bad;     /* calls out of order or range */
} replay;

static void replay_churn(void *ctx, int step, int j, float *eps, size_t M) {
  replay *r = ctx;
  if (step < 0 || step >= r->steps || j < 0 || j >= r->n || M != r->M || r->called[step] != j) {
    r->bad = 1;
    memset(eps, 0, M * sizeof *eps);
    return;
  }
  r->called[step]++;
  memcpy(eps, r->churn + ((size_t)step * r->n + j) * M, M * sizeof *eps);
}

static double worst_rel, worst_nmse;
static int worst_tulp;

static int ulp_diff(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  return abs(ia - ib);
}

static void run_case(const char *name, int threads) {
  hid_t f = sample_h5();
  edm2_net net = {0}, gnet_net = {0};
  edm2_pass p = {0}, gp = {0};
  float *x = NULL, *labels = NULL, *xref = NULL, *tref = NULL, *churn = NULL, *t = NULL;
  int *churn_steps = NULL, *called = NULL;
  char obj[128], path[256];
  snprintf(obj, sizeof obj, "/cases/%s", name);
  if (f < 0 || nets_h5() < 0) {
    test_fail_(__FILE__, __LINE__, "golden files edm2_sample_tiny.h5 / edm2_tiny.h5 not found");
    return;
  }
  if (load_net(&net, nets_h5(), "config", "/params", "/buffers")) {
    test_fail_(__FILE__, __LINE__, "main network unreadable");
    goto done;
  }
  edm2_gen_opts o;
  edm2_gen_opts_default(&o);
  o.steps = (int)golden_attr_f64(f, obj, "steps");
  o.sigma_min = golden_attr_f64(f, obj, "sigma_min");
  o.sigma_max = golden_attr_f64(f, obj, "sigma_max");
  o.rho = golden_attr_f64(f, obj, "rho");
  o.guidance = golden_attr_f64(f, obj, "guidance");
  o.S_churn = golden_attr_f64(f, obj, "S_churn");
  o.S_min = golden_attr_f64(f, obj, "S_min");
  o.S_max = golden_attr_f64(f, obj, "S_max");
  o.S_noise = golden_attr_f64(f, obj, "S_noise");
  int labels_none = (int)golden_attr_f64(f, obj, "labels_none");
  char *gkind = golden_attr_str(f, obj, "gnet");
  int have_gnet = gkind && strcmp(gkind, "none") != 0;
  int gload = 0;
  if (gkind && !strcmp(gkind, "uncond"))
    gload = load_net(&gnet_net, nets_h5(), "uncond_config", "/uncond/params", "/uncond/buffers");
  else if (gkind && !strcmp(gkind, "autog"))
    gload = load_net(&gnet_net, f, "config", "/nets/autog/params", "/nets/autog/buffers");
  free(gkind);
  if (gload) {
    test_fail_(__FILE__, __LINE__, "%s: guiding network unreadable", name);
    goto done;
  }

  size_t nn = 0, nl = 0, nx = 0, nt = 0, nc = 0, ns = 0;
#define READ(var, ds, cnt)                                                                         \
  snprintf(path, sizeof path, "%s/%s", obj, ds);                                                   \
  var = golden_f32_flat(f, path, &cnt);                                                            \
  if (!var) {                                                                                      \
    test_fail_(__FILE__, __LINE__, "golden %s missing", path);                                     \
    goto done;                                                                                     \
  }
  READ(x, "noise", nn); /* the noise in, the samples out */
  READ(labels, "labels", nl);
  READ(xref, "x_final", nx);
  READ(tref, "t_steps", nt);
  if (o.S_churn > 0) {
    READ(churn, "churn", nc);
    snprintf(path, sizeof path, "%s/churn_steps", obj);
    churn_steps = golden_int(f, path, &ns);
    if (!churn_steps || ns != (size_t)o.steps) {
      test_fail_(__FILE__, __LINE__, "golden %s missing", path);
      goto done;
    }
  }
#undef READ
  const edm2_netcfg *cfg = &net.arch.cfg;
  size_t M = (size_t)cfg->img_channels * cfg->img_resolution * cfg->img_resolution;
  int n = (int)(nn / M);
  if (nx != nn || nt != (size_t)o.steps + 1 || nl != (size_t)n * cfg->label_dim ||
      (churn && nc != (size_t)o.steps * nn)) {
    test_fail_(__FILE__, __LINE__, "%s: golden shapes do not fit", name);
    goto done;
  }

  /* Time steps: equal, or the ulps by which they differ (the reference's SLEEF powf). */
  t = ec_mallocarray(nt, sizeof *t);
  called = ec_calloc((size_t)o.steps, sizeof *called);
  if (!t || !called) {
    test_fail_(__FILE__, __LINE__, "out of memory");
    goto done;
  }
  edm2_gen_timesteps(&o, t);
  int tulp = 0, tdiff = 0;
  for (size_t i = 0; i < nt; i++) {
    int u = ulp_diff(t[i], tref[i]);
    if (u) tdiff++;
    if (u > tulp) tulp = u;
  }
  if (threads == 1)
    printf("# %-13s t_steps: %d of %zu differ, by at most %d ulp\n", name, tdiff, nt, tulp);
  if (tulp > worst_tulp) worst_tulp = tulp;
  if (tulp > 1 || t[o.steps] != 0.0f) {
    test_fail_(__FILE__, __LINE__, "%s: time steps differ by %d ulp", name, tulp);
    goto done;
  }
  /* t̂ at the churn steps: the reference's Euler calls received it (sigmas[2i]). */
  if (churn) {
    size_t nsig = 0;
    snprintf(path, sizeof path, "%s/sigmas", obj);
    float *sig = golden_f32_flat(f, path, &nsig);
    int bad = !sig || nsig != (size_t)(2 * o.steps - 1);
    for (int i = 0; !bad && i < o.steps; i++) {
      float th = edm2_gen_t_hat(&o, tref[i]);
      bad = th != sig[2 * i] || (th != tref[i]) != (churn_steps[i] != 0);
      if (bad) printf("# step %d: t_hat %.9g, reference %.9g\n", i, (double)th, (double)sig[2 * i]);
    }
    free(sig);
    if (bad) {
      test_fail_(__FILE__, __LINE__, "%s: t_hat differs from the reference's", name);
      goto done;
    }
  }

  replay rp = {churn, n, o.steps, M, called, 0};
  if (edm2_pass_init(&p, &net, n, 0, threads) ||
      (have_gnet && edm2_pass_init(&gp, &gnet_net, n, 0, threads))) {
    test_fail_(__FILE__, __LINE__, "%s", ec_errmsg());
    goto done;
  }
  ec_status st = edm2_generate(&o, &p, have_gnet ? &gp : NULL, n, x,
                               labels_none ? NULL : labels, churn ? replay_churn : NULL,
                               churn ? &rp : NULL);
  if (st) {
    test_fail_(__FILE__, __LINE__, "%s: %s", name, ec_errmsg());
    goto done;
  }
  if (churn) {
    int ok = !rp.bad;
    for (int i = 0; i < o.steps; i++) ok &= called[i] == (churn_steps[i] ? n : 0);
    if (!ok) {
      test_fail_(__FILE__, __LINE__, "%s: churn noise drawn at other steps than the reference's",
                 name);
      goto done;
    }
  }

  const cmp_result c = compare(x, xref, nx);
  const double rel = c.rel, nmse = c.nmse;
  const size_t worst = c.worst;
  printf("# %-13s threads %d: rel %.3g, nmse %.3g\n", name, threads, rel, nmse);
  if (rel > worst_rel) worst_rel = rel;
  if (nmse > worst_nmse) worst_nmse = nmse;
  if (!(rel <= TOL_REL && nmse <= TOL_NMSE))
    test_fail_(__FILE__, __LINE__,
               "%s (threads %d): rel %.3g (max %.3g), nmse %.3g (max %.3g); worst element %zu: "
               "%.9g vs %.9g",
               name, threads, rel, TOL_REL, nmse, TOL_NMSE, worst, (double)x[worst],
               (double)xref[worst]);

done:
  edm2_pass_free(&p);
  edm2_pass_free(&gp);
  edm2_net_free(&net);
  edm2_net_free(&gnet_net);
  free(x);
  free(labels);
  free(xref);
  free(tref);
  free(churn);
  free(churn_steps);
  free(called);
  free(t);
}

TEST(golden_file_is_current) {
  hid_t f = sample_h5();
  if (f < 0) {
    test_fail_(__FILE__, __LINE__, "tests/golden/edm2_sample_tiny.h5 not found");
    return;
  }
  char *fmt = golden_attr_str(f, "/", "format");
  ASSERT_STR_EQ(fmt, "edm2c-golden-sample");
  free(fmt);
  ASSERT_EQ_INT(golden_attr_f64(f, "/", "format_version"), 1);
  /* The networks are those of edm2_tiny.h5: same configuration. */
  ASSERT_TRUE(nets_h5() >= 0);
  char *a = golden_attr_str(f, "/", "config"), *b = golden_attr_str(nets_h5(), "/", "config");
  int same = a && b && !strcmp(a, b);
  free(a);
  free(b);
  ASSERT_TRUE(same);
}

TEST(samples_match_reference_1_thread) {
  for (int c = 0; c < N_CASES; c++) run_case(CASES[c], 1);
}

TEST(samples_match_reference_2_threads) {
  for (int c = 0; c < N_CASES; c++) run_case(CASES[c], 2);
}

/* Printed last: the worst agreement seen (docs quote it). */
TEST(report_worst_agreement) {
  printf("# worst: rel %.3g, nmse %.3g, time steps %d ulp\n", worst_rel, worst_nmse, worst_tulp);
}

TEST_MAIN(golden_file_is_current, samples_match_reference_1_thread,
          samples_match_reference_2_threads, report_worst_agreement)
