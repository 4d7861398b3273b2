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

enum { STREAM_SIGMA = 1, STREAM_NOISE = 2, STREAM_DROPOUT = 3 };

static uint64_t stream_key(int64_t seed, int stream) { return mix64(mix64((uint64_t)seed) + (uint64_t)stream); }

/* The dropout stream of the step that starts at nimg. */
static uint64_t dropout_key(int64_t seed, int64_t nimg) {
  return mix64(stream_key(seed, STREAM_DROPOUT) ^ (uint64_t)nimg);
}

/* ---- signals ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

int edm2_trainer_stop_signal(void) { return (int)stop_signal; }

/* SIGINT and SIGTERM finish the current step, write a checkpoint and exit. */
static void install_stop_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
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
  size_t B = (size_t)c->batch, R = (size_t)t->per_round, M = t->M;
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
  if (in->type != EDM2_ITEM_U8)
    return ec_err(EC_EINVAL, "%s: latent datasets (float32 items) are not supported by this trainer yet", in->path);
  if (in->height != in->width)
    return ec_err(EC_EINVAL, "%s: images are %dx%d; the network needs square images", in->path, in->height, in->width);
  c->net.img_resolution = in->width;
  c->net.img_channels = in->channels;
  c->net.label_dim = in->label_dim;
  return EC_OK;
}

ec_status edm2_trainer_init(edm2_trainer *t, const edm2_traincfg *cfg, const char *outdir, const edm2_train_opts *opts) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  if (opts) t->opts = *opts;
  ec_status st = EC_OK;
  char *ckdir = NULL, *snapdir = NULL, *stored = NULL, *ckpath = NULL, *cfgpath = NULL;
  if (outdir) {
    if (!(t->outdir = strdup(outdir))) return ec_err(EC_ENOMEM, "out of memory");
    if ((st = open_data(t))) goto done;
  }
  if ((st = edm2_traincfg_check(&t->cfg))) goto done;
  t->cfg_json = edm2_traincfg_to_json(&t->cfg);
  if (!t->cfg_json) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  const edm2_traincfg *c = &t->cfg;
  t->per_round = (int)(c->batch_gpu ? c->batch_gpu : c->batch);
  t->rounds = (int)(c->batch / t->per_round);
  t->M = (size_t)c->net.img_channels * c->net.img_resolution * c->net.img_resolution;
  if ((st = edm2_net_init(&t->net, &c->net))) goto done;
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
    goto done;

  if (t->outdir) {
    ckdir = join(t->outdir, "checkpoints");
    snapdir = join(t->outdir, "snapshots");
    cfgpath = join(t->outdir, "config.json");
    if (!ckdir || !snapdir || !cfgpath) {
      st = ec_err(EC_ENOMEM, "out of memory");
      goto done;
    }
    /* An existing run directory must hold this run. */
    if (ec_is_dir(t->outdir)) {
      st = read_text(cfgpath, &stored);
      if (st == EC_ENOENT) {
        st = EC_OK;
      } else if (!st) {
        edm2_traincfg old;
        if ((st = edm2_traincfg_from_json(&old, stored, cfgpath)) ||
            (st = edm2_traincfg_same_run(&old, &t->cfg, t->outdir)))
          goto done;
      } else {
        goto done;
      }
    }
    if ((st = ec_mkdirs(ckdir)) || (st = ec_mkdirs(snapdir))) goto done;
    if (!stored && (st = write_config_json(t->outdir, t->cfg_json))) goto done;
    int64_t ck_nimg;
    if ((st = edm2_ckpt_latest(ckdir, &ckpath, &ck_nimg))) goto done;
    if (ckpath) {
      char *ck_cfg = NULL;
      int64_t nimg, step;
      edm2_traincfg old;
      if ((st = edm2_ckpt_read_meta(ckpath, &ck_cfg, &nimg, &step, &t->elapsed))) goto done;
      st = edm2_traincfg_from_json(&old, ck_cfg, ckpath);
      if (!st) st = edm2_traincfg_same_run(&old, &t->cfg, ckpath);
      free(ck_cfg);
      if (st || (st = edm2_ckpt_load(ckpath, &t->net, &t->adam, &t->ema))) goto done;
      t->nimg = nimg;
    }
    st = edm2_sampler_init(&t->sampler, edm2_dataset_get_info(t->data)->n, c->seed, 0, 1, t->nimg);
    if (st) goto done;
  }
  t->start_nimg = t->nimg;
done:
  free(ckdir);
  free(snapdir);
  free(stored);
  free(ckpath);
  free(cfgpath);
  if (st) edm2_trainer_free(t);
  return st;
}

void edm2_trainer_free(edm2_trainer *t) {
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
  for (int64_t j = 0; j < c->batch; j++) {
    const int64_t item = edm2_sampler_next(&t->sampler);
    ec_status st = edm2_dataset_read(t->data, item, t->raw, L ? labels + (size_t)j * L : NULL);
    if (st) return st;
    const uint8_t *px = t->raw;
    for (size_t e = 0; e < M; e++) y[(size_t)j * M + e] = (float)px[e] / 127.5f - 1.0f;
    const uint64_t k = (uint64_t)(t->nimg + j);
    sigma[j] = (float)exp(ec_rng_normal(ks, k) * c->P_std + c->P_mean);
    ec_rng_normal_fill(noise + (size_t)j * M, M, kn, k * M);
  }
  return EC_OK;
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
    t->pass.image_base = (int64_t)i0;
    edm2_forward(&t->pass, R, t->x, sr, L && labels ? labels + i0 * L : NULL, t->D, t->logvar, kd);
    edm2_loss_ref(NULL, t->loss, t->dD, t->du, t->D, yr, t->logvar, sr, R, M, c->net.sigma_data,
                  1.0 / (double)c->batch);
    for (int i = 0; i < R; i++) loss += t->loss[i];
    edm2_backward(&t->pass, t->dD, t->du, t->grads);
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
      ec_shape s = {.ndim = tt->ndim};
      for (int d = 0; d < tt->ndim; d++) s.dims[d] = tt->shape[d];
      /* At nimg = 0 no step has been averaged: the snapshot holds the initial weights (the
       * reference's EMA copies are deep copies of the network at that point). */
      const float *src = t->nimg > 0 ? t->ema.avg[k] : t->net.params;
      st = snap_writer_add_tensor(w, t->ema.sigma_rel[k], tt->name, &s, EC_F32, src + tt->offset);
    }
  }
  for (int i = 0; !st && i < a->n_tensors; i++) {
    const edm2_tensor *tt = &a->tensors[i];
    if (tt->kind != EDM2_BUFFER) continue;
    ec_shape s = {.ndim = tt->ndim};
    for (int d = 0; d < tt->ndim; d++) s.dims[d] = tt->shape[d];
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

ec_status edm2_trainer_run(edm2_trainer *t) {
  const edm2_traincfg *c = &t->cfg;
  ec_status st = EC_OK;
  edm2_trainlog log;
  if ((st = edm2_trainlog_open(&log, t->outdir, t->opts.quiet))) return st;
  install_stop_handlers();
  const int64_t start = t->nimg;
  int64_t stop = c->duration;
  if (t->opts.stop_after > 0 && start + t->opts.stop_after < stop) stop = start + t->opts.stop_after;
  if (start >= c->duration) {
    edm2_trainlog_close(&log);
    return ec_err(EC_EINVAL, "%s: the run is complete (%lld of %lld images); give a longer --duration to continue",
                  t->outdir, (long long)start, (long long)c->duration);
  }
  ec_progress bar;
  ec_progress_begin(&bar, "training", stop - start, 0, t->opts.quiet);
  double t0 = now(), tick = t0;
  int64_t tick_nimg = start;
  for (;;) {
    const int done = t->nimg >= stop;
    const int fresh = t->nimg != start || start == 0;
    if ((due(t->nimg, c->status) || done) && fresh) {
      double tn = now();
      edm2_trainlog_status st_line = {
          .nimg = t->nimg,
          .loss = t->loss_count ? t->loss_sum / (double)t->loss_count : NAN,
          .lr = edm2_lr(&(edm2_lr_sched){c->lr_ref, c->decay, c->rampup}, t->nimg, c->batch),
          .images_per_second = tn > tick ? (double)(t->nimg - tick_nimg) / (tn - tick) : 0,
          .elapsed = t->elapsed + (tn - t0),
          .nonfinite = t->nonfinite,
      };
      if ((st = edm2_trainlog_status_line(&log, &st_line, &t->net))) break;
      t->loss_sum = 0;
      t->loss_count = 0;
      t->nonfinite = 0;
      tick = tn;
      tick_nimg = t->nimg;
    }
    if (due(t->nimg, c->snapshot) && fresh && (st = edm2_trainer_snapshot(t))) break;
    if ((done || due(t->nimg, c->checkpoint) || stop_signal) && t->nimg != start) {
      double e0 = t->elapsed;
      t->elapsed = e0 + (now() - t0);
      st = edm2_trainer_checkpoint(t);
      t->elapsed = e0;
      if (st) break;
    }
    if (done) break;
    if (stop_signal) {
      st = ec_err(EC_EINTR, "stopped by signal %d at %lld images; the checkpoint holds the state", (int)stop_signal,
                  (long long)t->nimg);
      break;
    }
    double loss;
    if ((st = edm2_trainer_draw(t, t->y, t->labels, t->sigma, t->noise)) ||
        (st = edm2_trainer_step(t, t->y, c->net.label_dim ? t->labels : NULL, t->sigma, t->noise, &loss)))
      break;
    ec_progress_update(&bar, t->nimg - start);
  }
  ec_progress_end(&bar);
  edm2_trainlog_close(&log);
  return st;
}
