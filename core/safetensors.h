/* Reading and writing safetensors files (https://github.com/huggingface/safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
 * The JSON maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}
 * (byte offsets into the data buffer) plus an optional "__metadata__" object of strings. Data is
 * little-endian and C-ordered.
 *
 * The reader treats the file as untrusted: every inconsistency in the header is an EC_EFORMAT
 * error naming the file and tensor, checked once at open, so that ec_st_read only has to deal
 * with system errors. Overlapping tensors are refused; gaps between tensors and bytes after the
 * last one are accepted, as they cannot corrupt data. Tensor data is read on demand with pread,
 * never mapped, so a file that is truncated while open gives an error instead of SIGBUS.
 *
 * The writer streams: descriptors and metadata first, then the header, then each tensor's data
 * in the order added, converted to the file dtype in bounded chunks. It writes to the path it is
 * given; making the file appear atomically (temporary name, rename) is the caller's job. */
#ifndef EDM2C_CORE_SAFETENSORS_H
#define EDM2C_CORE_SAFETENSORS_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

/* The reference library refuses headers above this size; so do we, before allocating. */
#define EC_ST_MAX_HEADER ((uint64_t)100000000)

typedef struct {
  char *name;
  ec_dtype dtype;
  ec_shape shape;
  uint64_t begin, end; /* byte range in the data buffer */
} ec_st_tensor;

/* An open file. Fields are read-only for callers. */
typedef struct {
  char *path;
  int fd;
  uint64_t data_start; /* file offset of the data buffer: 8 + N */
  uint64_t file_size;  /* at open */
  int ntensors;
  ec_st_tensor *tensors; /* in ascending data offset order */
  int nmeta;
  char **meta_keys, **meta_values; /* "__metadata__" in file order */
  ec_st_tensor **by_name_;         /* private: tensors sorted by name, for ec_st_find */
} ec_st_file;

/* Opens and validates `path`. On failure `f` is left closed (ec_st_close is harmless). */
ec_status ec_st_open(ec_st_file *f, const char *path);
/* Index of the tensor called `name` in f->tensors, or -1. */
int ec_st_find(const ec_st_file *f, const char *name);
/* The metadata value for `key`, or NULL. */
const char *ec_st_meta(const ec_st_file *f, const char *key);
/* Reads elements [offset, offset + count) of the flattened tensor `idx` into `out` as
 * `mem_dtype`. Floating types convert among each other (except float64 to float16/bfloat16,
 * which would round twice); integer types read only as themselves (EC_EINVAL otherwise). Safe to
 * call from several threads at once on the same file. */
ec_status ec_st_read(const ec_st_file *f, int idx, ec_dtype mem_dtype, void *out, int64_t offset,
                     int64_t count);
/* Closes the file and frees everything; accepts a zeroed struct and repeated calls. */
void ec_st_close(ec_st_file *f);

/* A file being written. Zero-initialize it (ec_st_writer w = {0};); fields are private.
 *
 *   ec_st_writer_add(&w, "w", EC_F16, shape);      (each tensor, in file order)
 *   ec_st_writer_meta(&w, "format", "pt");          (optional)
 *   ec_st_writer_begin(&w, tmp_path);               (creates or truncates tmp_path)
 *   ec_st_writer_write(&w, EC_F32, data, n);        (each tensor's elements, in pieces if wanted)
 *   ec_st_writer_finish(&w);                        (checks completeness, fsyncs, closes)
 *   ec_st_writer_free(&w);                          (always)
 *
 * Once begin, write or finish has failed, only ec_st_writer_free may follow. ec_st_writer_free
 * never deletes the file: if finish did not succeed, the caller removes the incomplete file. */
typedef struct {
  int ntensors, cap_tensors;
  ec_st_tensor *tensors;
  int nmeta, cap_meta;
  char **meta_keys, **meta_values;
  char *path;
  int fd, fd_open;
  int state;     /* collecting, writing, finished or failed */
  int cur;       /* tensor being written */
  uint64_t done; /* bytes of tensor `cur` written so far */
  void *chunk;   /* conversion buffer */
} ec_st_writer;

/* Declares the next tensor. Names must be non-empty, unique and not "__metadata__" (EC_EINVAL). */
ec_status ec_st_writer_add(ec_st_writer *w, const char *name, ec_dtype dtype, ec_shape shape);
/* Adds a "__metadata__" entry; keys must be unique (EC_EINVAL). */
ec_status ec_st_writer_meta(ec_st_writer *w, const char *key, const char *value);
/* Creates `path` (truncating it) and writes the header. */
ec_status ec_st_writer_begin(ec_st_writer *w, const char *path);
/* Appends `count` elements of the current tensor, converting from `mem_dtype` as ec_st_read
 * does. A call may not go past the end of the current tensor; zero-size tensors need no call.
 * A full disk or the file size limit gives EC_ENOSPC, other write errors EC_EIO. */
ec_status ec_st_writer_write(ec_st_writer *w, ec_dtype mem_dtype, const void *data, int64_t count);
/* Checks that every tensor got all its elements, then fsyncs and closes the file. */
ec_status ec_st_writer_finish(ec_st_writer *w);
/* Closes the file if still open and frees everything; the struct is zeroed again afterwards. */
void ec_st_writer_free(ec_st_writer *w);

#endif
