/* posthoc-synth: writes the snapshots of a simulated training run, for demos, tests and
 * benchmarks of the post-hoc tools when no real run is at hand.
 *
 *   posthoc-synth --out RUN/snapshots [--count 16] [--every 64Ki] [--batch 1024]
 *                 [--ema 0.050,0.100] [--channels 8] [--dtype float16] [--seed 0]
 *
 * The "network" is a small EDM2-shaped tensor table (real EDM2 state-dict names). Each weight
 * follows a smooth drift plus noise, one step per batch, and every tracked profile is updated
 * after every step exactly as the EDM2 trainer does: ema <- lerp(ema, w, 1 - beta) with
 * beta = (1 - batch/t)^(gamma + 1). The snapshots are therefore real power-function EMAs of a
 * known trajectory, written through the same snapshot writer the trainer uses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/fs.h"
#include "core/progress.h"
#include "edm2c_config.h"
#include "posthoc/ema_list.h"
#include "posthoc/phema_math.h"
#include "posthoc/snapshot.h"
#include "posthoc/snapshot_dir.h"

typedef struct {
  char name[96];
  ec_shape shape;
  int buffer; /* 1: non-trainable (copied into /buffers, never averaged) */
} synth_tensor;

enum { MAX_TENSORS = 64 };

/* An EDM2-shaped table for a 1-channel 32x32 conditional model with `c` channels: two
 * resolutions, one block each, the Fourier buffers and the uncertainty head. */
static int make_table(synth_tensor *t, int c) {
  int n = 0;
  const int64_t e = 4 * (int64_t)c; /* embedding width */
#define P(nm, nd, ...)                                                                             \
  do {                                                                                             \
    snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                               \
    t[n].shape = ec_shape_make(nd, (int64_t[]){__VA_ARGS__});                                      \
    t[n++].buffer = 0;                                                                             \
  } while (0)
#define B(nm, len)                                                                                 \
  do {                                                                                             \
    snprintf(t[n].name, sizeof t[n].name, "%s", nm);                                               \
    t[n].shape = ec_shape_make(1, (int64_t[]){len});                                               \
    t[n++].buffer = 1;                                                                             \
  } while (0)
  P("unet.out_gain", 0, 0);
  B("unet.emb_fourier.freqs", c);
  B("unet.emb_fourier.phases", c);
  P("unet.emb_noise.weight", 2, e, c);
  P("unet.emb_label.weight", 2, e, 10);
  P("unet.enc.32x32_conv.weight", 4, c, 2, 3, 3);
  P("unet.enc.32x32_block0.emb_gain", 0, 0);
  P("unet.enc.32x32_block0.conv_res0.weight", 4, c, c, 3, 3);
  P("unet.enc.32x32_block0.emb_linear.weight", 2, c, e);
  P("unet.enc.32x32_block0.conv_res1.weight", 4, c, c, 3, 3);
  P("unet.enc.16x16_down.emb_gain", 0, 0);
  P("unet.enc.16x16_down.conv_res0.weight", 4, c, c, 3, 3);
  P("unet.enc.16x16_down.emb_linear.weight", 2, c, e);
  P("unet.enc.16x16_down.conv_res1.weight", 4, c, c, 3, 3);
  P("unet.enc.16x16_block0.emb_gain", 0, 0);
  P("unet.enc.16x16_block0.conv_res0.weight", 4, 2 * c, c, 3, 3);
  P("unet.enc.16x16_block0.emb_linear.weight", 2, 2 * c, e);
  P("unet.enc.16x16_block0.conv_res1.weight", 4, 2 * c, 2 * c, 3, 3);
  P("unet.enc.16x16_block0.conv_skip.weight", 4, 2 * c, c, 1, 1);
  P("unet.dec.16x16_in0.emb_gain", 0, 0);
  P("unet.dec.16x16_in0.conv_res0.weight", 4, 2 * c, 2 * c, 3, 3);
  P("unet.dec.16x16_in0.emb_linear.weight", 2, 2 * c, e);
  P("unet.dec.16x16_in0.conv_res1.weight", 4, 2 * c, 2 * c, 3, 3);
  P("unet.dec.32x32_up.emb_gain", 0, 0);
  P("unet.dec.32x32_up.conv_res0.weight", 4, 2 * c, 2 * c, 3, 3);
  P("unet.dec.32x32_up.emb_linear.weight", 2, 2 * c, e);
  P("unet.dec.32x32_up.conv_res1.weight", 4, 2 * c, 2 * c, 3, 3);
  P("unet.dec.32x32_block0.emb_gain", 0, 0);
  P("unet.dec.32x32_block0.conv_res0.weight", 4, c, 3 * c, 3, 3);
  P("unet.dec.32x32_block0.emb_linear.weight", 2, c, e);
  P("unet.dec.32x32_block0.conv_res1.weight", 4, c, c, 3, 3);
  P("unet.dec.32x32_block0.conv_skip.weight", 4, c, 3 * c, 1, 1);
  P("unet.out_conv.weight", 4, 1, c, 3, 3);
  B("logvar_fourier.freqs", 128);
  B("logvar_fourier.phases", 128);
  P("logvar_linear.weight", 2, 1, 128);
#undef P
#undef B
  return n;
}

/* A counter-based uniform in [-1, 1): the same value for (seed, i, k) on any machine. */
static double noise(uint64_t seed, uint64_t i, uint64_t k) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull ^ (i * 0xbf58476d1ce4e5b9ull) ^ (k * 0x94d049bb133111ebull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-52 - 1.0;
}

enum { OPT_OUT, OPT_COUNT, OPT_EVERY, OPT_BATCH, OPT_EMA, OPT_CHANNELS, OPT_PARAMS, OPT_FAST, OPT_DTYPE,
       OPT_SEED, OPT_FORCE, OPT_QUIET, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"out", 1, OPT_OUT, "DIR", "snapshot directory to write (created if missing; required)"},
    {"count", 1, OPT_COUNT, "N", "number of snapshot times (default 16)"},
    {"every", 1, OPT_EVERY, "NIMG", "images between snapshots; Ki/Mi/Gi accepted (default 64Ki)"},
    {"batch", 1, OPT_BATCH, "N", "images per training step; must divide --every (default 1024)"},
    {"ema", 1, OPT_EMA, "LIST", "tracked EMA profiles as sigma_rel values (default 0.050,0.100)"},
    {"channels", 1, OPT_CHANNELS, "C", "width of the simulated network (default 8)"},
    {"params", 1, OPT_PARAMS, "N",
     "pick the width whose table has at least N trainable parameters (e.g. 125M for EDM2-XS's size)"},
    {"fast", 0, OPT_FAST, NULL,
     "for benchmarks: write closed-form values per snapshot instead of simulating every step, "
     "in memory of one tensor (the profiles are then not exact EMAs of one trajectory)"},
    {"dtype", 1, OPT_DTYPE, "TYPE", "float16 (default, as EDM2) or float32"},
    {"seed", 1, OPT_SEED, "N", "random seed of the trajectory (default 0)"},
    {"force", 0, OPT_FORCE, NULL, "write even if DIR already holds snapshots (replacing those of the same times)"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

typedef struct {
  const char *out;
  int64_t count, every, batch, channels, seed, params;
  int fast;
  ec_dtype dtype;
  double *sigma;
  int nsigma;
  int force, quiet;
} synth_args;

/* Trainable parameters of the table at width c. */
static int64_t trainable(int c) {
  synth_tensor tab[MAX_TENSORS];
  int nt = make_table(tab, c);
  int64_t n = 0;
  for (int i = 0; i < nt; i++)
    if (!tab[i].buffer) n += ec_shape_numel(&tab[i].shape);
  return n;
}

/* Closed-form snapshot values for --fast: a smooth per-element drift towards a target, a profile
 * dependent lag, and small noise; cheap and deterministic. */
static void fast_values(float *out, int64_t first, int64_t n, uint64_t seed, int64_t t, int64_t total,
                        double sigma) {
  double u = (double)t / (double)total, lag = exp(-1.0 / (sigma * 40.0 + 1e-3));
  for (int64_t j = 0; j < n; j++) {
    uint64_t i = (uint64_t)(first + j);
    double w0 = noise(seed, i, 0), target = noise(seed + 1, i, 0);
    out[j] = (float)(target + (w0 - target) * (1 - u) * lag + 0.01 * noise(seed + 2, i, (uint64_t)t));
  }
}

static ec_status run_fast(const synth_args *a, synth_tensor *tab, int nt, const int64_t *off,
                          const char *config, float *out, ec_progress *bar) {
  ec_status s = EC_OK;
  int64_t total = a->count * a->every;
  for (int64_t c = 1; c <= a->count && !s; c++) {
    int64_t t = c * a->every;
    snap_writer *sw;
    snap_meta meta = {t, a->batch, "", config, a->dtype};
    if ((s = snap_writer_open(&sw, a->out, &meta))) break;
    for (int k = 0; k < a->nsigma && !s; k++) {
      s = snap_writer_add_profile(sw, a->sigma[k]);
      for (int i = 0; i < nt && !s; i++) {
        if (tab[i].buffer) continue;
        fast_values(out, off[i], off[i + 1] - off[i], (uint64_t)a->seed, t, total, a->sigma[k]);
        s = snap_writer_add_tensor(sw, a->sigma[k], tab[i].name, &tab[i].shape, EC_F32, out);
      }
    }
    for (int i = 0; i < nt && !s; i++) {
      if (!tab[i].buffer) continue;
      for (int64_t j = 0; j < off[i + 1] - off[i]; j++) out[j] = (float)noise((uint64_t)a->seed + 4, (uint64_t)(off[i] + j), 0);
      s = snap_writer_add_buffer(sw, tab[i].name, &tab[i].shape, out);
    }
    if (s)
      snap_writer_abort(&sw);
    else
      s = snap_writer_close(&sw);
    ec_progress_update(bar, c);
  }
  return s;
}

static ec_status run(const synth_args *a) {
  synth_tensor tab[MAX_TENSORS];
  int nt = make_table(tab, (int)a->channels);
  int64_t nparam = 0, ntrainable = 0, off[MAX_TENSORS + 1];
  for (int i = 0; i < nt; i++) {
    off[i] = nparam;
    nparam += ec_shape_numel(&tab[i].shape);
    if (!tab[i].buffer) ntrainable += ec_shape_numel(&tab[i].shape);
  }
  off[nt] = nparam;
  double gamma[16];
  for (int k = 0; k < a->nsigma; k++) {
    ec_status s = phema_sigma_to_gamma(a->sigma[k], &gamma[k]);
    if (s) return s;
  }
  snapdir d;
  ec_status s = ec_mkdirs(a->out);
  if (s) return s;
  s = snapdir_scan(&d, a->out);
  if (s) return s;
  int existing = d.n;
  snapdir_free(&d);
  if (existing && !a->force)
    return ec_err(EC_EEXIST, "%s already holds %d snapshot%s; refusing to mix runs (use --force)",
                  a->out, existing, existing == 1 ? "" : "s");

  char *config = ec_asprintf("{\"synthetic\": true, \"generator\": \"posthoc-synth\", \"channels\": %lld, "
                             "\"seed\": %lld, \"batch\": %lld, \"every\": %lld, \"fast\": %s}",
                             (long long)a->channels, (long long)a->seed, (long long)a->batch,
                             (long long)a->every, a->fast ? "true" : "false");
  if (!config) return EC_ENOMEM;
  if (a->fast) {
    int64_t biggest = 1;
    for (int i = 0; i < nt; i++) biggest = off[i + 1] - off[i] > biggest ? off[i + 1] - off[i] : biggest;
    float *buf = ec_mallocarray((size_t)biggest, sizeof *buf);
    ec_progress bar;
    ec_progress_begin(&bar, "writing", a->count, 0, a->quiet);
    s = buf ? run_fast(a, tab, nt, off, config, buf, &bar) : EC_ENOMEM;
    ec_progress_end(&bar);
    ec_freep(&buf);
    ec_freep(&config);
    if (!s && !a->quiet)
      fprintf(stderr, "posthoc-synth: wrote %lld snapshots (--fast, %lld parameters per profile) to %s\n",
              (long long)a->count, (long long)ntrainable, a->out);
    return s;
  }

  /* w: current weights; target: where each weight drifts; ema: one copy per profile. */
  double *w = ec_mallocarray((size_t)nparam, sizeof *w);
  double *target = ec_mallocarray((size_t)nparam, sizeof *target);
  double *ema = ec_mallocarray((size_t)nparam * (size_t)a->nsigma, sizeof *ema);
  float *out = ec_mallocarray((size_t)nparam, sizeof *out);
  if (!w || !target || !ema || !out) {
    s = EC_ENOMEM;
    goto done;
  }
  for (int64_t i = 0; i < nparam; i++) {
    w[i] = noise((uint64_t)a->seed, (uint64_t)i, 0);
    target[i] = noise((uint64_t)a->seed + 1, (uint64_t)i, 0);
  }
  int64_t steps = a->count * (a->every / a->batch);
  ec_progress bar;
  ec_progress_begin(&bar, "simulating", steps, 0, a->quiet);
  for (int64_t step = 1; step <= steps && !s; step++) {
    int64_t t = step * a->batch;
    /* The drift slows down over training (a decaying learning rate), plus noise. */
    double lr = 0.02 / sqrt((double)step / 64.0 + 1.0);
    for (int64_t i = 0; i < nparam; i++)
      w[i] += lr * (target[i] - w[i]) + 0.5 * lr * noise((uint64_t)a->seed + 2, (uint64_t)i, (uint64_t)step);
    for (int k = 0; k < a->nsigma; k++) {
      double beta = phema_beta(gamma[k], t, a->batch);
      double *e = ema + (size_t)k * (size_t)nparam;
      for (int64_t i = 0; i < nparam; i++) e[i] += (1.0 - beta) * (w[i] - e[i]);
    }
    ec_progress_update(&bar, step);
    if (t % a->every) continue;
    snap_writer *sw;
    snap_meta meta = {t, a->batch, "", config, a->dtype};
    if ((s = snap_writer_open(&sw, a->out, &meta))) break;
    for (int k = 0; k < a->nsigma && !s; k++) {
      s = snap_writer_add_profile(sw, a->sigma[k]);
      for (int i = 0; i < nt && !s; i++) {
        if (tab[i].buffer) continue;
        for (int64_t j = off[i]; j < off[i + 1]; j++) out[j] = (float)ema[(size_t)k * (size_t)nparam + (size_t)j];
        s = snap_writer_add_tensor(sw, a->sigma[k], tab[i].name, &tab[i].shape, EC_F32, out + off[i]);
      }
    }
    for (int i = 0; i < nt && !s; i++) {
      if (!tab[i].buffer) continue;
      int64_t n = off[i + 1] - off[i];
      for (int64_t j = 0; j < n; j++) /* fixed Fourier-like constants, identical in every snapshot */
        out[j] = (float)(strstr(tab[i].name, "phases") ? 2 * M_PI * (noise((uint64_t)a->seed + 3, (uint64_t)(off[i] + j), 0) + 1) / 2
                                                       : 2 * noise((uint64_t)a->seed + 4, (uint64_t)(off[i] + j), 0));
      s = snap_writer_add_buffer(sw, tab[i].name, &tab[i].shape, out);
    }
    if (s)
      snap_writer_abort(&sw);
    else
      s = snap_writer_close(&sw);
  }
  ec_progress_end(&bar);
  ec_freep(&config);
  if (!s && !a->quiet) {
    char every[32];
    fprintf(stderr, "posthoc-synth: wrote %lld snapshots (every %s images, %lld parameters per profile) to %s\n",
            (long long)a->count, ec_format_nimg(every, sizeof every, a->every), (long long)ntrainable, a->out);
  }
done:
  ec_freep(&config);
  ec_freep(&w);
  ec_freep(&target);
  ec_freep(&ema);
  ec_freep(&out);
  return s;
}

int main(int argc, char **argv) {
  ec_cli cli = {.prog = "posthoc-synth",
                .synopsis = "--out DIR [--count N] [--every NIMG] [--batch N] [--ema LIST] "
                            "[--channels C] [--dtype TYPE] [--seed N]",
                .description =
                    "Writes the EMA snapshots of a simulated training run: a small EDM2-shaped "
                    "tensor table whose weights drift with noise, tracked after every step with the "
                    "exact power-function EMA rule of the EDM2 trainer, and stored in the snapshot "
                    "format (docs/formats.md). For demos, tests and benchmarks of posthoc-ema.",
                .opts = options};
  synth_args a = {NULL, 16, 65536, 1024, 8, 0, 0, 0, EC_F16, NULL, 0, 0, 0};
  ec_status s = EC_OK;
  const char *arg, *ema = "0.050,0.100";
  ec_atomic_install_signal_cleanup();
  for (int id; !s && (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_OUT: a.out = arg; break;
    case OPT_COUNT: s = ec_parse_int_range("--count", arg, 1, 1000000, &a.count); break;
    case OPT_EVERY: s = ec_parse_nimg("--every", arg, &a.every); break;
    case OPT_BATCH: s = ec_parse_int_range("--batch", arg, 1, INT64_MAX, &a.batch); break;
    case OPT_EMA: ema = arg; break;
    case OPT_CHANNELS: s = ec_parse_int_range("--channels", arg, 1, 16384, &a.channels); break;
    case OPT_PARAMS: s = ec_parse_nimg("--params", arg, &a.params); break;
    case OPT_FAST: a.fast = 1; break;
    case OPT_DTYPE:
      if (!strcmp(arg, "float16"))
        a.dtype = EC_F16;
      else if (!strcmp(arg, "float32"))
        a.dtype = EC_F32;
      else
        s = ec_err(EC_EINVAL, "--dtype: '%s' is not float16 or float32", arg);
      break;
    case OPT_SEED: s = ec_parse_int_range("--seed", arg, 0, INT64_MAX, &a.seed); break;
    case OPT_FORCE: a.force = 1; break;
    case OPT_QUIET: a.quiet = 1; break;
    case OPT_VERSION: printf("posthoc-synth (edm2c) %s\n", EDM2C_VERSION); return 0;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    default: return 2;
    }
  }
  if (!s && !a.out) s = ec_cli_usage(&cli, "--out DIR is required");
  if (!s && a.params > 0) { /* the smallest width with at least that many parameters */
    int64_t lo = 1, hi = 16384;
    if (trainable((int)hi) < a.params) s = ec_err(EC_EINVAL, "--params %lld: more than this table can hold", (long long)a.params);
    while (!s && lo < hi) {
      int64_t mid = (lo + hi) / 2;
      if (trainable((int)mid) >= a.params) hi = mid; else lo = mid + 1;
    }
    a.channels = lo;
  }
  if (!s && (a.every <= 0 || a.every % a.batch))
    s = ec_err(EC_EINVAL, "--every (%lld) must be a positive multiple of --batch (%lld)",
               (long long)a.every, (long long)a.batch);
  if (!s && (s = phema_list_parse(ema, &a.sigma, &a.nsigma))) ec_err_context(s, "--ema");
  if (!s && a.nsigma > 16) s = ec_err(EC_EINVAL, "--ema: at most 16 profiles");
  if (!s) s = run(&a);
  ec_freep(&a.sigma);
  if (s && s != EC_EUSAGE) fprintf(stderr, "posthoc-synth: error: %s\n", ec_errmsg());
  return ec_exit_code(s);
}
