/* edm2-plot report: RUN/report/index.html, one static page with no external assets (its images
 * sit next to it): the run's configuration, the best EMA length per metric and guidance (a
 * table), every figure that has data (drawn as PNG into the report folder), the figures skipped
 * and why, and when each was made. edm2-nightly refreshes it. */
#ifndef EDM2C_PLOTS_REPORT_H
#define EDM2C_PLOTS_REPORT_H

#include "plots/plot.h"

/* Draws every figure into c->out (default RUN/report) as PNG and writes index.html there
 * (atomically). EC_OK when the page was written, whatever the figures. */
ec_status plot_report(plot_ctx *c);

#endif
