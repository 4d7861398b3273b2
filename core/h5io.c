/* HDF5 wrappers; see h5io.h. */
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"
#include "h5direct.h"
#include "half.h"

/* Writes and converted reads go through buffers of this many elements, so memory stays bounded
 * whatever the tensor size. */
enum { PIECE_ELEMS = 1 << 20 };
/* Chunks of about this many bytes: large enough for few index entries, small enough that the
 * default chunk cache holds one and a slice read decompresses little it does not need. */
enum { CHUNK_BYTES = 1 << 20 };

/* HDF5 1.10 crashes at exit when it tries to close again a file whose H5Fclose failed (a full
 * disk while flushing): it keeps the half-closed file in its table. Our programs close every file
 * they open explicitly, so HDF5's own clean-up at exit is not needed; turn it off before the
 * first HDF5 call of the process (H5dont_atexit must come first, hence a constructor). */
__attribute__((constructor)) static void no_hdf5_atexit(void) { H5dont_atexit(); }

/* HDF5 keeps its error stack (and its auto-print setting) per thread. */
static void quiet_hdf5(void) {
  static _Thread_local int done;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

hid_t h5io_type_f16(void) {
  static hid_t t = H5I_INVALID_HID;
  static int init;
  /* Created once; HDF5's own global lock makes the calls safe, and a racing second creation
   * would only leak one type id. */
  if (!init) {
    hid_t x = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(x, 15, 10, 5, 0, 10);
    H5Tset_size(x, 2);
    H5Tset_ebias(x, 15);
    H5Tlock(x);
    t = x;
    init = 1;
  }
  return t;
}

void h5io_close(hid_t *id) {
  if (!id || *id < 0) {
    if (id) *id = H5I_INVALID_HID;
    return;
  }
  switch (H5Iget_type(*id)) {
  case H5I_FILE: H5Fclose(*id); break;
  case H5I_GROUP: H5Gclose(*id); break;
  case H5I_DATASET: H5Dclose(*id); break;
  case H5I_DATASPACE: H5Sclose(*id); break;
  case H5I_DATATYPE: H5Tclose(*id); break;
  case H5I_ATTR: H5Aclose(*id); break;
  case H5I_GENPROP_LST: H5Pclose(*id); break;
  default: break;
  }
  *id = H5I_INVALID_HID;
}

/* ---- error translation ---------------------------------------------------------------------- */

typedef struct {
  char innermost[512];
  int checksum, truncated, nospace;
} h5err_info;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
  h5err_info *info = data;
  const char *d = e->desc ? e->desc : "";
  if (n == 0) snprintf(info->innermost, sizeof info->innermost, "%s", d);
  if (strstr(d, "Fletcher32") || strstr(d, "checksum")) info->checksum = 1;
  if (e->min_num == H5E_TRUNCATED || strstr(d, "truncated file")) info->truncated = 1;
  if (strstr(d, "errno = 28") || strstr(d, "errno = 27") || strstr(d, "No space left") ||
      strstr(d, "File too large"))
    info->nospace = 1;
  return 0;
}

static const char *where_child(hid_t loc, const char *name);

/* Records "<where>: <what>: <reason>" from the current HDF5 error stack and returns the code
 * that best describes it (fallback when nothing specific is recognised). <where> is the object
 * `loc` (or its child `name`), or the path `name` when loc is invalid.
 *
 * Every HDF5 API call clears the thread's error stack on entry, so this must run right after
 * the failing call, before any close; it reads the stack before asking HDF5 for names. */
static ec_status h5fail(ec_status fallback, hid_t loc, const char *name, const char *what) {
  h5err_info info = {{0}, 0, 0, 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &info);
  H5Eclear2(H5E_DEFAULT);
  char where[1100];
  snprintf(where, sizeof where, "%s",
           loc < 0 ? name : name ? where_child(loc, name) : h5io_where(loc));
  if (info.checksum)
    return ec_err(EC_ECHECKSUM, "%s: %s: checksum mismatch (Fletcher-32): the stored data is corrupted",
                  where, what);
  if (info.truncated)
    return ec_err(EC_EFORMAT, "%s: %s: the file is truncated (an incomplete copy or write?)", where,
                  what);
  if (info.nospace)
    return ec_err(EC_ENOSPC, "%s: %s: no space left on device (or file size limit reached)", where,
                  what);
  if (info.innermost[0]) return ec_err(fallback, "%s: %s: %s", where, what, info.innermost);
  return ec_err(fallback, "%s: %s", where, what);
}

const char *h5io_where(hid_t obj) {
  static _Thread_local char buf[1024];
  char file[512] = "?", path[480] = "";
  if (H5Fget_name(obj, file, sizeof file) < 0) snprintf(file, sizeof file, "?");
  if (H5Iget_name(obj, path, sizeof path) < 0) path[0] = 0;
  if (!path[0] || !strcmp(path, "/"))
    snprintf(buf, sizeof buf, "%s", file);
  else
    snprintf(buf, sizeof buf, "%s:%s", file, path);
  return buf;
}

/* "<file>:<path of loc>/<name>" for objects that could not be opened. */
static const char *where_child(hid_t loc, const char *name) {
  static _Thread_local char buf[1100];
  const char *w = h5io_where(loc);
  snprintf(buf, sizeof buf, "%s%s%s", w, strchr(w, ':') ? "/" : ":/", name);
  return buf;
}

/* ---- files and groups ----------------------------------------------------------------------- */

/* File access properties with a small metadata cache: readers keep hundreds of snapshot files
 * open at once and writers up to one file per reconstruction target, and HDF5's default
 * (2 MiB initial size) would cost 2 MiB of memory per file. */
static hid_t small_cache_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5AC_cache_config_t mdc;
  mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Pget_mdc_config(fapl, &mdc) >= 0) {
    mdc.set_initial_size = 1;
    mdc.initial_size = 64 * 1024;
    mdc.min_size = 64 * 1024;
    mdc.max_size = 4 * 1024 * 1024;
    H5Pset_mdc_config(fapl, &mdc);
  }
  return fapl;
}

ec_status h5io_file_create(const char *path, hid_t *file) {
  quiet_hdf5();
  *file = H5I_INVALID_HID;
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  /* No modification times in object headers: the same content gives the same bytes (a resumed
   * training run rewrites its snapshots identically). */
  H5Pset_obj_track_times(fcpl, 0);
  hid_t fapl = small_cache_fapl();
  *file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  ec_status s = *file < 0 ? h5fail(EC_EIO, H5I_INVALID_HID, path, "cannot create HDF5 file") : EC_OK;
  H5Pclose(fapl);
  H5Pclose(fcpl);
  return s;
}

ec_status h5io_file_open(const char *path, hid_t *file) {
  quiet_hdf5();
  *file = H5I_INVALID_HID;
  struct stat st;
  if (stat(path, &st) != 0)
    return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "cannot open %s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return ec_err(EC_EFORMAT, "%s is a directory, not a file", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ec_err(EC_EIO, "cannot read %s: %s", path, strerror(errno));
  close(fd);
  htri_t is = H5Fis_hdf5(path);
  if (is <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return ec_err(EC_EFORMAT, "%s is not an HDF5 file (%lld bytes; no HDF5 signature)", path,
                  (long long)st.st_size);
  }
  hid_t fapl = small_cache_fapl();
  H5Pset_evict_on_close(fapl, 1); /* metadata of closed objects leaves the cache */
  *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  ec_status s = *file < 0 ? h5fail(EC_EFORMAT, H5I_INVALID_HID, path, "cannot open HDF5 file") : EC_OK;
  H5Pclose(fapl);
  return s;
}

ec_status h5io_file_close(hid_t *file) {
  if (*file < 0) return EC_OK;
  char name[512] = "?";
  H5Fget_name(*file, name, sizeof name);
  herr_t r = H5Fclose(*file);
  *file = H5I_INVALID_HID;
  if (r < 0) return h5fail(EC_EIO, H5I_INVALID_HID, name, "cannot finish writing the file");
  return EC_OK;
}

ec_status h5io_group_create(hid_t loc, const char *name, hid_t *group) {
  quiet_hdf5();
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_obj_track_times(gcpl, 0);
  *group = H5Gcreate2(loc, name, lcpl, gcpl, H5P_DEFAULT);
  ec_status s = *group < 0 ? h5fail(EC_EHDF5, loc, name, "cannot create group") : EC_OK;
  H5Pclose(lcpl);
  H5Pclose(gcpl);
  return s;
}

ec_status h5io_group_open(hid_t loc, const char *name, hid_t *group) {
  quiet_hdf5();
  *group = H5I_INVALID_HID;
  if (!h5io_is_group(loc, name))
    return ec_err(EC_ENOENT, "%s: group missing", where_child(loc, name));
  *group = H5Gopen2(loc, name, H5P_DEFAULT);
  if (*group < 0) return h5fail(EC_EFORMAT, loc, name, "cannot open group");
  return EC_OK;
}

int h5io_exists(hid_t loc, const char *path) {
  quiet_hdf5();
  /* H5Lexists fails on a missing intermediate component, so test each prefix in turn. */
  char buf[1024];
  size_t n = strlen(path);
  if (n >= sizeof buf) return 0;
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char save = buf[i];
    buf[i] = '\0';
    htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
    buf[i] = save;
    if (e <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return 0;
    }
  }
  return 1;
}

static int object_type_is(hid_t loc, const char *name, H5O_type_t type) {
  if (!h5io_exists(loc, name)) return 0;
  H5O_info_t info;
  /* basic fields only: the full H5Oget_info also counts attributes and reads header details */
  if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return 0;
  }
  return info.type == type;
}

int h5io_is_group(hid_t loc, const char *name) { return object_type_is(loc, name, H5O_TYPE_GROUP); }

int h5io_is_dataset(hid_t loc, const char *name) {
  return object_type_is(loc, name, H5O_TYPE_DATASET);
}

typedef struct {
  char **names;
  int count, cap, failed;
} name_list;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  name_list *l = data;
  if (l->count == l->cap) {
    int cap = l->cap ? 2 * l->cap : 32;
    char **n = ec_realloc(l->names, (size_t)cap, sizeof *n);
    if (!n) {
      l->failed = 1;
      return -1;
    }
    l->names = n;
    l->cap = cap;
  }
  if (!(l->names[l->count] = ec_strdup(name))) {
    l->failed = 1;
    return -1;
  }
  l->count++;
  return 0;
}

ec_status h5io_list(hid_t group, char ***names, int *count) {
  quiet_hdf5();
  *names = NULL;
  *count = 0;
  name_list l = {NULL, 0, 0, 0};
  hsize_t idx = 0;
  /* Creation order when the group tracks it (ours), else name order (h5py's default). */
  herr_t r = H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, list_cb, &l);
  if (r < 0 && !l.failed) {
    H5Eclear2(H5E_DEFAULT);
    h5io_free_names(&l.names, l.count);
    l = (name_list){NULL, 0, 0, 0};
    idx = 0;
    r = H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &l);
  }
  if (r < 0) {
    ec_status s = l.failed ? EC_ENOMEM : h5fail(EC_EFORMAT, group, NULL, "cannot list group");
    h5io_free_names(&l.names, l.count);
    return s;
  }
  *names = l.names;
  *count = l.count;
  return EC_OK;
}

void h5io_free_names(char ***names, int count) {
  if (!*names) return;
  for (int i = 0; i < count; i++) ec_freep(&(*names)[i]);
  ec_freep(names);
}

/* ---- attributes ----------------------------------------------------------------------------- */

int h5io_attr_exists(hid_t obj, const char *name) {
  quiet_hdf5();
  htri_t e = H5Aexists(obj, name);
  if (e < 0) H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

static ec_status attr_write(hid_t obj, const char *name, hid_t type, const void *value) {
  quiet_hdf5();
  if (h5io_attr_exists(obj, name) && H5Adelete(obj, name) < 0)
    return h5fail(EC_EHDF5, obj, NULL, "cannot replace attribute");
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t r = a < 0 ? -1 : H5Awrite(a, type, value);
  ec_status s = EC_OK;
  if (r < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot write attribute '%s'", name);
    s = h5fail(EC_EHDF5, obj, NULL, what);
  }
  h5io_close(&a);
  h5io_close(&space);
  return s;
}

static hid_t vlen_str_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

ec_status h5io_attr_write_str(hid_t obj, const char *name, const char *value) {
  hid_t t = vlen_str_type();
  ec_status s = attr_write(obj, name, t, &value);
  h5io_close(&t);
  return s;
}

ec_status h5io_attr_write_i64(hid_t obj, const char *name, int64_t value) {
  return attr_write(obj, name, H5T_STD_I64LE, &value);
}

ec_status h5io_attr_write_f64(hid_t obj, const char *name, double value) {
  return attr_write(obj, name, H5T_IEEE_F64LE, &value);
}

/* Opens attribute `name`, checking that it exists, is scalar (or one element) and of `cls`. */
static ec_status attr_open(hid_t obj, const char *name, H5T_class_t cls, const char *cls_name,
                           hid_t *a, hid_t *ftype) {
  quiet_hdf5();
  *a = *ftype = H5I_INVALID_HID;
  if (!h5io_attr_exists(obj, name))
    return ec_err(EC_ENOENT, "%s: attribute '%s' missing", h5io_where(obj), name);
  *a = H5Aopen(obj, name, H5P_DEFAULT);
  if (*a < 0) return h5fail(EC_EFORMAT, obj, NULL, "cannot open attribute");
  *ftype = H5Aget_type(*a);
  hid_t space = H5Aget_space(*a);
  hssize_t npoints = H5Sget_simple_extent_npoints(space);
  h5io_close(&space);
  H5T_class_t c = H5Tget_class(*ftype);
  /* Integers and floats convert to each other's class only where asked (cls may be a float
   * reader that accepts integers). */
  int ok = c == cls || (cls == H5T_FLOAT && c == H5T_INTEGER);
  if (!ok || npoints != 1) {
    h5io_close(ftype);
    h5io_close(a);
    return ec_err(EC_EFORMAT, "%s: attribute '%s' must be a single %s", h5io_where(obj), name,
                  cls_name);
  }
  return EC_OK;
}

ec_status h5io_attr_read_str(hid_t obj, const char *name, char **value) {
  hid_t a, ftype, mtype = H5I_INVALID_HID;
  *value = NULL;
  ec_status s = attr_open(obj, name, H5T_STRING, "string", &a, &ftype);
  if (s) return s;
  herr_t r;
  if (H5Tis_variable_str(ftype) > 0) {
    char *tmp = NULL;
    mtype = vlen_str_type();
    r = H5Aread(a, mtype, &tmp);
    if (r >= 0) {
      *value = ec_strdup(tmp ? tmp : "");
      H5free_memory(tmp);
      if (!*value) s = EC_ENOMEM;
    }
  } else {
    size_t n = H5Tget_size(ftype);
    mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, n + 1);
    H5Tset_strpad(mtype, H5T_STR_NULLTERM);
    *value = ec_calloc(n + 2, 1);
    r = *value ? H5Aread(a, mtype, *value) : 0;
    if (!*value) s = EC_ENOMEM;
  }
  if (r < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot read attribute '%s'", name);
    s = h5fail(EC_EFORMAT, obj, NULL, what);
    ec_freep(value);
  }
  h5io_close(&mtype);
  h5io_close(&ftype);
  h5io_close(&a);
  return s;
}

static ec_status attr_read_num(hid_t obj, const char *name, H5T_class_t cls, const char *cls_name,
                               hid_t mtype, void *value) {
  hid_t a, ftype;
  ec_status s = attr_open(obj, name, cls, cls_name, &a, &ftype);
  if (s) return s;
  if (H5Aread(a, mtype, value) < 0) {
    char what[300];
    snprintf(what, sizeof what, "cannot read attribute '%s'", name);
    s = h5fail(EC_EFORMAT, obj, NULL, what);
  }
  h5io_close(&ftype);
  h5io_close(&a);
  return s;
}

ec_status h5io_attr_read_i64(hid_t obj, const char *name, int64_t *value) {
  return attr_read_num(obj, name, H5T_INTEGER, "integer", H5T_NATIVE_INT64, value);
}

ec_status h5io_attr_read_f64(hid_t obj, const char *name, double *value) {
  return attr_read_num(obj, name, H5T_FLOAT, "number", H5T_NATIVE_DOUBLE, value);
}

/* ---- datasets ------------------------------------------------------------------------------- */

/* The element type of a file datatype, or -1 when we do not handle it. */
static int dtype_of(hid_t t) {
  size_t size = H5Tget_size(t);
  switch (H5Tget_class(t)) {
  case H5T_FLOAT: {
    if (size == 4) return EC_F32;
    if (size == 8) return EC_F64;
    if (size != 2) return -1;
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0) return -1;
    if (spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10) return EC_F16;
    if (spos == 15 && epos == 7 && esize == 8 && mpos == 0 && msize == 7) return EC_BF16;
    return -1;
  }
  case H5T_INTEGER: {
    H5T_sign_t sign = H5Tget_sign(t);
    if (size == 4 && sign == H5T_SGN_2) return EC_I32;
    if (size == 8 && sign == H5T_SGN_2) return EC_I64;
    if (size == 1 && sign == H5T_SGN_NONE) return EC_U8;
    return -1;
  }
  default: return -1;
  }
}

/* The memory type HDF5 should convert to for `t`. float16 and bfloat16 are read raw (our own
 * conversion is exact and much faster than HDF5's generic soft float conversion); they must be
 * little-endian, which dset_open checks. */
static hid_t mem_type_of(ec_dtype t) {
  switch (t) {
  case EC_F32: return H5T_NATIVE_FLOAT;
  case EC_F64: return H5T_NATIVE_DOUBLE;
  case EC_F16: return h5io_type_f16();
  case EC_I32: return H5T_NATIVE_INT32;
  case EC_I64: return H5T_NATIVE_INT64;
  case EC_U8: return H5T_NATIVE_UINT8;
  default: return H5I_INVALID_HID;
  }
}

static hid_t file_type_of(ec_dtype t) {
  switch (t) {
  case EC_F32: return H5T_IEEE_F32LE;
  case EC_F64: return H5T_IEEE_F64LE;
  case EC_F16: return h5io_type_f16();
  case EC_I32: return H5T_STD_I32LE;
  case EC_I64: return H5T_STD_I64LE;
  case EC_U8: return H5T_STD_U8LE;
  default: return H5I_INVALID_HID;
  }
}

ec_status h5io_dset_open(hid_t loc, const char *name, h5io_dset *d) {
  quiet_hdf5();
  memset(d, 0, sizeof *d);
  d->id = H5I_INVALID_HID;
  /* Open first and ask why only on failure: readers open thousands of datasets. */
  d->id = H5Dopen2(loc, name, H5P_DEFAULT);
  if (d->id < 0) {
    if (!h5io_exists(loc, name)) return ec_err(EC_ENOENT, "%s: dataset missing", where_child(loc, name));
    if (!h5io_is_dataset(loc, name)) return ec_err(EC_EFORMAT, "%s: not a dataset", where_child(loc, name));
    d->id = H5Dopen2(loc, name, H5P_DEFAULT); /* again, for HDF5's own reason */
    if (d->id < 0) return h5fail(EC_EFORMAT, loc, name, "cannot open dataset");
  }
  hid_t t = H5Dget_type(d->id), space = H5Dget_space(d->id), dcpl = H5Dget_create_plist(d->id);
  int dt = dtype_of(t);
  int big_endian_half = (dt == EC_F16 || dt == EC_BF16) && H5Tget_order(t) != H5T_ORDER_LE;
  int ndim = H5Sget_simple_extent_ndims(space);
  H5S_class_t sclass = H5Sget_simple_extent_type(space);
  ec_status s = EC_OK;
  if (dt < 0 || big_endian_half) {
    s = ec_err(EC_EFORMAT, "%s: unsupported element type (expected float16, float32 or float64)",
               h5io_where(d->id));
  } else if (sclass == H5S_NULL || ndim < 0 || ndim > EC_MAX_DIMS) {
    s = ec_err(EC_EFORMAT, "%s: unsupported dataspace (%d dimensions)", h5io_where(d->id), ndim);
  } else {
    hsize_t dims[EC_MAX_DIMS];
    H5Sget_simple_extent_dims(space, dims, NULL);
    d->shape.ndim = ndim;
    for (int i = 0; i < ndim; i++) d->shape.dims[i] = (int64_t)dims[i];
    d->numel = ec_shape_numel(&d->shape);
    d->dtype = (ec_dtype)dt;
    d->chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
    for (int i = 0, n = H5Pget_nfilters(dcpl); i < n; i++) {
      unsigned flags, cd[8];
      size_t ncd = 8;
      if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32)
        d->checksummed = 1;
    }
  }
  h5io_close(&dcpl);
  h5io_close(&space);
  h5io_close(&t);
  if (s) h5io_close(&d->id);
  return s;
}

void h5io_dset_close(h5io_dset *d) { h5io_close(&d->id); }

/* A box (regular hyperslab) of an N-d array. */
typedef struct {
  hsize_t start[EC_MAX_DIMS], count[EC_MAX_DIMS];
} flat_box;

enum { MAX_BOXES = 2 * EC_MAX_DIMS };

/* Splits the row-major flat element range [lo, hi) of an array of shape dims[ndim] into boxes,
 * in row-major order: the partial leading row, the full rows, the partial trailing row,
 * recursively (at most 2·ndim − 1 boxes). `cur` holds the outer coordinates fixed so far.
 *
 * Each box is read with its own H5Dread, into a memory space of the same shape: HDF5 1.10 maps
 * such a pair onto chunks directly, but walks a union of hyperslabs, or a file box read into a
 * 1-D memory space, element by element (measured: 48 MB/s instead of the disk's speed). */
static void flat_boxes(int ndim, const hsize_t *dims, hsize_t lo, hsize_t hi, int depth,
                       flat_box *cur, flat_box *boxes, int *n) {
  if (lo >= hi) return;
  if (depth == ndim - 1) {
    cur->start[depth] = lo;
    cur->count[depth] = hi - lo;
    boxes[(*n)++] = *cur;
    return;
  }
  hsize_t inner = 1;
  for (int i = depth + 1; i < ndim; i++) inner *= dims[i];
  hsize_t r0 = lo / inner, r1 = hi / inner;
  if (r0 == r1) { /* inside one row */
    cur->start[depth] = r0;
    cur->count[depth] = 1;
    flat_boxes(ndim, dims, lo - r0 * inner, hi - r0 * inner, depth + 1, cur, boxes, n);
    return;
  }
  if (lo % inner) { /* partial first row */
    cur->start[depth] = r0;
    cur->count[depth] = 1;
    flat_boxes(ndim, dims, lo - r0 * inner, inner, depth + 1, cur, boxes, n);
    r0++;
  }
  if (r1 > r0) { /* full rows */
    cur->start[depth] = r0;
    cur->count[depth] = r1 - r0;
    for (int i = depth + 1; i < ndim; i++) {
      cur->start[i] = 0;
      cur->count[i] = dims[i];
    }
    boxes[(*n)++] = *cur;
  }
  if (hi % inner) { /* partial last row */
    cur->start[depth] = r1;
    cur->count[depth] = 1;
    flat_boxes(ndim, dims, 0, hi - r1 * inner, depth + 1, cur, boxes, n);
  }
}

/* Reads (write = 0) or writes the flat range [offset, offset+count) of a dataset, with memory
 * of HDF5 type `mtype` holding the elements contiguously. */
static ec_status transfer_range(hid_t dset, const ec_shape *shape, hid_t mtype, void *buf,
                                int64_t offset, int64_t count, int write) {
  if (shape->ndim == 0) { /* scalar: the single element */
    herr_t r = write ? H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                     : H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    return r < 0 ? h5fail(write ? EC_EIO : EC_EFORMAT, dset, NULL,
                          write ? "cannot write data" : "cannot read data")
                 : EC_OK;
  }
  hsize_t dims[EC_MAX_DIMS];
  for (int i = 0; i < shape->ndim; i++) dims[i] = (hsize_t)shape->dims[i];
  flat_box boxes[MAX_BOXES], cur;
  int nbox = 0;
  memset(&cur, 0, sizeof cur);
  flat_boxes(shape->ndim, dims, (hsize_t)offset, (hsize_t)(offset + count), 0, &cur, boxes, &nbox);
  size_t esize = H5Tget_size(mtype);
  char *p = buf;
  ec_status s = EC_OK;
  for (int b = 0; b < nbox && !s; b++) {
    hsize_t n = 1;
    for (int i = 0; i < shape->ndim; i++) n *= boxes[b].count[i];
    /* The memory space has the box's own shape: its row-major order is the flat order (only
     * one dimension of a box is partial, the inner ones are whole), and HDF5 maps same-shaped
     * selections onto chunks directly instead of element by element. */
    hid_t fspace = H5Dget_space(dset), mspace = H5Screate_simple(shape->ndim, boxes[b].count, NULL);
    herr_t r = (fspace < 0 || mspace < 0 ||
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, boxes[b].start, NULL, boxes[b].count, NULL) < 0)
                   ? -1
               : write ? H5Dwrite(dset, mtype, mspace, fspace, H5P_DEFAULT, p)
                       : H5Dread(dset, mtype, mspace, fspace, H5P_DEFAULT, p);
    if (r < 0)
      s = h5fail(write ? EC_EIO : EC_EFORMAT, dset, NULL, write ? "cannot write data" : "cannot read data");
    h5io_close(&mspace);
    h5io_close(&fspace);
    p += n * esize;
  }
  return s;
}

/* Reads the flat range in the file's own element type (or the HDF5-converted `mtype`). */
static ec_status read_range(const h5io_dset *d, hid_t mtype, void *out, int64_t offset,
                            int64_t count) {
  return transfer_range(d->id, &d->shape, mtype, out, offset, count, 0);
}

ec_status h5io_dset_read(const h5io_dset *d, ec_dtype mem, void *out, int64_t offset,
                         int64_t count) {
  quiet_hdf5();
  EC_ASSERTF(offset >= 0 && count >= 0 && offset + count <= d->numel,
             "h5io_dset_read: range [%lld, %lld) outside %lld elements", (long long)offset,
             (long long)(offset + count), (long long)d->numel);
  if (count == 0) return EC_OK;
  int file_float = ec_dtype_is_float(d->dtype), mem_float = ec_dtype_is_float(mem);
  if (file_float != mem_float || (!file_float && mem != d->dtype))
    return ec_err(EC_EFORMAT, "%s: stored as %s, cannot be read as %s", h5io_where(d->id),
                  ec_dtype_name(d->dtype), ec_dtype_name(mem));
  if (d->dtype == mem || ((d->dtype == EC_F32 || d->dtype == EC_F64) &&
                          (mem == EC_F32 || mem == EC_F64)))
    return read_range(d, mem_type_of(mem), out, offset, count); /* HDF5 converts float<->double */
  /* 16-bit floats: read raw and convert ourselves. When the output is at least twice as wide,
   * read into its upper half and convert front to back in place: element i is written at byte
   * 4i (or 8i) and the raw values still to be read sit at 2*count + 2j for j > i, so they are
   * never overwritten first. */
  size_t out_size = ec_dtype_size(mem);
  if ((d->dtype == EC_F16 || d->dtype == EC_BF16) && out_size >= 4) {
    uint16_t *raw = (uint16_t *)((char *)out + (out_size - 2) * (size_t)count);
    ec_status s = read_range(d, h5io_type_f16(), raw, offset, count);
    if (s) return s;
    if (d->dtype == EC_F16 && mem == EC_F32) {
      /* The hot path of snapshot reading. The vector conversion reads 8 raw values ahead of
       * the 8 floats it writes; the raw values sit at byte 2*count + 2j and are written at 4j,
       * so a block of 8 is consumed before anything overlapping it is written. */
      ec_half_to_float_array(out, raw, (size_t)count);
      return EC_OK;
    }
    for (int64_t i = 0; i < count; i++) {
      float v = d->dtype == EC_F16 ? ec_half_to_float(raw[i]) : ec_bf16_to_float(raw[i]);
      if (mem == EC_F32)
        ((float *)out)[i] = v;
      else
        ((double *)out)[i] = v;
    }
    return EC_OK;
  }
  /* Remaining cases (e.g. float32 file read as float16): through a bounded buffer. */
  size_t in_size = ec_dtype_size(d->dtype);
  int64_t piece = count < PIECE_ELEMS ? count : PIECE_ELEMS;
  void *buf = ec_malloc((size_t)piece * in_size);
  if (!buf) return EC_ENOMEM;
  ec_status s = EC_OK;
  for (int64_t done = 0; done < count && !s; done += piece) {
    int64_t n = count - done < piece ? count - done : piece;
    s = read_range(d, d->dtype == EC_BF16 ? h5io_type_f16() : mem_type_of(d->dtype), buf,
                   offset + done, n);
    if (!s) ec_convert((char *)out + (size_t)done * out_size, mem, buf, d->dtype, (size_t)n);
  }
  ec_freep(&buf);
  return s;
}

void h5io_chunk_shape(const ec_shape *shape, size_t elem_size, hsize_t *chunk) {
  /* Keep whole trailing dimensions while they fit, then as many rows of the next one as fit,
   * and single rows above: a chunk is then one contiguous flat range of the tensor. */
  hsize_t budget = CHUNK_BYTES / elem_size, inner = 1;
  int i = shape->ndim - 1;
  for (; i >= 0; i--) {
    hsize_t dim = shape->dims[i] > 0 ? (hsize_t)shape->dims[i] : 1;
    if (inner * dim > budget) break;
    chunk[i] = dim;
    inner *= dim;
  }
  if (i >= 0) {
    /* As many rows as fit, then evened out: HDF5 stores a last partial chunk at full size, so
     * 256 rows in chunks of 227 would take the space of 454. */
    hsize_t dim = shape->dims[i] > 0 ? (hsize_t)shape->dims[i] : 1, fit = budget / inner;
    if (fit == 0) fit = 1;
    hsize_t n = (dim + fit - 1) / fit;
    chunk[i] = (dim + n - 1) / n;
    for (i--; i >= 0; i--) chunk[i] = 1;
  }
}

/* Writes the flat range [offset, offset+count) from memory already in the file's type. */
static ec_status write_range(hid_t dset, const ec_shape *shape, hid_t mtype, const void *data,
                             int64_t offset, int64_t count) {
  return transfer_range(dset, shape, mtype, (void *)data, offset, count, 1);
}

ec_status h5io_dset_create(hid_t loc, const char *name, const ec_shape *shape, ec_dtype file_dtype,
                           ec_dtype mem_dtype, unsigned flags, h5io_dset *d) {
  quiet_hdf5();
  memset(d, 0, sizeof *d);
  d->id = H5I_INVALID_HID;
  hid_t ftype = file_type_of(file_dtype);
  if (ftype < 0)
    return ec_err(EC_EINVAL, "%s: cannot store %s in HDF5", where_child(loc, name),
                  ec_dtype_name(file_dtype));
  if (ec_dtype_is_float(file_dtype) != ec_dtype_is_float(mem_dtype) ||
      (!ec_dtype_is_float(file_dtype) && file_dtype != mem_dtype))
    return ec_err(EC_EINVAL, "%s: cannot store %s memory as %s", where_child(loc, name),
                  ec_dtype_name(mem_dtype), ec_dtype_name(file_dtype));
  hsize_t dims[EC_MAX_DIMS], chunk[EC_MAX_DIMS];
  for (int i = 0; i < shape->ndim; i++) dims[i] = (hsize_t)shape->dims[i];
  int64_t numel = ec_shape_numel(shape);
  hid_t space = shape->ndim ? H5Screate_simple(shape->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Pset_obj_track_times(dcpl, 0);
  if ((flags & H5IO_CHECKSUM) && shape->ndim > 0 && numel > 0) {
    h5io_chunk_shape(shape, ec_dtype_size(file_dtype), chunk);
    H5Pset_chunk(dcpl, shape->ndim, chunk);
    H5Pset_fletcher32(dcpl);
    d->chunked = d->checksummed = 1;
  }
  d->id = H5Dcreate2(loc, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
  ec_status s = d->id < 0 ? h5fail(EC_EHDF5, loc, name, "cannot create dataset") : EC_OK;
  h5io_close(&lcpl);
  h5io_close(&dcpl);
  h5io_close(&space);
  d->shape = *shape;
  d->numel = numel;
  d->dtype = file_dtype;
  return s;
}

ec_status h5io_dset_write(const h5io_dset *d, ec_dtype mem_dtype, const void *data, int64_t offset,
                          int64_t count) {
  quiet_hdf5();
  EC_ASSERTF(offset >= 0 && count >= 0 && offset + count <= d->numel,
             "h5io_dset_write: range [%lld, %lld) outside %lld elements", (long long)offset,
             (long long)(offset + count), (long long)d->numel);
  if (count == 0) return EC_OK;
  ec_dtype file_dtype = d->dtype;
  hid_t ftype = file_type_of(file_dtype);
  if (file_dtype == mem_dtype || (file_dtype != EC_F16 && mem_dtype != EC_F16 && mem_dtype != EC_BF16))
    /* Same type, or a conversion HDF5 does exactly (float <-> double). */
    return write_range(d->id, &d->shape, mem_dtype == file_dtype ? ftype : mem_type_of(mem_dtype),
                       data, offset, count);
  /* Our own rounding (round to nearest even, as numpy), through a bounded buffer. */
  int64_t piece = count < PIECE_ELEMS ? count : PIECE_ELEMS;
  void *buf = ec_malloc((size_t)piece * ec_dtype_size(file_dtype));
  ec_status s = buf ? EC_OK : EC_ENOMEM;
  for (int64_t done = 0; done < count && !s; done += piece) {
    int64_t n = count - done < piece ? count - done : piece;
    ec_convert(buf, file_dtype, (const char *)data + (size_t)done * ec_dtype_size(mem_dtype),
               mem_dtype, (size_t)n);
    s = write_range(d->id, &d->shape, ftype, buf, offset + done, n);
  }
  ec_freep(&buf);
  return s;
}

int64_t h5io_dset_chunk_elems(const h5io_dset *d) {
  if (!d->chunked) return 0;
  hsize_t c[EC_MAX_DIMS];
  h5io_chunk_shape(&d->shape, ec_dtype_size(d->dtype), c);
  int64_t n = 1;
  for (int i = 0; i < d->shape.ndim; i++) n *= (int64_t)c[i];
  return n;
}

ec_status h5io_dset_write_chunk(const h5io_dset *d, int64_t first, void *raw) {
  quiet_hdf5();
  EC_ASSERTF(d->chunked && d->checksummed, "h5io_dset_write_chunk: the dataset is not chunked with Fletcher-32");
  hsize_t coord[EC_MAX_DIMS];
  int64_t ce = h5io_dset_chunk_elems(d);
  EC_ASSERTF(first >= 0 && first < d->numel && first % ce == 0, "h5io_dset_write_chunk: %lld is not a chunk start",
             (long long)first);
  /* Chunks are flat ranges: whole trailing dimensions, then rows of one dimension. */
  int64_t rem = first;
  for (int i = d->shape.ndim - 1; i >= 0; i--) {
    coord[i] = (hsize_t)(rem % d->shape.dims[i]);
    rem /= d->shape.dims[i];
  }
  size_t nbytes = (size_t)ce * ec_dtype_size(d->dtype);
  uint32_t sum = h5direct_fletcher32(raw, nbytes);
  unsigned char *tail = (unsigned char *)raw + nbytes; /* HDF5 appends it little-endian */
  tail[0] = (unsigned char)sum;
  tail[1] = (unsigned char)(sum >> 8);
  tail[2] = (unsigned char)(sum >> 16);
  tail[3] = (unsigned char)(sum >> 24);
  if (H5Dwrite_chunk(d->id, H5P_DEFAULT, 0, coord, nbytes + 4, raw) < 0)
    return h5fail(EC_EIO, d->id, NULL, "cannot write data");
  return EC_OK;
}

ec_status h5io_write_tensor(hid_t loc, const char *name, const ec_shape *shape,
                            ec_dtype file_dtype, ec_dtype mem_dtype, const void *data,
                            unsigned flags) {
  h5io_dset d;
  ec_status s = h5io_dset_create(loc, name, shape, file_dtype, mem_dtype, flags, &d);
  if (!s) s = h5io_dset_write(&d, mem_dtype, data, 0, d.numel);
  h5io_dset_close(&d);
  return s;
}

ec_status h5io_read_tensor(hid_t loc, const char *name, ec_dtype mem, void *out, int64_t numel) {
  h5io_dset d;
  ec_status s = h5io_dset_open(loc, name, &d);
  if (s) return s;
  if (d.numel != numel) {
    char buf[128];
    s = ec_err(EC_EFORMAT, "%s: has %lld elements (shape %s), expected %lld", h5io_where(d.id),
               (long long)d.numel, ec_shape_str(&d.shape, buf, sizeof buf), (long long)numel);
  } else {
    s = h5io_dset_read(&d, mem, out, 0, numel);
  }
  h5io_dset_close(&d);
  return s;
}

ec_status h5io_write_strings(hid_t loc, const char *name, int count, const char *const *strs) {
  quiet_hdf5();
  hsize_t n = (hsize_t)count;
  hid_t t = vlen_str_type(), space = H5Screate_simple(1, &n, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Pset_obj_track_times(dcpl, 0);
  hid_t d = H5Dcreate2(loc, name, t, space, lcpl, dcpl, H5P_DEFAULT);
  herr_t r = d < 0 ? -1 : (count ? H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs) : 0);
  ec_status s = r < 0 ? h5fail(EC_EIO, loc, name, "cannot write strings") : EC_OK;
  h5io_close(&d);
  h5io_close(&lcpl);
  h5io_close(&dcpl);
  h5io_close(&space);
  h5io_close(&t);
  return s;
}

ec_status h5io_read_strings(hid_t loc, const char *name, char ***strs, int *count) {
  quiet_hdf5();
  *strs = NULL;
  *count = 0;
  if (!h5io_is_dataset(loc, name))
    return ec_err(EC_ENOENT, "%s: dataset missing", where_child(loc, name));
  hid_t d = H5Dopen2(loc, name, H5P_DEFAULT), ftype = H5Dget_type(d), space = H5Dget_space(d);
  hid_t mtype = vlen_str_type();
  ec_status s = EC_OK;
  hssize_t n = H5Sget_simple_extent_npoints(space);
  if (d < 0 || H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0 ||
      H5Sget_simple_extent_ndims(space) != 1) {
    s = ec_err(EC_EFORMAT, "%s: expected a 1-D dataset of variable-length strings",
               where_child(loc, name));
  } else {
    char **raw = ec_calloc((size_t)n + 1, sizeof *raw);
    char **out = ec_calloc((size_t)n + 1, sizeof *out);
    if (!raw || !out) s = EC_ENOMEM;
    if (!s && n > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
      s = h5fail(EC_EFORMAT, loc, name, "cannot read strings");
    for (hssize_t i = 0; !s && i < n; i++)
      if (!(out[i] = ec_strdup(raw[i] ? raw[i] : ""))) s = EC_ENOMEM;
    if (raw && n > 0) H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, raw); /* frees each raw[i] */
    ec_freep(&raw);
    if (s)
      h5io_free_names(&out, (int)n);
    else {
      *strs = out;
      *count = (int)n;
    }
  }
  h5io_close(&mtype);
  h5io_close(&space);
  h5io_close(&ftype);
  h5io_close(&d);
  return s;
}
