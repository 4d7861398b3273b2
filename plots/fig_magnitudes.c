/* edm2-plot magnitudes: paper Figures 3 and 15 for a run, the weight and activation magnitudes
 * per resolution bucket over training time, max and mean, from RUN/log.jsonl
 * (trainer/trainlog.h; "activations" only on the lines of a run trained with --magnitudes)
 * (plots/magnitudes.gp). */
#define _GNU_SOURCE /* open_memstream */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plots/figures.h"
#include "plots/runlog.h"

#define MAXB 32

/* Writes magnitudes-KIND.dat, one row per log line that has KIND, columns nimg Mimg then max and
 * mean of each bucket (NaN where a line lacks one). Returns the rows written in *rows. */
static ec_status write_kind(plot_ctx *c, const runlog *l, const char *kind, char (*names)[64], int nb, int *rows) {
  char cols[4096], name[64];
  int len = snprintf(cols, sizeof cols, "nimg Mimg");
  for (int b = 0; b < nb && len < 3800; b++)
    len += snprintf(cols + len, sizeof cols - (size_t)len, " %s.max %s.mean", names[b], names[b]);
  snprintf(cols + len, sizeof cols - (size_t)len,
           ": %s magnitudes per resolution bucket (max and mean over the bucket's output features of the "
           "dimension-weighted L2 norm, paper Appendix A.6), one row per log.jsonl line that has them",
           kind);
  snprintf(name, sizeof name, "magnitudes-%s", kind);
  plot_data d;
  ec_status st = plot_data_open(c, &d, name, cols);
  if (st) return st;
  *rows = 0;
  for (int i = 0; i < l->n; i++) {
    double nimg = runlog_get(l, i, "nimg");
    if (isnan(nimg) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(l->rec[i], kind))) continue;
    fprintf(d.f, "%.0f %.9g", nimg, nimg / (1 << 20));
    for (int b = 0; b < nb; b++)
      for (int s = 0; s < 2; s++) {
        char path[160];
        snprintf(path, sizeof path, "%s.%s.%s", kind, names[b], s ? "mean" : "max");
        double v = runlog_get(l, i, path);
        if (isnan(v)) fprintf(d.f, " NaN");
        else fprintf(d.f, " %.9g", v);
      }
    fputc('\n', d.f);
    (*rows)++;
  }
  return plot_data_close(&d);
}

/* gnuplot arrays for one panel: P[b] names, PMAX[b] and PMEAN[b] columns, PLT[b] colours (a
 * bucket keeps its colour in both panels: its index among the weights' buckets). */
static void panel_vars(FILE *m, const char *p, char (*names)[64], int nb, char (*wnames)[64], int nw) {
  char q[256];
  fprintf(m, "n%s=%d; array %s[%d]; array %sMAX[%d]; array %sMEAN[%d]; array %sLT[%d]; ", p, nb, p, nb ? nb : 1, p,
          nb ? nb : 1, p, nb ? nb : 1, p, nb ? nb : 1);
  for (int b = 0; b < nb; b++) {
    int lt = b;
    for (int w = 0; w < nw; w++)
      if (!strcmp(wnames[w], names[b])) lt = w;
    fprintf(m, "%s[%d]=%s; %sMAX[%d]=%d; %sMEAN[%d]=%d; %sLT[%d]=%d; ", p, b + 1, plot_quote(names[b], q, sizeof q), p,
            b + 1, 3 + 2 * b, p, b + 1, 4 + 2 * b, p, b + 1, lt % 8 + 1);
  }
}

int fig_magnitudes(plot_ctx *c) {
  runlog l;
  ec_status st = runlog_read(&l, c->run);
  if (st) return st;
  char (*wn)[64] = calloc(MAXB, 64), (*an)[64] = calloc(MAXB, 64);
  if (!wn || !an) {
    free(wn), free(an), runlog_free(&l);
    return ec_err(EC_ENOMEM, "out of memory");
  }
  int nw = runlog_keys(&l, "weights", wn, MAXB), na = runlog_keys(&l, "activations", an, MAXB);
  int wrows = 0, arows = 0;
  if (nw > 0) st = write_kind(c, &l, "weights", wn, nw, &wrows);
  if (!st && na > 0) st = write_kind(c, &l, "activations", an, na, &arows);
  runlog_free(&l);
  char *vars = NULL;
  size_t vlen = 0;
  FILE *m = NULL;
  if (!st && wrows == 0) {
    free(wn), free(an);
    return plot_nodata(c, "%s/log.jsonl has no weight magnitudes", c->run);
  }
  if (!st && !(m = open_memstream(&vars, &vlen))) st = ec_err(EC_ENOMEM, "out of memory");
  if (m) {
    char q[9000], buf[4400];
    if (arows == 0 && !c->quiet)
      fprintf(stderr, "edm2-plot: magnitudes: note: %s/log.jsonl has no activations (the run was trained without "
                      "--magnitudes NIMG); drawing the weights only\n", c->run);
    snprintf(buf, sizeof buf, arows ? "%s: magnitudes per resolution bucket"
                                    : "%s: weight magnitudes per resolution bucket (no activations in the log)", c->run);
    fprintf(m, "title_text=%s; has_act=%d; ", plot_quote(buf, q, sizeof q), arows > 0);
    panel_vars(m, "W", wn, nw, wn, nw);
    panel_vars(m, "A", an, arows ? na : 0, wn, nw);
    fclose(m);
    st = plot_render(c, "magnitudes", "magnitudes", vars);
  }
  free(vars), free(wn), free(an);
  return st;
}
