/* posthoc/reconstruct: every output equals sum_i x_i theta_i computed independently in float64 from
 * the snapshots and the plan's weights (global, exponential and per-tensor targets), whatever the
 * slice size the memory budget imposes; float64 accumulation; float16 and safetensors outputs;
 * buffers copied; the stored profile reproduced exactly; existing outputs; the memory floor. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/half.h"
#include "core/safetensors.h"
#include "posthoc/model.h"
#include "posthoc/reconstruct.h"
#include "posthoc/snapshot.h"
#include "tests/test.h"

enum { NSNAP = 6, NT = 4 };
static const char *names[NT] = {"unet.out_gain", "unet.enc.8x8_conv.weight", "unet.dec.8x8_block0.conv_res0.weight",
                                "logvar_linear.weight"};
static const int64_t dims[NT][4] = {{0}, {3000, 2, 3, 3}, {40, 40, 3, 3}, {1, 128}};
static const int ndims[NT] = {0, 4, 4, 2};

static float value(int s, int p, int t, int64_t k) {
  /* smooth in time, different per profile, tensor and element */
  return (float)(sin(0.001 * (double)k + t) * (1 + 0.1 * s) + 0.05 * p * cos(0.37 * (double)k) + 0.01 * s * p);
}

/* Writes NSNAP snapshots (profiles 0.05 and 0.10) into dir. */
static ec_status make_run(const char *dir) {
  mkdir(dir, 0777);
  ec_status st = EC_OK;
  for (int s = 1; s <= NSNAP && !st; s++) {
    snap_writer *w;
    snap_meta m = {(int64_t)s * 4096, 512, "", "{\"test\": 1}", EC_F16};
    if ((st = snap_writer_open(&w, dir, &m))) break;
    double sig[2] = {0.05, 0.10};
    for (int p = 0; p < 2 && !st; p++) {
      st = snap_writer_add_profile(w, sig[p]);
      for (int t = 0; t < NT && !st; t++) {
        ec_shape sh = ec_shape_make(ndims[t], dims[t]);
        int64_t n = ec_shape_numel(&sh);
        float *v = malloc((size_t)n * sizeof *v);
        for (int64_t k = 0; k < n; k++) v[k] = value(s, p, t, k);
        st = snap_writer_add_tensor(w, sig[p], names[t], &sh, EC_F32, v);
        free(v);
      }
    }
    float fr[4] = {1, 2, 3, (float)s * 0}; /* identical in every snapshot */
    ec_shape fb = ec_shape_make(1, (int64_t[]){4});
    if (!st) st = snap_writer_add_buffer(w, "unet.emb_fourier.freqs", &fb, fr);
    if (st)
      snap_writer_abort(&w);
    else
      st = snap_writer_close(&w);
  }
  return st;
}

/* Max relative deviation of output tensor t of `model` from sum_i x[i, col] theta_i in float64. */
static double deviation(const plan *p, const char *model_path, int t, int col, int f16_out) {
  model_file m;
  if (model_open(&m, model_path)) return 1e9;
  int mi = model_find_param(&m, names[t]);
  int64_t n = m.params[mi].numel;
  float *got = malloc((size_t)n * sizeof *got), *th = malloc((size_t)n * sizeof *th);
  double *ref = calloc((size_t)n, sizeof *ref);
  model_read_param(&m, mi, EC_F32, got, 0, n);
  model_close(&m);
  for (int i = 0; i < p->ninputs; i++) {
    snap_file s;
    if (snap_open(&s, p->dir.entries[p->inputs[i].snap].path)) return 1e9;
    snap_read(&s, snap_find_profile(&s, p->inputs[i].sigma_rel), snap_find_tensor(&s, names[t]), 0, n, th);
    double x = p->x[(size_t)i * (size_t)p->ntargets + (size_t)col];
    for (int64_t k = 0; k < n; k++) ref[k] += x * th[k];
    snap_close(&s);
  }
  double worst = 0, scale = 0;
  for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(ref[k]));
  for (int64_t k = 0; k < n; k++) {
    double want = f16_out ? ec_half_to_float(ec_float_to_half((float)ref[k])) : ref[k];
    worst = fmax(worst, fabs(got[k] - want) / scale);
  }
  free(got);
  free(th);
  free(ref);
  return worst;
}

static const char *run_dir(void) {
  static int made;
  if (!made) {
    if (make_run(test_path("run")) != EC_OK) return NULL;
    made = 1;
  }
  return test_path("run");
}

static recon_args args(const char *out) {
  recon_args a;
  recon_args_init(&a);
  a.plan.snapshots = run_dir();
  a.out_dir = out;
  a.quiet = 1;
  return a;
}

static int file_exists(const char *dir, const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

TEST(global_and_exponential_targets_any_slice_size) {
  ASSERT_TRUE(run_dir() != NULL);
  /* l = 0: the default budget (whole tensors); l = 1: just above the floor, which forces slices
   * of the 54000-element tensor */
  for (int l = 0; l < 2; l++) {
    char out[64];
    snprintf(out, sizeof out, "global%d", l);
    recon_args a = args(test_path(out));
    a.plan.sigma_rel = "0.05,0.13,0.2";
    a.plan.half_life = "8Ki";
    plan p;
    recon_report r;
    if (l == 1) {
      /* find the floor, then give a little more than it */
      a.mem_limit = 1;
      ASSERT_STATUS(reconstruct(&a, &p, &r, stderr), EC_EINVAL, "--mem-limit 1 B is below what this run needs: at least");
      int64_t floor = r.budget_min;
      recon_report_free(&r);
      plan_free(&p);
      a.mem_limit = floor + 12 * 4 * 3000; /* slices of ~4000 elements */
    }
    ASSERT_OK(reconstruct(&a, &p, &r, stderr));
    ASSERT_EQ_INT(r.written, 4);
    ASSERT_EQ_INT(r.ninputs, 12);
    if (l == 1) ASSERT_TRUE(r.slice_elems < 54000);
    for (int k = 0; k < 4; k++)
      for (int t = 0; t < NT; t++) {
        double dev = deviation(&p, r.outputs[k].path, t, k, 0);
        if (!(dev < 2e-6)) printf("# %s %s: %.3g\n", r.outputs[k].path, names[t], dev);
        ASSERT_TRUE(dev < 2e-6); /* float32 accumulation of 12 terms */
      }
    ASSERT_TRUE(file_exists(test_path(out), "phema-000000024576-0.130.h5"));
    ASSERT_TRUE(file_exists(test_path(out), "phema-000000024576-hl8192.h5"));
    recon_report_free(&r);
    plan_free(&p);
  }
}

TEST(stored_profile_is_reproduced) {
  recon_args a = args(test_path("stored"));
  a.plan.sigma_rel = "0.05";
  plan p;
  recon_report r;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  model_file m;
  snap_file s;
  ASSERT_OK(model_open(&m, r.outputs[0].path));
  ASSERT_OK(snap_open(&s, p.dir.entries[p.dir.n - 1].path));
  for (int t = 0; t < NT; t++) {
    int64_t n = s.tensors[snap_find_tensor(&s, names[t])].numel;
    float *a1 = malloc((size_t)n * 4), *b1 = malloc((size_t)n * 4);
    ASSERT_OK(model_read_param(&m, model_find_param(&m, names[t]), EC_F32, a1, 0, n));
    ASSERT_OK(snap_read(&s, 0, snap_find_tensor(&s, names[t]), 0, n, b1));
    /* Within float16 rounding of the stored value: the weights are 1 on that profile and
     * ~1e-15 elsewhere, which can only move values next to 0. */
    for (int64_t k = 0; k < n; k++)
      if (!(fabsf(a1[k] - b1[k]) <= ldexpf(fabsf(b1[k]), -11) + ldexpf(1, -24))) ASSERT_NEAR(a1[k], b1[k], 0);
    free(a1);
    free(b1);
  }
  ASSERT_EQ_INT(m.nbuffers, 1);
  float fr[4];
  ASSERT_OK(model_read_buffer(&m, 0, fr));
  ASSERT_TRUE(fr[0] == 1 && fr[2] == 3);
  ASSERT_CONTAINS(m.ema, "\"sigma_rel\":0.05");
  ASSERT_STR_EQ(m.config, "{\"test\": 1}");
  ASSERT_EQ_INT(m.nimg, 24576);
  model_close(&m);
  snap_close(&s);
  recon_report_free(&r);
  plan_free(&p);
}

TEST(per_tensor_rules) {
  recon_args a = args(test_path("rules"));
  a.plan.sigma_rel = "0.1,0.15";
  const char *rules[2] = {"unet.*=0.2", "unet.dec.*=0.07"};
  a.rules = rules;
  a.nrules = 2;
  plan p;
  recon_report r;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  ASSERT_EQ_INT(r.written, 2);
  ASSERT_CONTAINS(r.outputs[0].path, "phema-000000024576-0.100-t");
  /* extra targets after the 2 main ones: 0.2 then 0.07 */
  ASSERT_EQ_INT(p.nmain, 2);
  ASSERT_EQ_INT(p.ntargets, 4);
  for (int k = 0; k < 2; k++) {
    ASSERT_TRUE(deviation(&p, r.outputs[k].path, 0, 2, 0) < 2e-6); /* unet.out_gain: rule 1 (0.2) */
    ASSERT_TRUE(deviation(&p, r.outputs[k].path, 1, 2, 0) < 2e-6); /* enc: 0.2 */
    ASSERT_TRUE(deviation(&p, r.outputs[k].path, 2, 3, 0) < 2e-6); /* dec: the last rule, 0.07 */
    ASSERT_TRUE(deviation(&p, r.outputs[k].path, 3, k, 0) < 2e-6); /* logvar: the global target */
  }
  model_file m;
  ASSERT_OK(model_open(&m, r.outputs[1].path));
  ASSERT_CONTAINS(m.ema, "\"tensor_rules\":[{\"glob\":\"unet.*\",\"sigma_rel\":0.2}");
  model_close(&m);
  recon_report_free(&r);
  plan_free(&p);
}

TEST(float64_accumulation_and_float16_output) {
  recon_args a = args(test_path("f64"));
  a.plan.sigma_rel = "0.13";
  a.accumulate_f64 = 1;
  plan p;
  recon_report r;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  for (int t = 0; t < NT; t++) ASSERT_TRUE(deviation(&p, r.outputs[0].path, t, 0, 0) < 1.5e-7); /* one rounding */
  recon_report_free(&r);
  plan_free(&p);
  a = args(test_path("f16"));
  a.plan.sigma_rel = "0.13";
  a.accumulate_f64 = 1;
  a.out_dtype = EC_F16;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  for (int t = 0; t < NT; t++) ASSERT_TRUE(deviation(&p, r.outputs[0].path, t, 0, 1) < 1e-3);
  recon_report_free(&r);
  plan_free(&p);
}

TEST(safetensors_output_matches_h5) {
  recon_args a = args(test_path("st"));
  a.plan.sigma_rel = "0.13";
  a.format = RECON_SAFETENSORS;
  plan p;
  recon_report r;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  ASSERT_CONTAINS(r.outputs[0].path, "phema-000000024576-0.130.safetensors");
  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, r.outputs[0].path));
  ASSERT_EQ_INT(f.ntensors, NT + 1);
  ASSERT_STR_EQ(ec_st_meta(&f, "format"), "edm2c-model");
  ASSERT_CONTAINS(ec_st_meta(&f, "posthoc"), "\"sources\":[\"snapshot-000000004096.h5\"");
  recon_report_free(&r);
  plan_free(&p);
  recon_args b = args(test_path("st_h5"));
  b.plan.sigma_rel = "0.13";
  ASSERT_OK(reconstruct(&b, &p, &r, stderr));
  model_file m;
  ASSERT_OK(model_open(&m, r.outputs[0].path));
  for (int t = 0; t < NT; t++) {
    int mi = model_find_param(&m, names[t]), si = ec_st_find(&f, names[t]);
    int64_t n = m.params[mi].numel;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    ASSERT_OK(model_read_param(&m, mi, EC_F32, x, 0, n));
    ASSERT_OK(ec_st_read(&f, si, EC_F32, y, 0, n));
    ASSERT_TRUE(memcmp(x, y, (size_t)n * 4) == 0);
    free(x);
    free(y);
  }
  model_close(&m);
  ec_st_close(&f);
  recon_report_free(&r);
  plan_free(&p);
}

TEST(existing_outputs) {
  recon_args a = args(test_path("exist"));
  a.plan.sigma_rel = "0.1,0.13";
  plan p;
  recon_report r;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  recon_report_free(&r);
  plan_free(&p);
  a.plan.sigma_rel = "0.13,0.2";
  ASSERT_STATUS(reconstruct(&a, &p, &r, stderr), EC_EEXIST, "phema-000000024576-0.130.h5 exists; use --force");
  recon_report_free(&r);
  plan_free(&p);
  ASSERT_TRUE(!file_exists(test_path("exist"), "phema-000000024576-0.200.h5")); /* nothing done */
  a.skip_existing = 1;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  ASSERT_EQ_INT(r.written, 1);
  ASSERT_TRUE(r.outputs[0].skipped && !r.outputs[1].skipped);
  recon_report_free(&r);
  plan_free(&p);
  a.skip_existing = 0;
  a.force = 1;
  ASSERT_OK(reconstruct(&a, &p, &r, stderr));
  ASSERT_EQ_INT(r.written, 2);
  recon_report_free(&r);
  plan_free(&p);
}

TEST(rule_errors) {
  recon_args a = args(test_path("rerr"));
  a.plan.sigma_rel = "0.1";
  plan p;
  recon_report r;
  const char *bad1[1] = {"unet.[enc*=0.2"};
  a.rules = bad1;
  a.nrules = 1;
  ASSERT_STATUS(reconstruct(&a, &p, &r, stderr), EC_EINVAL, "invalid glob 'unet.[enc*': a '[' is never closed");
  recon_report_free(&r);
  plan_free(&p);
  const char *bad2[1] = {"unet.*=0.5"};
  a.rules = bad2;
  ASSERT_STATUS(reconstruct(&a, &p, &r, stderr), EC_EINVAL, "out of range");
  recon_report_free(&r);
  plan_free(&p);
  const char *bad3[1] = {"unet.*"};
  a.rules = bad3;
  ASSERT_STATUS(reconstruct(&a, &p, &r, stderr), EC_EINVAL, "expected GLOB=SIGMA");
  recon_report_free(&r);
  plan_free(&p);
  ASSERT_TRUE(!file_exists(test_path("."), "rerr"));
}

/* An output does not depend on which other targets share the run, on the thread count or on the
 * slice size: the same bits every time. */
TEST(outputs_are_bit_identical_across_runs) {
  const char *dirs[3] = {"det1", "det2", "det3"};
  const char *sig[3] = {"0.13", "0.05,0.07,0.09,0.11,0.13,0.2", "0.13,0.25"};
  int threads[3] = {1, 2, 3};
  float *ref = NULL;
  int64_t n = 54000;
  for (int r = 0; r < 3; r++) {
    recon_args a = args(test_path(dirs[r]));
    a.plan.sigma_rel = sig[r];
    a.threads = threads[r];
    plan p;
    recon_report rep;
    if (r == 2) {
      a.mem_limit = 1;
      ASSERT_EQ_INT(reconstruct(&a, &p, &rep, stderr), EC_EINVAL);
      a.mem_limit = rep.budget_min + 20 * 4 * 3000; /* small slices */
      recon_report_free(&rep);
      plan_free(&p);
    }
    ASSERT_OK(reconstruct(&a, &p, &rep, stderr));
    char path[4200];
    snprintf(path, sizeof path, "%s/phema-000000024576-0.130.h5", test_path(dirs[r]));
    model_file m;
    ASSERT_OK(model_open(&m, path));
    float *v = malloc((size_t)n * sizeof *v);
    ASSERT_OK(model_read_param(&m, model_find_param(&m, names[1]), EC_F32, v, 0, n));
    model_close(&m);
    if (!ref)
      ref = v;
    else {
      ASSERT_TRUE(memcmp(ref, v, (size_t)n * sizeof *v) == 0);
      free(v);
    }
    recon_report_free(&rep);
    plan_free(&p);
  }
  free(ref);
}

TEST_MAIN(global_and_exponential_targets_any_slice_size, outputs_are_bit_identical_across_runs, stored_profile_is_reproduced,
          per_tensor_rules, float64_accumulation_and_float16_output, safetensors_output_matches_h5,
          existing_outputs, rule_errors)
