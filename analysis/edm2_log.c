/* edm2-log: columns of a training run's log.jsonl as a whitespace table, for gnuplot and for
 * reading.
 *
 *   edm2-log RUN/log.jsonl [--columns nimg,loss,lr,weights.enc32.max] [--header]
 *
 * Nested keys are written with dots. A missing or null value prints as NaN (gnuplot skips it).
 * A line that is not a JSON object is an error naming the file and line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "edm2c_config.h"

enum { OPT_COLUMNS, OPT_HEADER, OPT_HELP, OPT_VERSION };

static const ec_cli_opt options[] = {
    {"columns", 1, OPT_COLUMNS, "LIST",
     "comma-separated keys, nested ones with dots (default nimg,loss,lr,images_per_second)"},
    {"header", 0, OPT_HEADER, NULL, "first line: '# ' and the column names"},
    {"help", 0, OPT_HELP, NULL, "print this help and exit"},
    {"version", 0, OPT_VERSION, NULL, "print the version and exit"},
    {0},
};

static ec_cli cli = {
    .prog = "edm2-log",
    .synopsis = "RUN/log.jsonl [--columns LIST] [--header]",
    .description = "Prints columns of an edm2-train log.jsonl as a whitespace-separated table.",
    .opts = options,
};

/* The value at a dotted path, or NULL. */
static const cJSON *lookup(const cJSON *o, const char *path) {
  char key[256];
  while (o && *path) {
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (n >= sizeof key) return NULL;
    memcpy(key, path, n);
    key[n] = 0;
    o = cJSON_GetObjectItemCaseSensitive(o, key);
    path += n + (dot ? 1 : 0);
  }
  return o;
}

int main(int argc, char **argv) {
  const char *columns = "nimg,loss,lr,images_per_second", *arg;
  int header = 0;
  for (int id; (id = ec_cli_next(&cli, argc, argv, &arg)) != EC_CLI_END;) {
    switch (id) {
    case OPT_COLUMNS: columns = arg; break;
    case OPT_HEADER: header = 1; break;
    case OPT_HELP: ec_cli_help(&cli, stdout); return 0;
    case OPT_VERSION: printf("edm2-log %s\n", EDM2C_VERSION); return 0;
    default: return 2;
    }
  }
  if (ec_cli_optind(&cli) != argc - 1) return ec_exit_code(ec_cli_usage(&cli, "give one log.jsonl"));
  const char *path = argv[argc - 1];
  char *cols = strdup(columns), *save = NULL;
  const char *names[64];
  int ncol = 0;
  for (char *t = strtok_r(cols, ",", &save); t && ncol < 64; t = strtok_r(NULL, ",", &save)) names[ncol++] = t;
  if (!ncol) return ec_exit_code(ec_cli_usage(&cli, "--columns is empty"));
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "edm2-log: %s: %s\n", path, strerror(errno));
    return 1;
  }
  if (header) {
    printf("#");
    for (int c = 0; c < ncol; c++) printf(" %s", names[c]);
    printf("\n");
  }
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = 0;
  while (getline(&line, &cap, f) > 0) {
    lineno++;
    if (line[0] == '\n') continue;
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
      fprintf(stderr, "edm2-log: %s:%ld: not a JSON object\n", path, lineno);
      cJSON_Delete(o);
      rc = 1;
      break;
    }
    for (int c = 0; c < ncol; c++) {
      const cJSON *v = lookup(o, names[c]);
      if (cJSON_IsNumber(v)) printf("%s%.10g", c ? " " : "", v->valuedouble);
      else printf("%sNaN", c ? " " : "");
    }
    printf("\n");
    cJSON_Delete(o);
  }
  free(line);
  free(cols);
  fclose(f);
  return rc;
}
