/* edm2-train: the EDM2 trainer's command line.
 *
 *   edm2-train --preset NAME --data PATH --outdir RUN [overrides...]     train (CPU backend)
 *   edm2-train --preset NAME --describe [--uncond] [--config JSON] [--json]
 *   edm2-train --list-presets [--json]
 *
 * Training follows edm2-spec.md §6 (trainer/train.h). --describe prints the network of a
 * preset: every state-dict tensor with its shape, the parameter count and the Gflops of one
 * evaluation, counted as the reference's count_flops.py counts them (edm2-spec.md §5). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic.h"
#include "core/cli.h"
#include "core/pool.h"
#include "edm2c_config.h"
#include "nn/blas.h"
#include "trainer/arch.h"
#include "trainer/netconfig.h"
#include "trainer/train.h"

enum {
  OPT_PRESET, OPT_DESCRIBE, OPT_UNCOND, OPT_CONFIG, OPT_JSON, OPT_LIST_PRESETS, OPT_DATA, OPT_OUTDIR,
  OPT_COND, OPT_DURATION, OPT_BATCH, OPT_BATCH_GPU, OPT_CHANNELS, OPT_DROPOUT, OPT_P_MEAN, OPT_P_STD,
  OPT_LR, OPT_DECAY, OPT_RAMPUP, OPT_STATUS, OPT_SNAPSHOT, OPT_CHECKPOINT, OPT_MAGNITUDES, OPT_EMA, OPT_SEED,
  OPT_BACKEND, OPT_THREADS, OPT_DRY_RUN, OPT_QUIET, OPT_STOP_AFTER, OPT_HELP, OPT_VERSION
};

static const ec_cli_opt options[] = {
    {"preset", 1, OPT_PRESET, "NAME",
     "network and training preset: img512-xxs ... img512-xxl, img64-xs ... img64-xl (the paper's; "
     "an 'edm2-' prefix is accepted), fmnist, test-tiny, test-micro (--list-presets shows them)"},
    {"data", 1, OPT_DATA, "PATH",
     "training data: 'fashion-mnist' (Debian's dataset-fashion-mnist; fmnist's default), a folder or "
     ".zip of PNG images with an optional dataset.json, or a folder with IDX files"},
    {"outdir", 1, OPT_OUTDIR, "RUN",
     "run directory: config.json, log.jsonl, snapshots/, checkpoints/; an existing one is resumed "
     "from its newest checkpoint"},
    {"cond", 1, OPT_COND, "BOOL", "train class-conditional on the dataset's labels (default true)"},
    {"duration", 1, OPT_DURATION, "NIMG", "training length in images (Ki/Mi/Gi suffixes; default: preset)"},
    {"batch", 1, OPT_BATCH, "NIMG", "images per optimizer step (default: preset)"},
    {"batch-gpu", 1, OPT_BATCH_GPU, "NIMG",
     "images per forward/backward; the batch is accumulated over batch / batch-gpu rounds (default: all)"},
    {"channels", 1, OPT_CHANNELS, "N", "model_channels (default: preset)"},
    {"dropout", 1, OPT_DROPOUT, "P", "dropout probability (default: preset)"},
    {"P_mean", 1, OPT_P_MEAN, "X", "mean of ln(sigma) in training (default: preset)"},
    {"P_std", 1, OPT_P_STD, "X", "standard deviation of ln(sigma) in training (default: preset)"},
    {"lr", 1, OPT_LR, "X", "reference learning rate alpha_ref (default: preset)"},
    {"decay", 1, OPT_DECAY, "N", "learning-rate decay time t_ref in steps, 0 = none (default: preset)"},
    {"rampup", 1, OPT_RAMPUP, "NIMG", "learning-rate warm-up in images (default: preset; the paper's 10M)"},
    {"status", 1, OPT_STATUS, "NIMG", "status line and log.jsonl entry interval, 0 = off (default: preset)"},
    {"snapshot", 1, OPT_SNAPSHOT, "NIMG", "EMA snapshot interval, a multiple of 1024, 0 = off (default: preset)"},
    {"checkpoint", 1, OPT_CHECKPOINT, "NIMG",
     "checkpoint interval, a multiple of 1024, 0 = only at the end (default: preset)"},
    {"magnitudes", 1, OPT_MAGNITUDES, "NIMG",
     "also measure activation magnitudes per resolution bucket on a fixed probe batch of 64 images at "
     "this interval (a multiple of --status; logged in log.jsonl; 0 = off, the default)"},
    {"ema", 1, OPT_EMA, "LIST", "tracked power-function EMA profiles sigma_rel (default 0.050,0.100)"},
    {"seed", 1, OPT_SEED, "N", "random seed: initial weights, data order, sigma, noise, dropout (default 0)"},
    {"backend", 1, OPT_BACKEND, "cpu|cuda", "compute backend (default cpu; cuda arrives with the CUDA issue)"},
    {"threads", 1, OPT_THREADS, "N", "CPU threads, per process under mpirun (default: all online CPUs)"},
    {"dry-run", 0, OPT_DRY_RUN, NULL, "print the resolved configuration and exit"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar and no status lines"},
    {"stop-after", 1, OPT_STOP_AFTER, "NIMG", "stop (with a checkpoint) after this many images in this process"},
    {"describe", 0, OPT_DESCRIBE, NULL,
     "print the network: every state-dict tensor and its shape, the number of trainable "
     "parameters and the Gflops (multiply-adds) of one evaluation at batch 1"},
    {"uncond", 0, OPT_UNCOND, NULL, "the unconditional variant (label_dim = 0) for --describe"},
    {"config", 1, OPT_CONFIG, "JSON",
     "override network arguments, named as the reference's constructor arguments, e.g. "
     "'{\"model_channels\": 96, \"dropout\": 0.1}'"},
    {"json", 0, OPT_JSON, NULL,
     "machine-readable --describe / --list-presets: {\"preset\", \"config\", \"params\", \"gflops\", \"flops\", "
     "\"tensors\": [{\"name\", \"kind\", \"shape\"}]}"},
    {"list-presets", 0, OPT_LIST_PRESETS, NULL, "list the presets"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = "edm2-train",
    .synopsis = "--preset NAME [--data PATH] --outdir RUN [--duration NIMG] [--batch NIMG] [--ema LIST] ...\n"
                "--preset NAME --describe [--uncond] [--config JSON] [--json]\n--list-presets [--json]",
    .description =
        "Trains the EDM2 network (Karras et al., CVPR 2024) as the reference implementation does, tracking "
        "power-function EMAs and writing them as snapshots for posthoc-ema. Resumes automatically from "
        "the newest checkpoint in RUN. SIGINT/SIGTERM finish the current step and write a checkpoint. "
        "Under mpirun -np K (a build with MPI) the K processes share every step's batch; rank 0 writes "
        "the files (docs/training.md).",
    .opts = options,
};

static ec_status list_presets(int json) {
  if (json) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < edm2_preset_count(); i++) {
      const edm2_preset *p = edm2_preset_at(i);
      edm2_arch a;
      ec_status st = edm2_arch_init(&a, &p->net);
      if (st) {
        cJSON_Delete(arr);
        return st;
      }
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", p->name);
      cJSON_AddStringToObject(o, "about", p->about);
      cJSON_AddNumberToObject(o, "params", (double)a.n_params);
      cJSON_AddNumberToObject(o, "gflops", edm2_arch_flops(&a) / 1e9);
      cJSON_AddItemToArray(arr, o);
      edm2_arch_free(&a);
    }
    char *s = cJSON_Print(arr);
    cJSON_Delete(arr);
    if (!s) return ec_err(EC_ENOMEM, "out of memory");
    puts(s);
    free(s);
    return EC_OK;
  }
  printf("%-12s %15s %9s  %s\n", "preset", "parameters", "Gflops", "");
  for (int i = 0; i < edm2_preset_count(); i++) {
    const edm2_preset *p = edm2_preset_at(i);
    edm2_arch a;
    ec_status st = edm2_arch_init(&a, &p->net);
    if (st) return st;
    printf("%-12s %15lld %9.2f  %s\n", p->name, (long long)a.n_params, edm2_arch_flops(&a) / 1e9, p->about);
    edm2_arch_free(&a);
  }
  return EC_OK;
}

static ec_status describe(const char *preset, const edm2_netcfg *cfg, int json) {
  edm2_arch a;
  ec_status st = edm2_arch_init(&a, cfg);
  if (st) return st;
  double flops = edm2_arch_flops(&a);
  char *cfg_json = edm2_netcfg_to_json(cfg);
  if (!cfg_json) {
    edm2_arch_free(&a);
    return ec_err(EC_ENOMEM, "out of memory");
  }
  char shape[96];
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "preset", preset);
    cJSON_AddItemToObject(o, "config", cJSON_Parse(cfg_json));
    cJSON_AddNumberToObject(o, "params", (double)a.n_params);
    cJSON_AddNumberToObject(o, "gflops", flops / 1e9);
    cJSON_AddNumberToObject(o, "flops", flops);
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    for (int i = 0; i < a.n_tensors; i++) {
      const edm2_tensor *t = &a.tensors[i];
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "name", t->name);
      cJSON_AddStringToObject(e, "kind", t->kind == EDM2_PARAM ? "param" : "buffer");
      int dims[4];
      for (int d = 0; d < t->ndim; d++) dims[d] = (int)t->shape[d];
      cJSON_AddItemToObject(e, "shape", cJSON_CreateIntArray(dims, t->ndim));
      cJSON_AddItemToArray(ts, e);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (s) puts(s);
    free(s);
  } else {
    printf("# preset %s\n# config %s\n", preset, cfg_json);
    printf("# kind  name  shape  numel (P = trainable parameter, B = buffer)\n");
    for (int i = 0; i < a.n_tensors; i++) {
      const edm2_tensor *t = &a.tensors[i];
      printf("%c  %s  %s  %lld\n", t->kind == EDM2_PARAM ? 'P' : 'B', t->name,
             edm2_tensor_shape_str(t, shape, sizeof shape), (long long)t->numel);
    }
    int64_t head = a.tensors[a.logvar_linear].numel;
    printf("# trainable parameters: %lld  (U-Net %lld + uncertainty head %lld)\n", (long long)a.n_params,
           (long long)(a.n_params - head), (long long)head);
    printf("# buffer elements: %lld\n", (long long)a.n_buffer_elems);
    printf("# Gflops per evaluation: %.2f  (%.0f multiply-adds at batch 1, count_flops.py rules)\n",
           flops / 1e9, flops);
  }
  free(cfg_json);
  edm2_arch_free(&a);
  return EC_OK;
}

/* Parses "0.05,0.1,0.13" into c->ema. */
static ec_status parse_ema(const char *s, edm2_traincfg *c) {
  c->n_ema = 0;
  const char *p = s;
  while (*p) {
    if (c->n_ema == EDM2_EMA_MAX) return ec_err(EC_EINVAL, "--ema: at most %d profiles", EDM2_EMA_MAX);
    char *end;
    double v = strtod(p, &end);
    if (end == p || (*end && *end != ',')) return ec_err(EC_EINVAL, "--ema: '%s' is not a list of numbers", s);
    c->ema[c->n_ema++] = v;
    p = *end ? end + 1 : end;
  }
  if (!c->n_ema) return ec_err(EC_EINVAL, "--ema: empty list");
  return EC_OK;
}

typedef struct {
  const char *preset, *config, *data, *outdir, *ema, *backend;
  int do_describe, uncond, json, do_list, dry_run, quiet;
  int have[OPT_VERSION + 1];
  int64_t i[OPT_VERSION + 1];
  double f[OPT_VERSION + 1];
} args;

static ec_status train(const args *a, const edm2_dist *d) {
  const edm2_preset *p;
  ec_status st = edm2_preset_get(a->preset, &p);
  if (st) return st;
  edm2_traincfg c;
  edm2_traincfg_from_preset(&c, p);
  if (a->data) snprintf(c.data, sizeof c.data, "%s", a->data);
  if (a->config && (st = edm2_netcfg_apply_json(&c.net, a->config, "--config", 1))) return st;
#define SET(opt, field, src) if (a->have[opt]) c.field = a->src[opt]
  SET(OPT_COND, cond, i);
  SET(OPT_DURATION, duration, i);
  SET(OPT_BATCH, batch, i);
  SET(OPT_BATCH_GPU, batch_gpu, i);
  SET(OPT_CHANNELS, net.model_channels, i);
  SET(OPT_DROPOUT, net.dropout, f);
  SET(OPT_P_MEAN, P_mean, f);
  SET(OPT_P_STD, P_std, f);
  SET(OPT_LR, lr_ref, f);
  SET(OPT_DECAY, decay, i);
  SET(OPT_RAMPUP, rampup, i);
  SET(OPT_STATUS, status, i);
  SET(OPT_SNAPSHOT, snapshot, i);
  SET(OPT_CHECKPOINT, checkpoint, i);
  SET(OPT_MAGNITUDES, magnitudes, i);
  SET(OPT_SEED, seed, i);
  SET(OPT_THREADS, threads, i);
#undef SET
  if (!a->have[OPT_THREADS]) c.threads = ec_cpu_count();
  if (a->ema && (st = parse_ema(a->ema, &c))) return st;
  if (a->backend && strcmp(a->backend, "cpu"))
    return ec_err(EC_EINVAL, "--backend %s: only the cpu backend exists in this build (the CUDA trainer is a later issue)",
                  a->backend);
  if (a->dry_run) {
    if ((st = edm2_traincfg_check(&c))) return st;
    char *js = edm2_traincfg_to_json(&c);
    if (!js) return ec_err(EC_ENOMEM, "out of memory");
    if (d->rank == 0) printf("%s\n", js);
    free(js);
    return EC_OK;
  }
  edm2_trainer t;
  edm2_train_opts o = {
      .quiet = a->quiet, .stop_after = a->have[OPT_STOP_AFTER] ? a->i[OPT_STOP_AFTER] : 0, .dist = d};
  if ((st = edm2_trainer_init(&t, &c, a->outdir, &o))) return st;
  if (!a->quiet && d->rank == 0) {
    char procs[64] = "";
    if (d->world > 1) snprintf(procs, sizeof procs, "%d processes of %lld images x ", d->world, (long long)t.local);
    printf("# edm2-train %s: %s, %lld parameters, %s%d threads; %s from %lld images\n# config %s\n", EDM2C_VERSION,
           a->outdir, (long long)t.net.arch.n_params, procs, t.cfg.threads, t.nimg ? "resuming" : "starting",
           (long long)t.nimg, t.cfg_json);
    fflush(stdout);
  }
  st = edm2_trainer_run(&t);
  edm2_trainer_free(&t);
  return st;
}

int main(int argc, char **argv) {
  args a;
  memset(&a, 0, sizeof a);
  const char *arg;
  ec_status st = EC_OK;
  int rank = 0;
  ec_atomic_install_signal_cleanup();
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    if (id >= 0 && id <= OPT_VERSION) a.have[id] = 1;
    switch (id) {
    case OPT_PRESET: a.preset = arg; break;
    case OPT_DESCRIBE: a.do_describe = 1; break;
    case OPT_UNCOND: a.uncond = 1; break;
    case OPT_CONFIG: a.config = arg; break;
    case OPT_JSON: a.json = 1; break;
    case OPT_LIST_PRESETS: a.do_list = 1; break;
    case OPT_DATA: a.data = arg; break;
    case OPT_OUTDIR: a.outdir = arg; break;
    case OPT_EMA: a.ema = arg; break;
    case OPT_BACKEND: a.backend = arg; break;
    case OPT_DRY_RUN: a.dry_run = 1; break;
    case OPT_QUIET: a.quiet = 1; break;
    case OPT_COND: {
      int b;
      st = ec_parse_bool("--cond", arg, &b);
      a.i[id] = b;
      break;
    }
    case OPT_DURATION: st = ec_parse_nimg("--duration", arg, &a.i[id]); break;
    case OPT_BATCH: st = ec_parse_nimg("--batch", arg, &a.i[id]); break;
    case OPT_BATCH_GPU: st = ec_parse_nimg("--batch-gpu", arg, &a.i[id]); break;
    case OPT_RAMPUP: st = ec_parse_nimg("--rampup", arg, &a.i[id]); break;
    case OPT_STATUS: st = ec_parse_nimg("--status", arg, &a.i[id]); break;
    case OPT_SNAPSHOT: st = ec_parse_nimg("--snapshot", arg, &a.i[id]); break;
    case OPT_CHECKPOINT: st = ec_parse_nimg("--checkpoint", arg, &a.i[id]); break;
    case OPT_MAGNITUDES: st = ec_parse_nimg("--magnitudes", arg, &a.i[id]); break;
    case OPT_STOP_AFTER: st = ec_parse_nimg("--stop-after", arg, &a.i[id]); break;
    case OPT_CHANNELS: st = ec_parse_int_range("--channels", arg, 1, 4096, &a.i[id]); break;
    case OPT_DECAY: st = ec_parse_int_range("--decay", arg, 0, INT64_MAX / 4, &a.i[id]); break;
    case OPT_SEED: st = ec_parse_int_range("--seed", arg, 0, INT64_MAX / 4, &a.i[id]); break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &a.i[id]); break;
    case OPT_DROPOUT: st = ec_parse_f64("--dropout", arg, &a.f[id]); break;
    case OPT_P_MEAN: st = ec_parse_f64("--P_mean", arg, &a.f[id]); break;
    case OPT_P_STD: st = ec_parse_f64("--P_std", arg, &a.f[id]); break;
    case OPT_LR: st = ec_parse_f64("--lr", arg, &a.f[id]); break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf("edm2-train %s\n", EDM2C_VERSION); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, "edm2-train: %s\n", ec_errmsg());
      return ec_exit_code(st);
    }
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (a.do_list) {
    st = list_presets(a.json);
  } else if (a.do_describe) {
    if (!a.preset) return ec_exit_code(ec_cli_usage(&cli, "--describe needs --preset NAME"));
    const edm2_preset *p;
    edm2_netcfg cfg;
    if (!(st = edm2_preset_get(a.preset, &p))) {
      cfg = p->net;
      if (a.uncond) cfg.label_dim = 0;
      if (a.config) st = edm2_netcfg_apply_json(&cfg, a.config, "--config", 1);
      if (!st) st = describe(p->name, &cfg, a.json);
    }
  } else {
    if (!a.preset) return ec_exit_code(ec_cli_usage(&cli, "--preset NAME is required"));
    if (!a.outdir && !a.dry_run)
      return ec_exit_code(ec_cli_usage(&cli, "--outdir RUN is required (or --describe, --list-presets, --dry-run)"));
    /* Under mpirun every process trains its share of each step (trainer/dist.h); after the
     * re-execution of nn_blas_setup, which must come before MPI starts. */
    edm2_dist dist;
    st = edm2_dist_init(&dist, &argc, &argv);
    if (!st) st = train(&a, &dist);
    rank = dist.rank; /* every process has the same status and message; rank 0 prints it */
    /* Before finalizing: once a process exits non-zero, mpirun may stop forwarding the others'
     * output, so rank 0's line must be out before anyone leaves the finalize barrier. */
    if (st && rank == 0) {
      fprintf(stderr, "edm2-train: %s\n", ec_errmsg());
      fflush(stderr);
      rank = -1; /* printed */
    }
    edm2_dist_finalize(&dist);
  }
  if (st && rank == 0) fprintf(stderr, "edm2-train: %s\n", ec_errmsg());
  if (st == EC_EINTR && edm2_trainer_stop_signal()) return 128 + edm2_trainer_stop_signal();
  return ec_exit_code(st);
}
