/* The best EMA length of a sweep: the σ_rel that minimises a metric, from the rows of the
 * results database (analysis/results_db.h).
 *
 * A sweep is a group of rows that differ only in their global σ_rel, seed and repeat: same run,
 * metric, guidance, guiding model, snapshot time, per-tensor rules and image count (rows of
 * different image counts are never averaged together: FID depends on it). Half-life rows are
 * not part of any sweep. The repeats at each σ_rel are averaged (min and max are kept), the
 * discrete minimum of the averages is found, and a parabola is fitted by least squares to it and
 * up to two neighbours on each side. Its vertex is the answer when the parabola opens upward and
 * the vertex lies within the fitted σ_rel; otherwise the discrete minimum is, with a reason.
 * The fit is in σ_rel itself, not log σ_rel, as EDM2's sweeps are evenly spaced in σ_rel. */
#ifndef EDM2C_ANALYSIS_BEST_SIGMA_H
#define EDM2C_ANALYSIS_BEST_SIGMA_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/results_db.h"
#include "core/status.h"

typedef enum {
  EDM2_FIT_PARABOLA,   /* "parabola": the vertex of the fitted parabola */
  EDM2_FIT_FEW,        /* "few points": fewer than 3 σ_rel values, nothing to fit */
  EDM2_FIT_FLAT,       /* "flat": all values equal, or the fit has no curvature */
  EDM2_FIT_EDGE,       /* "edge": the minimum is at the smallest or largest σ_rel: widen the sweep */
  EDM2_FIT_NOT_CONVEX, /* "not convex": the fitted parabola opens downward (noise) */
  EDM2_FIT_OUTSIDE     /* "outside": the vertex lies beyond the fitted σ_rel (noise) */
} edm2_fit_kind;

/* The name above ("parabola", "edge", ...). */
const char *edm2_fit_name(edm2_fit_kind k);

typedef struct {
  double sigma_best, value_best; /* the vertex for EDM2_FIT_PARABOLA, else the discrete minimum */
  double sigma_min, value_min;   /* the discrete minimum (the first one when tied) */
  edm2_fit_kind fit;
  int points; /* σ_rel values given */
  int fitted; /* of which the parabola was fitted to (0 when none was fitted) */
} edm2_fit;

/* The minimum of value(sigma) over n >= 1 points, sigma strictly increasing, all finite
 * (EC_EINVAL otherwise). */
ec_status edm2_fit_min(const double *sigma, const double *value, int n, edm2_fit *out);

/* The repeats at one σ_rel of a sweep. */
typedef struct {
  double sigma_rel, mean, min, max;
  int count;
} edm2_sigma_point;

typedef struct {
  /* The sweep's key; the strings point into the rows given to edm2_best_sigma ("" = none). */
  const char *run, *metric, *gnet, *tensor_rule;
  double guidance;
  int64_t nimg, num;
  edm2_fit fit;
  edm2_sigma_point *points; /* fit.points of them, by increasing σ_rel */
} edm2_best;

typedef struct {
  edm2_best *best;
  size_t n;
} edm2_best_list;

/* One edm2_best per sweep found in rows (in any order), ordered by run, metric, guidance, gnet,
 * nimg, tensor_rule, num. `out` must be zeroed or freed; on failure it is left empty. */
ec_status edm2_best_sigma(const edm2_result *rows, size_t n, edm2_best_list *out);
void edm2_best_list_free(edm2_best_list *l);

#endif
