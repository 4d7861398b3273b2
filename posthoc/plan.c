/* The post-hoc plan; see plan.h. */
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "posthoc/ema_list.h"
#include "posthoc/snapshot.h"

void plan_args_init(plan_args *a) {
  memset(a, 0, sizeof *a);
  a->at = -1;
  phema_solve_opts_init(&a->solve);
}

void plan_free(plan *p) {
  snap_summaries_free(&p->summaries, p->dir.n);
  snap_problems_free(&p->problems);
  snapdir_free(&p->dir);
  ec_freep(&p->profiles);
  ec_freep(&p->inputs);
  ec_freep(&p->targets);
  ec_freep(&p->x);
  ec_freep(&p->diag);
  p->ninputs = p->ntargets = p->nprofiles = 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

ec_status plan_parse_half_lives(const char *text, double **values, int *count) {
  *values = NULL;
  *count = 0;
  int cap = 1;
  for (const char *c = text; *c; c++) cap += *c == ',';
  double *v = ec_calloc((size_t)cap, sizeof *v);
  if (!v) return EC_ENOMEM;
  char *copy = ec_strdup(text), *save = NULL;
  if (!copy) {
    ec_freep(&v);
    return EC_ENOMEM;
  }
  int n = 0;
  ec_status s = EC_OK;
  for (char *tok = strtok_r(copy, ",", &save); tok && !s; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    int64_t h;
    if ((s = ec_parse_nimg("--half-life", tok, &h))) break;
    if (h <= 0) s = ec_err(EC_EINVAL, "--half-life: %s must be positive", tok);
    v[n++] = (double)h;
  }
  ec_freep(&copy);
  if (!s && n == 0) s = ec_err(EC_EINVAL, "--half-life: the list is empty");
  if (s) {
    ec_freep(&v);
    return s;
  }
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
  *values = v;
  *count = m;
  return EC_OK;
}

/* The stored profiles and dtype of the directory, from the first usable snapshot (the check made
 * sure all usable ones agree). */
static ec_status directory_profiles(plan *p) {
  for (int i = 0; i < p->dir.n; i++) {
    const snap_summary *s = &p->summaries[i];
    if (!s->usable) continue;
    p->nprofiles = s->nprofiles;
    if (!(p->profiles = ec_calloc((size_t)s->nprofiles, sizeof *p->profiles))) return EC_ENOMEM;
    memcpy(p->profiles, s->sigma_rel, (size_t)s->nprofiles * sizeof *p->profiles);
    /* float32 only if every usable snapshot is; otherwise the coarser float16 sets the floor */
    p->snapshot_dtype = EC_F32;
    for (int j = i; j < p->dir.n; j++)
      if (p->summaries[j].usable && strcmp(p->summaries[j].dtype, "float32")) p->snapshot_dtype = EC_F16;
    return EC_OK;
  }
  return ec_err(EC_EINVAL, "no usable snapshots in %s", p->dir.dir);
}

/* Marks which stored profiles are used (all, or those named by --use-profiles). */
static ec_status select_profiles(plan *p, const char *list, int *use) {
  for (int k = 0; k < p->nprofiles; k++) use[k] = list == NULL;
  if (!list) return EC_OK;
  double *v = NULL;
  int n = 0;
  ec_status s = phema_list_parse(list, &v, &n);
  if (s) return ec_err_context(s, "--use-profiles");
  for (int i = 0; i < n && !s; i++) {
    char want[32], have[32];
    int found = 0;
    snap_profile_key(v[i], want, sizeof want);
    for (int k = 0; k < p->nprofiles; k++)
      if (!strcmp(want, snap_profile_key(p->profiles[k], have, sizeof have))) use[k] = found = 1;
    if (!found) {
      char stored[256] = "";
      for (int k = 0, len = 0; k < p->nprofiles && len < 240; k++)
        len += snprintf(stored + len, sizeof stored - (size_t)len, k ? ", %.3f" : "%.3f", p->profiles[k]);
      s = ec_err(EC_EINVAL, "--use-profiles: %s is not a stored profile (stored: %s)", want, stored);
    }
  }
  ec_freep(&v);
  return s;
}

static ec_status build_inputs(plan *p, const int *use) {
  int cap = p->dir.n * p->nprofiles;
  if (!(p->inputs = ec_calloc((size_t)cap + 1, sizeof *p->inputs))) return EC_ENOMEM;
  for (int i = 0; i < p->dir.n; i++) {
    const snap_summary *s = &p->summaries[i];
    if (!s->usable || s->nimg <= 0 || s->nimg > p->at) continue;
    for (int k = 0; k < s->nprofiles; k++) {
      if (!use[k]) continue;
      plan_input *in = &p->inputs[p->ninputs++];
      in->snap = i;
      in->prof = k;
      in->nimg = s->nimg;
      in->sigma_rel = s->sigma_rel[k];
      ec_status st = phema_sigma_to_gamma(in->sigma_rel, &in->gamma);
      if (st) return ec_err_context(st, "%s: stored profile", p->dir.entries[i].path);
    }
  }
  if (p->ninputs == 0) {
    char at[32];
    return ec_err(EC_EINVAL, "no usable snapshots at or before nimg %lld (%s) in %s", (long long)p->at,
                  ec_format_nimg(at, sizeof at, p->at), p->dir.dir);
  }
  return EC_OK;
}

static ec_status build_targets(plan *p, const plan_args *a) {
  double *sig = NULL, *hl = NULL;
  int nsig = 0, nhl = 0;
  ec_status s = EC_OK;
  if (!a->sigma_rel && !a->half_life)
    return ec_err(EC_EINVAL, "no targets: give --sigma-rel LIST and/or --half-life LIST");
  if (a->sigma_rel && (s = phema_list_parse(a->sigma_rel, &sig, &nsig))) return ec_err_context(s, "--sigma-rel");
  if (a->half_life && (s = plan_parse_half_lives(a->half_life, &hl, &nhl))) {
    ec_freep(&sig);
    return s;
  }
  p->targets = ec_calloc((size_t)(nsig + nhl + a->nextra) + 1, sizeof *p->targets);
  if (!p->targets) s = EC_ENOMEM;
  for (int i = 0; !s && i < nsig; i++) {
    plan_target *t = &p->targets[p->ntargets++];
    if ((s = phema_profile_power(&t->profile, p->at, sig[i]))) ec_err_context(s, "--sigma-rel");
    snprintf(t->label, sizeof t->label, "%.3f", sig[i]);
  }
  for (int i = 0; !s && i < nhl; i++) {
    plan_target *t = &p->targets[p->ntargets++];
    if ((s = phema_profile_exp(&t->profile, p->at, hl[i]))) ec_err_context(s, "--half-life");
    snprintf(t->label, sizeof t->label, "hl%.0f", hl[i]);
  }
  p->nmain = p->ntargets;
  for (int i = 0; !s && i < a->nextra; i++) {
    plan_target *t = &p->targets[p->ntargets++];
    if ((s = phema_profile_power(&t->profile, p->at, a->extra_sigma[i]))) ec_err_context(s, "--tensor-sigma");
    snprintf(t->label, sizeof t->label, "rule-%.3f", a->extra_sigma[i]);
  }
  ec_freep(&sig);
  ec_freep(&hl);
  return s;
}

ec_status plan_build(plan *p, const plan_args *a) {
  memset(p, 0, sizeof *p);
  const char *dir = a->snapshots ? a->snapshots : snapdir_default();
  ec_status s = snapdir_scan(&p->dir, dir);
  if (s) return s;
  if ((s = snapdir_check(&p->dir, a->map_datasets ? SNAPDIR_MAP : 0, &p->summaries, &p->problems, NULL, NULL)))
    return s;
  if (p->problems.errors)
    return ec_err(EC_EFORMAT, "%s: %d problem%s with the snapshots (listed above)", dir,
                  p->problems.errors, p->problems.errors == 1 ? "" : "s");
  if ((s = directory_profiles(p))) return s;
  p->latest = 0;
  for (int i = 0; i < p->dir.n; i++)
    if (p->summaries[i].usable && p->summaries[i].nimg > p->latest) p->latest = p->summaries[i].nimg;
  p->at = a->at < 0 ? p->latest : a->at;
  char x[32], y[32];
  if (p->at <= 0) return ec_err(EC_EINVAL, "--at %lld: the target time must be positive", (long long)p->at);
  if (p->at > p->latest)
    return ec_err(EC_EINVAL, "--at %lld (%s) is after the last snapshot (%lld = %s); post-hoc EMA cannot extrapolate",
                  (long long)p->at, ec_format_nimg(x, sizeof x, p->at), (long long)p->latest,
                  ec_format_nimg(y, sizeof y, p->latest));
  int *use = ec_calloc((size_t)p->nprofiles, sizeof *use);
  if (!use) return EC_ENOMEM;
  s = select_profiles(p, a->use_profiles, use);
  if (!s) s = build_inputs(p, use);
  ec_freep(&use);
  if (!s) s = build_targets(p, a);
  if (s) return s;

  int64_t *t = ec_calloc((size_t)p->ninputs, sizeof *t);
  double *g = ec_calloc((size_t)p->ninputs, sizeof *g);
  phema_profile *r = ec_calloc((size_t)p->ntargets, sizeof *r);
  p->x = ec_calloc((size_t)p->ninputs * (size_t)p->ntargets, sizeof *p->x);
  p->diag = ec_calloc((size_t)p->ntargets, sizeof *p->diag);
  if (!t || !g || !r || !p->x || !p->diag) s = EC_ENOMEM;
  for (int i = 0; !s && i < p->ninputs; i++) {
    t[i] = p->inputs[i].nimg;
    g[i] = p->inputs[i].gamma;
  }
  for (int k = 0; !s && k < p->ntargets; k++) r[k] = p->targets[k].profile;
  phema_solve_opts o = a->solve;
  o.snapshot_dtype = p->snapshot_dtype;
  if (!s && (s = phema_solve(t, g, p->ninputs, r, p->ntargets, &o, p->x, p->diag)) && s != EC_ENOMEM) {
    /* The solver names targets by index; give the legend. */
    char legend[512];
    int len = snprintf(legend, sizeof legend, "targets");
    for (int k = 0; k < p->ntargets && len < 400; k++)
      len += snprintf(legend + len, sizeof legend - (size_t)len, "%s %d = %s %s", k ? "," : "", k,
                      p->targets[k].profile.kind == PHEMA_POWER ? "sigma_rel" : "half-life",
                      p->targets[k].profile.kind == PHEMA_POWER ? p->targets[k].label : p->targets[k].label + 2);
    if (len >= 400) snprintf(legend + len, sizeof legend - (size_t)len, ", ...");
    ec_err_context(s, "%s", legend);
  }
  ec_freep(&t);
  ec_freep(&g);
  ec_freep(&r);
  return s;
}
