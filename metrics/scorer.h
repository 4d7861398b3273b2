/* What ref, calc and gen share: uint8 images in, feature statistics per metric out, with the
 * ranks of an mpirun job each adding their share and the statistics merged exactly at the end.
 *
 *   edm2_scorer s;
 *   edm2_scorer_init(&s, want, weights_dir);          // want[m]: compute metric m
 *   edm2_scorer_add(&s, img, n, C, H, W);             // any number of times, any sizes
 *   edm2_scorer_reduce(&s, &dist);                    // collective: every rank gets the total
 *   edm2_scorer_result(&s, &file);                    // mu and sigma per metric
 *   edm2_scorer_free(&s);
 *
 * Merging ranks (collective, two all-reduces of float64 sums): the global mean
 * m = Σ n_r·mean_r / N, then M2 = Σ_r [M2_r + n_r (mean_r − m)(mean_r − m)ᵀ] — the centred
 * pairwise form of metrics/stats.h, exact whatever the split, never Σxxᵀ − Nμμᵀ. */
#ifndef EDM2C_METRICS_SCORER_H
#define EDM2C_METRICS_SCORER_H

#include <stdint.h>

#include "core/status.h"
#include "metrics/detector.h"
#include "metrics/stats.h"
#include "metrics/stats_io.h"
#include "trainer/dist.h"

typedef struct {
  int want[EDM2_METRIC_COUNT];
  edm2_detector *det[EDM2_METRIC_COUNT];
  edm2_stats stats[EDM2_METRIC_COUNT];
  float *feat; /* one image's features */
  int64_t added;
} edm2_scorer;

/* Parses a --metrics list ("fid", "fd_dinov2", "fid,fd_dinov2") into want[]. */
ec_status edm2_metrics_list_parse(const char *opt, const char *s, int want[EDM2_METRIC_COUNT]);

/* Loads the detectors of the wanted metrics from weights_dir (NULL: the default). */
ec_status edm2_scorer_init(edm2_scorer *s, const int want[EDM2_METRIC_COUNT], const char *weights_dir);
/* Features of n images (n, C, H, W) into every wanted metric's statistics. NaN or infinite
 * features fail, naming the metric (and `what`, the images' source, if not NULL). */
ec_status edm2_scorer_add(edm2_scorer *s, const uint8_t *img, int n, int C, int H, int W, const char *what);
/* Empties the statistics (the detectors stay loaded), for another set of images. */
void edm2_scorer_reset(edm2_scorer *s);
/* Collective over d: afterwards every rank holds the statistics of all ranks' images. */
ec_status edm2_scorer_reduce(edm2_scorer *s, const edm2_dist *d);
/* The statistics of the wanted metrics (f->metric[m]; dim 0 for the others), num_images set.
 * Fails when fewer than 2 images were added. f is zeroed first; free with edm2_stats_file_free. */
ec_status edm2_scorer_result(const edm2_scorer *s, edm2_stats_file *f);
void edm2_scorer_free(edm2_scorer *s);

#endif
