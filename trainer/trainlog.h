/* What a training run reports: RUN/log.jsonl, one JSON object per status interval, and a plain
 * line per interval on stdout (unless quiet).
 *
 * log.jsonl keys: nimg, kimg, loss (mean per-element loss ℓ over the interval's steps), lr (at
 * the next step), images_per_second, elapsed (training seconds, resumes included), nonfinite
 * (gradient elements set to 0 since the last line), timestamp (Unix seconds), and weights:
 * {"enc32": {"max": …, "mean": …}, "dec8": …} — per resolution bucket, the max and mean over
 * every output feature of the dimension-weighted L2 norm sqrt(Σ w²/fan_in) of the trainable
 * weights of that bucket's blocks (paper Appendix A.6; gains excluded). With --magnitudes, the
 * lines at those intervals also hold "activations": {"enc32": {"max", "mean"}, …}, measured on a
 * fixed probe batch (trainer/pass.h, edm2_pass_act_magnitudes). */
#ifndef EDM2C_TRAINER_TRAINLOG_H
#define EDM2C_TRAINER_TRAINLOG_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "trainer/net.h"
#include "trainer/pass.h"

typedef struct {
  FILE *f; /* NULL without a run directory */
  char *path;
  int quiet;
} edm2_trainlog;

typedef struct {
  int64_t nimg;
  double loss, lr, images_per_second, elapsed;
  int64_t nonfinite;
  const edm2_act_magnitude *activations; /* per bucket (--magnitudes), or NULL */
  int n_activations;
} edm2_trainlog_status;

/* Opens RUN/log.jsonl for appending (outdir NULL: stdout lines only). */
ec_status edm2_trainlog_open(edm2_trainlog *l, const char *outdir, int quiet);
ec_status edm2_trainlog_status_line(edm2_trainlog *l, const edm2_trainlog_status *s, const edm2_net *net);
void edm2_trainlog_close(edm2_trainlog *l);

/* The weight magnitudes of one bucket ("enc32"): max and mean; 0 when the bucket has none. */
int edm2_weight_magnitudes(const edm2_net *net, const char *bucket, double *max, double *mean);

#endif
