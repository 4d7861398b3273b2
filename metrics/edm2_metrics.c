/* edm2-metrics: FID and FD_DINOv2 (docs/metrics.md). This file dispatches and holds `fd`, the
 * distance between two statistics files (HDF5, docs/formats.md, or pytorch-fid .npz); ref, calc
 * and features are in cmd_images.c, gen in cmd_gen.c.
 *
 *   edm2-metrics ref --data PATH --dest STATS.h5 [--metrics fid,fd_dinov2]
 *   edm2-metrics calc --images DIR|ZIP --ref STATS [--num N] [--seed S]
 *   edm2-metrics gen --net MODEL --ref STATS [--num N] [--guidance W --gnet MODEL]
 *   edm2-metrics features --images DIR|ZIP --metric fid|fd_dinov2 --out FEATS.h5
 *   edm2-metrics fd A B [--metric fid|fd_dinov2] [--json] */
#include <stdio.h>
#include <string.h>

#include "core/atomic.h"
#include "core/cli.h"
#include "edm2c_config.h"
#include "metrics/cmd_common.h"
#include "metrics/frechet.h"
#include "metrics/stats_io.h"
#include "nn/blas.h"

static void top_help(FILE *f) {
  fprintf(f,
          "Usage: " PROG " COMMAND [OPTIONS]\n"
          "\n"
          "FID and FD_DINOv2 as EDM2 computes them (docs/metrics.md). Commands:\n"
          "  ref       reference statistics of a dataset's images (--data PATH --dest STATS.h5)\n"
          "  calc      score a folder or zip of images (--images DIR|ZIP --ref STATS)\n"
          "  gen       generate images with a model and score them (--net MODEL --ref STATS)\n"
          "  features  the raw features of images (--images DIR|ZIP --metric M --out FEATS.h5)\n"
          "  fd A B    the Frechet distance between two statistics files (HDF5 or .npz)\n"
          "\n"
          "'" PROG " COMMAND --help' describes a command. The detectors need their weights,\n"
          "converted once with tools/convert-weights (docs/metrics.md, \"Converting the weights\"). ref, calc\n"
          "and gen run under mpirun, sharing the images among the processes.\n"
          "\n"
          "Options:\n"
          "  --help      print this help and exit\n"
          "  --version   print the version and exit\n");
}

/* ---- fd ---------------------------------------------------------------------------------------- */

enum { OPT_METRIC, OPT_JSON, OPT_HELP };

static const ec_cli_opt fd_options[] = {
    {"metric", 1, OPT_METRIC, "fid|fd_dinov2",
     "compare only this metric's statistics (needed when a .npz, which holds one unnamed set, is "
     "compared with a file holding both)"},
    {"json", 0, OPT_JSON, NULL, "print {\"fd\": value}, or {\"fid\": …, \"fd_dinov2\": …}"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static ec_cli fd_cli = {
    .prog = PROG " fd",
    .synopsis = "A B [--metric fid|fd_dinov2] [--json]",
    .description =
        "Prints the Frechet distance between the statistics in A and B, computed in float64 "
        "through symmetric eigendecompositions (docs/metrics.md): 'fd = VALUE', or one line per "
        "metric ('fid = …', 'fd_dinov2 = …') when both files hold both and --metric is not given. "
        "A and B are edm2c statistics files (HDF5 with /fid and/or /fd_dinov2) or .npz files with "
        "mu and sigma (pytorch-fid, clean-fid, TTUR, EDM1).",
    .opts = fd_options,
};

/* The statistics of metric m in f: its group, or the unnamed set of a .npz. */
static edm2_moments *pick(edm2_stats_file *f, edm2_metric m) {
  if (f->is_npz) return &f->unnamed;
  return f->metric[m].dim ? &f->metric[m] : NULL;
}

static const char *present(const edm2_stats_file *f) {
  if (f->metric[0].dim && f->metric[1].dim) return "fid and fd_dinov2";
  return f->metric[0].dim ? "only fid" : "only fd_dinov2";
}

static ec_status cmd_fd(int argc, char **argv) {
  const char *arg;
  int json = 0, have_metric = 0;
  edm2_metric metric = EDM2_METRIC_FID;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&fd_cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_METRIC:
      if ((st = edm2_metric_parse(arg, &metric))) return ec_cli_usage(&fd_cli, "--metric: %s", ec_errmsg());
      have_metric = 1;
      break;
    case OPT_JSON: json = 1; break;
    case OPT_HELP: ec_cli_help(&fd_cli, stdout); return EC_OK;
    default: return EC_EUSAGE;
    }
  }
  int k = ec_cli_optind(&fd_cli);
  if (argc - k != 2) return ec_cli_usage(&fd_cli, "expected two statistics files A and B, got %d", argc - k);
  const char *pa = argv[k], *pb = argv[k + 1];
  edm2_stats_file fa = {0}, fb = {0};
  if ((st = edm2_stats_read(pa, &fa))) return st;
  if ((st = edm2_stats_read(pb, &fb))) {
    edm2_stats_file_free(&fa);
    return st;
  }

  /* Which metrics to compare. */
  int todo[EDM2_METRIC_COUNT] = {0}, ntodo = 0, named = 0;
  if (have_metric) {
    todo[metric] = 1;
    ntodo = 1;
    const char *p[2] = {pa, pb};
    edm2_stats_file *f[2] = {&fa, &fb};
    for (int i = 0; i < 2 && !st; i++)
      if (!pick(f[i], metric))
        st = ec_err(EC_EINVAL, "%s holds no %s statistics (it has %s)", p[i], edm2_metric_name(metric),
                    present(f[i]));
  } else if (fa.is_npz && fb.is_npz) {
    todo[EDM2_METRIC_FID] = 1; /* pick() returns the unnamed sets */
    ntodo = 1;
  } else if (fa.is_npz || fb.is_npz) {
    edm2_stats_file *h = fa.is_npz ? &fb : &fa;
    const char *ph = fa.is_npz ? pb : pa, *pn = fa.is_npz ? pa : pb;
    if (h->metric[0].dim && h->metric[1].dim)
      st = ec_err(EC_EINVAL, "%s holds one unnamed set of statistics and %s holds both fid and fd_dinov2: "
                  "say which to compare with --metric", pn, ph);
    else
      todo[h->metric[0].dim ? 0 : 1] = 1, ntodo = 1;
  } else {
    for (int m = 0; m < EDM2_METRIC_COUNT; m++)
      if (fa.metric[m].dim && fb.metric[m].dim) todo[m] = 1, ntodo++;
    if (!ntodo)
      st = ec_err(EC_EINVAL, "mixed metrics: %s holds %s statistics, %s holds %s statistics; nothing to compare", pa,
                  present(&fa), pb, present(&fb));
    named = ntodo > 1;
  }

  double fd[EDM2_METRIC_COUNT] = {0};
  for (int m = 0; m < EDM2_METRIC_COUNT && !st; m++) {
    if (!todo[m]) continue;
    edm2_moments *a = pick(&fa, (edm2_metric)m), *b = pick(&fb, (edm2_metric)m);
    if (a->dim != b->dim) {
      st = ec_err(EC_EINVAL, "dimension mismatch: %s%s%s has %lld-dimensional statistics but %s%s%s has %lld "
                  "(a stats file of the wrong dimension, or of another metric?)",
                  pa, fa.is_npz ? "" : ":/", fa.is_npz ? "" : edm2_metric_name((edm2_metric)m), (long long)a->dim,
                  pb, fb.is_npz ? "" : ":/", fb.is_npz ? "" : edm2_metric_name((edm2_metric)m), (long long)b->dim);
      break;
    }
    edm2_fd_result r;
    if ((st = edm2_frechet(a->dim, a->mu, a->sigma, b->mu, b->sigma, &r))) break;
    fd[m] = r.fd;
  }
  if (!st) {
    if (json) printf("{");
    int first = 1;
    for (int m = 0; m < EDM2_METRIC_COUNT; m++) {
      if (!todo[m]) continue;
      const char *name = named ? edm2_metric_name((edm2_metric)m) : "fd";
      if (json) printf("%s\"%s\": %.17g", first ? "" : ", ", name, fd[m]);
      else printf("%s = %.10g\n", name, fd[m]);
      first = 0;
    }
    if (json) printf("}\n");
  }
  edm2_stats_file_free(&fa);
  edm2_stats_file_free(&fb);
  return st;
}

int main(int argc, char **argv) {
  ec_atomic_install_signal_cleanup();
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  if (argc < 2) {
    fprintf(stderr, PROG ": missing command (known: ref, calc, gen, features, fd)\nTry '" PROG " --help'.\n");
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    top_help(stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf(PROG " %s\n", EDM2C_VERSION);
    return 0;
  }
  ec_status (*run)(int, char **, const edm2_dist *) = NULL;
  if (!strcmp(cmd, "ref")) run = cmd_ref;
  else if (!strcmp(cmd, "calc")) run = cmd_calc;
  else if (!strcmp(cmd, "gen")) run = cmd_gen;
  else if (!strcmp(cmd, "features")) run = cmd_features;
  else if (strcmp(cmd, "fd")) {
    fprintf(stderr, PROG ": unknown command '%s' (known: ref, calc, gen, features, fd)\nTry '" PROG " --help'.\n", cmd);
    return 2;
  }
  ec_status st;
  if (!run) {
    st = cmd_fd(argc - 1, argv + 1);
    if (st && st != EC_EUSAGE) fprintf(stderr, PROG ": %s\n", ec_errmsg());
    return ec_exit_code(st);
  }
  /* Under mpirun every process scores its share (trainer/dist.h); after nn_blas_setup's
   * re-execution, which must come before MPI starts. Every process ends with the same status
   * and message; rank 0 prints it, before the finalize barrier (mpirun may stop forwarding
   * output once a process exits non-zero). */
  edm2_dist dist;
  st = edm2_dist_init(&dist, &argc, &argv);
  if (!st) st = run(argc - 1, argv + 1, &dist);
  if (st && st != EC_EUSAGE && dist.rank == 0) {
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    fflush(stderr);
  }
  edm2_dist_finalize(&dist);
  return ec_exit_code(st);
}
