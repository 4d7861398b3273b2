/* IDX datasets (MNIST, Fashion-MNIST; dataset.h): train-images-idx3-ubyte[.gz] and
 * train-labels-idx1-ubyte[.gz], or the test split's t10k-images-idx3-ubyte[.gz] and
 * t10k-labels-idx1-ubyte[.gz], read whole at open through zlib (which reads uncompressed files
 * as they are). Each h × w image is centred in a zero P × P square, P the next power of two of
 * max(h, w) (28 -> 32: 2 pixels on each side), 1 channel. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/alloc.h"
#include "trainer/dataset_impl.h"

#define IDX_IMAGES "train-images-idx3-ubyte"
#define IDX_LABELS "train-labels-idx1-ubyte"
#define IDX_TEST_IMAGES "t10k-images-idx3-ubyte"
#define IDX_TEST_LABELS "t10k-labels-idx1-ubyte"
#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_MAX_SIDE 65536u

typedef struct {
  uint8_t *pixels; /* n × item_bytes, padded */
} idx_impl;

static int is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir/base when it exists, else dir/base.gz when that exists; NULL (no message) when neither. */
static char *find_idx(const char *dir, const char *base) {
  char *p = ec_asprintf("%s/%s", dir, base);
  if (!p || is_file(p)) return p;
  ec_freep(&p);
  p = ec_asprintf("%s/%s.gz", dir, base);
  if (p && !is_file(p)) ec_freep(&p);
  return p;
}

static int has_idx(const char *dir, const char *base) {
  char *p = find_idx(dir, base);
  int yes = p != NULL;
  ec_freep(&p);
  return yes;
}

int edm2_dataset_is_idx_dir(const char *dir) { return has_idx(dir, IDX_IMAGES); }
int edm2_dataset_is_idx_test_dir(const char *dir) { return has_idx(dir, IDX_TEST_IMAGES); }

/* Reads up to n bytes; *got says how many came. A gzip stream that ends early is not an error
 * here (the caller reports the truncation, with `*cut` set); corrupt data and I/O errors are. */
static ec_status gz_read(gzFile f, const char *path, void *buf, size_t n, size_t *got, int *cut) {
  *got = 0;
  while (*got < n) {
    size_t want = n - *got;
    if (want > (1u << 30)) want = 1u << 30;
    int r = gzread(f, (char *)buf + *got, (unsigned)want);
    if (r < 0) {
      int errnum = 0;
      const char *msg = gzerror(f, &errnum);
      if (errnum == Z_ERRNO) return ec_err(EC_EIO, "%s: read failed: %s", path, strerror(errno));
      return ec_err(EC_EFORMAT, "%s: corrupt gzip data: %s", path, msg);
    }
    if (r == 0) break;
    *got += (size_t)r;
  }
  if (*got < n && cut) {
    int errnum = 0;
    gzerror(f, &errnum);
    *cut = errnum == Z_BUF_ERROR;
  }
  return EC_OK;
}

static const char *cut_note(int cut) { return cut ? " (the gzip stream is cut short)" : ""; }

static uint32_t be32(const uint8_t *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* The magic number and ndim dimensions. */
static ec_status read_header(gzFile f, const char *path, uint32_t magic, int ndim, uint32_t *dims) {
  uint8_t h[16];
  size_t need = 4 + 4 * (size_t)ndim, got = 0;
  int cut = 0;
  ec_status st = gz_read(f, path, h, need, &got, &cut);
  if (st) return st;
  if (got >= 4 && be32(h) != magic)
    return ec_err(EC_EFORMAT, "%s: bad magic number 0x%08x: not an IDX %s file (expected 0x%08x)", path,
                  be32(h), magic == IDX_MAGIC_IMAGES ? "image" : "label", magic);
  if (got < need)
    return ec_err(EC_EFORMAT, "%s: truncated: the IDX header needs %zu bytes, the file holds %zu%s", path, need,
                  got, cut_note(cut));
  for (int k = 0; k < ndim; k++) dims[k] = be32(h + 4 + 4 * k);
  return EC_OK;
}

/* Fails when the stream holds anything after what the header announced. */
static ec_status check_end(gzFile f, const char *path, const char *what) {
  uint8_t extra[1];
  size_t got = 0;
  ec_status st = gz_read(f, path, extra, 1, &got, NULL);
  if (st) return st;
  if (got) return ec_err(EC_EFORMAT, "%s: the file holds more bytes than its header announces (%s)", path, what);
  return EC_OK;
}

static gzFile open_gz(const char *path, ec_status *st) {
  gzFile f = gzopen(path, "rb");
  if (!f) {
    *st = ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: cannot open: %s", path,
                 errno ? strerror(errno) : "out of memory");
    return NULL;
  }
  gzbuffer(f, 1u << 18);
  return f;
}

static ec_status read_images(edm2_dataset *d, idx_impl *x, const char *path) {
  ec_status st = EC_OK;
  gzFile f = open_gz(path, &st);
  if (!f) return st;
  uint8_t *batch = NULL;
  uint32_t dims[3];
  if ((st = read_header(f, path, IDX_MAGIC_IMAGES, 3, dims))) goto done;
  uint32_t n = dims[0], h = dims[1], w = dims[2];
  if (n == 0) {
    st = ec_err(EC_EFORMAT, "%s: the file holds no images", path);
    goto done;
  }
  if (h == 0 || w == 0 || h > IDX_MAX_SIDE || w > IDX_MAX_SIDE) {
    st = ec_err(EC_EFORMAT, "%s: unsupported image size %u×%u (sides 1 to %u)", path, h, w, IDX_MAX_SIDE);
    goto done;
  }
  uint32_t side = 1;
  while (side < h || side < w) side *= 2;
  size_t hw = (size_t)h * w, item = (size_t)side * side;
  d->info.n = n;
  d->info.channels = 1;
  d->info.height = d->info.width = (int)side;
  d->info.type = EDM2_ITEM_U8;
  d->info.item_bytes = item;
  size_t per_batch = (1u << 22) / hw + 1, top = (side - h) / 2, left = (side - w) / 2;
  if (per_batch > n) per_batch = n;
  if (!(batch = ec_mallocarray(per_batch, hw))) {
    st = EC_ENOMEM;
    goto done;
  }
  /* The pixel store grows as images arrive, so that a header announcing more images than the
   * file holds is reported as truncated rather than as a failed allocation. */
  size_t cap = 0;
  for (size_t i0 = 0; i0 < n; i0 += per_batch) {
    size_t count = n - i0 < per_batch ? n - i0 : per_batch, got = 0;
    int cut = 0;
    if (i0 + count > cap) {
      size_t want = cap ? 2 * cap : (n < 65536 ? n : 65536);
      if (want < i0 + count) want = i0 + count;
      if (want > n) want = n;
      uint8_t *p = ec_realloc(x->pixels, want, item);
      if (!p) {
        st = EC_ENOMEM;
        goto done;
      }
      memset(p + cap * item, 0, (want - cap) * item);
      x->pixels = p;
      cap = want;
    }
    if ((st = gz_read(f, path, batch, count * hw, &got, &cut))) goto done;
    if (got < count * hw) {
      size_t total = i0 * hw + got;
      st = ec_err(EC_EFORMAT,
                  "%s: truncated: the header announces %u images of %u×%u (%llu bytes of pixels), the file "
                  "holds %zu (%zu complete images)%s",
                  path, n, h, w, (unsigned long long)n * hw, total, total / hw, cut_note(cut));
      goto done;
    }
    for (size_t k = 0; k < count; k++) {
      uint8_t *dst = x->pixels + (i0 + k) * item + top * side + left;
      for (size_t r = 0; r < h; r++) memcpy(dst + r * side, batch + k * hw + r * w, w);
    }
  }
  char what[96];
  snprintf(what, sizeof what, "%u images of %u×%u", n, h, w);
  st = check_end(f, path, what);
done:
  ec_freep(&batch);
  gzclose(f);
  return st;
}

static ec_status read_labels(edm2_dataset *d, const char *path, const char *images) {
  ec_status st = EC_OK;
  gzFile f = open_gz(path, &st);
  if (!f) return st;
  uint8_t *bytes = NULL;
  int32_t *classes = NULL;
  uint32_t n = 0;
  if ((st = read_header(f, path, IDX_MAGIC_LABELS, 1, &n))) goto done;
  if ((int64_t)n != d->info.n) {
    st = ec_err(EC_EFORMAT, "%s: %u labels for the %lld images of %s", path, n, (long long)d->info.n, images);
    goto done;
  }
  size_t got = 0;
  int cut = 0;
  if (!(bytes = ec_malloc(n)) || !(classes = ec_mallocarray(n, sizeof *classes))) {
    st = EC_ENOMEM;
    goto done;
  }
  if ((st = gz_read(f, path, bytes, n, &got, &cut))) goto done;
  if (got < n) {
    st = ec_err(EC_EFORMAT, "%s: truncated: the header announces %u labels, the file holds %zu%s", path, n, got,
                cut_note(cut));
    goto done;
  }
  char what[64];
  snprintf(what, sizeof what, "%u labels", n);
  if ((st = check_end(f, path, what))) goto done;
  for (uint32_t i = 0; i < n; i++) classes[i] = bytes[i];
  st = edm2_dataset_set_classes(d, &classes);
done:
  ec_freep(&bytes);
  ec_freep(&classes);
  gzclose(f);
  return st;
}

static ec_status idx_read(edm2_dataset *d, int64_t i, void *raw) {
  const idx_impl *x = d->impl;
  memcpy(raw, x->pixels + (size_t)i * d->info.item_bytes, d->info.item_bytes);
  return EC_OK;
}

static void idx_free(edm2_dataset *d) {
  idx_impl *x = d->impl;
  if (x) ec_freep(&x->pixels);
  ec_freep(&d->impl);
}

/* The split whose files are named images_base and labels_base. */
static ec_status open_split(edm2_dataset *d, const char *dir, const edm2_dataset_opts *opts, const char *images_base,
                            const char *labels_base) {
  idx_impl *x = ec_calloc(1, sizeof *x);
  if (!x) return EC_ENOMEM;
  d->impl = x;
  d->read = idx_read;
  d->free_impl = idx_free;
  char *images = find_idx(dir, images_base), *labels = NULL;
  ec_status st;
  if (!images) {
    st = ec_err(EC_ENOENT, "%s: no %s[.gz]", dir, images_base);
    goto done;
  }
  if ((st = read_images(d, x, images))) goto done;
  if (opts->use_labels) {
    if (!(labels = find_idx(dir, labels_base))) {
      st = ec_err(EC_ENOENT, "%s/%s[.gz]: missing; the labels of %s are needed (or train unconditionally)", dir,
                  labels_base, images);
      goto done;
    }
    st = read_labels(d, labels, images);
  }
done:
  ec_freep(&images);
  ec_freep(&labels);
  return st;
}

ec_status edm2_dataset_open_idx(edm2_dataset *d, const char *dir, const edm2_dataset_opts *opts) {
  return open_split(d, dir, opts, IDX_IMAGES, IDX_LABELS);
}

ec_status edm2_dataset_open_idx_test(edm2_dataset *d, const char *dir, const edm2_dataset_opts *opts) {
  return open_split(d, dir, opts, IDX_TEST_IMAGES, IDX_TEST_LABELS);
}
