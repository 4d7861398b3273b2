/* The reconstruction engine: models of any EMA length from the stored snapshots, in one
 * streaming pass for all targets.
 *
 * For each tensor, in slices sized from the memory budget, the N stored slices (one per stored
 * profile at each usable snapshot time) are gathered and all K outputs computed at once as a
 * (K x N) * (N x P) product (posthoc/combine.h: deterministic, the same bits whatever else is
 * computed), accumulated in float32 (float64 on request).
 * Every snapshot byte is read once whatever K is. Per-tensor rules only change the coefficient
 * matrix of the tensors they match. Buffers (Fourier frequencies and phases) are copied from the
 * latest snapshot, not averaged, after checking that every snapshot agrees. Outputs go through
 * temporary files and appear only when complete. */
#ifndef EDM2C_POSTHOC_RECONSTRUCT_H
#define EDM2C_POSTHOC_RECONSTRUCT_H

#include <stdint.h>
#include <stdio.h>

#include "posthoc/plan.h"

enum { RECON_H5 = 0, RECON_SAFETENSORS = 1 };

typedef struct {
  plan_args plan;
  const char *out_dir;        /* default "phema" */
  int format;                 /* RECON_H5 or RECON_SAFETENSORS */
  ec_dtype out_dtype;         /* EC_F32 (default) or EC_F16 */
  int nrules;
  const char *const *rules;   /* --tensor-sigma texts */
  int64_t mem_limit;          /* bytes; default 4 GiB */
  int threads;                /* default: online CPUs */
  int skip_existing, force;
  int accumulate_f64;
  int quiet;                  /* no progress bar */
} recon_args;

void recon_args_init(recon_args *a);

typedef struct {
  char *path;
  char label[64]; /* "0.130", "hl2097152", "0.130-t1a2b3c4d" */
  int skipped;    /* --skip-existing found it */
  double rel_error, norm2;
  const char *method;
} recon_output;

typedef struct {
  int noutputs, written;
  recon_output *outputs;
  int nsnapshots, ninputs, ntensors;
  int64_t bytes_read, params;
  double seconds;
  double setup_seconds; /* of which: checking the snapshots and mapping their datasets */
  int fd_per_read;      /* snapshot files opened for each read: `ulimit -n` left no room to keep them */
  int64_t peak_rss;    /* bytes */
  int64_t slice_elems; /* elements per slice chosen from the budget */
  int64_t budget_min;  /* the smallest --mem-limit this run could use */
} recon_report;

/* Runs the reconstruction. `p` receives the solve (its problems list the directory's issues
 * whatever the status; the caller prints them); warnings go to `err`. */
ec_status reconstruct(const recon_args *a, plan *p, recon_report *rep, FILE *err);
void recon_report_free(recon_report *r);

/* The output file name of a target ("phema-000033554432-0.130.h5"). */
void recon_output_name(char *buf, size_t size, int64_t nimg, const char *label, int format);

#endif
