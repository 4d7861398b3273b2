/* Training configuration: defaults, checks, JSON (see traincfg.h). */
#include "trainer/traincfg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

void edm2_traincfg_from_preset(edm2_traincfg *c, const edm2_preset *p) {
  memset(c, 0, sizeof *c);
  snprintf(c->preset, sizeof c->preset, "%s", p->name);
  c->net = p->net;
  snprintf(c->data, sizeof c->data, "%s", strcmp(p->name, "fmnist") ? "" : "fashion-mnist");
  c->cond = 1;
  c->duration = p->duration;
  c->batch = p->batch;
  c->batch_gpu = 0;
  c->lr_ref = p->lr_ref;
  c->decay = p->decay;
  c->rampup = p->rampup;
  c->P_mean = p->P_mean;
  c->P_std = p->P_std;
  c->status = p->status;
  c->snapshot = p->snapshot;
  c->checkpoint = p->checkpoint;
  c->magnitudes = 0;
  c->n_ema = 2;
  c->ema[0] = 0.05;
  c->ema[1] = 0.10;
  c->seed = 0;
  c->threads = 1;
}

static ec_status multiple(const char *opt, int64_t v, int64_t of, const char *what) {
  if (v < 0) return ec_err(EC_EINVAL, "%s must not be negative (got %lld)", opt, (long long)v);
  if (v % of)
    return ec_err(EC_EINVAL, "%s %lld is not a multiple of %s (%lld)", opt, (long long)v, what, (long long)of);
  return EC_OK;
}

ec_status edm2_traincfg_check(const edm2_traincfg *c) {
  ec_status st;
  if (c->batch < 1) return ec_err(EC_EINVAL, "--batch must be positive (got %lld)", (long long)c->batch);
  if (c->batch_gpu < 0) return ec_err(EC_EINVAL, "--batch-gpu must not be negative");
  if (c->batch_gpu && c->batch % c->batch_gpu)
    return ec_err(EC_EINVAL, "--batch %lld is not a multiple of --batch-gpu %lld (the accumulation rounds)",
                  (long long)c->batch, (long long)c->batch_gpu);
  if (c->duration < 1) return ec_err(EC_EINVAL, "--duration must be positive");
  if ((st = multiple("--duration", c->duration, c->batch, "the batch")) ||
      (st = multiple("--status", c->status, c->batch, "the batch")) ||
      (st = multiple("--snapshot", c->snapshot, c->batch, "the batch")) ||
      (st = multiple("--snapshot", c->snapshot, 1024, "1024")) ||
      (st = multiple("--checkpoint", c->checkpoint, c->batch, "the batch")) ||
      (st = multiple("--checkpoint", c->checkpoint, 1024, "1024")) ||
      (st = multiple("--magnitudes", c->magnitudes, c->batch, "the batch")))
    return st;
  if (c->magnitudes > 0 && (c->status <= 0 || c->magnitudes % c->status))
    return ec_err(EC_EINVAL, "--magnitudes %lld is not a multiple of --status %lld (they are logged on status lines)",
                  (long long)c->magnitudes, (long long)c->status);
  if (!(c->lr_ref > 0) || !isfinite(c->lr_ref)) return ec_err(EC_EINVAL, "--lr must be positive (got %g)", c->lr_ref);
  if (c->decay < 0) return ec_err(EC_EINVAL, "--decay must not be negative");
  if (c->rampup < 0) return ec_err(EC_EINVAL, "--rampup must not be negative");
  if (!(c->P_std > 0) || !isfinite(c->P_std)) return ec_err(EC_EINVAL, "--P_std must be positive (got %g)", c->P_std);
  if (!isfinite(c->P_mean)) return ec_err(EC_EINVAL, "--P_mean must be finite");
  if (!(c->net.dropout >= 0 && c->net.dropout < 1))
    return ec_err(EC_EINVAL, "--dropout must lie in [0, 1) (got %g)", c->net.dropout);
  if (c->seed < 0) return ec_err(EC_EINVAL, "--seed must not be negative");
  if (c->threads < 1) return ec_err(EC_EINVAL, "--threads must be positive");
  return edm2_netcfg_check(&c->net, "network");
}

char *edm2_traincfg_to_json(const edm2_traincfg *c) {
  char *net = edm2_netcfg_to_json(&c->net);
  cJSON *o = net ? cJSON_Parse(net) : NULL;
  free(net);
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "preset", c->preset);
  cJSON_AddStringToObject(o, "data", c->data);
  cJSON_AddBoolToObject(o, "cond", c->cond);
  cJSON_AddNumberToObject(o, "duration", (double)c->duration);
  cJSON_AddNumberToObject(o, "batch", (double)c->batch);
  cJSON_AddNumberToObject(o, "batch_gpu", (double)c->batch_gpu);
  cJSON_AddNumberToObject(o, "lr", c->lr_ref);
  cJSON_AddNumberToObject(o, "decay", (double)c->decay);
  cJSON_AddNumberToObject(o, "rampup", (double)c->rampup);
  cJSON_AddNumberToObject(o, "P_mean", c->P_mean);
  cJSON_AddNumberToObject(o, "P_std", c->P_std);
  cJSON_AddNumberToObject(o, "status", (double)c->status);
  cJSON_AddNumberToObject(o, "snapshot", (double)c->snapshot);
  cJSON_AddNumberToObject(o, "checkpoint", (double)c->checkpoint);
  cJSON_AddNumberToObject(o, "magnitudes", (double)c->magnitudes);
  cJSON *e = cJSON_AddArrayToObject(o, "ema");
  for (int i = 0; e && i < c->n_ema; i++) cJSON_AddItemToArray(e, cJSON_CreateNumber(c->ema[i]));
  cJSON_AddNumberToObject(o, "seed", (double)c->seed);
  cJSON_AddNumberToObject(o, "threads", c->threads);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static ec_status get_num(const cJSON *o, const char *key, const char *what, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v)) return ec_err(EC_EFORMAT, "%s: '%s' is missing or not a number", what, key);
  *out = v->valuedouble;
  return EC_OK;
}

static ec_status get_i64(const cJSON *o, const char *key, const char *what, int64_t *out) {
  double d = 0;
  ec_status st = get_num(o, key, what, &d);
  if (st) return st;
  if (d != floor(d) || fabs(d) > 9007199254740992.0)
    return ec_err(EC_EFORMAT, "%s: '%s' must be an integer (got %g)", what, key, d);
  *out = (int64_t)d;
  return EC_OK;
}

static ec_status get_str(const cJSON *o, const char *key, const char *what, char *out, size_t size) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsString(v)) return ec_err(EC_EFORMAT, "%s: '%s' is missing or not a string", what, key);
  if (strlen(v->valuestring) >= size) return ec_err(EC_EFORMAT, "%s: '%s' is too long", what, key);
  snprintf(out, size, "%s", v->valuestring);
  return EC_OK;
}

ec_status edm2_traincfg_from_json(edm2_traincfg *c, const char *json, const char *what) {
  memset(c, 0, sizeof *c);
  cJSON *o = cJSON_Parse(json);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return ec_err(EC_EFORMAT, "%s: not a JSON object", what);
  }
  ec_status st = get_str(o, "preset", what, c->preset, sizeof c->preset);
  if (!st) {
    const edm2_preset *p = c->preset[0] ? edm2_preset_find(c->preset) : NULL;
    if (c->preset[0] && !p) st = ec_err(EC_EFORMAT, "%s: unknown preset '%s'", what, c->preset);
    else if (p) c->net = p->net;
    else edm2_netcfg_default(&c->net);
  }
  if (!st) st = edm2_netcfg_apply_json(&c->net, json, what, 0);
  int64_t threads = 1;
  if (!st) st = get_str(o, "data", what, c->data, sizeof c->data);
  const cJSON *cond = cJSON_GetObjectItemCaseSensitive(o, "cond");
  if (!st && !cJSON_IsBool(cond)) st = ec_err(EC_EFORMAT, "%s: 'cond' is missing or not a boolean", what);
  if (!st) c->cond = cJSON_IsTrue(cond);
  if (!st) st = get_i64(o, "duration", what, &c->duration);
  if (!st) st = get_i64(o, "batch", what, &c->batch);
  if (!st) st = get_i64(o, "batch_gpu", what, &c->batch_gpu);
  if (!st) st = get_num(o, "lr", what, &c->lr_ref);
  if (!st) st = get_i64(o, "decay", what, &c->decay);
  if (!st) st = get_i64(o, "rampup", what, &c->rampup);
  if (!st) st = get_num(o, "P_mean", what, &c->P_mean);
  if (!st) st = get_num(o, "P_std", what, &c->P_std);
  if (!st) st = get_i64(o, "status", what, &c->status);
  if (!st) st = get_i64(o, "snapshot", what, &c->snapshot);
  if (!st) st = get_i64(o, "checkpoint", what, &c->checkpoint);
  if (!st) st = get_i64(o, "magnitudes", what, &c->magnitudes);
  if (!st) st = get_i64(o, "seed", what, &c->seed);
  if (!st) st = get_i64(o, "threads", what, &threads);
  if (!st) c->threads = (int)threads;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "ema");
  if (!st && (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < 1 || cJSON_GetArraySize(e) > EDM2_EMA_MAX))
    st = ec_err(EC_EFORMAT, "%s: 'ema' must be a list of 1 to %d numbers", what, EDM2_EMA_MAX);
  for (int i = 0; !st && i < cJSON_GetArraySize(e); i++) {
    const cJSON *v = cJSON_GetArrayItem(e, i);
    if (!cJSON_IsNumber(v)) st = ec_err(EC_EFORMAT, "%s: 'ema' must hold numbers", what);
    else c->ema[c->n_ema++] = v->valuedouble;
  }
  cJSON_Delete(o);
  return st;
}

ec_status edm2_traincfg_same_run(const edm2_traincfg *s, const edm2_traincfg *a, const char *where) {
#define DIFF(cond, fmt, ...)                                                                        \
  do {                                                                                              \
    if (cond)                                                                                       \
      return ec_err(EC_EINVAL, "%s holds a different run: " fmt " (use another --outdir, or the same settings)", \
                    where, __VA_ARGS__);                                                            \
  } while (0)
  if (!edm2_netcfg_equal(&s->net, &a->net)) {
    char *js = edm2_netcfg_to_json(&s->net), *ja = edm2_netcfg_to_json(&a->net);
    ec_status st = ec_err(EC_EINVAL, "%s holds a different run: its network is %s, this one %s (use another --outdir, or the same settings)",
                          where, js ? js : "?", ja ? ja : "?");
    free(js);
    free(ja);
    return st;
  }
  DIFF(strcmp(s->data, a->data), "data '%s', not '%s'", s->data, a->data);
  DIFF(s->cond != a->cond, "cond %s, not %s", s->cond ? "true" : "false", a->cond ? "true" : "false");
  DIFF(s->batch != a->batch, "batch %lld, not %lld", (long long)s->batch, (long long)a->batch);
  DIFF(s->lr_ref != a->lr_ref, "lr %g, not %g", s->lr_ref, a->lr_ref);
  DIFF(s->decay != a->decay, "decay %lld, not %lld", (long long)s->decay, (long long)a->decay);
  DIFF(s->rampup != a->rampup, "rampup %lld, not %lld", (long long)s->rampup, (long long)a->rampup);
  DIFF(s->P_mean != a->P_mean, "P_mean %g, not %g", s->P_mean, a->P_mean);
  DIFF(s->P_std != a->P_std, "P_std %g, not %g", s->P_std, a->P_std);
  DIFF(s->seed != a->seed, "seed %lld, not %lld", (long long)s->seed, (long long)a->seed);
  DIFF(s->n_ema != a->n_ema, "%d EMA profiles, not %d", s->n_ema, a->n_ema);
  for (int i = 0; i < s->n_ema; i++)
    DIFF(s->ema[i] != a->ema[i], "EMA profile %g, not %g", s->ema[i], a->ema[i]);
#undef DIFF
  return EC_OK;
}
