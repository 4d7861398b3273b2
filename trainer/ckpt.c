/* Checkpoint writing, finding and loading (see ckpt.h). */
#include "trainer/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/h5io.h"
#include "edm2c_config.h"
#include "posthoc/snapshot.h"

static const char *CKPT_PREFIX = "checkpoint-";

static void ckpt_name(int64_t nimg, char *buf, size_t size) {
  snprintf(buf, size, "%s%012" PRId64 ".h5", CKPT_PREFIX, nimg);
}

/* 1 when name is exactly checkpoint-<12 digits>.h5. */
static int parse_name(const char *name, int64_t *nimg) {
  size_t lp = strlen(CKPT_PREFIX);
  if (strlen(name) != lp + 12 + 3 || strncmp(name, CKPT_PREFIX, lp) || strcmp(name + lp + 12, ".h5")) return 0;
  int64_t v = 0;
  for (size_t i = lp; i < lp + 12; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    v = v * 10 + (name[i] - '0');
  }
  *nimg = v;
  return 1;
}

/* Every parameter (or buffer) tensor of `slab` as datasets of group `name` under loc. */
static ec_status write_group(hid_t loc, const char *name, const edm2_arch *a, edm2_kind kind, const float *slab) {
  hid_t g = -1;
  ec_status st = h5io_group_create(loc, name, &g);
  for (int i = 0; !st && i < a->n_tensors; i++) {
    const edm2_tensor *t = &a->tensors[i];
    if (t->kind != kind) continue;
    ec_shape s = edm2_tensor_ec_shape(t);
    st = h5io_write_tensor(g, t->name, &s, EC_F32, EC_F32, slab + t->offset, H5IO_CHECKSUM);
  }
  h5io_close(&g);
  return st;
}

ec_status edm2_ckpt_write(const char *dir, const edm2_ckpt_meta *m, const edm2_net *net, const edm2_adam *adam,
                          const edm2_ema *ema) {
  char name[64], path[4200];
  ckpt_name(m->nimg, name, sizeof name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  ec_atomic at;
  ec_status st = ec_atomic_begin(&at, path, 0);
  if (st) return st;
  hid_t f = -1, g = -1;
  const edm2_arch *a = &net->arch;
  if ((st = h5io_file_create(at.tmp_path, &f)) ||
      (st = h5io_attr_write_str(f, "format", "edm2c-checkpoint")) ||
      (st = h5io_attr_write_i64(f, "format_version", 1)) ||
      (st = h5io_attr_write_i64(f, "nimg", m->nimg)) ||
      (st = h5io_attr_write_i64(f, "batch_size", m->batch_size)) ||
      (st = h5io_attr_write_str(f, "preset", m->preset)) ||
      (st = h5io_attr_write_str(f, "config", m->config)) ||
      (st = h5io_attr_write_i64(f, "adam_step", adam->step)) ||
      (st = h5io_attr_write_f64(f, "elapsed", m->elapsed)) ||
      (st = h5io_attr_write_str(f, "edm2c_version", EDM2C_VERSION)) ||
      (st = write_group(f, "params", a, EDM2_PARAM, net->params)) ||
      (st = write_group(f, "buffers", a, EDM2_BUFFER, net->buffers)) ||
      (st = h5io_group_create(f, "adam", &g)) ||
      (st = write_group(g, "m", a, EDM2_PARAM, adam->m)) ||
      (st = write_group(g, "v", a, EDM2_PARAM, adam->v)))
    goto fail;
  h5io_close(&g);
  if ((st = h5io_group_create(f, "ema", &g))) goto fail;
  for (int k = 0; k < ema->n; k++) {
    char key[32];
    hid_t p = -1;
    snap_profile_key(ema->sigma_rel[k], key, sizeof key);
    if ((st = write_group(g, key, a, EDM2_PARAM, ema->avg[k])) || (st = h5io_group_open(g, key, &p)) ||
        (st = h5io_attr_write_f64(p, "sigma_rel", ema->sigma_rel[k])) ||
        (st = h5io_attr_write_f64(p, "gamma", ema->gamma[k]))) {
      h5io_close(&p);
      goto fail;
    }
    h5io_close(&p);
  }
  h5io_close(&g);
  if ((st = h5io_file_close(&f))) goto fail;
  return ec_atomic_commit(&at);
fail:
  h5io_close(&g);
  h5io_close(&f);
  ec_atomic_abort(&at);
  return ec_err_context(st, "writing checkpoint %s", path);
}

ec_status edm2_ckpt_latest(const char *dir, char **path, int64_t *nimg) {
  *path = NULL;
  *nimg = -1;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return EC_OK;
    return ec_err(EC_EIO, "%s: %s", dir, strerror(errno));
  }
  struct dirent *e;
  int64_t best = -1, v;
  while ((e = readdir(d)))
    if (parse_name(e->d_name, &v) && v > best) best = v;
  closedir(d);
  if (best < 0) return EC_OK;
  char name[64];
  ckpt_name(best, name, sizeof name);
  size_t n = strlen(dir) + strlen(name) + 2;
  *path = malloc(n);
  if (!*path) return ec_err(EC_ENOMEM, "out of memory");
  snprintf(*path, n, "%s/%s", dir, name);
  *nimg = best;
  return EC_OK;
}

ec_status edm2_ckpt_read_meta(const char *path, char **config, int64_t *nimg, int64_t *adam_step, double *elapsed) {
  hid_t f = -1;
  char *format = NULL;
  *config = NULL;
  ec_status st = h5io_file_open(path, &f);
  if (st) return st;
  int64_t version = 0;
  if ((st = h5io_attr_read_str(f, "format", &format))) goto done;
  if (strcmp(format, "edm2c-checkpoint")) {
    st = ec_err(EC_EFORMAT, "%s: format '%s' is not edm2c-checkpoint", path, format);
    goto done;
  }
  if ((st = h5io_attr_read_i64(f, "format_version", &version))) goto done;
  if (version != 1) {
    st = ec_err(EC_EFORMAT, "%s: checkpoint format_version %lld is not supported (1)%s", path, (long long)version,
                version > 1 ? "; upgrade edm2c" : "");
    goto done;
  }
  if ((st = h5io_attr_read_i64(f, "nimg", nimg)) || (st = h5io_attr_read_i64(f, "adam_step", adam_step)) ||
      (st = h5io_attr_read_f64(f, "elapsed", elapsed)) || (st = h5io_attr_read_str(f, "config", config)))
    goto done;
done:
  ec_freep(&format);
  h5io_close(&f);
  if (st) ec_freep(config);
  return st;
}

static ec_status read_group(hid_t loc, const char *group, const char *path, const edm2_arch *a, edm2_kind kind,
                            float *slab) {
  hid_t g = -1;
  ec_status st = h5io_group_open(loc, group, &g);
  if (st) return ec_err_context(st, "%s", path);
  for (int i = 0; !st && i < a->n_tensors; i++) {
    const edm2_tensor *t = &a->tensors[i];
    if (t->kind != kind) continue;
    st = h5io_read_tensor(g, t->name, EC_F32, slab + t->offset, t->numel);
    if (st) st = ec_err_context(st, "%s: %s/%s", path, group, t->name);
  }
  h5io_close(&g);
  return st;
}

ec_status edm2_ckpt_load(const char *path, edm2_net *net, edm2_adam *adam, edm2_ema *ema) {
  hid_t f = -1;
  ec_status st = h5io_file_open(path, &f);
  if (st) return st;
  const edm2_arch *a = &net->arch;
  if ((st = h5io_attr_read_i64(f, "adam_step", &adam->step)) ||
      (st = read_group(f, "params", path, a, EDM2_PARAM, net->params)) ||
      (st = read_group(f, "buffers", path, a, EDM2_BUFFER, net->buffers)) ||
      (st = read_group(f, "adam/m", path, a, EDM2_PARAM, adam->m)) ||
      (st = read_group(f, "adam/v", path, a, EDM2_PARAM, adam->v)))
    goto done;
  for (int k = 0; k < ema->n && !st; k++) {
    char group[64], key[32];
    snap_profile_key(ema->sigma_rel[k], key, sizeof key);
    snprintf(group, sizeof group, "ema/%s", key);
    st = read_group(f, group, path, a, EDM2_PARAM, ema->avg[k]);
  }
done:
  h5io_close(&f);
  return st;
}
