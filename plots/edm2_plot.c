/* edm2-plot: the paper's figures for a run, drawn with gnuplot (docs/figures.md).
 *
 *   edm2-plot FIGURE --run RUN [--db FILE] [--out DIR] [--format png,svg,pdf] [figure options]
 *   edm2-plot all --run RUN      every figure that has data (the others skipped with a note)
 *
 * Figures are the entries of plots/figures_run.c and plots/figures_db.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "edm2c_config.h"
#include "plots/figures.h"
#include "plots/report.h"

#define PROG "edm2-plot"

enum { OPT_RUN, OPT_DB, OPT_OUT, OPT_FORMAT, OPT_METRIC, OPT_SIGMA, OPT_KEY, OPT_RUNS, OPT_AT, OPT_QUIET, OPT_HELP };

static const ec_cli_opt options[] = {
    {"run", 1, OPT_RUN, "RUN", "the training run (RUN/log.jsonl, RUN/snapshots, RUN/results.sqlite)"},
    {"db", 1, OPT_DB, "FILE", "the results database (default RUN/results.sqlite)"},
    {"out", 1, OPT_OUT, "DIR", "where figures and their data files go (default RUN/figures)"},
    {"format", 1, OPT_FORMAT, "LIST", "png, svg, pdf or a comma list (default png,svg,pdf)"},
    {"metric", 1, OPT_METRIC, "M", "the metric of database figures (default: the figure's)"},
    {"sigma-rel", 1, OPT_SIGMA, "LIST", "profiles: the target EMA lengths"},
    {"key", 1, OPT_KEY, "KEY", "lr-interaction: the config key the runs differ in (default: found)"},
    {"runs", 1, OPT_RUNS, "DIR|LIST", "lr-interaction: the runs to compare (a folder of runs or a comma list)"},
    {"at", 1, OPT_AT, "NIMG", "the snapshot time (default latest)"},
    {"quiet", 0, OPT_QUIET, NULL, "print nothing but errors"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {0},
};

static const plot_figure *find(const char *name) {
  const plot_figure *tables[] = {plot_figures_run, plot_figures_db};
  for (int t = 0; t < 2; t++)
    for (const plot_figure *f = tables[t]; f->name; f++)
      if (!strcmp(f->name, name)) return f;
  return NULL;
}

static void help(FILE *f) {
  fprintf(f, "Usage: " PROG " FIGURE --run RUN [--db FILE] [--out DIR] [--format png,svg,pdf]\n\n"
             "Draws the EDM2 paper's figures for a run with gnuplot: PNG, SVG and PDF files named after the\n"
             "figure in RUN/figures/, next to the data files (NAME.dat) gnuplot read (docs/figures.md).\n\n"
             "Figures:\n");
  const plot_figure *tables[] = {plot_figures_run, plot_figures_db};
  for (int t = 0; t < 2; t++)
    for (const plot_figure *g = tables[t]; g->name; g++) fprintf(f, "  %-16s %s (%s)\n", g->name, g->summary, g->sources);
  fprintf(f, "  %-16s every figure that has data; the others are skipped with a note\n", "all");
  fprintf(f, "  %-16s RUN/report/index.html: the configuration, the best EMA lengths and every figure\n\n", "report");
  fprintf(f, "Options:\n");
  for (const ec_cli_opt *o = options; o->name; o++)
    fprintf(f, "  --%s%s%-*s %s\n", o->name, o->has_arg ? " " : "", (int)(18 - strlen(o->name)), o->has_arg ? o->metavar : "",
            o->help);
  fprintf(f, "\nExit status: 0 drawn (or, for 'all', every figure drawn or skipped), 1 an error (no data for a\n"
             "named figure is one), 2 usage.\n");
}

static ec_status parse_formats(const char *s, int *out) {
  *out = 0;
  const char *p = s;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == 3 && !strncmp(p, "png", 3)) *out |= PLOT_PNG;
    else if (n == 3 && !strncmp(p, "svg", 3)) *out |= PLOT_SVG;
    else if (n == 3 && !strncmp(p, "pdf", 3)) *out |= PLOT_PDF;
    else return ec_err(EC_EINVAL, "--format '%s': expected png, svg, pdf or a comma list of them", s);
    p += n + (p[n] == ',');
  }
  return *out ? EC_OK : ec_err(EC_EINVAL, "--format: empty");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    help(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf(PROG " %s\n", EDM2C_VERSION);
    return 0;
  }
  const char *name = argv[1];
  const int is_report = !strcmp(name, "report"), is_all = !strcmp(name, "all");
  const plot_figure *fig = is_all || is_report ? NULL : find(name);
  if (!fig && !is_all && !is_report) {
    fprintf(stderr, PROG ": unknown figure '%s'\nTry '" PROG " --help'.\n", name);
    return 2;
  }
  char prog[64];
  snprintf(prog, sizeof prog, PROG " %s", name);
  ec_cli cli = {.prog = prog, .synopsis = "--run RUN [OPTIONS]", .description = "", .opts = options};
  plot_ctx c = {.formats = PLOT_PNG | PLOT_SVG | PLOT_PDF, .at = -1};
  const char *out = NULL, *arg;
  ec_status st = EC_OK;
  for (int id; (id = ec_cli_next(&cli, argc - 1, argv + 1, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_RUN: c.run = arg; break;
    case OPT_DB: c.db_path = arg; break;
    case OPT_OUT: out = arg; break;
    case OPT_FORMAT: st = parse_formats(arg, &c.formats), c.formats_given = 1; break;
    case OPT_METRIC: c.metric = arg; break;
    case OPT_SIGMA: c.sigma_rel = arg; break;
    case OPT_KEY: c.key = arg; break;
    case OPT_RUNS: c.runs = arg; break;
    case OPT_AT: st = ec_parse_nimg("--at", arg, &c.at); break;
    case OPT_QUIET: c.quiet = 1; break;
    case OPT_HELP: help(stdout); return 0;
    default: return 2;
    }
    if (st) {
      fprintf(stderr, PROG ": %s\n", ec_errmsg());
      return ec_exit_code(st);
    }
  }
  if (ec_cli_optind(&cli) < argc - 1) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[1 + ec_cli_optind(&cli)]);
    return 2;
  }
  if (!c.run && !(out && (c.db_path || c.runs))) { /* --runs: lr-interaction reads each run's database */
    fprintf(stderr, PROG ": --run RUN is required (or --db FILE or --runs DIR|LIST, and --out DIR)\n");
    return 2;
  }
  snprintf(c.out, sizeof c.out, "%s", out ? out : "");
  if (!out) snprintf(c.out, sizeof c.out, "%s/%s", c.run, is_report ? "report" : "figures");
  if (is_report) {
    if (!out && !c.formats_given) c.formats = PLOT_PNG;
    st = plot_report(&c);
    if (st) fprintf(stderr, PROG ": report: %s\n", ec_errmsg());
    if (c.db) edm2_db_close(&c.db);
    return st ? 1 : 0;
  }

  int failed = 0;
  const plot_figure *tables[] = {plot_figures_run, plot_figures_db};
  for (int t = 0; t < 2; t++)
    for (const plot_figure *g = tables[t]; g->name; g++) {
      if (fig && g != fig) continue;
      c.note[0] = 0;
      int r = g->draw(&c);
      if (r == EDM2_PLOT_NODATA) {
        fprintf(stderr, PROG ": %s: skipped, no data: %s\n", g->name, c.note);
        if (fig) failed = 1;
      } else if (r) {
        fprintf(stderr, PROG ": %s: %s\n", g->name, ec_errmsg());
        failed = 1;
      }
    }
  if (c.db) edm2_db_close(&c.db);
  return failed ? 1 : 0;
}
