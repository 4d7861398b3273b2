/* posthoc-ema --sigma-rel LIST ...: write the reconstructed models and a summary. */
#ifndef EDM2C_POSTHOC_CMD_RECONSTRUCT_H
#define EDM2C_POSTHOC_CMD_RECONSTRUCT_H

#include <stdio.h>

#include "posthoc/reconstruct.h"

/* Returns the process exit code; the summary (or JSON) on `out`, problems on `err`. */
int cmd_reconstruct(const recon_args *a, int json, FILE *out, FILE *err);

#endif
