/* edm2-plot profiles: paper Figure 4 (and Figure 24) for a run's own snapshots
 * (plots/profiles.gp, plots/profiles-family.gp).
 *
 * The post-hoc plan of posthoc-ema (posthoc/plan.h: the snapshots' metadata, their stored
 * profiles, the targets of --sigma-rel at --at, the least-squares weights and their relative L2
 * errors) is drawn as EMA weight densities over training time. Densities are per Mimg (2^20
 * images), so every profile has unit area over the Mimg axis:
 *   stored profile i (t_i, γ_i):  p_i(τ) = (γ_i+1) τ^γ_i / t_i^(γ_i+1)  for 0 ≤ τ ≤ t_i, else 0
 *   reconstruction of target r:   Σ_i x_ir p_i(τ)
 * the power profile of posthoc/phema_math.h that phema_solve fits, scaled by 2^20. */
#define _GNU_SOURCE /* open_memstream */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/sweep.h"
#include "core/cli.h"
#include "plots/figures.h"
#include "posthoc/plan.h"

#define MIMG 1048576.0
#define GRID 600   /* points of a target's curve over [0, at] (plus two at each snapshot time) */
#define SGRID 200  /* points of a stored profile over [0, t_i] */
#define MAXSNAP 16 /* snapshots drawn at most in the stored panel */
#define MAXSHOW 5  /* targets drawn at most in profiles.png (the family shows them all) */

/* Colours (style.gp line types) of the stored σ_rel groups; 4 (purple) and 7 (black) are the
 * reconstruction and the target when there is one target. */
static const int stored_lt[] = {1, 2, 3, 5, 6, 8};
static const int target_lt[] = {4, 1, 2, 3, 5, 6, 8, 7};

/* Density per Mimg of the power profile (t, γ) at τ (images); 0 outside [0, t]. */
static double power_density(double tau, int64_t t, double gamma) {
  if (tau <= 0 || tau > (double)t) return 0;
  double u = tau / (double)t;
  return (gamma + 1) / (double)t * exp(gamma * log(u)) * MIMG;
}

/* Point s ∈ [0, 1] of a grid over [0, t] that is denser near t, where profiles peak. */
static double grid_tau(double t, int k, int n) {
  double s = 1.0 - (double)k / n;
  return t * (1.0 - s * s);
}

static ec_status write_targets(plot_ctx *c, const plan *p) {
  plot_data d;
  ec_status st = plot_data_open(c, &d, "profiles",
                                "nimg Mimg target recon: EMA weight per Mimg of the target profile and of its "
                                "least-squares reconstruction from the stored profiles (each of unit area over "
                                "Mimg); one block per --sigma-rel target, blocks separated by two blank lines; "
                                "at each snapshot time two rows: the value just before and just after it");
  if (st) return st;
  const int n = p->ninputs, K = p->nmain;
  for (int k = 0; k < K; k++) {
    const phema_profile *r = &p->targets[k].profile;
    if (k) fprintf(d.f, "\n\n");
    fprintf(d.f, "# target sigma_rel %s gamma %.9g at %lld: relative L2 error %.6e\n", p->targets[k].label, r->gamma,
            (long long)p->at, p->diag[k].rel_error);
    /* the grid merged with every snapshot time ≤ at, each written twice: the left limit (the
     * profiles ending there included) and the right limit */
    int j = 0; /* next input (sorted by time) whose time is not yet written */
    for (int g = 0; g <= GRID; g++) {
      double tau = grid_tau((double)p->at, g, GRID);
      while (j < n && (double)p->inputs[j].nimg <= tau) {
        const int64_t ts = p->inputs[j].nimg;
        for (int side = 0; side < 2; side++) {
          double rec = 0;
          for (int i = 0; i < n; i++)
            if (side == 0 ? p->inputs[i].nimg >= ts : p->inputs[i].nimg > ts)
              rec += p->x[(size_t)i * p->ntargets + k] * power_density((double)ts, p->inputs[i].nimg, p->inputs[i].gamma);
          double tgt = side == 0 || ts < p->at ? power_density((double)ts, r->t, r->gamma) : 0;
          fprintf(d.f, "%lld %.9g %.9g %.9g\n", (long long)ts, (double)ts / MIMG, tgt, rec);
        }
        while (j < n && p->inputs[j].nimg == ts) j++;
        if ((double)ts == tau) tau = -1; /* this grid point is written */
      }
      if (tau < 0) continue;
      double rec = 0;
      for (int i = 0; i < n; i++)
        rec += p->x[(size_t)i * p->ntargets + k] * power_density(tau, p->inputs[i].nimg, p->inputs[i].gamma);
      fprintf(d.f, "%.0f %.9g %.9g %.9g\n", tau, tau / MIMG, power_density(tau, r->t, r->gamma), rec);
    }
    if (p->inputs[n - 1].nimg < p->at) /* the target ends after the last snapshot: close it */
      fprintf(d.f, "%lld %.9g 0 0\n", (long long)p->at, (double)p->at / MIMG);
  }
  return plot_data_close(&d);
}

static ec_status write_stored(plot_ctx *c, const plan *p) {
  plot_data d;
  ec_status st = plot_data_open(c, &d, "profiles-stored",
                                "nimg Mimg weight: EMA weight per Mimg of each stored profile (unit area over "
                                "Mimg); one block per stored profile (snapshot x stored sigma_rel, in time order), "
                                "blocks separated by two blank lines, each ending at (t_i, 0)");
  if (st) return st;
  for (int i = 0; i < p->ninputs; i++) {
    const plan_input *in = &p->inputs[i];
    if (i) fprintf(d.f, "\n\n");
    fprintf(d.f, "# snapshot %lld sigma_rel %.6g gamma %.9g\n", (long long)in->nimg, in->sigma_rel, in->gamma);
    for (int g = 0; g <= SGRID; g++) {
      double tau = g == SGRID ? (double)in->nimg : grid_tau((double)in->nimg, g, SGRID);
      fprintf(d.f, "%.0f %.9g %.9g\n", tau, tau / MIMG, power_density(tau, in->nimg, in->gamma));
    }
    fprintf(d.f, "%lld %.9g 0\n", (long long)in->nimg, (double)in->nimg / MIMG);
  }
  return plot_data_close(&d);
}

static ec_status write_weights(plot_ctx *c, const plan *p) {
  char cols[1024];
  int len = snprintf(cols, sizeof cols,
                     "nimg sigma_rel gamma then the weight x of this stored profile in each target's reconstruction (");
  for (int k = 0; k < p->nmain && len < 900; k++)
    len += snprintf(cols + len, sizeof cols - (size_t)len, k ? " x_%s" : "x_%s", p->targets[k].label);
  snprintf(cols + len, sizeof cols - (size_t)len, "); one row per stored profile");
  plot_data d;
  ec_status st = plot_data_open(c, &d, "profiles-weights", cols);
  if (st) return st;
  for (int i = 0; i < p->ninputs; i++) {
    fprintf(d.f, "%lld %.6g %.9g", (long long)p->inputs[i].nimg, p->inputs[i].sigma_rel, p->inputs[i].gamma);
    for (int k = 0; k < p->nmain; k++) fprintf(d.f, " %.9g", p->x[(size_t)i * p->ntargets + k]);
    fputc('\n', d.f);
  }
  if ((st = plot_data_close(&d))) return st;
  if ((st = plot_data_open(c, &d, "profiles-targets",
                           "sigma_rel gamma at_nimg rel_error norm1 norm2 method: one row per target (the "
                           "relative L2 error of its reconstruction, the weights' norms, the solver used)")))
    return st;
  for (int k = 0; k < p->nmain; k++)
    fprintf(d.f, "%s %.9g %lld %.6e %.6g %.6g %s\n", p->targets[k].label, p->targets[k].profile.gamma,
            (long long)p->at, p->diag[k].rel_error, p->diag[k].norm1, p->diag[k].norm2,
            phema_method_name(p->diag[k].method));
  return plot_data_close(&d);
}

/* The canonical family (Figure 24): every target's profile at `at`, one block each. */
static ec_status write_family(plot_ctx *c, const plan *p) {
  plot_data d;
  ec_status st = plot_data_open(c, &d, "profiles-family",
                                "nimg Mimg tau_rel weight: the power-function EMA profile of each --sigma-rel "
                                "value ending at the same time t (tau_rel = tau / t; weight per Mimg, unit area); "
                                "one block per sigma_rel, blocks separated by two blank lines");
  if (st) return st;
  for (int k = 0; k < p->nmain; k++) {
    const phema_profile *r = &p->targets[k].profile;
    if (k) fprintf(d.f, "\n\n");
    fprintf(d.f, "# sigma_rel %s gamma %.9g\n", p->targets[k].label, r->gamma);
    for (int g = 0; g <= GRID; g++) {
      double tau = grid_tau((double)r->t, g, GRID);
      fprintf(d.f, "%.0f %.9g %.9g %.9g\n", tau, tau / MIMG, tau / (double)r->t, power_density(tau, r->t, r->gamma));
    }
  }
  return plot_data_close(&d);
}

/* "1.2e-3" */
static void short_exp(double v, char *buf, size_t n) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%.1e", v);
  char *e = strchr(tmp, 'e');
  if (!e) {
    snprintf(buf, n, "%s", tmp);
    return;
  }
  *e = 0;
  int x = atoi(e + 1);
  snprintf(buf, n, "%.8se%d", tmp, x);
}

int fig_profiles(plot_ctx *c) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/snapshots", c->run);
  struct stat sb;
  if (stat(dir, &sb) != 0) return plot_nodata(c, "%s does not exist (train with --snapshot NIMG)", dir);
  int64_t *times = NULL;
  int ntimes = 0;
  if (edm2_sweep_times(c->run, &times, &ntimes)) return plot_nodata(c, "%s has no snapshots after nimg 0", dir);
  free(times);

  plan_args a;
  plan_args_init(&a);
  a.snapshots = dir;
  a.sigma_rel = c->sigma_rel ? c->sigma_rel : "0.15"; /* between/beyond the usual stored 0.05, 0.10 */
  a.at = c->at;
  plan p;
  ec_status st = plan_build(&p, &a);
  if (st) {
    for (int i = 0; i < p.problems.n; i++)
      if (p.problems.items[i].severity == SNAP_ERROR) fprintf(stderr, "%s\n", p.problems.items[i].message);
    plan_free(&p);
    return st;
  }
  if (!(st = write_targets(c, &p)) && !(st = write_stored(c, &p)) && !(st = write_weights(c, &p)) && p.nmain > 1)
    st = write_family(c, &p);

  /* gnuplot variables: titles, colours and ranges, all decided here */
  char *vars = NULL;
  size_t vlen = 0;
  FILE *m = st ? NULL : open_memstream(&vars, &vlen);
  if (!st && !m) st = ec_err(EC_ENOMEM, "out of memory");
  if (!st) {
    char q[9000], buf[512], at[32];
    const int n = p.ninputs, K = p.nmain, P = p.nprofiles;
    int nsnap = 0;
    for (int i = 0; i < n; i++) nsnap += i == 0 || p.inputs[i].nimg != p.inputs[i - 1].nimg;
    snprintf(buf, sizeof buf, "%s: post-hoc EMA at t = %s images (%.4g Mimg) from %d snapshot%s", c->run,
             ec_format_nimg(at, sizeof at, p.at), (double)p.at / MIMG, nsnap, nsnap == 1 ? "" : "s");
    fprintf(m, "title_text=%s; xmax=%.9g;", plot_quote(buf, q, sizeof q), (double)p.at / MIMG);
    /* stored panel: blocks, their colours, the legend per stored σ_rel; its y range shows the
     * profiles ending in the last half of [0, at] in full (earlier ones are narrower and taller) */
    double ymax = 0, ymax_all = 0;
    for (int i = 0; i < n; i++) {
      double peak = (p.inputs[i].gamma + 1) / (double)p.inputs[i].nimg * MIMG;
      if (peak > ymax_all) ymax_all = peak;
      if (2 * p.inputs[i].nimg >= p.at && peak > ymax) ymax = peak;
    }
    int clipped = ymax_all > 1.1 * ymax;
    /* at most MAXSNAP snapshots drawn, spread evenly from the first to the latest (all are in
     * profiles-stored.dat); snapshot ordinal of each input first */
    int *ord = calloc((size_t)(n > 0 ? n : 1), sizeof *ord), ndraw = 0;
    for (int i = 0, o = -1; ord && i < n; i++) ord[i] = o += i == 0 || p.inputs[i].nimg != p.inputs[i - 1].nimg;
    fprintf(m, "stored_ymax=%.9g; array SB[%d]; array SLT[%d]; ", clipped ? 1.1 * ymax : 1.05 * ymax_all, n, n);
    for (int i = 0; ord && i < n; i++) {
      int keep = nsnap <= MAXSNAP;
      for (int s = 0; !keep && s < MAXSNAP; s++) keep = ord[i] == (int)lround((double)s * (nsnap - 1) / (MAXSNAP - 1));
      if (!keep) continue;
      ndraw++;
      fprintf(m, "SB[%d]=%d; SLT[%d]=%d; ", ndraw, i, ndraw, stored_lt[p.inputs[i].prof % 6]);
    }
    free(ord);
    fprintf(m, "nstored=%d; ", ndraw);
    /* the legend: one entry per stored σ_rel that entered */
    int used[64] = {0}, nused = 0;
    for (int i = 0; i < n; i++)
      if (p.inputs[i].prof < 64) used[p.inputs[i].prof] = 1;
    for (int j = 0; j < P && j < 64; j++) nused += used[j];
    fprintf(m, "nkey=%d; array KLT[%d]; array KT[%d]; ", nused, nused ? nused : 1, nused ? nused : 1);
    for (int j = 0, u = 0; j < P && j < 64; j++) {
      if (!used[j]) continue;
      u++;
      snprintf(buf, sizeof buf, "stored σ_rel %.3f at %d snapshot%s", p.profiles[j], nsnap, nsnap == 1 ? "" : "s");
      fprintf(m, "KLT[%d]=%d; KT[%d]=%s; ", u, stored_lt[j % 6], u, plot_quote(buf, q, sizeof q));
    }
    int len = nsnap > MAXSNAP ? snprintf(buf, sizeof buf, "stored EMA profiles (%d of %d snapshots shown", MAXSNAP, nsnap)
                              : snprintf(buf, sizeof buf, "stored EMA profiles (%d", n);
    snprintf(buf + len, sizeof buf - (size_t)len, clipped ? "; the earliest cut off at the top)" : ")");
    fprintf(m, "stored_title=%s; ", plot_quote(buf, q, sizeof q));
    /* reconstruction panel: one target (purple fill, black dashes, as the paper) or several; of
     * more than MAXSHOW, MAXSHOW spread over the list (all are in profiles.dat) */
    const int S = K < MAXSHOW ? K : MAXSHOW;
    fprintf(m, "ntargets=%d; array TI[%d]; array TLT[%d]; array RLT[%d]; array TT[%d]; array RT[%d]; ", S, S, S, S, S, S);
    for (int s = 0; s < S; s++) {
      const int k = S == 1 ? 0 : (int)lround((double)s * (K - 1) / (S - 1));
      char e[32];
      short_exp(p.diag[k].rel_error, e, sizeof e);
      fprintf(m, "TI[%d]=%d; TLT[%d]=%d; RLT[%d]=%d; ", s + 1, k, s + 1, K == 1 ? 7 : target_lt[(s + 1) % 8], s + 1,
              K == 1 ? 4 : target_lt[(s + 1) % 8]);
      /* one target: "target σ_rel 0.100" and "reconstruction (relative L2 error 2.3e-3)";
       * several: one entry per σ_rel for its reconstruction, one for the dashed targets */
      snprintf(buf, sizeof buf, "target σ_rel %s", p.targets[k].label);
      fprintf(m, "TT[%d]=%s; ", s + 1, K == 1 ? plot_quote(buf, q, sizeof q) : "''");
      if (K == 1) snprintf(buf, sizeof buf, "reconstruction (relative L2 error %s)", e);
      else snprintf(buf, sizeof buf, "σ_rel %s reconstructed (relative L2 error %s)", p.targets[k].label, e);
      fprintf(m, "RT[%d]=%s; ", s + 1, plot_quote(buf, q, sizeof q));
    }
    if (S < K)
      snprintf(buf, sizeof buf,
               "post-hoc reconstruction of %d of the %d targets (all in profiles.dat): Σ x_i p_i fitted by least squares",
               S, K);
    else
      snprintf(buf, sizeof buf, "post-hoc reconstruction: Σ x_i p_i fitted to the target%s by least squares",
               K == 1 ? "" : "s");
    fprintf(m, "recon_title=%s; ", plot_quote(buf, q, sizeof q));
    fprintf(m, "targets_key=%s; ", K == 1 ? "''" : "'targets (dashed)'");
    /* family: labels with γ; a colour scale instead of a legend for more than 8 */
    fprintf(m, "array FT[%d]; array FS[%d]; ", K, K);
    for (int k = 0; k < K; k++) {
      snprintf(buf, sizeof buf, "σ_rel %s (γ = %.2f)", p.targets[k].label, p.targets[k].profile.gamma);
      fprintf(m, "FT[%d]=%s; FS[%d]=%.9g; ", k + 1, plot_quote(buf, q, sizeof q), k + 1, p.targets[k].profile.sigma_rel);
    }
    snprintf(buf, sizeof buf, "%s: power-function EMA profiles ending at t = %s images (%.4g Mimg)", c->run,
             ec_format_nimg(at, sizeof at, p.at), (double)p.at / MIMG);
    fprintf(m, "family_title=%s; family_palette=%d; fs_min=%.9g; fs_max=%.9g;", plot_quote(buf, q, sizeof q), K > 8,
            p.targets[0].profile.sigma_rel, p.targets[K - 1].profile.sigma_rel);
    fclose(m);
  }
  int nmain = p.nmain;
  plan_free(&p);
  if (!st) st = plot_render(c, "profiles", "profiles", vars);
  if (!st && nmain > 1) st = plot_render(c, "profiles-family", "profiles-family", vars);
  free(vars);
  return st;
}
