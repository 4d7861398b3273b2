/* Per-tensor EMA lengths: --tensor-sigma 'GLOB=SIGMA' rules.
 *
 * Globs (fnmatch(3), '*' also matches '.') are matched against parameter names in the order
 * given; the last matching rule wins; unmatched tensors take the global target. An output made
 * with rules is named by its global target plus a short hash of the rules, and the rules are
 * stored in it. */
#ifndef EDM2C_POSTHOC_TENSOR_RULES_H
#define EDM2C_POSTHOC_TENSOR_RULES_H

#include "core/status.h"

typedef struct {
  char *glob;
  double sigma_rel;
  int matches; /* tensors this rule decides (after later rules took theirs) */
} tensor_rule;

typedef struct {
  int n;
  tensor_rule *rules;
  char hash[9]; /* 8 hex digits of FNV-1a over the canonical rules; "" when there are none */
} tensor_rules;

/* Parses and validates each "GLOB=SIGMA" (the last '=' separates them). EC_EINVAL for an empty
 * or malformed glob (unbalanced '[', trailing '\'), a missing '=', or a bad sigma. */
ec_status tensor_rules_parse(tensor_rules *r, int n, const char *const *texts);
void tensor_rules_free(tensor_rules *r);

/* Index of the rule that decides `name` (the last match), or -1. */
int tensor_rules_match(const tensor_rules *r, const char *name);

/* The rules as JSON: [{"glob": "...", "sigma_rel": 0.2}, ...] (free with ec_freep). */
char *tensor_rules_json(const tensor_rules *r);

#endif
