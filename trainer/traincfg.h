/* A training run's configuration: the network, the data, and the hyper-parameters of
 * edm2-spec.md §6.1-6.2, resolved from a preset plus command-line overrides. It is printed at
 * start, stored in RUN/config.json and in the `config` attribute of every snapshot and
 * checkpoint, as ONE flat JSON object: the network's constructor arguments (so that netload
 * rebuilds the network from a snapshot) and the training keys below. */
#ifndef EDM2C_TRAINER_TRAINCFG_H
#define EDM2C_TRAINER_TRAINCFG_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/ema.h"
#include "trainer/netconfig.h"

typedef struct {
  char preset[64];          /* the preset it started from ("" for none) */
  edm2_netcfg net;          /* resolved: label_dim and image shape follow the dataset */
  char data[4096];          /* dataset path as given ("fashion-mnist", a folder, a zip) */
  int cond;                 /* use the dataset's labels */
  int64_t duration;         /* images to train for */
  int64_t batch;            /* images per optimizer step (global batch) */
  int64_t batch_gpu;        /* images per forward/backward (0 = the whole batch): rounds = batch / batch_gpu */
  double lr_ref;            /* α_ref */
  int64_t decay;            /* t_ref in iterations */
  int64_t rampup;           /* warm-up in images */
  double P_mean, P_std;     /* σ ~ exp(N(P_mean, P_std²)) */
  int64_t status, snapshot, checkpoint, magnitudes; /* intervals in images; 0 = off */
  int n_ema;
  double ema[EDM2_EMA_MAX]; /* tracked σ_rel */
  int64_t seed;
  int threads;              /* not part of the run's identity, but of its bits (docs/training.md) */
} edm2_traincfg;

/* Defaults of a preset (its network, its training settings, EMA 0.050 and 0.100, seed 0,
 * data "fashion-mnist" for fmnist and "" otherwise, cond on). */
void edm2_traincfg_from_preset(edm2_traincfg *c, const edm2_preset *p);

/* Consistency: positive sizes, intervals multiples of the batch, snapshot and checkpoint
 * intervals multiples of 1024 (as the reference asserts), the batch a multiple of batch_gpu,
 * 0 <= dropout < 1, P_std > 0, lr > 0. EC_EINVAL names the option (--snapshot, ...). */
ec_status edm2_traincfg_check(const edm2_traincfg *c);

/* The flat JSON object (network arguments first, then the training keys); free() it. */
char *edm2_traincfg_to_json(const edm2_traincfg *c);
/* Reads what to_json wrote (`what` names the file in messages). */
ec_status edm2_traincfg_from_json(edm2_traincfg *c, const char *json, const char *what);

/* EC_EINVAL naming the first setting that differs between a run's stored configuration and the
 * one asked for, among those that change what is trained (network, data, cond, batch, learning
 * rate and schedule, σ distribution, EMA profiles, seed). Duration, intervals, batch_gpu and
 * threads may change on resume. */
ec_status edm2_traincfg_same_run(const edm2_traincfg *stored, const edm2_traincfg *asked, const char *where);

#endif
