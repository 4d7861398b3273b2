/* A tiny reader for the golden files in tests/golden (tests/golden/gen_*.py write them),
 * included by the unit tests. Static functions only; it reads whole datasets of one or two
 * dimensions into malloc'd arrays through the HDF5 C API, independently of core/h5io. */
#ifndef EDM2C_TESTS_GOLDEN_H5_H
#define EDM2C_TESTS_GOLDEN_H5_H

#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The golden file, found relative to this source file (meson compiles with paths relative to the
 * build directory, where tests run) or the repository root; EDM2C_GOLDEN_DIR overrides. */
static inline hid_t golden_open_file(const char *name) {
  static char path[1024];
  const char *env = getenv("EDM2C_GOLDEN_DIR");
  char here[1024];
  snprintf(here, sizeof here, "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(here, sizeof here, ".");
  const char *cands[4][2] = {
      {env ? env : "", ""}, {here, "/../golden"}, {"tests/golden", ""}, {"../tests/golden", ""}};
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  for (int i = 0; i < 4; i++) {
    if (i == 0 && !env) continue;
    int len = snprintf(path, sizeof path, "%s%s/%s", cands[i][0], cands[i][1], name);
    if (len > 0 && (size_t)len < sizeof path && access(path, R_OK) == 0) return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  }
  return H5I_INVALID_HID;
}

static inline hid_t golden_open(void) { return golden_open_file("posthoc_solver.h5"); }

/* Reads dataset `name` converted to `type` (H5T_NATIVE_DOUBLE, _INT64, _INT); rows/cols get the
 * shape (cols = 1 for 1-D). NULL when missing. */
static inline void *golden_read(hid_t f, const char *name, hid_t type, size_t elsize, size_t *rows,
                                size_t *cols) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t s = H5Dget_space(d);
  hsize_t dims[2] = {1, 1};
  int nd = H5Sget_simple_extent_ndims(s);
  void *buf = NULL;
  if (nd >= 0 && nd <= 2 && H5Sget_simple_extent_dims(s, dims, NULL) == nd) {
    if (nd == 1) dims[1] = 1;
    buf = malloc((size_t)(dims[0] * dims[1]) * elsize + 1);
    if (buf && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
      free(buf);
      buf = NULL;
    }
  }
  H5Sclose(s);
  H5Dclose(d);
  if (rows) *rows = (size_t)dims[0];
  if (cols) *cols = (size_t)dims[1];
  return buf;
}

static inline double *golden_f64(hid_t f, const char *name, size_t *rows, size_t *cols) {
  return golden_read(f, name, H5T_NATIVE_DOUBLE, sizeof(double), rows, cols);
}
static inline int64_t *golden_i64(hid_t f, const char *name, size_t *rows) {
  return golden_read(f, name, H5T_NATIVE_INT64, sizeof(int64_t), rows, NULL);
}
static inline int *golden_int(hid_t f, const char *name, size_t *rows) {
  return golden_read(f, name, H5T_NATIVE_INT, sizeof(int), rows, NULL);
}

/* Reads a float dataset of any rank, flattened, as float32; numel gets its size. NULL when
 * missing. */
static inline float *golden_f32_flat(hid_t f, const char *name, size_t *numel) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return NULL;
  hid_t s = H5Dget_space(d);
  hssize_t n = H5Sget_simple_extent_npoints(s);
  float *buf = n >= 0 ? malloc((size_t)n * sizeof(float) + 4) : NULL;
  if (buf && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    free(buf);
    buf = NULL;
  }
  H5Sclose(s);
  H5Dclose(d);
  if (numel) *numel = n >= 0 ? (size_t)n : 0;
  return buf;
}

/* A string attribute (variable or fixed length) as a malloc'd string; NULL when missing. */
static inline char *golden_attr_str(hid_t f, const char *obj, const char *attr) {
  hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return NULL;
  hid_t t = H5Aget_type(a);
  char *out = NULL;
  if (H5Tget_class(t) == H5T_STRING) {
    if (H5Tis_variable_str(t) > 0) {
      char *v = NULL;
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, H5T_VARIABLE);
      H5Tset_cset(mt, H5Tget_cset(t));
      if (H5Aread(a, mt, &v) >= 0 && v) {
        out = strdup(v);
        H5free_memory(v);
      }
      H5Tclose(mt);
    } else {
      size_t n = H5Tget_size(t);
      out = calloc(n + 1, 1);
      if (out && H5Aread(a, t, out) < 0) {
        free(out);
        out = NULL;
      }
    }
  }
  H5Tclose(t);
  H5Aclose(a);
  return out;
}

static inline double golden_attr_f64(hid_t f, const char *obj, const char *attr) {
  double v = NAN;
  hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = NAN;
    H5Aclose(a);
  }
  return v;
}

#endif
