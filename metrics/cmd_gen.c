/* edm2-metrics gen: generates images with the EDM2 sampler (trainer/generate.h) and scores them
 * in the same process, without writing them: each batch goes from the sampler through EDM2's
 * uint8 conversion (trainer/png_out.h) straight into the detectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "metrics/cmd_common.h"
#include "nn/blas.h"
#include "metrics/genscore.h"
#include "trainer/generate.h"
#include "trainer/netload.h"

enum {
  OPT_NET, OPT_PROFILE, OPT_GNET, OPT_GPROFILE, OPT_GUIDANCE, OPT_REF, OPT_NUM, OPT_SEED, OPT_STEPS, OPT_BATCH,
  OPT_METRICS, OPT_WEIGHTS, OPT_THREADS, OPT_JSON, OPT_QUIET, OPT_HELP
};

static const ec_cli_opt opts[] = {
    {"net", 1, OPT_NET, "MODEL", "the network: a model file (posthoc-ema's output), a snapshot (with --profile) or a checkpoint"},
    {"profile", 1, OPT_PROFILE, "SIGMA_REL", "the EMA profile of a snapshot --net"},
    {"ref", 1, OPT_REF, "STATS", "reference statistics: edm2c HDF5 (edm2-metrics ref) or a .npz with mu and sigma"},
    {"num", 1, OPT_NUM, "N", "images to generate and score (default 50000, EDM2's protocol)"},
    {"seed", 1, OPT_SEED, "S", "the first seed: images use seeds S … S+N−1 (default 0)"},
    {"guidance", 1, OPT_GUIDANCE, "W", "guidance strength (default 1: none)"},
    {"gnet", 1, OPT_GNET, "MODEL", "the guiding network (needed when --guidance is not 1)"},
    {"gprofile", 1, OPT_GPROFILE, "SIGMA_REL", "the EMA profile of a snapshot --gnet"},
    {"steps", 1, OPT_STEPS, "N", "sampling steps (default 32)"},
    {"batch", 1, OPT_BATCH, "N", "images per sampler batch (default 32)"},
    {"metrics", 1, OPT_METRICS, "LIST", "fid, fd_dinov2 or both (default fid,fd_dinov2)"},
    {"weights-dir", 1, OPT_WEIGHTS, "DIR", "the converted detector weights (as for calc)"},
    {"threads", 1, OPT_THREADS, "N", "threads, per process under mpirun (default: all online CPUs)"},
    {"json", 0, OPT_JSON, NULL, "print {\"fid\": …, \"fd_dinov2\": …, \"num_images\": N}"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar or warnings"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static ec_cli cli = {
    .prog = PROG " gen",
    .synopsis = "--net MODEL --ref STATS [--num N] [--seed S] [--guidance W --gnet MODEL] [--metrics LIST]",
    .description = "Generates N images with the EDM2 sampler (as edm2-generate makes them: seed s gives the same "
                   "image) and scores them against the reference statistics without writing them. Under mpirun "
                   "the seeds are shared among the processes.",
    .opts = opts,
};

typedef struct {
  metrics_common c;
  const char *net, *profile, *gnet, *gprofile, *ref;
  int64_t num, seed, batch;
  edm2_gen_opts g;
} args;


ec_status cmd_gen(int argc, char **argv, const edm2_dist *d) {
  args a = {.num = 50000, .batch = 32};
  metrics_common_default(&a.c);
  edm2_gen_opts_default(&a.g);
  const char *arg;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    int64_t v = 0;
    switch (id) {
    case OPT_NET: a.net = arg; break;
    case OPT_PROFILE: a.profile = arg; break;
    case OPT_GNET: a.gnet = arg; break;
    case OPT_GPROFILE: a.gprofile = arg; break;
    case OPT_REF: a.ref = arg; break;
    case OPT_GUIDANCE: st = ec_parse_f64("--guidance", arg, &a.g.guidance); break;
    case OPT_NUM: st = ec_parse_int_range("--num", arg, 1, (int64_t)1 << 40, &a.num); break;
    case OPT_SEED: st = ec_parse_int_range("--seed", arg, 0, (int64_t)1 << 52, &a.seed); break;
    case OPT_STEPS: st = ec_parse_int_range("--steps", arg, 1, 1 << 20, &v), a.g.steps = (int)v; break;
    case OPT_BATCH: st = ec_parse_int_range("--batch", arg, 1, 1 << 20, &a.batch); break;
    case OPT_METRICS: st = edm2_metrics_list_parse("--metrics", arg, a.c.want); break;
    case OPT_WEIGHTS: a.c.weights_dir = arg; break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &a.c.threads); break;
    case OPT_JSON: a.c.json = 1; break;
    case OPT_QUIET: a.c.quiet = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return EC_OK;
    default: return EC_EUSAGE;
    }
    if (st) return st;
  }
  if (ec_cli_optind(&cli) < argc) return ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]);
  if (!a.net) return ec_cli_usage(&cli, "--net MODEL is required");
  if (!a.ref) return ec_cli_usage(&cli, "--ref STATS is required");
  if (a.g.guidance != 1 && !a.gnet) return ec_cli_usage(&cli, "--guidance %g needs --gnet MODEL", a.g.guidance);
  if (a.num < 2) return ec_err(EC_EINVAL, "--num %lld: statistics need at least 2 images", (long long)a.num);
  if ((st = edm2_gen_opts_check(&a.g))) return st;
  nn_blas_set_threads((int)a.c.threads);

  /* Everything that can fail cheaply first: the reference, the weights, the networks. */
  edm2_stats_file ref, got;
  edm2_moments *refm[EDM2_METRIC_COUNT];
  if ((st = metrics_ref_load(a.ref, a.c.want, &ref, refm))) return st;
  edm2_scorer s;
  edm2_net net, gnet;
  int have_s = 0, have_net = 0, have_gnet = 0;
  edm2_load_opts lo = {.profile = a.profile, .quiet = a.c.quiet || d->rank != 0};
  if (!(st = edm2_net_load(&net, a.net, &lo, NULL))) have_net = 1;
  if (!st && a.g.guidance != 1) {
    lo.profile = a.gprofile;
    if (!(st = edm2_net_load(&gnet, a.gnet, &lo, NULL))) have_gnet = 1;
    if (!st && (gnet.arch.cfg.img_channels != net.arch.cfg.img_channels ||
                gnet.arch.cfg.img_resolution != net.arch.cfg.img_resolution))
      st = ec_err(EC_EINVAL, "--gnet %s makes images of another shape than --net %s", a.gnet, a.net);
  }
  if (!st && net.arch.cfg.img_channels != 1 && net.arch.cfg.img_channels != 3)
    st = ec_err(EC_EINVAL, "%s makes %d-channel images (a latent model?): the metrics need decoded RGB or "
                "grayscale images", a.net, net.arch.cfg.img_channels);
  if (!st && !(st = edm2_scorer_init(&s, a.c.want, a.c.weights_dir))) have_s = 1;
  st = edm2_dist_agree(d, st);
  edm2_genscore_opts go = {.g = a.g, .num = a.num, .seed = a.seed, .batch = a.batch, .threads = a.c.threads,
                           .quiet = a.c.quiet};
  if (!st) st = edm2_genscore(&go, d, &net, have_gnet ? &gnet : NULL, &s);
  if (!st) st = edm2_scorer_reduce(&s, d);
  if (!st && !(st = edm2_scorer_result(&s, &got))) {
    st = metrics_report(&got, refm, a.c.want, &a.c, d);
    edm2_stats_file_free(&got);
  }
  if (have_s) edm2_scorer_free(&s);
  if (have_net) edm2_net_free(&net);
  if (have_gnet) edm2_net_free(&gnet);
  edm2_stats_file_free(&ref);
  return st;
}
