/* The training loop (see train.h). */
#include "trainer/train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/rng.h"
#include "nn/norm.h"
#include "posthoc/snapshot.h"
#include "trainer/ckpt.h"
#include "trainer/encode.h"
#include "trainer/precond.h"
#include "trainer/trainlog.h"

/* ---- random streams ------------------------------------------------------------------------- */

/* splitmix64: independent stream keys from the run's seed. */
static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

enum { STREAM_SIGMA = 1, STREAM_NOISE = 2, STREAM_DROPOUT = 3, STREAM_LATENT = 4, STREAM_PROBE = 5 };

static uint64_t stream_key(int64_t seed, int stream) { return mix64(mix64((uint64_t)seed) + (uint64_t)stream); }

/* The dropout stream of the step that starts at nimg. */
static uint64_t dropout_key(int64_t seed, int64_t nimg) {
  return mix64(stream_key(seed, STREAM_DROPOUT) ^ (uint64_t)nimg);
}

/* ---- signals ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;
static int stopped_by; /* the signal the last run stopped on, agreed by all processes */

static void on_signal(int sig) { stop_signal = sig; }

int edm2_trainer_stop_signal(void) { return stopped_by ? stopped_by : (int)stop_signal; }

/* SIGINT and SIGTERM finish the current step, write a checkpoint and exit. With several
 * processes SIGUSR1 does too: Open MPI's mpirun forwards it to every process, while it answers
 * SIGINT and SIGTERM itself by killing them a second later. */
static void install_stop_handlers(int parallel) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (parallel) sigaction(SIGUSR1, &sa, NULL);
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s", a, b);
  return s;
}

/* RUN/config.json: written at the first start, compared at every later one. */
static ec_status write_config_json(const char *outdir, const char *json) {
  char *path = join(outdir, "config.json");
  if (!path) return ec_err(EC_ENOMEM, "out of memory");
  ec_atomic at;
  ec_status st = ec_atomic_begin(&at, path, 0);
  if (!st) {
    FILE *f = fopen(at.tmp_path, "w");
    if (!f || fprintf(f, "%s\n", json) < 0 || fflush(f) || ferror(f)) {
      st = ec_err(errno == ENOSPC ? EC_ENOSPC : EC_EIO, "%s: %s", at.tmp_path, strerror(errno));
      if (f) fclose(f);
      ec_atomic_abort(&at);
    } else if (fclose(f)) {
      st = ec_err(EC_EIO, "%s: %s", at.tmp_path, strerror(errno));
      ec_atomic_abort(&at);
    } else {
      st = ec_atomic_commit(&at);
    }
  }
  free(path);
  return st;
}

static ec_status read_text(const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  size_t got;
  while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (n + 1 == cap) {
      char *t = realloc(s, cap *= 2);
      if (!t) {
        free(s);
        s = NULL;
      }
      s = t;
    }
  }
  fclose(f);
  if (!s) return ec_err(EC_ENOMEM, "out of memory reading %s", path);
  s[n] = 0;
  *out = s;
  return EC_OK;
}

static ec_status alloc_buffers(edm2_trainer *t) {
  const edm2_traincfg *c = &t->cfg;
  size_t B = (size_t)t->local, R = (size_t)t->per_round, M = t->M;
  size_t L = (size_t)(c->net.label_dim ? c->net.label_dim : 1);
  t->y = ec_mallocarray(B * M, sizeof(float));
  t->noise = ec_mallocarray(B * M, sizeof(float));
  t->sigma = ec_mallocarray(B, sizeof(float));
  t->labels = ec_calloc(B * L, sizeof(float));
  t->x = ec_mallocarray(R * M, sizeof(float));
  t->D = ec_mallocarray(R * M, sizeof(float));
  t->dD = ec_mallocarray(R * M, sizeof(float));
  t->logvar = ec_mallocarray(R, sizeof(float));
  t->du = ec_mallocarray(R, sizeof(float));
  t->loss = ec_mallocarray(R, sizeof(double));
  t->grads = ec_calloc(t->net.arch.params_size, sizeof(float));
  if (!t->y || !t->noise || !t->sigma || !t->labels || !t->x || !t->D || !t->dD || !t->logvar || !t->du ||
      !t->loss || !t->grads)
    return ec_err(EC_ENOMEM, "out of memory for a batch of %lld images", (long long)c->batch);
  return EC_OK;
}

/* Opens the dataset and fits the network to it: image shape and channels come from the data,
 * label_dim from its labels (0 with cond off). */
static ec_status open_data(edm2_trainer *t) {
  edm2_traincfg *c = &t->cfg;
  if (!c->data[0]) return ec_err(EC_EINVAL, "--data is required for preset %s", c->preset[0] ? c->preset : "(none)");
  ec_status st = edm2_dataset_open(&t->data, c->data, &(edm2_dataset_opts){.use_labels = c->cond});
  if (st) return st;
  const edm2_dataset_info *in = edm2_dataset_get_info(t->data);
  if (in->type == EDM2_ITEM_F32 && in->channels != 2 * EDM2_LATENT_CHANNELS)
    return ec_err(EC_EINVAL, "%s: float32 items must be VAE latents of %d channels (mean and std), not %d", in->path,
                  2 * EDM2_LATENT_CHANNELS, in->channels);
  if (in->height != in->width)
    return ec_err(EC_EINVAL, "%s: images are %dx%d; the network needs square images", in->path, in->height, in->width);
  c->net.img_resolution = in->width;
  c->net.img_channels = in->type == EDM2_ITEM_F32 ? EDM2_LATENT_CHANNELS : in->channels;
  c->net.label_dim = in->label_dim;
  return EC_OK;
}

/* Each process's share of the batch: whole images, whole accumulation rounds. */
static ec_status check_split(const edm2_traincfg *c, int world) {
  if (world <= 1) return EC_OK;
  if (c->batch % world)
    return ec_err(EC_EINVAL, "--batch %lld cannot be split across %d processes: it is not a multiple of %d",
                  (long long)c->batch, world, world);
  if (c->batch_gpu > 0 && (c->batch / world) % c->batch_gpu)
    return ec_err(EC_EINVAL,
                  "--batch %lld across %d processes gives %lld images each, not a multiple of --batch-gpu %lld",
                  (long long)c->batch, world, (long long)(c->batch / world), (long long)c->batch_gpu);
  return EC_OK;
}

/* Rank 0's part of the set-up: an existing RUN must hold this run; its folders; config.json. */
static ec_status prepare_outdir(edm2_trainer *t, const char *ckdir, const char *snapdir, const char *cfgpath) {
  char *stored = NULL;
  ec_status st = EC_OK;
  if (ec_is_dir(t->outdir)) {
    st = read_text(cfgpath, &stored);
    if (st == EC_ENOENT) {
      st = EC_OK;
    } else if (!st) {
      edm2_traincfg old;
      if (!(st = edm2_traincfg_from_json(&old, stored, cfgpath)))
        st = edm2_traincfg_same_run(&old, &t->cfg, t->outdir);
    }
  }
  if (!st && !(st = ec_mkdirs(ckdir)) && !(st = ec_mkdirs(snapdir)) && !stored)
    st = write_config_json(t->outdir, t->cfg_json);
  free(stored);
  return st;
}

/* Every process: the newest checkpoint in ckdir, when there is one, must be of this run; load it. */
static ec_status resume(edm2_trainer *t, const char *ckdir) {
  char *ckpath = NULL, *ck_cfg = NULL;
  int64_t ck_nimg;
  ec_status st = edm2_ckpt_latest(ckdir, &ckpath, &ck_nimg);
  if (!st && ckpath) {
    int64_t nimg, step;
    edm2_traincfg old;
    if (!(st = edm2_ckpt_read_meta(ckpath, &ck_cfg, &nimg, &step, &t->elapsed)) &&
        !(st = edm2_traincfg_from_json(&old, ck_cfg, ckpath)) &&
        !(st = edm2_traincfg_same_run(&old, &t->cfg, ckpath)) &&
        !(st = edm2_ckpt_load(ckpath, &t->net, &t->adam, &t->ema)))
      t->nimg = nimg;
  }
  free(ck_cfg);
  free(ckpath);
  return st;
}

ec_status edm2_trainer_init(edm2_trainer *t, const edm2_traincfg *cfg, const char *outdir, const edm2_train_opts *opts) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  if (opts) t->opts = *opts;
  t->dist = t->opts.dist ? *t->opts.dist : EDM2_DIST_SINGLE;
  ec_status st = EC_OK;
  char *ckdir = NULL, *snapdir = NULL, *cfgpath = NULL;
  /* Every process builds the same network from the seed; a failure in any stops all (dist.h). */
  if (outdir) {
    if (!(t->outdir = strdup(outdir))) st = ec_err(EC_ENOMEM, "out of memory");
    if (st || (st = open_data(t))) goto set_up;
  }
  if ((st = edm2_traincfg_check(&t->cfg)) || (st = check_split(&t->cfg, t->dist.world))) goto set_up;
  t->cfg_json = edm2_traincfg_to_json(&t->cfg);
  if (!t->cfg_json) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto set_up;
  }
  const edm2_traincfg *c = &t->cfg;
  t->local = c->batch / t->dist.world;
  t->img0 = t->local * t->dist.rank;
  t->per_round = (int)(c->batch_gpu ? c->batch_gpu : t->local);
  t->rounds = (int)(t->local / t->per_round);
  t->M = (size_t)c->net.img_channels * c->net.img_resolution * c->net.img_resolution;
  if ((st = edm2_net_init(&t->net, &c->net))) goto set_up;
  edm2_net_randomize(&t->net, (uint64_t)c->seed);
  /* The reference's first forward (its module summary, before the EMA copies are taken) already
   * normalises the fresh weights in place; do the same, so that the snapshot at 0 holds them. */
  for (int i = 0; i < t->net.arch.n_tensors; i++) {
    const edm2_tensor *tt = &t->net.arch.tensors[i];
    if (tt->kind == EDM2_PARAM && tt->ndim >= 2)
      nn_weightnorm_force_ref(NULL, edm2_net_tensor(&t->net, i), edm2_tensor_rows(tt), edm2_tensor_fan_in(tt));
  }
  if ((st = edm2_pass_init(&t->pass, &t->net, t->per_round, 1, c->threads)) ||
      (st = edm2_adam_init(&t->adam, t->net.arch.params_size)) ||
      (st = edm2_ema_init(&t->ema, c->ema, c->n_ema, t->net.arch.params_size)) || (st = alloc_buffers(t)))
    goto set_up;
set_up:
  if ((st = edm2_dist_agree(&t->dist, st))) goto done;

  if (t->outdir) {
    ckdir = join(t->outdir, "checkpoints");
    snapdir = join(t->outdir, "snapshots");
    cfgpath = join(t->outdir, "config.json");
    if (!ckdir || !snapdir || !cfgpath) st = ec_err(EC_ENOMEM, "out of memory");
    /* Rank 0 checks and prepares RUN while the others wait for its verdict; then every process
     * resumes from the same checkpoint. */
    if (!st && t->dist.rank == 0) st = prepare_outdir(t, ckdir, snapdir, cfgpath);
    if ((st = edm2_dist_agree(&t->dist, st))) goto done;
    st = resume(t, ckdir);
    if (!st) st = edm2_sampler_init(&t->sampler, edm2_dataset_get_info(t->data)->n, t->cfg.seed, 0, 1, t->nimg);
    if ((st = edm2_dist_agree(&t->dist, st))) goto done;
  }
  t->start_nimg = t->nimg;
done:
  free(ckdir);
  free(snapdir);
  free(cfgpath);
  if (st) edm2_trainer_free(t);
  return st;
}

void edm2_trainer_free(edm2_trainer *t) {
  edm2_pass_free(&t->probe);
  ec_freep(&t->probe_x);
  ec_freep(&t->probe_sigma);
  ec_freep(&t->probe_labels);
  ec_freep(&t->probe_D);
  edm2_pass_free(&t->pass);
  edm2_net_free(&t->net);
  edm2_adam_free(&t->adam);
  edm2_ema_free(&t->ema);
  edm2_dataset_close(&t->data);
  edm2_sampler_free(&t->sampler);
  ec_freep(&t->grads);
  ec_freep(&t->y);
  ec_freep(&t->x);
  ec_freep(&t->sigma);
  ec_freep(&t->noise);
  ec_freep(&t->labels);
  ec_freep(&t->D);
  ec_freep(&t->logvar);
  ec_freep(&t->dD);
  ec_freep(&t->du);
  ec_freep(&t->loss);
  ec_freep(&t->raw);
  ec_freep(&t->outdir);
  ec_freep(&t->cfg_json);
}

/* ---- one step ---------------------------------------------------------------------------------- */

ec_status edm2_trainer_draw(edm2_trainer *t, float *y, float *labels, float *sigma, float *noise) {
  const edm2_traincfg *c = &t->cfg;
  const edm2_dataset_info *in = edm2_dataset_get_info(t->data);
  const size_t M = t->M, L = (size_t)c->net.label_dim;
  if (!t->raw && !(t->raw = malloc(in->item_bytes))) return ec_err(EC_ENOMEM, "out of memory");
  const uint64_t ks = stream_key(c->seed, STREAM_SIGMA), kn = stream_key(c->seed, STREAM_NOISE);
  const uint64_t kl = stream_key(c->seed, STREAM_LATENT);
  /* This process's images of the step: sampler positions nimg + img0 … (O(1) to seek; the
   * epoch's permutation is kept and redrawn only when the epoch changes). */
  t->sampler.idx = t->nimg + t->img0;
  for (int64_t j = 0; j < t->local; j++) {
    const int64_t item = edm2_sampler_next(&t->sampler);
    ec_status st = edm2_dataset_read(t->data, item, t->raw, L ? labels + (size_t)j * L : NULL);
    if (st) return st;
    const uint64_t k = (uint64_t)(t->nimg + t->img0 + j);
    if (in->type == EDM2_ITEM_U8) edm2_encode_pixels(y + (size_t)j * M, t->raw, M);
    else edm2_encode_latents(y + (size_t)j * M, t->raw, M / EDM2_LATENT_CHANNELS, kl, k * M);
    sigma[j] = (float)exp(ec_rng_normal(ks, k) * c->P_std + c->P_mean);
    ec_rng_normal_fill(noise + (size_t)j * M, M, kn, k * M);
  }
  return EC_OK;
}

/* Images in the probe batch of --magnitudes. */
#define PROBE_IMAGES 64

/* The probe batch: dataset items 0 … n−1, encoded, with σ and noise from the probe stream
 * (fixed for the whole run, so successive measurements see the same inputs). */
static ec_status probe_init(edm2_trainer *t) {
  const edm2_traincfg *c = &t->cfg;
  const edm2_dataset_info *in = edm2_dataset_get_info(t->data);
  const size_t M = t->M, L = (size_t)(c->net.label_dim ? c->net.label_dim : 1);
  t->probe_n = (int)(in->n < PROBE_IMAGES ? in->n : PROBE_IMAGES);
  const size_t n = (size_t)t->probe_n;
  t->probe_x = ec_mallocarray(n * M, sizeof(float));
  t->probe_D = ec_mallocarray(n * M, sizeof(float));
  t->probe_sigma = ec_mallocarray(n, sizeof(float));
  t->probe_labels = ec_calloc(n * L, sizeof(float));
  float *noise = ec_mallocarray(M, sizeof(float));
  if (!t->probe_x || !t->probe_D || !t->probe_sigma || !t->probe_labels || !noise ||
      (!t->raw && !(t->raw = malloc(in->item_bytes)))) {
    free(noise);
    return ec_err(EC_ENOMEM, "out of memory for the probe batch");
  }
  const uint64_t kp = stream_key(c->seed, STREAM_PROBE);
  ec_status st = EC_OK;
  for (size_t i = 0; i < n && !st; i++) {
    float *x = t->probe_x + i * M;
    st = edm2_dataset_read(t->data, (int64_t)i, t->raw, c->net.label_dim ? t->probe_labels + i * L : NULL);
    if (st) break;
    if (in->type == EDM2_ITEM_U8) edm2_encode_pixels(x, t->raw, M);
    else edm2_encode_latents(x, t->raw, M / EDM2_LATENT_CHANNELS, kp, (uint64_t)(2 * i + 1) * M);
    t->probe_sigma[i] = (float)exp(ec_rng_normal(kp, i) * c->P_std + c->P_mean);
    ec_rng_normal_fill(noise, M, kp, (uint64_t)(2 * i + 2) * M);
    for (size_t e = 0; e < M; e++) x[e] += t->probe_sigma[i] * noise[e];
  }
  free(noise);
  if (!st) st = edm2_pass_init(&t->probe, &t->net, t->probe_n, 0, c->threads);
  return st;
}

int edm2_trainer_probe_magnitudes(edm2_trainer *t, edm2_act_magnitude *out, int cap) {
  if (!t->probe_n) {
    ec_status st = probe_init(t);
    if (st) return st;
  }
  /* Eval mode: the stored weights are normalised per use but not rewritten, so measuring does not
   * change the run's bits. */
  edm2_forward(&t->probe, t->probe_n, t->probe_x, t->probe_sigma, t->cfg.net.label_dim ? t->probe_labels : NULL,
               t->probe_D, NULL, 0);
  return edm2_pass_act_magnitudes(&t->probe, out, cap);
}

ec_status edm2_trainer_step(edm2_trainer *t, const float *y, const float *labels, const float *sigma,
                            const float *noise, double *loss_out) {
  const edm2_traincfg *c = &t->cfg;
  const size_t M = t->M, L = (size_t)c->net.label_dim, P = t->net.arch.params_size;
  const int R = t->per_round;
  const uint64_t kd = dropout_key(c->seed, t->nimg);
  double loss = 0;
  memset(t->grads, 0, P * sizeof(float));
  for (int r = 0; r < t->rounds; r++) {
    const size_t i0 = (size_t)r * (size_t)R;
    const float *yr = y + i0 * M, *sr = sigma + i0, *nr = noise + i0 * M;
    for (int i = 0; i < R; i++)
      for (size_t e = 0; e < M; e++) t->x[(size_t)i * M + e] = yr[(size_t)i * M + e] + sr[i] * nr[(size_t)i * M + e];
    t->pass.image_base = t->img0 + (int64_t)i0;
    edm2_forward(&t->pass, R, t->x, sr, L && labels ? labels + i0 * L : NULL, t->D, t->logvar, kd);
    edm2_loss_ref(NULL, t->loss, t->dD, t->du, t->D, yr, t->logvar, sr, R, M, c->net.sigma_data,
                  1.0 / (double)c->batch);
    for (int i = 0; i < R; i++) loss += t->loss[i];
    edm2_backward(&t->pass, t->dD, t->du, t->grads);
  }
  if (t->dist.world > 1) {
    /* Every process's share is already scaled by 1/batch: the sum is the batch's gradient. */
    ec_status st = edm2_dist_allreduce_sum_f32(&t->dist, t->grads, P);
    if (!st) st = edm2_dist_allreduce_sum_f64(&t->dist, &loss, 1);
    if (st) return st;
  }
  const edm2_lr_sched sched = {c->lr_ref, c->decay, c->rampup};
  const double lr = edm2_lr(&sched, t->nimg, c->batch);
  t->nonfinite += edm2_force_finite(t->grads, P);
  edm2_adam_step(&t->adam, t->net.params, t->grads, lr);
  t->nimg += c->batch;
  edm2_ema_update(&t->ema, t->net.params, t->nimg, c->batch);
  const double mean = loss / ((double)c->batch * (double)M);
  t->loss_sum += mean;
  t->loss_count++;
  if (loss_out) *loss_out = mean;
  if (!isfinite(mean))
    return ec_err(EC_EINVAL, "the loss became %g at image %lld (lr %g): training diverged", mean,
                  (long long)t->nimg, lr);
  return EC_OK;
}

/* ---- files ---------------------------------------------------------------------------------- */

ec_status edm2_trainer_snapshot(edm2_trainer *t) {
  const edm2_arch *a = &t->net.arch;
  char *dir = join(t->outdir, "snapshots");
  if (!dir) return ec_err(EC_ENOMEM, "out of memory");
  snap_meta meta = {t->nimg, t->cfg.batch, t->cfg.preset, t->cfg_json, EC_F16};
  snap_writer *w = NULL;
  ec_status st = snap_writer_open(&w, dir, &meta);
  free(dir);
  for (int k = 0; !st && k < t->ema.n; k++) {
    st = snap_writer_add_profile(w, t->ema.sigma_rel[k]);
    for (int i = 0; !st && i < a->n_tensors; i++) {
      const edm2_tensor *tt = &a->tensors[i];
      if (tt->kind != EDM2_PARAM) continue;
      const ec_shape s = edm2_tensor_ec_shape(tt);
      /* At nimg = 0 no step has been averaged: the snapshot holds the initial weights (the
       * reference's EMA copies are deep copies of the network at that point). */
      const float *src = t->nimg > 0 ? t->ema.avg[k] : t->net.params;
      st = snap_writer_add_tensor(w, t->ema.sigma_rel[k], tt->name, &s, EC_F32, src + tt->offset);
    }
  }
  for (int i = 0; !st && i < a->n_tensors; i++) {
    const edm2_tensor *tt = &a->tensors[i];
    if (tt->kind != EDM2_BUFFER) continue;
    const ec_shape s = edm2_tensor_ec_shape(tt);
    st = snap_writer_add_buffer(w, tt->name, &s, t->net.buffers + tt->offset);
  }
  if (!w) return st;
  if (st) {
    snap_writer_abort(&w);
    return ec_err_context(st, "writing the snapshot at %lld images", (long long)t->nimg);
  }
  return snap_writer_close(&w);
}

ec_status edm2_trainer_checkpoint(edm2_trainer *t) {
  char *dir = join(t->outdir, "checkpoints");
  if (!dir) return ec_err(EC_ENOMEM, "out of memory");
  edm2_ckpt_meta meta = {t->nimg, t->cfg.batch, t->cfg.preset, t->cfg_json, t->elapsed};
  ec_status st = edm2_ckpt_write(dir, &meta, &t->net, &t->adam, &t->ema);
  free(dir);
  return st;
}

/* ---- the loop ---------------------------------------------------------------------------------- */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int due(int64_t nimg, int64_t every) { return every > 0 && nimg % every == 0; }

/* Every process must hold the same weights: each applies the same update to the summed
 * gradient, which takes an all-reduce that gives every process the same bits (MPI advises it;
 * Open MPI's algorithms do). Checked with a fingerprint at every status line and checkpoint. */
static ec_status check_same_weights(edm2_trainer *t) {
  const size_t n = t->net.arch.params_size;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    uint32_t w;
    memcpy(&w, t->net.params + i, sizeof w);
    h = (h ^ w) * 0x100000001b3ull;
  }
  const int a = (int)(h & 0x7fffffff), b = (int)((h >> 32) & 0x7fffffff);
  int v[4] = {a, -a, b, -b}; /* max of x and of −x: equal magnitudes iff all processes agree */
  ec_status st = edm2_dist_allreduce_max_int(&t->dist, v, 4);
  if (!st && (v[0] != -v[1] || v[2] != -v[3]))
    st = ec_err(EC_EIO, "the processes hold different weights at %lld images: the MPI all-reduce did not give "
                        "every process the same sum",
                (long long)t->nimg);
  return st;
}

ec_status edm2_trainer_run(edm2_trainer *t) {
  const edm2_traincfg *c = &t->cfg;
  const edm2_dist *d = &t->dist;
  /* Rank 0 alone writes files and prints; whatever it meets is broadcast, so that every
   * process stops with its status. */
  const int root = d->rank == 0, quiet = t->opts.quiet || !root;
  ec_status st = EC_OK;
  edm2_trainlog log;
  st = edm2_trainlog_open(&log, root ? t->outdir : NULL, quiet);
  if ((st = edm2_dist_bcast_status(d, &st, 0))) {
    edm2_trainlog_close(&log);
    return st;
  }
  stopped_by = 0;
  install_stop_handlers(d->world > 1);
  const int64_t start = t->nimg;
  int64_t stop = c->duration;
  if (t->opts.stop_after > 0 && start + t->opts.stop_after < stop) stop = start + t->opts.stop_after;
  if (start >= c->duration) {
    edm2_trainlog_close(&log);
    return ec_err(EC_EINVAL, "%s: the run is complete (%lld of %lld images); give a longer --duration to continue",
                  t->outdir, (long long)start, (long long)c->duration);
  }
  ec_progress bar;
  ec_progress_begin(&bar, "training", stop - start, 0, quiet);
  double t0 = now(), tick = t0;
  int64_t tick_nimg = start;
  for (;;) {
    /* A signal seen by any process stops all of them after the same step. */
    int sig = (int)stop_signal;
    if ((st = edm2_dist_allreduce_max_int(d, &sig, 1))) break;
    const int done = t->nimg >= stop;
    const int fresh = t->nimg != start || start == 0;
    const int log_due = (due(t->nimg, c->status) || done) && fresh;
    const int snap_due = due(t->nimg, c->snapshot) && fresh;
    const int ck_due = (done || due(t->nimg, c->checkpoint) || sig) && t->nimg != start;
    if (d->world > 1 && (log_due || ck_due) && (st = check_same_weights(t))) break;
    if (log_due) {
      double tn = now();
      edm2_trainlog_status st_line = {
          .nimg = t->nimg,
          .loss = t->loss_count ? t->loss_sum / (double)t->loss_count : NAN,
          .lr = edm2_lr(&(edm2_lr_sched){c->lr_ref, c->decay, c->rampup}, t->nimg, c->batch),
          .images_per_second = tn > tick ? (double)(t->nimg - tick_nimg) / (tn - tick) : 0,
          .elapsed = t->elapsed + (tn - t0),
          .nonfinite = t->nonfinite,
      };
      edm2_act_magnitude act[32];
      if (root && due(t->nimg, c->magnitudes)) {
        int na = edm2_trainer_probe_magnitudes(t, act, 32);
        if (na < 0) st = na;
        st_line.activations = act;
        st_line.n_activations = na;
      }
      if (root && !st) st = edm2_trainlog_status_line(&log, &st_line, &t->net);
      t->loss_sum = 0;
      t->loss_count = 0;
      t->nonfinite = 0;
      tick = tn;
      tick_nimg = t->nimg;
    }
    if (!st && snap_due && root) st = edm2_trainer_snapshot(t);
    if (!st && ck_due && root) {
      double e0 = t->elapsed;
      t->elapsed = e0 + (now() - t0);
      st = edm2_trainer_checkpoint(t);
      t->elapsed = e0;
    }
    if ((log_due || snap_due || ck_due) && (st = edm2_dist_bcast_status(d, &st, 0))) break;
    if (done) break;
    if (sig) {
      stopped_by = sig;
      st = ec_err(EC_EINTR, "stopped by signal %d at %lld images; the checkpoint holds the state", sig,
                  (long long)t->nimg);
      break;
    }
    double loss;
    st = edm2_trainer_draw(t, t->y, t->labels, t->sigma, t->noise);
    if ((st = edm2_dist_agree(d, st)) ||
        (st = edm2_trainer_step(t, t->y, c->net.label_dim ? t->labels : NULL, t->sigma, t->noise, &loss)))
      break;
    ec_progress_update(&bar, t->nimg - start);
  }
  ec_progress_end(&bar);
  edm2_trainlog_close(&log);
  return st;
}
