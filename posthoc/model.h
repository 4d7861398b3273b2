/* Model files: one network's weights in HDF5 (what posthoc-ema writes and edm2-generate reads),
 * with an export to .safetensors for PyTorch users.
 *
 * Format v1 (docs/formats.md): root attributes format = "edm2c-model", format_version = 1,
 * nimg, preset, config (JSON), ema (JSON: which EMA the weights are, e.g.
 * {"kind": "power", "sigma_rel": 0.13}); /params/<name> (float32 by default, float16 on request,
 * chunked with Fletcher-32), /buffers/<name> float32. Names are the EDM2 state-dict names.
 * Writers add provenance (coefficients, source snapshots) under other groups through
 * model_writer_file(). */
#ifndef EDM2C_POSTHOC_MODEL_H
#define EDM2C_POSTHOC_MODEL_H

#include <stdint.h>

#include "core/h5io.h"
#include "core/status.h"
#include "core/tensor.h"

#define MODEL_FORMAT "edm2c-model"
#define MODEL_FORMAT_VERSION 1

typedef struct {
  int64_t nimg;
  const char *preset; /* "" for a custom configuration */
  const char *config; /* JSON text */
  const char *ema;    /* JSON text describing the averaging */
  ec_dtype dtype;     /* EC_F32 (default) or EC_F16 for /params */
} model_meta;

typedef struct model_writer model_writer;

/* Starts `path` through `path.tmp`; flags are core/atomic.h's (EC_ATOMIC_NOCLOBBER refuses an
 * existing file). */
ec_status model_writer_open(model_writer **w, const char *path, const model_meta *meta, int flags);
ec_status model_writer_add_param(model_writer *w, const char *name, const ec_shape *shape,
                                 ec_dtype mem_dtype, const void *data);
ec_status model_writer_add_buffer(model_writer *w, const char *name, const ec_shape *shape,
                                  const float *data);
/* Streaming form of add_param for tensors too large to hold: begin, write slices of the
 * flattened tensor in order (any sizes), end. One parameter at a time. */
ec_status model_writer_begin_param(model_writer *w, const char *name, const ec_shape *shape,
                                   ec_dtype mem_dtype);
ec_status model_writer_write(model_writer *w, ec_dtype mem_dtype, const void *data, int64_t offset,
                             int64_t count);
ec_status model_writer_end_param(model_writer *w);
/* The open HDF5 file, for provenance attributes and datasets outside /params and /buffers. */
hid_t model_writer_file(model_writer *w);
/* Starts writing what was written so far to disk without waiting (ec_start_writeback), so that
 * closing (which fsyncs) finds little left: call it now and then while streaming large models. */
void model_writer_start_writeback(model_writer *w);
/* Commits (rename into place) and frees *w; on failure removes the temporary file. */
ec_status model_writer_close(model_writer **w);
void model_writer_abort(model_writer **w);

typedef struct {
  char *name;
  ec_shape shape;
  int64_t numel;
  ec_dtype dtype; /* as stored */
} model_tensor;

typedef struct {
  char *path;
  hid_t file;
  int64_t format_version, nimg;
  char *preset, *config, *ema;
  int nparams, nbuffers;
  model_tensor *params, *buffers; /* in the order written */
} model_file;

/* Opens and checks a model file (format, version, attributes, tensor types). */
ec_status model_open(model_file *m, const char *path);
void model_close(model_file *m);
/* Reads elements [offset, offset + count) of a parameter (or buffer) as `mem` (float32/16). */
ec_status model_read_param(const model_file *m, int idx, ec_dtype mem, void *out, int64_t offset,
                           int64_t count);
ec_status model_read_buffer(const model_file *m, int idx, float *out);
int model_find_param(const model_file *m, const char *name);

/* Writes the parameters and buffers of `m` as a .safetensors file (names unchanged, buffers as
 * F32, parameters as `dtype` (EC_F32 or EC_F16), the root attributes in __metadata__), through
 * a temporary file; flags as for model_writer_open. */
ec_status model_export_safetensors(const model_file *m, const char *path, ec_dtype dtype, int flags);

#endif
