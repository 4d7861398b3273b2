/* The results database of edm2-sweep and edm2-nightly: one SQLite row per evaluation (a metric
 * of one EMA profile of one snapshot time of one run), so that sweeps are incremental (a rerun
 * skips what exists) and queryable with sqlite3, Python or pandas. Schema, sentinels and
 * versions: docs/formats.md, "Results database".
 *
 *   edm2_db *db;
 *   if ((st = edm2_db_open(&db, "results.db"))) goto fail;      // created when missing
 *   edm2_result r = EDM2_RESULT_INIT;                           // guidance 1.0 = none
 *   r.run = "runs/fmnist"; r.nimg = 512 << 20; r.sigma_rel = 0.13;
 *   r.metric = "fid"; r.num = 50000; r.seed = 0;
 *   int have;
 *   if ((st = edm2_db_exists(db, &r, &have))) goto fail;
 *   if (!have) { r.value = evaluate(...); r.wall_s = ...; st = edm2_db_put(db, &r, 0); }
 *   edm2_db_close(&db);
 *
 * Several processes may write one file at once (WAL journal, 60 s busy timeout, one short
 * transaction per row); they must run on one machine, since WAL's shared memory does not work
 * across a network file system. A handle belongs to one thread at a time. Opening checks the
 * file (not SQLite, corrupt, another application's database, a newer schema) before writing
 * anything to it, and migrates an older schema in one transaction. */
#ifndef EDM2C_ANALYSIS_RESULTS_DB_H
#define EDM2C_ANALYSIS_RESULTS_DB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* The schema version this code writes (PRAGMA user_version) and the application id that marks
 * a file as ours (PRAGMA application_id, "e2db"). */
#define EDM2_DB_SCHEMA_VERSION 2
#define EDM2_DB_APPLICATION_ID 0x65326462

/* One evaluation. "Not set" is spelt the way the database stores it, NOT NULL sentinels, since
 * SQLite's UNIQUE treats NULLs as all different and a rerun would then never find its row:
 * sigma_rel = 0 and half_life = 0 (both are > 0 when set), tensor_rule = "" or NULL,
 * gnet = "" or NULL, guidance = 1.0 (no guidance). The JSON and CSV outputs show them as null
 * (empty in CSV); guidance 1.0 stays 1.0.
 *
 * The unique key is everything but value, wall_s, code_version and created. */
typedef struct {
  const char *run;    /* the run directory's canonical path, or a name; as given */
  int64_t nimg;       /* snapshot time in training images, >= 0 */
  double sigma_rel;   /* global power-function EMA length; 0 = not set */
  double half_life;   /* fixed half-life EMA in images; 0 = not set (not with sigma_rel) */
  const char *tensor_rule;      /* hash of per-tensor rules (posthoc/tensor_rules.h); "" = none */
  const char *tensor_rule_text; /* put: the rules' full text, stored once per hash; needed the
                                   first time a hash is stored, checked against the stored text
                                   after. rows: filled in. */
  double guidance;    /* guidance weight; 1.0 = none; > 0 */
  const char *gnet;   /* guiding model ("" = none) */
  const char *metric; /* "val-loss", "fid", "fd_dinov2" (any name of [A-Za-z0-9_.-]) */
  double value;       /* finite */
  int64_t num;        /* images evaluated, >= 0 */
  int64_t seed;
  int repeat;         /* repeat index, >= 0 */
  double wall_s;      /* seconds the evaluation took, >= 0 */
  const char *code_version; /* put: NULL = this build's EDM2C_VERSION. rows: filled in. */
  const char *created;      /* rows only: ISO 8601 UTC time of the insert ("2024-05-01T12:00:00Z") */
} edm2_result;

/* A zero result with the "not set" values; fill in the rest. */
#define EDM2_RESULT_INIT {.guidance = 1.0}

typedef struct edm2_db edm2_db;

/* Opens or creates the database at `path` (its directory must exist). Refuses, naming the file
 * and never writing to it: a file that is not an SQLite database or is corrupt (PRAGMA
 * quick_check), an SQLite database of another application, and a schema newer than
 * EDM2_DB_SCHEMA_VERSION (EC_EFORMAT); a missing directory (EC_ENOENT). An older schema is
 * migrated in one transaction. */
ec_status edm2_db_open(edm2_db **db, const char *path);

/* Opens an existing database for reading only (edm2-plot): never creates, migrates or writes it,
 * so it works on results the user may not write (a shared or archived run directory). The same
 * refusals as edm2_db_open, plus a missing file (EC_ENOENT), an empty one and an older schema
 * (EC_EFORMAT: edm2-sweep upgrades it). Writes through the handle fail with an error naming the
 * file. */
ec_status edm2_db_open_readonly(edm2_db **db, const char *path);

/* Closes the handle and sets *db to NULL; accepts NULL. A batch still open is rolled back. */
void edm2_db_close(edm2_db **db);

/* The file name given to edm2_db_open. */
const char *edm2_db_path(const edm2_db *db);

/* *exists = 1 when a row with r's unique key is stored (value and timing are not looked at). */
ec_status edm2_db_exists(edm2_db *db, const edm2_result *r, int *exists);

/* Stores r (EC_EINVAL for a field out of range, naming it). When a row with the same key
 * exists: redo = 0 gives EC_EEXIST and keeps the row; redo = 1 replaces its value, wall_s,
 * code_version and created. Outside a batch each call is its own transaction. */
ec_status edm2_db_put(edm2_db *db, const edm2_result *r, int redo);

/* Optional batch: puts between begin and commit are one transaction (fewer syncs), holding the
 * write lock until commit, so keep batches short when other processes write too. */
ec_status edm2_db_begin(edm2_db *db);
ec_status edm2_db_commit(edm2_db *db);
ec_status edm2_db_rollback(edm2_db *db);

/* Rows read back: `rows` point into storage the list owns. */
typedef struct {
  edm2_result *rows;
  size_t n;
  char **strings_; /* owned copies, freed by edm2_result_list_free */
  size_t nstrings_, capstrings_;
  size_t cap_;
} edm2_result_list;

/* The rows of one run (run = NULL: all), ordered by run, metric, guidance, gnet, nimg,
 * tensor_rule, sigma_rel, half_life, repeat, num, seed. `out` must be zeroed or freed; on
 * failure it is left empty. */
ec_status edm2_db_rows(edm2_db *db, const char *run, edm2_result_list *out);
void edm2_result_list_free(edm2_result_list *l);

typedef enum { EDM2_DB_TABLE, EDM2_DB_CSV, EDM2_DB_JSON } edm2_db_format;

/* Writes the rows of one run (NULL: all) and the best σ_rel of each sweep (analysis/best_sigma.h)
 * to f:
 *   table: aligned columns for people, then one "best" line per sweep;
 *   csv:   a header line, then one line per row (RFC 4180 quoting; unset fields empty);
 *   json:  {"rows": [{"run", "nimg", "sigma_rel", "half_life", "tensor_rule", "guidance",
 *          "gnet", "metric", "value", "num", "seed", "repeat"}, ...], "best": [...]}, unset
 *          fields null, integers exact (docs/formats.md).
 * EC_EIO when writing to f fails. */
ec_status edm2_db_write(edm2_db *db, const char *run, FILE *f, edm2_db_format format);

/* "table", "csv" or "json" to a format (EC_EINVAL naming the others). */
ec_status edm2_db_format_parse(const char *s, edm2_db_format *out);

#endif
