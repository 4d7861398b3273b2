/* analysis/results_db and analysis/best_sigma: the results database of edm2-sweep (schema,
 * unique key, sentinels, versions, migration, corruption, concurrent writers) and the best
 * σ_rel of a sweep. */
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/best_sigma.h"
#include "analysis/results_db.h"
#include "core/alloc.h"
#include "edm2c_config.h"
#include "tests/test.h"

/* A result with every key field set: a global σ_rel of an FID evaluation. */
static edm2_result sample(double sigma_rel, int repeat, double value) {
  edm2_result r = EDM2_RESULT_INIT;
  r.run = "runs/fmnist";
  r.nimg = 512LL << 20;
  r.sigma_rel = sigma_rel;
  r.metric = "fid";
  r.value = value;
  r.num = 50000;
  r.seed = 1000 * repeat;
  r.repeat = repeat;
  r.wall_s = 12.5;
  return r;
}

/* A whole file, or NULL; *n its size. */
static char *slurp(const char *path, size_t *n) { return test_read_file(path, n); }

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* An integer PRAGMA or query of a file, read with plain sqlite3. */
static int64_t sql_int(const char *path, const char *sql) {
  sqlite3 *h = NULL;
  int64_t v = -12345;
  sqlite3_stmt *s = NULL;
  if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(h, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

static int sql_exec(const char *path, const char *sql) {
  sqlite3 *h = NULL;
  int rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
  sqlite3_close(h);
  return rc;
}

/* What edm2_db_write prints, as a string (free it). */
static char *write_to_string(edm2_db *db, const char *run, edm2_db_format fmt, ec_status *st) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  *st = edm2_db_write(db, run, f, fmt);
  fclose(f);
  return buf;
}

TEST(create_and_reopen) {
  const char *path = test_path("create.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  ASSERT_TRUE(file_exists(path));
  ASSERT_STR_EQ(edm2_db_path(db), path);
  edm2_result r = sample(0.13, 0, 2.5);
  ASSERT_OK(edm2_db_put(db, &r, 0));
  edm2_db_close(&db);
  ASSERT_TRUE(db == NULL);
  edm2_db_close(&db); /* NULL is fine */
  ASSERT_EQ_INT(sql_int(path, "PRAGMA user_version"), EDM2_DB_SCHEMA_VERSION);
  ASSERT_EQ_INT(sql_int(path, "PRAGMA application_id"), EDM2_DB_APPLICATION_ID);
  ASSERT_EQ_INT(sql_int(path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);

  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result_list l = {0};
  ec_status st = edm2_db_rows(db, NULL, &l);
  edm2_db_close(&db);
  ASSERT_OK(st);
  ASSERT_EQ_INT(l.n, 1);
  const edm2_result *g = &l.rows[0];
  int same = !strcmp(g->run, "runs/fmnist") && g->nimg == (512LL << 20) && g->sigma_rel == 0.13 &&
             g->half_life == 0 && !strcmp(g->tensor_rule, "") && g->guidance == 1.0 &&
             !strcmp(g->gnet, "") && !strcmp(g->metric, "fid") && g->value == 2.5 && g->num == 50000 &&
             g->seed == 0 && g->repeat == 0 && g->wall_s == 12.5;
  int created_ok = strlen(g->created) == 20 && g->created[10] == 'T' && g->created[19] == 'Z';
  ASSERT_STR_EQ(g->code_version, EDM2C_VERSION);
  edm2_result_list_free(&l);
  ASSERT_TRUE(same);
  ASSERT_TRUE(created_ok);
}

TEST(open_reports_bad_paths) {
  edm2_db *db = NULL;
  ASSERT_STATUS(edm2_db_open(&db, test_path("no-such-dir/r.db")), EC_ENOENT, "no-such-dir");
  ASSERT_TRUE(db == NULL);
  ASSERT_STATUS(edm2_db_open(&db, test_tmpdir()), EC_EINVAL, "is a directory");
  ASSERT_STATUS(edm2_db_open(&db, ""), EC_EINVAL, "empty file name");
}

TEST(unique_key_and_redo) {
  const char *path = test_path("unique.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result r = sample(0.10, 0, 3.0);
  int have = -1;
  ASSERT_OK(edm2_db_exists(db, &r, &have));
  ASSERT_EQ_INT(have, 0);
  ASSERT_OK(edm2_db_put(db, &r, 0));
  ASSERT_OK(edm2_db_exists(db, &r, &have));
  ASSERT_EQ_INT(have, 1);

  /* Same key, other value and timing: refused without redo, naming the file. */
  r.value = 4.0;
  r.wall_s = 99;
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EEXIST, path);
  ASSERT_OK(edm2_db_exists(db, &r, &have));
  ASSERT_EQ_INT(have, 1);

  /* Every key field makes a new row; value, wall_s and code_version do not. */
  edm2_result v[11];
  for (int i = 0; i < 11; i++) v[i] = sample(0.10, 0, 1.0 + i);
  v[0].run = "runs/other";
  v[1].nimg += 1;
  v[2].sigma_rel = 0.11;
  v[3].sigma_rel = 0, v[3].half_life = 1 << 20;
  v[4].tensor_rule = "0badc0de", v[4].tensor_rule_text = "unet.enc.*=0.2";
  v[5].guidance = 1.4;
  v[6].gnet = "runs/xs/phema-0.050.h5", v[6].guidance = 1.4;
  v[7].metric = "fd_dinov2";
  v[8].num = 10000;
  v[9].seed = 7;
  v[10].repeat = 1;
  for (int i = 0; i < 11; i++) {
    ASSERT_OK(edm2_db_exists(db, &v[i], &have));
    ASSERT_EQ_INT(have, 0);
    ASSERT_OK(edm2_db_put(db, &v[i], 0));
  }
  edm2_result same = sample(0.10, 0, 5.0);
  same.code_version = "other";
  ASSERT_STATUS(edm2_db_put(db, &same, 0), EC_EEXIST, "already has fid");

  /* redo replaces value, wall_s and code_version in place. */
  r.value = 4.0;
  r.code_version = "9.9.9";
  ASSERT_OK(edm2_db_put(db, &r, 1));
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, "runs/fmnist", &l));
  size_t n = l.n;
  int found = 0;
  for (size_t i = 0; i < l.n; i++)
    if (l.rows[i].sigma_rel == 0.10 && l.rows[i].seed == 0 && l.rows[i].repeat == 0 &&
        l.rows[i].guidance == 1 && l.rows[i].num == 50000 && !strcmp(l.rows[i].metric, "fid") &&
        !*l.rows[i].tensor_rule && l.rows[i].nimg == (512LL << 20))
      found += l.rows[i].value == 4.0 && l.rows[i].wall_s == 99 && !strcmp(l.rows[i].code_version, "9.9.9");
  edm2_result_list_free(&l);
  ASSERT_EQ_INT(n, 11); /* 12 rows, one of another run */
  ASSERT_EQ_INT(found, 1);
  /* A redo of a key that does not exist yet inserts. */
  edm2_result fresh = sample(0.2, 3, 1.0);
  ASSERT_OK(edm2_db_put(db, &fresh, 1));
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  n = l.n;
  edm2_result_list_free(&l);
  ASSERT_EQ_INT(n, 13);
  edm2_db_close(&db);
}

TEST(tensor_rules_stored_once) {
  const char *path = test_path("rules.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result r = sample(0.10, 0, 3.0);
  r.tensor_rule = "12345678";
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "give its rule text");
  r.tensor_rule_text = "unet.dec.*=0.15";
  ASSERT_OK(edm2_db_put(db, &r, 0));
  r.repeat = 1, r.tensor_rule_text = NULL; /* known now: the text may be left out */
  ASSERT_OK(edm2_db_put(db, &r, 0));
  r.repeat = 2, r.tensor_rule_text = "unet.enc.*=0.15";
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "already stands for 'unet.dec.*=0.15'");
  /* A rule with no global σ_rel is a profile of its own. */
  edm2_result only = sample(0, 0, 2.0);
  only.tensor_rule = "12345678";
  ASSERT_OK(edm2_db_put(db, &only, 0));
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  size_t n = l.n;
  int texts = 0;
  for (size_t i = 0; i < l.n; i++) texts += !strcmp(l.rows[i].tensor_rule_text, "unet.dec.*=0.15");
  edm2_result_list_free(&l);
  edm2_db_close(&db);
  ASSERT_EQ_INT(n, 3);
  ASSERT_EQ_INT(texts, 3);
  ASSERT_EQ_INT(sql_int(path, "SELECT count(*) FROM tensor_rules"), 1);
}

TEST(put_validates_fields) {
  const char *path = test_path("validate.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result r = sample(0.1, 0, 1.0);
  r.half_life = 100;
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "not both");
  r = sample(0, 0, 1.0);
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "no EMA profile");
  r = sample(-0.1, 0, 1.0);
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "sigma_rel");
  r = sample(0.1, 0, NAN);
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "not finite");
  r = sample(0.1, 0, 1.0);
  r.guidance = 0; /* a struct zeroed without EDM2_RESULT_INIT */
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "1 = no guidance");
  r = sample(0.1, 0, 1.0);
  r.metric = "fid 50k";
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "metric name");
  r = sample(0.1, 0, 1.0);
  r.run = NULL;
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "without a run");
  r = sample(0.1, -1, 1.0);
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EINVAL, "repeat");
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  size_t n = l.n;
  edm2_result_list_free(&l);
  edm2_db_close(&db);
  ASSERT_EQ_INT(n, 0);
}

TEST(batch_commit_and_rollback) {
  const char *path = test_path("batch.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  ASSERT_OK(edm2_db_begin(db));
  ASSERT_STATUS(edm2_db_begin(db), EC_EINVAL, "already open");
  for (int i = 0; i < 10; i++) {
    edm2_result r = sample(0.05 + 0.01 * i, 0, 1.0);
    ASSERT_OK(edm2_db_put(db, &r, 0));
  }
  ASSERT_OK(edm2_db_commit(db));
  ASSERT_OK(edm2_db_begin(db));
  edm2_result r = sample(0.5, 0, 1.0);
  ASSERT_OK(edm2_db_put(db, &r, 0));
  ASSERT_OK(edm2_db_rollback(db));
  ASSERT_STATUS(edm2_db_commit(db), EC_EINVAL, "without a batch");
  ASSERT_OK(edm2_db_begin(db));
  r = sample(0.6, 0, 1.0);
  ASSERT_OK(edm2_db_put(db, &r, 0));
  edm2_db_close(&db); /* an open batch is rolled back */
  ASSERT_EQ_INT(sql_int(path, "SELECT count(*) FROM results"), 10);
}

TEST(json_csv_table_and_sentinels) {
  const char *path = test_path("json.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  /* A sweep of 5 σ_rel with 2 repeats on a parabola, a half-life row, a per-tensor row with a
   * guiding model, and a seed beyond 2^53. */
  for (int i = 0; i < 5; i++)
    for (int rep = 0; rep < 2; rep++) {
      double s = 0.05 + 0.025 * i;
      edm2_result r = sample(s, rep, 2 + 100 * (s - 0.11) * (s - 0.11) + (rep ? 0.01 : -0.01));
      ASSERT_OK(edm2_db_put(db, &r, 0));
    }
  edm2_result h = sample(0, 0, 7.5);
  h.half_life = 2 << 20;
  h.seed = (1LL << 53) + 1;
  ASSERT_OK(edm2_db_put(db, &h, 0));
  edm2_result t = sample(0.1, 0, 3.25);
  t.tensor_rule = "abcdef01", t.tensor_rule_text = "unet.enc.*=0.2";
  t.guidance = 1.4, t.gnet = "runs/xs/phema.h5";
  ASSERT_OK(edm2_db_put(db, &t, 0));
  edm2_result other = sample(0.1, 0, 1.0);
  other.run = "runs/other,with \"quotes\"";
  ASSERT_OK(edm2_db_put(db, &other, 0));

  ec_status st = EC_OK;
  char *json = write_to_string(db, "runs/fmnist", EDM2_DB_JSON, &st);
  ASSERT_OK(st);
  ASSERT_TRUE(json != NULL);
  ASSERT_CONTAINS(json, "9007199254740993"); /* exact, not rounded through a double */
  cJSON *root = cJSON_Parse(json);
  free(json);
  ASSERT_TRUE(root != NULL);
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
  const cJSON *best = cJSON_GetObjectItemCaseSensitive(root, "best");
  int nrows = cJSON_GetArraySize(rows), nbest = cJSON_GetArraySize(best);
  int nulls_ok = 1, keys_ok = 1, half = 0, rule = 0;
  static const char *keys[] = {"run", "nimg", "sigma_rel", "half_life", "tensor_rule", "guidance",
                               "gnet", "metric", "value", "num", "seed", "repeat"};
  const cJSON *o;
  cJSON_ArrayForEach(o, rows) {
    keys_ok &= cJSON_GetArraySize(o) == 12;
    for (int k = 0; k < 12; k++) keys_ok &= cJSON_HasObjectItem(o, keys[k]);
    const cJSON *sr = cJSON_GetObjectItem(o, "sigma_rel"), *hl = cJSON_GetObjectItem(o, "half_life"),
                *tr = cJSON_GetObjectItem(o, "tensor_rule"), *gn = cJSON_GetObjectItem(o, "gnet");
    if (cJSON_IsNumber(hl)) {
      half++;
      nulls_ok &= cJSON_IsNull(sr) && hl->valuedouble == 2 << 20 && cJSON_IsNull(tr) && cJSON_IsNull(gn);
    } else if (cJSON_IsString(tr)) {
      rule++;
      nulls_ok &= sr->valuedouble == 0.1 && cJSON_IsNull(hl) && !strcmp(tr->valuestring, "abcdef01") &&
                  !strcmp(gn->valuestring, "runs/xs/phema.h5") &&
                  cJSON_GetObjectItem(o, "guidance")->valuedouble == 1.4;
    } else {
      nulls_ok &= cJSON_IsNumber(sr) && cJSON_IsNull(hl) && cJSON_IsNull(tr) && cJSON_IsNull(gn) &&
                  cJSON_GetObjectItem(o, "guidance")->valuedouble == 1.0;
    }
  }
  /* Rows ordered by guidance first: the guided one comes after all unguided ones. */
  const cJSON *last = cJSON_GetArrayItem(rows, nrows - 1);
  int order_ok = last && cJSON_IsString(cJSON_GetObjectItem(last, "tensor_rule"));
  const cJSON *b0 = cJSON_GetArrayItem(best, 0);
  int best_ok = 0;
  double sbest = -1;
  if (b0) {
    sbest = cJSON_GetObjectItem(b0, "sigma_rel_best")->valuedouble;
    best_ok = !strcmp(cJSON_GetObjectItem(b0, "fit")->valuestring, "parabola") &&
              cJSON_GetObjectItem(b0, "points")->valueint == 5 &&
              cJSON_IsNull(cJSON_GetObjectItem(b0, "gnet")) &&
              cJSON_IsNull(cJSON_GetObjectItem(b0, "tensor_rule")) &&
              cJSON_GetObjectItem(b0, "sigma_rel_min")->valuedouble == 0.1 &&
              cJSON_GetObjectItem(b0, "nimg")->valuedouble == (double)(512LL << 20);
  }
  cJSON_Delete(root);
  ASSERT_EQ_INT(nrows, 12);
  ASSERT_EQ_INT(nbest, 2); /* the sweep, and the one-point per-tensor "sweep" */
  ASSERT_TRUE(keys_ok);
  ASSERT_TRUE(nulls_ok);
  ASSERT_EQ_INT(half, 1);
  ASSERT_EQ_INT(rule, 1);
  ASSERT_TRUE(order_ok);
  ASSERT_TRUE(best_ok);
  ASSERT_NEAR(sbest, 0.11, 1e-9);

  char *csv = write_to_string(db, NULL, EDM2_DB_CSV, &st);
  ASSERT_OK(st);
  static const char header[] = "run,nimg,sigma_rel,half_life,tensor_rule,guidance,gnet,metric,"
                               "value,num,seed,repeat,wall_s,code_version,created\n";
  int csv_ok = csv && !strncmp(csv, header, strlen(header)) &&
               strstr(csv, "\"runs/other,with \"\"quotes\"\"\",536870912,0.1,,,1,,fid,1,50000,0,0,") &&
               strstr(csv, "runs/fmnist,536870912,,2097152,,1,,fid,7.5,50000,9007199254740993,0,");
  int lines = 0;
  for (const char *c = csv; c && *c; c++) lines += *c == '\n';
  free(csv);
  ASSERT_TRUE(csv_ok);
  ASSERT_EQ_INT(lines, 14);

  char *table = write_to_string(db, "runs/fmnist", EDM2_DB_TABLE, &st);
  ASSERT_OK(st);
  int table_ok = table && strstr(table, "sigma_rel") && strstr(table, "512Mi") && strstr(table, "2Mi") &&
                 strstr(table, "best runs/fmnist fid guidance 1 gnet - nimg 512Mi rules - num 50000: "
                                   "sigma_rel 0.11 value 2 (parabola") &&
                 strstr(table, "(the measured minimum: few points, 1 point)") && !strstr(table, "runs/other");
  if (!table_ok) printf("%s", table ? table : "(null)");
  free(table);
  ASSERT_TRUE(table_ok);
  edm2_db_format fmt;
  ASSERT_OK(edm2_db_format_parse("csv", &fmt));
  ASSERT_EQ_INT(fmt, EDM2_DB_CSV);
  ASSERT_STATUS(edm2_db_format_parse("xml", &fmt), EC_EINVAL, "table, csv, json");
  edm2_db_close(&db);
}

TEST(newer_version_refused) {
  const char *path = test_path("newer.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_db_close(&db);
  ASSERT_EQ_INT(sql_exec(path, "PRAGMA user_version = 99"), SQLITE_OK);
  size_t n0 = 0, n1 = 0;
  char *before = slurp(path, &n0);
  ASSERT_STATUS(edm2_db_open(&db, path), EC_EFORMAT, "schema version 99 is newer");
  ASSERT_CONTAINS(ec_errmsg(), path);
  char *after = slurp(path, &n1);
  int same = before && after && n0 == n1 && !memcmp(before, after, n0);
  free(before);
  free(after);
  ASSERT_TRUE(db == NULL);
  ASSERT_TRUE(same);
}

TEST(foreign_sqlite_database_refused) {
  const char *path = test_path("foreign.db");
  ASSERT_EQ_INT(sql_exec(path, "CREATE TABLE t (x); INSERT INTO t VALUES (1)"), SQLITE_OK);
  edm2_db *db = NULL;
  ASSERT_STATUS(edm2_db_open(&db, path), EC_EFORMAT, "not an edm2c results database");
  ASSERT_CONTAINS(ec_errmsg(), path);
  ASSERT_EQ_INT(sql_int(path, "SELECT count(*) FROM t"), 1);
}

/* Version 1 of the schema exactly as it was: a file an older edm2c wrote. */
static const char schema_v1[] =
    "CREATE TABLE tensor_rules (hash TEXT PRIMARY KEY NOT NULL CHECK (hash <> ''),"
    "  rules TEXT NOT NULL);"
    "CREATE TABLE results (id INTEGER PRIMARY KEY, run TEXT NOT NULL CHECK (run <> ''),"
    "  nimg INTEGER NOT NULL CHECK (nimg >= 0),"
    "  sigma_rel REAL NOT NULL DEFAULT 0 CHECK (sigma_rel >= 0),"
    "  half_life REAL NOT NULL DEFAULT 0 CHECK (half_life >= 0),"
    "  tensor_rule TEXT NOT NULL DEFAULT '', guidance REAL NOT NULL DEFAULT 1 CHECK (guidance > 0),"
    "  gnet TEXT NOT NULL DEFAULT '', metric TEXT NOT NULL CHECK (metric <> ''),"
    "  value REAL NOT NULL, num INTEGER NOT NULL CHECK (num >= 0), seed INTEGER NOT NULL,"
    "  repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat >= 0), wall_s REAL NOT NULL DEFAULT 0,"
    "  code_version TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,"
    "  UNIQUE (run, metric, guidance, gnet, nimg, tensor_rule, sigma_rel, half_life, repeat, num, seed));"
    "INSERT INTO results (run, nimg, half_life, metric, value, num, seed, code_version, created)"
    "  VALUES ('runs/old', 1024, 4096, 'val-loss', 0.25, 1000, 3, '0.0.9', '2024-01-02T03:04:05Z');"
    "PRAGMA application_id = 1697801314; PRAGMA user_version = 1;";

TEST(migrates_version_1) {
  const char *path = test_path("v1.db");
  ASSERT_EQ_INT(sql_exec(path, schema_v1), SQLITE_OK);
  ASSERT_EQ_INT(sql_int(path, "PRAGMA user_version"), 1);
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  int old_ok = l.n == 1 && !strcmp(l.rows[0].run, "runs/old") && l.rows[0].half_life == 4096 &&
               l.rows[0].sigma_rel == 0 && !strcmp(l.rows[0].created, "2024-01-02T03:04:05Z");
  edm2_result_list_free(&l);
  ASSERT_TRUE(old_ok);
  /* The old row still holds its key. */
  edm2_result r = EDM2_RESULT_INIT;
  r.run = "runs/old", r.nimg = 1024, r.half_life = 4096, r.metric = "val-loss", r.num = 1000, r.seed = 3;
  r.value = 1;
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EEXIST, "val-loss");
  edm2_db_close(&db);
  ASSERT_EQ_INT(sql_int(path, "PRAGMA user_version"), EDM2_DB_SCHEMA_VERSION);
  /* Version 2's view shows the sentinels as NULL. */
  ASSERT_EQ_INT(sql_int(path, "SELECT count(*) FROM results_view WHERE sigma_rel IS NULL AND "
                              "half_life = 4096 AND tensor_rule IS NULL AND gnet IS NULL"),
                1);
  /* Opening again changes nothing. */
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_db_close(&db);
  ASSERT_EQ_INT(sql_int(path, "PRAGMA user_version"), EDM2_DB_SCHEMA_VERSION);
}

/* edm2-plot's open: reads what is there and never writes it, whatever happens. */
TEST(readonly_open_reads_and_never_writes) {
  const char *path = test_path("ro.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result r = sample(0.13, 0, 2.5);
  ASSERT_OK(edm2_db_put(db, &r, 0));
  edm2_db_close(&db);
  size_t n0, n1;
  char *before = slurp(path, &n0);
  ASSERT_OK(edm2_db_open_readonly(&db, path));
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  ASSERT_EQ_INT(l.n, 1);
  edm2_result_list_free(&l);
  r = sample(0.2, 0, 3.0);
  ASSERT_STATUS(edm2_db_put(db, &r, 0), EC_EIO, "ro.db");
  edm2_db_close(&db);
  char *after = slurp(path, &n1);
  int same = before && after && n0 == n1 && !memcmp(before, after, n0);
  free(before);
  free(after);
  ASSERT_TRUE(same);

  /* A writer that died left committed rows in -wal, and the -shm file SQLite reads them with
   * cannot be made (a directory in its way, as in a directory the user may not write): they are
   * read all the same. */
  pid_t pid = fork();
  if (pid == 0) {
    edm2_db *w = NULL;
    edm2_result x = sample(0.3, 0, 4.0);
    _exit(edm2_db_open(&w, path) || edm2_db_put(w, &x, 0) ? 1 : 0); /* no close: no checkpoint */
  }
  int wst = 0;
  ASSERT_TRUE(pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
  char shm[4200], wal[4200];
  snprintf(shm, sizeof shm, "%s-shm", path);
  snprintf(wal, sizeof wal, "%s-wal", path);
  ASSERT_TRUE(file_exists(wal));
  unlink(shm);
  ASSERT_TRUE(mkdir(shm, 0755) == 0);
  ASSERT_OK(edm2_db_open_readonly(&db, path));
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  ASSERT_EQ_INT(l.n, 2);
  edm2_result_list_free(&l);
  edm2_db_close(&db);
  ASSERT_TRUE(file_exists(wal)); /* still the dead writer's to recover; nothing checkpointed */
  rmdir(shm);

  /* Refusals that leave everything as it was. */
  ASSERT_STATUS(edm2_db_open_readonly(&db, test_path("none.db")), EC_ENOENT, "none.db does not exist");
  ASSERT_TRUE(!file_exists(test_path("none.db")));
  test_write_file(test_path("empty.db"), "", 0);
  ASSERT_STATUS(edm2_db_open_readonly(&db, test_path("empty.db")), EC_EFORMAT, "an empty database");
  ASSERT_EQ_INT(sql_int(test_path("empty.db"), "SELECT count(*) FROM sqlite_master"), 0);
  const char *v1 = test_path("ro-v1.db");
  ASSERT_EQ_INT(sql_exec(v1, schema_v1), SQLITE_OK);
  ASSERT_STATUS(edm2_db_open_readonly(&db, v1), EC_EFORMAT, "older than this edm2c's");
  ASSERT_EQ_INT(sql_int(v1, "PRAGMA user_version"), 1);
  ASSERT_TRUE(db == NULL);
}

TEST(garbage_file_left_untouched) {
  const char *path = test_path("garbage.db");
  char junk[10000];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((x = x * 1664525u + 1013904223u) >> 24);
  ASSERT_EQ_INT(test_write_file(path, junk, sizeof junk), 0);
  edm2_db *db = NULL;
  ASSERT_STATUS(edm2_db_open(&db, path), EC_EFORMAT, "not an SQLite database");
  ASSERT_CONTAINS(ec_errmsg(), path);
  ASSERT_CONTAINS(ec_errmsg(), "left unchanged");
  size_t n = 0;
  char *after = slurp(path, &n);
  int same = after && n == sizeof junk && !memcmp(after, junk, n);
  free(after);
  ASSERT_TRUE(same);
  ASSERT_TRUE(db == NULL);
  ASSERT_TRUE(!file_exists(test_path("garbage.db-wal")));
}

TEST(corrupt_page_detected_and_left_untouched) {
  const char *path = test_path("corrupt.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  ASSERT_OK(edm2_db_begin(db));
  for (int i = 0; i < 2000; i++) {
    edm2_result r = sample(0.05 + 0.001 * (i % 200), i / 200, 1.0 + i);
    r.run = "runs/a-long-run-name-so-that-the-rows-fill-several-pages";
    ASSERT_OK(edm2_db_put(db, &r, 0));
  }
  ASSERT_OK(edm2_db_commit(db));
  edm2_db_close(&db);
  size_t n = 0;
  char *orig = slurp(path, &n);
  ASSERT_TRUE(orig != NULL);
  int64_t page = sql_int(path, "PRAGMA page_size");
  size_t npages = n / (size_t)page;
  ASSERT_TRUE(npages >= 8);
  /* A page in the middle overwritten, as a bad sector or a stray write would. */
  memset(orig + (npages / 2) * (size_t)page, 0xA5, (size_t)page);
  int wrote = test_write_file(path, orig, n);
  ASSERT_EQ_INT(wrote, 0);
  ec_status st = edm2_db_open(&db, path);
  size_t n2 = 0;
  char *after = slurp(path, &n2);
  int same = after && n2 == n && !memcmp(after, orig, n);
  free(after);
  free(orig);
  ASSERT_EQ_INT(st, EC_EFORMAT);
  ASSERT_CONTAINS(ec_errmsg(), path);
  ASSERT_CONTAINS(ec_errmsg(), "corrupt");
  ASSERT_CONTAINS(ec_errmsg(), "left unchanged");
  ASSERT_TRUE(db == NULL);
  ASSERT_TRUE(same);
}

/* One writer process: `count` rows of its own, its own transactions or batches of 25. */
static int writer(const char *path, int id, int count) {
  edm2_db *db = NULL;
  ec_status st = edm2_db_open(&db, path);
  for (int i = 0; !st && i < count; i++) {
    int batch = id % 2 == 1;
    if (batch && i % 25 == 0) st = edm2_db_begin(db);
    edm2_result r = sample(0.01 + 0.001 * (i % 100), i / 100, id * 1000.0 + i);
    r.seed = id;
    if (!st) st = edm2_db_put(db, &r, 0);
    /* Everyone also writes one shared key: exactly one succeeds, the others see EC_EEXIST. */
    if (!st && i == count / 2) {
      edm2_result shared = sample(0.9, 0, id);
      st = edm2_db_put(db, &shared, 0);
      if (st == EC_EEXIST) st = EC_OK;
    }
    if (!st && batch && (i % 25 == 24 || i == count - 1)) st = edm2_db_commit(db);
  }
  if (st) fprintf(stderr, "writer %d: %s\n", id, ec_errmsg());
  edm2_db_close(&db);
  return st ? 1 : 0;
}

TEST(concurrent_writers) {
  const char *path = test_path("concurrent.db"); /* not there yet: the writers race to create it */
  enum { WRITERS = 4, ROWS = 1000 };
  pid_t pid[WRITERS];
  /* The writers wait on a pipe until all exist, so that they create the file at the same time. */
  int gate[2];
  ASSERT_EQ_INT(pipe(gate), 0);
  fflush(stdout);
  fflush(stderr);
  for (int w = 0; w < WRITERS; w++) {
    pid[w] = fork();
    if (pid[w] == 0) {
      char c;
      close(gate[1]);
      if (read(gate[0], &c, 1) < 0) _exit(2);
      _exit(writer(path, w, ROWS)); /* _exit: the harness's atexit belongs to the parent */
    }
  }
  close(gate[0]);
  close(gate[1]); /* read() returns 0 in every writer: go */
  for (int w = 0; w < WRITERS; w++) ASSERT_TRUE(pid[w] > 0);
  int failures = 0;
  for (int w = 0; w < WRITERS; w++) {
    int status = 0;
    if (waitpid(pid[w], &status, 0) != pid[w] || !WIFEXITED(status) || WEXITSTATUS(status)) failures++;
  }
  ASSERT_EQ_INT(failures, 0);
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  edm2_result_list l = {0};
  ASSERT_OK(edm2_db_rows(db, NULL, &l));
  size_t n = l.n;
  double sum = 0;
  for (size_t i = 0; i < l.n; i++)
    if (l.rows[i].sigma_rel != 0.9) sum += l.rows[i].value;
  edm2_result_list_free(&l);
  edm2_db_close(&db);
  ASSERT_EQ_INT(n, WRITERS * ROWS + 1);
  double want = 0;
  for (int w = 0; w < WRITERS; w++)
    for (int i = 0; i < ROWS; i++) want += w * 1000.0 + i;
  ASSERT_NEAR(sum, want, 0);
}

/* Every allocation that can fail, failing in turn: a clean EC_ENOMEM, nothing leaked (valgrind). */
TEST(allocation_failures_clean_up) {
  const char *path = test_path("alloc.db");
  edm2_db *db = NULL;
  ASSERT_OK(edm2_db_open(&db, path));
  for (int i = 0; i < 30; i++) {
    edm2_result r = sample(0.05 + 0.01 * (i % 10), i / 10, 1 + (i % 10 - 4) * (i % 10 - 4));
    ASSERT_OK(edm2_db_put(db, &r, 0));
  }
  int nomem = 0, other = 0, done = 0;
  for (long n = 0; !done && n < 100000; n++) {
    done = 1;
    for (int fmt = 0; fmt < 3; fmt++) {
      char *buf = NULL;
      size_t len = 0;
      FILE *f = open_memstream(&buf, &len);
      ec_alloc_fail_after(n);
      ec_status st = edm2_db_write(db, NULL, f, (edm2_db_format)fmt);
      ec_alloc_fail_after(-1);
      fclose(f);
      free(buf);
      nomem += st == EC_ENOMEM;
      other += st != EC_OK && st != EC_ENOMEM;
      done &= st == EC_OK;
    }
    edm2_db *again = NULL;
    ec_alloc_fail_after(n);
    ec_status st = edm2_db_open(&again, path);
    ec_alloc_fail_after(-1);
    edm2_db_close(&again);
    nomem += st == EC_ENOMEM;
    other += st != EC_OK && st != EC_ENOMEM;
    done &= st == EC_OK;
  }
  edm2_db_close(&db);
  ASSERT_EQ_INT(other, 0);
  ASSERT_TRUE(done);
  ASSERT_TRUE(nomem > 0);
}

/* ---- best σ_rel ------------------------------------------------------------------------------- */

TEST(fit_recovers_exact_parabolas) {
  /* EDM2's sweep grid; vertices between grid points and on one. */
  static const double vertices[] = {0.137, 0.1, 0.0623, 0.2251};
  for (int v = 0; v < 4; v++) {
    double xs[64], ys[64];
    int n = 0;
    for (double s = 0.010; s <= 0.2505; s += 0.005, n++) {
      xs[n] = s;
      ys[n] = 2.5 + 40 * (s - vertices[v]) * (s - vertices[v]);
    }
    edm2_fit f;
    ASSERT_OK(edm2_fit_min(xs, ys, n, &f));
    ASSERT_EQ_INT(f.fit, EDM2_FIT_PARABOLA);
    ASSERT_EQ_INT(f.fitted, 5);
    ASSERT_EQ_INT(f.points, n);
    ASSERT_NEAR(f.sigma_best, vertices[v], 1e-9);
    ASSERT_NEAR(f.value_best, 2.5, 1e-9);
    ASSERT_TRUE(fabs(f.sigma_min - vertices[v]) <= 0.0025 + 1e-12);
  }
  /* Exactly three points, uneven spacing, the minimum in the middle. */
  double xs[3] = {0.05, 0.12, 0.3}, ys[3];
  for (int i = 0; i < 3; i++) ys[i] = 1e3 + 7 * (xs[i] - 0.1) * (xs[i] - 0.1);
  edm2_fit f;
  ASSERT_OK(edm2_fit_min(xs, ys, 3, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_PARABOLA);
  ASSERT_EQ_INT(f.fitted, 3);
  ASSERT_NEAR(f.sigma_best, 0.1, 1e-9);
  ASSERT_NEAR(f.value_best, 1e3, 1e-9);
  ASSERT_STR_EQ(edm2_fit_name(f.fit), "parabola");
}

TEST(fit_noisy_data) {
  uint32_t x = 7;
  double xs[25], ys[25];
  for (int i = 0; i < 25; i++) {
    xs[i] = 0.01 * (i + 1);
    double u = (double)((x = x * 1664525u + 1013904223u) >> 8) / (1 << 24) - 0.5;
    ys[i] = 3 + 50 * (xs[i] - 0.131) * (xs[i] - 0.131) + 0.002 * u;
  }
  edm2_fit f;
  ASSERT_OK(edm2_fit_min(xs, ys, 25, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_PARABOLA);
  ASSERT_NEAR(f.sigma_best, 0.131, 0.005);
  ASSERT_NEAR(f.value_best, 3, 0.002);
  /* The vertex lies within the fitted points and is not above the measured minimum by much. */
  ASSERT_TRUE(f.sigma_best >= f.sigma_min - 0.02 && f.sigma_best <= f.sigma_min + 0.02);
  ASSERT_TRUE(f.value_best <= f.value_min + 0.002);
}

TEST(fit_edges_few_points_and_failures) {
  double xs[6] = {0.05, 0.1, 0.15, 0.2, 0.25, 0.3};
  double up[6] = {1, 2, 3, 4, 5, 6}, down[6] = {6, 5, 4, 3, 2, 1}, flat[6] = {2, 2, 2, 2, 2, 2};
  edm2_fit f;
  ASSERT_OK(edm2_fit_min(xs, up, 6, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_EDGE);
  ASSERT_TRUE(f.sigma_best == 0.05 && f.value_best == 1 && f.sigma_min == 0.05 && f.fitted == 0);
  ASSERT_OK(edm2_fit_min(xs, down, 6, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_EDGE);
  ASSERT_TRUE(f.sigma_best == 0.3 && f.value_best == 1);
  ASSERT_STR_EQ(edm2_fit_name(f.fit), "edge");
  ASSERT_OK(edm2_fit_min(xs, flat, 6, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_FLAT);
  ASSERT_TRUE(f.sigma_best == 0.05 && f.value_best == 2);
  /* Fewer than 3 points: the measured minimum. */
  ASSERT_OK(edm2_fit_min(xs, down, 2, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_FEW);
  ASSERT_TRUE(f.sigma_best == 0.1 && f.value_best == 5 && f.points == 2);
  ASSERT_OK(edm2_fit_min(xs, up, 1, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_FEW);
  ASSERT_TRUE(f.sigma_best == 0.05 && f.value_best == 1 && f.points == 1);
  /* A dip between two humps: the least-squares parabola opens downward. */
  double dip[5] = {0.5, 1.5, 0.0, 1.5, 0.5};
  ASSERT_OK(edm2_fit_min(xs, dip, 5, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_NOT_CONVEX);
  ASSERT_TRUE(f.sigma_best == 0.15 && f.value_best == 0);
  ASSERT_STR_EQ(edm2_fit_name(f.fit), "not convex");
  /* A minimum next to a steep rise: the fitted vertex lies left of every point. */
  double lopsided[4] = {0.3, 0.2, 0.7, 0.8};
  ASSERT_OK(edm2_fit_min(xs, lopsided, 4, &f));
  ASSERT_EQ_INT(f.fit, EDM2_FIT_OUTSIDE);
  ASSERT_TRUE(f.sigma_best == 0.1 && f.value_best == 0.2 && f.fitted == 4);
  /* Bad input. */
  double unsorted[3] = {0.1, 0.1, 0.2};
  ASSERT_STATUS(edm2_fit_min(unsorted, up, 3, &f), EC_EINVAL, "not increasing");
  double nan_vals[3] = {1, NAN, 2};
  ASSERT_STATUS(edm2_fit_min(xs, nan_vals, 3, &f), EC_EINVAL, "not finite");
  ASSERT_STATUS(edm2_fit_min(xs, up, 0, &f), EC_EINVAL, "no points");
}

TEST(best_sigma_groups_and_averages) {
  /* Rows in scrambled order: two metrics, one sweep with repeats, a half-life row (no sweep),
   * and the same σ at another image count (another sweep). */
  edm2_result rows[32];
  size_t n = 0;
  static const double sig[5] = {0.20, 0.05, 0.15, 0.10, 0.25};
  for (int i = 0; i < 5; i++)
    for (int rep = 0; rep < 3; rep++) {
      double s = sig[i];
      rows[n++] = sample(s, rep, 1 + 10 * (s - 0.14) * (s - 0.14) + 0.001 * (rep - 1));
    }
  for (int i = 0; i < 4; i++) {
    rows[n] = sample(0.05 * (i + 1), 0, 10.0 - i); /* decreasing: minimum at the edge */
    rows[n++].metric = "fd_dinov2";
  }
  rows[n] = sample(0, 0, -100); /* half-life only: ignored, even though it is the smallest */
  rows[n++].half_life = 1 << 20;
  rows[n] = sample(0.1, 0, 5);
  rows[n++].num = 10000;
  edm2_best_list b = {0};
  ASSERT_OK(edm2_best_sigma(rows, n, &b));
  ASSERT_EQ_INT(b.n, 3);
  /* fd_dinov2 < fid; within fid, num 10000 < 50000. */
  const edm2_best *d = &b.best[0], *f10 = &b.best[1], *f = &b.best[2];
  int keys_ok = !strcmp(d->metric, "fd_dinov2") && !strcmp(f10->metric, "fid") && f10->num == 10000 &&
                f->num == 50000 && !strcmp(f->gnet, "") && !strcmp(f->tensor_rule, "") &&
                f->guidance == 1 && f->nimg == (512LL << 20) && !strcmp(f->run, "runs/fmnist");
  int d_ok = d->fit.fit == EDM2_FIT_EDGE && d->fit.sigma_best == 0.2 && d->fit.value_best == 7;
  int f10_ok = f10->fit.fit == EDM2_FIT_FEW && f10->fit.points == 1;
  int pts_ok = f->fit.points == 5;
  static const double sorted[5] = {0.05, 0.10, 0.15, 0.20, 0.25};
  for (int i = 0; pts_ok && i < 5; i++) {
    const edm2_sigma_point *p = &f->points[i];
    double s = sorted[i], mid = 1 + 10 * (s - 0.14) * (s - 0.14);
    pts_ok = p->sigma_rel == s && p->count == 3 && fabs(p->mean - mid) < 1e-12 &&
             fabs(p->min - (mid - 0.001)) < 1e-12 && fabs(p->max - (mid + 0.001)) < 1e-12;
  }
  edm2_fit fit = f->fit;
  edm2_best_list_free(&b);
  ASSERT_TRUE(keys_ok);
  ASSERT_TRUE(d_ok);
  ASSERT_TRUE(f10_ok);
  ASSERT_TRUE(pts_ok);
  ASSERT_EQ_INT(fit.fit, EDM2_FIT_PARABOLA);
  ASSERT_NEAR(fit.sigma_best, 0.14, 1e-9);
  ASSERT_NEAR(fit.value_best, 1, 1e-9);
  ASSERT_NEAR(fit.sigma_min, 0.15, 0);
  /* Nothing to do. */
  ASSERT_OK(edm2_best_sigma(rows, 0, &b));
  ASSERT_EQ_INT(b.n, 0);
  edm2_best_list_free(&b);
}

TEST_MAIN(create_and_reopen, open_reports_bad_paths, unique_key_and_redo, tensor_rules_stored_once,
          put_validates_fields, batch_commit_and_rollback, json_csv_table_and_sentinels,
          newer_version_refused, foreign_sqlite_database_refused, migrates_version_1, readonly_open_reads_and_never_writes,
          garbage_file_left_untouched, corrupt_page_detected_and_left_untouched, concurrent_writers,
          allocation_failures_clean_up, fit_recovers_exact_parabolas, fit_noisy_data, fit_edges_few_points_and_failures,
          best_sigma_groups_and_averages)
