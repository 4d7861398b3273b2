/* Statistics files: HDF5 (edm2c-stats) and .npz; see stats_io.h and docs/formats.md. */
#include "metrics/stats_io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/h5io.h"

static const char *const metric_names[EDM2_METRIC_COUNT] = {"fid", "fd_dinov2"};
static const int64_t metric_dims[EDM2_METRIC_COUNT] = {2048, 1024};

const char *edm2_metric_name(edm2_metric m) {
  return (unsigned)m < EDM2_METRIC_COUNT ? metric_names[m] : "?";
}

int64_t edm2_metric_dim(edm2_metric m) { return (unsigned)m < EDM2_METRIC_COUNT ? metric_dims[m] : 0; }

ec_status edm2_metric_parse(const char *s, edm2_metric *m) {
  for (int i = 0; i < EDM2_METRIC_COUNT; i++)
    if (!strcmp(s, metric_names[i])) {
      *m = (edm2_metric)i;
      return EC_OK;
    }
  return ec_err(EC_EINVAL, "unknown metric '%s' (known: fid, fd_dinov2)", s);
}

ec_status edm2_moments_alloc(edm2_moments *m, int64_t dim) {
  memset(m, 0, sizeof *m);
  m->num_images = -1;
  if (dim < 1 || dim > (1 << 16)) return ec_err(EC_EINVAL, "statistics dimension %lld out of range", (long long)dim);
  m->mu = ec_calloc((size_t)dim, sizeof(double));
  m->sigma = ec_calloc((size_t)(dim * dim), sizeof(double));
  if (!m->mu || !m->sigma) {
    edm2_moments_free(m);
    return EC_ENOMEM;
  }
  m->dim = dim;
  return EC_OK;
}

void edm2_moments_free(edm2_moments *m) {
  ec_freep(&m->mu);
  ec_freep(&m->sigma);
  m->dim = 0;
}

void edm2_stats_file_free(edm2_stats_file *f) {
  for (int i = 0; i < EDM2_METRIC_COUNT; i++) edm2_moments_free(&f->metric[i]);
  edm2_moments_free(&f->unnamed);
}

ec_status edm2_moments_validate(const char *where, edm2_moments *m) {
  const int64_t D = m->dim;
  for (int64_t i = 0; i < D; i++)
    if (!isfinite(m->mu[i]))
      return ec_err(EC_EFORMAT, "%s: mu[%lld] is %s", where, (long long)i, isnan(m->mu[i]) ? "NaN" : "infinite");
  double amax = 0;
  for (int64_t k = 0; k < D * D; k++) {
    if (!isfinite(m->sigma[k]))
      return ec_err(EC_EFORMAT, "%s: sigma[%lld, %lld] is %s", where, (long long)(k / D),
                    (long long)(k % D), isnan(m->sigma[k]) ? "NaN" : "infinite");
    amax = fmax(amax, fabs(m->sigma[k]));
  }
  for (int64_t i = 0; i < D; i++)
    if (m->sigma[i * D + i] < 0)
      return ec_err(EC_EFORMAT, "%s: sigma[%lld, %lld] = %g is a negative variance: not a covariance matrix",
                    where, (long long)i, (long long)i, m->sigma[i * D + i]);
  const double tol = EDM2_SIGMA_SYM_TOL * amax;
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i + 1; j < D; j++) {
      double a = m->sigma[i * D + j], b = m->sigma[j * D + i];
      if (fabs(a - b) > tol)
        return ec_err(EC_EFORMAT,
                      "%s: sigma is not symmetric: sigma[%lld, %lld] = %.17g but sigma[%lld, %lld] = %.17g "
                      "(tolerance %.3g)",
                      where, (long long)i, (long long)j, a, (long long)j, (long long)i, b, tol);
    }
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = i + 1; j < D; j++)
      m->sigma[i * D + j] = m->sigma[j * D + i] = 0.5 * (m->sigma[i * D + j] + m->sigma[j * D + i]);
  return EC_OK;
}

/* ---- HDF5 ------------------------------------------------------------------------------------ */

static ec_status read_h5(const char *path, edm2_stats_file *f) {
  hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
  char *format = NULL;
  int64_t version = 0;
  ec_status st = h5io_file_open(path, &file);
  if (st) return st;
  if (!h5io_attr_exists(file, "format")) {
    st = ec_err(EC_EFORMAT, "%s: not an edm2c statistics file (no 'format' attribute)", path);
    goto done;
  }
  if ((st = h5io_attr_read_str(file, "format", &format))) goto done;
  if (strcmp(format, EDM2_STATS_FORMAT)) {
    st = ec_err(EC_EFORMAT, "%s: a '%s' file, not statistics (%s)", path, format, EDM2_STATS_FORMAT);
    goto done;
  }
  if ((st = h5io_attr_read_i64(file, "format_version", &version))) goto done;
  if (version > EDM2_STATS_FORMAT_VERSION) {
    st = ec_err(EC_EFORMAT, "%s: statistics format_version %lld is newer than this edm2c supports (%d); upgrade edm2c",
                path, (long long)version, EDM2_STATS_FORMAT_VERSION);
    goto done;
  }
  if (version < 1) {
    st = ec_err(EC_EFORMAT, "%s: invalid format_version %lld", path, (long long)version);
    goto done;
  }
  f->num_images = -1;
  if (h5io_attr_exists(file, "num_images") && (st = h5io_attr_read_i64(file, "num_images", &f->num_images)))
    goto done;
  int found = 0;
  for (int k = 0; k < EDM2_METRIC_COUNT; k++) {
    const char *name = metric_names[k];
    if (!h5io_exists(file, name)) continue;
    if (!h5io_is_group(file, name)) {
      st = ec_err(EC_EFORMAT, "%s:/%s: not a group", path, name);
      goto done;
    }
    if ((st = h5io_group_open(file, name, &g))) goto done;
    char where[1200];
    snprintf(where, sizeof where, "%s:/%s", path, name);
    for (int j = 0; j < 2; j++) {
      const char *ds = j ? "sigma" : "mu";
      if (!h5io_is_dataset(g, ds)) {
        st = ec_err(EC_EFORMAT, "%s/%s: dataset missing", where, ds);
        goto done;
      }
    }
    h5io_dset d = {.id = H5I_INVALID_HID};
    if ((st = h5io_dset_open(g, "mu", &d))) goto done;
    int64_t D = d.shape.ndim == 1 ? d.shape.dims[0] : -1;
    h5io_dset_close(&d);
    if (D < 1) {
      st = ec_err(EC_EFORMAT, "%s/mu: expected one dimension [D]", where);
      goto done;
    }
    if ((st = h5io_dset_open(g, "sigma", &d))) goto done;
    int ok = d.shape.ndim == 2 && d.shape.dims[0] == D && d.shape.dims[1] == D;
    h5io_dset_close(&d);
    if (!ok) {
      st = ec_err(EC_EFORMAT, "%s/sigma: expected shape [%lld, %lld] to match mu", where, (long long)D, (long long)D);
      goto done;
    }
    edm2_moments *m = &f->metric[k];
    if ((st = edm2_moments_alloc(m, D)) || (st = h5io_read_tensor(g, "mu", EC_F64, m->mu, D)) ||
        (st = h5io_read_tensor(g, "sigma", EC_F64, m->sigma, D * D)))
      goto done;
    m->num_images = f->num_images;
    if (h5io_attr_exists(g, "num_images") && (st = h5io_attr_read_i64(g, "num_images", &m->num_images)))
      goto done;
    if ((st = edm2_moments_validate(where, m))) goto done;
    h5io_close(&g);
    found++;
  }
  if (!found) st = ec_err(EC_EFORMAT, "%s: holds no statistics (neither /fid nor /fd_dinov2)", path);
done:
  ec_freep(&format);
  h5io_close(&g);
  h5io_close(&file);
  return st;
}

ec_status edm2_stats_write_h5(const char *path, const edm2_stats_file *f, int flags) {
  ec_atomic a;
  hid_t file = H5I_INVALID_HID, g = H5I_INVALID_HID;
  ec_status st = ec_atomic_begin(&a, path, flags);
  if (st) return st;
  if ((st = h5io_file_create(a.tmp_path, &file)) ||
      (st = h5io_attr_write_str(file, "format", EDM2_STATS_FORMAT)) ||
      (st = h5io_attr_write_i64(file, "format_version", EDM2_STATS_FORMAT_VERSION)) ||
      (st = h5io_attr_write_i64(file, "num_images", f->num_images)))
    goto fail;
  for (int k = 0; k < EDM2_METRIC_COUNT; k++) {
    const edm2_moments *m = &f->metric[k];
    if (!m->dim) continue;
    ec_shape s1 = ec_shape_make(1, (int64_t[]){m->dim});
    ec_shape s2 = ec_shape_make(2, (int64_t[]){m->dim, m->dim});
    if ((st = h5io_group_create(file, metric_names[k], &g)) ||
        (st = h5io_attr_write_i64(g, "num_images", m->num_images >= 0 ? m->num_images : f->num_images)) ||
        (st = h5io_write_tensor(g, "mu", &s1, EC_F64, EC_F64, m->mu, H5IO_CHECKSUM)) ||
        (st = h5io_write_tensor(g, "sigma", &s2, EC_F64, EC_F64, m->sigma, H5IO_CHECKSUM)))
      goto fail;
    h5io_close(&g);
  }
  if ((st = h5io_file_close(&file))) goto fail;
  return ec_atomic_commit(&a);
fail:
  h5io_close(&g);
  h5io_close(&file);
  ec_atomic_abort(&a);
  return st;
}

/* ---- .npy inside .npz -------------------------------------------------------------------------- */

/* A .npy member: version 1.0 header padded with spaces to a multiple of 64 bytes, '<f8', C order. */
static unsigned char *npy_encode(const double *data, int ndim, const int64_t *dims, size_t *size) {
  char hdr[256];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (");
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)dims[i], i + 1 < ndim ? " " : "");
    numel *= dims[i];
  }
  n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
  size_t total_hdr = 10 + (size_t)n + 1; /* magic(6) version(2) len(2) dict '\n' */
  size_t pad = (64 - total_hdr % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  *size = 10 + hlen + (size_t)numel * 8;
  unsigned char *buf = ec_malloc(*size);
  if (!buf) return NULL;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(hlen & 0xff);
  buf[9] = (unsigned char)(hlen >> 8);
  memcpy(buf + 10, hdr, (size_t)n);
  memset(buf + 10 + n, ' ', pad);
  buf[10 + hlen - 1] = '\n';
  memcpy(buf + 10 + hlen, data, (size_t)numel * 8); /* little-endian host (x86-64, aarch64) */
  return buf;
}

/* Parses a .npy member into a float64 array of the expected shape (ndim 1: [D] with D found here;
 * ndim 2: [D, D]). Accepts '<f8' and '<f4', C or Fortran order, versions 1–3. */
static ec_status npy_decode(const char *where, const unsigned char *b, size_t size, int ndim,
                            int64_t *dim, double **out) {
  *out = NULL;
  if (size < 10 || memcmp(b, "\x93NUMPY", 6))
    return ec_err(EC_EFORMAT, "%s: not a .npy array (bad magic)", where);
  size_t hlen, off;
  if (b[6] == 1) {
    hlen = (size_t)b[8] | (size_t)b[9] << 8;
    off = 10;
  } else if (b[6] == 2 || b[6] == 3) {
    if (size < 12) return ec_err(EC_EFORMAT, "%s: truncated .npy header", where);
    hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    off = 12;
  } else {
    return ec_err(EC_EFORMAT, "%s: unsupported .npy version %d", where, b[6]);
  }
  if (hlen > 65536 || off + hlen > size) return ec_err(EC_EFORMAT, "%s: truncated .npy header", where);
  char hdr[65537];
  memcpy(hdr, b + off, hlen);
  hdr[hlen] = 0;
  const char *p = strstr(hdr, "'descr'");
  int elsize = 0;
  if (p && (p = strchr(p + 7, '\''))) {
    if (!strncmp(p, "'<f8'", 5)) elsize = 8;
    else if (!strncmp(p, "'<f4'", 5)) elsize = 4;
    else {
      const char *e = strchr(p + 1, '\'');
      return ec_err(EC_EFORMAT, "%s: dtype %.*s is not float64 or float32 (little-endian)", where,
                    e ? (int)(e - p + 1) : 8, p);
    }
  }
  if (!elsize) return ec_err(EC_EFORMAT, "%s: .npy header has no 'descr'", where);
  int fortran = 0;
  if ((p = strstr(hdr, "'fortran_order'")) && (p = strchr(p + 15, ':'))) {
    while (*++p == ' ') {}
    fortran = !strncmp(p, "True", 4);
  }
  int64_t dims[3];
  int nd = 0;
  if (!(p = strstr(hdr, "'shape'")) || !(p = strchr(p, '(')))
    return ec_err(EC_EFORMAT, "%s: .npy header has no 'shape'", where);
  for (p++;;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 0 || nd == 3) return ec_err(EC_EFORMAT, "%s: bad .npy shape", where);
    dims[nd++] = v;
    p = end;
  }
  char shp[64];
  if (nd == 1) snprintf(shp, sizeof shp, "(%lld,)", (long long)dims[0]);
  else if (nd == 2) snprintf(shp, sizeof shp, "(%lld, %lld)", (long long)dims[0], (long long)dims[1]);
  else snprintf(shp, sizeof shp, "of %d dimensions", nd);
  if (ndim == 1) {
    if (nd != 1 || dims[0] < 1 || dims[0] > (1 << 16))
      return ec_err(EC_EFORMAT, "%s: shape %s, expected (D,)", where, shp);
    *dim = dims[0];
  } else if (nd != 2 || dims[0] != *dim || dims[1] != *dim) {
    return ec_err(EC_EFORMAT, "%s: shape %s, expected (%lld, %lld) to match mu", where, shp,
                  (long long)*dim, (long long)*dim);
  }
  const int64_t D = *dim, numel = ndim == 1 ? D : D * D;
  const unsigned char *data = b + off + hlen;
  if (size - off - hlen != (size_t)numel * (size_t)elsize)
    return ec_err(EC_EFORMAT, "%s: holds %zu data bytes, expected %lld", where, size - off - hlen,
                  (long long)(numel * elsize));
  double *x = ec_mallocarray((size_t)numel, sizeof(double));
  if (!x) return EC_ENOMEM;
  for (int64_t k = 0; k < numel; k++) {
    int64_t src = k;
    if (fortran && ndim == 2) src = (k % D) * D + k / D;
    if (elsize == 8) {
      memcpy(&x[k], data + src * 8, 8);
    } else {
      float v;
      memcpy(&v, data + src * 4, 4);
      x[k] = v;
    }
  }
  *out = x;
  return EC_OK;
}

static ec_status zip_fail(const char *path, zip_error_t *ze) {
  return ec_err(EC_EFORMAT, "%s: %s", path, zip_error_strerror(ze));
}

static ec_status npz_member(zip_t *z, const char *path, const char *name, unsigned char **buf, size_t *size) {
  *buf = NULL;
  zip_int64_t idx = zip_name_locate(z, name, 0);
  if (idx < 0) return ec_err(EC_EFORMAT, "%s: no '%s' array in the .npz", path, name);
  zip_stat_t sb;
  zip_stat_init(&sb);
  if (zip_stat_index(z, (zip_uint64_t)idx, 0, &sb) != 0) return zip_fail(path, zip_get_error(z));
  if (!(sb.valid & ZIP_STAT_SIZE) || sb.size > (zip_uint64_t)1 << 36)
    return ec_err(EC_EFORMAT, "%s:%s: bad member size", path, name);
  zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)idx, 0);
  if (!zf) return zip_fail(path, zip_get_error(z));
  unsigned char *b = ec_malloc((size_t)sb.size + 1);
  if (!b) {
    zip_fclose(zf);
    return EC_ENOMEM;
  }
  zip_int64_t got = 0, r;
  while ((r = zip_fread(zf, b + got, sb.size + 1 - (zip_uint64_t)got)) > 0) got += r;
  ec_status st = EC_OK;
  if (r < 0) st = ec_err(EC_EFORMAT, "%s:%s: %s", path, name, zip_error_strerror(zip_file_get_error(zf)));
  else if ((zip_uint64_t)got != sb.size)
    st = ec_err(EC_EFORMAT, "%s:%s: read %lld bytes, expected %llu", path, name, (long long)got,
                (unsigned long long)sb.size);
  zip_fclose(zf);
  if (st) {
    ec_freep(&b);
    return st;
  }
  *buf = b;
  *size = (size_t)sb.size;
  return EC_OK;
}

static ec_status read_npz(const char *path, edm2_stats_file *f) {
  int code = 0;
  zip_t *z = zip_open(path, ZIP_RDONLY, &code);
  if (!z) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    ec_status st = ec_err(EC_EFORMAT, "%s: not a readable .npz: %s", path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return st;
  }
  unsigned char *b = NULL;
  size_t size = 0;
  int64_t D = 0;
  double *mu = NULL, *sigma = NULL;
  char where[1100];
  ec_status st = npz_member(z, path, "mu.npy", &b, &size);
  if (!st) {
    snprintf(where, sizeof where, "%s:mu", path);
    st = npy_decode(where, b, size, 1, &D, &mu);
  }
  ec_freep(&b);
  if (!st) st = npz_member(z, path, "sigma.npy", &b, &size);
  if (!st) {
    snprintf(where, sizeof where, "%s:sigma", path);
    st = npy_decode(where, b, size, 2, &D, &sigma);
  }
  ec_freep(&b);
  zip_discard(z);
  if (!st) {
    f->is_npz = 1;
    f->num_images = -1;
    f->unnamed = (edm2_moments){.dim = D, .num_images = -1, .mu = mu, .sigma = sigma};
    st = edm2_moments_validate(path, &f->unnamed);
    return st;
  }
  ec_freep(&mu);
  ec_freep(&sigma);
  return st;
}

ec_status edm2_stats_write_npz(const char *path, const edm2_moments *m, int flags) {
  ec_atomic a;
  ec_status st = ec_atomic_begin(&a, path, flags);
  if (st) return st;
  size_t nmu = 0, nsig = 0;
  unsigned char *bmu = npy_encode(m->mu, 1, (int64_t[]){m->dim}, &nmu);
  unsigned char *bsig = npy_encode(m->sigma, 2, (int64_t[]){m->dim, m->dim}, &nsig);
  zip_t *z = NULL;
  if (!bmu || !bsig) {
    st = EC_ENOMEM;
    goto fail;
  }
  int code = 0;
  z = zip_open(a.tmp_path, ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!z) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    st = ec_err(EC_EIO, "%s: %s", a.tmp_path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    goto fail;
  }
  const char *names[2] = {"mu.npy", "sigma.npy"};
  unsigned char *bufs[2] = {bmu, bsig};
  size_t sizes[2] = {nmu, nsig};
  for (int i = 0; i < 2; i++) {
    zip_source_t *src = zip_source_buffer(z, bufs[i], sizes[i], 0);
    zip_int64_t idx = src ? zip_file_add(z, names[i], src, ZIP_FL_OVERWRITE | ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) {
      if (src) zip_source_free(src);
      st = ec_err(EC_EIO, "%s: %s", path, zip_strerror(z));
      goto fail;
    }
    if (zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0) != 0) {
      st = ec_err(EC_EIO, "%s: %s", path, zip_strerror(z));
      goto fail;
    }
  }
  if (zip_close(z) != 0) {
    st = ec_err(EC_EIO, "%s: %s", path, zip_strerror(z));
    goto fail;
  }
  z = NULL;
  ec_freep(&bmu);
  ec_freep(&bsig);
  return ec_atomic_commit(&a);
fail:
  if (z) zip_discard(z);
  ec_freep(&bmu);
  ec_freep(&bsig);
  ec_atomic_abort(&a);
  return st;
}

/* ---- either ------------------------------------------------------------------------------------ */

ec_status edm2_stats_read(const char *path, edm2_stats_file *f) {
  memset(f, 0, sizeof *f);
  FILE *fp = fopen(path, "rb");
  if (!fp) return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: %s", path, strerror(errno));
  unsigned char magic[8] = {0};
  size_t got = fread(magic, 1, sizeof magic, fp);
  fclose(fp);
  ec_status st;
  if (got == 8 && !memcmp(magic, "\x89HDF\r\n\x1a\n", 8)) st = read_h5(path, f);
  else if (got >= 4 && (!memcmp(magic, "PK\x03\x04", 4) || !memcmp(magic, "PK\x05\x06", 4))) st = read_npz(path, f);
  else st = ec_err(EC_EFORMAT, "%s: neither an HDF5 statistics file nor a .npz", path);
  if (st) edm2_stats_file_free(f);
  return st;
}
