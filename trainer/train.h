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
 * image gets. Files: RUN/config.json, RUN/log.jsonl, RUN/snapshots/, RUN/checkpoints/.
 *
 * Data parallel (trainer/dist.h, opts.dist with world K > 1): process r takes images
 * [r·batch/K, (r+1)·batch/K) of every step, with the same items, σ, noise and dropout masks a
 * single process gives them; gradients (scaled by 1/batch) and the loss are summed over the
 * processes before the identical optimizer and EMA updates everywhere. Rank 0 alone writes files
 * and prints; every status is agreed, so all processes stop together with the same message. */
#ifndef EDM2C_TRAINER_TRAIN_H
#define EDM2C_TRAINER_TRAIN_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/dataset.h"
#include "trainer/dist.h"
#include "trainer/ema.h"
#include "trainer/net.h"
#include "trainer/optim.h"
#include "trainer/pass.h"
#include "trainer/sampler.h"
#include "trainer/traincfg.h"

typedef struct {
  int quiet;             /* no progress bar, no status lines on stdout */
  int64_t stop_after;    /* > 0: stop (with a checkpoint) after this many images in this process */
  const edm2_dist *dist; /* the processes sharing each step; NULL: this one alone */
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
  edm2_dist dist;        /* rank and world (EDM2_DIST_SINGLE without opts.dist) */
  int64_t local, img0;   /* this process's images per step (batch / world) and its first one */
  size_t M;              /* elements per image */
  /* One round's buffers. */
  float *y, *x, *sigma, *noise, *labels, *D, *logvar, *dD, *du;
  double *loss;
  void *raw;
  edm2_dataset *data;    /* NULL when steps are fed by the caller (tests) */
  edm2_sampler sampler;
  /* The fixed probe batch of --magnitudes (the first images of the dataset, fixed σ and noise),
   * evaluated in eval mode with its own pass; allocated on first use. */
  edm2_pass probe;
  int probe_n;
  float *probe_x, *probe_sigma, *probe_labels, *probe_D;
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

/* One optimizer step on images supplied by the caller: y (local, C, H, W) encoded images,
 * labels (local, label_dim) or NULL, sigma (local), noise (local, C, H, W) unit normal (the
 * network sees y + σ·noise); local = batch in a single process. Returns the mean per-element
 * loss of the whole batch through *loss. */
ec_status edm2_trainer_step(edm2_trainer *t, const float *y, const float *labels, const float *sigma,
                            const float *noise, double *loss);

/* The step's inputs as the loop draws them: images nimg + img0 … nimg + img0 + local − 1 of the
 * run (nimg … nimg + batch − 1 in a single process). */
ec_status edm2_trainer_draw(edm2_trainer *t, float *y, float *labels, float *sigma, float *noise);

/* Trains until cfg.duration (or opts.stop_after, or SIGINT/SIGTERM after the current step),
 * writing status lines, snapshots and checkpoints on their schedules and a checkpoint at the
 * end. EC_EINTR when stopped by a signal (after the checkpoint). With several processes a
 * signal seen by any of them stops all after the same step, and SIGUSR1 (which Open MPI's mpirun
 * forwards to every process) stops them too. */
ec_status edm2_trainer_run(edm2_trainer *t);

/* Activation magnitudes of the current weights on the probe batch (pass.h); returns the
 * number of buckets, or a negative status. */
int edm2_trainer_probe_magnitudes(edm2_trainer *t, edm2_act_magnitude *out, int cap);

/* The signal that stopped the last run (0: none), the same in every process; programs exit with
 * 128 + it. */
int edm2_trainer_stop_signal(void);

/* Writes the snapshot of the current state (all EMA profiles, float16). */
ec_status edm2_trainer_snapshot(edm2_trainer *t);
ec_status edm2_trainer_checkpoint(edm2_trainer *t);

#endif
