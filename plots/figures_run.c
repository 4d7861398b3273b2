/* Figures drawn from a run's own files: log.jsonl and the snapshots (plots/figures.h). */
#include "plots/figures.h"

const plot_figure plot_figures_run[] = {
    {"loss", "the training loss and the learning rate over training time", "RUN/log.jsonl", fig_loss},
    {"profiles", "stored EMA profiles, a target and its post-hoc reconstruction (Figures 4, 24)", "RUN/snapshots",
     fig_profiles},
    {"magnitudes", "weight and activation magnitudes per resolution bucket (Figures 3, 15)", "RUN/log.jsonl",
     fig_magnitudes},
    {0},
};
