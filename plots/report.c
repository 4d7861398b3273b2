/* The HTML report of a run (plots/report.h). */
#define _GNU_SOURCE /* realpath */
#include "plots/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/best_sigma.h"
#include "core/fs.h"
#include "edm2c_config.h"
#include "plots/figures.h"

static void html(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
  }
}

static void when(time_t t, char *buf, size_t cap) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* RUN/config.json as a two-column table (values as JSON text). */
static void config_table(FILE *f, const char *run) {
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", run);
  FILE *in = fopen(path, "r");
  if (!in) {
    fprintf(f, "<p>No <code>config.json</code> in the run.</p>\n");
    return;
  }
  char *text = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&text, &cap, '\0', in);
  fclose(in);
  cJSON *o = n > 0 ? cJSON_Parse(text) : NULL;
  free(text);
  if (!cJSON_IsObject(o)) {
    fprintf(f, "<p><code>config.json</code> is not a JSON object.</p>\n");
    cJSON_Delete(o);
    return;
  }
  fprintf(f, "<table class=\"cfg\">\n");
  for (const cJSON *c = o->child; c; c = c->next) {
    char *v = cJSON_PrintUnformatted(c);
    fprintf(f, "<tr><th>");
    html(f, c->string);
    fprintf(f, "</th><td>");
    html(f, v ? v : "?");
    fprintf(f, "</td></tr>\n");
    free(v);
  }
  fprintf(f, "</table>\n");
  cJSON_Delete(o);
}

/* The best σ_rel of each sweep of the global EMA (no per-tensor rule), as a table. */
static void best_table(FILE *f, plot_ctx *c) {
  edm2_result_list rows;
  edm2_best_list best = {0};
  if (plot_rows(c, NULL, &rows)) {
    fprintf(f, "<p>No results database: ");
    html(f, ec_errmsg());
    fprintf(f, "</p>\n");
    return;
  }
  if (edm2_best_sigma(rows.rows, rows.n, &best) || best.n == 0) {
    fprintf(f, "<p>No sweeps in the results database yet (<code>edm2-sweep ema</code> makes them).</p>\n");
  } else {
    fprintf(f, "<table class=\"best\">\n<tr><th>metric</th><th>guidance</th><th>training time</th><th>images</th>"
               "<th>best &sigma;<sub>rel</sub></th><th>value there</th><th>measured minimum</th><th>fit</th>"
               "<th>points</th></tr>\n");
    for (size_t i = 0; i < best.n; i++) {
      const edm2_best *b = &best.best[i];
      if (b->tensor_rule && *b->tensor_rule) continue;
      if (!strcmp(b->metric, "profile-error")) continue;
      fprintf(f, "<tr><td>");
      html(f, b->metric);
      fprintf(f, "</td><td>%g%s", b->guidance, b->gnet && *b->gnet ? " (" : "");
      if (b->gnet && *b->gnet) html(f, b->gnet), fputs(")", f);
      fprintf(f, "</td><td>%.4g Mimg</td><td>%lld</td><td>%.2f %%</td><td>%.6g</td><td>%.6g at %.2f %%</td><td>%s</td>"
                 "<td>%d</td></tr>\n",
              (double)b->nimg / (1 << 20), (long long)b->num, 100 * b->fit.sigma_best, b->fit.value_best,
              b->fit.value_min, 100 * b->fit.sigma_min, edm2_fit_name(b->fit.fit), b->fit.points);
    }
    fprintf(f, "</table>\n");
  }
  edm2_best_list_free(&best);
  edm2_result_list_free(&rows);
}

ec_status plot_report(plot_ctx *c) {
  if (!c->run) return ec_err(EC_EINVAL, "report needs --run RUN");
  ec_status st = ec_mkdirs(c->out);
  if (st) return st;
  /* The figures, PNG only unless --format said otherwise (the page shows PNGs). */
  int formats = c->formats;
  c->formats |= PLOT_PNG;
  int quiet = c->quiet;
  c->quiet = 1;
  typedef struct {
    const plot_figure *fig;
    int drawn;
    char why[600];
  } item;
  item items[64];
  int nitems = 0;
  const plot_figure *tables[] = {plot_figures_run, plot_figures_db};
  for (int t = 0; t < 2; t++)
    for (const plot_figure *g = tables[t]; g->name && nitems < 64; g++) {
      item *it = &items[nitems++];
      it->fig = g;
      c->note[0] = 0;
      int r = g->draw(c);
      it->drawn = r == 0;
      if (r == EDM2_PLOT_NODATA) snprintf(it->why, sizeof it->why, "no data: %s", c->note);
      else if (r) snprintf(it->why, sizeof it->why, "failed: %s", ec_errmsg());
    }
  c->formats = formats;
  c->quiet = quiet;

  char path[4400], tmp[4420];
  snprintf(path, sizeof path, "%s/index.html", c->out);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return ec_err(EC_EIO, "%s: %s", tmp, strerror(errno));
  char *rp = realpath(c->run, NULL), now[64];
  when(time(NULL), now, sizeof now);
  fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>edm2c report: ");
  html(f, rp ? rp : c->run);
  fprintf(f, "</title>\n<style>\n"
             "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1250px;margin:2em auto;"
             "padding:0 1em;color:#222}\n"
             "h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\n"
             "table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;"
             "text-align:left}\n"
             "th{background:#f4f4f4}img{max-width:100%%;border:1px solid #eee}.when{color:#777;font-size:.85em}\n"
             "code{background:#f4f4f4;padding:0 .2em}\n</style>\n</head>\n<body>\n");
  fprintf(f, "<h1>Run <code>");
  html(f, rp ? rp : c->run);
  fprintf(f, "</code></h1>\n<p class=\"when\">Written %s by edm2-plot %s.</p>\n", now, EDM2C_VERSION);
  fprintf(f, "<h2>Best EMA length</h2>\n");
  best_table(f, c);
  fprintf(f, "<h2>Figures</h2>\n");
  for (int i = 0; i < nitems; i++) {
    if (!items[i].drawn) continue;
    char png[4400], made[64] = "";
    snprintf(png, sizeof png, "%s/%s.png", c->out, items[i].fig->name);
    struct stat sb;
    if (stat(png, &sb) == 0) when(sb.st_mtime, made, sizeof made);
    fprintf(f, "<h3>%s</h3>\n<p>", items[i].fig->name);
    html(f, items[i].fig->summary);
    fprintf(f, " <span class=\"when\">(from %s; made %s)</span></p>\n", items[i].fig->sources, made);
    fprintf(f, "<p><img src=\"%s.png\" alt=\"%s\"></p>\n", items[i].fig->name, items[i].fig->name);
  }
  int skipped = 0;
  for (int i = 0; i < nitems; i++) skipped += !items[i].drawn;
  if (skipped) {
    fprintf(f, "<h2>Figures not drawn</h2>\n<ul>\n");
    for (int i = 0; i < nitems; i++) {
      if (items[i].drawn) continue;
      fprintf(f, "<li><b>%s</b>: ", items[i].fig->name);
      html(f, items[i].why);
      fprintf(f, "</li>\n");
    }
    fprintf(f, "</ul>\n");
  }
  fprintf(f, "<h2>Configuration</h2>\n");
  config_table(f, c->run);
  fprintf(f, "</body>\n</html>\n");
  free(rp);
  int bad = ferror(f);
  if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
    unlink(tmp);
    return ec_err(EC_EIO, "%s: could not write it", path);
  }
  if (!c->quiet) printf("%s\n", path);
  return EC_OK;
}
