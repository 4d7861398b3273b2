/* Figures drawn from a run's own files: log.jsonl and the snapshots (plots/figures.h). */
#include "plots/figures.h"

const plot_figure plot_figures_run[] = {
    {"loss", "the training loss and the learning rate over training time", "RUN/log.jsonl", fig_loss},
    {0},
};
