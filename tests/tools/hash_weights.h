/* Safetensors files of the feature networks' deterministic test weights (inception_fid_hash_source,
 * dinov2_hash_source), laid out as tools/convert-weights writes the real ones: every tensor the
 * network reads, under its state-dict name and with the checkpoint's shape. Shared by
 * tests/tools/hash_weights.c (the CLI tests' weights) and tests/unit/test_detector.c.
 *
 * `spoil` damages the file for bad-input tests: NULL, or "missing:NAME" (leave NAME out),
 * "shape:NAME" (store NAME with its dimensions reversed), "nan:NAME" (its first element NaN),
 * "huge:NAME" (every element 3e38, so that activations overflow). */
#ifndef EDM2C_TESTS_HASH_WEIGHTS_H
#define EDM2C_TESTS_HASH_WEIGHTS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"
#include "metrics/dinov2.h"
#include "metrics/inception.h"
#include "metrics/weights.h"

/* The i-th tensor name of metric m's network (NULL past the end), into buf. */
static inline const char *hash_weights_name(edm2_metric m, int i, char *buf, size_t cap) {
  if (m == EDM2_METRIC_FID) {
    static const char *const sfx[5] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    const char *layer = inception_fid_layer(i / 5, NULL, NULL, NULL, NULL);
    if (!layer) return NULL;
    snprintf(buf, cap, "%s.%s", layer, sfx[i % 5]);
    return buf;
  }
  static const char *const head[4] = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"};
  static const char *const blk[14] = {"norm1.weight", "norm1.bias",     "attn.qkv.weight", "attn.qkv.bias",
                                      "attn.proj.weight", "attn.proj.bias", "ls1.gamma",  "norm2.weight",
                                      "norm2.bias",   "mlp.fc1.weight", "mlp.fc1.bias",  "mlp.fc2.weight",
                                      "mlp.fc2.bias", "ls2.gamma"};
  if (i < 4) return snprintf(buf, cap, "%s", head[i]), buf;
  i -= 4;
  if (i < 14 * DINOV2_DEPTH) return snprintf(buf, cap, "blocks.%d.%s", i / 14, blk[i % 14]), buf;
  i -= 14 * DINOV2_DEPTH;
  if (i < 2) return snprintf(buf, cap, "norm.%s", i ? "bias" : "weight"), buf;
  return NULL;
}

static inline int hash_weights_spoils(const char *spoil, const char *kind, const char *name) {
  size_t k = strlen(kind);
  return spoil && !strncmp(spoil, kind, k) && spoil[k] == ':' && !strcmp(spoil + k + 1, name);
}

/* Writes the file (dtype EC_F32 or EC_F16). Returns 0 on success, prints the error otherwise. */
static inline int hash_weights_write(edm2_metric m, const char *path, ec_dtype dtype, const char *spoil) {
  ec_st_writer w = {0};
  ec_status st = EC_OK;
  char name[128];
  size_t cap = 0;
  for (int i = 0; !st && hash_weights_name(m, i, name, sizeof name); i++) {
    if (hash_weights_spoils(spoil, "missing", name)) continue;
    int rank;
    int64_t d[4], r[4];
    edm2_weights_expected_shape(m, name, &rank, d);
    if (hash_weights_spoils(spoil, "shape", name))
      for (int k = 0; k < rank; k++) r[k] = d[rank - 1 - k];
    else
      memcpy(r, d, sizeof d);
    ec_shape s = ec_shape_make(rank, r);
    if ((size_t)ec_shape_numel(&s) > cap) cap = (size_t)ec_shape_numel(&s);
    st = ec_st_writer_add(&w, name, dtype, s);
  }
  if (!st) st = ec_st_writer_meta(&w, "format", "edm2c-weights");
  if (!st) st = ec_st_writer_meta(&w, "network", edm2_metric_name(m));
  if (!st) st = ec_st_writer_meta(&w, "source", "hash weights (tests/tools/hash_weights.h)");
  float *buf = malloc(cap * sizeof(float) + 4);
  if (!buf) st = EC_ENOMEM;
  if (!st) st = ec_st_writer_begin(&w, path);
  for (int i = 0; !st && hash_weights_name(m, i, name, sizeof name); i++) {
    if (hash_weights_spoils(spoil, "missing", name)) continue;
    int rank;
    int64_t d[4];
    edm2_weights_expected_shape(m, name, &rank, d);
    ec_shape s = ec_shape_make(rank, d);
    size_t n = (size_t)ec_shape_numel(&s);
    st = m == EDM2_METRIC_FID ? inception_fid_hash_source(NULL, name, buf, n) : dinov2_hash_source(NULL, name, buf, n);
    if (hash_weights_spoils(spoil, "nan", name)) buf[0] = NAN;
    if (hash_weights_spoils(spoil, "huge", name))
      for (size_t k = 0; k < n; k++) buf[k] = 3e38f;
    if (!st) st = ec_st_writer_write(&w, EC_F32, buf, (int64_t)n);
  }
  if (!st) st = ec_st_writer_finish(&w);
  ec_st_writer_free(&w);
  free(buf);
  if (st) fprintf(stderr, "hash_weights: %s: %s\n", path, ec_errmsg());
  return st ? 1 : 0;
}

#endif
