/* exp_tracked: how close is a post-hoc reconstruction to an EMA tracked directly in training?
 *
 *   exp_tracked --snapshots DIR --tracked SIGMA --from LIST [--regularize auto|LAMBDA]
 *
 * The snapshots must track SIGMA itself besides the profiles in LIST (posthoc-synth --ema
 * 0.05,0.1,0.13 does). The reconstruction of SIGMA at the last snapshot uses only the LIST
 * profiles (as posthoc-ema --use-profiles LIST would) and is compared, in float64, with the
 * tracked SIGMA profile stored in that snapshot: prints the relative L2 weight error
 * ||theta_hat - theta_tracked|| / ||theta_tracked|| and the response-function error of the
 * weights. For tests and for docs/posthoc-solver.md's regularisation numbers; not installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "posthoc/plan.h"
#include "posthoc/snapshot.h"

int main(int argc, char **argv) {
  plan_args a;
  plan_args_init(&a);
  const char *tracked = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--snapshots")) a.snapshots = argv[i + 1];
    else if (!strcmp(argv[i], "--tracked")) tracked = argv[i + 1];
    else if (!strcmp(argv[i], "--from")) a.use_profiles = argv[i + 1];
    else if (!strcmp(argv[i], "--regularize"))
      a.solve.tikhonov = strcmp(argv[i + 1], "auto") ? atof(argv[i + 1]) : PHEMA_TIKHONOV_AUTO;
    else {
      fprintf(stderr, "usage: see posthoc/exp_tracked.c\n");
      return 2;
    }
  }
  if (!tracked || !a.use_profiles) {
    fprintf(stderr, "exp_tracked: --tracked and --from are required\n");
    return 2;
  }
  a.sigma_rel = tracked;
  plan p;
  ec_status s = plan_build(&p, &a);
  if (s) {
    fprintf(stderr, "exp_tracked: %s\n", ec_errmsg());
    plan_free(&p);
    return 1;
  }
  snap_file last;
  if ((s = snap_open(&last, p.dir.entries[p.inputs[p.ninputs - 1].snap].path))) {
    fprintf(stderr, "exp_tracked: %s\n", ec_errmsg());
    return 1;
  }
  int tp = snap_find_profile(&last, atof(tracked));
  if (tp < 0) {
    fprintf(stderr, "exp_tracked: %s does not track %s\n", last.path, tracked);
    return 1;
  }
  /* Every input file is opened once; the float64 sums of all tensors are held (small runs). */
  int64_t total = snap_param_count(&last), maxn = 1;
  for (int t = 0; t < last.ntensors; t++) maxn = last.tensors[t].numel > maxn ? last.tensors[t].numel : maxn;
  double *acc = ec_calloc((size_t)total, sizeof *acc);
  float *v = ec_mallocarray((size_t)maxn, sizeof *v);
  for (int i = 0; i < p.ninputs && !s; i++) {
    snap_file f;
    if ((s = snap_open(&f, p.dir.entries[p.inputs[i].snap].path))) break;
    int prof = snap_find_profile(&f, p.inputs[i].sigma_rel);
    double x = p.x[(size_t)i * (size_t)p.ntargets];
    for (int t = 0, off = 0; t < last.ntensors && !s; off += (int)last.tensors[t].numel, t++) {
      int64_t n = last.tensors[t].numel;
      s = snap_read(&f, prof, snap_find_tensor(&f, last.tensors[t].name), 0, n, v);
      for (int64_t e = 0; !s && e < n; e++) acc[off + e] += x * v[e];
    }
    snap_close(&f);
  }
  double num = 0, den = 0;
  for (int t = 0, off = 0; t < last.ntensors && !s; off += (int)last.tensors[t].numel, t++) {
    int64_t n = last.tensors[t].numel;
    s = snap_read(&last, tp, t, 0, n, v);
    for (int64_t e = 0; !s && e < n; e++) {
      num += (acc[off + e] - v[e]) * (acc[off + e] - v[e]);
      den += (double)v[e] * v[e];
    }
  }
  ec_freep(&acc);
  ec_freep(&v);
  if (s) {
    fprintf(stderr, "exp_tracked: %s\n", ec_errmsg());
    return 1;
  }
  printf("sigma_rel %s from %s at nimg %lld (%d stored profiles): weight error %.3e, response error %.3e, "
         "|x|_2 %.3g, tikhonov %g\n",
         tracked, a.use_profiles, (long long)p.at, p.ninputs, sqrt(num / den), p.diag[0].rel_error,
         p.diag[0].norm2, p.diag[0].tikhonov);
  snap_close(&last);
  plan_free(&p);
  return 0;
}
