/* EMA-length sweeps of a run (analysis/sweep.h). */
#define _GNU_SOURCE /* realpath, mkdtemp */
#include "analysis/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/valloss.h"
#include "core/alloc.h"
#include "core/fs.h"
#include "core/pool.h"
#include "metrics/frechet.h"
#include "metrics/genscore.h"
#include "posthoc/ema_list.h"
#include "posthoc/model.h"
#include "posthoc/phema_math.h"
#include "posthoc/reconstruct.h"
#include "posthoc/snapshot_dir.h"
#include "posthoc/solve.h"
#include "core/h5io.h"
#include "trainer/arch.h"
#include "trainer/netload.h"

void edm2_sweep_opts_default(edm2_sweep_opts *o) {
  memset(o, 0, sizeof *o);
  static const double one = 1.0;
  o->metric = "val-loss";
  o->repeats = 1;
  o->guidance = &one;
  o->nguidance = 1;
  o->steps = 32;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void edm2_sweep_rule_hash(const char *text, char out[9]) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
  snprintf(out, 9, "%08x", (unsigned)(h ^ (h >> 32)));
}

ec_status edm2_sweep_times(const char *run, int64_t **times, int *n) {
  *times = NULL, *n = 0;
  char *dir = ec_asprintf("%s/snapshots", run);
  if (!dir) return ec_err(EC_ENOMEM, "out of memory");
  snapdir sd;
  ec_status st = snapdir_scan(&sd, dir);
  if (!st) {
    int64_t *t = ec_mallocarray((size_t)sd.n + 1, sizeof *t);
    if (!t) st = ec_err(EC_ENOMEM, "out of memory");
    for (int i = 0; !st && i < sd.n; i++)
      if (sd.entries[i].nimg > 0) t[(*n)++] = sd.entries[i].nimg;
    if (!st && *n == 0) st = ec_err(EC_EINVAL, "%s: no snapshots (a run without snapshots has nothing to sweep)", dir);
    if (st) free(t);
    else *times = t;
    snapdir_free(&sd);
  }
  free(dir);
  return st;
}

/* RUN/config.json (NULL when missing). */
static char *run_config(const char *run) {
  char *path = ec_asprintf("%s/config.json", run);
  if (!path) return NULL;
  FILE *f = fopen(path, "rb");
  free(path);
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = 2 * cap + 8192;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = b;
    }
    size_t k = fread(buf + len, 1, 4096, f);
    len += k;
    if (k < 4096) break;
  }
  fclose(f);
  buf[len] = 0;
  return buf;
}

/* The value of a top-level string key of a JSON object text, into out ("" when absent). A full
 * parse is not needed for the one key read here ("data"). */
static void json_string(const char *json, const char *key, char *out, size_t cap) {
  out[0] = 0;
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p) return;
  p += strlen(pat);
  while (*p == ' ') p++;
  if (*p != '"') return;
  p++;
  size_t k = 0;
  while (*p && *p != '"' && k + 1 < cap) out[k++] = *p++;
  out[k] = 0;
}

/* An EMA-length list (posthoc/ema_list.h) with every value rounded to 10 significant digits:
 * the "..." expansion keeps binary rounding (0.06 may come out as 0.060000000000000005 from one
 * list and 0.06 from another), and rows are keyed by the value, so that two sweeps naming the
 * same length must store it the same way. No list is fine-grained enough for the rounding to
 * matter to the reconstruction. Duplicates after rounding are dropped. */
static ec_status sigma_list(const char *text, double **values, int *count) {
  ec_status st = phema_list_parse(text, values, count);
  if (st) return st;
  int k = 0;
  for (int i = 0; i < *count; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.10g", (*values)[i]);
    double v = strtod(buf, NULL);
    if (k == 0 || v != (*values)[k - 1]) (*values)[k++] = v;
  }
  *count = k;
  return EC_OK;
}

/* ---- evaluation ------------------------------------------------------------------------------- */

typedef struct {
  const edm2_sweep_opts *o;
  const char *run;
  int valloss; /* 1: val-loss; 0: fid or fd_dinov2 */
  edm2_metric m;
  int64_t num;
  edm2_valloss_opts vo;
  edm2_valloss_set *vs;
  edm2_scorer scorer;
  int have_scorer;
  edm2_stats_file ref;
  edm2_moments *refm[EDM2_METRIC_COUNT];
  int have_ref;
  edm2_net gnet;
  int have_gnet;
} evaluator;

static void evaluator_free(evaluator *e) {
  edm2_valloss_close(&e->vs);
  if (e->have_scorer) edm2_scorer_free(&e->scorer);
  if (e->have_ref) edm2_stats_file_free(&e->ref);
  if (e->have_gnet) edm2_net_free(&e->gnet);
  memset(e, 0, sizeof *e);
}

/* Everything that can fail before a model is made: the metric, its data or weights, the
 * reference statistics, the guiding network. */
static ec_status evaluator_init(evaluator *e, const edm2_sweep_opts *o) {
  memset(e, 0, sizeof *e);
  e->o = o;
  e->run = o->run;
  ec_status st = EC_OK;
  if (!strcmp(o->metric, "val-loss")) {
    e->valloss = 1;
    if (o->nguidance != 1 || o->guidance[0] != 1)
      return ec_err(EC_EINVAL, "--guidance: val-loss evaluates the denoiser alone; guidance applies to fid and fd_dinov2");
    edm2_valloss_opts_default(&e->vo);
    char *cfg = run_config(o->run);
    char data[1024];
    json_string(cfg, "data", data, sizeof data);
    if (cfg) st = edm2_valloss_opts_from_config(&e->vo, cfg, o->run);
    free(cfg);
    if (st) return st;
    if (o->val_data) {
      e->vo.data = o->val_data;
      e->vo.first = o->val_first;
    } else if (strcmp(data, "fashion-mnist") != 0) {
      return ec_err(EC_EINVAL, "%s was trained on '%s': val-loss needs held-out data, --val-data PATH "
                    "[--val-first K] (Fashion-MNIST runs use its test split)", o->run, data[0] ? data : "unknown data");
    }
    e->num = o->num > 0 ? o->num : e->vo.num;
    e->vo.num = e->num;
    e->vo.threads = o->threads;
    return EC_OK;
  }
  if (edm2_metric_parse(o->metric, &e->m))
    return ec_err(EC_EINVAL, "--metric %s: known metrics are val-loss, fid, fd_dinov2", o->metric);
  if (!o->ref) return ec_err(EC_EINVAL, "--metric %s needs --ref STATS (edm2-metrics ref makes them)", o->metric);
  e->num = o->num > 0 ? o->num : 50000;
  int want[EDM2_METRIC_COUNT] = {0};
  want[e->m] = 1;
  edm2_stats_file f;
  if ((st = edm2_stats_read(o->ref, &f))) return st;
  e->ref = f;
  e->have_ref = 1;
  edm2_moments *r = f.is_npz ? &e->ref.unnamed : &e->ref.metric[e->m];
  if (!r->dim || r->dim != edm2_metric_dim(e->m))
    return ec_err(EC_EINVAL, "%s holds no %lld-dimensional %s statistics", o->ref, (long long)edm2_metric_dim(e->m),
                  o->metric);
  e->refm[e->m] = r;
  if ((st = edm2_scorer_init(&e->scorer, want, o->weights_dir))) return st;
  e->have_scorer = 1;
  int guided = 0;
  for (int g = 0; g < o->nguidance; g++) guided |= o->guidance[g] != 1;
  if (guided) {
    if (!o->gnet) return ec_err(EC_EINVAL, "--guidance other than 1 needs --gnet MODEL");
    edm2_load_opts lo = {.quiet = 1};
    if ((st = edm2_net_load(&e->gnet, o->gnet, &lo, NULL))) return st;
    e->have_gnet = 1;
  }
  return EC_OK;
}

/* Checks the options that need no file, and the image count rows are keyed by. */
static ec_status metric_num(const edm2_sweep_opts *o, int64_t *num) {
  edm2_metric m;
  if (!strcmp(o->metric, "val-loss")) {
    edm2_valloss_opts vo;
    edm2_valloss_opts_default(&vo);
    *num = o->num > 0 ? o->num : vo.num;
    return EC_OK;
  }
  if (edm2_metric_parse(o->metric, &m))
    return ec_err(EC_EINVAL, "--metric %s: known metrics are val-loss, fid, fd_dinov2", o->metric);
  if (!o->ref) return ec_err(EC_EINVAL, "--metric %s needs --ref STATS (edm2-metrics ref makes them)", o->metric);
  *num = o->num > 0 ? o->num : 50000;
  return EC_OK;
}

/* The metric of one network; collective for fid/fd_dinov2 (every rank computes a share of the
 * images), local for val-loss. */
static ec_status evaluate(evaluator *e, edm2_net *net, double guidance, int repeat, const edm2_dist *d,
                          double *value) {
  const edm2_sweep_opts *o = e->o;
  ec_status st;
  if (e->valloss) {
    if (!e->vs || repeat != 0) {
      edm2_valloss_close(&e->vs);
      e->vo.seed = (uint64_t)(o->seed + repeat);
      if ((st = edm2_valloss_open(&e->vs, &e->vo, &net->arch.cfg))) return st;
    }
    st = edm2_valloss_eval(e->vs, net, value, NULL, NULL, NULL);
    if (repeat != 0) edm2_valloss_close(&e->vs); /* the set of repeat 0 is the one kept */
    return st;
  }
  edm2_genscore_opts go = {.num = e->num, .seed = o->seed + (int64_t)repeat * e->num, .batch = 32,
                           .threads = o->threads > 0 ? o->threads : ec_cpu_count(), .quiet = o->quiet || d->rank != 0};
  edm2_gen_opts_default(&go.g);
  go.g.steps = o->steps;
  go.g.guidance = guidance;
  edm2_scorer_reset(&e->scorer);
  if ((st = edm2_genscore(&go, d, net, guidance != 1 ? &e->gnet : NULL, &e->scorer))) return st;
  if ((st = edm2_scorer_reduce(&e->scorer, d))) return st;
  edm2_stats_file got;
  if ((st = edm2_scorer_result(&e->scorer, &got))) return st;
  edm2_fd_result r;
  const edm2_moments *a = &got.metric[e->m];
  st = edm2_frechet(a->dim, a->mu, a->sigma, e->refm[e->m]->mu, e->refm[e->m]->sigma, &r);
  if (!st) *value = r.fd;
  edm2_stats_file_free(&got);
  return st;
}

/* ---- temporary models ------------------------------------------------------------------------- */

/* RUN/.sweep/<pid>: this process's models. Directories of processes that no longer exist (a
 * sweep killed midway) are removed first. */
static void remove_tree(const char *dir) {
  DIR *dp = opendir(dir);
  if (!dp) return;
  struct dirent *e;
  while ((e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = ec_asprintf("%s/%s", dir, e->d_name);
    if (p) unlink(p);
    free(p);
  }
  closedir(dp);
  rmdir(dir);
}

/* RUN/.sweep once empty (another sweep's models keep it). */
static void rmdir_parent(const char *dir) {
  char *p = ec_strdup(dir), *slash = p ? strrchr(p, '/') : NULL;
  if (slash) *slash = 0, rmdir(p);
  free(p);
}

/* Every rank uses rank 0's directory: its pid, shared by an all-reduce. */
static long shared_pid(const edm2_dist *d) {
  int pid = d->rank == 0 ? (int)getpid() : 0;
  if (edm2_dist_allreduce_max_int(d, &pid, 1)) return (long)getpid();
  return pid;
}

static char *work_dir(const char *run, long pid) {
  char *base = ec_asprintf("%s/.sweep", run);
  if (!base) return NULL;
  mkdir(base, 0755);
  DIR *dp = opendir(base);
  if (dp) {
    struct dirent *e;
    while ((e = readdir(dp))) {
      char *end;
      long p = strtol(e->d_name, &end, 10);
      if (*end || p <= 0 || p == (long)getpid() || p == pid) continue;
      if (kill((pid_t)p, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
      char *stale = ec_asprintf("%s/%s", base, e->d_name);
      if (stale) remove_tree(stale);
      free(stale);
    }
    closedir(dp);
  }
  char *dir = ec_asprintf("%s/%ld", base, pid);
  free(base);
  return dir;
}

/* Reconstructs `sigma_text`/`half_text` at `at` into dir (rank 0 only); outputs in rep. */
static ec_status make_models(const edm2_sweep_opts *o, int64_t at, const char *sigma_text, const char *half_text,
                             const char *dir, recon_report *rep) {
  char *snaps = ec_asprintf("%s/snapshots", o->run);
  if (!snaps) return ec_err(EC_ENOMEM, "out of memory");
  recon_args ra;
  recon_args_init(&ra);
  ra.plan.snapshots = snaps;
  ra.plan.sigma_rel = sigma_text;
  ra.plan.half_life = half_text;
  ra.plan.use_profiles = o->use_profiles;
  ra.plan.at = at;
  ra.out_dir = dir;
  ra.force = 1;
  ra.quiet = 1;
  if (o->threads > 0) ra.threads = o->threads;
  if (o->mem_limit > 0) ra.mem_limit = o->mem_limit;
  plan p;
  memset(rep, 0, sizeof *rep);
  ec_status st = reconstruct(&ra, &p, rep, NULL);
  plan_free(&p);
  free(snaps);
  return st;
}

/* ---- the EMA sweep ------------------------------------------------------------------------------ */

typedef struct {
  double sigma_rel, half_life; /* one of them */
} target;

/* The file the reconstruction writes for a target (posthoc/plan.h labels). */
static void model_path(const char *dir, int64_t at, const target *t, char *out, size_t cap) {
  char label[48], name[256];
  if (t->half_life > 0) snprintf(label, sizeof label, "hl%.0f", t->half_life);
  else snprintf(label, sizeof label, "%.3f", t->sigma_rel);
  recon_output_name(name, sizeof name, at, label, RECON_H5);
  snprintf(out, cap, "%s/%s", dir, name);
}

/* "v1,v2,…" of the given values with full precision (the list syntax reads them back exactly). */
static char *list_text(const double *v, int n) {
  size_t cap = (size_t)n * 28 + 1, len = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  s[0] = 0;
  for (int i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, i ? ",%.17g" : "%.17g", v[i]);
  return s;
}

static void row_key(edm2_result *r, const char *run, int64_t at, const target *t, double guidance, const char *gnet,
                    const char *metric, int64_t num, int64_t seed, int repeat) {
  *r = (edm2_result)EDM2_RESULT_INIT;
  r->run = run;
  r->nimg = at;
  r->sigma_rel = t->sigma_rel;
  r->half_life = t->half_life;
  r->guidance = guidance;
  r->gnet = guidance != 1 ? gnet : "";
  r->metric = metric;
  r->num = num;
  r->seed = seed;
  r->repeat = repeat;
}

static void log_row(const edm2_sweep_opts *o, const edm2_dist *d, const edm2_result *r, const char *what) {
  if (!o->log || (d->rank != 0 && strcmp(o->metric, "val-loss"))) return;
  char prof[64];
  if (r->half_life > 0) snprintf(prof, sizeof prof, "half-life %.0f", r->half_life);
  else snprintf(prof, sizeof prof, "sigma_rel %.4f", r->sigma_rel);
  fprintf(o->log, "%s nimg %lld %s%s%s guidance %g repeat %d: %s = %.6g (%.1f s)\n", what, (long long)r->nimg, prof,
          r->tensor_rule && *r->tensor_rule ? " rule " : "", r->tensor_rule && *r->tensor_rule ? r->tensor_rule_text : "",
          r->guidance, r->repeat, r->metric, r->value, r->wall_s);
  fflush(o->log);
}

/* The canonical name of the run in rows: its real path. */
static ec_status run_name(const char *run, char *out, size_t cap) {
  char *rp = realpath(run, NULL);
  if (!rp) return ec_err(EC_ENOENT, "%s: %s", run, strerror(errno));
  snprintf(out, cap, "%s", rp);
  free(rp);
  return EC_OK;
}

ec_status edm2_sweep_ema(const edm2_sweep_opts *o, int64_t at, edm2_db *db, const edm2_dist *d,
                         edm2_sweep_report *rep) {
  const double t0 = now();
  char run[4096];
  ec_status st = run_name(o->run, run, sizeof run);
  if (st) return st;
  double *sig = NULL, *hl = NULL;
  int nsig = 0, nhl = 0;
  if (o->sigma_rel && (st = sigma_list(o->sigma_rel, &sig, &nsig))) return ec_err_context(st, "--sigma-rel");
  if (o->half_life && (st = plan_parse_half_lives(o->half_life, &hl, &nhl))) {
    free(sig);
    return ec_err_context(st, "--half-life");
  }
  const int nt = nsig + nhl;
  target *tg = ec_calloc((size_t)nt + 1, sizeof *tg);
  int *todo = ec_calloc((size_t)nt + 1, sizeof *todo);
  double *msig = ec_calloc((size_t)nsig + 1, sizeof *msig), *mhl = ec_calloc((size_t)nhl + 1, sizeof *mhl);
  if (!tg || !todo || !msig || !mhl) st = ec_err(EC_ENOMEM, "out of memory");
  if (!st && nt == 0) st = ec_err(EC_EINVAL, "no EMA length to sweep: give --sigma-rel and/or --half-life");
  for (int i = 0; i < nsig && !st; i++) tg[i].sigma_rel = sig[i];
  for (int i = 0; i < nhl && !st; i++) tg[nsig + i].half_life = hl[i];

  /* What is missing. The evaluator (data, weights, reference statistics) loads only when
   * something is: a sweep with nothing to do returns at once. */
  evaluator e = {0};
  int have_e = 0;
  int64_t num = 0;
  if (!st) st = metric_num(o, &num);
  st = edm2_dist_agree(d, st);
  int nmsig = 0, nmhl = 0, exists;
  for (int i = 0; i < nt && !st; i++)
    for (int g = 0; g < o->nguidance && !st && !todo[i]; g++)
      for (int r = 0; r < o->repeats && !st && !todo[i]; r++) {
        edm2_result k;
        row_key(&k, run, at, &tg[i], o->guidance[g], o->gnet, o->metric, num, o->seed, r);
        if (!(st = edm2_db_exists(db, &k, &exists)) && (!exists || o->redo)) todo[i] = 1;
      }
  for (int i = 0; i < nt && !st; i++) {
    if (!todo[i]) continue;
    if (i < nsig) msig[nmsig++] = tg[i].sigma_rel;
    else mhl[nmhl++] = tg[i].half_life;
  }
  int nmiss = nmsig + nmhl;
  for (int i = 1; i < nmsig && !st; i++) { /* output files are named by σ to 3 decimals */
    char a[32], b[32];
    snprintf(a, sizeof a, "%.3f", msig[i - 1]);
    snprintf(b, sizeof b, "%.3f", msig[i]);
    if (!strcmp(a, b))
      st = ec_err(EC_EINVAL, "--sigma-rel: %.17g and %.17g are the same EMA length to 3 decimals (%s)", msig[i - 1],
                  msig[i], a);
  }
  if (!st) rep->skipped += (nt - nmiss) * o->nguidance * o->repeats;
  if (!st && nmiss) {
    if (!(st = evaluator_init(&e, o))) have_e = 1;
    else evaluator_free(&e); /* what it loaded before failing */
  }
  st = edm2_dist_agree(d, st);

  /* One reconstruction pass for every missing target (rank 0), in the plan's order: power
   * targets by σ, then exponential ones by half-life — the order of todo. */
  char *dir = NULL, *stext = NULL, *htext = NULL;
  recon_report rr = {0};
  if (!st && nmiss) {
    if (!(dir = work_dir(o->run, shared_pid(d)))) st = ec_err(EC_ENOMEM, "out of memory");
    if (!st && nmsig && !(stext = list_text(msig, nmsig))) st = ec_err(EC_ENOMEM, "out of memory");
    if (!st && nmhl) {
      size_t cap = (size_t)nmhl * 24 + 1, len = 0;
      if (!(htext = malloc(cap))) st = ec_err(EC_ENOMEM, "out of memory");
      for (int i = 0; !st && i < nmhl; i++) len += (size_t)snprintf(htext + len, cap - len, i ? ",%.0f" : "%.0f", mhl[i]);
    }
    if (!st && d->rank == 0) {
      st = make_models(o, at, stext, htext, dir, &rr);
      if (!st && rr.noutputs != nmiss)
        st = ec_err(EC_EFORMAT, "%s: the reconstruction made %d models for %d EMA lengths", o->run, rr.noutputs, nmiss);
      if (!st) rep->models += rr.noutputs;
    }
    st = edm2_dist_bcast_status(d, &st, 0);
  }

  /* Evaluate. val-loss: model j on rank j mod K, each rank storing its rows; fid: every
   * model on every rank (the images are shared), rank 0 storing. */
  for (int i = 0, j = -1; i < nt && !st; i++) {
    if (!todo[i]) continue;
    j++;
    if (e.valloss && j % d->world != d->rank) continue;
    char path[4400];
    model_path(dir, at, &tg[i], path, sizeof path); /* every rank names it as rank 0 wrote it */
    edm2_net net;
    edm2_load_opts lo = {.quiet = 1};
    ec_status ls = edm2_net_load(&net, path, &lo, NULL);
    if (!e.valloss) ls = edm2_dist_agree(d, ls);
    if ((st = ls)) break;
    for (int g = 0; g < o->nguidance && !st; g++)
      for (int r = 0; r < o->repeats && !st; r++) {
        edm2_result row;
        row_key(&row, run, at, &tg[i], o->guidance[g], o->gnet, o->metric, e.num, o->seed, r);
        if (!o->redo && !(st = edm2_db_exists(db, &row, &exists)) && exists) {
          rep->skipped++;
          continue;
        }
        double t1 = now();
        if (!st) st = evaluate(&e, &net, o->guidance[g], r, d, &row.value);
        row.wall_s = now() - t1;
        if (!st && (e.valloss || d->rank == 0)) st = edm2_db_put(db, &row, o->redo);
        if (!e.valloss) st = edm2_dist_agree(d, st);
        if (!st) {
          rep->evaluated++;
          log_row(o, d, &row, "sweep");
        }
      }
    edm2_net_free(&net);
  }
  if (e.valloss) st = edm2_dist_agree(d, st);
  if (dir && d->rank == 0) remove_tree(dir), rmdir_parent(dir);
  recon_report_free(&rr);
  if (have_e) evaluator_free(&e);
  free(dir), free(stext), free(htext), free(sig), free(hl), free(tg), free(todo), free(msig), free(mhl);
  rep->seconds += now() - t0;
  return st;
}

/* ---- per-tensor sweeps (Figure 5b) ---------------------------------------------------------- */

static int matches_any(const char *name, const char *globs) {
  const char *p = globs;
  char g[256];
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n > 0 && n < sizeof g) {
      memcpy(g, p, n);
      g[n] = 0;
      if (fnmatch(g, name, 0) == 0) return 1;
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

/* One sweep per tensor: rows share the rule (the hash of this text) and differ in sigma_rel, the
 * tensor's EMA length, so best_sigma fits each tensor's curve. */
static void per_tensor_rule(const char *name, double base_sigma, char *rule, size_t cap, char hash[9]) {
  snprintf(rule, cap, "per-tensor: %s at sigma_rel, every other tensor at %.17g", name, base_sigma);
  edm2_sweep_rule_hash(rule, hash);
}

/* Before any model is made: the tensors the globs choose (from the network of the snapshot at
 * `at`; none is an error) and how many of the sweep's rows the database lacks. */
static ec_status per_tensor_missing(const edm2_sweep_opts *o, int64_t at, const char *run, double base_sigma,
                                    const char *tensors, const double *all, int nall, int64_t num, edm2_db *db,
                                    int *missing, int *present) {
  *missing = *present = 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/snapshots/snapshot-%012lld.h5", o->run, (long long)at);
  hid_t file = H5I_INVALID_HID;
  edm2_netcfg cfg;
  ec_status st = h5io_file_open(path, &file);
  if (!st) st = edm2_netcfg_from_file(file, path, &cfg, NULL, 0);
  h5io_close(&file);
  edm2_arch A;
  if (st || (st = edm2_arch_init(&A, &cfg))) return st;
  int chosen = 0;
  for (int ti = 0; !st && ti < A.n_tensors; ti++) {
    const edm2_tensor *T = &A.tensors[ti];
    if (T->kind != EDM2_PARAM || !matches_any(T->name, tensors)) continue;
    chosen++;
    char rule[EDM2_NAME_MAX + 96], hash[9];
    per_tensor_rule(T->name, base_sigma, rule, sizeof rule, hash);
    for (int k = 0; k < nall && !st; k++)
      for (int r = 0; r < o->repeats && !st; r++) {
        edm2_result row;
        target vt = {.sigma_rel = all[k]};
        row_key(&row, run, at, &vt, 1.0, NULL, o->metric, num, o->seed, r);
        row.tensor_rule = hash;
        int exists = 0;
        if ((st = edm2_db_exists(db, &row, &exists))) break;
        if (exists && !o->redo) (*present)++;
        else (*missing)++;
      }
  }
  edm2_arch_free(&A);
  if (!st && chosen == 0)
    st = ec_err(EC_EINVAL, "--tensors '%s' matches no parameter of the network (edm2-train --describe lists them)",
                tensors);
  return st;
}

ec_status edm2_sweep_per_tensor(const edm2_sweep_opts *o, int64_t at, double base_sigma, const char *tensors,
                                edm2_db *db, const edm2_dist *d, edm2_sweep_report *rep) {
  const double t0 = now();
  char run[4096];
  ec_status st = run_name(o->run, run, sizeof run);
  if (st) return st;
  double *sig = NULL;
  int nsig = 0;
  if (!o->sigma_rel) return ec_err(EC_EINVAL, "--sigma-rel LIST is required");
  if ((st = sigma_list(o->sigma_rel, &sig, &nsig))) return ec_err_context(st, "--sigma-rel");
  /* The models: the base and every σ, in one pass. */
  double *all = ec_mallocarray((size_t)nsig + 1, sizeof *all);
  int nall = 0, base_idx = -1;
  if (!all) st = ec_err(EC_ENOMEM, "out of memory");
  for (int i = 0, placed = 0; !st && i <= nsig; i++) {
    double v = i < nsig ? sig[i] : INFINITY;
    if (!placed && base_sigma <= v) {
      base_idx = nall;
      all[nall++] = base_sigma;
      placed = 1;
      if (base_sigma == v) continue;
    }
    if (i < nsig) all[nall++] = v;
  }
  int64_t num = 0;
  int missing = 0, present = 0;
  if (!st) st = metric_num(o, &num);
  if (!st) st = per_tensor_missing(o, at, run, base_sigma, tensors, all, nall, num, db, &missing, &present);
  if (!st && !missing) { /* every row is there: no model to make */
    rep->skipped += present;
    free(sig), free(all);
    rep->seconds += now() - t0;
    return EC_OK;
  }
  evaluator e = {0};
  int have_e = 0;
  if (!st && !(st = evaluator_init(&e, o))) have_e = 1;
  else if (st) evaluator_free(&e); /* what it loaded before failing */
  char *dir = NULL, *text = NULL;
  recon_report rr = {0};
  long pid = shared_pid(d);
  if (!st && !(dir = work_dir(o->run, pid))) st = ec_err(EC_ENOMEM, "out of memory");
  if (!st && !(text = list_text(all, nall))) st = ec_err(EC_ENOMEM, "out of memory");
  if (!st && d->rank == 0) {
    st = make_models(o, at, text, NULL, dir, &rr);
    if (!st) rep->models += rr.noutputs;
  }
  st = edm2_dist_bcast_status(d, &st, 0);
  edm2_net base;
  int have_base = 0;
  model_file *mf = NULL;
  float *keep = NULL;
  char path[4400];
  if (!st) {
    target bt = {.sigma_rel = base_sigma};
    model_path(dir, at, &bt, path, sizeof path);
    edm2_load_opts lo = {.quiet = 1};
    if (!(st = edm2_net_load(&base, path, &lo, NULL))) have_base = 1;
  }
  if (!st && !(mf = ec_calloc((size_t)nall, sizeof *mf))) st = ec_err(EC_ENOMEM, "out of memory");
  for (int k = 0; k < nall && !st; k++) {
    target t = {.sigma_rel = all[k]};
    model_path(dir, at, &t, path, sizeof path);
    st = model_open(&mf[k], path);
  }
  const edm2_arch *A = have_base ? &base.arch : NULL;
  for (int ti = 0; !st && ti < A->n_tensors; ti++) {
    const edm2_tensor *T = &A->tensors[ti];
    if (T->kind != EDM2_PARAM || !matches_any(T->name, tensors)) continue;
    float *w = edm2_net_tensor(&base, ti);
    free(keep);
    if (!(keep = ec_mallocarray((size_t)T->numel, sizeof *keep))) {
      st = ec_err(EC_ENOMEM, "out of memory");
      break;
    }
    memcpy(keep, w, (size_t)T->numel * sizeof *w);
    /* The base model is the point σ = base of every tensor's curve. */
    char rule[EDM2_NAME_MAX + 96], hash[9];
    per_tensor_rule(T->name, base_sigma, rule, sizeof rule, hash);
    for (int k = 0; k < nall && !st; k++) {
      target vt = {.sigma_rel = all[k]};
      for (int r = 0; r < o->repeats && !st; r++) {
        edm2_result row;
        row_key(&row, run, at, &vt, 1.0, NULL, o->metric, e.num, o->seed, r);
        row.tensor_rule = hash;
        row.tensor_rule_text = rule;
        int exists = 0;
        if ((st = edm2_db_exists(db, &row, &exists))) break;
        if (exists && !o->redo) {
          rep->skipped++;
          continue;
        }
        int idx = model_find_param(&mf[k], T->name);
        if (idx < 0) {
          st = ec_err(EC_EFORMAT, "%s: no tensor %s", mf[k].path, T->name);
          break;
        }
        if (k != base_idx && (st = model_read_param(&mf[k], idx, EC_F32, w, 0, T->numel))) break;
        double t1 = now();
        st = evaluate(&e, &base, 1.0, r, d, &row.value);
        row.wall_s = now() - t1;
        memcpy(w, keep, (size_t)T->numel * sizeof *w); /* back to the base */
        if (!st && d->rank == 0) st = edm2_db_put(db, &row, o->redo);
        st = edm2_dist_agree(d, st);
        if (!st) {
          rep->evaluated++;
          log_row(o, d, &row, "per-tensor");
        }
      }
    }
  }
  for (int k = 0; mf && k < nall; k++) model_close(&mf[k]);
  free(mf);
  free(keep);
  if (have_base) edm2_net_free(&base);
  if (dir && d->rank == 0) remove_tree(dir), rmdir_parent(dir);
  recon_report_free(&rr);
  if (have_e) evaluator_free(&e);
  free(dir), free(text), free(sig), free(all);
  rep->seconds += now() - t0;
  return st;
}

/* ---- profile accuracy (Figure 4) ------------------------------------------------------------- */

/* The stored EMA profiles of the run (RUN/config.json "ema", default 0.05, 0.10). */
static int stored_profiles(const char *run, double *out, int cap) {
  char *cfg = run_config(run);
  int n = 0;
  const char *p = cfg ? strstr(cfg, "\"ema\":") : NULL;
  if (p && (p = strchr(p, '['))) {
    p++;
    while (n < cap) {
      char *end;
      double v = strtod(p, &end);
      if (end == p) break;
      out[n++] = v;
      p = end;
      while (*p == ',' || *p == ' ') p++;
    }
  }
  free(cfg);
  if (n == 0) out[n++] = 0.05, out[n++] = 0.10;
  return n;
}

ec_status edm2_sweep_profile_accuracy(const edm2_sweep_opts *o, int64_t at, edm2_db *db, FILE *out,
                                      edm2_sweep_report *rep) {
  const double t0 = now();
  char run[4096];
  ec_status st = run_name(o->run, run, sizeof run);
  if (st) return st;
  int64_t *times = NULL;
  int nt = 0;
  if ((st = edm2_sweep_times(o->run, &times, &nt))) return st;
  int n = 0;
  while (n < nt && times[n] <= at) n++;
  double stored[16];
  int P = stored_profiles(o->run, stored, 16);
  if (o->use_profiles) { /* the profiles the reconstruction would use */
    double *u = NULL;
    int nu = 0;
    if ((st = phema_list_parse(o->use_profiles, &u, &nu))) {
      free(times);
      return ec_err_context(st, "--use-profiles");
    }
    P = nu < 16 ? nu : 16;
    memcpy(stored, u, (size_t)P * sizeof *u);
    free(u);
  }
  double *sig = NULL;
  int nsig = 0;
  if ((st = sigma_list(o->sigma_rel ? o->sigma_rel : "0.05,0.10,0.15,0.20", &sig, &nsig))) {
    free(times);
    return ec_err_context(st, "--sigma-rel");
  }
  int64_t *t = ec_mallocarray((size_t)n * P + 1, sizeof *t);
  double *g = ec_mallocarray((size_t)n * P + 1, sizeof *g), *x = ec_mallocarray((size_t)n * P + 1, sizeof *x);
  if (!t || !g || !x) st = ec_err(EC_ENOMEM, "out of memory");
  if (!st && n < 1) st = ec_err(EC_EINVAL, "%s: no snapshot at or before %lld", o->run, (long long)at);
  if (!st && out)
    fprintf(out, "%-10s %-8s %-9s %s\n", "sigma_rel", "subset", "snapshots", "relative L2 error of the profile");
  /* subsets: every k-th snapshot counted back from `at` (k = 1, 2, 4, …), then the last m. */
  for (int mode = 0; mode < 2 && !st; mode++)
    for (int step = 1; !st; step *= 2) {
      int k = mode == 0 ? step : 1, m = mode == 0 ? n : step;
      if (mode == 1 && m >= n) break;
      int cnt = 0;
      for (int i = n - 1; i >= 0 && (mode == 0 || cnt < m); i -= k) cnt++;
      if (cnt < 1 || (mode == 0 && step > 1 && cnt < 2)) break;
      int used = 0;
      for (int i = n - 1, c = 0; i >= 0 && c < cnt; i -= k, c++)
        for (int j = 0; j < P; j++) {
          t[used] = times[i];
          if ((st = phema_sigma_to_gamma(stored[j], &g[used]))) break;
          used++;
        }
      for (int s = 0; s < nsig && !st; s++) {
        phema_profile goal;
        if ((st = phema_profile_power(&goal, at, sig[s]))) break;
        phema_solve_opts so;
        phema_solve_opts_init(&so);
        phema_diag diag;
        /* phema_solve wants inputs sorted by time: the loop above went backwards */
        for (int a = 0, b = used - 1; a < b; a++, b--) {
          int64_t tt = t[a];
          t[a] = t[b], t[b] = tt;
          double gg = g[a];
          g[a] = g[b], g[b] = gg;
        }
        st = phema_solve(t, g, used, &goal, 1, &so, x, &diag);
        for (int a = 0, b = used - 1; a < b; a++, b--) { /* restore for the next target */
          int64_t tt = t[a];
          t[a] = t[b], t[b] = tt;
          double gg = g[a];
          g[a] = g[b], g[b] = gg;
        }
        if (st) break;
        char subset[32];
        if (mode == 0) snprintf(subset, sizeof subset, "every %d", k);
        else snprintf(subset, sizeof subset, "last %d", m);
        if (out) fprintf(out, "%-10.4f %-8s %-9d %.3e\n", sig[s], subset, cnt, diag.rel_error);
        if (db) {
          edm2_result row = EDM2_RESULT_INIT;
          row.run = run;
          row.nimg = at;
          row.sigma_rel = sig[s];
          row.metric = "profile-error";
          row.value = diag.rel_error;
          row.num = cnt;
          row.seed = mode == 0 ? k : 0;
          row.wall_s = 0;
          int exists = 0;
          if (!(st = edm2_db_exists(db, &row, &exists)) && (!exists || o->redo)) {
            if (!(st = edm2_db_put(db, &row, o->redo))) rep->evaluated++;
          } else if (!st) {
            rep->skipped++;
          }
        }
      }
      if (mode == 0 && cnt < 2) break;
    }
  free(times), free(sig), free(t), free(g), free(x);
  rep->seconds += now() - t0;
  return st;
}
