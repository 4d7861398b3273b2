/* Generate and score in one process (metrics/genscore.h). */
#include "metrics/genscore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "trainer/pass.h"
#include "trainer/png_out.h"

/* CHW float sample → CHW uint8 as EDM2 converts it (edm2_to_u8 gives HWC). */
static void to_u8_chw(const float *x, int C, int R, uint8_t *hwc, uint8_t *chw) {
  edm2_to_u8(x, C, R, R, hwc);
  const size_t P = (size_t)R * R;
  for (size_t p = 0; p < P; p++)
    for (int c = 0; c < C; c++) chw[c * P + p] = hwc[p * C + c];
}

ec_status edm2_genscore(const edm2_genscore_opts *a, const edm2_dist *d, edm2_net *net, edm2_net *gnet,
                        edm2_scorer *s) {
  const edm2_netcfg *cfg = &net->arch.cfg;
  const int C = cfg->img_channels, R = cfg->img_resolution, L = cfg->label_dim;
  const size_t M = (size_t)C * R * R;
  const int64_t K = d->world, r = d->rank, N = a->num;
  const int64_t mine = r < N ? (N - r + K - 1) / K : 0, per = (N + K - 1) / K;
  const int cap = (int)(a->batch < per ? a->batch : per);
  const int64_t rounds = (per + cap - 1) / cap;
  edm2_pass p = {0}, gp = {0};
  int have_p = 0, have_gp = 0;
  float *x = ec_mallocarray((size_t)cap * M, sizeof *x);
  float *labels = L ? ec_calloc((size_t)cap * L, sizeof *labels) : NULL;
  int64_t *seeds = ec_mallocarray((size_t)cap, sizeof *seeds);
  uint8_t *hwc = ec_malloc(M), *chw = ec_malloc(M);
  ec_status st = EC_OK;
  if (!x || (L && !labels) || !seeds || !hwc || !chw) st = ec_err(EC_ENOMEM, "out of memory for batches of %d images", cap);
  if (!st && !(st = edm2_pass_init(&p, net, cap, 0, (int)a->threads))) have_p = 1;
  if (!st && gnet && !(st = edm2_pass_init(&gp, gnet, cap, 0, (int)a->threads))) have_gp = 1;
  st = edm2_dist_agree(d, st);
  ec_progress bar;
  ec_progress_begin(&bar, "generate+score", N, 0, a->quiet || r != 0);
  int64_t done = 0;
  char what[64];
  for (int64_t round = 0; round < rounds && !st; round++) {
    int n = (int)(mine - done < cap ? mine - done : cap);
    for (int b = 0; b < n; b++) {
      seeds[b] = a->seed + r + (done + b) * K; /* position i of the seed list is seed S + i */
      edm2_seed_noise(seeds[b], x + (size_t)b * M, M);
      if (L) {
        memset(labels + (size_t)b * L, 0, (size_t)L * sizeof *labels);
        labels[(size_t)b * L + edm2_seed_class(seeds[b], L)] = 1;
      }
    }
    if (n > 0) st = edm2_generate(&a->g, &p, have_gp ? &gp : NULL, n, x, labels, edm2_seed_churn, seeds);
    for (int b = 0; b < n && !st; b++) {
      to_u8_chw(x + (size_t)b * M, C, R, hwc, chw);
      snprintf(what, sizeof what, "seed %lld", (long long)seeds[b]);
      st = edm2_scorer_add(s, chw, 1, C, R, R, what);
    }
    done += n;
    st = edm2_dist_agree(d, st);
    int64_t all = (round + 1) * cap * K;
    ec_progress_update(&bar, all < N ? all : N);
  }
  ec_progress_end(&bar);
  if (have_p) edm2_pass_free(&p);
  if (have_gp) edm2_pass_free(&gp);
  free(x), free(labels), free(seeds), free(hwc), free(chw);
  return st;
}

