/* log.jsonl reading (plots/runlog.h). */
#include "plots/runlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void runlog_free(runlog *l) {
  for (int i = 0; i < l->n; i++) cJSON_Delete(l->rec[i]);
  free(l->rec);
  l->rec = NULL;
  l->n = 0;
}

ec_status runlog_read(runlog *l, const char *run) {
  memset(l, 0, sizeof *l);
  snprintf(l->path, sizeof l->path, "%s/log.jsonl", run);
  FILE *f = fopen(l->path, "r");
  if (!f) return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: %s", l->path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, have = 0;
  ec_status st = EC_OK;
  while (!st && getline(&line, &cap, f) > 0) {
    lineno++;
    if (line[strspn(line, " \t\r\n")] == 0) continue;
    cJSON *o = cJSON_Parse(line);
    if (!o || !cJSON_IsObject(o)) {
      cJSON_Delete(o);
      st = ec_err(EC_EFORMAT, "%s:%d: not a JSON object", l->path, lineno);
      break;
    }
    if (l->n == have) {
      have = have ? 2 * have : 256;
      cJSON **r = realloc(l->rec, (size_t)have * sizeof *r);
      if (!r) {
        cJSON_Delete(o);
        st = ec_err(EC_ENOMEM, "out of memory");
        break;
      }
      l->rec = r;
    }
    l->rec[l->n++] = o;
  }
  free(line);
  fclose(f);
  if (st) runlog_free(l);
  return st;
}

static const cJSON *lookup(const cJSON *o, const char *path) {
  char key[128];
  while (o && *path) {
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (n >= sizeof key) return NULL;
    memcpy(key, path, n);
    key[n] = 0;
    o = cJSON_GetObjectItemCaseSensitive(o, key);
    path = dot ? dot + 1 : path + n;
  }
  return o;
}

double runlog_get(const runlog *l, int i, const char *path) {
  const cJSON *v = lookup(l->rec[i], path);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int runlog_keys(const runlog *l, const char *path, char (*names)[64], int cap) {
  for (int i = 0; i < l->n; i++) {
    const cJSON *o = lookup(l->rec[i], path);
    if (!cJSON_IsObject(o)) continue;
    int k = 0;
    for (const cJSON *c = o->child; c && k < cap; c = c->next) snprintf(names[k++], 64, "%s", c->string);
    return k;
  }
  return 0;
}
