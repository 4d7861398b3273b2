/* Status lines and log.jsonl (see trainlog.h). */
#include "trainer/trainlog.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

ec_status edm2_trainlog_open(edm2_trainlog *l, const char *outdir, int quiet) {
  memset(l, 0, sizeof *l);
  l->quiet = quiet;
  if (!outdir) return EC_OK;
  size_t n = strlen(outdir) + 16;
  l->path = malloc(n);
  if (!l->path) return ec_err(EC_ENOMEM, "out of memory");
  snprintf(l->path, n, "%s/log.jsonl", outdir);
  l->f = fopen(l->path, "a");
  if (!l->f) {
    ec_status st = ec_err(EC_EIO, "%s: %s", l->path, strerror(errno));
    ec_freep(&l->path);
    return st;
  }
  return EC_OK;
}

void edm2_trainlog_close(edm2_trainlog *l) {
  if (l->f) fclose(l->f);
  l->f = NULL;
  ec_freep(&l->path);
}

/* The bucket of a tensor name: "unet.enc.32x32_block0.conv_res0.weight" → "enc32"; 0 when the
 * tensor lies outside the encoder and decoder blocks. */
static int bucket_of(const char *name, char *out, size_t size) {
  const char *p;
  const char *side;
  if (!strncmp(name, "unet.enc.", 9)) side = "enc";
  else if (!strncmp(name, "unet.dec.", 9)) side = "dec";
  else return 0;
  p = name + 9;
  char *end;
  long r = strtol(p, &end, 10);
  if (end == p || *end != 'x') return 0;
  snprintf(out, size, "%s%ld", side, r);
  return 1;
}

int edm2_weight_magnitudes(const edm2_net *net, const char *bucket, double *max, double *mean) {
  const edm2_arch *a = &net->arch;
  double mx = 0, sum = 0;
  int64_t count = 0;
  char b[32];
  for (int i = 0; i < a->n_tensors; i++) {
    const edm2_tensor *t = &a->tensors[i];
    if (t->kind != EDM2_PARAM || t->ndim < 2 || !bucket_of(t->name, b, sizeof b) || strcmp(b, bucket)) continue;
    const int rows = edm2_tensor_rows(t), fan = edm2_tensor_fan_in(t);
    const float *w = net->params + t->offset;
    for (int r = 0; r < rows; r++) {
      double s = 0;
      for (int j = 0; j < fan; j++) s += (double)w[(size_t)r * fan + j] * w[(size_t)r * fan + j];
      double m = sqrt(s / fan);
      mx = fmax(mx, m);
      sum += m;
      count++;
    }
  }
  *max = mx;
  *mean = count ? sum / (double)count : 0;
  return count > 0;
}

ec_status edm2_trainlog_status_line(edm2_trainlog *l, const edm2_trainlog_status *s, const edm2_net *net) {
  if (!l->quiet) {
    char loss[32] = "-";
    if (isfinite(s->loss)) snprintf(loss, sizeof loss, "%.4f", s->loss);
    printf("kimg %9.1f  loss %-9s  lr %-9.3g  %7.1f img/s  %6.0f s%s\n", (double)s->nimg / 1000.0, loss, s->lr,
           s->images_per_second, s->elapsed, s->nonfinite ? "  (non-finite gradients zeroed)" : "");
  }
  if (!l->quiet) fflush(stdout);
  if (!l->f) return EC_OK;
  cJSON *o = cJSON_CreateObject();
  if (!o) return ec_err(EC_ENOMEM, "out of memory");
  cJSON_AddNumberToObject(o, "nimg", (double)s->nimg);
  cJSON_AddNumberToObject(o, "kimg", (double)s->nimg / 1000.0);
  if (isfinite(s->loss)) cJSON_AddNumberToObject(o, "loss", s->loss);
  else cJSON_AddNullToObject(o, "loss");
  cJSON_AddNumberToObject(o, "lr", s->lr);
  cJSON_AddNumberToObject(o, "images_per_second", s->images_per_second);
  cJSON_AddNumberToObject(o, "elapsed", s->elapsed);
  cJSON_AddNumberToObject(o, "nonfinite", (double)s->nonfinite);
  cJSON_AddNumberToObject(o, "timestamp", (double)time(NULL));
  cJSON *w = cJSON_AddObjectToObject(o, "weights");
  /* Buckets in network order: encoder from the top resolution down, decoder back up. */
  const edm2_arch *a = &net->arch;
  char seen[64][16];
  int nseen = 0;
  for (int i = 0; i < a->n_tensors && nseen < 64; i++) {
    char b[16];
    if (!bucket_of(a->tensors[i].name, b, sizeof b)) continue;
    int dup = 0;
    for (int k = 0; k < nseen; k++) dup |= !strcmp(seen[k], b);
    if (dup) continue;
    snprintf(seen[nseen++], sizeof seen[0], "%s", b);
    double mx, mean;
    if (!edm2_weight_magnitudes(net, b, &mx, &mean)) continue;
    cJSON *e = cJSON_AddObjectToObject(w, b);
    cJSON_AddNumberToObject(e, "max", mx);
    cJSON_AddNumberToObject(e, "mean", mean);
  }
  if (s->activations && s->n_activations > 0) {
    cJSON *act = cJSON_AddObjectToObject(o, "activations");
    for (int i = 0; i < s->n_activations; i++) {
      cJSON *e = cJSON_AddObjectToObject(act, s->activations[i].bucket);
      cJSON_AddNumberToObject(e, "max", s->activations[i].max);
      cJSON_AddNumberToObject(e, "mean", s->activations[i].mean);
    }
  }
  char *line = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!line) return ec_err(EC_ENOMEM, "out of memory");
  int bad = fprintf(l->f, "%s\n", line) < 0 || fflush(l->f);
  free(line);
  if (bad) return ec_err(errno == ENOSPC ? EC_ENOSPC : EC_EIO, "%s: %s", l->path, strerror(errno));
  return EC_OK;
}
