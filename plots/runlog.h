/* A training run's log.jsonl in memory (trainer/trainlog.h writes it), for the figures that plot
 * training: one parsed JSON object per line, values by dotted path ("weights.enc32.max"). */
#ifndef EDM2C_PLOTS_RUNLOG_H
#define EDM2C_PLOTS_RUNLOG_H

#include <cjson/cJSON.h>

#include "core/status.h"

typedef struct {
  int n;
  cJSON **rec;
  char path[4200];
} runlog;

/* Reads RUN/log.jsonl. A line that is not a JSON object is an error naming the file and line;
 * a missing file is EC_ENOENT naming it. */
ec_status runlog_read(runlog *l, const char *run);
void runlog_free(runlog *l);

/* The number at a dotted path of record i, or NaN when absent or null. */
double runlog_get(const runlog *l, int i, const char *path);

/* The keys of the object at `path` ("weights", "activations") in the first record that has it,
 * in file order: up to cap names copied into names[k] (64 bytes each). Returns the count. */
int runlog_keys(const runlog *l, const char *path, char (*names)[64], int cap);

#endif
