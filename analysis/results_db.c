/* The results database on SQLite; see results_db.h and docs/formats.md ("Results database"). */
#include "analysis/results_db.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "analysis/best_sigma.h"
#include "core/alloc.h"
#include "core/cli.h"
#include "core/fs.h"
#include "edm2c_config.h"

/* How long a writer waits for another one's transaction before giving up. Transactions are one
 * row long, so only a stuck process (or a long caller batch) holds the lock this long. */
enum { BUSY_TIMEOUT_MS = 60000 };

struct edm2_db {
  sqlite3 *h;
  char *path;
  int in_batch;
  sqlite3_stmt *exists, *insert, *upsert, *rule_get, *rule_put, *rows;
};

/* ---- errors ---------------------------------------------------------------------------------- */

/* One message for a failed SQLite call, naming the file and what was being done. */
static ec_status sql_fail(sqlite3 *h, const char *path, int rc, const char *what) {
  const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
  case SQLITE_NOMEM: return ec_err(EC_ENOMEM, "%s: out of memory while %s", path, what);
  case SQLITE_FULL: return ec_err(EC_ENOSPC, "%s: disk full while %s (%s)", path, what, msg);
  case SQLITE_NOTADB:
    return ec_err(EC_EFORMAT, "%s: not an SQLite database, or a corrupt one (%s) while %s", path,
                  msg, what);
  case SQLITE_CORRUPT:
    return ec_err(EC_EFORMAT, "%s: the results database is corrupt (%s) while %s", path, msg, what);
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return ec_err(EC_EIO, "%s: another process held the database locked for more than %d s while %s",
                  path, BUSY_TIMEOUT_MS / 1000, what);
  default: return ec_err(EC_EIO, "%s: %s while %s", path, msg, what);
  }
}

static ec_status exec_sql(sqlite3 *h, const char *path, const char *sql, const char *what) {
  int rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? EC_OK : sql_fail(h, path, rc, what);
}

/* The integer that a one-row query returns. */
static int query_int(sqlite3 *h, const char *sql, int64_t *out) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(h, sql, -1, &s, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(s, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(s);
  return rc;
}

/* ---- schema and migrations ------------------------------------------------------------------- */

/* Version 1: the two tables. "Not set" is stored as NOT NULL sentinels (0, '', guidance 1)
 * because SQLite's UNIQUE treats NULLs as distinct, which would let reruns add duplicates. The
 * UNIQUE constraint lists the key in the order rows are read back, so its index serves both
 * the existence checks and the ORDER BY. */
static ec_status migrate_to_1(sqlite3 *h, const char *path) {
  return exec_sql(h, path,
                  "CREATE TABLE tensor_rules (\n"
                  "  hash TEXT PRIMARY KEY NOT NULL CHECK (hash <> ''),\n"
                  "  rules TEXT NOT NULL\n"
                  ");\n"
                  "CREATE TABLE results (\n"
                  "  id INTEGER PRIMARY KEY,\n"
                  "  run TEXT NOT NULL CHECK (run <> ''),\n"
                  "  nimg INTEGER NOT NULL CHECK (nimg >= 0),\n"
                  "  sigma_rel REAL NOT NULL DEFAULT 0 CHECK (sigma_rel >= 0),\n"
                  "  half_life REAL NOT NULL DEFAULT 0 CHECK (half_life >= 0),\n"
                  "  tensor_rule TEXT NOT NULL DEFAULT '',\n"
                  "  guidance REAL NOT NULL DEFAULT 1 CHECK (guidance > 0),\n"
                  "  gnet TEXT NOT NULL DEFAULT '',\n"
                  "  metric TEXT NOT NULL CHECK (metric <> ''),\n"
                  "  value REAL NOT NULL,\n"
                  "  num INTEGER NOT NULL CHECK (num >= 0),\n"
                  "  seed INTEGER NOT NULL,\n"
                  "  repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat >= 0),\n"
                  "  wall_s REAL NOT NULL DEFAULT 0,\n"
                  "  code_version TEXT NOT NULL DEFAULT '',\n"
                  "  created TEXT NOT NULL,\n"
                  "  UNIQUE (run, metric, guidance, gnet, nimg, tensor_rule, sigma_rel, half_life,\n"
                  "          repeat, num, seed)\n"
                  ");\n",
                  "creating the schema (version 1)");
}

/* Version 2: a view with the sentinels as NULLs and the rule text joined in, for people who
 * query the file with sqlite3 or pandas. */
static ec_status migrate_to_2(sqlite3 *h, const char *path) {
  return exec_sql(h, path,
                  "CREATE VIEW results_view AS\n"
                  "SELECT r.id, r.run, r.nimg, NULLIF(r.sigma_rel, 0) AS sigma_rel,\n"
                  "  NULLIF(r.half_life, 0) AS half_life, NULLIF(r.tensor_rule, '') AS tensor_rule,\n"
                  "  t.rules AS tensor_rule_text, r.guidance, NULLIF(r.gnet, '') AS gnet, r.metric,\n"
                  "  r.value, r.num, r.seed, r.repeat, r.wall_s, r.code_version, r.created\n"
                  "FROM results r LEFT JOIN tensor_rules t ON t.hash = r.tensor_rule;\n",
                  "migrating the schema to version 2");
}

/* migrations[v] turns schema version v into v + 1. A new version is one more function here and
 * EDM2_DB_SCHEMA_VERSION + 1; a new file runs them all in one transaction. */
typedef ec_status (*migration_fn)(sqlite3 *h, const char *path);
static const migration_fn migrations[] = {migrate_to_1, migrate_to_2};
_Static_assert(sizeof migrations / sizeof migrations[0] == EDM2_DB_SCHEMA_VERSION,
               "one migration per schema version");

/* Reads the header fields that say whose file this is. *fresh = 1 for an empty database (a new
 * or zero-length file); else *version is its schema version. Refuses anything else, naming the
 * file. Reads only. */
static ec_status inspect(sqlite3 *h, const char *path, int *fresh, int *version) {
  int64_t app = 0, ver = 0, nobj = 0;
  int rc;
  if ((rc = query_int(h, "PRAGMA application_id", &app)) ||
      (rc = query_int(h, "PRAGMA user_version", &ver)) ||
      (rc = query_int(h, "SELECT count(*) FROM sqlite_master", &nobj)))
    return sql_fail(h, path, rc, "reading its header");
  *fresh = app == 0 && ver == 0 && nobj == 0;
  *version = (int)ver;
  if (*fresh) return EC_OK;
  if (app != EDM2_DB_APPLICATION_ID)
    return ec_err(EC_EFORMAT,
                  "%s: an SQLite database, but not an edm2c results database (application_id "
                  "0x%08" PRIx64 ", not 0x%08x); left unchanged",
                  path, (uint64_t)app & 0xffffffffu, EDM2_DB_APPLICATION_ID);
  if (ver > EDM2_DB_SCHEMA_VERSION)
    return ec_err(EC_EFORMAT,
                  "%s: results database schema version %" PRId64 " is newer than this edm2c %s "
                  "knows (%d); use a newer edm2c (the file was left unchanged)",
                  path, ver, EDM2C_VERSION, EDM2_DB_SCHEMA_VERSION);
  if (ver < 1)
    return ec_err(EC_EFORMAT, "%s: edm2c results database without a schema version; left unchanged",
                  path);
  return EC_OK;
}

/* PRAGMA quick_check: page structure, b-trees, record formats, NOT NULL and CHECK constraints.
 * Linear in the file size, milliseconds for a results database. */
static ec_status quick_check(sqlite3 *h, const char *path) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(h, "PRAGMA quick_check(1)", -1, &s, NULL);
  if (rc != SQLITE_OK) return sql_fail(h, path, rc, "checking it");
  rc = sqlite3_step(s);
  ec_status st = EC_OK;
  if (rc == SQLITE_ROW) {
    const char *res = (const char *)sqlite3_column_text(s, 0);
    if (!res || strcmp(res, "ok")) {
      /* One line: SQLite's report reads "*** in database main ***\nPage 21: ...". */
      char why[256];
      const char *skip = "*** in database main ***";
      if (res && !strncmp(res, skip, strlen(skip))) res += strlen(skip);
      snprintf(why, sizeof why, "%s", res ? res + strspn(res, " \n") : "?");
      for (char *c = why; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
      st = ec_err(EC_EFORMAT, "%s: the results database is corrupt (%s); left unchanged: restore it "
                  "from a backup or move it away", path, why);
    }
  } else {
    st = sql_fail(h, path, rc, "checking it");
  }
  sqlite3_finalize(s);
  return st;
}

/* Switching to WAL takes an exclusive lock that some SQLite versions do not wait for, so two
 * processes creating the same file at once may see SQLITE_BUSY here: retry until the timeout. */
static ec_status set_wal(sqlite3 *h, const char *path) {
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(h, "PRAGMA journal_mode=WAL", -1, &s, NULL);
  if (rc != SQLITE_OK) return sql_fail(h, path, rc, "switching to WAL");
  struct timespec t0, now, pause = {0, 10 * 1000 * 1000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    rc = sqlite3_step(s);
    if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - t0.tv_sec) * 1000 > BUSY_TIMEOUT_MS) break;
    sqlite3_reset(s);
    nanosleep(&pause, NULL);
  }
  ec_status st = EC_OK;
  if (rc == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    if (!mode || strcmp(mode, "wal"))
      st = ec_err(EC_EIO, "%s: could not switch the database to WAL journaling (journal mode %s)",
                  path, mode ? mode : "?");
  } else {
    st = sql_fail(h, path, rc, "switching to WAL");
  }
  sqlite3_finalize(s);
  return st;
}

/* Brings the schema to EDM2_DB_SCHEMA_VERSION in one write transaction. The version is read
 * again under the write lock, since another process may have created or migrated the file
 * since it was inspected. */
static ec_status migrate(sqlite3 *h, const char *path) {
  ec_status st;
  if ((st = exec_sql(h, path, "BEGIN IMMEDIATE", "starting the schema transaction"))) return st;
  int fresh, version;
  if ((st = inspect(h, path, &fresh, &version))) goto fail;
  if (fresh) version = 0;
  if (version == EDM2_DB_SCHEMA_VERSION) return exec_sql(h, path, "COMMIT", "reading the schema");
  for (int v = version; v < EDM2_DB_SCHEMA_VERSION; v++)
    if ((st = migrations[v](h, path))) goto fail;
  char sql[128];
  snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d",
           EDM2_DB_APPLICATION_ID, EDM2_DB_SCHEMA_VERSION);
  if ((st = exec_sql(h, path, sql, "setting the schema version"))) goto fail;
  if ((st = exec_sql(h, path, "COMMIT", "committing the schema"))) goto fail;
  return EC_OK;
fail:
  sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
  return st;
}

/* ---- open and close -------------------------------------------------------------------------- */

static ec_status prepare(edm2_db *db, sqlite3_stmt **s, const char *sql) {
  int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
  return rc == SQLITE_OK ? EC_OK : sql_fail(db->h, db->path, rc, "preparing a statement");
}

/* The key columns are ?1..?11 in every statement that binds a key (bind_key). */
#define KEY_WHERE                                                                                  \
  "run = ?1 AND metric = ?2 AND guidance = ?3 AND gnet = ?4 AND nimg = ?5 AND tensor_rule = ?6 "   \
  "AND sigma_rel = ?7 AND half_life = ?8 AND repeat = ?9 AND num = ?10 AND seed = ?11"
#define INSERT_SQL                                                                                 \
  "INSERT INTO results (run, metric, guidance, gnet, nimg, tensor_rule, sigma_rel, half_life, "    \
  "repeat, num, seed, value, wall_s, code_version, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "  \
  "?8, ?9, ?10, ?11, ?12, ?13, ?14, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))"
#define ORDER_BY                                                                                   \
  "r.run, r.metric, r.guidance, r.gnet, r.nimg, r.tensor_rule, r.sigma_rel, r.half_life, "         \
  "r.repeat, r.num, r.seed"

static ec_status prepare_all(edm2_db *db) {
  ec_status st;
  if ((st = prepare(db, &db->exists, "SELECT 1 FROM results WHERE " KEY_WHERE)) ||
      (st = prepare(db, &db->insert, INSERT_SQL)) ||
      (st = prepare(db, &db->upsert,
                    INSERT_SQL " ON CONFLICT (run, metric, guidance, gnet, nimg, tensor_rule, "
                               "sigma_rel, half_life, repeat, num, seed) DO UPDATE SET "
                               "value = excluded.value, wall_s = excluded.wall_s, "
                               "code_version = excluded.code_version, created = excluded.created")) ||
      (st = prepare(db, &db->rule_get, "SELECT rules FROM tensor_rules WHERE hash = ?1")) ||
      (st = prepare(db, &db->rule_put, "INSERT INTO tensor_rules (hash, rules) VALUES (?1, ?2)")) ||
      (st = prepare(db, &db->rows,
                    "SELECT r.run, r.nimg, r.sigma_rel, r.half_life, r.tensor_rule, "
                    "coalesce(t.rules, ''), r.guidance, r.gnet, r.metric, r.value, r.num, r.seed, "
                    "r.repeat, r.wall_s, r.code_version, r.created FROM results r "
                    "LEFT JOIN tensor_rules t ON t.hash = r.tensor_rule "
                    "WHERE ?1 IS NULL OR r.run = ?1 ORDER BY " ORDER_BY)))
    return st;
  return EC_OK;
}

/* Checks the path before SQLite sees it, for messages that say what is wrong. */
static ec_status check_path(const char *path) {
  struct stat sb;
  if (!path || !*path) return ec_err(EC_EINVAL, "results database: empty file name");
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return ec_err(EC_EINVAL, "%s: is a directory, not a results database", path);
    return EC_OK;
  }
  if (errno != ENOENT) return ec_err(EC_EIO, "%s: %s", path, strerror(errno));
  char *copy = ec_strdup(path);
  if (!copy) return EC_ENOMEM;
  const char *dir = dirname(copy);
  ec_status st = ec_is_dir(dir) ? EC_OK
                                : ec_err(EC_ENOENT, "%s: cannot create the results database: "
                                         "directory %s does not exist", path, dir);
  free(copy);
  return st;
}

/* "file:PATH?immutable=1", PATH percent-encoded where a URI needs it. */
static char *immutable_uri(const char *path) {
  char *u = ec_malloc(3 * strlen(path) + 32);
  if (!u) return NULL;
  char *o = u + sprintf(u, "file:");
  for (const char *c = path; *c; c++)
    o += (*c == '%' || *c == '?' || *c == '#') ? sprintf(o, "%%%02X", (unsigned char)*c) : sprintf(o, "%c", *c);
  strcpy(o, "?immutable=1");
  return u;
}

/* Opens for reading only. A database in WAL mode (all of ours) needs a -shm file; in a directory
 * the user may not write SQLite cannot create one and refuses to read ("attempt to write a
 * readonly database"). With no -wal file beside it (edm2c's writers checkpoint and remove it at
 * close) everything is in the main file, which is then opened as immutable: read as it is. A
 * -wal left by a writer that is running or died is not skipped that way: SQLite reads it where
 * it can, else the error stands. */
static int open_readonly(const char *path, sqlite3 **h) {
  int rc = sqlite3_open_v2(path, h, SQLITE_OPEN_READONLY, NULL);
  int64_t probe;
  if (rc != SQLITE_OK || query_int(*h, "SELECT count(*) FROM sqlite_master", &probe) == SQLITE_OK) return rc;
  char wal[4200];
  struct stat sb;
  snprintf(wal, sizeof wal, "%s-wal", path);
  if (stat(wal, &sb) == 0 && sb.st_size > 0) return rc; /* the error is reported on the probe again */
  char *uri = immutable_uri(path);
  if (!uri) return SQLITE_NOMEM;
  sqlite3 *im = NULL;
  int rc2 = sqlite3_open_v2(uri, &im, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
  free(uri);
  if (rc2 != SQLITE_OK) {
    sqlite3_close_v2(im);
    return rc;
  }
  sqlite3_close_v2(*h);
  *h = im;
  return SQLITE_OK;
}

static ec_status db_open(edm2_db **out, const char *path, int readonly) {
  *out = NULL;
  ec_status st;
  if ((st = check_path(path))) return st;
  struct stat sb;
  if (readonly && stat(path, &sb) != 0)
    return ec_err(EC_ENOENT, "%s does not exist (edm2-sweep writes it)", path);
  edm2_db *db = ec_calloc(1, sizeof *db);
  if (!db) return EC_ENOMEM;
  if (!(db->path = ec_strdup(path))) {
    free(db);
    return EC_ENOMEM;
  }
  int rc = readonly ? open_readonly(path, &db->h)
                    : sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    st = sql_fail(db->h, path, rc, "opening it");
    goto fail;
  }
  sqlite3_extended_result_codes(db->h, 1);
  sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);

  /* Everything up to the end of the checks only reads (query_only makes sure), so that a file
   * we refuse is left exactly as it was: the user may still recover it. */
  /* One read transaction, so that the header fields and the tables are seen at one moment even
   * while another process creates or migrates the file. */
  int fresh, version;
  if ((st = exec_sql(db->h, path, "PRAGMA query_only = 1", "opening it")) ||
      (st = exec_sql(db->h, path, "BEGIN", "opening it")) ||
      (st = inspect(db->h, path, &fresh, &version)) ||
      (!fresh && (st = quick_check(db->h, path))) ||
      (st = exec_sql(db->h, path, "COMMIT", "opening it"))) {
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    if (!strstr(ec_errmsg(), "left unchanged")) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", ec_errmsg());
      ec_err(st, "%s; the file was left unchanged", msg);
    }
    goto fail;
  }
  if (readonly) { /* no schema work: the file must be readable as it is */
    if (fresh)
      st = ec_err(EC_EFORMAT, "%s: an empty database, not an edm2c results database yet (edm2-sweep writes it)", path);
    else if (version < EDM2_DB_SCHEMA_VERSION)
      st = ec_err(EC_EFORMAT,
                  "%s: results database schema version %d is older than this edm2c's (%d); open it "
                  "once with edm2-sweep or edm2-nightly, which upgrade it (this reader leaves it unchanged)",
                  path, version, EDM2_DB_SCHEMA_VERSION);
    if (st || (st = prepare_all(db))) goto fail;
    *out = db;
    return EC_OK;
  }
  if ((st = exec_sql(db->h, path, "PRAGMA query_only = 0", "opening it"))) goto fail;
  /* SQLite silently opens a write-protected file read-only; say so now rather than at the first
   * row of a sweep. */
  if (sqlite3_db_readonly(db->h, "main") == 1) {
    st = ec_err(EC_EIO, "%s: the results database is read-only (file or directory permissions)", path);
    goto fail;
  }

  /* synchronous = NORMAL: in WAL mode a commit survives a crash of the process, and at worst the
   * last commits are lost on power failure (the file stays consistent); rows can be recomputed,
   * a sync per row would slow a sweep down. */
  if ((st = set_wal(db->h, path)) ||
      (st = exec_sql(db->h, path, "PRAGMA synchronous = NORMAL", "opening it")) ||
      (st = migrate(db->h, path)) || (st = prepare_all(db)))
    goto fail;
  *out = db;
  return EC_OK;
fail:
  edm2_db_close(&db);
  return st;
}

ec_status edm2_db_open(edm2_db **out, const char *path) { return db_open(out, path, 0); }

ec_status edm2_db_open_readonly(edm2_db **out, const char *path) { return db_open(out, path, 1); }

void edm2_db_close(edm2_db **pdb) {
  edm2_db *db = pdb ? *pdb : NULL;
  if (!db) return;
  if (db->in_batch) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_finalize(db->exists);
  sqlite3_finalize(db->insert);
  sqlite3_finalize(db->upsert);
  sqlite3_finalize(db->rule_get);
  sqlite3_finalize(db->rule_put);
  sqlite3_finalize(db->rows);
  sqlite3_close_v2(db->h);
  free(db->path);
  free(db);
  *pdb = NULL;
}

const char *edm2_db_path(const edm2_db *db) { return db->path; }

/* ---- rows in --------------------------------------------------------------------------------- */

static const char *nz(const char *s) { return s ? s : ""; }

/* One message per bad field, naming the run and the field. */
static ec_status validate(const edm2_db *db, const edm2_result *r, int with_value) {
  const char *p = db->path, *run = nz(r->run);
  if (!*run) return ec_err(EC_EINVAL, "%s: result without a run", p);
  if (r->nimg < 0)
    return ec_err(EC_EINVAL, "%s: run %s: nimg %" PRId64 " must not be negative", p, run, r->nimg);
  if (!isfinite(r->sigma_rel) || r->sigma_rel < 0)
    return ec_err(EC_EINVAL, "%s: run %s: sigma_rel %g must be > 0 (0 = not set)", p, run, r->sigma_rel);
  if (!isfinite(r->half_life) || r->half_life < 0)
    return ec_err(EC_EINVAL, "%s: run %s: half_life %g must be > 0 (0 = not set)", p, run, r->half_life);
  if (r->sigma_rel > 0 && r->half_life > 0)
    return ec_err(EC_EINVAL, "%s: run %s: give sigma_rel or half_life, not both", p, run);
  if (r->sigma_rel == 0 && r->half_life == 0 && !*nz(r->tensor_rule))
    return ec_err(EC_EINVAL, "%s: run %s: no EMA profile (sigma_rel, half_life or tensor_rule)", p, run);
  if (!isfinite(r->guidance) || r->guidance <= 0)
    return ec_err(EC_EINVAL, "%s: run %s: guidance %g must be > 0 (1 = no guidance)", p, run, r->guidance);
  const char *m = nz(r->metric);
  if (!*m) return ec_err(EC_EINVAL, "%s: run %s: result without a metric", p, run);
  for (const char *c = m; *c; c++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *c))
      return ec_err(EC_EINVAL, "%s: run %s: metric name '%s' has characters other than A-Z a-z 0-9 _ . -",
                    p, run, m);
  if (r->num < 0)
    return ec_err(EC_EINVAL, "%s: run %s: num %" PRId64 " must not be negative", p, run, r->num);
  if (r->repeat < 0) return ec_err(EC_EINVAL, "%s: run %s: repeat %d must not be negative", p, run, r->repeat);
  if (with_value && !isfinite(r->value))
    return ec_err(EC_EINVAL, "%s: run %s: %s value %g is not finite", p, run, m, r->value);
  if (with_value && (!isfinite(r->wall_s) || r->wall_s < 0))
    return ec_err(EC_EINVAL, "%s: run %s: wall_s %g must be >= 0", p, run, r->wall_s);
  return EC_OK;
}

static void bind_key(sqlite3_stmt *s, const edm2_result *r) {
  sqlite3_bind_text(s, 1, r->run, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, r->metric, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, r->guidance);
  sqlite3_bind_text(s, 4, nz(r->gnet), -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, r->nimg);
  sqlite3_bind_text(s, 6, nz(r->tensor_rule), -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 7, r->sigma_rel);
  sqlite3_bind_double(s, 8, r->half_life);
  sqlite3_bind_int(s, 9, r->repeat);
  sqlite3_bind_int64(s, 10, r->num);
  sqlite3_bind_int64(s, 11, r->seed);
}

/* Runs a statement that returns at most one row; 1 when it did. Resets it either way. */
static ec_status step_once(edm2_db *db, sqlite3_stmt *s, const char *what, int *got_row) {
  int rc = sqlite3_step(s);
  ec_status st = EC_OK;
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    if (got_row) *got_row = rc == SQLITE_ROW;
  } else {
    st = sql_fail(db->h, db->path, rc, what);
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
  }
  return st;
}

ec_status edm2_db_exists(edm2_db *db, const edm2_result *r, int *exists) {
  ec_status st;
  *exists = 0;
  if ((st = validate(db, r, 0))) return st;
  bind_key(db->exists, r);
  st = step_once(db, db->exists, "looking a result up", exists);
  sqlite3_reset(db->exists);
  sqlite3_clear_bindings(db->exists);
  return st;
}

/* Stores the rules' text under their hash the first time; after that, checks that a text given
 * again is the same (a different text would mean a hash collision or a caller's mistake). */
static ec_status put_rule(edm2_db *db, const edm2_result *r) {
  const char *hash = r->tensor_rule, *text = nz(r->tensor_rule_text);
  sqlite3_bind_text(db->rule_get, 1, hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(db->rule_get);
  ec_status st = EC_OK;
  if (rc == SQLITE_ROW) {
    const char *stored = (const char *)sqlite3_column_text(db->rule_get, 0);
    if (*text && strcmp(text, nz(stored)))
      st = ec_err(EC_EINVAL, "%s: tensor rule hash %s already stands for '%s', not '%s'", db->path,
                  hash, nz(stored), text);
  } else if (rc == SQLITE_DONE) {
    if (!*text)
      st = ec_err(EC_EINVAL, "%s: tensor rule hash %s is new: give its rule text (tensor_rule_text)",
                  db->path, hash);
  } else {
    st = sql_fail(db->h, db->path, rc, "looking up a tensor rule");
  }
  sqlite3_reset(db->rule_get);
  sqlite3_clear_bindings(db->rule_get);
  if (st || rc == SQLITE_ROW) return st;
  sqlite3_bind_text(db->rule_put, 1, hash, -1, SQLITE_STATIC);
  sqlite3_bind_text(db->rule_put, 2, text, -1, SQLITE_STATIC);
  return step_once(db, db->rule_put, "storing a tensor rule", NULL);
}

ec_status edm2_db_put(edm2_db *db, const edm2_result *r, int redo) {
  ec_status st;
  if ((st = validate(db, r, 1))) return st;
  /* IMMEDIATE takes the write lock up front: a deferred transaction that reads first and then
   * writes can fail with SQLITE_BUSY_SNAPSHOT in WAL mode, which the busy timeout does not wait
   * out. */
  int own = !db->in_batch;
  if (own && (st = exec_sql(db->h, db->path, "BEGIN IMMEDIATE", "starting a transaction"))) return st;
  if (*nz(r->tensor_rule) && (st = put_rule(db, r))) goto done;
  sqlite3_stmt *s = redo ? db->upsert : db->insert;
  bind_key(s, r);
  sqlite3_bind_double(s, 12, r->value);
  sqlite3_bind_double(s, 13, r->wall_s);
  sqlite3_bind_text(s, 14, r->code_version ? r->code_version : EDM2C_VERSION, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    char nb[32];
    st = ec_err(EC_EEXIST,
                "%s: run %s already has %s at nimg %s, sigma_rel %g, half_life %g, rules '%s', "
                "guidance %g, gnet '%s', num %" PRId64 ", seed %" PRId64 ", repeat %d (redo replaces it)",
                db->path, r->run, r->metric, ec_format_nimg(nb, sizeof nb, r->nimg), r->sigma_rel,
                r->half_life, nz(r->tensor_rule), r->guidance, nz(r->gnet), r->num, r->seed, r->repeat);
  } else if (rc != SQLITE_DONE) {
    st = sql_fail(db->h, db->path, rc, "storing a result");
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
done:
  if (own) {
    if (!st) st = exec_sql(db->h, db->path, "COMMIT", "committing a result");
    if (st) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
  }
  return st;
}

ec_status edm2_db_begin(edm2_db *db) {
  if (db->in_batch) return ec_err(EC_EINVAL, "%s: a batch is already open", db->path);
  ec_status st = exec_sql(db->h, db->path, "BEGIN IMMEDIATE", "starting a batch");
  if (!st) db->in_batch = 1;
  return st;
}

ec_status edm2_db_commit(edm2_db *db) {
  if (!db->in_batch) return ec_err(EC_EINVAL, "%s: commit without a batch", db->path);
  ec_status st = exec_sql(db->h, db->path, "COMMIT", "committing a batch");
  if (st) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
  db->in_batch = 0;
  return st;
}

ec_status edm2_db_rollback(edm2_db *db) {
  if (!db->in_batch) return ec_err(EC_EINVAL, "%s: rollback without a batch", db->path);
  db->in_batch = 0;
  return exec_sql(db->h, db->path, "ROLLBACK", "rolling a batch back");
}

/* ---- rows out -------------------------------------------------------------------------------- */

void edm2_result_list_free(edm2_result_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nstrings_; i++) free(l->strings_[i]);
  free(l->strings_);
  free(l->rows);
  memset(l, 0, sizeof *l);
}

/* A copy of column c owned by the list. */
static const char *keep(edm2_result_list *l, sqlite3_stmt *s, int c) {
  if (l->nstrings_ == l->capstrings_) {
    size_t cap = l->capstrings_ ? 2 * l->capstrings_ : 64;
    char **p = ec_realloc(l->strings_, cap, sizeof *p);
    if (!p) return NULL;
    l->strings_ = p;
    l->capstrings_ = cap;
  }
  const char *t = (const char *)sqlite3_column_text(s, c);
  char *copy = ec_strdup(t ? t : "");
  if (copy) l->strings_[l->nstrings_++] = copy;
  return copy;
}

ec_status edm2_db_rows(edm2_db *db, const char *run, edm2_result_list *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = db->rows;
  if (run) sqlite3_bind_text(s, 1, run, -1, SQLITE_STATIC);
  ec_status st = EC_OK;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (out->n == out->cap_) {
      size_t cap = out->cap_ ? 2 * out->cap_ : 256;
      edm2_result *p = ec_realloc(out->rows, cap, sizeof *p);
      if (!p) {
        st = EC_ENOMEM;
        break;
      }
      out->rows = p;
      out->cap_ = cap;
    }
    edm2_result *r = &out->rows[out->n];
    *r = (edm2_result){.nimg = sqlite3_column_int64(s, 1), .sigma_rel = sqlite3_column_double(s, 2),
                       .half_life = sqlite3_column_double(s, 3), .guidance = sqlite3_column_double(s, 6),
                       .value = sqlite3_column_double(s, 9), .num = sqlite3_column_int64(s, 10),
                       .seed = sqlite3_column_int64(s, 11), .repeat = sqlite3_column_int(s, 12),
                       .wall_s = sqlite3_column_double(s, 13)};
    if (!(r->run = keep(out, s, 0)) || !(r->tensor_rule = keep(out, s, 4)) ||
        !(r->tensor_rule_text = keep(out, s, 5)) || !(r->gnet = keep(out, s, 7)) ||
        !(r->metric = keep(out, s, 8)) || !(r->code_version = keep(out, s, 14)) ||
        !(r->created = keep(out, s, 15))) {
      st = EC_ENOMEM;
      break;
    }
    out->n++;
  }
  if (!st && rc != SQLITE_DONE) st = sql_fail(db->h, db->path, rc, "reading results");
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (st) edm2_result_list_free(out);
  return st;
}

/* ---- output ---------------------------------------------------------------------------------- */

ec_status edm2_db_format_parse(const char *s, edm2_db_format *out) {
  if (!strcmp(s, "table")) *out = EDM2_DB_TABLE;
  else if (!strcmp(s, "csv")) *out = EDM2_DB_CSV;
  else if (!strcmp(s, "json")) *out = EDM2_DB_JSON;
  else return ec_err(EC_EINVAL, "output format '%s' is not one of table, csv, json", s);
  return EC_OK;
}

/* The shortest of %.15g and %.17g that reads back as x. */
static char *fmt_double(char *buf, size_t n, double x) {
  snprintf(buf, n, "%.15g", x);
  if (strtod(buf, NULL) != x) snprintf(buf, n, "%.17g", x);
  return buf;
}

static cJSON *json_i64(int64_t v) {
  /* cJSON holds numbers as doubles: raw text keeps seeds and image counts above 2^53 exact. */
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  return cJSON_CreateRaw(buf);
}
static cJSON *json_num_or_null(double v, int set) { return set ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
static cJSON *json_str_or_null(const char *s) { return *nz(s) ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* Adds item to o; 0 when item is NULL (out of memory), after which o owns nothing more. */
static int add(cJSON *o, const char *key, cJSON *item) {
  if (!item) return 0;
  cJSON_AddItemToObject(o, key, item);
  return 1;
}

static ec_status write_json(FILE *f, const edm2_result_list *l, const edm2_best_list *b) {
  cJSON *root = cJSON_CreateObject(), *rows = cJSON_CreateArray(), *best = cJSON_CreateArray();
  int ok = root && rows && best;
  if (ok) {
    cJSON_AddItemToObject(root, "rows", rows);
    cJSON_AddItemToObject(root, "best", best);
  } else {
    cJSON_Delete(rows);
    cJSON_Delete(best);
  }
  for (size_t i = 0; ok && i < l->n; i++) {
    const edm2_result *r = &l->rows[i];
    cJSON *o = cJSON_CreateObject();
    if (!(ok = o != NULL)) break;
    cJSON_AddItemToArray(rows, o);
    ok = add(o, "run", cJSON_CreateString(r->run)) && add(o, "nimg", json_i64(r->nimg)) &&
         add(o, "sigma_rel", json_num_or_null(r->sigma_rel, r->sigma_rel > 0)) &&
         add(o, "half_life", json_num_or_null(r->half_life, r->half_life > 0)) &&
         add(o, "tensor_rule", json_str_or_null(r->tensor_rule)) &&
         add(o, "guidance", cJSON_CreateNumber(r->guidance)) &&
         add(o, "gnet", json_str_or_null(r->gnet)) && add(o, "metric", cJSON_CreateString(r->metric)) &&
         add(o, "value", cJSON_CreateNumber(r->value)) && add(o, "num", json_i64(r->num)) &&
         add(o, "seed", json_i64(r->seed)) && add(o, "repeat", cJSON_CreateNumber(r->repeat));
  }
  for (size_t i = 0; ok && i < b->n; i++) {
    const edm2_best *e = &b->best[i];
    cJSON *o = cJSON_CreateObject();
    if (!(ok = o != NULL)) break;
    cJSON_AddItemToArray(best, o);
    ok = add(o, "run", cJSON_CreateString(e->run)) && add(o, "nimg", json_i64(e->nimg)) &&
         add(o, "metric", cJSON_CreateString(e->metric)) &&
         add(o, "guidance", cJSON_CreateNumber(e->guidance)) && add(o, "gnet", json_str_or_null(e->gnet)) &&
         add(o, "tensor_rule", json_str_or_null(e->tensor_rule)) && add(o, "num", json_i64(e->num)) &&
         add(o, "sigma_rel_best", cJSON_CreateNumber(e->fit.sigma_best)) &&
         add(o, "value_best", cJSON_CreateNumber(e->fit.value_best)) &&
         add(o, "sigma_rel_min", cJSON_CreateNumber(e->fit.sigma_min)) &&
         add(o, "value_min", cJSON_CreateNumber(e->fit.value_min)) &&
         add(o, "fit", cJSON_CreateString(edm2_fit_name(e->fit.fit))) &&
         add(o, "points", cJSON_CreateNumber(e->fit.points));
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return ec_err(EC_ENOMEM, "out of memory writing the results as JSON");
  fputs(text, f);
  fputc('\n', f);
  cJSON_free(text);
  return EC_OK;
}

/* One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180). */
static void csv_field(FILE *f, const char *s, int last) {
  if (strpbrk(s, ",\"\r\n")) {
    fputc('"', f);
    for (; *s; s++) {
      if (*s == '"') fputc('"', f);
      fputc(*s, f);
    }
    fputc('"', f);
  } else {
    fputs(s, f);
  }
  fputc(last ? '\n' : ',', f);
}

static void write_csv(FILE *f, const edm2_result_list *l) {
  fputs("run,nimg,sigma_rel,half_life,tensor_rule,guidance,gnet,metric,value,num,seed,repeat,"
        "wall_s,code_version,created\n", f);
  for (size_t i = 0; i < l->n; i++) {
    const edm2_result *r = &l->rows[i];
    char b[32];
    csv_field(f, r->run, 0);
    fprintf(f, "%" PRId64 ",", r->nimg);
    csv_field(f, r->sigma_rel > 0 ? fmt_double(b, sizeof b, r->sigma_rel) : "", 0);
    csv_field(f, r->half_life > 0 ? fmt_double(b, sizeof b, r->half_life) : "", 0);
    csv_field(f, r->tensor_rule, 0);
    csv_field(f, fmt_double(b, sizeof b, r->guidance), 0);
    csv_field(f, r->gnet, 0);
    csv_field(f, r->metric, 0);
    csv_field(f, fmt_double(b, sizeof b, r->value), 0);
    fprintf(f, "%" PRId64 ",%" PRId64 ",%d,", r->num, r->seed, r->repeat);
    csv_field(f, fmt_double(b, sizeof b, r->wall_s), 0);
    csv_field(f, r->code_version, 0);
    csv_field(f, r->created, 1);
  }
}

/* The table for people: the cells are formatted first, then printed at the widest width. */
enum { TCOLS = 12 };
static ec_status write_table(FILE *f, const edm2_result_list *l, const edm2_best_list *b) {
  static const char *head[TCOLS] = {"run", "metric", "guidance", "gnet", "nimg", "rules",
                                    "sigma_rel", "half_life", "repeat", "num", "seed", "value"};
  size_t ncell = (l->n + 1) * TCOLS;
  char **cell = ec_calloc(ncell, sizeof *cell);
  if (!cell) return EC_ENOMEM;
  ec_status st = EC_OK;
  int width[TCOLS] = {0};
  for (int c = 0; c < TCOLS; c++)
    if (!(cell[c] = ec_strdup(head[c]))) st = EC_ENOMEM;
  for (size_t i = 0; !st && i < l->n; i++) {
    const edm2_result *r = &l->rows[i];
    char **row = cell + (i + 1) * TCOLS, nb[32], hb[32];
    if (r->half_life > 0 && r->half_life == floor(r->half_life) && r->half_life < 9e18)
      ec_format_nimg(hb, sizeof hb, (int64_t)r->half_life);
    else if (r->half_life > 0) snprintf(hb, sizeof hb, "%g", r->half_life);
    else snprintf(hb, sizeof hb, "-");
    row[0] = ec_strdup(r->run);
    row[1] = ec_strdup(r->metric);
    row[2] = ec_asprintf("%g", r->guidance);
    row[3] = ec_strdup(*r->gnet ? r->gnet : "-");
    row[4] = ec_strdup(ec_format_nimg(nb, sizeof nb, r->nimg));
    row[5] = ec_strdup(*r->tensor_rule ? r->tensor_rule : "-");
    row[6] = r->sigma_rel > 0 ? ec_asprintf("%g", r->sigma_rel) : ec_strdup("-");
    row[7] = ec_strdup(hb);
    row[8] = ec_asprintf("%d", r->repeat);
    row[9] = ec_asprintf("%" PRId64, r->num);
    row[10] = ec_asprintf("%" PRId64, r->seed);
    row[11] = ec_asprintf("%.6g", r->value);
    for (int c = 0; c < TCOLS; c++)
      if (!row[c]) st = EC_ENOMEM;
  }
  if (!st) {
    for (size_t i = 0; i < ncell; i++) {
      int w = (int)strlen(cell[i]);
      if (w > width[i % TCOLS]) width[i % TCOLS] = w;
    }
    for (size_t i = 0; i <= l->n; i++)
      for (int c = 0; c < TCOLS; c++) {
        /* Text left-aligned, numbers right-aligned. */
        int left = c <= 3 || c == 5;
        const char *s = cell[i * TCOLS + c];
        if (c == TCOLS - 1) fprintf(f, "%*s\n", width[c], s);
        else fprintf(f, left ? "%-*s  " : "%*s  ", width[c], s);
      }
    if (b->n) fputc('\n', f);
    for (size_t i = 0; i < b->n; i++) {
      const edm2_best *e = &b->best[i];
      char nb[32];
      fprintf(f, "best %s %s guidance %g gnet %s nimg %s rules %s num %" PRId64 ": sigma_rel %.6g value %.6g",
              e->run, e->metric, e->guidance, *e->gnet ? e->gnet : "-",
              ec_format_nimg(nb, sizeof nb, e->nimg), *e->tensor_rule ? e->tensor_rule : "-", e->num,
              e->fit.sigma_best, e->fit.value_best);
      if (e->fit.fit == EDM2_FIT_PARABOLA)
        fprintf(f, " (parabola through %d of %d points; measured minimum %.6g at %.6g)\n",
                e->fit.fitted, e->fit.points, e->fit.value_min, e->fit.sigma_min);
      else
        fprintf(f, " (the measured minimum: %s, %d point%s)\n", edm2_fit_name(e->fit.fit),
                e->fit.points, e->fit.points == 1 ? "" : "s");
    }
  }
  for (size_t i = 0; i < ncell; i++) free(cell[i]);
  free(cell);
  return st;
}

ec_status edm2_db_write(edm2_db *db, const char *run, FILE *f, edm2_db_format format) {
  edm2_result_list l = {0};
  edm2_best_list b = {0};
  ec_status st;
  if ((st = edm2_db_rows(db, run, &l))) return st;
  if (format != EDM2_DB_CSV && (st = edm2_best_sigma(l.rows, l.n, &b))) goto done;
  clearerr(f);
  switch (format) {
  case EDM2_DB_JSON: st = write_json(f, &l, &b); break;
  case EDM2_DB_CSV: write_csv(f, &l); break;
  case EDM2_DB_TABLE: st = write_table(f, &l, &b); break;
  default: st = ec_err(EC_EINVAL, "unknown results output format %d", (int)format);
  }
  if (!st && (fflush(f) || ferror(f)))
    st = ec_err(errno == ENOSPC ? EC_ENOSPC : EC_EIO, "writing the results of %s: %s", db->path,
                strerror(errno));
done:
  edm2_best_list_free(&b);
  edm2_result_list_free(&l);
  return st;
}
