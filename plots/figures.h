/* The figures of edm2-plot: one entry per subcommand. The entries live in two tables,
 * figures_run.c (figures from a run's log and snapshots) and figures_db.c (figures from the
 * results database), each ending with a zeroed entry. */
#ifndef EDM2C_PLOTS_FIGURES_H
#define EDM2C_PLOTS_FIGURES_H

#include "plots/plot.h"

typedef struct {
  const char *name;    /* the subcommand and the output file name ("loss" -> loss.png) */
  const char *summary; /* one line for --help */
  const char *sources; /* what it reads, for --help ("RUN/log.jsonl") */
  /* Writes the data files and renders. EC_OK, EDM2_PLOT_NODATA (c->note says why) or an error. */
  int (*draw)(plot_ctx *c);
} plot_figure;

extern const plot_figure plot_figures_run[];
extern const plot_figure plot_figures_db[];

/* figures_run.c */
int fig_loss(plot_ctx *c);

#endif
