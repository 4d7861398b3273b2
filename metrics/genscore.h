/* Generated images scored without files (edm2-metrics gen, edm2-sweep --metric fid): the EDM2
 * sampler (trainer/generate.h) makes seeds S … S+N−1 in batches, each image goes through EDM2's
 * uint8 conversion (trainer/png_out.h) and straight into the scorer's detectors. Under mpirun
 * process r makes positions r, r + K, … of the seed list; collective (every process calls it). */
#ifndef EDM2C_METRICS_GENSCORE_H
#define EDM2C_METRICS_GENSCORE_H

#include <stdint.h>

#include "metrics/scorer.h"
#include "trainer/generate.h"
#include "trainer/net.h"

typedef struct {
  edm2_gen_opts g;   /* sampler options (guidance != 1 needs gnet) */
  int64_t num, seed; /* images and the first seed */
  int64_t batch;     /* images per sampler batch */
  int64_t threads;   /* per process */
  int quiet;         /* no progress bar */
} edm2_genscore_opts;

/* Adds the num images' features to s (this process's share; edm2_scorer_reduce merges). */
ec_status edm2_genscore(const edm2_genscore_opts *o, const edm2_dist *d, edm2_net *net, edm2_net *gnet,
                        edm2_scorer *s);

#endif
