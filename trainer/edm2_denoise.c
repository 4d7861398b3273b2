/* edm2-denoise: evaluates the EDM2 denoiser D(x; σ, c) and its log-variance u(σ) on inputs read
 * from an HDF5 file, in eval mode (the network as stored: no forced weight normalisation, no
 * dropout).
 *
 *   edm2-denoise --net MODEL [--profile 0.100] --input IN.h5 --output OUT.h5 [--batch 8] [--threads N]
 *
 * IN holds x [N, C, H, W] float32 (the noisy images), sigma [N] and optionally labels [N, L]
 * (absent: all-zero labels, as the reference does when none are given). OUT gets D [N, C, H, W]
 * and logvar [N] (float32), a copy of sigma, and attributes naming the network. Used to check the
 * network against the reference and for loss-versus-σ studies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "nn/blas.h"
#include "core/h5io.h"
#include "core/pool.h"
#include "core/progress.h"
#include "edm2c_config.h"
#include "trainer/netload.h"
#include "trainer/pass.h"

#define DENOISE_FORMAT "edm2c-denoised"

enum { OPT_NET, OPT_PROFILE, OPT_INPUT, OPT_OUTPUT, OPT_BATCH, OPT_THREADS, OPT_FORCE, OPT_QUIET, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"net", 1, OPT_NET, "MODEL",
     "the network: a model file (posthoc-ema's output), a snapshot (with --profile) or a "
     "checkpoint; its preset and config attributes say which network it is"},
    {"profile", 1, OPT_PROFILE, "SIGMA_REL",
     "the EMA profile of a snapshot, e.g. 0.100 (needed when the snapshot holds several)"},
    {"input", 1, OPT_INPUT, "IN.h5",
     "datasets x [N, C, H, W] (float), sigma [N] (each > 0) and optionally labels [N, L] "
     "(one-hot or any weights; absent = zeros)"},
    {"output", 1, OPT_OUTPUT, "OUT.h5",
     "written atomically: D [N, C, H, W] and logvar [N] (float32), sigma [N]; an existing file "
     "is kept unless --force"},
    {"batch", 1, OPT_BATCH, "N", "images per forward pass (default 8; memory grows with it)"},
    {"threads", 1, OPT_THREADS, "N", "threads (default: all online CPUs)"},
    {"force", 0, OPT_FORCE, NULL, "replace OUT.h5 if it exists"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar and no warnings"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = "edm2-denoise",
    .synopsis = "--net MODEL [--profile SIGMA_REL] --input IN.h5 --output OUT.h5 [--batch N] [--threads N]",
    .description = "Evaluates the EDM2 denoiser D(x; sigma, labels) and the uncertainty head's "
                   "log-variance on the images of IN.h5, in eval mode, and writes them to OUT.h5.",
    .opts = options,
};

typedef struct {
  const char *net, *profile, *input, *output;
  int64_t batch, threads;
  int force, quiet;
} args;

typedef struct {
  int n;
  float *x, *sigma, *labels;
} inputs;

static void inputs_free(inputs *in) {
  ec_freep(&in->x);
  ec_freep(&in->sigma);
  ec_freep(&in->labels);
}

static const char *shape_str(const ec_shape *s, char *buf, size_t size) {
  size_t k = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < s->ndim && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
  if (k < size) snprintf(buf + k, size - k, "]");
  return buf;
}

/* Reads and checks IN against the network: shapes, σ > 0, finite values. */
static ec_status read_inputs(const char *path, const edm2_net *net, int quiet, inputs *in) {
  const edm2_netcfg *c = &net->arch.cfg;
  hid_t f = H5I_INVALID_HID;
  h5io_dset d = {.id = H5I_INVALID_HID};
  char got[128];
  ec_status st = h5io_file_open(path, &f);
  if (st) return st;
  memset(in, 0, sizeof *in);
  if (!h5io_is_dataset(f, "x")) {
    st = ec_err(EC_EFORMAT, "%s: no dataset 'x' (the noisy images, [N, %d, %d, %d])", path, c->img_channels,
                c->img_resolution, c->img_resolution);
    goto done;
  }
  if ((st = h5io_dset_open(f, "x", &d))) goto done;
  if (d.shape.ndim != 4 || d.shape.dims[0] < 1 || d.shape.dims[1] != c->img_channels ||
      d.shape.dims[2] != c->img_resolution || d.shape.dims[3] != c->img_resolution) {
    st = ec_err(EC_EINVAL, "%s: x has shape %s; the network takes [N, %d, %d, %d]", path,
                shape_str(&d.shape, got, sizeof got), c->img_channels, c->img_resolution, c->img_resolution);
    goto done;
  }
  in->n = (int)d.shape.dims[0];
  size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  in->x = ec_mallocarray((size_t)in->n * M, sizeof(float));
  in->sigma = ec_mallocarray((size_t)in->n, sizeof(float));
  if (!in->x || !in->sigma) {
    st = ec_err(EC_ENOMEM, "%s: out of memory for %d images", path, in->n);
    goto done;
  }
  if ((st = h5io_dset_read(&d, EC_F32, in->x, 0, (int64_t)in->n * (int64_t)M))) goto done;
  h5io_dset_close(&d);
  for (size_t i = 0; i < (size_t)in->n * M; i++)
    if (!isfinite(in->x[i])) {
      st = ec_err(EC_EINVAL, "%s: x holds %s at image %zu (element %zu)", path, isnan(in->x[i]) ? "NaN" : "Inf",
                  i / M, i);
      goto done;
    }
  if (!h5io_is_dataset(f, "sigma")) {
    st = ec_err(EC_EFORMAT, "%s: no dataset 'sigma' (the noise level of each image, [%d])", path, in->n);
    goto done;
  }
  if ((st = h5io_dset_open(f, "sigma", &d))) goto done;
  if (d.numel != in->n || d.shape.ndim > 1) {
    st = ec_err(EC_EINVAL, "%s: sigma has shape %s; x holds %d images, so sigma must be [%d]", path,
                shape_str(&d.shape, got, sizeof got), in->n, in->n);
    goto done;
  }
  if ((st = h5io_dset_read(&d, EC_F32, in->sigma, 0, in->n))) goto done;
  h5io_dset_close(&d);
  for (int i = 0; i < in->n; i++)
    if (!(in->sigma[i] > 0) || !isfinite(in->sigma[i])) {
      st = ec_err(EC_EINVAL, "%s: sigma[%d] = %g; every sigma must be positive and finite", path, i,
                  (double)in->sigma[i]);
      goto done;
    }
  if (h5io_is_dataset(f, "labels")) {
    if ((st = h5io_dset_open(f, "labels", &d))) goto done;
    if (!c->label_dim) {
      if (!quiet) fprintf(stderr, "edm2-denoise: note: %s: the network is unconditional; labels are ignored\n", path);
    } else if (d.shape.ndim != 2 || d.shape.dims[0] != in->n || d.shape.dims[1] != c->label_dim) {
      st = ec_err(EC_EINVAL, "%s: labels has shape %s; the network takes [%d, %d]", path,
                  shape_str(&d.shape, got, sizeof got), in->n, c->label_dim);
      goto done;
    } else {
      size_t nl = (size_t)in->n * c->label_dim;
      if (!(in->labels = ec_mallocarray(nl, sizeof(float)))) {
        st = ec_err(EC_ENOMEM, "%s: out of memory for labels", path);
        goto done;
      }
      if ((st = h5io_dset_read(&d, EC_F32, in->labels, 0, (int64_t)nl))) goto done;
      for (size_t i = 0; i < nl; i++)
        if (!isfinite(in->labels[i])) {
          st = ec_err(EC_EINVAL, "%s: labels hold NaN or Inf (image %zu)", path, i / (size_t)c->label_dim);
          goto done;
        }
    }
    h5io_dset_close(&d);
  }
done:
  h5io_dset_close(&d);
  h5io_close(&f);
  if (st) inputs_free(in);
  return st;
}

static ec_status write_output(const args *a, const edm2_net *net, const edm2_load_info *info, const inputs *in,
                              const float *D, const float *logvar) {
  const edm2_netcfg *c = &net->arch.cfg;
  ec_atomic at = {.slot = -1};
  hid_t f = H5I_INVALID_HID;
  char *cfg = edm2_netcfg_to_json(c);
  ec_status st = cfg ? EC_OK : ec_err(EC_ENOMEM, "out of memory");
  if (!st) st = ec_atomic_begin(&at, a->output, a->force ? 0 : EC_ATOMIC_NOCLOBBER);
  if (st == EC_EEXIST) st = ec_err(EC_EEXIST, "%s exists; give --force to replace it", a->output);
  if (st) goto done;
  ec_shape xs = {.ndim = 4, .dims = {in->n, c->img_channels, c->img_resolution, c->img_resolution}};
  ec_shape ns = {.ndim = 1, .dims = {in->n}};
  if ((st = h5io_file_create(at.tmp_path, &f)) ||
      (st = h5io_attr_write_str(f, "format", DENOISE_FORMAT)) ||
      (st = h5io_attr_write_i64(f, "format_version", 1)) ||
      (st = h5io_attr_write_str(f, "net", a->net)) ||
      (st = h5io_attr_write_str(f, "net_format", info->format)) ||
      (st = h5io_attr_write_str(f, "profile", info->profile)) ||
      (st = h5io_attr_write_str(f, "preset", info->preset)) ||
      (st = h5io_attr_write_str(f, "config", cfg)) ||
      (st = h5io_attr_write_str(f, "input", a->input)) ||
      (st = h5io_attr_write_str(f, "mode", "eval")) ||
      (st = h5io_attr_write_str(f, "edm2c_version", EDM2C_VERSION)) ||
      (st = h5io_write_tensor(f, "D", &xs, EC_F32, EC_F32, D, H5IO_CHECKSUM)) ||
      (st = h5io_write_tensor(f, "logvar", &ns, EC_F32, EC_F32, logvar, H5IO_CHECKSUM)) ||
      (st = h5io_write_tensor(f, "sigma", &ns, EC_F32, EC_F32, in->sigma, H5IO_CHECKSUM)) ||
      (st = h5io_file_close(&f)))
    goto done;
  st = ec_atomic_commit(&at);
done:
  h5io_close(&f);
  if (st) ec_atomic_abort(&at);
  free(cfg);
  return st;
}

static ec_status run(const args *a) {
  edm2_net net;
  edm2_pass pass = {0};
  inputs in = {0};
  float *D = NULL, *logvar = NULL;
  edm2_load_info info;
  edm2_load_opts lo = {.profile = a->profile, .quiet = a->quiet};
  ec_status st = edm2_net_load(&net, a->net, &lo, &info);
  if (st) return st;
  if ((st = read_inputs(a->input, &net, a->quiet, &in))) goto done;
  const edm2_netcfg *c = &net.arch.cfg;
  size_t M = (size_t)c->img_channels * c->img_resolution * c->img_resolution;
  int batch = (int)(a->batch < in.n ? a->batch : in.n);
  D = ec_mallocarray((size_t)in.n * M, sizeof *D);
  logvar = ec_mallocarray((size_t)in.n, sizeof *logvar);
  if (!D || !logvar) {
    st = ec_err(EC_ENOMEM, "out of memory for %d outputs", in.n);
    goto done;
  }
  if ((st = edm2_pass_init(&pass, &net, batch, 0, (int)a->threads))) goto done;
  ec_progress bar;
  ec_progress_begin(&bar, "denoise", in.n, 0, a->quiet);
  for (int i = 0; i < in.n; i += batch) {
    int n = in.n - i < batch ? in.n - i : batch;
    edm2_forward(&pass, n, in.x + (size_t)i * M, in.sigma + i,
                 in.labels ? in.labels + (size_t)i * c->label_dim : NULL, D + (size_t)i * M, logvar + i, 0);
    ec_progress_update(&bar, i + n);
  }
  ec_progress_end(&bar);
  st = write_output(a, &net, &info, &in, D, logvar);
done:
  edm2_pass_free(&pass);
  edm2_net_free(&net);
  inputs_free(&in);
  ec_freep(&D);
  ec_freep(&logvar);
  return st;
}

int main(int argc, char **argv) {
  args a = {.batch = 8, .threads = ec_cpu_count()};
  const char *arg;
  ec_status st = EC_OK;
  ec_atomic_install_signal_cleanup();
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_NET: a.net = arg; break;
    case OPT_PROFILE: a.profile = arg; break;
    case OPT_INPUT: a.input = arg; break;
    case OPT_OUTPUT: a.output = arg; break;
    case OPT_BATCH: st = ec_parse_int_range("--batch", arg, 1, 1 << 20, &a.batch); break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &a.threads); break;
    case OPT_FORCE: a.force = 1; break;
    case OPT_QUIET: a.quiet = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf("edm2-denoise %s\n", EDM2C_VERSION); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, "edm2-denoise: %s\n", ec_errmsg());
      return ec_exit_code(st);
    }
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (!a.net || !a.input || !a.output)
    return ec_exit_code(ec_cli_usage(&cli, "--net, --input and --output are required"));
  st = run(&a);
  if (st) fprintf(stderr, "edm2-denoise: %s\n", ec_errmsg());
  return ec_exit_code(st);
}
