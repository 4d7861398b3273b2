/* posthoc-ema: post-hoc EMA for EDM2 training runs.
 *
 *   posthoc-ema --list [--snapshots DIR] [--json] [--quick]
 *   posthoc-ema --solve-only --sigma-rel LIST [--half-life LIST] [--at NIMG] [--json] ...
 *   posthoc-ema --sigma-rel LIST [--half-life LIST] [--at NIMG] [--out DIR] ...   (reconstruct)
 *
 * Run it in a training run directory. This file parses the command line and dispatches; each
 * mode lives in its own cmd_*.c. */
#include <cblas.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/cli.h"
#include "edm2c_config.h"
#include "posthoc/cmd_list.h"
#include "posthoc/cmd_reconstruct.h"
#include "posthoc/cmd_solve.h"

enum {
  OPT_LIST, OPT_SOLVE_ONLY, OPT_SIGMA, OPT_HALF_LIFE, OPT_AT, OPT_SNAPSHOTS, OPT_USE_PROFILES,
  OPT_METHOD, OPT_NO_NORMALIZE, OPT_REGULARIZE, OPT_JSON, OPT_QUICK, OPT_QUIET, OPT_HELP, OPT_VERSION,
  OPT_OUT, OPT_FORMAT, OPT_DTYPE, OPT_TENSOR_SIGMA, OPT_MEM_LIMIT, OPT_THREADS, OPT_SKIP_EXISTING,
  OPT_FORCE, OPT_ACCUMULATE
};

enum { MAX_RULES = 256 };

static const ec_cli_opt options[] = {
    {"list", 0, OPT_LIST, NULL,
     "list the snapshots (time, profiles, tensors, parameters, dtype, size) and check them: "
     "every snapshot must hold the same profiles, tensor names, shapes and buffers; times must be "
     "unique; every dataset is read, so checksums are verified and NaN/Inf are found. Exits 1 on "
     "any error"},
    {"solve-only", 0, OPT_SOLVE_ONLY, NULL,
     "print the least-squares weights of the stored profiles for each target, with diagnostics "
     "(relative response error, cond(A), |x|_1, |x|_2, the weight error that snapshot rounding "
     "adds), without reconstructing"},
    {"sigma-rel", 1, OPT_SIGMA, "LIST",
     "target EMA lengths sigma_rel, EDM2 syntax: 0.05,0.10,0.13 or 0.010,0.015,...,0.250 "
     "(sorted and de-duplicated; each in (0, 0.2887))"},
    {"half-life", 1, OPT_HALF_LIFE, "LIST",
     "exponential targets: EMA half-lives in images (2Mi,500Ki,...); the profile is cut at t = 0 "
     "and renormalised (docs/posthoc-solver.md)"},
    {"at", 1, OPT_AT, "NIMG",
     "target time in images (Ki/Mi/Gi accepted): any time up to the latest snapshot, which is the "
     "default; only snapshots with 0 < nimg <= NIMG are used"},
    {"snapshots", 1, OPT_SNAPSHOTS, "DIR",
     "snapshot directory (default: ./snapshots if it exists, else .)"},
    {"use-profiles", 1, OPT_USE_PROFILES, "LIST",
     "stored profiles that enter the solve (default: all), as EDM2's --instd"},
    {"method", 1, OPT_METHOD, "NAME",
     "solver: auto (default: the exact interval solver when every time carries the same profiles, "
     "else cholesky), interval, cholesky, lstsq, lu (EDM2's np.linalg.solve, for comparison)"},
    {"no-normalize", 0, OPT_NO_NORMALIZE, NULL,
     "keep the raw least-squares weights (default: each target's weights sum to 1, as EDM2)"},
    {"regularize", 1, OPT_REGULARIZE, "auto|LAMBDA",
     "Tikhonov regularisation (A + LAMBDA*lambda_max(A)*I)x = b, off by default; auto uses 1e-6 "
     "for targets with |x|_2 > 5 from float16 snapshots (less amplified rounding, at the cost of "
     "response error)"},
    {"out", 1, OPT_OUT, "DIR",
     "where reconstructions go (default ./phema; created if missing): one model per target, "
     "phema-<nimg, 12 digits>-<sigma_rel, 3 decimals>.h5, or -hl<half-life>.h5"},
    {"format", 1, OPT_FORMAT, "h5|safetensors",
     "output format (default h5, the edm2c model format; safetensors for PyTorch: names unchanged, "
     "provenance in __metadata__)"},
    {"dtype", 1, OPT_DTYPE, "float32|float16", "parameter type of the outputs (default float32)"},
    {"tensor-sigma", 1, OPT_TENSOR_SIGMA, "GLOB=SIGMA",
     "per-tensor EMA length, repeatable: parameters whose name matches GLOB use SIGMA instead of "
     "the target; the last matching rule wins; outputs are named <target>-t<hash of the rules>"},
    {"mem-limit", 1, OPT_MEM_LIMIT, "SIZE",
     "memory budget (default 4GiB): slices are sized to stay under it, whatever the model size. "
     "Open files are budgeted too: snapshot files beyond `ulimit -n` are opened for each read"},
    {"threads", 1, OPT_THREADS, "N", "threads that read, verify and combine snapshots (default: all cores)"},
    {"skip-existing", 0, OPT_SKIP_EXISTING, NULL, "keep outputs that exist and reconstruct the rest (EDM2's --skip)"},
    {"force", 0, OPT_FORCE, NULL, "overwrite outputs that exist (default: refuse)"},
    {"accumulate", 1, OPT_ACCUMULATE, "float32|float64",
     "precision of the weighted sums (default float32)"},
    {"json", 0, OPT_JSON, NULL, "print JSON on stdout (formats: docs/formats.md)"},
    {"quick", 0, OPT_QUICK, NULL, "with --list: read metadata only (no checksum verification)"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static const char description[] =
    "Post-hoc EMA (Karras et al., EDM2, CVPR 2024, section 3): the trainer stores snapshots of two "
    "power-function EMAs (sigma_rel 0.05 and 0.10) as HDF5 files snapshots/snapshot-<nimg>.h5; "
    "this tool checks them, solves for the weights that combine them into any other EMA length, "
    "and writes those models in one streaming pass over the snapshots, for any number of targets "
    "(posthoc-ema --sigma-rel 0.13 in a run directory writes phema/phema-<nimg>-0.130.h5).\n"
    "Problems are printed on stderr, one line each, naming the file and tensor. Exit status: 0 ok, "
    "1 bad input (a bad value or list, a problem with the snapshots), 2 usage error.";

/* OpenBLAS starts one thread per core when it is loaded, and idle ones spin on sched_yield for a
 * while; posthoc-ema needs it only for small dense solves, and the spinning threads steal cores
 * from the reconstruction's readers (measured: a third of a short run). Its thread count comes
 * from the environment when it loads, before main(), and glibc resets the environment after the
 * earliest hook a program has (its preinit array), so the only way is to start again with the
 * variable set. A value the user set is kept; if /proc is missing, we go on as we are. */
static void one_blas_thread(char **argv) {
  if (getenv("OPENBLAS_NUM_THREADS")) return;
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  execv("/proc/self/exe", argv);
}

static ec_status parse_method(const char *s, phema_method *m) {
  for (int k = PHEMA_METHOD_AUTO; k <= PHEMA_METHOD_LU; k++)
    if (!strcmp(s, phema_method_name((phema_method)k))) {
      *m = (phema_method)k;
      return EC_OK;
    }
  return ec_err(EC_EINVAL, "--method: '%s' is not auto, interval, cholesky, lstsq or lu", s);
}

int main(int argc, char **argv) {
  one_blas_thread(argv);
  ec_cli cli = {.prog = "posthoc-ema",
                .synopsis = "--list [--snapshots DIR] [--json] [--quick] [--quiet]\n"
                            "--solve-only --sigma-rel LIST [--half-life LIST] [--at NIMG] "
                            "[--snapshots DIR] [--use-profiles LIST] [--method NAME] "
                            "[--no-normalize] [--regularize auto|LAMBDA] [--json]\n"
                            "--sigma-rel LIST [--half-life LIST] [--at NIMG] [--snapshots DIR] "
                            "[--out DIR] [--format h5|safetensors] [--dtype float32|float16] "
                            "[--tensor-sigma GLOB=SIGMA ...] [--mem-limit SIZE] [--threads N] "
                            "[--use-profiles LIST] [--skip-existing | --force] [--json] [--quiet]",
                .description = description,
                .opts = options};
  list_args la = {0};
  recon_args ra;
  recon_args_init(&ra);
  plan_args pa;
  plan_args_init(&pa);
  const char *rules[MAX_RULES];
  int nrules = 0;
  int list = 0, solve = 0, json = 0;
  ec_status st = EC_OK;
  const char *arg;
  ec_atomic_install_signal_cleanup();
  openblas_set_num_threads(1); /* in case OPENBLAS_NUM_THREADS came from the user */
  /* Large buffers (slices, chunks, HDF5's) come and go per tensor; with glibc's adaptive mmap
   * threshold they end up on the brk heap and fragment it (measured: 300 MiB of heap for 140 MiB
   * live). A fixed threshold keeps them in mmap, returned to the system when freed. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  for (int id; !st && (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_LIST: list = 1; break;
    case OPT_SOLVE_ONLY: solve = 1; break;
    case OPT_SIGMA: pa.sigma_rel = arg; break;
    case OPT_HALF_LIFE: pa.half_life = arg; break;
    case OPT_AT: st = ec_parse_nimg("--at", arg, &pa.at); break;
    case OPT_SNAPSHOTS: la.snapshots = pa.snapshots = arg; break;
    case OPT_USE_PROFILES: pa.use_profiles = arg; break;
    case OPT_METHOD: st = parse_method(arg, &pa.solve.method); break;
    case OPT_NO_NORMALIZE: pa.solve.raw = 1; break;
    case OPT_REGULARIZE:
      if (!strcmp(arg, "auto"))
        pa.solve.tikhonov = PHEMA_TIKHONOV_AUTO;
      else if (!(st = ec_parse_f64("--regularize", arg, &pa.solve.tikhonov)) && pa.solve.tikhonov <= 0)
        st = ec_err(EC_EINVAL, "--regularize: LAMBDA must be positive (or 'auto')");
      break;
    case OPT_OUT: ra.out_dir = arg; break;
    case OPT_FORMAT:
      if (!strcmp(arg, "h5"))
        ra.format = RECON_H5;
      else if (!strcmp(arg, "safetensors"))
        ra.format = RECON_SAFETENSORS;
      else
        st = ec_err(EC_EINVAL, "--format: '%s' is not h5 or safetensors", arg);
      break;
    case OPT_DTYPE:
      if (!strcmp(arg, "float32"))
        ra.out_dtype = EC_F32;
      else if (!strcmp(arg, "float16"))
        ra.out_dtype = EC_F16;
      else
        st = ec_err(EC_EINVAL, "--dtype: '%s' is not float32 or float16", arg);
      break;
    case OPT_TENSOR_SIGMA:
      if (nrules == MAX_RULES)
        st = ec_err(EC_EINVAL, "--tensor-sigma: at most %d rules", MAX_RULES);
      else
        rules[nrules++] = arg;
      break;
    case OPT_MEM_LIMIT: st = ec_parse_size("--mem-limit", arg, &ra.mem_limit); break;
    case OPT_THREADS: {
      int64_t n;
      if (!(st = ec_parse_int_range("--threads", arg, 1, 4096, &n))) ra.threads = (int)n;
      break;
    }
    case OPT_SKIP_EXISTING: ra.skip_existing = 1; break;
    case OPT_FORCE: ra.force = 1; break;
    case OPT_ACCUMULATE:
      if (!strcmp(arg, "float32") || !strcmp(arg, "float64"))
        ra.accumulate_f64 = !strcmp(arg, "float64");
      else
        st = ec_err(EC_EINVAL, "--accumulate: '%s' is not float32 or float64", arg);
      break;
    case OPT_JSON: json = la.json = 1; break;
    case OPT_QUICK: la.quick = 1; break;
    case OPT_QUIET: la.quiet = 1; break;
    case OPT_VERSION: printf("posthoc-ema (edm2c) %s\n", EDM2C_VERSION); return 0;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    default: return 2;
    }
  }
  if (st) {
    fprintf(stderr, "posthoc-ema: error: %s\n", ec_errmsg());
    return ec_exit_code(st);
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (list + solve > 1) return ec_exit_code(ec_cli_usage(&cli, "--list and --solve-only exclude each other"));
  if (list) return cmd_list(&la, stdout, stderr);
  if (solve) return cmd_solve(&pa, json, stdout, stderr);
  if (ra.skip_existing && ra.force)
    return ec_exit_code(ec_cli_usage(&cli, "--skip-existing and --force exclude each other"));
  if (pa.sigma_rel || pa.half_life) {
    ra.plan = pa;
    ra.quiet = la.quiet;
    ra.rules = rules;
    ra.nrules = nrules;
    return cmd_reconstruct(&ra, json, stdout, stderr);
  }
  return ec_exit_code(ec_cli_usage(&cli, "nothing to do: give --sigma-rel LIST, --list or --solve-only"));
}
