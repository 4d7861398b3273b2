/* Pieces shared by edm2-metrics' commands (metrics/edm2_metrics.c dispatches): the options every
 * scoring command has, reading and checking the reference statistics before any image is
 * scored, and printing the distances. */
#ifndef EDM2C_METRICS_CMD_COMMON_H
#define EDM2C_METRICS_CMD_COMMON_H

#include <stdint.h>

#include "core/status.h"
#include "metrics/scorer.h"
#include "metrics/stats_io.h"
#include "trainer/dist.h"

#define PROG "edm2-metrics"

typedef struct {
  int want[EDM2_METRIC_COUNT]; /* --metrics (default both) */
  const char *weights_dir;     /* --weights-dir */
  int64_t threads;             /* --threads */
  int json, quiet, force;
} metrics_common;

void metrics_common_default(metrics_common *c);

/* The reference statistics of every wanted metric in `path` (HDF5 stats or .npz), checked now:
 * a metric the file lacks ("mixed metrics") or a set of the wrong dimension is an error naming
 * the file. A .npz (one unnamed set) stands for the metric of its dimension, and only one metric
 * may then be wanted. ref[m] points into *f. */
ec_status metrics_ref_load(const char *path, const int want[EDM2_METRIC_COUNT], edm2_stats_file *f,
                           edm2_moments *ref[EDM2_METRIC_COUNT]);

/* The Fréchet distance of every wanted metric between got and ref, printed ("fid = 2.5612" lines,
 * or one JSON object with num_images) by rank 0. */
ec_status metrics_report(const edm2_stats_file *got, edm2_moments *const ref[EDM2_METRIC_COUNT],
                         const int want[EDM2_METRIC_COUNT], const metrics_common *c, const edm2_dist *d);

/* The commands (argv[0] is the command's name). Usage errors are printed here and return
 * EC_EUSAGE; other errors are left to the caller to print (rank 0). */
ec_status cmd_ref(int argc, char **argv, const edm2_dist *d);
ec_status cmd_calc(int argc, char **argv, const edm2_dist *d);
ec_status cmd_features(int argc, char **argv, const edm2_dist *d);
ec_status cmd_gen(int argc, char **argv, const edm2_dist *d);

#endif
