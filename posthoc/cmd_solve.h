/* posthoc-ema --solve-only: the least-squares EMA weights, with diagnostics, as a table or JSON. */
#ifndef EDM2C_POSTHOC_CMD_SOLVE_H
#define EDM2C_POSTHOC_CMD_SOLVE_H

#include <stdio.h>

#include "posthoc/plan.h"

/* Returns the process exit code; results on `out`, problems and warnings on `err`. */
int cmd_solve(const plan_args *a, int json, FILE *out, FILE *err);

/* Prints the directory's problems (warnings and errors) and, when `st` failed for another
 * reason, its message: one line each, prefixed "posthoc-ema: error: " / "warning: ". */
void print_plan_problems(const plan *p, ec_status st, FILE *err);

#endif
