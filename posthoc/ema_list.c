/* Parser for EDM2's σ_rel lists with `...` progressions (syntax in ema_list.h). */
#include "posthoc/ema_list.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "posthoc/phema_math.h"

/* Growable array of doubles. */
typedef struct {
  double *v;
  int n, cap;
} dvec;

static ec_status dvec_push(dvec *a, double x) {
  if (a->n == a->cap) {
    int cap = a->cap ? 2 * a->cap : 16;
    double *v = ec_realloc(a->v, (size_t)cap, sizeof *v);
    if (!v) return EC_ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return EC_OK;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Parses one trimmed item [s, e) as a decimal number. Only digits, sign, point and exponent are
 * accepted, so "nan", "inf" and hex floats are rejected like any other non-number. */
static int parse_number(const char *s, const char *e, double *out) {
  char buf[64];
  size_t len = (size_t)(e - s);
  if (len == 0 || len >= sizeof buf) return 0;
  for (const char *p = s; p < e; p++)
    if (!strchr("0123456789.eE+-", *p)) return 0;
  memcpy(buf, s, len);
  buf[len] = 0;
  char *end;
  *out = strtod(buf, &end);
  return *end == 0 && isfinite(*out);
}

ec_status phema_list_parse(const char *text, double **values, int *count) {
  *values = NULL;
  *count = 0;
  dvec a = {0};
  ec_status st = EC_OK;
  int pending_range = 0; /* a `...` was read; the next number closes it */
  const char *p = text;
  int item = 0;
  for (;;) {
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    const char *s = p, *t = e;
    while (s < t && (*s == ' ' || *s == '\t')) s++;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
    item++;
    if (s == t) {
      st = *text ? ec_err(EC_EINVAL, "sigma list \"%s\": item %d is empty", text, item)
                 : ec_err(EC_EINVAL, "sigma list is empty");
      goto fail;
    }
    if (t - s == 3 && !memcmp(s, "...", 3)) {
      if (pending_range || a.n < 2) {
        st = ec_err(EC_EINVAL, "sigma list \"%s\": '...' (item %d) must follow two numbers", text,
                    item);
        goto fail;
      }
      pending_range = 1;
    } else {
      double c;
      if (!parse_number(s, t, &c)) {
        st = ec_err(EC_EINVAL, "sigma list \"%s\": item %d (\"%.*s\") is not a number", text, item,
                    (int)(t - s), s);
        goto fail;
      }
      if (pending_range) {
        double x0 = a.v[a.n - 2], x1 = a.v[a.n - 1], step = x1 - x0;
        double f = step != 0 ? (c - x1) / step - 1 : NAN;
        double k = round(f);
        if (!(k > 0) || !(fabs(k - f) <= 1e-4)) {
          st = ec_err(EC_EINVAL,
                      "sigma list \"%s\": '...' between %g, %g and %g is not an even progression "
                      "with at least one value to insert",
                      text, x0, x1, c);
          goto fail;
        }
        for (long i = 1; i <= (long)k; i++)
          if ((st = dvec_push(&a, x1 + step * (double)i))) goto fail;
        pending_range = 0;
      }
      if ((st = dvec_push(&a, c))) goto fail;
    }
    if (!*e) break;
    p = e + 1;
  }
  if (pending_range) {
    st = ec_err(EC_EINVAL, "sigma list \"%s\": '...' must be followed by a number", text);
    goto fail;
  }
  qsort(a.v, (size_t)a.n, sizeof *a.v, cmp_double);
  int m = 0;
  for (int i = 0; i < a.n; i++) {
    double g;
    if (phema_sigma_to_gamma(a.v[i], &g)) {
      st = ec_err_context(EC_EINVAL, "sigma list \"%s\"", text);
      goto fail;
    }
    if (m == 0 || a.v[i] != a.v[m - 1]) a.v[m++] = a.v[i];
  }
  *values = a.v;
  *count = m;
  return EC_OK;
fail:
  ec_freep(&a.v);
  return st;
}
