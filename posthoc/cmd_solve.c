/* posthoc-ema --solve-only; see cmd_solve.h. The JSON layout is documented in docs/formats.md. */
#include "cmd_solve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/cli.h"

void print_plan_problems(const plan *p, ec_status st, FILE *err) {
  for (int i = 0; i < p->problems.n; i++)
    if (p->problems.items[i].severity != SNAP_NOTE) /* --list reports those */
      fprintf(err, "posthoc-ema: %s: %s\n", p->problems.items[i].severity == SNAP_ERROR ? "error" : "warning",
              p->problems.items[i].message);
  if (st && !p->problems.errors) fprintf(err, "posthoc-ema: error: %s\n", ec_errmsg());
}

/* One stderr warning per target whose weights amplify snapshot rounding, and one when the target
 * time lies after the last snapshot used. */
static void warn_narrow(const plan *p, FILE *err) {
  int64_t last = p->inputs[p->ninputs - 1].nimg;
  if (p->at > last)
    fprintf(err,
            "posthoc-ema: warning: --at %lld is %lld images after the last snapshot at or before it "
            "(%lld); no snapshot covers them, so the reconstruction cannot follow the targets there "
            "(their rel.error includes it)\n",
            (long long)p->at, (long long)(p->at - last), (long long)last);
  for (int k = 0; k < p->ntargets; k++) {
    const phema_diag *d = &p->diag[k];
    if (!d->warn_narrow) continue;
    fprintf(err,
            "posthoc-ema: warning: target %s is much narrower than the narrowest stored profile "
            "(|x|_2 = %.3g): %s snapshot rounding is amplified to a weight error of about %.2g%s\n",
            p->targets[k].label, d->norm2, ec_dtype_name(p->snapshot_dtype), d->noise_floor,
            d->tikhonov > 0 ? "" : "; --regularize auto trades response error for less of it");
  }
}

static void print_text(const plan *p, FILE *out) {
  char a[32], b[32], c[32];
  int nsnap = 0;
  for (int i = 0; i < p->ninputs; i++) nsnap += i == 0 || p->inputs[i].nimg != p->inputs[i - 1].nimg;
  fprintf(out, "post-hoc EMA weights at nimg %lld (%s) from %d stored profiles (%d snapshot time%s, %s .. %s)\n",
          (long long)p->at, ec_format_nimg(a, sizeof a, p->at), p->ninputs, nsnap, nsnap == 1 ? "" : "s",
          ec_format_nimg(b, sizeof b, p->inputs[0].nimg),
          ec_format_nimg(c, sizeof c, p->inputs[p->ninputs - 1].nimg));
  fprintf(out, "snapshots in %s, %s; weights normalised to sum 1 unless --no-normalize\n\n", p->dir.dir,
          ec_dtype_name(p->snapshot_dtype));
  fprintf(out, "%-16s %9s %11s %10s %8s %8s %11s %10s %s\n", "target", "gamma", "rel.error", "cond(A)",
          "|x|_1", "|x|_2", "noise floor", "sum(x)raw", "method");
  for (int k = 0; k < p->ntargets; k++) {
    const plan_target *t = &p->targets[k];
    const phema_diag *d = &p->diag[k];
    char name[64], gamma[16];
    if (t->profile.kind == PHEMA_POWER) {
      snprintf(name, sizeof name, "sigma_rel %s", t->label);
      snprintf(gamma, sizeof gamma, "%.4f", t->profile.gamma);
    } else {
      snprintf(name, sizeof name, "half-life %s", ec_format_nimg(a, sizeof a, (int64_t)t->profile.half_life));
      snprintf(gamma, sizeof gamma, "-");
    }
    fprintf(out, "%-16s %9s %11.4e %10.3e %8.4f %8.4f %11.2e %10.8f %s%s\n", name, gamma, d->rel_error,
            d->cond, d->norm1, d->norm2, d->noise_floor, d->sum_raw, phema_method_name(d->method),
            d->tikhonov > 0 ? " (Tikhonov)" : "");
  }
  fprintf(out, "\n%14s %9s", "nimg", "sigma_rel");
  for (int k = 0; k < p->ntargets; k++) fprintf(out, " %14s", p->targets[k].label);
  fprintf(out, "\n");
  for (int i = 0; i < p->ninputs; i++) {
    fprintf(out, "%14lld %9.3f", (long long)p->inputs[i].nimg, p->inputs[i].sigma_rel);
    for (int k = 0; k < p->ntargets; k++) fprintf(out, " %14.6e", p->x[(size_t)i * (size_t)p->ntargets + (size_t)k]);
    fprintf(out, "\n");
  }
}

static void print_json(const plan *p, FILE *out) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "at", (double)p->at);
  cJSON_AddStringToObject(root, "directory", p->dir.dir);
  cJSON_AddStringToObject(root, "snapshot_dtype", ec_dtype_name(p->snapshot_dtype));
  cJSON *snaps = cJSON_AddArrayToObject(root, "snapshots");
  for (int i = 0; i < p->ninputs; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "nimg", (double)p->inputs[i].nimg);
    cJSON_AddNumberToObject(o, "sigma_rel", p->inputs[i].sigma_rel);
    cJSON_AddItemToArray(snaps, o);
  }
  cJSON *targets = cJSON_AddArrayToObject(root, "targets");
  for (int k = 0; k < p->ntargets; k++) {
    const plan_target *t = &p->targets[k];
    const phema_diag *d = &p->diag[k];
    cJSON *o = cJSON_CreateObject();
    if (t->profile.kind == PHEMA_POWER) {
      cJSON_AddStringToObject(o, "kind", "power");
      cJSON_AddNumberToObject(o, "sigma_rel", t->profile.sigma_rel);
      cJSON_AddNumberToObject(o, "gamma", t->profile.gamma);
    } else {
      cJSON_AddStringToObject(o, "kind", "exponential");
      cJSON_AddNumberToObject(o, "half_life", t->profile.half_life);
    }
    cJSON_AddNumberToObject(o, "nimg", (double)t->profile.t);
    cJSON *w = cJSON_AddArrayToObject(o, "weights");
    for (int i = 0; i < p->ninputs; i++)
      cJSON_AddItemToArray(w, cJSON_CreateNumber(p->x[(size_t)i * (size_t)p->ntargets + (size_t)k]));
    cJSON_AddNumberToObject(o, "rel_error", d->rel_error);
    cJSON_AddNumberToObject(o, "cond", d->cond);
    cJSON_AddNumberToObject(o, "cond_norm", d->cond_norm);
    cJSON_AddNumberToObject(o, "l1", d->norm1);
    cJSON_AddNumberToObject(o, "l2", d->norm2);
    cJSON_AddNumberToObject(o, "sum_raw", d->sum_raw);
    cJSON_AddNumberToObject(o, "noise_floor", d->noise_floor);
    cJSON_AddNumberToObject(o, "tikhonov", d->tikhonov);
    cJSON_AddStringToObject(o, "method", phema_method_name(d->method));
    cJSON_AddBoolToObject(o, "warn_narrow", d->warn_narrow);
    cJSON_AddItemToArray(targets, o);
  }
  char *text = cJSON_Print(root);
  if (text) fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(root);
}

int cmd_solve(const plan_args *a, int json, FILE *out, FILE *err) {
  plan p;
  ec_status st = plan_build(&p, a);
  print_plan_problems(&p, st, err);
  if (!st) {
    if (json)
      print_json(&p, out);
    else
      print_text(&p, out);
    fflush(out);
    warn_narrow(&p, err);
  }
  plan_free(&p);
  return ec_exit_code(st);
}
