/* edm2-sweep: EMA-length studies of a training run into a results database (docs/analysis.md).
 *
 *   edm2-sweep ema --run RUN --sigma-rel LIST [--half-life LIST] [--at NIMG|latest|all] [--metric M]
 *   edm2-sweep per-tensor --run RUN --base-sigma X --tensors GLOBS --sigma-rel LIST [--metric M]
 *   edm2-sweep evolution --run RUN --sigma-rel LIST --every NIMG [--metric M]
 *   edm2-sweep profile-accuracy --run RUN [--sigma-rel LIST] [--at NIMG|latest]
 *   edm2-sweep results [--run RUN] [--csv|--json] [--db FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/results_db.h"
#include "analysis/sweep.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "edm2c_config.h"
#include "nn/blas.h"
#include "trainer/dist.h"

#define PROG "edm2-sweep"

enum {
  OPT_RUN, OPT_DB, OPT_METRIC, OPT_SIGMA, OPT_HALF, OPT_AT, OPT_NUM, OPT_REPEATS, OPT_SEED, OPT_GUIDANCE, OPT_GNET,
  OPT_REF, OPT_WEIGHTS, OPT_VAL_DATA, OPT_VAL_FIRST, OPT_STEPS, OPT_REDO, OPT_THREADS, OPT_MEM, OPT_QUIET,
  OPT_BASE, OPT_TENSORS, OPT_USE_PROFILES, OPT_EVERY, OPT_CSV, OPT_JSON, OPT_HELP
};

#define RUN_OPT {"run", 1, OPT_RUN, "RUN", "the training run directory (RUN/snapshots, RUN/config.json)"}
#define DB_OPT {"db", 1, OPT_DB, "FILE", "the results database (default RUN/results.sqlite)"}
#define EVAL_OPTS                                                                                            \
  {"metric", 1, OPT_METRIC, "M", "val-loss (default), fid or fd_dinov2"},                                   \
      {"num", 1, OPT_NUM, "N", "images per evaluation (default: val-loss 512, fid/fd_dinov2 50000)"},       \
      {"repeats", 1, OPT_REPEATS, "R", "evaluations per EMA length with different seeds (default 1)"},     \
      {"seed", 1, OPT_SEED, "S", "the first seed (default 0)"},                                             \
      {"ref", 1, OPT_REF, "STATS", "reference statistics for fid and fd_dinov2 (edm2-metrics ref)"},        \
      {"weights-dir", 1, OPT_WEIGHTS, "DIR", "the detectors' converted weights (docs/metrics.md)"},         \
      {"val-data", 1, OPT_VAL_DATA, "PATH", "held-out data for val-loss (default: Fashion-MNIST's test split "\
       "for runs trained on fashion-mnist)"},                                                                \
      {"val-first", 1, OPT_VAL_FIRST, "K", "the first held-out item of --val-data (default 0)"},            \
      {"steps", 1, OPT_STEPS, "N", "sampler steps for fid/fd_dinov2 (default 32)"},                         \
      {"redo", 0, OPT_REDO, NULL, "evaluate again what the database holds (replacing the rows)"},           \
      {"threads", 1, OPT_THREADS, "N", "threads per process (default: all online CPUs)"},                   \
      {"mem-limit", 1, OPT_MEM, "SIZE", "memory budget of the reconstruction (default 4Gi)"},               \
      {"use-profiles", 1, OPT_USE_PROFILES, "LIST", "the stored EMA profiles the reconstruction uses (default all)"}, \
      {"quiet", 0, OPT_QUIET, NULL, "no per-evaluation lines on stderr (the results still print)"}, DB_OPT,                         \
      {"help", 0, OPT_HELP, NULL, "print this help and exit"}

static const ec_cli_opt ema_opts[] = {
    RUN_OPT,
    {"sigma-rel", 1, OPT_SIGMA, "LIST", "EMA lengths, e.g. 0.010,0.020,...,0.250 (posthoc-ema's syntax)"},
    {"half-life", 1, OPT_HALF, "LIST", "exponential EMAs by half-life in images (2Mi,500000)"},
    {"at", 1, OPT_AT, "NIMG|latest|all", "snapshot time(s) to sweep (default latest)"},
    {"guidance", 1, OPT_GUIDANCE, "LIST", "guidance strengths for fid/fd_dinov2, e.g. 1,1.2,1.4 (default 1)"},
    {"gnet", 1, OPT_GNET, "MODEL", "the guiding network (guidance other than 1)"},
    EVAL_OPTS,
    {0},
};
static const ec_cli_opt pt_opts[] = {
    RUN_OPT,
    {"base-sigma", 1, OPT_BASE, "X", "the EMA length of every other tensor"},
    {"tensors", 1, OPT_TENSORS, "GLOBS", "tensors to vary: comma-separated globs over parameter names"},
    {"sigma-rel", 1, OPT_SIGMA, "LIST", "the EMA lengths each chosen tensor takes"},
    {"at", 1, OPT_AT, "NIMG|latest", "snapshot time (default latest)"},
    EVAL_OPTS,
    {0},
};
static const ec_cli_opt evo_opts[] = {
    RUN_OPT,
    {"sigma-rel", 1, OPT_SIGMA, "LIST", "EMA lengths"},
    {"every", 1, OPT_EVERY, "NIMG", "sweep the snapshots whose time is a multiple of NIMG"},
    EVAL_OPTS,
    {0},
};
static const ec_cli_opt pa_opts[] = {
    RUN_OPT,
    {"sigma-rel", 1, OPT_SIGMA, "LIST", "target EMA lengths (default 0.05,0.10,0.15,0.20)"},
    {"at", 1, OPT_AT, "NIMG|latest", "the time of the targets (default latest)"},
    {"use-profiles", 1, OPT_USE_PROFILES, "LIST", "the stored EMA profiles to use (default: the run's, config.json)"},
    {"redo", 0, OPT_REDO, NULL, "replace rows the database holds"},
    DB_OPT,
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};
static const ec_cli_opt res_opts[] = {
    {"run", 1, OPT_RUN, "RUN", "only this run's rows (and its database, unless --db)"},
    DB_OPT,
    {"csv", 0, OPT_CSV, NULL, "CSV instead of a table"},
    {"json", 0, OPT_JSON, NULL, "{\"rows\": [...], \"best\": [...]}"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static ec_cli clis[] = {
    {.prog = PROG " ema", .synopsis = "--run RUN --sigma-rel LIST [--half-life LIST] [--at NIMG|latest|all] [--metric M]",
     .description = "The metric against EMA length (paper Figure 5a; with --guidance, Figure 6): reconstructs every "
                    "EMA length the database lacks in one pass over the snapshots, evaluates each and stores the rows "
                    "as they come, then prints the run's results and the best EMA length. Reruns do only what is "
                    "missing.",
     .opts = ema_opts},
    {.prog = PROG " per-tensor", .synopsis = "--run RUN --base-sigma X --tensors GLOBS --sigma-rel LIST [--metric M]",
     .description = "Figure 5b: for each parameter tensor matching GLOBS, the metric with that tensor's EMA length set "
                    "to each value of LIST while every other tensor keeps X. One reconstruction pass; the variants swap "
                    "single tensors into the base network.",
     .opts = pt_opts},
    {.prog = PROG " evolution", .synopsis = "--run RUN --sigma-rel LIST --every NIMG [--metric M]",
     .description = "Figure 5c: the EMA sweep at every snapshot whose time is a multiple of NIMG.",
     .opts = evo_opts},
    {.prog = PROG " profile-accuracy", .synopsis = "--run RUN [--sigma-rel LIST] [--at NIMG|latest]",
     .description = "Figure 4's claim on this run's own snapshots: the relative L2 error of the least-squares "
                    "reconstruction of each target EMA profile when only every k-th snapshot, or only the last m, "
                    "are used. Rows: metric profile-error, num = snapshots used, seed = k (0 for the last m).",
     .opts = pa_opts},
    {.prog = PROG " results", .synopsis = "[--run RUN] [--csv|--json] [--db FILE]",
     .description = "The database's rows and, per sweep (run, time, metric, guidance, rule), the best EMA length: "
                    "the minimum of the repeats' mean with a parabola fitted around it.",
     .opts = res_opts},
};
static const char *const names[] = {"ema", "per-tensor", "evolution", "profile-accuracy", "results"};

static void top_help(FILE *f) {
  fprintf(f, "Usage: " PROG " COMMAND [OPTIONS]\n\n"
             "EMA-length studies of a training run, recorded in a results database (docs/analysis.md).\n"
             "Commands:\n"
             "  ema               the metric against EMA length (Figures 5a, 6, 14)\n"
             "  per-tensor        one tensor's EMA length varied at a time (Figure 5b)\n"
             "  evolution         the EMA sweep at several training times (Figure 5c)\n"
             "  profile-accuracy  how well the run's snapshots reconstruct EMA profiles (Figure 4)\n"
             "  results           the rows and the best EMA lengths\n\n"
             "'" PROG " COMMAND --help' describes a command. Under mpirun the evaluations are shared.\n");
}

typedef struct {
  edm2_sweep_opts o;
  const char *db, *at, *tensors, *every;
  double base;
  int have_base, csv, json;
  double *guidance;
} args;

static ec_status parse_guidance(const char *s, args *a) {
  int n = 1;
  for (const char *p = s; *p; p++) n += *p == ',';
  a->guidance = ec_calloc((size_t)n, sizeof *a->guidance);
  if (!a->guidance) return ec_err(EC_ENOMEM, "out of memory");
  const char *p = s;
  for (int i = 0; i < n; i++) {
    char item[64];
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= sizeof item) return ec_err(EC_EINVAL, "--guidance '%s': expected a comma list of numbers", s);
    memcpy(item, p, len);
    item[len] = 0;
    ec_status st = ec_parse_f64("--guidance", item, &a->guidance[i]);
    if (st) return st;
    if (!(a->guidance[i] > 0)) return ec_err(EC_EINVAL, "--guidance %s: must be > 0", item);
    p += len + (p[len] == ',');
  }
  a->o.guidance = a->guidance;
  a->o.nguidance = n;
  return EC_OK;
}

static ec_status parse(ec_cli *cli, int argc, char **argv, args *a, int *help) {
  const char *arg;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(cli, argc, argv, &arg)) != EC_CLI_END;) {
    int64_t v;
    switch (id) {
    case OPT_RUN: a->o.run = arg; break;
    case OPT_DB: a->db = arg; break;
    case OPT_METRIC: a->o.metric = arg; break;
    case OPT_SIGMA: a->o.sigma_rel = arg; break;
    case OPT_HALF: a->o.half_life = arg; break;
    case OPT_AT: a->at = arg; break;
    case OPT_NUM: st = ec_parse_int_range("--num", arg, 1, (int64_t)1 << 40, &a->o.num); break;
    case OPT_REPEATS: st = ec_parse_int_range("--repeats", arg, 1, 1000, &v), a->o.repeats = (int)v; break;
    case OPT_SEED: st = ec_parse_int_range("--seed", arg, 0, (int64_t)1 << 52, &a->o.seed); break;
    case OPT_GUIDANCE: st = parse_guidance(arg, a); break;
    case OPT_GNET: a->o.gnet = arg; break;
    case OPT_REF: a->o.ref = arg; break;
    case OPT_WEIGHTS: a->o.weights_dir = arg; break;
    case OPT_VAL_DATA: a->o.val_data = arg; break;
    case OPT_VAL_FIRST: st = ec_parse_int_range("--val-first", arg, 0, INT64_MAX, &a->o.val_first); break;
    case OPT_STEPS: st = ec_parse_int_range("--steps", arg, 1, 1 << 20, &v), a->o.steps = (int)v; break;
    case OPT_REDO: a->o.redo = 1; break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &v), a->o.threads = (int)v; break;
    case OPT_MEM: st = ec_parse_size("--mem-limit", arg, &a->o.mem_limit); break;
    case OPT_QUIET: a->o.quiet = 1; break;
    case OPT_BASE: st = ec_parse_f64("--base-sigma", arg, &a->base), a->have_base = 1; break;
    case OPT_TENSORS: a->tensors = arg; break;
    case OPT_USE_PROFILES: a->o.use_profiles = arg; break;
    case OPT_EVERY: a->every = arg; break;
    case OPT_CSV: a->csv = 1; break;
    case OPT_JSON: a->json = 1; break;
    case OPT_HELP: ec_cli_help(cli, stdout); *help = 1; return EC_OK;
    default: return EC_EUSAGE;
    }
    if (st) return st;
  }
  if (ec_cli_optind(cli) < argc) return ec_cli_usage(cli, "unexpected argument '%s'", argv[ec_cli_optind(cli)]);
  return EC_OK;
}

/* The snapshot times selected by --at (latest when NULL): *sel, *nsel. */
static ec_status select_times(const args *a, int allow_all, int64_t **sel, int *nsel) {
  int64_t *t;
  int n;
  ec_status st = edm2_sweep_times(a->o.run, &t, &n);
  if (st) return st;
  *sel = t, *nsel = 1;
  if (!a->at || !strcmp(a->at, "latest")) {
    t[0] = t[n - 1];
    return EC_OK;
  }
  if (!strcmp(a->at, "all")) {
    if (!allow_all) st = ec_err(EC_EINVAL, "--at all: this command takes one time");
    *nsel = n;
    return st;
  }
  int64_t want;
  if ((st = ec_parse_nimg("--at", a->at, &want))) return st;
  for (int i = 0; i < n; i++)
    if (t[i] == want) {
      t[0] = want;
      return EC_OK;
    }
  return ec_err(EC_EINVAL, "--at %s: %s/snapshots has no snapshot at %lld images (first %lld, last %lld)", a->at,
                a->o.run, (long long)want, (long long)t[0], (long long)t[n - 1]);
}

static void summary(const char *cmd, const edm2_sweep_report *r, const edm2_dist *d) {
  if (d->rank == 0)
    fprintf(stderr, PROG " %s: %d evaluated, %d already in the database, %d models reconstructed, %.1f s\n", cmd,
            r->evaluated, r->skipped, r->models, r->seconds);
}

static ec_status run_cmd(int which, int argc, char **argv, const edm2_dist *d) {
  args a = {0};
  edm2_sweep_opts_default(&a.o);
  int help = 0;
  ec_cli *cli = &clis[which];
  ec_status st = parse(cli, argc, argv, &a, &help);
  if (st || help) goto done;
  if (!a.o.run && which != 4) {
    st = ec_cli_usage(cli, "--run RUN is required");
    goto done;
  }
  if (a.o.threads > 0) nn_blas_set_threads(a.o.threads);
  char *dbpath = a.db ? ec_strdup(a.db) : a.o.run ? ec_asprintf("%s/results.sqlite", a.o.run) : NULL;
  if (!dbpath) {
    st = ec_cli_usage(cli, "--db FILE or --run RUN is required");
    goto done;
  }
  edm2_db *db = NULL;
  if ((st = edm2_db_open(&db, dbpath))) {
    free(dbpath);
    goto done;
  }
  free(dbpath);
  a.o.log = a.o.quiet || d->rank != 0 ? NULL : stderr;
  edm2_sweep_report rep = {0};
  int64_t *times = NULL;
  int nt = 0;
  switch (which) {
  case 0: /* ema */
    if (!a.o.sigma_rel && !a.o.half_life) {
      st = ec_cli_usage(cli, "--sigma-rel LIST (or --half-life LIST) is required");
      break;
    }
    if ((st = select_times(&a, 1, &times, &nt))) break;
    for (int i = 0; i < nt && !st; i++) st = edm2_sweep_ema(&a.o, times[i], db, d, &rep);
    break;
  case 1: /* per-tensor */
    if (!a.have_base || !a.tensors || !a.o.sigma_rel) {
      st = ec_cli_usage(cli, "--base-sigma X, --tensors GLOBS and --sigma-rel LIST are required");
      break;
    }
    if (!(st = select_times(&a, 0, &times, &nt))) st = edm2_sweep_per_tensor(&a.o, times[0], a.base, a.tensors, db, d, &rep);
    break;
  case 2: { /* evolution */
    int64_t every;
    if (!a.o.sigma_rel || !a.every) {
      st = ec_cli_usage(cli, "--sigma-rel LIST and --every NIMG are required");
      break;
    }
    if ((st = ec_parse_nimg("--every", a.every, &every))) break;
    if (every <= 0) {
      st = ec_err(EC_EINVAL, "--every %s: must be > 0", a.every);
      break;
    }
    if ((st = edm2_sweep_times(a.o.run, &times, &nt))) break;
    int done = 0;
    for (int i = 0; i < nt && !st; i++)
      if (times[i] % every == 0) st = edm2_sweep_ema(&a.o, times[i], db, d, &rep), done++;
    if (!st && !done)
      st = ec_err(EC_EINVAL, "--every %s: no snapshot time of %s is a multiple of %lld (snapshots from %lld to %lld)",
                  a.every, a.o.run, (long long)every, (long long)times[0], (long long)times[nt - 1]);
    break;
  }
  case 3: /* profile-accuracy */
    if (!(st = select_times(&a, 0, &times, &nt)) && d->rank == 0)
      st = edm2_sweep_profile_accuracy(&a.o, times[0], db, stdout, &rep);
    break;
  case 4: { /* results */
    char *rp = a.o.run ? realpath(a.o.run, NULL) : NULL;
    if (a.o.run && !rp) {
      st = ec_err(EC_ENOENT, "--run %s: no such directory", a.o.run);
      break;
    }
    if (d->rank == 0)
      st = edm2_db_write(db, rp, stdout, a.json ? EDM2_DB_JSON : a.csv ? EDM2_DB_CSV : EDM2_DB_TABLE);
    free(rp);
    break;
  }
  }
  if (!st && which < 4) {
    summary(names[which], &rep, d);
    if (which != 3 && d->rank == 0) { /* the results: on stdout even with --quiet */
      char *rp = realpath(a.o.run, NULL);
      st = edm2_db_write(db, rp, stdout, EDM2_DB_TABLE);
      free(rp);
    }
  }
  free(times);
  edm2_db_close(&db);
done:
  free(a.guidance);
  return st;
}

int main(int argc, char **argv) {
  ec_atomic_install_signal_cleanup();
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  if (argc < 2) {
    fprintf(stderr, PROG ": missing command (ema, per-tensor, evolution, profile-accuracy, results)\nTry '" PROG
                    " --help'.\n");
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    top_help(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf(PROG " %s\n", EDM2C_VERSION);
    return 0;
  }
  int which = -1;
  for (int i = 0; i < 5; i++)
    if (!strcmp(argv[1], names[i])) which = i;
  if (which < 0) {
    fprintf(stderr, PROG ": unknown command '%s' (known: ema, per-tensor, evolution, profile-accuracy, results)\n",
            argv[1]);
    return 2;
  }
  edm2_dist dist;
  ec_status st = edm2_dist_init(&dist, &argc, &argv);
  if (!st) st = run_cmd(which, argc - 1, argv + 1, &dist);
  if (st && st != EC_EUSAGE && dist.rank == 0) {
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    fflush(stderr);
  }
  edm2_dist_finalize(&dist);
  return ec_exit_code(st);
}
