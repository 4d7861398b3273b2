/* EMA-length studies of a training run (paper §3.3, Figures 4, 5 and 14), the engine behind
 * `edm2-sweep` and `edm2-nightly` (docs/analysis.md).
 *
 *   edm2_sweep_opts o;
 *   edm2_sweep_opts_default(&o);
 *   o.run = "runs/fmnist"; o.sigma_rel = "0.010,0.020,...,0.250";
 *   edm2_db *db; edm2_db_open(&db, "runs/fmnist/results.sqlite");
 *   edm2_sweep_ema(&o, db, &dist, &report);
 *
 * A sweep at snapshot time t reconstructs every EMA length whose rows are missing from the
 * database in ONE streaming pass over the snapshots (posthoc/reconstruct.h), into temporary
 * model files under RUN/.sweep (removed afterwards), then evaluates each model with the metric
 * and stores one row per (EMA length, guidance, repeat) as soon as it is known, so that a sweep
 * killed midway loses at most the evaluation in flight and a rerun does only what is missing.
 * Rows that exist are skipped unless `redo`.
 *
 * Metrics (rows' `metric`):
 *   val-loss   analysis/valloss.h on the held-out data: Fashion-MNIST's test split for runs
 *              trained on fashion-mnist, else `val_data` [val_first, val_first + num) (required);
 *              num images (default 512) × 4 σ; repeat r uses noise seed `seed` + r.
 *   fid,       edm2-metrics gen (metrics/genscore.h) of `num` images (default 50000) against
 *   fd_dinov2  `ref` statistics; repeat r uses seeds seed + r·num …; `guidance` values other
 *              than 1 need `gnet`.
 * Under mpirun the evaluations are shared among the processes (model i on rank i mod K for
 * val-loss; the images of each evaluation for fid/fd_dinov2); rank 0 reconstructs. */
#ifndef EDM2C_ANALYSIS_SWEEP_H
#define EDM2C_ANALYSIS_SWEEP_H

#include <stdint.h>
#include <stdio.h>

#include "analysis/results_db.h"
#include "core/status.h"
#include "trainer/dist.h"

typedef struct {
  const char *run;         /* run directory: RUN/snapshots, RUN/config.json */
  const char *metric;      /* "val-loss" (default), "fid", "fd_dinov2" */
  const char *sigma_rel;   /* EMA lengths, posthoc/ema_list.h syntax; NULL with half_life only */
  const char *half_life;   /* exponential EMAs, "2Mi,500000" (posthoc/plan.h); NULL: none */
  const char *use_profiles; /* stored profiles that enter the reconstruction (NULL: all) */
  int64_t num;             /* images per evaluation; 0: the metric's default */
  int repeats;             /* >= 1 */
  int64_t seed;            /* the first seed (val-loss noise; fid image seeds) */
  const double *guidance;  /* nguidance values (default one: 1.0) */
  int nguidance;
  const char *gnet;        /* guiding network for guidance != 1 */
  const char *ref;         /* reference statistics (fid, fd_dinov2) */
  const char *weights_dir; /* detector weights (NULL: default) */
  const char *val_data;    /* val-loss data for runs not trained on fashion-mnist */
  int64_t val_first;
  int steps;               /* sampler steps for fid (default 32) */
  int redo;                /* re-evaluate rows that exist */
  int threads;             /* per process; 0: all online CPUs */
  int64_t mem_limit;       /* reconstruction budget in bytes; 0: 4 GiB */
  int quiet;               /* no progress bars */
  FILE *log;               /* one line per evaluation (NULL: none) */
} edm2_sweep_opts;

void edm2_sweep_opts_default(edm2_sweep_opts *o);

typedef struct {
  int evaluated; /* rows written */
  int skipped;   /* rows that existed */
  int models;    /* models reconstructed */
  double seconds;
} edm2_sweep_report;

/* The times (nimg) of the run's usable snapshots, ascending (nimg > 0). EC_EINVAL naming the
 * directory when there are none. *times is allocated (free with free()). */
ec_status edm2_sweep_times(const char *run, int64_t **times, int *n);

/* The EMA sweep at snapshot time `at` (one of the run's snapshot times), adding to rep.
 * Collective under mpirun. */
ec_status edm2_sweep_ema(const edm2_sweep_opts *o, int64_t at, edm2_db *db, const edm2_dist *d,
                         edm2_sweep_report *rep);

/* Figure 5b: for every parameter tensor whose name matches one of `tensors` (comma-separated
 * fnmatch globs), the metric with that tensor's EMA length set to each σ of o->sigma_rel while
 * all others stay at base_sigma. One reconstruction pass makes the base and every σ; the
 * variants swap single tensors into the base network. Rows: sigma_rel = the tensor's EMA length
 * (base_sigma included: the base model), tensor_rule = the hash of "per-tensor: TENSOR at
 * sigma_rel, every other tensor at BASE" (the text stored with it), so each tensor is one sweep
 * with its own best σ. */
ec_status edm2_sweep_per_tensor(const edm2_sweep_opts *o, int64_t at, double base_sigma, const char *tensors,
                                edm2_db *db, const edm2_dist *d, edm2_sweep_report *rep);

/* Figure 4's claim on the run's own snapshot layout: the relative L2 error of the least-squares
 * reconstruction of each target profile (o->sigma_rel) at `at` when only every k-th snapshot is
 * used (k = 1, 2, 4, …, while at least 2 snapshots remain) and when only the last m are used.
 * Rows: metric "profile-error", num = snapshots used, seed = stride k (0 for "last m"),
 * value = relative error. Printed as a table to `out` as well. */
ec_status edm2_sweep_profile_accuracy(const edm2_sweep_opts *o, int64_t at, edm2_db *db, FILE *out,
                                      edm2_sweep_report *rep);

/* The hash edm2_db stores for a per-tensor rule text ("enc.8x8.block0.conv_res0.weight=0.05"):
 * 8 hex digits of FNV-1a 64. */
void edm2_sweep_rule_hash(const char *text, char out[9]);

#endif
