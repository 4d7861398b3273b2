/* The EDM2 training loop on the CPU backend (edm2-spec.md §6.3-6.9).
 *
 *   edm2_trainer t;
 *   edm2_trainer_init(&t, &cfg, "RUN", &opts);   // network, optimizer, EMAs; resumes from the
 *                                                 // newest checkpoint in RUN/checkpoints
 *   edm2_trainer_run(&t);                         // until cfg.duration images, or a signal
 *   edm2_trainer_free(&t);
 *
 * One step, in the reference's order: for each accumulation round, batch_gpu images (drawn by
 * the reference's sampler, encoded x/127.5 − 1), σ = exp(P_mean + P_std·z), noise n·σ, the loss
 * Σ_elements ℓ / batch back-propagated into the gradient; then lr(nimg), non-finite gradients
 * to 0, Adam; nimg += batch; every EMA updated. Random numbers come from core/rng.h as pure
 * functions of (seed, image number): σ of image k of the run from stream "sigma" at index k, its
 * noise from stream "noise" at k·M …, dropout from a per-step stream indexed by image position
 * in the step, so neither the accumulation rounds nor the thread count change which numbers an
 * image gets. Files: RUN/config.json, RUN/log.jsonl, RUN/snapshots/, RUN/checkpoints/. */
#ifndef EDM2C_TRAINER_TRAIN_H
#define EDM2C_TRAINER_TRAIN_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/dataset.h"
#include "trainer/ema.h"
#include "trainer/net.h"
#include "trainer/optim.h"
#include "trainer/pass.h"
#include "trainer/sampler.h"
#include "trainer/traincfg.h"

typedef struct {
  int quiet;             /* no progress bar, no status lines on stdout */
  int64_t stop_after;    /* > 0: stop (with a checkpoint) after this many images in this process */
} edm2_train_opts;

typedef struct {
  edm2_traincfg cfg;
  edm2_train_opts opts;
  char *outdir, *cfg_json;
  edm2_net net;
  edm2_pass pass;
  edm2_adam adam;
  edm2_ema ema;
  float *grads;
  int64_t nimg, start_nimg;
  double elapsed;        /* training seconds before this process (from the checkpoint) */
  int rounds, per_round; /* accumulation rounds per step, images per round */
  size_t M;              /* elements per image */
  /* One round's buffers. */
  float *y, *x, *sigma, *noise, *labels, *D, *logvar, *dD, *du;
  double *loss;
  void *raw;
  edm2_dataset *data;    /* NULL when steps are fed by the caller (tests) */
  edm2_sampler sampler;
  /* Statistics since the last status line. */
  double loss_sum;
  int64_t loss_count, nonfinite;
} edm2_trainer;

/* Builds everything for cfg (checked), creating RUN and its folders, and resumes from the
 * newest checkpoint when there is one (its config must describe the same run). With data =
 * NULL the dataset named by cfg is opened; tests pass their own through edm2_trainer_step. */
ec_status edm2_trainer_init(edm2_trainer *t, const edm2_traincfg *cfg, const char *outdir,
                            const edm2_train_opts *opts);
void edm2_trainer_free(edm2_trainer *t);

/* One optimizer step on images supplied by the caller: y (batch, C, H, W) encoded images,
 * labels (batch, label_dim) or NULL, sigma (batch), noise (batch, C, H, W) unit normal (the
 * network sees y + σ·noise). Returns the mean per-element loss through *loss. */
ec_status edm2_trainer_step(edm2_trainer *t, const float *y, const float *labels, const float *sigma,
                            const float *noise, double *loss);

/* The step's inputs as the loop draws them: images nimg … nimg + batch − 1 of the run. */
ec_status edm2_trainer_draw(edm2_trainer *t, float *y, float *labels, float *sigma, float *noise);

/* Trains until cfg.duration (or opts.stop_after, or SIGINT/SIGTERM after the current step),
 * writing status lines, snapshots and checkpoints on their schedules and a checkpoint at the
 * end. EC_EINTR when stopped by a signal (after the checkpoint). */
ec_status edm2_trainer_run(edm2_trainer *t);

/* The signal that stopped the last run (0: none); programs exit with 128 + it. */
int edm2_trainer_stop_signal(void);

/* Writes the snapshot of the current state (all EMA profiles, float16). */
ec_status edm2_trainer_snapshot(edm2_trainer *t);
ec_status edm2_trainer_checkpoint(edm2_trainer *t);

#endif
