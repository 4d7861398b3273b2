/* Model files and their safetensors export; see model.h and docs/formats.md. */
#include "model.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"
#include "core/check.h"
#include "core/fs.h"
#include "core/safetensors.h"

/* Export copies tensors through a buffer of this many elements. */
enum { EXPORT_PIECE = 1 << 20 };

struct model_writer {
  ec_atomic out;
  hid_t file, params, buffers;
  ec_dtype dtype;
  h5io_dset cur;  /* the parameter being streamed, if any */
  int64_t pos;    /* next flat element of it expected (writes come in order) */
  unsigned char *chunk; /* one chunk being assembled (file dtype), + 4 bytes for its checksum */
  size_t chunk_cap;      /* its allocated size, kept across parameters (no page faults per tensor) */
  int64_t chunk_elems, fill;
  int fd;                /* the file's descriptor under HDF5's sec2 driver, or -1 */
};

hid_t model_writer_file(model_writer *w) { return w->file; }

void model_writer_start_writeback(model_writer *w) { ec_start_writeback(w->fd); }

/* The descriptor HDF5 writes through, when its driver is sec2 (the default h5io_file_create
 * uses), else -1. */
static int sec2_fd(hid_t file) {
  hid_t fapl = H5Fget_access_plist(file);
  int fd = -1;
  void *h = NULL;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &h) >= 0 && h)
    fd = *(int *)h;
  h5io_close(&fapl);
  return fd;
}

void model_writer_abort(model_writer **pw) {
  model_writer *w = *pw;
  if (!w) return;
  h5io_dset_close(&w->cur);
  ec_freep(&w->chunk);
  h5io_close(&w->params);
  h5io_close(&w->buffers);
  h5io_close(&w->file);
  ec_atomic_abort(&w->out);
  ec_freep(pw);
}

ec_status model_writer_open(model_writer **pw, const char *path, const model_meta *meta, int flags) {
  *pw = NULL;
  if (meta->dtype != EC_F32 && meta->dtype != EC_F16)
    return ec_err(EC_EINVAL, "%s: model parameters are float32 or float16, not %s", path,
                  ec_dtype_name(meta->dtype));
  model_writer *w = ec_calloc(1, sizeof *w);
  if (!w) return EC_ENOMEM;
  w->file = w->params = w->buffers = w->cur.id = H5I_INVALID_HID;
  w->fd = -1;
  w->dtype = meta->dtype;
  ec_status s = ec_atomic_begin(&w->out, path, flags);
  if (s) {
    ec_freep(&w);
    return s;
  }
  *pw = w;
  if ((s = h5io_file_create(w->out.tmp_path, &w->file)) || ((w->fd = sec2_fd(w->file)), 0) ||
      (s = h5io_attr_write_str(w->file, "format", MODEL_FORMAT)) ||
      (s = h5io_attr_write_i64(w->file, "format_version", MODEL_FORMAT_VERSION)) ||
      (s = h5io_attr_write_i64(w->file, "nimg", meta->nimg)) ||
      (s = h5io_attr_write_str(w->file, "preset", meta->preset ? meta->preset : "")) ||
      (s = h5io_attr_write_str(w->file, "config", meta->config ? meta->config : "{}")) ||
      (s = h5io_attr_write_str(w->file, "ema", meta->ema ? meta->ema : "{}")) ||
      (s = h5io_group_create(w->file, "params", &w->params))) {
    model_writer_abort(pw);
    return s;
  }
  return EC_OK;
}

ec_status model_writer_add_param(model_writer *w, const char *name, const ec_shape *shape,
                                 ec_dtype mem_dtype, const void *data) {
  ec_status s = model_writer_begin_param(w, name, shape, mem_dtype);
  if (!s) s = model_writer_write(w, mem_dtype, data, 0, ec_shape_numel(shape));
  if (!s) s = model_writer_end_param(w);
  return s;
}

/* Parameters are written chunk by chunk with h5io_dset_write_chunk: the data goes to the file
 * with our own Fletcher-32, without HDF5's filter pipeline and chunk cache (several times
 * faster). Slices of any size are assembled into whole chunks here. */
ec_status model_writer_begin_param(model_writer *w, const char *name, const ec_shape *shape,
                                   ec_dtype mem_dtype) {
  EC_ASSERTF(w->cur.id < 0, "model_writer_begin_param: %s: the previous parameter is not ended", name);
  ec_status s = h5io_dset_create(w->params, name, shape, w->dtype, mem_dtype, H5IO_CHECKSUM, &w->cur);
  w->pos = w->fill = 0;
  w->chunk_elems = s ? 0 : h5io_dset_chunk_elems(&w->cur);
  size_t need = (size_t)w->chunk_elems * ec_dtype_size(w->dtype) + 4;
  if (!s && w->chunk_elems > 0 && need > w->chunk_cap) {
    ec_freep(&w->chunk);
    w->chunk_cap = 0;
    if (!(w->chunk = ec_aligned_alloc(need))) {
      h5io_dset_close(&w->cur);
      return EC_ENOMEM;
    }
    w->chunk_cap = need;
  }
  return s;
}

ec_status model_writer_write(model_writer *w, ec_dtype mem_dtype, const void *data, int64_t offset,
                             int64_t count) {
  EC_ASSERT(w->cur.id >= 0);
  EC_ASSERTF(offset == w->pos && offset + count <= w->cur.numel,
             "model_writer_write: slices must come in order (expected %lld, got %lld)", (long long)w->pos,
             (long long)offset);
  if (w->chunk_elems == 0) { /* scalars and empty tensors: not chunked */
    w->pos += count;
    return h5io_dset_write(&w->cur, mem_dtype, data, offset, count);
  }
  size_t esize = ec_dtype_size(w->dtype), msize = ec_dtype_size(mem_dtype);
  ec_status s = EC_OK;
  while (count > 0 && !s) {
    int64_t n = w->chunk_elems - w->fill < count ? w->chunk_elems - w->fill : count;
    ec_convert(w->chunk + (size_t)w->fill * esize, w->dtype, data, mem_dtype, (size_t)n);
    data = (const char *)data + (size_t)n * msize;
    w->fill += n;
    w->pos += n;
    count -= n;
    if (w->fill == w->chunk_elems || w->pos == w->cur.numel) {
      /* HDF5 stores a last partial chunk at full size: pad it */
      memset(w->chunk + (size_t)w->fill * esize, 0, (size_t)(w->chunk_elems - w->fill) * esize);
      s = h5io_dset_write_chunk(&w->cur, w->pos - w->fill, w->chunk);
      w->fill = 0;
    }
  }
  return s;
}

ec_status model_writer_end_param(model_writer *w) {
  EC_ASSERTF(w->pos == w->cur.numel, "model_writer_end_param: %lld of %lld elements written",
             (long long)w->pos, (long long)w->cur.numel);
  h5io_dset_close(&w->cur);
  return EC_OK;
}

ec_status model_writer_add_buffer(model_writer *w, const char *name, const ec_shape *shape,
                                  const float *data) {
  ec_status s;
  if (w->buffers < 0 && (s = h5io_group_create(w->file, "buffers", &w->buffers))) return s;
  return h5io_write_tensor(w->buffers, name, shape, EC_F32, EC_F32, data, H5IO_CHECKSUM);
}

ec_status model_writer_close(model_writer **pw) {
  model_writer *w = *pw;
  if (!w) return EC_OK;
  h5io_dset_close(&w->cur);
  ec_freep(&w->chunk);
  h5io_close(&w->params);
  h5io_close(&w->buffers);
  ec_status s = h5io_file_close(&w->file);
  if (s) {
    model_writer_abort(pw);
    return s;
  }
  s = ec_atomic_commit(&w->out);
  ec_freep(pw);
  return s;
}

/* ---- reader --------------------------------------------------------------------------------- */

static void free_tensors(model_tensor **t, int *n) {
  for (int i = 0; *t && i < *n; i++) ec_freep(&(*t)[i].name);
  ec_freep(t);
  *n = 0;
}

void model_close(model_file *m) {
  free_tensors(&m->params, &m->nparams);
  free_tensors(&m->buffers, &m->nbuffers);
  ec_freep(&m->preset);
  ec_freep(&m->config);
  ec_freep(&m->ema);
  h5io_close(&m->file);
  ec_freep(&m->path);
}

static ec_status read_group(model_file *m, const char *group, model_tensor **out, int *n) {
  hid_t g = H5I_INVALID_HID;
  char **names = NULL;
  int count = 0;
  ec_status s = h5io_group_open(m->file, group, &g);
  if (!s) s = h5io_list(g, &names, &count);
  model_tensor *t = s ? NULL : ec_calloc((size_t)count + 1, sizeof *t);
  if (!s && !t) s = EC_ENOMEM;
  int k = 0;
  for (; !s && k < count; k++) {
    h5io_dset d;
    if ((s = h5io_dset_open(g, names[k], &d))) break;
    if (!ec_dtype_is_float(d.dtype))
      s = ec_err(EC_EFORMAT, "%s: /%s/%s is stored as %s; tensors must be floating point", m->path,
                 group, names[k], ec_dtype_name(d.dtype));
    t[k].shape = d.shape;
    t[k].numel = d.numel;
    t[k].dtype = d.dtype;
    h5io_dset_close(&d);
    if (!s && !(t[k].name = ec_strdup(names[k]))) s = EC_ENOMEM;
  }
  h5io_free_names(&names, count);
  h5io_close(&g);
  if (s) {
    free_tensors(&t, &k);
    return s;
  }
  *out = t;
  *n = count;
  return EC_OK;
}

ec_status model_open(model_file *m, const char *path) {
  memset(m, 0, sizeof *m);
  m->file = H5I_INVALID_HID;
  if (!(m->path = ec_strdup(path))) return EC_ENOMEM;
  char *format = NULL;
  ec_status s = h5io_file_open(path, &m->file);
  if (!s && !h5io_attr_exists(m->file, "format"))
    s = ec_err(EC_EFORMAT, "%s: not an edm2c model (no 'format' attribute)", path);
  if (!s) s = h5io_attr_read_str(m->file, "format", &format);
  if (!s && strcmp(format, MODEL_FORMAT))
    s = ec_err(EC_EFORMAT, "%s: not an edm2c model (format = '%s', expected '%s')", path, format,
               MODEL_FORMAT);
  ec_freep(&format);
  if (!s) s = h5io_attr_read_i64(m->file, "format_version", &m->format_version);
  if (!s && m->format_version > MODEL_FORMAT_VERSION)
    s = ec_err(EC_EFORMAT, "%s: model format_version %lld is newer than this edm2c supports (%d); upgrade edm2c",
               path, (long long)m->format_version, MODEL_FORMAT_VERSION);
  if (!s && m->format_version < 1)
    s = ec_err(EC_EFORMAT, "%s: invalid format_version %lld", path, (long long)m->format_version);
  if (!s) s = h5io_attr_read_i64(m->file, "nimg", &m->nimg);
  if (!s) s = h5io_attr_read_str(m->file, "preset", &m->preset);
  if (!s) s = h5io_attr_read_str(m->file, "config", &m->config);
  if (!s) s = h5io_attr_read_str(m->file, "ema", &m->ema);
  if (!s) s = read_group(m, "params", &m->params, &m->nparams);
  if (!s && h5io_exists(m->file, "buffers")) s = read_group(m, "buffers", &m->buffers, &m->nbuffers);
  if (s) model_close(m);
  return s;
}

int model_find_param(const model_file *m, const char *name) {
  for (int i = 0; i < m->nparams; i++)
    if (!strcmp(m->params[i].name, name)) return i;
  return -1;
}

static ec_status read_tensor(const model_file *m, const char *group, const model_tensor *t,
                             ec_dtype mem, void *out, int64_t offset, int64_t count) {
  char path[1024];
  h5io_dset d;
  snprintf(path, sizeof path, "%s/%s", group, t->name);
  ec_status s = h5io_dset_open(m->file, path, &d);
  if (s) return s;
  if (d.numel != t->numel)
    s = ec_err(EC_EFORMAT, "%s: %s changed size while open", m->path, path);
  else
    s = h5io_dset_read(&d, mem, out, offset, count);
  h5io_dset_close(&d);
  return s;
}

ec_status model_read_param(const model_file *m, int idx, ec_dtype mem, void *out, int64_t offset,
                           int64_t count) {
  EC_ASSERT(idx >= 0 && idx < m->nparams);
  return read_tensor(m, "params", &m->params[idx], mem, out, offset, count);
}

ec_status model_read_buffer(const model_file *m, int idx, float *out) {
  EC_ASSERT(idx >= 0 && idx < m->nbuffers);
  return read_tensor(m, "buffers", &m->buffers[idx], EC_F32, out, 0, m->buffers[idx].numel);
}

/* ---- safetensors export --------------------------------------------------------------------- */

ec_status model_export_safetensors(const model_file *m, const char *path, ec_dtype dtype, int flags) {
  if (dtype != EC_F32 && dtype != EC_F16)
    return ec_err(EC_EINVAL, "%s: export dtype must be float32 or float16", path);
  ec_atomic out;
  ec_st_writer w = {0};
  char num[32];
  ec_status s = ec_atomic_begin(&out, path, flags);
  if (s) return s;
  for (int i = 0; !s && i < m->nparams; i++) s = ec_st_writer_add(&w, m->params[i].name, dtype, m->params[i].shape);
  for (int i = 0; !s && i < m->nbuffers; i++)
    s = ec_st_writer_add(&w, m->buffers[i].name, EC_F32, m->buffers[i].shape);
  snprintf(num, sizeof num, "%lld", (long long)m->nimg);
  if (!s) s = ec_st_writer_meta(&w, "format", MODEL_FORMAT);
  if (!s) s = ec_st_writer_meta(&w, "format_version", "1");
  if (!s) s = ec_st_writer_meta(&w, "nimg", num);
  if (!s) s = ec_st_writer_meta(&w, "preset", m->preset);
  if (!s) s = ec_st_writer_meta(&w, "config", m->config);
  if (!s) s = ec_st_writer_meta(&w, "ema", m->ema);
  if (!s) s = ec_st_writer_begin(&w, out.tmp_path);
  float *buf = s ? NULL : ec_malloc(EXPORT_PIECE * sizeof *buf);
  if (!s && !buf) s = EC_ENOMEM;
  for (int k = 0; !s && k < m->nparams + m->nbuffers; k++) {
    int is_param = k < m->nparams;
    const model_tensor *t = is_param ? &m->params[k] : &m->buffers[k - m->nparams];
    for (int64_t off = 0; !s && off < t->numel; off += EXPORT_PIECE) {
      int64_t n = t->numel - off < EXPORT_PIECE ? t->numel - off : EXPORT_PIECE;
      /* Read as the export type, so float16 parameters are copied without a round trip. */
      ec_dtype mem = is_param ? dtype : EC_F32;
      s = read_tensor(m, is_param ? "params" : "buffers", t, mem, buf, off, n);
      if (!s) s = ec_st_writer_write(&w, mem, buf, n);
    }
  }
  if (!s) s = ec_st_writer_finish(&w);
  ec_freep(&buf);
  ec_st_writer_free(&w);
  if (s) {
    ec_atomic_abort(&out);
    return s;
  }
  return ec_atomic_commit(&out);
}
