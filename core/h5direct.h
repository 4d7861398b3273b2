/* Direct reads of HDF5 tensor data: HDF5 tells once where a dataset's bytes are, then any number
 * of threads read them with pread(), verify the Fletcher-32 checksums and convert to float32
 * themselves. HDF5 1.10 is built thread-safe with one global lock, so reads through H5Dread run
 * one at a time whatever the thread count; this path runs at the speed of the page cache on every
 * core (docs/performance.md, "Snapshot verification").
 *
 *   h5io_dset d;                      h5io_dset_open(file, name, &d);
 *   h5direct_map m;                   h5direct_map_dataset(&d, &m);   (once, any thread)
 *   if (m.mappable)   h5direct_read(&m, fd, offset, count, out, scratch, scratch_size);
 *   else              h5io_dset_read(&d, EC_F32, out, offset, count);
 *   h5direct_unmap(&m);
 *
 * `fd` is the dataset's file opened with open(path, O_RDONLY); one fd serves every thread.
 *
 * Mappable datasets (element type float16, float32 or float64, IEEE little-endian):
 *  - contiguous layout, allocated (written), no external storage: one extent;
 *    0-d (scalar) datasets included when their layout is contiguous;
 *  - chunked layout whose filter pipeline is empty or exactly Fletcher-32, and whose chunk shape
 *    is [1, ..., 1, r, d_k+1, ..., d_n-1] (single rows above one partial dimension, whole
 *    trailing dimensions), so each chunk holds one contiguous flat range of the tensor: the
 *    shapes h5io_write_tensor makes. A last chunk along the partial dimension stores a full
 *    chunk of which only the leading part is valid. A chunk whose filter mask says Fletcher-32
 *    was skipped, and the partial edge chunks of a dataset created with
 *    H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS, have no checksum bytes;
 *  - datasets with no elements (nothing to read).
 * Not mappable (read them with h5io_dset_read, which gives HDF5's semantics and messages):
 * compact layout (the data lives in the object header), virtual and external storage, any other
 * filter (deflate, shuffle, ...), chunk shapes that are not flat ranges (h5py's `chunks=True`
 * picks such as (2, 2, 3, 3)), other element types (integers, big-endian, bfloat16), datasets
 * never written (contiguous storage not allocated, or any chunk not allocated: HDF5 would return
 * the fill value), chunked datasets in files with a user block (HDF5 before 1.14.4 reports chunk
 * addresses without the user block's offset), files opened with a driver other than the default
 * sec2 (or stdio) one (family, split, core: addresses are not offsets in one file), and any
 * chunk whose stored size is not the one its filters give (something we do not understand).
 *
 * Scratch: h5direct_read needs a caller-owned buffer of at least `scratch_size` bytes of the map
 * (a checksummed chunk is read and verified whole even when only part of it is wanted; other
 * element types convert through it). Give each thread its own buffer, sized for the largest map
 * it reads, allocated once; h5direct_read allocates nothing. */
#ifndef EDM2C_CORE_H5DIRECT_H
#define EDM2C_CORE_H5DIRECT_H

#include <stddef.h>
#include <stdint.h>

#include "h5io.h"
#include "status.h"
#include "tensor.h"

/* A piece of a dataset's storage holding one contiguous flat range of the tensor. */
typedef struct {
  int64_t first; /* flat index of the first tensor element it holds */
  int64_t count; /* tensor elements it holds (a last partial chunk holds fewer than it stores) */
  uint64_t addr; /* byte offset of its stored bytes in the file */
  uint64_t size; /* stored bytes: a whole chunk (or the contiguous data), + 4 when checksummed */
  int checksum;  /* 1: the last 4 stored bytes are the Fletcher-32 checksum of the others */
} h5direct_extent;

typedef struct {
  int mappable;   /* 0: not mappable, `why` says why; read with h5io_dset_read */
  char why[160];  /* reason when not mappable, "" when mappable */
  ec_dtype dtype; /* element type in the file: EC_F16, EC_F32 or EC_F64 */
  int64_t numel;
  int64_t nextents;
  h5direct_extent *extents; /* sorted by `first`, tiling [0, numel) exactly */
  size_t scratch_size;      /* bytes of scratch h5direct_read needs for this dataset */
  char *where;              /* "<file>:<dataset>", for messages */
  hsize_t userblock;        /* size of the file's user block (mapped only when contiguous) */
} h5direct_map;

/* Learns where the data of an open dataset lies. Returns EC_OK whether or not the dataset is
 * mappable (m->mappable tells); fails only when memory runs out. Uses HDF5 (serialised by its
 * global lock); call it once per dataset, then read from any thread. Free with h5direct_unmap,
 * also after a failure or when not mappable. */
ec_status h5direct_map_dataset(const h5io_dset *d, h5direct_map *m);

/* What mapping needs to know of a dataset's file: whether chunk addresses are byte offsets in it
 * (sec2 or stdio driver) and the size of its user block. Finding out copies two property lists,
 * a fifth of the cost of mapping a dataset, so callers that map many datasets of one file ask
 * once (h5direct_file_info on any object of the file) and pass it to h5direct_map_dataset_in. */
typedef struct {
  int plain;          /* 1: sec2 or stdio driver, user block known */
  hsize_t userblock;
} h5direct_file;
void h5direct_file_info(hid_t obj, h5direct_file *f);
ec_status h5direct_map_dataset_in(const h5io_dset *d, const h5direct_file *f, h5direct_map *m);
void h5direct_unmap(h5direct_map *m);

/* Reads the flat elements [offset, offset + count) of a mappable dataset as float32 into `out`,
 * preading each covering extent from `fd` (the dataset's file, opened read-only), verifying
 * checksums and converting (float16 exactly, float64 rounded to nearest). `scratch` holds at
 * least m->scratch_size bytes and belongs to the calling thread. Safe to call concurrently on
 * one map and one fd. Failures, each naming file and dataset: EC_ECHECKSUM (a chunk's
 * Fletcher-32 does not match; other chunks still read), EC_EFORMAT (the file is truncated),
 * EC_EIO (the read failed; the message carries strerror); `out` then holds unspecified values.
 * Programming errors abort: a map that is not mappable, a range outside the data, too little
 * scratch. */
ec_status h5direct_read(const h5direct_map *m, int fd, int64_t offset, int64_t count, float *out,
                        void *scratch, size_t scratch_size);

/* As h5direct_read, but leaves the elements in the file's own type (m->dtype: 2, 4 or 8 bytes
 * each) in `out`: the checksums are verified, nothing is converted. A whole stored chunk goes
 * straight into `out`. For consumers that convert while they compute (the reconstruction's
 * float16 kernel), which halves the memory traffic of the read. */
ec_status h5direct_read_raw(const h5direct_map *m, int fd, int64_t offset, int64_t count, void *out,
                            void *scratch, size_t scratch_size);

/* The largest n <= max_count such that [offset, offset + n) ends where an extent ends (or at the
 * end of the data), or max_count when no extent ends inside the range: pieces cut this way never
 * read a checksummed chunk twice. */
int64_t h5direct_aligned_count(const h5direct_map *m, int64_t offset, int64_t max_count);

/* HDF5's Fletcher-32 of `len` bytes (H5_checksum_fletcher32: big-endian 16-bit words, an odd
 * last byte as the high byte of a word, sums kept in 1..65535 once non-zero), vectorised. The
 * Fletcher-32 filter stores it after the chunk's bytes, little-endian. */
uint32_t h5direct_fletcher32(const void *data, size_t len);

/* The Fletcher-32 kernels this CPU runs (a mask; the portable one always), and the checksum
 * computed by one of them, for tests and the benchmark. h5direct_fletcher32 uses the widest. */
enum { H5DIRECT_FL_PORTABLE = 1, H5DIRECT_FL_AVX2 = 2, H5DIRECT_FL_AVX512 = 4 };
unsigned h5direct_fletcher32_kernels(void);
uint32_t h5direct_fletcher32_kernel(unsigned kernel, const void *data, size_t len);

/* 1 when the last 4 of `size` bytes are a Fletcher-32 of the others as HDF5 accepts them: the
 * checksum little-endian, or with the bytes of each 16-bit half swapped (files written by HDF5
 * before 1.6.3 on little-endian machines). */
int h5direct_checksum_ok(const void *chunk, size_t size);

#endif
