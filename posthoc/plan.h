/* The post-hoc plan: which stored profiles enter, which targets are wanted, and their weights.
 *
 * Shared by `posthoc-ema --solve-only` (prints the weights) and the reconstruction (applies them):
 * scan and check the snapshot directory (metadata only), pick the usable snapshots with
 * 0 < nimg <= at and the selected stored profiles, build the targets from --sigma-rel and
 * --half-life, and solve. */
#ifndef EDM2C_POSTHOC_PLAN_H
#define EDM2C_POSTHOC_PLAN_H

#include <stdint.h>

#include "posthoc/phema_math.h"
#include "posthoc/snapshot_dir.h"
#include "posthoc/solve.h"

typedef struct {
  const char *snapshots;      /* directory; NULL: snapdir_default() */
  const char *sigma_rel;      /* EDM2 list syntax, or NULL */
  const char *half_life;      /* comma-separated NIMG values (Ki/Mi/Gi), or NULL */
  int64_t at;                 /* target time in images; -1: the latest usable snapshot */
  const char *use_profiles;   /* stored profiles to use (EDM2 list syntax), NULL: all */
  phema_solve_opts solve;
  /* Further power targets solved after the main ones (per-tensor rules); not de-duplicated
   * against them. */
  const double *extra_sigma;
  int nextra;
  /* Keep every usable snapshot's tables and dataset maps in the summaries (SNAPDIR_MAP), for a
   * reconstruction that reads them next. */
  int map_datasets;
} plan_args;

void plan_args_init(plan_args *a);

typedef struct {
  int snap;  /* index into plan.dir.entries */
  int prof;  /* index of the profile within that snapshot (sorted by sigma_rel) */
  int64_t nimg;
  double sigma_rel, gamma;
} plan_input;

typedef struct {
  phema_profile profile; /* its t is the plan's `at` */
  char label[48];        /* "0.130" or "hl2097152" (as in output file names) */
} plan_target;

typedef struct {
  snapdir dir;
  snap_summary *summaries;
  snap_problems problems; /* from the directory check; print them whatever the status */
  int64_t at, latest;
  ec_dtype snapshot_dtype;
  int nprofiles;      /* stored profiles per snapshot in the directory */
  double *profiles;   /* their sigma_rel values */
  int ninputs;
  plan_input *inputs; /* sorted by (nimg, sigma_rel) */
  int ntargets, nmain;
  plan_target *targets; /* power targets by sigma_rel, then exponential by half-life (nmain),
                         * then the extra ones ("rule-0.200") */
  double *x;            /* weights, row-major ninputs x ntargets */
  phema_diag *diag;     /* ntargets */
} plan;

/* Builds and solves the plan. On failure the message says what is wrong; if the directory
 * check found errors, they are in p->problems (status EC_EFORMAT). Free with plan_free either
 * way. */
ec_status plan_build(plan *p, const plan_args *a);
void plan_free(plan *p);

/* Parses "2Mi,500000" into sorted, de-duplicated positive image counts. */
ec_status plan_parse_half_lives(const char *text, double **values, int *count);

#endif
