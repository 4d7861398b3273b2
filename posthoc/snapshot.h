/* The snapshot store: one HDF5 file per snapshot time holding every tracked EMA profile.
 *
 * Format v1 (docs/formats.md is the contract): `snapshot-<nimg, 12 digits>.h5` with root
 * attributes format = "edm2c-snapshot", format_version = 1, nimg, batch_size, preset, config;
 * one group /ema/<σ_rel, 3 decimals> per profile with attributes sigma_rel, gamma,
 * profile = "power"; in it one dataset per parameter (EDM2 state-dict names), float16 by
 * default, chunked with Fletcher-32 (0-d datasets stored plain); /buffers/<name> float32.
 *
 * The trainer writes snapshots with snap_writer (atomic: nothing appears under the final name
 * until snap_writer_close succeeds). The reconstruction engine reads them with snap_file, which
 * reads any tensor as float32, whole or as a contiguous slice, without loading the file. */
#ifndef EDM2C_POSTHOC_SNAPSHOT_H
#define EDM2C_POSTHOC_SNAPSHOT_H

#include <stdint.h>

#include "core/h5direct.h"
#include "core/h5io.h"
#include "core/status.h"
#include "core/tensor.h"

#define SNAP_FORMAT "edm2c-snapshot"
#define SNAP_FORMAT_VERSION 1

/* File name of the snapshot at `nimg` ("snapshot-000008388608.h5") into buf; returns buf. */
char *snap_file_name(int64_t nimg, char *buf, size_t size);
/* Parses a snapshot file name; returns 1 and sets *nimg when it matches exactly. */
int snap_parse_name(const char *name, int64_t *nimg);
/* Group name of a profile ("0.050"). */
char *snap_profile_key(double sigma_rel, char *buf, size_t size);

/* ---- writing ---- */

typedef struct {
  int64_t nimg;       /* training images seen; > 0 for a usable snapshot */
  int64_t batch_size; /* images per step */
  const char *preset; /* preset name, or "" for a custom configuration */
  const char *config; /* the resolved configuration as JSON text */
  ec_dtype dtype;     /* EC_F16 (default, as EDM2) or EC_F32 */
} snap_meta;

typedef struct snap_writer snap_writer;

/* Starts `dir/snapshot-<nimg>.h5` (through `.tmp`; an existing snapshot of the same time is
 * replaced on close, since a resumed run rewrites it identically). */
ec_status snap_writer_open(snap_writer **w, const char *dir, const snap_meta *meta);
/* Declares a profile; tensors of it may then be added. */
ec_status snap_writer_add_profile(snap_writer *w, double sigma_rel);
/* Adds parameter `name` of profile `sigma_rel` from float32 or float16 memory. */
ec_status snap_writer_add_tensor(snap_writer *w, double sigma_rel, const char *name,
                                 const ec_shape *shape, ec_dtype mem_dtype, const void *data);
/* Adds a non-trainable buffer (stored float32, shared by all profiles). */
ec_status snap_writer_add_buffer(snap_writer *w, const char *name, const ec_shape *shape,
                                 const float *data);
/* Finishes the file and renames it into place; frees *w (also on failure, which removes the
 * temporary file). */
ec_status snap_writer_close(snap_writer **w);
/* Abandons the snapshot: removes the temporary file, frees *w. */
void snap_writer_abort(snap_writer **w);
/* The final path being written. */
const char *snap_writer_path(const snap_writer *w);

/* ---- reading ---- */

typedef struct {
  double sigma_rel, gamma;
  char key[32]; /* group name under /ema */
} snap_profile;

typedef struct {
  char *name; /* EDM2 state-dict name */
  ec_shape shape;
  int64_t numel;
} snap_tensor;

typedef struct {
  char *path;
  hid_t file;
  int64_t format_version, nimg, batch_size;
  char *preset, *config;
  int nprofiles;
  snap_profile *profiles; /* sorted by sigma_rel */
  int ntensors;
  snap_tensor *tensors; /* parameter table, identical in every profile (checked by snap_open) */
  int nbuffers;
  snap_tensor *buffers;
  int dtypes_seen; /* bit mask of (1 << ec_dtype) over all parameter datasets */
  int unchecksummed; /* number of multi-element parameter datasets without Fletcher-32 */
  /* With SNAP_OPEN_MAP: where every parameter's bytes lie (core/h5direct.h), maps[p * ntensors
   * + t] for profile p and tensor t (in the order of `tensors`), and a hash of each buffer's
   * values, so the caller can read without HDF5 and compare buffers across files. */
  h5direct_map *maps;
  uint64_t *buffer_hash;
} snap_file;

enum {
  SNAP_OPEN_MAP = 1 /* map every parameter dataset and hash the buffers while opening */
};

/* Opens a snapshot and checks its structure: format and version, attributes, profiles, and that
 * every profile holds the same tensors with the same shapes. Data is not read. */
ec_status snap_open(snap_file *s, const char *path);
ec_status snap_open_flags(snap_file *s, const char *path, unsigned flags);
void snap_close(snap_file *s);

/* Reads elements [offset, offset + count) of parameter `tensor` of profile `profile` (indices
 * into s->profiles and s->tensors) as float32. Checksums are verified. */
ec_status snap_read(const snap_file *s, int profile, int tensor, int64_t offset, int64_t count,
                    float *out);
ec_status snap_read_buffer(const snap_file *s, int buffer, float *out);

/* Index of a profile by σ_rel (exact key match after formatting), tensor or buffer by name; -1
 * when absent. */
int snap_find_profile(const snap_file *s, double sigma_rel);
int snap_find_tensor(const snap_file *s, const char *name);
int snap_find_buffer(const snap_file *s, const char *name);

/* Parameters per profile (sum of tensor sizes). */
int64_t snap_param_count(const snap_file *s);

#endif
