/* --tensor-sigma rules; see tensor_rules.h. */
#include "tensor_rules.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cli.h"
#include "posthoc/phema_math.h"

void tensor_rules_free(tensor_rules *r) {
  for (int i = 0; r->rules && i < r->n; i++) ec_freep(&r->rules[i].glob);
  ec_freep(&r->rules);
  r->n = 0;
  r->hash[0] = '\0';
}

/* fnmatch accepts almost anything, treating a broken bracket literally; a user who wrote one
 * almost certainly meant something else, so we refuse it. */
static const char *glob_problem(const char *g) {
  if (!*g) return "the pattern is empty";
  for (const char *c = g; *c; c++) {
    if (*c == '\\') {
      if (!c[1]) return "it ends with a lone '\\'";
      c++;
    } else if (*c == '[') {
      const char *e = c + 1;
      if (*e == '!' || *e == '^') e++;
      if (*e == ']') e++; /* a leading ']' is a member */
      while (*e && *e != ']') e++;
      if (!*e) return "a '[' is never closed";
      c = e;
    } else if (*c == ']') {
      return "a ']' has no '['";
    }
  }
  return NULL;
}

ec_status tensor_rules_parse(tensor_rules *r, int n, const char *const *texts) {
  memset(r, 0, sizeof *r);
  if (n == 0) return EC_OK;
  if (!(r->rules = ec_calloc((size_t)n, sizeof *r->rules))) return EC_ENOMEM;
  uint64_t h = 14695981039346656037ull;
  ec_status s = EC_OK;
  for (int i = 0; i < n && !s; i++) {
    const char *eq = strrchr(texts[i], '=');
    if (!eq) {
      s = ec_err(EC_EINVAL, "--tensor-sigma '%s': expected GLOB=SIGMA", texts[i]);
      break;
    }
    tensor_rule *t = &r->rules[r->n++];
    if (!(t->glob = ec_asprintf("%.*s", (int)(eq - texts[i]), texts[i]))) {
      s = EC_ENOMEM;
      break;
    }
    const char *why = glob_problem(t->glob);
    if (why) {
      s = ec_err(EC_EINVAL, "--tensor-sigma '%s': invalid glob '%s': %s", texts[i], t->glob, why);
      break;
    }
    double gamma;
    if ((s = ec_parse_f64("--tensor-sigma", eq + 1, &t->sigma_rel)) ||
        (s = phema_sigma_to_gamma(t->sigma_rel, &gamma))) {
      ec_err_context(s, "--tensor-sigma '%s'", texts[i]);
      break;
    }
    char canon[1200];
    int len = snprintf(canon, sizeof canon, "%s=%.17g;", t->glob, t->sigma_rel);
    for (int k = 0; k < len && k < (int)sizeof canon; k++) h = (h ^ (unsigned char)canon[k]) * 1099511628211ull;
  }
  if (s) {
    tensor_rules_free(r);
    return s;
  }
  snprintf(r->hash, sizeof r->hash, "%08x", (unsigned)(h ^ (h >> 32)));
  return EC_OK;
}

int tensor_rules_match(const tensor_rules *r, const char *name) {
  for (int i = r->n - 1; i >= 0; i--)
    if (fnmatch(r->rules[i].glob, name, 0) == 0) return i;
  return -1;
}

char *tensor_rules_json(const tensor_rules *r) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < r->n; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "glob", r->rules[i].glob);
    cJSON_AddNumberToObject(o, "sigma_rel", r->rules[i].sigma_rel);
    cJSON_AddItemToArray(a, o);
  }
  char *text = cJSON_PrintUnformatted(a);
  cJSON_Delete(a);
  char *out = text ? ec_strdup(text) : NULL;
  cJSON_free(text);
  return out;
}
