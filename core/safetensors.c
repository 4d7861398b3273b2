/* Safetensors reader and writer; see safetensors.h. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "check.h"

/* Tensor data is copied between file and memory without byte swapping. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; a big-endian host needs byte swaps in this file"
#endif

/* Conversions go through a buffer of this size, so memory use does not grow with the tensor. */
enum { CHUNK_BYTES = 1 << 20 };
/* The most one read or write call asks for; Linux moves at most about 2 GiB per call anyway. */
enum { IO_MAX = 1 << 30 };

/* JSON numbers reach us as doubles (cJSON), which hold integers exactly up to 2^53. Offsets,
 * dims and sizes above that (8 PiB) are refused rather than silently rounded. */
#define MAX_EXACT (INT64_C(1) << 53)

#define META_KEY "__metadata__"

enum { ST_COLLECT = 0, ST_WRITING, ST_FINISHED, ST_FAILED };

/* ---- shared helpers ---- */

/* Number of elements of a shape with non-negative dims, or -1 when the product of its non-zero
 * dims exceeds 2^53: no file can hold such a tensor, and ec_shape_numel would overflow on it. */
static int64_t checked_numel(const ec_shape *s) {
  int64_t n = 1;
  int zero = 0;
  for (int i = 0; i < s->ndim; i++) {
    int64_t d = s->dims[i];
    if (d == 0) {
      zero = 1;
      continue;
    }
    if (n > MAX_EXACT / d) return -1;
    n *= d;
  }
  return zero ? 0 : n;
}

/* 1 when data of type `from` can become type `to`: itself, or floating to floating except
 * float64 to the 16-bit types, which ec_convert refuses (rounding twice would differ from
 * rounding once). */
static int convertible(ec_dtype from, ec_dtype to) {
  if (from == to) return 1;
  if (!ec_dtype_is_float(from) || !ec_dtype_is_float(to)) return 0;
  return !(from == EC_F64 && (to == EC_F16 || to == EC_BF16));
}

/* Offset of the first byte of s[0..n) that is not valid UTF-8 (overlong forms and surrogates
 * included), or n. The format requires a UTF-8 header and cJSON does not check it. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return n;
}

static int cmp_offset(const void *a, const void *b) {
  const ec_st_tensor *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
  const ec_st_tensor *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

/* ---- reader ---- */

/* Reads exactly n bytes at file offset pos, retrying short reads and EINTR. `tensor` names what
 * is read in messages (NULL: the header). */
static ec_status read_at(int fd, const char *path, const char *tensor, void *buf, size_t n,
                         uint64_t pos) {
  char *p = buf;
  while (n > 0) {
    ssize_t got = pread(fd, p, n < IO_MAX ? n : IO_MAX, (off_t)pos);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (tensor)
        return ec_err(EC_EIO, "%s: reading tensor '%s': %s", path, tensor, strerror(errno));
      return ec_err(EC_EIO, "%s: reading the header: %s", path, strerror(errno));
    }
    if (got == 0) {
      /* ec_st_open checked every range against the size, so the file shrank after that. */
      struct stat sb;
      long long size = fstat(fd, &sb) == 0 ? (long long)sb.st_size : -1;
      return ec_err(EC_EFORMAT,
                    "%s: unexpected end of file at byte %" PRIu64 " reading %s%s%s (the file "
                    "now has %lld bytes; was it truncated while open?)",
                    path, pos, tensor ? "tensor '" : "the header", tensor ? tensor : "",
                    tensor ? "'" : "", size);
    }
    p += got;
    n -= (size_t)got;
    pos += (uint64_t)got;
  }
  return EC_OK;
}

/* Reads a JSON number that must be an integer in [0, 2^53]. */
static int get_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return 0;
  double v = item->valuedouble;
  if (!(v >= 0 && v <= (double)MAX_EXACT) || (double)(uint64_t)v != v) return 0;
  *out = (uint64_t)v;
  return 1;
}

/* Parses one tensor entry into t (t->name is set by the caller) and checks it against the data
 * buffer size. */
static ec_status parse_tensor(const char *path, const cJSON *item, uint64_t data_size,
                              ec_st_tensor *t) {
  const char *name = item->string;
  if (!cJSON_IsObject(item))
    return ec_err(EC_EFORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
  if (missing)
    return ec_err(EC_EFORMAT, "%s: tensor '%s': entry lacks \"%s\"", path, name, missing);

  if (!cJSON_IsString(dtype))
    return ec_err(EC_EFORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, name);
  int type = -1;
  for (int k = 0; k < EC_DTYPE_COUNT; k++)
    if (!strcmp(dtype->valuestring, ec_dtype_st_code((ec_dtype)k))) type = k;
  if (type < 0) {
    char known[128] = "";
    for (int k = 0; k < EC_DTYPE_COUNT; k++) {
      size_t len = strlen(known);
      snprintf(known + len, sizeof known - len, "%s%s", k ? ", " : "",
               ec_dtype_st_code((ec_dtype)k));
    }
    return ec_err(EC_EFORMAT, "%s: tensor '%s': unsupported dtype '%s' (supported: %s)", path, name,
                  dtype->valuestring, known);
  }
  t->dtype = (ec_dtype)type;

  if (!cJSON_IsArray(shape))
    return ec_err(EC_EFORMAT, "%s: tensor '%s': \"shape\" is not an array", path, name);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > EC_MAX_DIMS)
    return ec_err(EC_EFORMAT,
                  "%s: tensor '%s': shape has %d dimensions, more than the %d supported", path,
                  name, ndim, EC_MAX_DIMS);
  t->shape.ndim = ndim;
  int i = 0;
  const cJSON *dim;
  cJSON_ArrayForEach(dim, shape) {
    uint64_t d;
    if (!get_uint(dim, &d))
      return ec_err(EC_EFORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer",
                    path, name, i);
    t->shape.dims[i++] = (int64_t)d;
  }

  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
      !get_uint(cJSON_GetArrayItem(offsets, 0), &t->begin) ||
      !get_uint(cJSON_GetArrayItem(offsets, 1), &t->end))
    return ec_err(
        EC_EFORMAT,
        "%s: tensor '%s': \"data_offsets\" is not [begin, end] with non-negative integers", path,
        name);
  if (t->end < t->begin)
    return ec_err(EC_EFORMAT,
                  "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                  path, name, t->begin, t->end);
  if (t->end > data_size)
    return ec_err(EC_EFORMAT,
                  "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                  "] reach past the end of the %" PRIu64
                  "-byte data buffer (is the file truncated?)",
                  path, name, t->begin, t->end, data_size);

  char buf[256];
  int64_t numel = checked_numel(&t->shape);
  if (numel < 0)
    return ec_err(EC_EFORMAT, "%s: tensor '%s': shape %s is impossibly large", path, name,
                  ec_shape_str(&t->shape, buf, sizeof buf));
  uint64_t size = ec_dtype_size(t->dtype);
  if ((uint64_t)numel > (t->end - t->begin) / size || (uint64_t)numel * size != t->end - t->begin)
    return ec_err(EC_EFORMAT,
                  "%s: tensor '%s': shape %s of %s needs %" PRIu64
                  " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                  path, name, ec_shape_str(&t->shape, buf, sizeof buf), dtype->valuestring,
                  (uint64_t)numel * size, t->begin, t->end, t->end - t->begin);
  return EC_OK;
}

/* Copies the "__metadata__" object into f->meta_keys and f->meta_values. */
static ec_status parse_meta(ec_st_file *f, const cJSON *meta) {
  if (!cJSON_IsObject(meta))
    return ec_err(EC_EFORMAT, "%s: \"" META_KEY "\" is not a JSON object", f->path);
  int n = cJSON_GetArraySize(meta);
  f->meta_keys = ec_calloc((size_t)n, sizeof *f->meta_keys);
  f->meta_values = ec_calloc((size_t)n, sizeof *f->meta_values);
  if (!f->meta_keys || !f->meta_values) return EC_ENOMEM;
  const cJSON *item;
  cJSON_ArrayForEach(item, meta) {
    if (!cJSON_IsString(item))
      return ec_err(EC_EFORMAT, "%s: \"" META_KEY "\" value for key '%s' is not a string", f->path,
                    item->string);
    /* Metadata is a handful of entries; a quadratic duplicate check is fine. */
    for (int k = 0; k < f->nmeta; k++)
      if (!strcmp(f->meta_keys[k], item->string))
        return ec_err(EC_EFORMAT, "%s: duplicate \"" META_KEY "\" key '%s'", f->path, item->string);
    char *key = ec_strdup(item->string), *value = key ? ec_strdup(item->valuestring) : NULL;
    if (!value) {
      ec_freep(&key);
      return EC_ENOMEM;
    }
    f->meta_keys[f->nmeta] = key;
    f->meta_values[f->nmeta++] = value;
  }
  return EC_OK;
}

/* Parses and validates the header JSON (n bytes at `text`) into f. */
static ec_status parse_header(ec_st_file *f, const char *text, size_t n) {
  const char *path = f->path;
  size_t bad = utf8_invalid_at((const unsigned char *)text, n);
  if (bad < n)
    return ec_err(EC_EFORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)", path, bad);

  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
  if (!root)
    return ec_err(EC_EFORMAT, "%s: header is not valid JSON (error near byte %zu of the header)",
                  path, end ? (size_t)(end - text) : (size_t)0);
  ec_status st = EC_OK;
  /* The writer pads the JSON with spaces to align the data; anything else after it is damage. */
  for (const char *p = end; p < text + n; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      st = ec_err(EC_EFORMAT, "%s: unexpected bytes after the header JSON (byte %zu of the header)",
                  path, (size_t)(p - text));
      goto done;
    }
  }
  if (!cJSON_IsObject(root)) {
    st = ec_err(EC_EFORMAT, "%s: header is not a JSON object", path);
    goto done;
  }

  int n_entries = cJSON_GetArraySize(root), n_meta = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    if (strcmp(item->string, META_KEY)) continue;
    if (n_meta++) {
      st = ec_err(EC_EFORMAT, "%s: duplicate \"" META_KEY "\" entry", path);
      goto done;
    }
    if ((st = parse_meta(f, item))) goto done;
  }

  uint64_t data_size = f->file_size - f->data_start;
  f->tensors = ec_calloc((size_t)(n_entries - n_meta), sizeof *f->tensors);
  if (!f->tensors) {
    st = EC_ENOMEM;
    goto done;
  }
  cJSON_ArrayForEach(item, root) {
    if (!strcmp(item->string, META_KEY)) continue;
    ec_st_tensor *t = &f->tensors[f->ntensors++];
    if (!(t->name = ec_strdup(item->string))) {
      st = EC_ENOMEM;
      goto done;
    }
    if ((st = parse_tensor(path, item, data_size, t))) goto done;
  }

  /* cJSON keeps every copy of a repeated key, so duplicates are found by sorting names. */
  f->by_name_ = ec_mallocarray((size_t)f->ntensors, sizeof *f->by_name_);
  if (!f->by_name_) {
    st = EC_ENOMEM;
    goto done;
  }
  qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_offset);
  for (int i = 0; i < f->ntensors; i++) f->by_name_[i] = &f->tensors[i];
  qsort(f->by_name_, (size_t)f->ntensors, sizeof *f->by_name_, cmp_name);
  for (int i = 1; i < f->ntensors; i++) {
    if (!strcmp(f->by_name_[i - 1]->name, f->by_name_[i]->name)) {
      st = ec_err(EC_EFORMAT, "%s: duplicate tensor name '%s'", path, f->by_name_[i]->name);
      goto done;
    }
  }

  /* Sorted by offset, a tensor overlaps another exactly when it starts before the previous
   * non-empty one ends. Gaps are allowed: they waste space but cannot corrupt data. */
  const ec_st_tensor *prev = NULL;
  for (int i = 0; i < f->ntensors; i++) {
    const ec_st_tensor *t = &f->tensors[i];
    if (t->begin == t->end) continue;
    if (prev && t->begin < prev->end) {
      st = ec_err(EC_EFORMAT,
                  "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64 ", %" PRIu64
                  "] overlap in the data buffer",
                  path, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
      goto done;
    }
    prev = t;
  }

done:
  cJSON_Delete(root);
  return st;
}

ec_status ec_st_open(ec_st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  if (!(f->path = ec_strdup(path))) return EC_ENOMEM;
  ec_status st = EC_OK;
  char *header = NULL;

  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    st = ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  struct stat sb;
  if (fstat(f->fd, &sb) != 0) {
    st = ec_err(EC_EIO, "%s: cannot stat: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = ec_err(EC_EFORMAT, "%s: not a regular file", path);
    goto fail;
  }
  f->file_size = (uint64_t)sb.st_size;
  if (f->file_size < 8) {
    st = ec_err(EC_EFORMAT, "%s: only %" PRIu64 " bytes, too short for a safetensors file", path,
                f->file_size);
    goto fail;
  }

  unsigned char len8[8];
  if ((st = read_at(f->fd, path, NULL, len8, 8, 0))) goto fail;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
  if (n > EC_ST_MAX_HEADER) {
    st = ec_err(EC_EFORMAT,
                "%s: header length %" PRIu64 " exceeds the %" PRIu64
                "-byte limit (not a safetensors file?)",
                path, n, EC_ST_MAX_HEADER);
    goto fail;
  }
  if (n > f->file_size - 8) {
    st = ec_err(EC_EFORMAT,
                "%s: header length %" PRIu64 " is larger than the rest of the file (%" PRIu64
                " bytes); truncated or not a safetensors file",
                path, n, f->file_size - 8);
    goto fail;
  }
  f->data_start = 8 + n;
  if (!(header = ec_malloc((size_t)n + 1))) {
    st = EC_ENOMEM;
    goto fail;
  }
  if ((st = read_at(f->fd, path, NULL, header, (size_t)n, 8))) goto fail;
  header[n] = '\0';
  if ((st = parse_header(f, header, (size_t)n))) goto fail;
  ec_freep(&header);
  return EC_OK;

fail:
  ec_freep(&header);
  ec_st_close(f);
  return st;
}

int ec_st_find(const ec_st_file *f, const char *name) {
  ec_st_tensor key = {.name = (char *)name};
  const ec_st_tensor *kp = &key;
  if (f->ntensors == 0) return -1;
  ec_st_tensor **hit =
      bsearch(&kp, f->by_name_, (size_t)f->ntensors, sizeof *f->by_name_, cmp_name);
  return hit ? (int)(*hit - f->tensors) : -1;
}

const char *ec_st_meta(const ec_st_file *f, const char *key) {
  for (int i = 0; i < f->nmeta; i++)
    if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
  return NULL;
}

ec_status ec_st_read(const ec_st_file *f, int idx, ec_dtype mem_dtype, void *out, int64_t offset,
                     int64_t count) {
  EC_ASSERTF(f->path, "ec_st_read on a file that is not open");
  EC_ASSERT(mem_dtype >= 0 && mem_dtype < EC_DTYPE_COUNT);
  if (idx < 0 || idx >= f->ntensors)
    return ec_err(EC_EINVAL, "%s: no tensor with index %d (the file has %d)", f->path, idx,
                  f->ntensors);
  const ec_st_tensor *t = &f->tensors[idx];
  int64_t numel = ec_shape_numel(&t->shape);
  if (offset < 0 || count < 0 || offset > numel || count > numel - offset)
    return ec_err(EC_EINVAL, "%s: tensor '%s': elements [%lld, %lld) are outside its %lld", f->path,
                  t->name, (long long)offset, (long long)offset + count, (long long)numel);
  if (!convertible(t->dtype, mem_dtype))
    return ec_err(EC_EINVAL, "%s: tensor '%s' is %s and cannot be read as %s", f->path, t->name,
                  ec_dtype_name(t->dtype), ec_dtype_name(mem_dtype));
  size_t fsz = ec_dtype_size(t->dtype), msz = ec_dtype_size(mem_dtype);
  uint64_t pos = f->data_start + t->begin + (uint64_t)offset * fsz;
  if (count == 0) return EC_OK;
  if (mem_dtype == t->dtype) return read_at(f->fd, f->path, t->name, out, (size_t)count * fsz, pos);

  size_t per = CHUNK_BYTES / fsz, chunk = (size_t)count < per ? (size_t)count : per;
  void *buf = ec_malloc(chunk * fsz);
  if (!buf) return EC_ENOMEM;
  ec_status st = EC_OK;
  for (size_t done = 0; done < (size_t)count && !st; done += chunk) {
    size_t k = (size_t)count - done < chunk ? (size_t)count - done : chunk;
    st = read_at(f->fd, f->path, t->name, buf, k * fsz, pos + done * fsz);
    if (!st) ec_convert((char *)out + done * msz, mem_dtype, buf, t->dtype, k);
  }
  ec_freep(&buf);
  return st;
}

void ec_st_close(ec_st_file *f) {
  if (!f) return;
  /* fd is only meaningful once path is set: a zeroed struct has fd 0, which is stdin. */
  if (f->path && f->fd >= 0) close(f->fd);
  if (f->tensors)
    for (int i = 0; i < f->ntensors; i++) ec_freep(&f->tensors[i].name);
  for (int i = 0; i < f->nmeta; i++) {
    ec_freep(&f->meta_keys[i]);
    ec_freep(&f->meta_values[i]);
  }
  ec_freep(&f->tensors);
  ec_freep(&f->by_name_);
  ec_freep(&f->meta_keys);
  ec_freep(&f->meta_values);
  ec_freep(&f->path);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

/* ---- writer ---- */

/* Records a failed write-side system call; a full disk or the file size limit is EC_ENOSPC. */
static ec_status sys_error(const char *path, const char *what, int err) {
  ec_status code = err == ENOSPC || err == EFBIG ? EC_ENOSPC : EC_EIO;
#ifdef EDQUOT
  if (err == EDQUOT) code = EC_ENOSPC;
#endif
  return ec_err(code, "%s: %s: %s", path, what, strerror(err));
}

static ec_status write_all(ec_st_writer *w, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t put = write(w->fd, p, n < IO_MAX ? n : IO_MAX);
    if (put < 0) {
      if (errno == EINTR) continue;
      return sys_error(w->path, "write", errno);
    }
    if (put == 0) return ec_err(EC_EIO, "%s: write: no progress", w->path);
    p += put;
    n -= (size_t)put;
  }
  return EC_OK;
}

/* Moves w->cur past finished tensors, including zero-size ones that need no write. */
static void advance(ec_st_writer *w) {
  while (w->cur < w->ntensors && w->done == w->tensors[w->cur].end - w->tensors[w->cur].begin) {
    w->cur++;
    w->done = 0;
  }
}

static ec_status check_name(const char *what, const char *s) {
  size_t n = strlen(s), bad = utf8_invalid_at((const unsigned char *)s, n);
  if (bad < n) return ec_err(EC_EINVAL, "safetensors: %s is not valid UTF-8 (byte %zu)", what, bad);
  return EC_OK;
}

ec_status ec_st_writer_add(ec_st_writer *w, const char *name, ec_dtype dtype, ec_shape shape) {
  EC_ASSERTF(w->state == ST_COLLECT, "ec_st_writer_add after ec_st_writer_begin");
  EC_ASSERT(dtype >= 0 && dtype < EC_DTYPE_COUNT);
  EC_ASSERT(shape.ndim >= 0 && shape.ndim <= EC_MAX_DIMS);
  if (!name || !*name) return ec_err(EC_EINVAL, "safetensors: empty tensor name");
  if (!strcmp(name, META_KEY))
    return ec_err(EC_EINVAL, "safetensors: tensor name '%s' is reserved for metadata", name);
  ec_status st = check_name("tensor name", name);
  if (st) return st;
  /* Checkpoints hold at most a few thousand tensors; a linear duplicate check is fine. */
  for (int i = 0; i < w->ntensors; i++)
    if (!strcmp(w->tensors[i].name, name))
      return ec_err(EC_EINVAL, "safetensors: duplicate tensor name '%s'", name);
  char buf[256];
  for (int i = 0; i < shape.ndim; i++)
    if (shape.dims[i] < 0)
      return ec_err(EC_EINVAL, "safetensors: tensor '%s': negative dimension in shape %s", name,
                    ec_shape_str(&shape, buf, sizeof buf));
  uint64_t begin = w->ntensors ? w->tensors[w->ntensors - 1].end : 0;
  int64_t numel = checked_numel(&shape);
  uint64_t size = ec_dtype_size(dtype);
  if (numel < 0 || (uint64_t)numel > ((uint64_t)MAX_EXACT - begin) / size)
    return ec_err(EC_EINVAL, "safetensors: tensor '%s': shape %s makes the file too large", name,
                  ec_shape_str(&shape, buf, sizeof buf));

  if (w->ntensors == w->cap_tensors) {
    int cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
    ec_st_tensor *t = ec_realloc(w->tensors, (size_t)cap, sizeof *t);
    if (!t) return EC_ENOMEM;
    w->tensors = t;
    w->cap_tensors = cap;
  }
  ec_st_tensor *t = &w->tensors[w->ntensors];
  if (!(t->name = ec_strdup(name))) return EC_ENOMEM;
  t->dtype = dtype;
  t->shape = shape;
  t->begin = begin;
  t->end = begin + (uint64_t)numel * size;
  w->ntensors++;
  return EC_OK;
}

ec_status ec_st_writer_meta(ec_st_writer *w, const char *key, const char *value) {
  EC_ASSERTF(w->state == ST_COLLECT, "ec_st_writer_meta after ec_st_writer_begin");
  EC_ASSERT(key && value);
  ec_status st = check_name("metadata key", key);
  if (!st) st = check_name("metadata value", value);
  if (st) return st;
  for (int i = 0; i < w->nmeta; i++)
    if (!strcmp(w->meta_keys[i], key))
      return ec_err(EC_EINVAL, "safetensors: duplicate metadata key '%s'", key);
  if (w->nmeta == w->cap_meta) {
    int cap = w->cap_meta ? 2 * w->cap_meta : 8;
    char **k = ec_realloc(w->meta_keys, (size_t)cap, sizeof *k);
    if (!k) return EC_ENOMEM;
    w->meta_keys = k;
    char **v = ec_realloc(w->meta_values, (size_t)cap, sizeof *v);
    if (!v) return EC_ENOMEM;
    w->meta_values = v;
    w->cap_meta = cap;
  }
  char *k = ec_strdup(key), *v = k ? ec_strdup(value) : NULL;
  if (!v) {
    ec_freep(&k);
    return EC_ENOMEM;
  }
  w->meta_keys[w->nmeta] = k;
  w->meta_values[w->nmeta++] = v;
  return EC_OK;
}

/* Builds the header JSON: "__metadata__" first, then the tensors in the order added, with the
 * field order of the reference library. */
static ec_status build_header(const ec_st_writer *w, char **out) {
  *out = NULL;
  cJSON *root = cJSON_CreateObject();
  if (!root) goto nomem;
  if (w->nmeta > 0) {
    cJSON *meta = cJSON_AddObjectToObject(root, META_KEY);
    if (!meta) goto nomem;
    for (int i = 0; i < w->nmeta; i++)
      if (!cJSON_AddStringToObject(meta, w->meta_keys[i], w->meta_values[i])) goto nomem;
  }
  for (int i = 0; i < w->ntensors; i++) {
    const ec_st_tensor *t = &w->tensors[i];
    /* Integers go in as raw text: cJSON would print numbers from 1e15 on in exponent form,
     * which strict readers (the Rust reference) reject as non-integers. */
    char shape[EC_MAX_DIMS * 21 + 3], offsets[48];
    size_t len = (size_t)snprintf(shape, sizeof shape, "[");
    for (int d = 0; d < t->shape.ndim; d++)
      len += (size_t)snprintf(shape + len, sizeof shape - len, d ? ",%" PRId64 : "%" PRId64,
                              t->shape.dims[d]);
    snprintf(shape + len, sizeof shape - len, "]");
    snprintf(offsets, sizeof offsets, "[%" PRIu64 ",%" PRIu64 "]", t->begin, t->end);
    cJSON *entry = cJSON_AddObjectToObject(root, t->name);
    if (!entry || !cJSON_AddStringToObject(entry, "dtype", ec_dtype_st_code(t->dtype)) ||
        !cJSON_AddRawToObject(entry, "shape", shape) ||
        !cJSON_AddRawToObject(entry, "data_offsets", offsets))
      goto nomem;
  }
  *out = cJSON_PrintUnformatted(root);
  if (!*out) goto nomem;
  cJSON_Delete(root);
  return EC_OK;

nomem:
  cJSON_Delete(root);
  return ec_err(EC_ENOMEM, "%s: out of memory building the safetensors header", w->path);
}

ec_status ec_st_writer_begin(ec_st_writer *w, const char *path) {
  EC_ASSERTF(w->state == ST_COLLECT, "ec_st_writer_begin called twice");
  /* Until the header is out, any return is a failure. */
  w->state = ST_FAILED;
  if (!(w->path = ec_strdup(path))) return EC_ENOMEM;
  char *json = NULL;
  ec_status st = build_header(w, &json);
  if (st) return st;

  /* Pad with spaces so that the data buffer, at 8 + N, is 8-byte aligned for memory mapping. */
  size_t len = strlen(json), n = (len + 7) / 8 * 8;
  unsigned char *buf = ec_malloc(8 + n);
  if (!buf) {
    cJSON_free(json);
    return EC_ENOMEM;
  }
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(buf + 8, json, len);
  memset(buf + 8 + len, ' ', n - len);
  cJSON_free(json);

  w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (w->fd < 0) {
    int err = errno;
    ec_freep(&buf);
    if (err == ENOENT) return ec_err(EC_ENOENT, "%s: cannot create: %s", path, strerror(err));
    return sys_error(path, "cannot create", err);
  }
  w->fd_open = 1;
  st = write_all(w, buf, 8 + n);
  ec_freep(&buf);
  if (st) return st;
  w->cur = 0;
  w->done = 0;
  advance(w);
  w->state = ST_WRITING;
  return EC_OK;
}

ec_status ec_st_writer_write(ec_st_writer *w, ec_dtype mem_dtype, const void *data, int64_t count) {
  EC_ASSERTF(w->state == ST_WRITING, "ec_st_writer_write outside begin..finish or after a failure");
  EC_ASSERT(mem_dtype >= 0 && mem_dtype < EC_DTYPE_COUNT);
  EC_ASSERT(count >= 0 && (data || count == 0));
  if (count == 0) return EC_OK;
  w->state = ST_FAILED;
  if (w->cur >= w->ntensors)
    return ec_err(EC_EINVAL, "%s: %lld elements written after the last tensor", w->path,
                  (long long)count);
  const ec_st_tensor *t = &w->tensors[w->cur];
  size_t fsz = ec_dtype_size(t->dtype), msz = ec_dtype_size(mem_dtype);
  uint64_t left = (t->end - t->begin - w->done) / fsz;
  if ((uint64_t)count > left)
    return ec_err(EC_EINVAL, "%s: tensor '%s': %lld elements written but only %" PRIu64 " remain",
                  w->path, t->name, (long long)count, left);
  if (!convertible(mem_dtype, t->dtype))
    return ec_err(EC_EINVAL, "%s: tensor '%s' is stored as %s; %s data cannot be converted to it",
                  w->path, t->name, ec_dtype_name(t->dtype), ec_dtype_name(mem_dtype));

  ec_status st = EC_OK;
  if (mem_dtype == t->dtype) {
    st = write_all(w, data, (size_t)count * fsz);
  } else {
    if (!w->chunk && !(w->chunk = ec_malloc(CHUNK_BYTES))) return EC_ENOMEM;
    size_t per = CHUNK_BYTES / fsz;
    for (size_t done = 0; done < (size_t)count && !st; done += per) {
      size_t k = (size_t)count - done < per ? (size_t)count - done : per;
      ec_convert(w->chunk, t->dtype, (const char *)data + done * msz, mem_dtype, k);
      st = write_all(w, w->chunk, k * fsz);
    }
  }
  if (st) return st;
  w->done += (uint64_t)count * fsz;
  advance(w);
  w->state = ST_WRITING;
  return EC_OK;
}

ec_status ec_st_writer_finish(ec_st_writer *w) {
  EC_ASSERTF(w->state == ST_WRITING, "ec_st_writer_finish without begin or after a failure");
  w->state = ST_FAILED;
  if (w->cur < w->ntensors) {
    const ec_st_tensor *t = &w->tensors[w->cur];
    uint64_t size = ec_dtype_size(t->dtype);
    return ec_err(EC_EINVAL,
                  "%s: tensor '%s' got %" PRIu64 " of its %" PRIu64
                  " elements; the file is incomplete",
                  w->path, t->name, w->done / size, (t->end - t->begin) / size);
  }
  /* EINVAL means the file type cannot be synced (a device such as /dev/null): nothing to do. */
  if (fsync(w->fd) != 0 && errno != EINVAL) return sys_error(w->path, "fsync", errno);
  w->fd_open = 0;
  /* After close fails with EINTR, Linux has released the descriptor and the data is already
   * synced, so only other errors count. */
  if (close(w->fd) != 0 && errno != EINTR) return sys_error(w->path, "close", errno);
  w->state = ST_FINISHED;
  return EC_OK;
}

void ec_st_writer_free(ec_st_writer *w) {
  if (!w) return;
  if (w->fd_open) close(w->fd);
  for (int i = 0; i < w->ntensors; i++) ec_freep(&w->tensors[i].name);
  for (int i = 0; i < w->nmeta; i++) {
    ec_freep(&w->meta_keys[i]);
    ec_freep(&w->meta_values[i]);
  }
  ec_freep(&w->tensors);
  ec_freep(&w->meta_keys);
  ec_freep(&w->meta_values);
  ec_freep(&w->path);
  ec_freep(&w->chunk);
  memset(w, 0, sizeof *w);
}
