/* posthoc-ema --list; see cmd_list.h. Output formats are documented in docs/formats.md
 * ("posthoc-ema --list") and in posthoc-ema --help. */
#include "cmd_list.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "core/progress.h"
#include "posthoc/snapshot_dir.h"

static void on_progress(void *ctx, int64_t done, int64_t total) {
  ec_progress_update(ctx, done);
}

/* "0.050,0.100" */
static void profiles_str(const snap_summary *s, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->nprofiles && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, i ? ",%.3f" : "%.3f", s->sigma_rel[i]);
  if (!s->nprofiles) snprintf(buf, size, "-");
}

static void print_table(const snapdir *d, const snap_summary *sm, FILE *out) {
  int usable = 0;
  int64_t bytes = 0, first = -1, last = -1;
  for (int i = 0; i < d->n; i++) {
    usable += sm[i].usable;
    bytes += d->entries[i].bytes > 0 ? d->entries[i].bytes : 0;
    if (sm[i].usable) {
      if (first < 0) first = sm[i].nimg;
      last = sm[i].nimg;
    }
  }
  fprintf(out, "snapshots in %s: %d file%s, %d usable\n\n", d->dir, d->n, d->n == 1 ? "" : "s", usable);
  fprintf(out, "%14s  %-26s  %-14s  %7s  %13s  %-8s  %10s  %s\n", "nimg", "file", "profiles",
          "tensors", "params", "dtype", "size", "status");
  for (int i = 0; i < d->n; i++) {
    const snap_summary *s = &sm[i];
    char prof[256], size[32];
    profiles_str(s, prof, sizeof prof);
    ec_format_bytes(size, sizeof size, (double)(d->entries[i].bytes > 0 ? d->entries[i].bytes : 0));
    if (s->opened)
      fprintf(out, "%14lld  %-26s  %-14s  %7d  %13lld  %-8s  %10s  %s\n", (long long)s->nimg,
              d->entries[i].name, prof, s->ntensors, (long long)s->params, s->dtype, size,
              s->usable ? "ok" : "UNUSABLE");
    else
      fprintf(out, "%14lld  %-26s  %-14s  %7s  %13s  %-8s  %10s  %s\n", (long long)s->nimg,
              d->entries[i].name, "-", "-", "-", "-", size, "UNREADABLE");
  }
  char total[32], a[32], b[32];
  ec_format_bytes(total, sizeof total, (double)bytes);
  fprintf(out, "\ntotal: %d snapshot%s (%d usable), %s", d->n, d->n == 1 ? "" : "s", usable, total);
  if (first >= 0)
    fprintf(out, "; usable times %s .. %s images", ec_format_nimg(a, sizeof a, first),
            ec_format_nimg(b, sizeof b, last));
  fprintf(out, "\n");
}

static int print_json(const snapdir *d, const snap_summary *sm, const snap_problems *p, FILE *out) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "directory", d->dir);
  cJSON *snaps = cJSON_AddArrayToObject(root, "snapshots");
  cJSON *probs = cJSON_AddArrayToObject(root, "problems");
  for (int i = 0; sm && i < d->n; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", d->entries[i].name);
    cJSON_AddNumberToObject(o, "nimg", (double)sm[i].nimg);
    cJSON *pr = cJSON_AddArrayToObject(o, "profiles");
    for (int k = 0; k < sm[i].nprofiles; k++) cJSON_AddItemToArray(pr, cJSON_CreateNumber(sm[i].sigma_rel[k]));
    if (sm[i].opened) {
      cJSON_AddNumberToObject(o, "tensors", sm[i].ntensors);
      cJSON_AddNumberToObject(o, "params", (double)sm[i].params);
      cJSON_AddStringToObject(o, "dtype", sm[i].dtype);
    } else {
      cJSON_AddNullToObject(o, "tensors");
      cJSON_AddNullToObject(o, "params");
      cJSON_AddNullToObject(o, "dtype");
    }
    cJSON_AddNumberToObject(o, "bytes", (double)d->entries[i].bytes);
    cJSON_AddBoolToObject(o, "usable", sm[i].usable);
    cJSON_AddItemToArray(snaps, o);
  }
  for (int i = 0; i < p->n; i++) {
    const snap_problem *q = &p->items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "severity", q->severity == SNAP_ERROR ? "error" : q->severity == SNAP_NOTE ? "note" : "warning");
    if (q->file)
      cJSON_AddStringToObject(o, "file", q->file);
    else
      cJSON_AddNullToObject(o, "file");
    if (q->tensor)
      cJSON_AddStringToObject(o, "tensor", q->tensor);
    else
      cJSON_AddNullToObject(o, "tensor");
    cJSON_AddStringToObject(o, "message", q->message);
    cJSON_AddItemToArray(probs, o);
  }
  char *text = cJSON_Print(root);
  int ok = text != NULL;
  if (text) fprintf(out, "%s\n", text);
  cJSON_free(text);
  cJSON_Delete(root);
  return ok;
}

int cmd_list(const list_args *a, FILE *out, FILE *err) {
  snapdir d;
  snap_summary *sm = NULL;
  snap_problems p = {0};
  const char *dir = a->snapshots ? a->snapshots : snapdir_default();
  ec_status st = snapdir_scan(&d, dir);
  if (st) {
    fprintf(err, "posthoc-ema: error: %s\n", ec_errmsg());
    return ec_exit_code(st);
  }
  int64_t total = 0;
  for (int i = 0; i < d.n; i++) total += d.entries[i].bytes > 0 ? d.entries[i].bytes : 0;
  ec_progress bar;
  ec_progress_begin(&bar, "verifying", total, 1, a->quiet || a->quick);
  st = snapdir_check(&d, a->quick ? 0 : SNAPDIR_CHECK_DATA, &sm, &p, on_progress, &bar);
  ec_progress_end(&bar);
  if (st) {
    fprintf(err, "posthoc-ema: error: %s\n", ec_errmsg());
    snap_problems_free(&p);
    snapdir_free(&d);
    return ec_exit_code(st);
  }
  if (a->json)
    print_json(&d, sm, &p, out);
  else if (d.n > 0)
    print_table(&d, sm, out);
  fflush(out);
  for (int i = 0; i < p.n; i++)
    fprintf(err, "posthoc-ema: %s: %s\n",
            p.items[i].severity == SNAP_ERROR ? "error" : p.items[i].severity == SNAP_NOTE ? "note" : "warning",
            p.items[i].message);
  int code = p.errors ? 1 : 0;
  snap_summaries_free(&sm, d.n);
  snap_problems_free(&p);
  snapdir_free(&d);
  return code;
}
