/* Weights of the feature networks from safetensors files (metrics/weights.h). */
#include "metrics/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "metrics/dinov2.h"
#include "metrics/inception.h"

static const char *const file_name[EDM2_METRIC_COUNT] = {"inception-2015-12-05.safetensors",
                                                         "dinov2_vitl14.safetensors"};
static const char *const source_name[EDM2_METRIC_COUNT] = {
    "pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/pytorch-fid/releases/download/"
    "fid_weights/pt_inception-2015-12-05-6726825d.pth)",
    "dinov2_vitl14_pretrain.pth (https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/"
    "dinov2_vitl14_pretrain.pth)"};

const char *edm2_weights_file(edm2_metric m) { return file_name[m]; }

ec_status edm2_weights_dir(const char *dir, char *buf, size_t cap) {
  const char *env = getenv("EDM2C_WEIGHTS_DIR"), *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
  int n;
  if (dir && *dir) n = snprintf(buf, cap, "%s", dir);
  else if (env && *env) n = snprintf(buf, cap, "%s", env);
  else if (xdg && *xdg) n = snprintf(buf, cap, "%s/edm2c", xdg);
  else if (home && *home) n = snprintf(buf, cap, "%s/.local/share/edm2c", home);
  else return ec_err(EC_EINVAL, "no weights directory: give --weights-dir (HOME and XDG_DATA_HOME are unset)");
  if (n < 0 || (size_t)n >= cap) return ec_err(EC_EINVAL, "weights directory path too long");
  return EC_OK;
}

ec_status edm2_weights_open_file(edm2_weights *w, edm2_metric m, const char *path) {
  memset(w, 0, sizeof *w);
  w->metric = m;
  return ec_st_open(&w->file, path);
}

ec_status edm2_weights_open(edm2_weights *w, edm2_metric m, const char *dir) {
  char d[4096], path[4200];
  ec_status st = edm2_weights_dir(dir, d, sizeof d);
  if (st) return st;
  snprintf(path, sizeof path, "%s/%s", d, file_name[m]);
  struct stat sb;
  if (stat(path, &sb) != 0) {
    memset(w, 0, sizeof *w);
    return ec_err(EC_ENOENT,
                  "the %s weights are missing: %s does not exist. Download %s and convert it with "
                  "'tools/convert-weights FILE.pth --weights-dir %s' (docs/metrics.md, \"Converting the weights\")",
                  edm2_metric_name(m), path, source_name[m], d);
  }
  return edm2_weights_open_file(w, m, path);
}

void edm2_weights_close(edm2_weights *w) { ec_st_close(&w->file); }

static ec_status set(int *rank, int64_t dims[4], int r, int64_t a, int64_t b, int64_t c, int64_t d) {
  *rank = r;
  dims[0] = a, dims[1] = b, dims[2] = c, dims[3] = d;
  return EC_OK;
}

static ec_status inception_shape(const char *name, int *rank, int64_t dims[4]) {
  const char *dot = strrchr(name, '.');
  if (!dot) return EC_ENOENT;
  const char *sub = NULL; /* ".conv.weight", ".bn.weight", … */
  for (const char *p = name; (p = strchr(p, '.')); p++)
    if (!strncmp(p, ".conv.", 6) || !strncmp(p, ".bn.", 4)) sub = p;
  if (!sub) return EC_ENOENT;
  size_t len = (size_t)(sub - name);
  for (int i = 0; i < INCEPTION_FID_LAYERS; i++) {
    int co, ci, kh, kw;
    const char *ln = inception_fid_layer(i, &co, &ci, &kh, &kw);
    if (strlen(ln) != len || strncmp(ln, name, len)) continue;
    if (!strcmp(sub, ".conv.weight")) return set(rank, dims, 4, co, ci, kh, kw);
    if (!strcmp(sub, ".bn.weight") || !strcmp(sub, ".bn.bias") || !strcmp(sub, ".bn.running_mean") ||
        !strcmp(sub, ".bn.running_var"))
      return set(rank, dims, 1, co, 0, 0, 0);
    return EC_ENOENT;
  }
  return EC_ENOENT;
}

static ec_status dinov2_shape(const char *name, int *rank, int64_t dims[4]) {
  const int64_t D = DINOV2_DIM, H = DINOV2_MLP;
  if (!strcmp(name, "cls_token")) return set(rank, dims, 3, 1, 1, D, 0);
  if (!strcmp(name, "pos_embed")) return set(rank, dims, 3, 1, 1 + DINOV2_GRID * DINOV2_GRID, D, 0);
  if (!strcmp(name, "patch_embed.proj.weight")) return set(rank, dims, 4, D, 3, DINOV2_PATCH, DINOV2_PATCH);
  if (!strcmp(name, "patch_embed.proj.bias") || !strcmp(name, "norm.weight") || !strcmp(name, "norm.bias"))
    return set(rank, dims, 1, D, 0, 0, 0);
  int blk, used = 0;
  if (sscanf(name, "blocks.%d.%n", &blk, &used) != 1 || used == 0 || blk < 0 || blk >= DINOV2_DEPTH)
    return EC_ENOENT;
  const char *t = name + used;
  if (!strcmp(t, "attn.qkv.weight")) return set(rank, dims, 2, 3 * D, D, 0, 0);
  if (!strcmp(t, "attn.qkv.bias")) return set(rank, dims, 1, 3 * D, 0, 0, 0);
  if (!strcmp(t, "attn.proj.weight")) return set(rank, dims, 2, D, D, 0, 0);
  if (!strcmp(t, "mlp.fc1.weight")) return set(rank, dims, 2, H, D, 0, 0);
  if (!strcmp(t, "mlp.fc1.bias")) return set(rank, dims, 1, H, 0, 0, 0);
  if (!strcmp(t, "mlp.fc2.weight")) return set(rank, dims, 2, D, H, 0, 0);
  static const char *const vec[] = {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias",
                                    "mlp.fc2.bias", "ls1.gamma",    "ls2.gamma"};
  for (size_t i = 0; i < sizeof vec / sizeof *vec; i++)
    if (!strcmp(t, vec[i])) return set(rank, dims, 1, D, 0, 0, 0);
  return EC_ENOENT;
}

ec_status edm2_weights_expected_shape(edm2_metric m, const char *name, int *rank, int64_t dims[4]) {
  return m == EDM2_METRIC_FID ? inception_shape(name, rank, dims) : dinov2_shape(name, rank, dims);
}

/* Shapes agree when equal after dropping every dimension of size 1: a cls_token stored as
 * [1024] instead of [1, 1, 1024] holds the same numbers in the same order. */
static int same_shape(int ra, const int64_t *a, int rb, const int64_t *b) {
  int i = 0, j = 0;
  for (;;) {
    while (i < ra && a[i] == 1) i++;
    while (j < rb && b[j] == 1) j++;
    if (i == ra || j == rb) return i == ra && j == rb;
    if (a[i++] != b[j++]) return 0;
  }
}

ec_status edm2_weights_source(void *user, const char *name, float *dst, size_t n) {
  edm2_weights *w = user;
  const ec_st_file *f = &w->file;
  int rank;
  int64_t want[4];
  if (edm2_weights_expected_shape(w->metric, name, &rank, want))
    return ec_err(EC_EINVAL, "%s weights: the network asked for an unknown tensor %s", edm2_metric_name(w->metric),
                  name);
  int idx = ec_st_find(f, name);
  if (idx < 0)
    return ec_err(EC_EFORMAT, "%s: tensor %s is missing (not %s weights converted by tools/convert-weights?)",
                  f->path, name, edm2_metric_name(w->metric));
  const ec_st_tensor *t = &f->tensors[idx];
  char a[96], b[96];
  if (!same_shape(t->shape.ndim, t->shape.dims, rank, want) || (size_t)ec_shape_numel(&t->shape) != n) {
    ec_shape ws = ec_shape_make(rank, want);
    ec_shape_str(&t->shape, a, sizeof a);
    ec_shape_str(&ws, b, sizeof b);
    return ec_err(EC_EFORMAT, "%s: tensor %s has shape %s, the %s network needs %s", f->path, name, a,
                  edm2_metric_name(w->metric), b);
  }
  if (t->dtype != EC_F32 && t->dtype != EC_F16 && t->dtype != EC_BF16 && t->dtype != EC_F64)
    return ec_err(EC_EFORMAT, "%s: tensor %s is not floating point", f->path, name);
  ec_status st = ec_st_read(f, idx, EC_F32, dst, 0, (int64_t)n);
  if (st) return st;
  for (size_t i = 0; i < n; i++)
    if (!(dst[i] - dst[i] == 0))
      return ec_err(EC_EFORMAT, "%s: tensor %s holds a non-finite value at element %zu", f->path, name, i);
  return EC_OK;
}
