/* posthoc-ema --list: the table of a snapshot directory and its problems. */
#ifndef EDM2C_POSTHOC_CMD_LIST_H
#define EDM2C_POSTHOC_CMD_LIST_H

#include <stdio.h>

typedef struct {
  const char *snapshots; /* directory; NULL = snapdir_default() */
  int json;              /* JSON on stdout instead of the table */
  int quick;             /* metadata only: do not read the data (no checksum verification) */
  int quiet;             /* no progress bar */
} list_args;

/* Runs the listing; prints results on `out`, problems on `err` (one line each). Returns the
 * process exit code: 0, or 1 when there is any error-level problem. */
int cmd_list(const list_args *a, FILE *out, FILE *err);

#endif
