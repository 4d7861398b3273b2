/* edm2-metrics ref, calc and features: statistics or features of the images of a dataset, a
 * folder or a zip (the trainer's dataset formats, trainer/dataset.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/h5io.h"
#include "core/progress.h"
#include "edm2c_config.h"
#include "metrics/cmd_common.h"
#include "nn/blas.h"
#include "trainer/dataset.h"
#include "trainer/sampler.h"

enum {
  OPT_DATA, OPT_IMAGES, OPT_DEST, OPT_REF, OPT_NUM, OPT_SEED, OPT_METRICS, OPT_METRIC, OPT_OUT, OPT_WEIGHTS,
  OPT_THREADS, OPT_JSON, OPT_QUIET, OPT_FORCE, OPT_HELP
};

#define COMMON_OPTS                                                                                          \
  {"weights-dir", 1, OPT_WEIGHTS, "DIR",                                                                     \
   "the converted network weights (default $EDM2C_WEIGHTS_DIR, else $XDG_DATA_HOME/edm2c, else "              \
   "~/.local/share/edm2c; tools/convert-weights makes them)"},                                               \
      {"threads", 1, OPT_THREADS, "N", "threads, per process under mpirun (default: all online CPUs)"},     \
      {"quiet", 0, OPT_QUIET, NULL, "no progress bar"},                                                      \
      {"help", 0, OPT_HELP, NULL, "print this help and exit"}

static const ec_cli_opt ref_opts[] = {
    {"data", 1, OPT_DATA, "PATH", "the dataset: a PNG folder or zip, an IDX directory, or 'fashion-mnist'"},
    {"dest", 1, OPT_DEST, "STATS.h5", "the statistics file to write (refused if it exists, unless --force)"},
    {"metrics", 1, OPT_METRICS, "LIST", "fid, fd_dinov2 or both (default fid,fd_dinov2)"},
    {"num", 1, OPT_NUM, "N", "use N images chosen at random by --seed, as EDM2 does (default: all)"},
    {"seed", 1, OPT_SEED, "S", "the choice of --num images (default 0)"},
    {"force", 0, OPT_FORCE, NULL, "replace an existing --dest"},
    {"json", 0, OPT_JSON, NULL, "print a JSON summary line"},
    COMMON_OPTS,
    {0},
};

static ec_cli ref_cli = {
    .prog = PROG " ref",
    .synopsis = "--data PATH --dest STATS.h5 [--metrics fid,fd_dinov2] [--num N --seed S]",
    .description =
        "Computes the reference statistics (feature mean and covariance, float64) of a dataset's images and "
        "writes them to an edm2c statistics file (docs/formats.md). Grayscale images are repeated to RGB. Under "
        "mpirun the images are shared among the processes and their statistics merged exactly.",
    .opts = ref_opts,
};

static const ec_cli_opt calc_opts[] = {
    {"images", 1, OPT_IMAGES, "DIR|ZIP", "the images to score (PNG, sorted by path)"},
    {"ref", 1, OPT_REF, "STATS", "reference statistics: edm2c HDF5 or a .npz with mu and sigma"},
    {"metrics", 1, OPT_METRICS, "LIST", "fid, fd_dinov2 or both (default fid,fd_dinov2)"},
    {"num", 1, OPT_NUM, "N", "score N images chosen at random by --seed, as EDM2 does (default: all)"},
    {"seed", 1, OPT_SEED, "S", "the choice of --num images (default 0)"},
    {"dest", 1, OPT_DEST, "STATS.h5", "also write the images' statistics"},
    {"force", 0, OPT_FORCE, NULL, "replace an existing --dest"},
    {"json", 0, OPT_JSON, NULL, "print {\"fid\": …, \"fd_dinov2\": …, \"num_images\": N}"},
    COMMON_OPTS,
    {0},
};

static ec_cli calc_cli = {
    .prog = PROG " calc",
    .synopsis = "--images DIR|ZIP --ref STATS [--metrics fid,fd_dinov2] [--num N --seed S] [--json]",
    .description = "Scores a folder or zip of images against reference statistics: prints 'fid = …' and "
                   "'fd_dinov2 = …'. Under mpirun the images are shared among the processes.",
    .opts = calc_opts,
};

static const ec_cli_opt feat_opts[] = {
    {"images", 1, OPT_IMAGES, "DIR|ZIP", "the images (PNG, sorted by path), or any dataset ref takes"},
    {"metric", 1, OPT_METRIC, "fid|fd_dinov2", "whose network's features"},
    {"out", 1, OPT_OUT, "FEATS.h5", "the file to write: dataset features [N, D] float32, rows in file order"},
    {"force", 0, OPT_FORCE, NULL, "replace an existing --out"},
    COMMON_OPTS,
    {0},
};

static ec_cli feat_cli = {
    .prog = PROG " features",
    .synopsis = "--images DIR|ZIP --metric fid|fd_dinov2 --out FEATS.h5",
    .description = "Writes the raw features of every image (for checks and studies), one row per image in "
                   "sorted file order. One process.",
    .opts = feat_opts,
};

typedef struct {
  metrics_common c;
  const char *data, *dest, *ref, *out;
  int64_t num, seed;
  int have_num;
  edm2_metric metric;
  int have_metric;
} args;

/* Parses the options of any of the three commands. */
static ec_status parse(ec_cli *cli, int argc, char **argv, args *a, int *help) {
  metrics_common_default(&a->c);
  const char *arg;
  ec_status st = EC_OK;
  *help = 0;
  for (int id; (id = ec_cli_next(cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_DATA: case OPT_IMAGES: a->data = arg; break;
    case OPT_DEST: a->dest = arg; break;
    case OPT_REF: a->ref = arg; break;
    case OPT_OUT: a->out = arg; break;
    case OPT_NUM: st = ec_parse_int_range("--num", arg, 1, INT64_MAX, &a->num), a->have_num = 1; break;
    case OPT_SEED: st = ec_parse_int_range("--seed", arg, 0, INT64_MAX, &a->seed); break;
    case OPT_METRICS: st = edm2_metrics_list_parse("--metrics", arg, a->c.want); break;
    case OPT_METRIC:
      if ((st = edm2_metric_parse(arg, &a->metric))) st = ec_err_context(EC_EINVAL, "--metric");
      a->have_metric = 1;
      break;
    case OPT_WEIGHTS: a->c.weights_dir = arg; break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &a->c.threads); break;
    case OPT_JSON: a->c.json = 1; break;
    case OPT_QUIET: a->c.quiet = 1; break;
    case OPT_FORCE: a->c.force = 1; break;
    case OPT_HELP: ec_cli_help(cli, stdout); *help = 1; return EC_OK;
    default: return EC_EUSAGE;
    }
    if (st) return st;
  }
  if (ec_cli_optind(cli) < argc) return ec_cli_usage(cli, "unexpected argument '%s'", argv[ec_cli_optind(cli)]);
  nn_blas_set_threads((int)a->c.threads);
  return EC_OK;
}

static int cmp_i64(const void *p, const void *q) {
  int64_t a = *(const int64_t *)p, b = *(const int64_t *)q;
  return (a > b) - (a < b);
}

/* The items to use, in order: all, or EDM2's random choice of num of them (numpy
 * RandomState(seed % 2^31).shuffle of 0 … n−1, the first num, sorted). */
static ec_status choose(const char *path, int64_t n, const args *a, int64_t **idx, int64_t *count) {
  int64_t k = a->have_num ? a->num : n;
  if (k > n)
    return ec_err(EC_EINVAL, "%s holds %lld images, --num asks for %lld", path, (long long)n, (long long)a->num);
  if (k < 2)
    return ec_err(EC_EINVAL, "%s holds %lld image%s: statistics need at least 2", path, (long long)k, k == 1 ? "" : "s");
  int64_t *x = ec_mallocarray((size_t)n, sizeof *x);
  if (!x) return ec_err(EC_ENOMEM, "out of memory for %lld image indices", (long long)n);
  for (int64_t i = 0; i < n; i++) x[i] = i;
  if (k < n) {
    edm2_np_shuffle((uint32_t)(a->seed % ((int64_t)1 << 31)), x, n);
    qsort(x, (size_t)k, sizeof *x, cmp_i64);
  }
  *idx = x;
  *count = k;
  return EC_OK;
}

/* Opens an image dataset (latents are refused: the detectors need pixels). */
static ec_status open_images(const char *path, edm2_dataset **ds, const edm2_dataset_info **info) {
  ec_status st = edm2_dataset_open(ds, path, &(edm2_dataset_opts){.use_labels = 0});
  if (st) return st;
  *info = edm2_dataset_get_info(*ds);
  if ((*info)->type != EDM2_ITEM_U8) {
    edm2_dataset_close(ds);
    return ec_err(EC_EINVAL, "%s holds latents (float32 .npy), not images: the metrics need the images the "
                  "latents were encoded from", path);
  }
  if ((*info)->channels != 1 && (*info)->channels != 3) {
    int c = (*info)->channels;
    edm2_dataset_close(ds);
    return ec_err(EC_EINVAL, "%s: images with %d channels; the metrics take grayscale or RGB", path, c);
  }
  return EC_OK;
}

/* This process's share (positions rank, rank + K, … of idx) into the scorer; every process runs
 * the same number of rounds and they agree on the status after each, so that one failure (a
 * corrupt PNG, an image of another size) stops all with its message. */
static ec_status score_items(edm2_dataset *ds, const edm2_dataset_info *in, const int64_t *idx, int64_t count,
                             edm2_scorer *s, const args *a, const edm2_dist *d) {
  const int K = d->world, r = d->rank;
  uint8_t *img = ec_malloc(in->item_bytes);
  ec_status st = img ? EC_OK : ec_err(EC_ENOMEM, "out of memory");
  int64_t rounds = (count + K - 1) / K;
  ec_progress bar;
  ec_progress_begin(&bar, "images", count, 0, a->c.quiet || r != 0);
  char what[4200];
  for (int64_t k = 0; k < rounds && !st; k++) {
    int64_t pos = k * K + r;
    if (pos < count) {
      st = edm2_dataset_read(ds, idx[pos], img, NULL);
      snprintf(what, sizeof what, "%s item %lld", in->path, (long long)idx[pos]);
      if (!st) st = edm2_scorer_add(s, img, 1, in->channels, in->height, in->width, what);
    }
    st = edm2_dist_agree(d, st);
    ec_progress_update(&bar, (k + 1) * K < count ? (k + 1) * K : count);
  }
  ec_progress_end(&bar);
  free(img);
  return st;
}

/* Reads the images of a->data and returns their statistics in *got (all ranks). */
static ec_status stats_of_images(const args *a, const edm2_dist *d, edm2_stats_file *got) {
  edm2_dataset *ds = NULL;
  const edm2_dataset_info *in = NULL;
  int64_t *idx = NULL, count = 0;
  edm2_scorer s;
  int have_s = 0;
  ec_status st = open_images(a->data, &ds, &in);
  if (!st) st = choose(a->data, in->n, a, &idx, &count);
  if (!st && !(st = edm2_scorer_init(&s, a->c.want, a->c.weights_dir))) have_s = 1;
  st = edm2_dist_agree(d, st);
  if (!st) st = score_items(ds, in, idx, count, &s, a, d);
  if (!st) st = edm2_scorer_reduce(&s, d);
  if (!st) st = edm2_scorer_result(&s, got);
  if (have_s) edm2_scorer_free(&s);
  ec_freep(&idx);
  if (ds) edm2_dataset_close(&ds);
  return st;
}

/* Writes stats to dest on rank 0 (atomic; refused if it exists unless --force). */
static ec_status write_stats(const args *a, const edm2_dist *d, const edm2_stats_file *f) {
  ec_status st = EC_OK;
  if (d->rank == 0) st = edm2_stats_write_h5(a->dest, f, a->c.force ? 0 : EC_ATOMIC_NOCLOBBER);
  return edm2_dist_bcast_status(d, &st, 0);
}

/* An output that exists is refused before the work, not after it. */
static ec_status check_free(const char *path, int force) {
  if (!force && access(path, F_OK) == 0)
    return ec_err(EC_EEXIST, "%s exists; not overwriting it (--force replaces it)", path);
  return EC_OK;
}

ec_status cmd_ref(int argc, char **argv, const edm2_dist *d) {
  args a = {0};
  int help;
  ec_status st = parse(&ref_cli, argc, argv, &a, &help);
  if (st || help) return st;
  if (!a.data) return ec_cli_usage(&ref_cli, "--data PATH is required");
  if (!a.dest) return ec_cli_usage(&ref_cli, "--dest STATS.h5 is required");
  if ((st = check_free(a.dest, a.c.force))) return st;
  edm2_stats_file got;
  if ((st = stats_of_images(&a, d, &got))) return st;
  st = write_stats(&a, d, &got);
  if (!st && d->rank == 0) {
    if (a.c.json)
      printf("{\"dest\": \"%s\", \"num_images\": %lld, \"fid\": %s, \"fd_dinov2\": %s}\n", a.dest,
             (long long)got.num_images, a.c.want[0] ? "true" : "false", a.c.want[1] ? "true" : "false");
    else if (!a.c.quiet)
      printf("%s: statistics of %lld images (%s%s%s)\n", a.dest, (long long)got.num_images, a.c.want[0] ? "fid" : "",
             a.c.want[0] && a.c.want[1] ? ", " : "", a.c.want[1] ? "fd_dinov2" : "");
  }
  edm2_stats_file_free(&got);
  return st;
}

ec_status cmd_calc(int argc, char **argv, const edm2_dist *d) {
  args a = {0};
  int help;
  ec_status st = parse(&calc_cli, argc, argv, &a, &help);
  if (st || help) return st;
  if (!a.data) return ec_cli_usage(&calc_cli, "--images DIR|ZIP is required");
  if (!a.ref) return ec_cli_usage(&calc_cli, "--ref STATS is required");
  if (a.dest && (st = check_free(a.dest, a.c.force))) return st;
  edm2_stats_file ref, got;
  edm2_moments *refm[EDM2_METRIC_COUNT];
  if ((st = metrics_ref_load(a.ref, a.c.want, &ref, refm))) return st;
  if (!(st = stats_of_images(&a, d, &got))) {
    st = metrics_report(&got, refm, a.c.want, &a.c, d);
    if (!st && a.dest) st = write_stats(&a, d, &got);
    edm2_stats_file_free(&got);
  }
  edm2_stats_file_free(&ref);
  return st;
}

ec_status cmd_features(int argc, char **argv, const edm2_dist *d) {
  args a = {0};
  int help;
  ec_status st = parse(&feat_cli, argc, argv, &a, &help);
  if (st || help) return st;
  if (!a.data) return ec_cli_usage(&feat_cli, "--images DIR|ZIP is required");
  if (!a.have_metric) return ec_cli_usage(&feat_cli, "--metric fid|fd_dinov2 is required");
  if (!a.out) return ec_cli_usage(&feat_cli, "--out FEATS.h5 is required");
  if (d->world > 1)
    return ec_err(EC_EINVAL, "features runs as one process (its rows are written in file order); start it without mpirun");
  if ((st = check_free(a.out, a.c.force))) return st;
  edm2_dataset *ds = NULL;
  const edm2_dataset_info *in = NULL;
  edm2_detector *det = NULL;
  uint8_t *img = NULL;
  float *feat = NULL;
  ec_atomic at = {0};
  hid_t file = H5I_INVALID_HID;
  h5io_dset out = {.id = H5I_INVALID_HID};
  if ((st = open_images(a.data, &ds, &in))) return st;
  const int64_t n = in->n, D = edm2_metric_dim(a.metric);
  if (!(st = edm2_detector_open(&det, a.metric, a.c.weights_dir))) {
    img = ec_malloc(in->item_bytes);
    feat = ec_mallocarray((size_t)D, sizeof *feat);
    if (!img || !feat) st = ec_err(EC_ENOMEM, "out of memory");
  }
  if (!st) st = ec_atomic_begin(&at, a.out, a.c.force ? 0 : EC_ATOMIC_NOCLOBBER);
  if (!st) st = h5io_file_create(at.tmp_path, &file);
  if (!st && !(st = h5io_attr_write_str(file, "format", "edm2c-features")) &&
      !(st = h5io_attr_write_i64(file, "format_version", 1)) &&
      !(st = h5io_attr_write_str(file, "metric", edm2_metric_name(a.metric))) &&
      !(st = h5io_attr_write_str(file, "source", in->path)) && !(st = h5io_attr_write_i64(file, "num_images", n)))
    st = h5io_dset_create(file, "features", &(ec_shape){.ndim = 2, .dims = {n, D}}, EC_F32, EC_F32, 0, &out);
  ec_progress bar;
  ec_progress_begin(&bar, "images", n, 0, a.c.quiet);
  for (int64_t i = 0; i < n && !st; i++) {
    if (!(st = edm2_dataset_read(ds, i, img, NULL)))
      st = edm2_detector_features(det, img, 1, in->channels, in->height, in->width, feat);
    for (int64_t j = 0; j < D && !st; j++)
      if (!(feat[j] - feat[j] == 0))
        st = ec_err(EC_EINVAL, "%s features of %s item %lld: feature %lld is not finite (nothing is written)",
                    edm2_metric_name(a.metric), in->path, (long long)i, (long long)j);
    if (!st) st = h5io_dset_write(&out, EC_F32, feat, i * D, D);
    ec_progress_update(&bar, i + 1);
  }
  ec_progress_end(&bar);
  h5io_dset_close(&out);
  if (file != H5I_INVALID_HID) {
    ec_status c = h5io_file_close(&file);
    if (!st) st = c;
  }
  if (!st) st = ec_atomic_commit(&at);
  else ec_atomic_abort(&at);
  if (!st && !a.c.quiet) printf("%s: %lld x %lld %s features\n", a.out, (long long)n, (long long)D, edm2_metric_name(a.metric));
  free(img);
  free(feat);
  edm2_detector_free(det);
  edm2_dataset_close(&ds);
  return st;
}
