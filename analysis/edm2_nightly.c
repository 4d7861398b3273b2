/* edm2-nightly: incremental EMA-length sweeps of every run under a folder, for cron
 * (docs/analysis.md, "edm2-nightly").
 *
 *   edm2-nightly --runs DIR [--config FILE]
 *
 * A run is a direct subfolder of DIR (names starting with '.' excepted) that has snapshots/.
 * For each run, in name order, each configured sweep (default: val-loss over σ_rel
 * 0.025,0.050,…,0.250 at the newest snapshot) runs through edm2_sweep_ema (analysis/sweep.h),
 * which skips the rows the results database holds already: what is due is exactly what is
 * missing, so a second pass the same night does nothing and a pass killed midway is finished by
 * the next one. One process at a time (flock on DIR/.edm2-nightly.lock); JSON lines appended to
 * DIR/edm2-nightly.log; one line per run on stdout; the exit status says what happened:
 *
 *   0  every run is up to date (work done or nothing to do)
 *   1  at least one run failed (the others were still processed), or the log could not be written
 *   2  usage or configuration error: nothing was done
 *   75 another edm2-nightly holds the lock (EX_TEMPFAIL: try again later)
 *
 * A run's failure (no usable snapshots, missing metric weights, a corrupt database) is logged
 * with its message, printed on stderr as one line naming the run, and the next run goes on. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analysis/results_db.h"
#include "analysis/sweep.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/cli.h"
#include "core/fs.h"
#include "core/status.h"
#include "edm2c_config.h"
#include "posthoc/ema_list.h"
#include "posthoc/plan.h"
#include "trainer/dist.h"

#define PROG "edm2-nightly"
#define EXIT_FAILED 1
#define EXIT_CONFIG 2
#define EXIT_LOCKED 75 /* sysexits.h EX_TEMPFAIL */

#define DEFAULT_SIGMA "0.025,0.050,...,0.250"
#define LOCK_NAME ".edm2-nightly.lock"
#define LOG_NAME "edm2-nightly.log"
#define CONFIG_MAX_BYTES (1 << 20)

enum { OPT_RUNS, OPT_CONFIG, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"runs", 1, OPT_RUNS, "DIR", "folder whose subfolders with snapshots/ are the runs to sweep"},
    {"config", 1, OPT_CONFIG, "FILE",
     "JSON configuration: {\"sweeps\": [...], \"db\", \"log\", \"threads\"} (docs/analysis.md); default: "
     "val-loss over sigma_rel " DEFAULT_SIGMA " at each run's newest snapshot, into RUN/results.sqlite"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = PROG,
    .synopsis = "--runs DIR [--config FILE]",
    .description =
        "Brings the EMA-length sweeps of every run under DIR up to date, for cron: sweeps the snapshots whose "
        "rows are missing from the results database (RUN/results.sqlite, or the config's \"db\"), so that a "
        "second pass does nothing and a pass killed midway is completed by the next one. Non-interactive; one "
        "line per run on stdout, failures on stderr, JSON lines appended to DIR/" LOG_NAME " (or the config's "
        "\"log\"). One instance at a time per DIR (flock on DIR/" LOCK_NAME ").\n\n"
        "Exit status:\n"
        " 0 every run is up to date (work done, or nothing to do)\n"
        " 1 at least one run failed (the others were still processed; each failure is logged), or the lock "
        "file or the log could not be written\n"
        " 2 usage or configuration error: nothing was done\n"
        "75 another edm2-nightly holds the lock (try again later)",
    .opts = options,
};

/* ---- configuration ------------------------------------------------------------------------ */

enum { AT_LATEST, AT_ALL, AT_NIMG };

typedef struct {
  char *metric, *sigma_rel, *half_life, *use_profiles, *gnet, *ref, *weights_dir, *val_data;
  int at_mode;
  int64_t at;
  int64_t num, seed, val_first, mem_limit;
  int repeats, steps;
  double *guidance;
  int nguidance;
} nightly_sweep;

typedef struct {
  char *db, *log; /* NULL: per run / DIR/edm2-nightly.log */
  int threads;
  nightly_sweep *sweeps;
  int nsweeps;
} nightly_config;

static void config_free(nightly_config *c) {
  for (int i = 0; i < c->nsweeps; i++) {
    nightly_sweep *s = &c->sweeps[i];
    free(s->metric), free(s->sigma_rel), free(s->half_life), free(s->use_profiles), free(s->gnet), free(s->ref);
    free(s->weights_dir), free(s->val_data), free(s->guidance);
  }
  free(c->sweeps);
  free(c->db), free(c->log);
  memset(c, 0, sizeof *c);
}

static void sweep_defaults(nightly_sweep *s) {
  memset(s, 0, sizeof *s);
  s->at_mode = AT_LATEST;
  s->repeats = 1;
}

static ec_status default_config(nightly_config *c) {
  memset(c, 0, sizeof *c);
  if (!(c->sweeps = ec_calloc(1, sizeof *c->sweeps))) return EC_ENOMEM;
  c->nsweeps = 1;
  sweep_defaults(&c->sweeps[0]);
  c->sweeps[0].metric = ec_strdup("val-loss");
  c->sweeps[0].sigma_rel = ec_strdup(DEFAULT_SIGMA);
  if (!c->sweeps[0].metric || !c->sweeps[0].sigma_rel) return EC_ENOMEM;
  return EC_OK;
}

/* The whole file as a string (at most CONFIG_MAX_BYTES). */
static ec_status read_text(const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: %s", path, strerror(errno));
  char *buf = ec_malloc(CONFIG_MAX_BYTES + 1);
  if (!buf) {
    fclose(f);
    return EC_ENOMEM;
  }
  size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return ec_err(EC_EIO, "%s: read failed", path);
  }
  if (n > CONFIG_MAX_BYTES) {
    free(buf);
    return ec_err(EC_EFORMAT, "%s: larger than %d bytes; not a configuration file", path, CONFIG_MAX_BYTES);
  }
  buf[n] = 0;
  *out = buf;
  return EC_OK;
}

/* Checks that every key of object o (at `where` in file `path`) is one of `known` (NULL-ended)
 * and appears once. */
static ec_status check_keys(const cJSON *o, const char *path, const char *where, const char *const *known) {
  for (const cJSON *it = o->child; it; it = it->next) {
    int ok = 0;
    for (int k = 0; known[k] && !ok; k++) ok = !strcmp(it->string, known[k]);
    if (!ok) {
      char list[512];
      size_t len = 0;
      list[0] = 0;
      for (int k = 0; known[k]; k++)
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0, "%s%s", k ? ", " : "", known[k]);
      return ec_err(EC_EINVAL, "%s: unknown key '%s' in %s (known: %s)", path, it->string, where, list);
    }
    for (const cJSON *jt = it->next; jt; jt = jt->next)
      if (!strcmp(it->string, jt->string))
        return ec_err(EC_EINVAL, "%s: key '%s' appears twice in %s", path, it->string, where);
  }
  return EC_OK;
}

/* `name` relative to the folder of the configuration file (absolute names as they are). */
static char *resolve(const char *cfg_dir, const char *name) {
  if (name[0] == '/' || !cfg_dir) return ec_strdup(name);
  return ec_asprintf("%s/%s", cfg_dir, name);
}

static ec_status get_string(const cJSON *v, const char *path, const char *where, const char *key, char **out) {
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return ec_err(EC_EINVAL, "%s: %s%s'%s' must be a non-empty string", path, where, where[0] ? ": " : "", key);
  if (!(*out = ec_strdup(v->valuestring))) return EC_ENOMEM;
  return EC_OK;
}

static ec_status get_path(const cJSON *v, const char *path, const char *cfg_dir, const char *where, const char *key,
                          char **out) {
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return ec_err(EC_EINVAL, "%s: %s%s'%s' must be a non-empty string (a path)", path, where, where[0] ? ": " : "",
                  key);
  if (!(*out = resolve(cfg_dir, v->valuestring))) return EC_ENOMEM;
  return EC_OK;
}

static ec_status get_int(const cJSON *v, const char *path, const char *where, const char *key, int64_t min,
                         int64_t max, int64_t *out) {
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
      v->valuedouble < (double)min || v->valuedouble > (double)max)
    return ec_err(EC_EINVAL, "%s: %s%s'%s' must be an integer in [%lld, %lld]", path, where, where[0] ? ": " : "", key,
                  (long long)min, (long long)max);
  *out = (int64_t)v->valuedouble;
  return EC_OK;
}

static const char *const top_keys[] = {"db", "sweeps", "log", "threads", NULL};
static const char *const sweep_keys[] = {"kind",      "metric",   "sigma_rel",   "half_life", "use_profiles",
                                         "at",        "num",      "repeats",     "seed",      "guidance",
                                         "gnet",      "ref",      "weights_dir", "val_data",  "val_first",
                                         "steps",     "mem_limit", NULL};

static ec_status parse_sweep(const cJSON *o, const char *path, const char *cfg_dir, int idx, nightly_sweep *s) {
  char where[32];
  snprintf(where, sizeof where, "sweeps[%d]", idx);
  sweep_defaults(s);
  if (!cJSON_IsObject(o)) return ec_err(EC_EINVAL, "%s: %s must be an object", path, where);
  ec_status st = check_keys(o, path, where, sweep_keys);
  if (st) return st;
  const cJSON *v;
  int64_t x = 0;
  /* kind and metric are required. */
  v = cJSON_GetObjectItemCaseSensitive(o, "kind");
  if (!v) return ec_err(EC_EINVAL, "%s: %s: required key 'kind' missing (\"ema\")", path, where);
  if (!cJSON_IsString(v) || strcmp(v->valuestring, "ema"))
    return ec_err(EC_EINVAL, "%s: %s: 'kind' must be \"ema\" (the only kind edm2-nightly runs)", path, where);
  v = cJSON_GetObjectItemCaseSensitive(o, "metric");
  if (!v) return ec_err(EC_EINVAL, "%s: %s: required key 'metric' missing (val-loss, fid or fd_dinov2)", path, where);
  if ((st = get_string(v, path, where, "metric", &s->metric))) return st;
  const int valloss = !strcmp(s->metric, "val-loss");
  if (!valloss && strcmp(s->metric, "fid") && strcmp(s->metric, "fd_dinov2"))
    return ec_err(EC_EINVAL, "%s: %s: 'metric' is '%s'; known metrics are val-loss, fid, fd_dinov2", path, where,
                  s->metric);
  /* EMA lengths: at least one list, checked now so that a typo is a configuration error. */
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "sigma_rel"))) {
    if ((st = get_string(v, path, where, "sigma_rel", &s->sigma_rel))) return st;
    double *vals = NULL;
    int n = 0;
    if ((st = phema_list_parse(s->sigma_rel, &vals, &n))) return ec_err_context(st, "%s: %s: 'sigma_rel'", path, where);
    free(vals);
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "half_life"))) {
    if ((st = get_string(v, path, where, "half_life", &s->half_life))) return st;
    double *vals = NULL;
    int n = 0;
    if ((st = plan_parse_half_lives(s->half_life, &vals, &n)))
      return ec_err_context(st, "%s: %s: 'half_life'", path, where);
    free(vals);
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "use_profiles"))) {
    if ((st = get_string(v, path, where, "use_profiles", &s->use_profiles))) return st;
    double *vals = NULL;
    int n = 0;
    if ((st = phema_list_parse(s->use_profiles, &vals, &n)))
      return ec_err_context(st, "%s: %s: 'use_profiles'", path, where);
    free(vals);
  }
  if (!s->sigma_rel && !s->half_life)
    return ec_err(EC_EINVAL, "%s: %s: required key 'sigma_rel' (or 'half_life') missing", path, where);
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "at"))) {
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "latest")) s->at_mode = AT_LATEST;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "all")) s->at_mode = AT_ALL;
    else {
      s->at_mode = AT_NIMG;
      if (cJSON_IsString(v)) st = ec_parse_nimg(NULL, v->valuestring, &s->at);
      else st = get_int(v, path, where, "at", 1, INT64_MAX / 2, &s->at);
      if (!st && s->at <= 0) st = EC_EINVAL;
      if (st)
        return ec_err(EC_EINVAL,
                      "%s: %s: 'at' must be \"latest\", \"all\" or a snapshot time in images (2048, \"2Ki\")", path,
                      where);
    }
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "num"))) {
    if ((st = get_int(v, path, where, "num", 1, INT32_MAX, &x))) return st;
    s->num = x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "repeats"))) {
    if ((st = get_int(v, path, where, "repeats", 1, 1000000, &x))) return st;
    s->repeats = (int)x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "seed"))) {
    if ((st = get_int(v, path, where, "seed", 0, (int64_t)1 << 53, &x))) return st;
    s->seed = x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "val_first"))) {
    if ((st = get_int(v, path, where, "val_first", 0, (int64_t)1 << 53, &x))) return st;
    s->val_first = x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "steps"))) {
    if ((st = get_int(v, path, where, "steps", 1, 100000, &x))) return st;
    s->steps = (int)x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "mem_limit"))) {
    if (cJSON_IsString(v)) st = ec_parse_size(NULL, v->valuestring, &s->mem_limit);
    else st = get_int(v, path, where, "mem_limit", 1, INT64_MAX / 2, &s->mem_limit);
    if (!st && s->mem_limit <= 0) st = EC_EINVAL;
    if (st) return ec_err(EC_EINVAL, "%s: %s: 'mem_limit' must be a size in bytes (4294967296, \"4G\")", path, where);
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "guidance"))) {
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : cJSON_IsNumber(v) ? 1 : 0;
    if (n < 1)
      return ec_err(EC_EINVAL, "%s: %s: 'guidance' must be a number or a non-empty array of numbers", path, where);
    if (!(s->guidance = ec_mallocarray((size_t)n, sizeof *s->guidance))) return EC_ENOMEM;
    s->nguidance = n;
    for (int i = 0; i < n; i++) {
      const cJSON *g = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : v;
      if (!cJSON_IsNumber(g) || !isfinite(g->valuedouble) || g->valuedouble <= 0)
        return ec_err(EC_EINVAL, "%s: %s: 'guidance' values must be positive numbers", path, where);
      s->guidance[i] = g->valuedouble;
    }
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "gnet")) && (st = get_path(v, path, cfg_dir, where, "gnet", &s->gnet)))
    return st;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "ref")) && (st = get_path(v, path, cfg_dir, where, "ref", &s->ref)))
    return st;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "weights_dir")) &&
      (st = get_path(v, path, cfg_dir, where, "weights_dir", &s->weights_dir)))
    return st;
  if ((v = cJSON_GetObjectItemCaseSensitive(o, "val_data")) &&
      (st = get_path(v, path, cfg_dir, where, "val_data", &s->val_data)))
    return st;
  /* What the metric needs. */
  int guided = 0;
  for (int i = 0; i < s->nguidance; i++) guided |= s->guidance[i] != 1;
  if (valloss && guided)
    return ec_err(EC_EINVAL, "%s: %s: 'guidance' applies to fid and fd_dinov2, not val-loss", path, where);
  if (guided && !s->gnet) return ec_err(EC_EINVAL, "%s: %s: 'guidance' other than 1 needs 'gnet'", path, where);
  if (!valloss && !s->ref)
    return ec_err(EC_EINVAL, "%s: %s: required key 'ref' missing (metric %s needs reference statistics)", path, where,
                  s->metric);
  return EC_OK;
}

static ec_status load_config(nightly_config *c, const char *path) {
  memset(c, 0, sizeof *c);
  char *text = NULL, *cfg_dir = NULL;
  cJSON *root = NULL;
  ec_status st = read_text(path, &text);
  if (st) return st;
  root = cJSON_Parse(text);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    int line = 1;
    for (const char *p = text; at && p < at && *p; p++) line += *p == '\n';
    st = ec_err(EC_EINVAL, "%s:%d: not valid JSON", path, line);
    goto done;
  }
  if (!cJSON_IsObject(root)) {
    st = ec_err(EC_EINVAL, "%s: not a JSON object", path);
    goto done;
  }
  {
    const char *slash = strrchr(path, '/');
    if (slash && !(cfg_dir = ec_asprintf("%.*s", (int)(slash == path ? 1 : slash - path), path))) {
      st = EC_ENOMEM;
      goto done;
    }
  }
  if ((st = check_keys(root, path, "the top level", top_keys))) goto done;
  const cJSON *v;
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "db")) && (st = get_path(v, path, cfg_dir, "", "db", &c->db)))
    goto done;
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "log")) && (st = get_path(v, path, cfg_dir, "", "log", &c->log)))
    goto done;
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "threads"))) {
    int64_t x = 0;
    if ((st = get_int(v, path, "", "threads", 0, 4096, &x))) goto done;
    c->threads = (int)x;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "sweeps"))) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1) {
      st = ec_err(EC_EINVAL, "%s: 'sweeps' must be a non-empty array of sweep objects", path);
      goto done;
    }
    int n = cJSON_GetArraySize(v);
    if (!(c->sweeps = ec_calloc((size_t)n, sizeof *c->sweeps))) {
      st = EC_ENOMEM;
      goto done;
    }
    for (int i = 0; i < n && !st; i++) {
      c->nsweeps = i + 1;
      st = parse_sweep(cJSON_GetArrayItem(v, i), path, cfg_dir, i, &c->sweeps[i]);
    }
  } else {
    nightly_config d;
    if ((st = default_config(&d))) {
      config_free(&d);
      goto done;
    }
    c->sweeps = d.sweeps, c->nsweeps = d.nsweeps;
  }
done:
  cJSON_Delete(root);
  free(text), free(cfg_dir);
  if (st) config_free(c);
  return st;
}

/* ---- the log ---------------------------------------------------------------------------- */

typedef struct {
  int fd;
  const char *path;
  int failed; /* a write failed (reported once) */
} nightly_log;

static void iso_now(char *buf, size_t cap) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Appends o as one line (one write(2), so that concurrent readers never see half a line) and
 * frees it. */
static void log_put(nightly_log *l, cJSON *o, const char *event) {
  char ts[32];
  iso_now(ts, sizeof ts);
  /* "time" and "event" first, for people reading the file. */
  cJSON *line = cJSON_CreateObject();
  if (line) {
    cJSON_AddStringToObject(line, "time", ts);
    cJSON_AddStringToObject(line, "event", event);
    for (cJSON *it = o ? o->child : NULL; it;) {
      cJSON *next = it->next;
      cJSON_AddItemToObject(line, it->string, cJSON_DetachItemViaPointer(o, it));
      it = next;
    }
  }
  cJSON_Delete(o);
  char *s = line ? cJSON_PrintUnformatted(line) : NULL;
  cJSON_Delete(line);
  int ok = 0, err = ENOMEM;
  if (s) {
    size_t n = strlen(s);
    s[n] = '\n'; /* the terminating NUL becomes the newline; write n + 1 bytes */
    ok = write(l->fd, s, n + 1) == (ssize_t)(n + 1);
    err = ok ? 0 : errno ? errno : EIO;
    free(s);
  }
  if (!ok && !l->failed) {
    l->failed = 1;
    fprintf(stderr, PROG ": %s: cannot append to the log: %s\n", l->path, strerror(err));
  }
}

static cJSON *obj(void) { return cJSON_CreateObject(); }

/* ---- one run ---------------------------------------------------------------------------- */

typedef struct {
  int runs, failed_runs;
  int64_t evaluated, skipped, models;
} totals;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *sweep_label(const nightly_sweep *s, char *buf, size_t cap) {
  snprintf(buf, cap, "%s %s%s%s%s", s->metric, s->sigma_rel ? "sigma_rel " : "", s->sigma_rel ? s->sigma_rel : "",
           s->half_life ? (s->sigma_rel ? " half_life " : "half_life ") : "", s->half_life ? s->half_life : "");
  return buf;
}

/* Logs and prints one failure of run `name` (message: ec_errmsg()). */
static void run_failed(nightly_log *l, const char *name, const char *run, const nightly_sweep *s, int64_t nimg,
                       char *first, size_t cap) {
  const char *msg = ec_errmsg();
  fprintf(stderr, PROG ": %s: %s\n", name, msg);
  if (!first[0]) snprintf(first, cap, "%s", msg);
  cJSON *o = obj();
  cJSON_AddStringToObject(o, "run", run);
  if (s) {
    char lab[512];
    cJSON_AddStringToObject(o, "sweep", sweep_label(s, lab, sizeof lab));
    cJSON_AddStringToObject(o, "metric", s->metric);
  }
  if (nimg > 0) cJSON_AddNumberToObject(o, "nimg", (double)nimg);
  else cJSON_AddNullToObject(o, "nimg");
  cJSON_AddStringToObject(o, "status", "failed");
  cJSON_AddStringToObject(o, "message", msg);
  log_put(l, o, s ? "sweep" : "run");
}

/* ---- figures and report -------------------------------------------------------------------- */

/* edm2-plot: $EDM2_PLOT, else next to this program (installed), else ../plots/edm2-plot (the
 * build tree). NULL when none is there. */
static char *find_plot(void) {
  const char *e = getenv("EDM2_PLOT");
  if (e && *e) return ec_strdup(e);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return NULL;
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (!slash) return NULL;
  *slash = 0;
  const char *tries[] = {"/edm2-plot", "/../plots/edm2-plot"};
  for (int i = 0; i < 2; i++) {
    char *p = ec_asprintf("%s%s", self, tries[i]);
    if (p && access(p, X_OK) == 0) return p;
    free(p);
  }
  return NULL;
}

/* Runs `edm2-plot WHAT --run RUN --quiet`; its last stderr line into msg on failure. */
static int run_plot(const char *plot, const char *what, const char *run, char *msg, size_t cap) {
  char errpath[] = "/tmp/edm2-nightly-plot-XXXXXX";
  int fd = mkstemp(errpath);
  if (fd < 0) return snprintf(msg, cap, "%s", strerror(errno)), -1;
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1);
    dup2(fd, 2);
    execl(plot, plot, what, "--run", run, "--quiet", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) status = -1;
  msg[0] = 0;
  FILE *f = fdopen(fd, "r");
  if (f) {
    rewind(f);
    char line[1024];
    while (fgets(line, sizeof line, f)) snprintf(msg, cap, "%s", line);
    fclose(f);
  } else {
    close(fd);
  }
  unlink(errpath);
  msg[strcspn(msg, "\n")] = 0;
  return status == 0 ? 0 : 1;
}

/* After a run's sweeps: its figures and report, when something changed or the report is missing.
 * A failure is logged (status "failed") but does not fail the run: the rows are what matter. */
static void refresh_figures(nightly_log *l, const char *name, const char *run, int changed) {
  char *index = ec_asprintf("%s/report/index.html", run);
  int missing = index && access(index, F_OK) != 0;
  free(index);
  if (!changed && !missing) return;
  cJSON *o = obj();
  cJSON_AddStringToObject(o, "run", name);
  char *plot = find_plot();
  char msg[1024] = "";
  if (!plot) {
    cJSON_AddStringToObject(o, "status", "failed");
    cJSON_AddStringToObject(o, "message", "edm2-plot not found (set EDM2_PLOT)");
  } else {
    run_plot(plot, "all", run, msg, sizeof msg); /* figures without data are skipped: not a failure here */
    int rc = run_plot(plot, "report", run, msg, sizeof msg);
    cJSON_AddStringToObject(o, "status", rc ? "failed" : "done");
    cJSON_AddStringToObject(o, "message", rc ? msg : "");
  }
  free(plot);
  log_put(l, o, "figures");
}

static void process_run(const nightly_config *c, const char *dir, const char *name, edm2_db *shared_db,
                        nightly_log *l, totals *tot) {
  const double t0 = now_s();
  char *run = ec_asprintf("%s/%s", dir, name);
  char first[1024] = "";
  int failures = 0, pending = 0;
  int64_t evaluated = 0, skipped = 0, models = 0;
  int64_t *times = NULL, swept[64];
  int ntimes = 0, nswept = 0;
  edm2_db *own_db = NULL, *db = shared_db;
  ec_status st;
  tot->runs++;
  if (!run) {
    run_failed(l, name, name, NULL, 0, first, sizeof first);
    failures++;
    goto done;
  }
  if ((st = edm2_sweep_times(run, &times, &ntimes))) {
    run_failed(l, name, run, NULL, 0, first, sizeof first);
    failures++;
    goto done;
  }
  if (!db) {
    char *path = ec_asprintf("%s/results.sqlite", run);
    st = path ? edm2_db_open(&own_db, path) : EC_ENOMEM;
    free(path);
    if (st) {
      run_failed(l, name, run, NULL, 0, first, sizeof first);
      failures++;
      goto done;
    }
    db = own_db;
  }
  const edm2_dist dist = EDM2_DIST_SINGLE;
  for (int k = 0; k < c->nsweeps; k++) {
    const nightly_sweep *s = &c->sweeps[k];
    int64_t lo = 0, hi = 0; /* indices into times */
    if (s->at_mode == AT_LATEST) lo = ntimes - 1, hi = ntimes;
    else if (s->at_mode == AT_ALL) lo = 0, hi = ntimes;
    else {
      lo = hi = 0;
      for (int i = 0; i < ntimes; i++)
        if (times[i] == s->at) lo = i, hi = i + 1;
      if (hi == 0) { /* not there yet: due on a later night */
        char lab[512], when[32];
        pending++;
        cJSON *o = obj();
        cJSON_AddStringToObject(o, "run", run);
        cJSON_AddStringToObject(o, "sweep", sweep_label(s, lab, sizeof lab));
        cJSON_AddStringToObject(o, "metric", s->metric);
        cJSON_AddNumberToObject(o, "nimg", (double)s->at);
        cJSON_AddStringToObject(o, "status", "pending");
        char *msg = ec_asprintf("no snapshot at %s yet", ec_format_nimg(when, sizeof when, s->at));
        cJSON_AddStringToObject(o, "message", msg ? msg : "no snapshot at that time yet");
        free(msg);
        log_put(l, o, "sweep");
        continue;
      }
    }
    for (int64_t i = lo; i < hi; i++) {
      edm2_sweep_opts o;
      edm2_sweep_opts_default(&o);
      o.run = run;
      o.metric = s->metric;
      o.sigma_rel = s->sigma_rel;
      o.half_life = s->half_life;
      o.use_profiles = s->use_profiles;
      o.num = s->num;
      o.repeats = s->repeats;
      o.seed = s->seed;
      if (s->nguidance) o.guidance = s->guidance, o.nguidance = s->nguidance;
      o.gnet = s->gnet;
      o.ref = s->ref;
      o.weights_dir = s->weights_dir;
      o.val_data = s->val_data;
      o.val_first = s->val_first;
      if (s->steps) o.steps = s->steps;
      o.mem_limit = s->mem_limit;
      o.threads = c->threads;
      o.quiet = 1;
      o.log = NULL; /* its lines are text; ours are JSON */
      edm2_sweep_report rep = {0};
      const double t1 = now_s();
      ec_err_clear();
      st = edm2_sweep_ema(&o, times[i], db, &dist, &rep);
      const double secs = now_s() - t1;
      evaluated += rep.evaluated, skipped += rep.skipped, models += rep.models;
      if (rep.evaluated || rep.models) {
        int seen = 0;
        for (int j = 0; j < nswept; j++) seen |= swept[j] == times[i];
        if (!seen && nswept < (int)(sizeof swept / sizeof *swept)) swept[nswept++] = times[i];
      }
      char lab[512];
      cJSON *e = obj();
      cJSON_AddStringToObject(e, "run", run);
      cJSON_AddStringToObject(e, "sweep", sweep_label(s, lab, sizeof lab));
      cJSON_AddStringToObject(e, "metric", s->metric);
      cJSON_AddNumberToObject(e, "nimg", (double)times[i]);
      cJSON_AddNumberToObject(e, "evaluated", rep.evaluated);
      cJSON_AddNumberToObject(e, "skipped", rep.skipped);
      cJSON_AddNumberToObject(e, "models", rep.models);
      cJSON_AddNumberToObject(e, "seconds", round(secs * 1000) / 1000);
      if (st) {
        const char *msg = ec_errmsg();
        fprintf(stderr, PROG ": %s: %s\n", name, msg);
        if (!first[0]) snprintf(first, sizeof first, "%s", msg);
        failures++;
        cJSON_AddStringToObject(e, "status", "failed");
        cJSON_AddStringToObject(e, "message", msg);
        log_put(l, e, "sweep");
        break; /* this sweep's later times would fail the same way; the next sweep goes on */
      }
      cJSON_AddStringToObject(e, "status", rep.evaluated || rep.models ? "done" : "nothing to do");
      cJSON_AddStringToObject(e, "message", "");
      log_put(l, e, "sweep");
    }
  }
done:
  if (own_db) edm2_db_close(&own_db);
  if (run && times) refresh_figures(l, name, run, evaluated > 0 || models > 0);
  tot->evaluated += evaluated, tot->skipped += skipped, tot->models += models;
  char dur[32];
  ec_format_duration(dur, sizeof dur, now_s() - t0);
  if (failures) {
    tot->failed_runs++;
    printf("%s: FAILED (%d failure%s): %s\n", name, failures, failures == 1 ? "" : "s", first);
  } else if (!evaluated && !models) {
    printf("%s: nothing to do (%lld rows up to date%s)\n", name, (long long)skipped,
           pending ? ", a configured snapshot time not reached yet" : "");
  } else {
    char at[512] = "";
    size_t len = 0;
    for (int j = 0; j < nswept; j++) {
      char b[32];
      len += (size_t)snprintf(at + len, len < sizeof at ? sizeof at - len : 0, "%s%s", j ? ", " : "",
                              ec_format_nimg(b, sizeof b, swept[j]));
    }
    printf("%s: %lld evaluated, %lld models, %lld rows already there; at %s (%s)\n", name, (long long)evaluated,
           (long long)models, (long long)skipped, at, dur);
  }
  fflush(stdout);
  free(times);
  free(run);
}

/* ---- main ----------------------------------------------------------------------------------- */

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The runs: direct subfolders of dir (not starting with '.') that have snapshots/, sorted. */
static ec_status list_runs(const char *dir, char ***names, int *n) {
  *names = NULL, *n = 0;
  DIR *dp = opendir(dir);
  if (!dp) return ec_err(EC_EIO, "%s: %s", dir, strerror(errno));
  int cap = 0;
  ec_status st = EC_OK;
  struct dirent *e;
  while (!st && (e = readdir(dp))) {
    if (e->d_name[0] == '.') continue;
    char *snaps = ec_asprintf("%s/%s/snapshots", dir, e->d_name);
    if (!snaps) {
      st = EC_ENOMEM;
      break;
    }
    int is_run = ec_is_dir(snaps);
    free(snaps);
    if (!is_run) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      char **p = ec_realloc(*names, (size_t)cap, sizeof *p);
      if (!p) {
        st = EC_ENOMEM;
        break;
      }
      *names = p;
    }
    if (!((*names)[*n] = ec_strdup(e->d_name))) st = EC_ENOMEM;
    else (*n)++;
  }
  closedir(dp);
  if (!st && *n) qsort(*names, (size_t)*n, sizeof **names, by_name);
  return st;
}

int main(int argc, char **argv) {
  const char *runs_dir = NULL, *config_path = NULL, *arg;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_RUNS: runs_dir = arg; break;
    case OPT_CONFIG: config_path = arg; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf(PROG " %s\n", EDM2C_VERSION); return 0;
    default: return EXIT_CONFIG;
    }
  }
  if (ec_cli_optind(&cli) != argc) {
    ec_cli_usage(&cli, "unexpected argument '%s'", argv[ec_cli_optind(&cli)]);
    return EXIT_CONFIG;
  }
  if (!runs_dir) {
    ec_cli_usage(&cli, "--runs DIR is required");
    return EXIT_CONFIG;
  }
  ec_atomic_install_signal_cleanup();
  if (!ec_is_dir(runs_dir)) {
    fprintf(stderr, PROG ": --runs %s: %s\n", runs_dir, access(runs_dir, F_OK) ? strerror(errno) : "not a directory");
    return EXIT_CONFIG;
  }

  nightly_config cfg;
  ec_status st = config_path ? load_config(&cfg, config_path) : default_config(&cfg);
  if (st) {
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    config_free(&cfg);
    return EXIT_CONFIG;
  }

  /* The lock, held until exit (the kernel releases it when the process dies, however it dies). */
  char *lock_path = ec_asprintf("%s/" LOCK_NAME, runs_dir);
  int lock_fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
  if (lock_fd < 0) {
    fprintf(stderr, PROG ": %s: cannot create the lock file: %s\n", lock_path ? lock_path : runs_dir,
            lock_path ? strerror(errno) : "out of memory");
    free(lock_path);
    config_free(&cfg);
    return EXIT_FAILED;
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int busy = errno == EWOULDBLOCK;
    char holder[32] = "";
    if (busy) { /* the holder's pid, when an edm2-nightly that is still alive wrote it */
      ssize_t k = pread(lock_fd, holder, sizeof holder - 1, 0);
      holder[k > 0 ? k : 0] = 0;
      holder[strcspn(holder, "\n")] = 0;
      char *end;
      long pid = strtol(holder, &end, 10);
      if (!holder[0] || *end || pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) holder[0] = 0;
    }
    if (busy)
      fprintf(stderr, PROG ": %s: locked by another edm2-nightly%s%s%s; try again later\n", lock_path,
              holder[0] ? " (pid " : "", holder, holder[0] ? ")" : "");
    else fprintf(stderr, PROG ": %s: flock: %s\n", lock_path, strerror(errno));
    close(lock_fd);
    free(lock_path);
    config_free(&cfg);
    return busy ? EXIT_LOCKED : EXIT_FAILED;
  }
  {
    char pid[32];
    int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, pid, (size_t)k, 0) != k) { /* informative only */
    }
  }

  int rc = 0;
  char *log_path = cfg.log ? ec_strdup(cfg.log) : ec_asprintf("%s/" LOG_NAME, runs_dir);
  nightly_log lg = {.fd = log_path ? open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1,
                    .path = log_path};
  if (lg.fd < 0) {
    fprintf(stderr, PROG ": %s: cannot open the log: %s\n", log_path ? log_path : runs_dir,
            log_path ? strerror(errno) : "out of memory");
    rc = EXIT_FAILED;
    goto out;
  }

  const double t0 = now_s();
  {
    cJSON *o = obj();
    cJSON_AddStringToObject(o, "runs", runs_dir);
    if (config_path) cJSON_AddStringToObject(o, "config", config_path);
    else cJSON_AddNullToObject(o, "config");
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddStringToObject(o, "version", EDM2C_VERSION);
    log_put(&lg, o, "start");
  }

  char **names = NULL;
  int nruns = 0;
  totals tot = {0};
  edm2_db *shared = NULL;
  if ((st = list_runs(runs_dir, &names, &nruns))) {
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    cJSON *o = obj();
    cJSON_AddStringToObject(o, "status", "failed");
    cJSON_AddStringToObject(o, "message", ec_errmsg());
    log_put(&lg, o, "runs");
    rc = EXIT_FAILED;
  } else if (nruns == 0) {
    printf("no runs under %s (a run is a folder with snapshots/)\n", runs_dir);
  } else if (cfg.db && (st = edm2_db_open(&shared, cfg.db))) {
    /* One database for all runs: none can be swept. */
    fprintf(stderr, PROG ": %s\n", ec_errmsg());
    cJSON *o = obj();
    cJSON_AddStringToObject(o, "db", cfg.db);
    cJSON_AddStringToObject(o, "status", "failed");
    cJSON_AddStringToObject(o, "message", ec_errmsg());
    log_put(&lg, o, "db");
    tot.failed_runs = tot.runs = nruns;
    rc = EXIT_FAILED;
  } else {
    for (int i = 0; i < nruns; i++) process_run(&cfg, runs_dir, names[i], shared, &lg, &tot);
    if (tot.failed_runs) rc = EXIT_FAILED;
  }
  edm2_db_close(&shared);
  for (int i = 0; i < nruns; i++) free(names[i]);
  free(names);

  if (lg.failed) rc = EXIT_FAILED;
  {
    cJSON *o = obj();
    cJSON_AddNumberToObject(o, "runs", tot.runs);
    cJSON_AddNumberToObject(o, "failed", tot.failed_runs);
    cJSON_AddNumberToObject(o, "evaluated", (double)tot.evaluated);
    cJSON_AddNumberToObject(o, "skipped", (double)tot.skipped);
    cJSON_AddNumberToObject(o, "models", (double)tot.models);
    cJSON_AddNumberToObject(o, "seconds", round((now_s() - t0) * 1000) / 1000);
    cJSON_AddNumberToObject(o, "exit", rc);
    log_put(&lg, o, "end");
  }
  if (lg.failed) rc = EXIT_FAILED;
  close(lg.fd);
out:
  free(log_path);
  /* Releases the lock. The file stays (removing it would race with an instance opening it); its
   * pid goes, so that a later holder is not mistaken for this process. */
  if (ftruncate(lock_fd, 0) != 0) { /* informative only */
  }
  close(lock_fd);
  free(lock_path);
  config_free(&cfg);
  return rc;
}
