/* edm2-plot loss: the training loss and the learning rate against training time, from
 * RUN/log.jsonl (plots/loss.gp). */
#include <math.h>
#include <stdio.h>

#include "plots/figures.h"
#include "plots/runlog.h"

int fig_loss(plot_ctx *c) {
  runlog l;
  ec_status st = runlog_read(&l, c->run);
  if (st) return st;
  plot_data d;
  int rows = 0;
  if (!(st = plot_data_open(c, &d, "loss", "nimg Mimg loss lr"))) {
    for (int i = 0; i < l.n; i++) {
      double nimg = runlog_get(&l, i, "nimg"), loss = runlog_get(&l, i, "loss"), lr = runlog_get(&l, i, "lr");
      if (isnan(nimg) || isnan(loss)) continue; /* the nimg-0 line has no loss yet */
      fprintf(d.f, "%.0f %.9g %.9g %.9g\n", nimg, nimg / (1 << 20), loss, lr);
      rows++;
    }
    st = plot_data_close(&d);
  }
  runlog_free(&l);
  if (st) return st;
  if (rows == 0) return plot_nodata(c, "%s/log.jsonl has no training loss yet", c->run);
  char q[8400], vars[8600];
  snprintf(vars, sizeof vars, "title_text=%s;", plot_quote(c->run, q, sizeof q));
  return plot_render(c, "loss", "loss", vars);
}
