/* edm2-generate: samples images from an EDM2 network with the reference's sampler
 * (edm2-spec.md §8; trainer/generate.h), one PNG per seed, as generate_images.py does.
 *
 *   edm2-generate --net MODEL [--profile 0.100] --outdir DIR [--seeds 0-63] [--class K] [--batch 32]
 *                 [--steps 32] [--guidance W --gnet MODEL] [--grid FILE.png] [--save-raw FILE.h5] ...
 *
 * Every image depends only on its seed and the options (per-seed random streams), so the batch
 * size and the number of processes under mpirun never change it. docs/generate.md has the rest. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/fs.h"
#include "core/h5io.h"
#include "core/pool.h"
#include "core/progress.h"
#include "edm2c_config.h"
#include "nn/blas.h"
#include "trainer/dist.h"
#include "trainer/generate.h"
#include "trainer/netload.h"
#include "trainer/pass.h"
#include "trainer/png_out.h"
#include "trainer/samples.h"
#include "trainer/seeds.h"

#define PROG "edm2-generate"

_Static_assert(sizeof(int) == sizeof(float), "images are gathered as int bit patterns");

enum {
  OPT_NET, OPT_PROFILE, OPT_OUTDIR, OPT_SEEDS, OPT_CLASS, OPT_BATCH, OPT_STEPS, OPT_SIGMA_MIN, OPT_SIGMA_MAX,
  OPT_RHO, OPT_GUIDANCE, OPT_GNET, OPT_GPROFILE, OPT_S_CHURN, OPT_S_MIN, OPT_S_MAX, OPT_S_NOISE, OPT_GRID,
  OPT_NOISE_FROM, OPT_SAVE_RAW, OPT_SUBDIRS, OPT_THREADS, OPT_BACKEND, OPT_FORCE, OPT_QUIET, OPT_HELP, OPT_VERSION
};

static const ec_cli_opt options[] = {
    {"net", 1, OPT_NET, "MODEL",
     "the network: a model file (posthoc-ema's output), a snapshot (with --profile) or a checkpoint"},
    {"profile", 1, OPT_PROFILE, "SIGMA_REL", "the EMA profile of a snapshot --net, e.g. 0.100"},
    {"outdir", 1, OPT_OUTDIR, "DIR",
     "one PNG per seed, DIR/{seed:06d}.png (created if missing); optional when --grid or --save-raw is given"},
    {"subdirs", 0, OPT_SUBDIRS, NULL, "write DIR/{(seed/1000)*1000:06d}/{seed:06d}.png instead"},
    {"seeds", 1, OPT_SEEDS, "LIST", "seeds: a comma list of integers >= 0 and ranges A-B (default 16-19)"},
    {"class", 1, OPT_CLASS, "K",
     "class of every image of a conditional network (default: a random class per seed)"},
    {"batch", 1, OPT_BATCH, "N", "images per batch (default 32; memory grows with it)"},
    {"steps", 1, OPT_STEPS, "N", "sampling steps (default 32; 2N-1 network evaluations)"},
    {"sigma-min", 1, OPT_SIGMA_MIN, "X", "lowest noise level (default 0.002)"},
    {"sigma-max", 1, OPT_SIGMA_MAX, "X", "highest noise level (default 80)"},
    {"rho", 1, OPT_RHO, "X", "time step exponent (default 7)"},
    {"guidance", 1, OPT_GUIDANCE, "W",
     "guidance weight: D = Dg + W (D - Dg) with the guiding network's Dg (default 1 = none; W != 1 needs --gnet)"},
    {"gnet", 1, OPT_GNET, "MODEL",
     "the guiding network (unconditional for classifier-free guidance, or a smaller or less trained "
     "one for autoguidance); ignored when the guidance weight is 1"},
    {"gprofile", 1, OPT_GPROFILE, "SIGMA_REL", "the EMA profile of a snapshot --gnet"},
    {"S-churn", 1, OPT_S_CHURN, "X", "stochasticity strength (default 0 = deterministic)"},
    {"S-min", 1, OPT_S_MIN, "X", "lowest sigma with churn (default 0)"},
    {"S-max", 1, OPT_S_MAX, "X", "highest sigma with churn (default inf)"},
    {"S-noise", 1, OPT_S_NOISE, "X", "churn noise scale (default 1)"},
    {"grid", 1, OPT_GRID, "FILE.png", "also write all images in one near-square grid, row-major in seed order"},
    {"save-raw", 1, OPT_SAVE_RAW, "FILE.h5",
     "also write the float32 samples before conversion (x [N, C, H, W]), their seeds, initial noise and labels; "
     "the only output of latent (4-channel) networks"},
    {"noise-from", 1, OPT_NOISE_FROM, "FILE.h5",
     "take the initial noise (dataset noise [N, C, H, W]) and, for a conditional network, labels [N, L] "
     "from FILE instead of the seeds (N = the number of seeds; churn noise still comes from the seeds)"},
    {"threads", 1, OPT_THREADS, "N", "threads, per process under mpirun (default: all online CPUs)"},
    {"backend", 1, OPT_BACKEND, "cpu|cuda", "compute backend (default cpu; only cpu exists in this build)"},
    {"force", 0, OPT_FORCE, NULL, "replace existing output files"},
    {"quiet", 0, OPT_QUIET, NULL, "no progress bar, warnings or summary line"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = PROG,
    .synopsis = "--net MODEL [--profile SIGMA_REL] --outdir DIR [--seeds LIST] [--class K] [--guidance W --gnet MODEL] "
                "[OPTIONS]",
    .description =
        "Generates one image per seed with the EDM2 sampler (Heun's method on the EDM time steps, optional "
        "stochastic churn and guidance), as the reference's generate_images.py. Every image depends only on its "
        "seed and the options (to the last bit of float32 arithmetic; docs/generate.md), not on --batch or "
        "the number of processes. Under mpirun -np K (a build with "
        "MPI) process r makes the images of seeds r, r+K, ... of the list (docs/generate.md).",
    .opts = options,
};

typedef struct {
  const char *net, *profile, *gnet, *gprofile, *outdir, *seeds, *grid, *save_raw, *noise_from, *backend;
  int64_t cls, batch, threads;
  int have_class, subdirs, force, quiet;
  edm2_gen_opts g;
} args;

/* Everything one run holds; freed by job_free. */
typedef struct {
  const args *a;
  const edm2_dist *d;
  int64_t *seeds;
  int N;
  edm2_net net, gnet;
  int have_net, have_gnet;
  edm2_load_info info, ginfo;
  int C, R, L;         /* image channels, resolution, label_dim of the main net */
  size_t M;            /* C·R·R */
  int png;             /* 1: per-image PNGs and the grid are written */
  edm2_noise_file nf;  /* --noise-from (nf.labels: [N, L] when the file's labels are used) */
} job;

static void warn(const job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const job *j, const char *fmt, ...) {
  if (j->a->quiet || j->d->rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": warning: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* The PNG of seed s (allocated; NULL when out of memory). */
static char *png_path(const args *a, int64_t s) {
  if (a->subdirs) return ec_asprintf("%s/%06lld/%06lld.png", a->outdir, (long long)(s / 1000 * 1000), (long long)s);
  return ec_asprintf("%s/%06lld.png", a->outdir, (long long)s);
}

/* ------------------------------------------------------------------------------------------ */
/* Checks before sampling */

/* Networks, labels and guidance. Every process does the same and reaches the same verdict. */
static ec_status load_nets(job *j) {
  const args *a = j->a;
  edm2_load_opts lo = {.profile = a->profile, .quiet = a->quiet || j->d->rank != 0};
  ec_status st = edm2_net_load(&j->net, a->net, &lo, &j->info);
  if (st) return st;
  j->have_net = 1;
  const edm2_netcfg *c = &j->net.arch.cfg;
  j->C = c->img_channels;
  j->R = c->img_resolution;
  j->L = c->label_dim;
  j->M = (size_t)j->C * j->R * j->R;
  if (a->have_class) {
    if (!j->L)
      return ec_err(EC_EINVAL, "--class %lld: %s is unconditional (label_dim 0); it takes no class", (long long)a->cls,
                    a->net);
    if (a->cls >= j->L)
      return ec_err(EC_EINVAL, "--class %lld: %s has %d classes (0 to %d)", (long long)a->cls, a->net, j->L, j->L - 1);
  }
  if (a->g.guidance == 1) {
    if (a->gnet) warn(j, "--guidance is 1: --gnet %s is not used (no guidance)", a->gnet);
    return EC_OK;
  }
  lo.profile = a->gprofile;
  if ((st = edm2_net_load(&j->gnet, a->gnet, &lo, &j->ginfo))) return st;
  j->have_gnet = 1;
  const edm2_netcfg *g = &j->gnet.arch.cfg;
  if (g->img_channels != j->C || g->img_resolution != j->R)
    return ec_err(EC_EINVAL, "--gnet %s makes %dx%dx%d images, --net %s %dx%dx%d: guidance needs the same shape",
                  a->gnet, g->img_channels, g->img_resolution, g->img_resolution, a->net, j->C, j->R, j->R);
  if (g->label_dim && g->label_dim != j->L)
    return ec_err(EC_EINVAL,
                  "--gnet %s has label_dim %d, --net %s %d: a guiding network is unconditional or takes the main "
                  "network's labels",
                  a->gnet, g->label_dim, a->net, j->L);
  return EC_OK;
}

/* An existing file that would be overwritten: an error naming it, unless --force. */
static ec_status check_free(const args *a, const char *path) {
  struct stat sb;
  if (a->force || lstat(path, &sb) != 0) return EC_OK;
  return ec_err(EC_EEXIST, "%s exists; give --force to replace it (nothing was generated)", path);
}

/* Makes sure path can be written: creates and removes its temporary file. */
static ec_status probe(const char *path) {
  ec_atomic at = {.slot = -1};
  ec_status st = ec_atomic_begin(&at, path, 0);
  ec_atomic_abort(&at);
  return st;
}

/* Rank 0, before any sampling: no output would be overwritten (without --force), the folders
 * exist, every output can be written. */
static ec_status preflight(const job *j) {
  const args *a = j->a;
  ec_status st = EC_OK;
  if (a->save_raw && (st = check_free(a, a->save_raw))) return st;
  if (j->png && a->grid && (st = check_free(a, a->grid))) return st;
  if (j->png && a->outdir) {
    for (int i = 0; i < j->N && !st; i++) {
      char *p = png_path(a, j->seeds[i]);
      st = p ? check_free(a, p) : ec_err(EC_ENOMEM, "out of memory");
      ec_freep(&p);
    }
    if (st) return st;
    /* The folders: DIR, or each DIR/NNN000 in order of first use; a probe file in each. */
    int64_t last = -1;
    for (int i = 0; i < j->N && !st; i++) {
      int64_t group = a->subdirs ? j->seeds[i] / 1000 : 0;
      if (i && group == last) continue;
      last = group;
      char *dir = a->subdirs ? ec_asprintf("%s/%06lld", a->outdir, (long long)(group * 1000)) : ec_strdup(a->outdir);
      char *pr = dir ? ec_asprintf("%s/.edm2-generate-probe", dir) : NULL;
      if (!pr) st = ec_err(EC_ENOMEM, "out of memory");
      else if (!(st = ec_mkdirs(dir))) st = probe(pr);
      ec_freep(&dir);
      ec_freep(&pr);
    }
    if (st) return st;
  }
  if (j->png && a->grid && (st = probe(a->grid))) return st;
  if (a->save_raw && (st = probe(a->save_raw))) return st;
  return EC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Outputs assembled by rank 0 */

static char *options_json(const job *j) {
  const args *a = j->a;
  const edm2_gen_opts *g = &a->g;
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "seeds", a->seeds);
  if (a->have_class) cJSON_AddNumberToObject(o, "class", (double)a->cls);
  else cJSON_AddNullToObject(o, "class");
  cJSON_AddNumberToObject(o, "steps", g->steps);
  cJSON_AddNumberToObject(o, "sigma_min", g->sigma_min);
  cJSON_AddNumberToObject(o, "sigma_max", g->sigma_max);
  cJSON_AddNumberToObject(o, "rho", g->rho);
  cJSON_AddNumberToObject(o, "guidance", g->guidance);
  cJSON_AddNumberToObject(o, "S_churn", g->S_churn);
  cJSON_AddNumberToObject(o, "S_min", g->S_min);
  if (isinf(g->S_max)) cJSON_AddNullToObject(o, "S_max"); /* JSON has no infinity: null = inf */
  else cJSON_AddNumberToObject(o, "S_max", g->S_max);
  cJSON_AddNumberToObject(o, "S_noise", g->S_noise);
  if (a->noise_from) cJSON_AddStringToObject(o, "noise_from", a->noise_from);
  else cJSON_AddNullToObject(o, "noise_from");
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* The one-hot (or file) labels of image i of the seed list into out (L floats). */
static void labels_of(const job *j, int i, float *out) {
  if (j->nf.labels) {
    memcpy(out, j->nf.labels + (size_t)i * j->L, (size_t)j->L * sizeof *out);
    return;
  }
  memset(out, 0, (size_t)j->L * sizeof *out);
  out[j->a->have_class ? (int)j->a->cls : edm2_seed_class(j->seeds[i], j->L)] = 1;
}

/* The initial noise of image i (M floats). */
static ec_status noise_of(const job *j, int i, float *out) {
  if (!j->a->noise_from) {
    edm2_seed_noise(j->seeds[i], out, j->M);
    return EC_OK;
  }
  return edm2_noise_read(&j->nf, i, out);
}

static ec_status write_raw(const job *j, const int *bits) {
  const args *a = j->a;
  size_t NM = (size_t)j->N * j->M;
  float *noise = ec_mallocarray(NM, sizeof *noise);
  float *labels = j->L ? ec_mallocarray((size_t)j->N * j->L, sizeof *labels) : NULL;
  char *cfg = edm2_netcfg_to_json(&j->net.arch.cfg);
  char *gcfg = j->have_gnet ? edm2_netcfg_to_json(&j->gnet.arch.cfg) : NULL;
  char *opts = options_json(j);
  ec_status st = EC_OK;
  if (!noise || (j->L && !labels) || !cfg || (j->have_gnet && !gcfg) || !opts)
    st = ec_err(EC_ENOMEM, "%s: out of memory", a->save_raw);
  for (int i = 0; i < j->N && !st; i++) {
    st = noise_of(j, i, noise + (size_t)i * j->M);
    if (j->L) labels_of(j, i, labels + (size_t)i * j->L);
  }
  int g = j->have_gnet;
  edm2_samples_meta m = {.net = a->net, .net_format = j->info.format, .profile = j->info.profile,
                         .preset = j->info.preset, .config = cfg, .gnet = g ? a->gnet : "",
                         .gnet_format = g ? j->ginfo.format : "", .gprofile = g ? j->ginfo.profile : "",
                         .gpreset = g ? j->ginfo.preset : "", .gconfig = g ? gcfg : "", .options = opts};
  if (!st)
    st = edm2_samples_write(a->save_raw, a->force ? 0 : EC_ATOMIC_NOCLOBBER, &m, j->N, j->C, j->R, j->L, bits,
                            j->seeds, noise, labels);
  ec_freep(&noise);
  ec_freep(&labels);
  free(cfg);
  free(gcfg);
  free(opts);
  return st;
}

static ec_status write_grid(const job *j, const int *bits) {
  int cols, rows;
  edm2_grid_shape(j->N, &cols, &rows);
  uint8_t *grid = ec_calloc((size_t)rows * j->R * (size_t)cols * j->R * j->C, 1);
  uint8_t *hwc = ec_mallocarray(j->M, 1);
  float *x = ec_mallocarray(j->M, sizeof *x);
  ec_status st = EC_OK;
  if (!grid || !hwc || !x) {
    st = ec_err(EC_ENOMEM, "%s: out of memory for a grid of %dx%d images", j->a->grid, cols, rows);
  } else {
    for (int i = 0; i < j->N; i++) {
      memcpy(x, bits + (size_t)i * j->M, j->M * sizeof *x);
      edm2_to_u8(x, j->C, j->R, j->R, hwc);
      edm2_grid_place(grid, cols, j->R, j->R, j->C, i, hwc);
    }
    st = edm2_png_write(j->a->grid, grid, cols * j->R, rows * j->R, j->C, j->a->force ? 0 : EC_ATOMIC_NOCLOBBER);
  }
  ec_freep(&grid);
  ec_freep(&hwc);
  ec_freep(&x);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Sampling */

/* This process's images: positions rank, rank + K, ... of the seed list, in batches. Every
 * process runs the same number of rounds (some with no images) and agrees on the status after
 * each, so that a failure anywhere stops all. */
static ec_status sample(job *j, int *bits) {
  const args *a = j->a;
  const edm2_dist *d = j->d;
  int K = d->world, r = d->rank;
  int per = (j->N + K - 1) / K;                 /* the most images one process makes */
  int mine = r < j->N ? (j->N - r + K - 1) / K : 0;
  int cap = (int)(a->batch < per ? a->batch : per);
  int rounds = (per + cap - 1) / cap;
  edm2_pass p = {0}, gp = {0};
  int have_p = 0, have_gp = 0;
  float *x = ec_mallocarray((size_t)cap * j->M, sizeof *x);
  float *labels = j->L ? ec_mallocarray((size_t)cap * j->L, sizeof *labels) : NULL;
  int64_t *bseeds = ec_mallocarray((size_t)cap, sizeof *bseeds);
  uint8_t *hwc = ec_mallocarray(j->M, 1);
  char *path = NULL;
  ec_status st = EC_OK;
  if (!x || (j->L && !labels) || !bseeds || !hwc) st = ec_err(EC_ENOMEM, "out of memory for batches of %d images", cap);
  if (!st && !(st = edm2_pass_init(&p, &j->net, cap, 0, (int)a->threads))) have_p = 1;
  if (!st && j->have_gnet && !(st = edm2_pass_init(&gp, &j->gnet, cap, 0, (int)a->threads))) have_gp = 1;
  st = edm2_dist_agree(d, st);
  ec_progress bar;
  ec_progress_begin(&bar, "generate", mine, 0, a->quiet || r != 0);
  int done = 0;
  for (int round = 0; round < rounds && !st; round++) {
    int n = mine - done < cap ? mine - done : cap;
    for (int b = 0; b < n && !st; b++) {
      int i = r + (done + b) * K;
      bseeds[b] = j->seeds[i];
      st = noise_of(j, i, x + (size_t)b * j->M);
      if (j->L) labels_of(j, i, labels + (size_t)b * j->L);
    }
    if (!st && n > 0)
      st = edm2_generate(&a->g, &p, have_gp ? &gp : NULL, n, x, labels, edm2_seed_churn, bseeds);
    for (int b = 0; b < n && !st; b++) {
      int i = r + (done + b) * K;
      const float *xb = x + (size_t)b * j->M;
      if (bits) memcpy(bits + (size_t)i * j->M, xb, j->M * sizeof *xb);
      if (!j->png || !a->outdir) continue;
      edm2_to_u8(xb, j->C, j->R, j->R, hwc);
      if (!(path = png_path(a, j->seeds[i]))) st = ec_err(EC_ENOMEM, "out of memory");
      else st = edm2_png_write(path, hwc, j->R, j->R, j->C, a->force ? 0 : EC_ATOMIC_NOCLOBBER);
      ec_freep(&path);
    }
    done += n;
    ec_progress_update(&bar, done);
    st = edm2_dist_agree(d, st);
  }
  ec_progress_end(&bar);
  if (have_p) edm2_pass_free(&p);
  if (have_gp) edm2_pass_free(&gp);
  ec_freep(&x);
  ec_freep(&labels);
  ec_freep(&bseeds);
  ec_freep(&hwc);
  return st;
}

static void job_free(job *j) {
  if (j->have_net) edm2_net_free(&j->net);
  if (j->have_gnet) edm2_net_free(&j->gnet);
  edm2_noise_close(&j->nf);
  ec_freep(&j->seeds);
}

static ec_status run(const args *a, const edm2_dist *d) {
  job j = {.a = a, .d = d, .nf = {.file = H5I_INVALID_HID, .noise = {.id = H5I_INVALID_HID}}};
  int *bits = NULL;
  ec_status st = edm2_seeds_parse("--seeds", a->seeds, &j.seeds, &j.N);
  if (!st) st = edm2_gen_opts_check(&a->g);
  if (!st && a->backend && strcmp(a->backend, "cpu"))
    st = ec_err(EC_EINVAL, "--backend %s: only the cpu backend exists in this build", a->backend);
  if (!st && a->g.guidance != 1 && !a->gnet)
    st = ec_err(EC_EINVAL, "--guidance %g needs a guiding network: give --gnet MODEL (or --guidance 1 for none)",
                a->g.guidance);
  if (!st) st = load_nets(&j);
  if (!st) {
    j.png = j.C == 1 || j.C == 3;
    if (!j.png && (a->outdir || a->grid)) {
      char why[256];
      if (j.C == 4)
        snprintf(why, sizeof why,
                 "%s is a 4-channel latent network: its images need the Stable Diffusion VAE decoder, which edm2c "
                 "does not have yet",
                 a->net);
      else
        snprintf(why, sizeof why, "%s makes %d-channel images, which have no PNG form", a->net, j.C);
      if (!a->save_raw)
        st = ec_err(EC_EINVAL, "%s; give --save-raw FILE.h5 to keep the raw samples", why);
      else
        warn(&j, "%s; writing only %s (no PNGs%s)", why, a->save_raw, a->grid ? ", no grid" : "");
    }
  }
  if (!st && a->noise_from) /* the file's labels unless --class overrides them */
    st = edm2_noise_open(&j.nf, a->noise_from, j.N, j.C, j.R, a->have_class ? 0 : j.L, a->net);
  st = edm2_dist_agree(d, st);
  if (!st && d->rank == 0) st = preflight(&j);
  edm2_dist_bcast_status(d, &st, 0);
  if (st) goto done;

  double t0 = ec_progress_now();
  if ((j.png && a->grid) || a->save_raw) {
    /* Every process holds all images as int bit patterns, INT_MIN (= -0.0f) where another process
     * made them; a max all-reduce then assembles them exactly, -0.0 included. */
    size_t NM = (size_t)j.N * j.M;
    if (!(bits = ec_mallocarray(NM, sizeof *bits))) st = ec_err(EC_ENOMEM, "out of memory for %d images", j.N);
    else
      for (size_t i = 0; i < NM; i++) bits[i] = INT_MIN;
  }
  st = edm2_dist_agree(d, st);
  if (!st) st = sample(&j, bits);
  if (!st && bits) st = edm2_dist_allreduce_max_int(d, bits, (size_t)j.N * j.M);
  st = edm2_dist_agree(d, st);
  if (!st && d->rank == 0) {
    if (j.png && a->grid) st = write_grid(&j, bits);
    if (!st && a->save_raw) st = write_raw(&j, bits);
  }
  edm2_dist_bcast_status(d, &st, 0);
  if (!st && !a->quiet && d->rank == 0) {
    double secs = ec_progress_now() - t0;
    char procs[48] = "";
    if (d->world > 1) snprintf(procs, sizeof procs, ", %d processes", d->world);
    printf(PROG ": %d images of %dx%dx%d in %.2f s, %.2f images/s (%d steps, %d threads%s)\n", j.N, j.C, j.R, j.R,
           secs, secs > 0 ? j.N / secs : 0.0, a->g.steps, (int)a->threads, procs);
  }
done:
  ec_freep(&bits);
  job_free(&j);
  return st;
}

/* --S-max also takes inf (its default). */
static ec_status parse_f64_or_inf(const char *opt, const char *s, double *out) {
  if (!strcmp(s, "inf") || !strcmp(s, "+inf") || !strcmp(s, "infinity")) {
    *out = INFINITY;
    return EC_OK;
  }
  return ec_parse_f64(opt, s, out);
}

int main(int argc, char **argv) {
  args a = {.seeds = "16-19", .batch = 32, .threads = ec_cpu_count()};
  edm2_gen_opts_default(&a.g);
  const char *arg;
  ec_status st = EC_OK;
  ec_atomic_install_signal_cleanup();
  nn_blas_setup(argv); /* re-executes once on CPUs OpenBLAS does not recognise (nn/blas.h) */
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    int64_t v = 0;
    switch (id) {
    case OPT_NET: a.net = arg; break;
    case OPT_PROFILE: a.profile = arg; break;
    case OPT_OUTDIR: a.outdir = arg; break;
    case OPT_SEEDS: a.seeds = arg; break;
    case OPT_GNET: a.gnet = arg; break;
    case OPT_GPROFILE: a.gprofile = arg; break;
    case OPT_GRID: a.grid = arg; break;
    case OPT_SAVE_RAW: a.save_raw = arg; break;
    case OPT_NOISE_FROM: a.noise_from = arg; break;
    case OPT_BACKEND: a.backend = arg; break;
    case OPT_SUBDIRS: a.subdirs = 1; break;
    case OPT_FORCE: a.force = 1; break;
    case OPT_QUIET: a.quiet = 1; break;
    case OPT_CLASS:
      st = ec_parse_int_range("--class", arg, 0, INT_MAX, &a.cls);
      a.have_class = 1;
      break;
    case OPT_BATCH: st = ec_parse_int_range("--batch", arg, 1, 1 << 20, &a.batch); break;
    case OPT_THREADS: st = ec_parse_int_range("--threads", arg, 1, 1024, &a.threads); break;
    case OPT_STEPS:
      st = ec_parse_int_range("--steps", arg, 1, 1 << 20, &v);
      a.g.steps = (int)v;
      break;
    case OPT_SIGMA_MIN: st = ec_parse_f64("--sigma-min", arg, &a.g.sigma_min); break;
    case OPT_SIGMA_MAX: st = ec_parse_f64("--sigma-max", arg, &a.g.sigma_max); break;
    case OPT_RHO: st = ec_parse_f64("--rho", arg, &a.g.rho); break;
    case OPT_GUIDANCE: st = ec_parse_f64("--guidance", arg, &a.g.guidance); break;
    case OPT_S_CHURN: st = ec_parse_f64("--S-churn", arg, &a.g.S_churn); break;
    case OPT_S_MIN: st = ec_parse_f64("--S-min", arg, &a.g.S_min); break;
    case OPT_S_MAX: st = parse_f64_or_inf("--S-max", arg, &a.g.S_max); break;
    case OPT_S_NOISE: st = ec_parse_f64("--S-noise", arg, &a.g.S_noise); break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf(PROG " %s\n", EDM2C_VERSION); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, PROG ": %s\n", ec_errmsg());
      return ec_exit_code(st);
    }
  }
  if (ec_cli_optind(&cli) < argc)
    return ec_exit_code(ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]));
  if (!a.net) return ec_exit_code(ec_cli_usage(&cli, "--net MODEL is required"));
  if (!a.outdir && !a.grid && !a.save_raw)
    return ec_exit_code(ec_cli_usage(&cli, "--outdir DIR is required (or --grid FILE.png or --save-raw FILE.h5)"));
  if (a.subdirs && !a.outdir) return ec_exit_code(ec_cli_usage(&cli, "--subdirs needs --outdir DIR"));
  if (a.gprofile && !a.gnet) return ec_exit_code(ec_cli_usage(&cli, "--gprofile applies to --gnet MODEL"));
  /* Under mpirun every process makes its share of the seeds (trainer/dist.h); after the
   * re-execution of nn_blas_setup, which must come before MPI starts. */
  edm2_dist dist;
  int rank;
  st = edm2_dist_init(&dist, &argc, &argv);
  if (!st) st = run(&a, &dist);
  rank = dist.rank; /* every process has the same status and message; rank 0 prints it */
  /* Before finalizing: once a process exits non-zero, mpirun may stop forwarding the others'
   * output, so rank 0's line must be out before anyone leaves the finalize barrier. */
  if (st && rank == 0) {
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    fflush(stderr);
  }
  edm2_dist_finalize(&dist);
  return ec_exit_code(st);
}
