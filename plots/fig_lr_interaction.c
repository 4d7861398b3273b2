/* edm2-plot lr-interaction (Figure 13): the metric against EMA length for several runs that
 * differ in a configuration key (the learning-rate decay in the paper), one curve per run at its
 * latest snapshot (--at: that one), labelled by the key's value, each optimum marked
 * (plots/lr-interaction.gp).
 *
 * The runs: --runs DIR (its subfolders that hold config.json or results.sqlite) or a comma list;
 * without --runs and --run, every run of the --db database. Each run's rows come from its own
 * RUN/results.sqlite, or from --db (rows whose run is the run's canonical path). The key:
 * --key, else the config.json keys whose values differ (not data, seed, threads and the like),
 * "decay" or "lr" first. */
#define _GNU_SOURCE /* realpath */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/fs.h"
#include "plots/figures.h"

typedef struct {
  char *path;         /* as given (or as stored in the database) */
  cJSON *cfg;         /* RUN/config.json; NULL when missing or unreadable */
  dbfig_data d;       /* its rows and sweeps */
  const edm2_best *b; /* the sweep drawn; NULL when none */
  char *label;
  double order; /* the key's value when numeric, else the run's position */
} lrun;

typedef struct {
  lrun *r;
  size_t n, cap;
} lruns;

static ec_status add_run(lruns *l, const char *path) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    lrun *r = ec_realloc(l->r, cap, sizeof *r);
    if (!r) return ec_err(EC_ENOMEM, "out of memory");
    l->r = r, l->cap = cap;
  }
  memset(&l->r[l->n], 0, sizeof *l->r);
  if (!(l->r[l->n].path = ec_strdup(path))) return ec_err(EC_ENOMEM, "out of memory");
  l->n++;
  return EC_OK;
}

static void free_runs(lruns *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->r[i].path), free(l->r[i].label);
    cJSON_Delete(l->r[i].cfg);
    dbfig_free(&l->r[i].d);
  }
  free(l->r);
}

static int has_file(const char *dir, const char *name) {
  char p[4400];
  struct stat sb;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &sb) == 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* --runs: a comma list, or a folder whose subfolders are runs. */
static ec_status list_runs(const char *spec, lruns *l) {
  if (strchr(spec, ',')) {
    for (const char *p = spec; *p;) {
      size_t k = strcspn(p, ",");
      if (k) {
        char *one = ec_asprintf("%.*s", (int)k, p);
        if (!one) return ec_err(EC_ENOMEM, "out of memory");
        if (!ec_is_dir(one)) {
          ec_status st = ec_err(EC_ENOENT, "--runs: %s is not a folder", one);
          free(one);
          return st;
        }
        ec_status st = add_run(l, one);
        free(one);
        if (st) return st;
      }
      p += k + (p[k] == ',');
    }
    return EC_OK;
  }
  if (!ec_is_dir(spec)) return ec_err(EC_ENOENT, "--runs %s: not a folder (give a folder of runs or a comma list)", spec);
  struct dirent **e;
  int n = scandir(spec, &e, NULL, by_name);
  if (n < 0) return ec_err(EC_EIO, "--runs %s: %s", spec, strerror(errno));
  ec_status st = EC_OK;
  for (int i = 0; i < n; i++) {
    if (!st && e[i]->d_name[0] != '.') {
      char *p = ec_asprintf("%s/%s", spec, e[i]->d_name);
      if (!p) st = ec_err(EC_ENOMEM, "out of memory");
      else if (ec_is_dir(p) && (has_file(p, "config.json") || has_file(p, "results.sqlite"))) st = add_run(l, p);
      free(p);
    }
    free(e[i]);
  }
  free(e);
  if (!st && l->n == 0 && has_file(spec, "config.json")) st = add_run(l, spec); /* one run, not a folder of them */
  return st;
}

/* Keeps the rows of `run` (its canonical path, or the name as given); all when none match and
 * the database is the run's own. */
static void keep_run_rows(edm2_result_list *rows, const char *run, int own) {
  char *rp = realpath(run, NULL);
  size_t k = 0;
  for (size_t i = 0; i < rows->n; i++)
    if ((rp && !strcmp(rows->rows[i].run, rp)) || !strcmp(rows->rows[i].run, run)) rows->rows[k++] = rows->rows[i];
  free(rp);
  if (k || !own) rows->n = k;
}

static int plain_at(const edm2_best *b, const plot_ctx *c) { return dbfig_plain(b) && (c->at < 0 || b->nimg == c->at); }

/* The run's sweep of the metric: its latest time (or --at), the largest image count there. */
static const edm2_best *pick(const lrun *r, const char *metric, const plot_ctx *c) {
  const edm2_best *best = NULL;
  for (size_t i = 0; i < r->d.sweeps.n; i++) {
    const edm2_best *b = &r->d.sweeps.best[i];
    if (strcmp(b->metric, metric) || !plain_at(b, c)) continue;
    if (!best || b->nimg > best->nimg || (b->nimg == best->nimg && b->num > best->num)) best = b;
  }
  return best;
}

static cJSON *read_config(const char *run) {
  char p[4400];
  snprintf(p, sizeof p, "%s/config.json", run);
  FILE *f = fopen(p, "r");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0, k;
  char chunk[4096];
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
    char *b = realloc(buf, cap = n + k + 1);
    if (!b) break;
    buf = b;
    memcpy(buf + n, chunk, k);
    n += k;
  }
  fclose(f);
  if (!buf) return NULL;
  buf[n] = 0;
  cJSON *o = cJSON_Parse(buf);
  free(buf);
  if (o && !cJSON_IsObject(o)) cJSON_Delete(o), o = NULL;
  return o;
}

/* The key's value in a run's config as text ("2048", "[0.05,0.1]"); "none" when missing. */
static char *value_text(const cJSON *cfg, const char *key) {
  const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
  if (!v) return ec_strdup("none");
  if (cJSON_IsString(v)) return ec_strdup(v->valuestring);
  if (cJSON_IsNumber(v)) return ec_asprintf("%.10g", v->valuedouble);
  char *s = cJSON_PrintUnformatted(v);
  char *r = s ? ec_strdup(s) : NULL;
  cJSON_free(s);
  return r;
}

/* 1 when the key's value differs between two of the runs drawn. */
static int differs(const lruns *l, const char *key) {
  char *first = NULL;
  int diff = 0;
  for (size_t i = 0; i < l->n && !diff; i++) {
    if (!l->r[i].b) continue;
    char *t = value_text(l->r[i].cfg, key);
    if (!t) continue;
    if (!first) first = t;
    else diff = strcmp(first, t) != 0, free(t);
  }
  free(first);
  return diff;
}

static int ignored(const char *key) {
  static const char *const keys[] = {"data", "seed", "threads", "status", "snapshot", "checkpoint", "batch_gpu",
                                     "run", "out", "dir", "resume", "log", "cuda", "device", NULL};
  for (int i = 0; keys[i]; i++)
    if (!strcmp(key, keys[i])) return 1;
  return 0;
}

/* The differing keys (up to 3), "decay" and "lr" first, into keys; their count. */
static int find_keys(const lruns *l, const char **keys) {
  int n = 0;
  if (differs(l, "decay")) keys[n++] = "decay";
  if (differs(l, "lr")) keys[n++] = "lr";
  for (size_t i = 0; i < l->n && n < 3; i++) {
    if (!l->r[i].b || !l->r[i].cfg) continue;
    for (const cJSON *it = l->r[i].cfg->child; it && n < 3; it = it->next) {
      int seen = 0;
      for (int k = 0; k < n; k++) seen |= !strcmp(keys[k], it->string);
      if (!seen && !ignored(it->string) && differs(l, it->string)) keys[n++] = it->string;
    }
  }
  return n;
}

static int by_order(const void *a, const void *b) {
  const lrun *x = a, *y = b;
  if (!x->b != !y->b) return x->b ? -1 : 1;
  return (x->order > y->order) - (x->order < y->order);
}

static const char *const pref_metrics[] = {"val-loss", "fid", "fd_dinov2"};

int fig_lr_interaction(plot_ctx *c) {
  lruns l = {0};
  ec_status st = EC_OK;
  edm2_result_list shared = {0};
  const edm2_best **sel = NULL;
  char **titles = NULL;
  double *z = NULL;
  size_t n = 0;
  if (c->runs) {
    if ((st = list_runs(c->runs, &l))) goto done;
  } else if (!c->run && c->db_path) { /* every run of the shared database */
    plot_ctx all = *c;
    all.run = NULL;
    st = plot_rows(&all, NULL, &shared);
    c->db = all.db;
    if (st) goto done;
    for (size_t i = 0; i < shared.n && !st; i++)
      if (i == 0 || strcmp(shared.rows[i].run, shared.rows[i - 1].run)) st = add_run(&l, shared.rows[i].run);
    edm2_result_list_free(&shared);
    if (st) goto done;
  } else {
    st = plot_nodata(c, "needs --runs DIR|LIST: the runs to compare (runs that differ in the learning-rate decay or another key)");
    goto done;
  }
  if (l.n == 0) {
    st = plot_nodata(c, "no runs under %s (subfolders with config.json or results.sqlite)", c->runs);
    goto done;
  }
  /* Each run's rows and sweeps. */
  for (size_t i = 0; i < l.n && !st; i++) {
    lrun *r = &l.r[i];
    r->cfg = read_config(r->path);
    r->order = (double)i;
    plot_ctx rc = *c;
    char own[4400];
    rc.run = NULL; /* rows of every run, then filtered here */
    if (c->db_path) rc.db = c->db;
    else {
      snprintf(own, sizeof own, "%s/results.sqlite", r->path);
      struct stat sb;
      if (stat(own, &sb) != 0) continue; /* nothing swept: no curve */
      rc.db = NULL, rc.db_path = own;
    }
    st = plot_rows(&rc, NULL, &r->d.rows);
    if (c->db_path) c->db = rc.db;
    else edm2_db_close(&rc.db);
    if (st) break;
    keep_run_rows(&r->d.rows, r->path, !c->db_path);
    st = edm2_best_sigma(r->d.rows.rows, r->d.rows.n, &r->d.sweeps);
  }
  if (st) goto done;
  /* The metric: --metric, else the first of val-loss, fid, fd_dinov2 that two runs have (one
   * run, for the note). */
  const char *metric = c->metric;
  for (int need = 2; need >= 1 && !metric; need--)
    for (int p = 0; !metric && p < 3; p++) {
      int have = 0;
      for (size_t i = 0; i < l.n; i++) have += pick(&l.r[i], pref_metrics[p], c) != NULL;
      if (have >= need) metric = pref_metrics[p];
    }
  if (metric)
    for (size_t i = 0; i < l.n; i++) n += (l.r[i].b = pick(&l.r[i], metric, c)) != NULL;
  if (n < 2) {
    st = plot_nodata(c, "%zu of the %zu runs %s a %s sweep without guidance%s; two are needed", n, l.n,
                     n == 1 ? "has" : "have", metric ? metric : "val-loss, fid or fd_dinov2", c->at >= 0 ? " at --at" : "");
    goto done;
  }
  /* Labels: the differing key(s). */
  const char *keys[3];
  int nk = c->key ? (keys[0] = c->key, 1) : find_keys(&l, keys);
  int numeric = nk == 1;
  for (size_t i = 0; i < l.n && !st; i++) {
    lrun *r = &l.r[i];
    if (!r->b) continue;
    char lab[512] = "";
    size_t k = 0;
    for (int j = 0; j < nk; j++) {
      char *t = value_text(r->cfg, keys[j]);
      if (!t) {
        st = ec_err(EC_ENOMEM, "out of memory");
        break;
      }
      k += (size_t)snprintf(lab + k, sizeof lab - (k < sizeof lab ? k : sizeof lab), "%s%s = %s", j ? ", " : "",
                            keys[j], t);
      if (k >= sizeof lab) k = sizeof lab - 1;
      if (nk == 1) {
        char *e;
        double x = strtod(t, &e);
        if (e != t && !*e && isfinite(x)) r->order = x;
        else numeric = 0;
      }
      free(t);
    }
    if (!nk) snprintf(lab, sizeof lab, "%s", dbfig_run_name(r->path));
    if (!(r->label = ec_strdup(lab))) st = ec_err(EC_ENOMEM, "out of memory");
  }
  if (st) goto done;
  if (!numeric)
    for (size_t i = 0; i < l.n; i++) l.r[i].order = (double)i;
  qsort(l.r, l.n, sizeof *l.r, by_order); /* the drawn runs first, by the key's value */
  int times = 0;
  for (size_t i = 1; i < n; i++) times |= l.r[i].b->nimg != l.r[0].b->nimg;
  sel = ec_mallocarray(n, sizeof *sel);
  titles = ec_calloc(n, sizeof *titles);
  z = ec_mallocarray(n, sizeof *z);
  if (!sel || !titles || !z) {
    st = ec_err(EC_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n && !st; i++) {
    char best[128], t[96];
    sel[i] = l.r[i].b;
    z[i] = l.r[i].order;
    dbfig_best_text(sel[i], best, sizeof best);
    if (times) titles[i] = ec_asprintf("%s (at %s): %s", l.r[i].label, dbfig_time(sel[i]->nimg, t, sizeof t), best);
    else titles[i] = ec_asprintf("%s: %s", l.r[i].label, best);
    if (!titles[i]) st = ec_err(EC_ENOMEM, "out of memory");
  }
  int band = 0;
  if (!st) st = dbfig_write_curves(c, "lr-interaction", sel, z, n, &band);
  dbfig_vars v;
  if (!st && !(st = dbfig_vars_open(&v))) {
    char title[1024], what[256] = "", t[96];
    for (int j = 0; j < nk; j++)
      snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", j ? ", " : "", keys[j]);
    if (!nk) snprintf(what, sizeof what, "%s", "their configuration");
    if (times) snprintf(title, sizeof title, "%s vs EMA length for %zu runs differing in %s", dbfig_metric_label(metric), n, what);
    else
      snprintf(title, sizeof title, "%s vs EMA length for %zu runs differing in %s, at %s", dbfig_metric_label(metric), n,
               what, dbfig_time(sel[0]->nimg, t, sizeof t));
    dbfig_curve_vars(&v, title, metric, band, dbfig_max_count(sel, n), titles, n);
    st = dbfig_render(c, &v, "lr-interaction", "lr-interaction");
  }
done:
  if (titles) dbfig_strings_free(titles, n);
  free(sel), free(z);
  free_runs(&l);
  return st;
}
