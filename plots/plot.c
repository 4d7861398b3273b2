/* Shared parts of edm2-plot (plots/plot.h). */
#define _GNU_SOURCE /* realpath */
#include "plots/plot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.h"
#include "edm2c_config.h"

const char *plot_scripts_dir(void) {
  const char *e = getenv("EDM2C_PLOTS_DIR");
  return e && *e ? e : EDM2C_PLOTS_DIR;
}

int plot_nodata(plot_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->note, sizeof c->note, fmt, ap);
  va_end(ap);
  return EDM2_PLOT_NODATA;
}

ec_status plot_db(plot_ctx *c, edm2_db **db) {
  if (!c->db) {
    char path[4200];
    if (c->db_path) snprintf(path, sizeof path, "%s", c->db_path);
    else if (c->run) snprintf(path, sizeof path, "%s/results.sqlite", c->run);
    else return ec_err(EC_EINVAL, "no results database: give --run RUN or --db FILE");
    struct stat sb;
    if (stat(path, &sb) != 0)
      return ec_err(EC_ENOENT, "%s does not exist (edm2-sweep writes it)", path);
    ec_status st = edm2_db_open_readonly(&c->db, path); /* figures never write results */
    if (st) return st;
  }
  *db = c->db;
  return EC_OK;
}

ec_status plot_rows(plot_ctx *c, const char *metric, edm2_result_list *rows) {
  memset(rows, 0, sizeof *rows);
  edm2_db *db;
  ec_status st = plot_db(c, &db);
  if (st) return st;
  char *rp = c->run ? realpath(c->run, NULL) : NULL;
  if (c->run && !rp) return ec_err(EC_ENOENT, "%s: %s", c->run, strerror(errno));
  st = edm2_db_rows(db, rp, rows);
  free(rp);
  if (st || !metric) return st;
  size_t k = 0; /* keep one metric's rows, in order */
  for (size_t i = 0; i < rows->n; i++)
    if (!strcmp(rows->rows[i].metric, metric)) rows->rows[k++] = rows->rows[i];
  rows->n = k;
  return EC_OK;
}

ec_status plot_data_open(plot_ctx *c, plot_data *d, const char *name, const char *columns) {
  memset(d, 0, sizeof *d);
  ec_status st = ec_mkdirs(c->out);
  if (st) return st;
  snprintf(d->path, sizeof d->path, "%s/%s.dat", c->out, name);
  snprintf(d->tmp, sizeof d->tmp, "%s.tmp", d->path);
  if (!(d->f = fopen(d->tmp, "w"))) return ec_err(EC_EIO, "%s: %s", d->tmp, strerror(errno));
  fprintf(d->f, "# %s\n", columns);
  return EC_OK;
}

void plot_data_abort(plot_data *d) {
  if (d->f) fclose(d->f);
  if (d->tmp[0]) unlink(d->tmp);
  d->f = NULL;
}

ec_status plot_data_close(plot_data *d) {
  int bad = ferror(d->f);
  if (fclose(d->f) != 0) bad = 1;
  d->f = NULL;
  if (bad || rename(d->tmp, d->path) != 0) {
    unlink(d->tmp);
    return ec_err(EC_EIO, "%s: could not write it", d->path);
  }
  return EC_OK;
}

char *plot_quote(const char *s, char *buf, size_t cap) {
  size_t k = 0;
  if (cap < 3) return buf[0] = 0, buf;
  buf[k++] = '\'';
  for (; *s && k + 3 < cap; s++) {
    if (*s == '\'') buf[k++] = '\'';
    buf[k++] = *s;
  }
  buf[k++] = '\'';
  buf[k] = 0;
  return buf;
}

/* 1 when gnuplot can be run. */
static int have_gnuplot(void) {
  int rc = system("gnuplot --version >/dev/null 2>&1");
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

ec_status plot_render(plot_ctx *c, const char *script, const char *figure, const char *vars) {
  static const struct {
    int bit;
    const char *ext;
  } fmts[] = {{PLOT_PNG, "png"}, {PLOT_SVG, "svg"}, {PLOT_PDF, "pdf"}};
  if (!have_gnuplot())
    return ec_err(EC_ENOENT, "gnuplot is not installed (Debian: apt-get install gnuplot-nox); the data files are in %s",
                  c->out);
  char gp[4200];
  snprintf(gp, sizeof gp, "%s/%s.gp", plot_scripts_dir(), script);
  struct stat sb;
  if (stat(gp, &sb) != 0) return ec_err(EC_ENOENT, "%s: the gnuplot script is missing (set EDM2C_PLOTS_DIR)", gp);
  for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
    if (!(c->formats & fmts[i].bit)) continue;
    char out[4400], tmp[4420], qo[9000], qd[9000], qs[9000], log[4420];
    snprintf(out, sizeof out, "%s/%s.%s", c->out, figure, fmts[i].ext);
    snprintf(tmp, sizeof tmp, "%s.tmp.%s", out, fmts[i].ext); /* the extension picks no terminal: fmt does */
    snprintf(log, sizeof log, "%s/.%s.%s.log", c->out, figure, fmts[i].ext);
    plot_quote(tmp, qo, sizeof qo);
    plot_quote(c->out, qd, sizeof qd);
    plot_quote(plot_scripts_dir(), qs, sizeof qs);
    size_t cap = strlen(vars) + strlen(qo) + strlen(qd) + strlen(qs) + strlen(gp) + strlen(log) + 256;
    char *cmd = malloc(cap + strlen(gp) * 2);
    if (!cmd) return ec_err(EC_ENOMEM, "out of memory");
    /* The -e code goes through the shell: single-quote it for sh (gnuplot strings inside use
     * single quotes too, so they are written as '\'' for the shell). */
    char *code = NULL;
    size_t clen = 0;
    FILE *m = open_memstream(&code, &clen);
    if (!m) {
      free(cmd);
      return ec_err(EC_ENOMEM, "out of memory");
    }
    fprintf(m, "out=%s; fmt='%s'; datadir=%s; scripts=%s; %s", qo, fmts[i].ext, qd, qs, vars);
    fclose(m);
    char *shq = malloc(4 * clen + 3), *p = shq;
    if (!shq) {
      free(code), free(cmd);
      return ec_err(EC_ENOMEM, "out of memory");
    }
    *p++ = '\'';
    for (const char *s = code; *s; s++) {
      if (*s == '\'') memcpy(p, "'\\''", 4), p += 4;
      else *p++ = *s;
    }
    *p++ = '\'';
    *p = 0;
    free(cmd);
    cmd = NULL;
    size_t n = strlen(shq) + strlen(gp) + strlen(log) + 64;
    if (!(cmd = malloc(n))) {
      free(code), free(shq);
      return ec_err(EC_ENOMEM, "out of memory");
    }
    snprintf(cmd, n, "gnuplot -e %s '%s' >'%s' 2>&1", shq, gp, log);
    int rc = system(cmd);
    free(code), free(shq), free(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0 || stat(tmp, &sb) != 0 || sb.st_size == 0) {
      char last[512] = "";
      FILE *lf = fopen(log, "r");
      if (lf) {
        char line[512];
        while (fgets(line, sizeof line, lf))
          if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
        fclose(lf);
      }
      last[strcspn(last, "\n")] = 0;
      unlink(tmp);
      return ec_err(EC_EIO, "gnuplot failed on %s for %s: %s (log: %s)", gp, out, last[0] ? last : "no output", log);
    }
    unlink(log);
    if (rename(tmp, out) != 0) return ec_err(EC_EIO, "%s: %s", out, strerror(errno));
    if (!c->quiet) printf("%s\n", out);
  }
  return EC_OK;
}
