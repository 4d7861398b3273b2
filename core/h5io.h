/* HDF5 wrappers: files, groups, attributes and tensors, with one clear message per failure.
 *
 * Every failure returns an ec_status and records "<file>:<object path>: what went wrong", with
 * the HDF5 library's own innermost reason translated where we know it: a Fletcher-32 mismatch
 * becomes EC_ECHECKSUM, a truncated file EC_EFORMAT, a full disk EC_ENOSPC. HDF5's automatic
 * error printing is turned off.
 *
 * Conventions shared with h5py, so files move both ways:
 *  - strings are variable-length UTF-8 (h5py's str); fixed-length strings are read too;
 *  - float16 is the IEEE binary16 type h5py maps to numpy.float16;
 *  - groups we create track link creation order, so tensors list in the order written
 *    (PyTorch state-dict order); groups without it list in name order.
 *
 * Every hid_t starts as H5I_INVALID_HID and is released with h5io_close(), which accepts
 * invalid ids, so cleanup can always run at a single label. */
#ifndef EDM2C_CORE_H5IO_H
#define EDM2C_CORE_H5IO_H

#include <hdf5.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

/* The IEEE binary16 little-endian type (h5py's float16). Owned by h5io; never close it. */
hid_t h5io_type_f16(void);

/* Closes any kind of HDF5 id and sets *id to H5I_INVALID_HID. */
void h5io_close(hid_t *id);

/* Creates (truncating) a file for writing. Write to a temporary name (core/atomic.h). */
ec_status h5io_file_create(const char *path, hid_t *file);
/* Opens a file read-only, telling apart: missing, unreadable, a directory, not HDF5, truncated. */
ec_status h5io_file_open(const char *path, hid_t *file);
/* Closes a file, reporting a failure to write its last metadata (e.g. disk full). */
ec_status h5io_file_close(hid_t *file);

/* "<file>:<path>" of an open object, for messages (static buffer per thread). */
const char *h5io_where(hid_t obj);

ec_status h5io_group_create(hid_t loc, const char *name, hid_t *group);
ec_status h5io_group_open(hid_t loc, const char *name, hid_t *group);
/* 1 if every component of the relative path exists, else 0 (never an error). */
int h5io_exists(hid_t loc, const char *path);
int h5io_is_group(hid_t loc, const char *name);
int h5io_is_dataset(hid_t loc, const char *name);
/* Names of the links in a group, in creation order when tracked, else in name order. Free the
 * result with h5io_free_names. */
ec_status h5io_list(hid_t group, char ***names, int *count);
void h5io_free_names(char ***names, int count);

/* Attributes (scalar). Writing replaces an existing attribute of the same name. */
int h5io_attr_exists(hid_t obj, const char *name);
ec_status h5io_attr_write_str(hid_t obj, const char *name, const char *value);
ec_status h5io_attr_write_i64(hid_t obj, const char *name, int64_t value);
ec_status h5io_attr_write_f64(hid_t obj, const char *name, double value);
/* Reading checks the class: an integer attribute read as a string is an EC_EFORMAT error. */
ec_status h5io_attr_read_str(hid_t obj, const char *name, char **value); /* free with ec_freep */
ec_status h5io_attr_read_i64(hid_t obj, const char *name, int64_t *value);
ec_status h5io_attr_read_f64(hid_t obj, const char *name, double *value); /* ints convert */

/* An open dataset with what readers need to know about it. */
typedef struct {
  hid_t id;
  ec_shape shape;
  ec_dtype dtype;  /* element type in the file */
  int chunked;     /* 1 when the layout is chunked */
  int checksummed; /* 1 when the Fletcher-32 filter is on (HDF5 verifies it on every read) */
  int64_t numel;
} h5io_dset;

ec_status h5io_dset_open(hid_t loc, const char *name, h5io_dset *d);
/* Reads elements [offset, offset + count) of the dataset flattened in row-major order,
 * converted to `mem` (floating types convert to each other; integers only to themselves). */
ec_status h5io_dset_read(const h5io_dset *d, ec_dtype mem, void *out, int64_t offset,
                         int64_t count);
void h5io_dset_close(h5io_dset *d);

enum {
  H5IO_CHECKSUM = 1 /* chunked layout with the Fletcher-32 filter (0-d datasets stay plain) */
};

/* Writes a whole tensor as a new dataset `name` of type `file_dtype` from memory of type
 * `mem_dtype`. Float conversions round to nearest even (core/half.h). */
ec_status h5io_write_tensor(hid_t loc, const char *name, const ec_shape *shape,
                            ec_dtype file_dtype, ec_dtype mem_dtype, const void *data,
                            unsigned flags);
/* Creates dataset `name` for streaming writes (flags as above); `mem_dtype` is the type later
 * writes will pass, checked now. Close with h5io_dset_close. */
ec_status h5io_dset_create(hid_t loc, const char *name, const ec_shape *shape, ec_dtype file_dtype,
                           ec_dtype mem_dtype, unsigned flags, h5io_dset *d);
/* Writes elements [offset, offset + count) of the flattened dataset. Writing whole chunks (see
 * h5io_chunk_shape) avoids HDF5 caching partial ones. */
ec_status h5io_dset_write(const h5io_dset *d, ec_dtype mem_dtype, const void *data, int64_t offset,
                          int64_t count);

/* Writes one whole chunk of a dataset created by h5io_dset_create with H5IO_CHECKSUM, bypassing
 * HDF5's filter pipeline and chunk cache (H5Dwrite_chunk): `raw` holds the chunk in the file's
 * element type, full chunk size (a last partial chunk zero-padded), followed by 4 spare bytes
 * for the Fletcher-32 checksum, which this computes. `first` is the flat index of the chunk's
 * first element (a multiple of h5io_dset_chunk_elems). Much faster than h5io_dset_write. */
ec_status h5io_dset_write_chunk(const h5io_dset *d, int64_t first, void *raw);
/* Elements per chunk of a dataset created by h5io_dset_create (0 when not chunked). */
int64_t h5io_dset_chunk_elems(const h5io_dset *d);

/* Opens `name`, checks it has exactly `numel` elements, reads it whole as `mem`. */
ec_status h5io_read_tensor(hid_t loc, const char *name, ec_dtype mem, void *out, int64_t numel);

/* 1-D datasets of variable-length UTF-8 strings (h5py: list of str). */
ec_status h5io_write_strings(hid_t loc, const char *name, int count, const char *const *strs);
ec_status h5io_read_strings(hid_t loc, const char *name, char ***strs, int *count);

/* The chunk shape h5io uses for a tensor: whole trailing dimensions up to about 1 MiB per chunk,
 * the dimension where they stop split into near-equal chunks.
 * Exposed for tests and for readers that want to align slices to chunks. */
void h5io_chunk_shape(const ec_shape *shape, size_t elem_size, hsize_t *chunk);

#endif
