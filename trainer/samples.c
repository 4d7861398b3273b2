/* Samples files and noise files (samples.h). */
#include "trainer/samples.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "edm2c_config.h"

static const char *shape_str(const ec_shape *s, char *buf, size_t size) {
  size_t k = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < s->ndim && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
  if (k < size) snprintf(buf + k, size - k, "]");
  return buf;
}

static ec_status read_labels(edm2_noise_file *f, int n, int L, const char *net) {
  const char *path = f->path;
  char got[128];
  if (!h5io_is_dataset(f->file, "labels"))
    return ec_err(EC_EFORMAT,
                  "%s: no dataset 'labels' ([%d, %d], one-hot) for the conditional %s; give --class K instead", path,
                  n, L, net);
  h5io_dset d = {.id = H5I_INVALID_HID};
  ec_status st = h5io_dset_open(f->file, "labels", &d);
  if (st) return st;
  size_t nl = (size_t)n * (size_t)L;
  if (d.shape.ndim != 2 || d.shape.dims[0] != n || d.shape.dims[1] != L) {
    st = ec_err(EC_EINVAL, "%s: labels has shape %s; %d seeds of the network need [%d, %d]", path,
                shape_str(&d.shape, got, sizeof got), n, n, L);
  } else if (!(f->labels = ec_mallocarray(nl, sizeof *f->labels))) {
    st = ec_err(EC_ENOMEM, "%s: out of memory for labels", path);
  } else if (!(st = h5io_dset_read(&d, EC_F32, f->labels, 0, (int64_t)nl))) {
    for (size_t i = 0; i < nl; i++)
      if (!isfinite(f->labels[i])) {
        st = ec_err(EC_EINVAL, "%s: labels hold NaN or Inf (image %zu)", path, i / (size_t)L);
        break;
      }
  }
  h5io_dset_close(&d);
  return st;
}

ec_status edm2_noise_open(edm2_noise_file *f, const char *path, int n, int C, int R, int L, const char *net) {
  *f = (edm2_noise_file){.path = path, .file = H5I_INVALID_HID, .noise = {.id = H5I_INVALID_HID},
                         .M = (size_t)C * R * R};
  char got[128];
  ec_status st = h5io_file_open(path, &f->file);
  if (st) return st;
  if (!h5io_is_dataset(f->file, "noise")) {
    st = ec_err(EC_EFORMAT, "%s: no dataset 'noise' (the initial noise, [%d, %d, %d, %d])", path, n, C, R, R);
    goto done;
  }
  if ((st = h5io_dset_open(f->file, "noise", &f->noise))) goto done;
  const ec_shape *s = &f->noise.shape;
  if (s->ndim != 4 || s->dims[0] != n || s->dims[1] != C || s->dims[2] != R || s->dims[3] != R) {
    st = ec_err(EC_EINVAL, "%s: noise has shape %s; %d seeds of the network's images need [%d, %d, %d, %d]", path,
                shape_str(s, got, sizeof got), n, n, C, R, R);
    goto done;
  }
  /* Finite values, checked now so that a bad file stops the run before any image is made. */
  size_t total = (size_t)n * f->M, chunk = 1 << 20;
  float *buf = ec_mallocarray(total < chunk ? total : chunk, sizeof *buf);
  if (!buf) {
    st = ec_err(EC_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  for (size_t i = 0; i < total && !st; i += chunk) {
    size_t k = total - i < chunk ? total - i : chunk;
    if ((st = h5io_dset_read(&f->noise, EC_F32, buf, (int64_t)i, (int64_t)k))) break;
    for (size_t e = 0; e < k; e++)
      if (!isfinite(buf[e])) {
        st = ec_err(EC_EINVAL, "%s: noise holds %s at image %zu (element %zu)", path, isnan(buf[e]) ? "NaN" : "Inf",
                    (i + e) / f->M, i + e);
        break;
      }
  }
  ec_freep(&buf);
  if (!st && L > 0) st = read_labels(f, n, L, net);
done:
  if (st) edm2_noise_close(f);
  return st;
}

ec_status edm2_noise_read(const edm2_noise_file *f, int i, float *out) {
  return h5io_dset_read(&f->noise, EC_F32, out, (int64_t)i * (int64_t)f->M, (int64_t)f->M);
}

void edm2_noise_close(edm2_noise_file *f) {
  h5io_dset_close(&f->noise);
  h5io_close(&f->file);
  ec_freep(&f->labels);
}

ec_status edm2_samples_write(const char *path, int flags, const edm2_samples_meta *m, int n, int C, int R, int L,
                             const void *x, const int64_t *seeds, const float *noise, const float *labels) {
  ec_atomic at = {.slot = -1};
  hid_t f = H5I_INVALID_HID;
  ec_status st = ec_atomic_begin(&at, path, flags);
  if (st == EC_EEXIST) st = ec_err(EC_EEXIST, "%s exists; give --force to replace it", path);
  if (st) return st;
  ec_shape xs = {.ndim = 4, .dims = {n, C, R, R}};
  ec_shape ns = {.ndim = 1, .dims = {n}};
  ec_shape ls = {.ndim = 2, .dims = {n, L}};
  struct {
    const char *name, *value;
  } attrs[] = {{"format", EDM2_SAMPLES_FORMAT}, {"net", m->net},           {"net_format", m->net_format},
               {"profile", m->profile},         {"preset", m->preset},     {"config", m->config},
               {"gnet", m->gnet},               {"gnet_format", m->gnet_format}, {"gprofile", m->gprofile},
               {"gpreset", m->gpreset},         {"gconfig", m->gconfig},   {"options", m->options},
               {"edm2c_version", EDM2C_VERSION}};
  if ((st = h5io_file_create(at.tmp_path, &f)) || (st = h5io_attr_write_i64(f, "format_version", 1))) goto done;
  for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
    if ((st = h5io_attr_write_str(f, attrs[i].name, attrs[i].value ? attrs[i].value : ""))) goto done;
  if ((st = h5io_write_tensor(f, "x", &xs, EC_F32, EC_F32, x, H5IO_CHECKSUM)) ||
      (st = h5io_write_tensor(f, "seeds", &ns, EC_I64, EC_I64, seeds, H5IO_CHECKSUM)) ||
      (st = h5io_write_tensor(f, "noise", &xs, EC_F32, EC_F32, noise, H5IO_CHECKSUM)) ||
      (L > 0 && (st = h5io_write_tensor(f, "labels", &ls, EC_F32, EC_F32, labels, H5IO_CHECKSUM))) ||
      (st = h5io_file_close(&f)))
    goto done;
  st = ec_atomic_commit(&at);
done:
  h5io_close(&f);
  if (st) ec_atomic_abort(&at);
  return st;
}
