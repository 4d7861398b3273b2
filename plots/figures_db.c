/* Figures drawn from the results database (plots/figures.h). */
#include "plots/figures.h"

const plot_figure plot_figures_db[] = {
    {0},
};
