/* EDM-style image folders and zip archives (dataset.h; edm2-spec.md §10.1, ImageFolderDataset).
 *
 * Items are the files whose extension (any case) is .png or .npy, found recursively (symbolic
 * links to directories are not followed, as os.walk does not), sorted by relative path with '/'
 * separators (byte order = code-point order of UTF-8 names). Other image formats the reference
 * reads through PIL (.jpg, .bmp, ...) are refused at open, naming the first one, rather than left
 * out silently.
 *
 * PNG (libpng): grayscale -> 1 channel, RGB -> 3; palettes are expanded to RGB, 1/2/4-bit gray to
 * 8 bits, 16-bit samples cut to 8 (libpng's strip_16: the high byte), and alpha (an alpha channel
 * or tRNS) is dropped. The reference would keep alpha as an extra channel (pyspng gives 2 or 4
 * channels); EDM2's datasets have none. Pixels are returned CHW.
 * .npy: little-endian float32 ('<f4', latents) or uint8 ('|u1'), C order, reshaped to [-1, H, W];
 * float items must be finite.
 *
 * Only item 0 is looked at when opening (for the shape); every read checks its item's shape and
 * names the file, or the archive and entry ("data.zip:00000/img00000000.png"). Labels come from
 * dataset.json at the root, when opened with use_labels. Nothing is cached: each read reads the
 * file or entry again. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <zip.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "trainer/dataset_impl.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error ".npy float32 items are copied as they are: a little-endian host is assumed"
#endif

enum { KIND_PNG = 0, KIND_NPY = 1 };

typedef struct {
  size_t name_off;  /* into the name pool while collecting */
  const char *name; /* relative path, '/' separators */
  int64_t zindex;   /* entry of the zip archive; -1 in a folder */
  int kind;         /* KIND_PNG or KIND_NPY */
} folder_item;

typedef struct {
  edm2_item_type type;
  int64_t c, h, w;
} item_shape;

typedef struct {
  char *root; /* the folder or archive, as given */
  zip_t *zip; /* NULL for a folder */
  char *pool; /* item names, NUL-separated */
  size_t pool_len, pool_cap;
  folder_item *items;
  int64_t n, cap;
  item_shape shape; /* item 0's */
  uint8_t *buf;     /* the bytes of the file being read */
  size_t buf_cap;
  uint8_t *hwc;     /* PNG pixels, item 0's shape, before CHW */
  png_bytep *rows;  /* row pointers into hwc */
  char where[8400]; /* the name of the item being read, for messages */
} folder_impl;

/* ------------------------------------------------------------------------------------------ */
/* Names */

static int ext_is(const char *name, const char *ext) {
  size_t n = strlen(name), k = strlen(ext);
  if (n <= k) return 0;
  for (size_t i = 0; i < k; i++) {
    char c = name[n - k + i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != ext[i]) return 0;
  }
  return 1;
}

/* Image formats PIL reads and this reader does not. */
static const char *const FOREIGN_EXT[] = {".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif",
                                          ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm",
                                          ".tga", ".ico", ".jp2", ".j2k", ".apng"};

/* Adds `name` (relative path) when it is an item; refuses other image formats. */
static ec_status add_name(folder_impl *fi, const char *name, int64_t zindex) {
  int kind;
  if (ext_is(name, ".png")) {
    kind = KIND_PNG;
  } else if (ext_is(name, ".npy")) {
    kind = KIND_NPY;
  } else {
    for (size_t k = 0; k < sizeof FOREIGN_EXT / sizeof *FOREIGN_EXT; k++)
      if (ext_is(name, FOREIGN_EXT[k]))
        return ec_err(EC_EFORMAT, "%s%s%s: %s images are not supported (only PNG and .npy); convert the dataset to PNG",
                      fi->root, fi->zip ? ":" : "/", name, FOREIGN_EXT[k] + 1);
    return EC_OK;
  }
  size_t len = strlen(name) + 1;
  if (fi->pool_len + len > fi->pool_cap) {
    size_t cap = fi->pool_cap ? fi->pool_cap : 1 << 16;
    while (cap < fi->pool_len + len) cap *= 2;
    char *p = ec_realloc(fi->pool, cap, 1);
    if (!p) return EC_ENOMEM;
    fi->pool = p;
    fi->pool_cap = cap;
  }
  if (fi->n == fi->cap) {
    int64_t cap = fi->cap ? 2 * fi->cap : 1024;
    folder_item *p = ec_realloc(fi->items, (size_t)cap, sizeof *p);
    if (!p) return EC_ENOMEM;
    fi->items = p;
    fi->cap = cap;
  }
  memcpy(fi->pool + fi->pool_len, name, len);
  fi->items[fi->n++] = (folder_item){.name_off = fi->pool_len, .zindex = zindex, .kind = kind};
  fi->pool_len += len;
  return EC_OK;
}

static int cmp_items(const void *a, const void *b) {
  return strcmp(((const folder_item *)a)->name, ((const folder_item *)b)->name);
}

/* Walks root/rel (rel empty or ending in '/'); rel is a growing buffer. */
static ec_status walk(folder_impl *fi, char **rel, size_t *rel_cap, size_t rel_len) {
  char *dir = ec_asprintf("%s/%s", fi->root, *rel);
  if (!dir) return EC_ENOMEM;
  DIR *dh = opendir(dir);
  ec_status st = EC_OK;
  if (!dh) {
    st = ec_err(EC_EIO, "%s: cannot list: %s", dir, strerror(errno));
    ec_freep(&dir);
    return st;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dh);
    if (!e) {
      if (errno) st = ec_err(EC_EIO, "%s: cannot list: %s", dir, strerror(errno));
      break;
    }
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t len = strlen(e->d_name);
    if (rel_len + len + 2 > *rel_cap) {
      size_t cap = 2 * (rel_len + len + 2);
      char *p = ec_realloc(*rel, cap, 1);
      if (!p) {
        st = EC_ENOMEM;
        break;
      }
      *rel = p;
      *rel_cap = cap;
    }
    memcpy(*rel + rel_len, e->d_name, len + 1);
    /* The entry's type from readdir when the file system gives it (no stat per file). */
    int is_dir = e->d_type == DT_DIR, is_file = e->d_type == DT_REG;
    if (!is_dir && !is_file) {
      char *full = ec_asprintf("%s/%s", fi->root, *rel);
      if (!full) {
        st = EC_ENOMEM;
        break;
      }
      struct stat sb;
      int is_link = lstat(full, &sb) == 0 && S_ISLNK(sb.st_mode);
      if (stat(full, &sb) != 0) {
        /* A dangling symbolic link is not an item; anything else unreadable is an error. */
        if (!is_link) st = ec_err(EC_EIO, "%s: %s", full, strerror(errno));
      } else {
        is_dir = S_ISDIR(sb.st_mode) && !is_link;
        is_file = S_ISREG(sb.st_mode);
      }
      ec_freep(&full);
    }
    if (!st && is_dir) {
      (*rel)[rel_len + len] = '/';
      (*rel)[rel_len + len + 1] = '\0';
      st = walk(fi, rel, rel_cap, rel_len + len + 1);
    } else if (!st && is_file) {
      st = add_name(fi, *rel, -1);
    }
    (*rel)[rel_len] = '\0';
    if (st) break;
  }
  closedir(dh);
  ec_freep(&dir);
  return st;
}

static ec_status list_folder(folder_impl *fi) {
  size_t cap = 256;
  char *rel = ec_calloc(cap, 1);
  if (!rel) return EC_ENOMEM;
  ec_status st = walk(fi, &rel, &cap, 0);
  ec_freep(&rel);
  return st;
}

static ec_status zip_fail(const char *what, zip_error_t *ze) {
  ec_status st = ec_err(EC_EFORMAT, "%s: %s", what, zip_error_strerror(ze));
  return st;
}

static ec_status list_zip(folder_impl *fi) {
  int code = 0;
  fi->zip = zip_open(fi->root, ZIP_RDONLY, &code);
  if (!fi->zip) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    ec_status st = ec_err(code == ZIP_ER_NOENT ? EC_ENOENT : EC_EFORMAT, "%s: cannot open as a zip archive: %s",
                          fi->root, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return st;
  }
  zip_int64_t n = zip_get_num_entries(fi->zip, 0);
  for (zip_int64_t i = 0; i < n; i++) {
    const char *name = zip_get_name(fi->zip, (zip_uint64_t)i, 0);
    if (!name) return zip_fail(fi->root, zip_get_error(fi->zip));
    size_t len = strlen(name);
    if (len && name[len - 1] == '/') continue; /* a directory */
    ec_status st = add_name(fi, name, i);
    if (st) return st;
  }
  return EC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Bytes */

static ec_status grow_buf(folder_impl *fi, size_t size) {
  if (size <= fi->buf_cap) return EC_OK;
  uint8_t *p = ec_realloc(fi->buf, size, 1);
  if (!p) return EC_ENOMEM;
  fi->buf = p;
  fi->buf_cap = size;
  return EC_OK;
}

static const char *item_where(folder_impl *fi, int64_t i) {
  snprintf(fi->where, sizeof fi->where, "%s%s%s", fi->root, fi->zip ? ":" : "/", fi->items[i].name);
  return fi->where;
}

/* Reads a whole file of the folder, or entry of the archive, into fi->buf. */
static ec_status load_file(folder_impl *fi, const char *where, int64_t zindex, size_t *size) {
  *size = 0;
  if (fi->zip) {
    zip_stat_t sb;
    zip_stat_init(&sb);
    if (zip_stat_index(fi->zip, (zip_uint64_t)zindex, 0, &sb) != 0) return zip_fail(where, zip_get_error(fi->zip));
    if (!(sb.valid & ZIP_STAT_SIZE) || sb.size > (zip_uint64_t)1 << 40)
      return ec_err(EC_EFORMAT, "%s: the archive gives no usable size for this entry", where);
    ec_status st = grow_buf(fi, (size_t)sb.size + 1);
    if (st) return st;
    zip_file_t *zf = zip_fopen_index(fi->zip, (zip_uint64_t)zindex, 0);
    if (!zf) return zip_fail(where, zip_get_error(fi->zip));
    /* Reading one byte past the end makes libzip check the entry's CRC. */
    zip_int64_t got = 0, r;
    while ((r = zip_fread(zf, fi->buf + got, sb.size + 1 - (zip_uint64_t)got)) > 0) got += r;
    if (r < 0) {
      st = zip_fail(where, zip_file_get_error(zf));
    } else if ((zip_uint64_t)got != sb.size) {
      st = ec_err(EC_EFORMAT, "%s: the entry holds %lld bytes, the archive announces %llu", where, (long long)got,
                  (unsigned long long)sb.size);
    }
    zip_fclose(zf);
    *size = (size_t)got;
    return st;
  }
  FILE *f = fopen(where, "rb");
  if (!f) return ec_err(errno == ENOENT ? EC_ENOENT : EC_EIO, "%s: cannot open: %s", where, strerror(errno));
  struct stat sb;
  ec_status st = EC_OK;
  if (fstat(fileno(f), &sb) != 0) {
    st = ec_err(EC_EIO, "%s: %s", where, strerror(errno));
  } else if (!(st = grow_buf(fi, (size_t)sb.st_size + 1))) {
    *size = fread(fi->buf, 1, (size_t)sb.st_size + 1, f);
    if (ferror(f)) st = ec_err(EC_EIO, "%s: read failed: %s", where, strerror(errno));
    else if (*size != (size_t)sb.st_size)
      st = ec_err(EC_EIO, "%s: the file changed size while being read", where);
  }
  fclose(f);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG */

static int same_shape(const item_shape *a, const item_shape *b) {
  return a->type == b->type && a->c == b->c && a->h == b->h && a->w == b->w;
}

typedef struct {
  const uint8_t *data;
  size_t size, pos;
  char msg[256];
  const item_shape *want; /* NULL: read the header only */
  item_shape got;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_job *j = png_get_error_ptr(png);
  snprintf(j->msg, sizeof j->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t len) {
  png_job *j = png_get_io_ptr(png);
  if (len > j->size - j->pos) png_error(png, "truncated: the file ends early");
  memcpy(out, j->data + j->pos, len);
  j->pos += len;
}

/* Runs libpng over j->data: the header, and when j->want matches it, the pixels into rows.
 * Returns 0, or 1 after a libpng error (message in j->msg). All state lives in *j, nothing in
 * locals modified after setjmp. */
static int png_run(png_structp png, png_infop info, png_job *j, png_bytep *rows) {
  if (setjmp(png_jmpbuf(png))) return 1;
  png_set_read_fn(png, j, png_on_read);
  png_set_user_limits(png, 65536, 65536);
  png_read_info(png, info);
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  j->got = (item_shape){.type = EDM2_ITEM_U8, .c = png_get_channels(png, info),
                        .h = png_get_image_height(png, info), .w = png_get_image_width(png, info)};
  if (j->got.c != 1 && j->got.c != 3) png_error(png, "unexpected channel count after conversion");
  if (!j->want || !same_shape(&j->got, j->want)) return 0;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  return 0;
}

/* Decodes a PNG: its shape into *got, and when it equals `want` (not NULL) its pixels into hwc
 * through rows. */
static ec_status png_decode(const char *where, const uint8_t *data, size_t size, const item_shape *want,
                            png_bytep *rows, item_shape *got) {
  if (size < 8 || png_sig_cmp(data, 0, 8))
    return ec_err(EC_EFORMAT, "%s: not a PNG file (bad signature)", where);
  png_job j = {.data = data, .size = size, .want = want};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return ec_err(EC_ENOMEM, "%s: libpng could not allocate its state", where);
  }
  int bad = png_run(png, info, &j, rows);
  png_destroy_read_struct(&png, &info, NULL);
  if (bad) return ec_err(EC_EFORMAT, "%s: bad PNG: %s", where, j.msg);
  *got = j.got;
  return EC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* .npy */

/* The value text after 'key': in a .npy header dict, or NULL. */
static const char *npy_value(const char *hdr, const char *key) {
  size_t k = strlen(key);
  for (const char *p = hdr; (p = strstr(p, key)); p += k) {
    if (p == hdr || (p[-1] != '\'' && p[-1] != '"') || p[k] != p[-1]) continue;
    const char *v = p + k + 1;
    while (*v == ' ') v++;
    if (*v != ':') continue;
    v++;
    while (*v == ' ') v++;
    return v;
  }
  return NULL;
}

/* Parses a .npy header: the item shape (C = product of all but the last two dimensions) and
 * where the data starts. */
static ec_status npy_header(const char *where, const uint8_t *data, size_t size, item_shape *shape, size_t *offset) {
  if (size < 10 || memcmp(data, "\x93NUMPY", 6))
    return ec_err(EC_EFORMAT, "%s: not a .npy file (bad magic)", where);
  size_t hlen, start;
  if (data[6] == 1) {
    hlen = (size_t)data[8] | (size_t)data[9] << 8;
    start = 10;
  } else if (data[6] == 2 || data[6] == 3) {
    if (size < 12) return ec_err(EC_EFORMAT, "%s: truncated .npy header", where);
    hlen = (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24;
    start = 12;
  } else {
    return ec_err(EC_EFORMAT, "%s: unsupported .npy format version %d", where, data[6]);
  }
  if (hlen > size - start) return ec_err(EC_EFORMAT, "%s: truncated .npy header", where);
  char hdr[4096];
  if (hlen >= sizeof hdr) return ec_err(EC_EFORMAT, "%s: .npy header of %zu bytes is too long", where, hlen);
  memcpy(hdr, data + start, hlen);
  hdr[hlen] = '\0';
  *offset = start + hlen;

  const char *descr = npy_value(hdr, "descr"), *fortran = npy_value(hdr, "fortran_order"),
             *shp = npy_value(hdr, "shape");
  if (!descr || !fortran || !shp || (*descr != '\'' && *descr != '"'))
    return ec_err(EC_EFORMAT, "%s: malformed .npy header: %s", where, hdr);
  size_t dlen = strcspn(descr + 1, "'\"");
  size_t el;
  if (dlen == 3 && !strncmp(descr + 1, "<f4", 3)) {
    shape->type = EDM2_ITEM_F32;
    el = 4;
  } else if (dlen == 3 && (!strncmp(descr + 1, "|u1", 3) || !strncmp(descr + 1, "<u1", 3))) {
    shape->type = EDM2_ITEM_U8;
    el = 1;
  } else {
    return ec_err(EC_EFORMAT, "%s: unsupported .npy dtype '%.*s' (float32 '<f4' or uint8 '|u1')", where, (int)dlen,
                  descr + 1);
  }
  if (!strncmp(fortran, "True", 4))
    return ec_err(EC_EFORMAT, "%s: .npy array in Fortran order (save it C-contiguous)", where);
  if (strncmp(fortran, "False", 5)) return ec_err(EC_EFORMAT, "%s: malformed .npy header: %s", where, hdr);
  if (*shp != '(') return ec_err(EC_EFORMAT, "%s: malformed .npy header: %s", where, hdr);
  int64_t dims[32];
  int ndim = 0;
  const char *p = shp + 1;
  for (;;) {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno || v < 0 || ndim == 32) return ec_err(EC_EFORMAT, "%s: malformed .npy shape: %s", where, hdr);
    dims[ndim++] = v;
    p = end;
  }
  if (ndim < 2)
    return ec_err(EC_EFORMAT, "%s: .npy array has %d dimension(s); items need at least 2 (H, W)", where, ndim);
  int64_t c = 1;
  for (int k = 0; k < ndim - 2; k++) {
    if (dims[k] && c > ((int64_t)1 << 31) / dims[k]) return ec_err(EC_EFORMAT, "%s: .npy array too large", where);
    c *= dims[k];
  }
  shape->c = c;
  shape->h = dims[ndim - 2];
  shape->w = dims[ndim - 1];
  if (!shape->c || !shape->h || !shape->w) return ec_err(EC_EFORMAT, "%s: empty .npy array", where);
  if (shape->h > 65536 || shape->w > 65536 || (double)c * shape->h * shape->w * el > 1e12)
    return ec_err(EC_EFORMAT, "%s: .npy array too large", where);
  size_t need = (size_t)(c * shape->h * shape->w) * el, have = size - *offset;
  if (have < need)
    return ec_err(EC_EFORMAT, "%s: truncated: the .npy header announces %zu bytes of data, the file holds %zu", where,
                  need, have);
  if (have > need)
    return ec_err(EC_EFORMAT, "%s: %zu bytes after the .npy data its header announces", where, have - need);
  return EC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Items */

static const char *shape_str(const item_shape *s, char *buf, size_t size) {
  snprintf(buf, size, "%s [%lld, %lld, %lld]", s->type == EDM2_ITEM_F32 ? "float32" : "uint8", (long long)s->c,
           (long long)s->h, (long long)s->w);
  return buf;
}

static ec_status mismatch(folder_impl *fi, const char *where, const item_shape *got) {
  char a[96], b[96];
  return ec_err(EC_EFORMAT, "%s: item of shape %s differs from the first item's (%s): %s", where,
                shape_str(got, a, sizeof a), fi->items[0].name, shape_str(&fi->shape, b, sizeof b));
}

static ec_status folder_read(edm2_dataset *d, int64_t i, void *raw) {
  folder_impl *fi = d->impl;
  const folder_item *it = &fi->items[i];
  const char *where = item_where(fi, i);
  size_t size;
  ec_status st = load_file(fi, where, it->zindex, &size);
  if (st) return st;
  item_shape got;
  if (it->kind == KIND_PNG) {
    if ((st = png_decode(where, fi->buf, size, &fi->shape, fi->rows, &got))) return st;
    if (!same_shape(&got, &fi->shape)) return mismatch(fi, where, &got);
    /* HWC -> CHW */
    size_t c = (size_t)got.c, hw = (size_t)(got.h * got.w);
    uint8_t *dst = raw;
    if (c == 1) {
      memcpy(dst, fi->hwc, hw);
    } else {
      for (size_t p = 0; p < hw; p++)
        for (size_t k = 0; k < c; k++) dst[k * hw + p] = fi->hwc[p * c + k];
    }
    return EC_OK;
  }
  size_t off;
  if ((st = npy_header(where, fi->buf, size, &got, &off))) return st;
  if (!same_shape(&got, &fi->shape)) return mismatch(fi, where, &got);
  memcpy(raw, fi->buf + off, d->info.item_bytes);
  if (got.type == EDM2_ITEM_F32) {
    const float *v = raw;
    size_t count = d->info.item_bytes / sizeof *v;
    for (size_t k = 0; k < count; k++)
      if (!isfinite(v[k])) return ec_err(EC_EFORMAT, "%s: element %zu is %s", where, k, isnan(v[k]) ? "NaN" : "Inf");
  }
  return EC_OK;
}

/* Item 0's shape, and the PNG buffers that shape needs. */
static ec_status first_item(edm2_dataset *d, folder_impl *fi) {
  const folder_item *it = &fi->items[0];
  const char *where = item_where(fi, 0);
  size_t size, off;
  ec_status st = load_file(fi, where, it->zindex, &size);
  if (st) return st;
  item_shape *s = &fi->shape;
  if (it->kind == KIND_PNG) {
    if ((st = png_decode(where, fi->buf, size, NULL, NULL, s))) return st;
    size_t row = (size_t)(s->c * s->w);
    if (!(fi->hwc = ec_mallocarray(row, (size_t)s->h)) || !(fi->rows = ec_mallocarray((size_t)s->h, sizeof *fi->rows)))
      return EC_ENOMEM;
    for (int64_t r = 0; r < s->h; r++) fi->rows[r] = fi->hwc + (size_t)r * row;
  } else if ((st = npy_header(where, fi->buf, size, s, &off))) {
    return st;
  }
  if (s->c > 65536) return ec_err(EC_EFORMAT, "%s: %lld channels is too many", where, (long long)s->c);
  d->info.channels = (int)s->c;
  d->info.height = (int)s->h;
  d->info.width = (int)s->w;
  d->info.type = s->type;
  d->info.item_bytes = (size_t)(s->c * s->h * s->w) * (s->type == EDM2_ITEM_F32 ? 4 : 1);
  return EC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Labels (dataset.json) */

typedef struct {
  const char *name;
  const cJSON *label;
} json_label;

static int cmp_labels(const void *a, const void *b) {
  return strcmp(((const json_label *)a)->name, ((const json_label *)b)->name);
}

/* Sets d's labels from the "labels" list of dataset.json (`json`, `where` names it). */
static ec_status apply_labels(edm2_dataset *d, folder_impl *fi, const cJSON *json, const char *where) {
  if (!cJSON_IsObject(json)) return ec_err(EC_EFORMAT, "%s: not a JSON object", where);
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(json, "labels");
  if (!list) return ec_err(EC_EFORMAT, "%s: no \"labels\" key", where);
  if (cJSON_IsNull(list)) return EC_OK;
  if (!cJSON_IsArray(list)) return ec_err(EC_EFORMAT, "%s: \"labels\" is neither a list nor null", where);
  int count = cJSON_GetArraySize(list);
  json_label *map = ec_mallocarray(count ? (size_t)count : 1, sizeof *map);
  int32_t *classes = NULL;
  float *vectors = NULL;
  ec_status st = EC_OK;
  if (!map) return EC_ENOMEM;
  int k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, list) {
    const cJSON *name = cJSON_GetArrayItem(e, 0), *label = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(name) ||
        !(cJSON_IsNumber(label) || cJSON_IsArray(label))) {
      st = ec_err(EC_EFORMAT, "%s: \"labels\" entry %d is not [path, label] (label a number or a list of numbers)",
                  where, k);
      goto done;
    }
    map[k++] = (json_label){.name = name->valuestring, .label = label};
  }
  qsort(map, (size_t)count, sizeof *map, cmp_labels);
  for (int j = 1; j < count; j++)
    if (!strcmp(map[j - 1].name, map[j].name)) {
      st = ec_err(EC_EFORMAT, "%s: image '%s' is listed twice in \"labels\"", where, map[j].name);
      goto done;
    }
  int64_t n = d->info.n;
  int dim = -1; /* -1: class ids; else the vector length */
  for (int64_t i = 0; i < n; i++) {
    json_label key = {.name = fi->items[i].name};
    const json_label *hit = count ? bsearch(&key, map, (size_t)count, sizeof *map, cmp_labels) : NULL;
    if (!hit) {
      st = ec_err(EC_EFORMAT, "%s: no label for image '%s'", where, key.name);
      goto done;
    }
    const cJSON *l = hit->label;
    int is_vec = cJSON_IsArray(l);
    if (i == 0) {
      dim = is_vec ? cJSON_GetArraySize(l) : -1;
      if (dim == 0) {
        st = ec_err(EC_EFORMAT, "%s: the label of '%s' is an empty list", where, key.name);
        goto done;
      }
      if (dim < 0 ? !(classes = ec_mallocarray((size_t)n, sizeof *classes))
                  : !(vectors = ec_mallocarray((size_t)n, (size_t)dim * sizeof *vectors))) {
        st = EC_ENOMEM;
        goto done;
      }
    }
    if (is_vec != (dim >= 0) || (is_vec && cJSON_GetArraySize(l) != dim)) {
      st = ec_err(EC_EFORMAT, "%s: the label of '%s' is not like the first image's (%s)", where, key.name,
                  dim < 0 ? "a class number" : "a list of numbers of the same length");
      goto done;
    }
    if (!is_vec) {
      double v = l->valuedouble;
      if (!(v >= 0 && v < 2147483647.0) || v != floor(v)) {
        st = ec_err(EC_EFORMAT, "%s: the label of '%s' (%g) is not a class number (an integer >= 0)", where,
                    key.name, v);
        goto done;
      }
      classes[i] = (int32_t)v;
    } else {
      int j = 0;
      const cJSON *x;
      cJSON_ArrayForEach(x, l) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
          st = ec_err(EC_EFORMAT, "%s: the label of '%s' holds a value that is not a finite number", where, key.name);
          goto done;
        }
        vectors[(size_t)i * (size_t)dim + (size_t)j++] = (float)x->valuedouble;
      }
    }
  }
  if (classes) {
    st = edm2_dataset_set_classes(d, &classes);
  } else {
    d->vectors = vectors;
    vectors = NULL;
    d->info.label_dim = dim;
  }
done:
  ec_freep(&map);
  ec_freep(&classes);
  ec_freep(&vectors);
  return st;
}

static ec_status load_labels(edm2_dataset *d, folder_impl *fi) {
  char *where = NULL;
  size_t size = 0;
  ec_status st = EC_OK;
  if (fi->zip) {
    zip_int64_t idx = zip_name_locate(fi->zip, "dataset.json", 0);
    if (idx < 0) return EC_OK;
    if (!(where = ec_asprintf("%s:dataset.json", fi->root))) return EC_ENOMEM;
    st = load_file(fi, where, idx, &size);
  } else {
    if (!(where = ec_asprintf("%s/dataset.json", fi->root))) return EC_ENOMEM;
    struct stat sb;
    if (stat(where, &sb) != 0 && errno == ENOENT) {
      ec_freep(&where);
      return EC_OK;
    }
    st = load_file(fi, where, -1, &size);
  }
  if (!st) {
    cJSON *json = cJSON_ParseWithLength((const char *)fi->buf, size);
    if (!json) {
      const char *text = (const char *)fi->buf, *at = cJSON_GetErrorPtr();
      long off = at && at >= text && at <= text + size ? (long)(at - text) : -1;
      st = ec_err(EC_EFORMAT, "%s: invalid JSON (near byte %ld)", where, off);
    } else {
      st = apply_labels(d, fi, json, where);
      cJSON_Delete(json);
    }
  }
  ec_freep(&where);
  return st;
}

/* ------------------------------------------------------------------------------------------ */

static void folder_free(edm2_dataset *d) {
  folder_impl *fi = d->impl;
  if (!fi) return;
  if (fi->zip) zip_discard(fi->zip);
  ec_freep(&fi->root);
  ec_freep(&fi->pool);
  ec_freep(&fi->items);
  ec_freep(&fi->buf);
  ec_freep(&fi->hwc);
  ec_freep(&fi->rows);
  ec_freep(&d->impl);
}

ec_status edm2_dataset_open_folder(edm2_dataset *d, const char *path, int is_zip, const edm2_dataset_opts *opts) {
  folder_impl *fi = ec_calloc(1, sizeof *fi);
  if (!fi) return EC_ENOMEM;
  d->impl = fi;
  d->read = folder_read;
  d->free_impl = folder_free;
  if (!(fi->root = ec_strdup(path))) return EC_ENOMEM;
  size_t len = strlen(fi->root);
  while (len > 1 && fi->root[len - 1] == '/') fi->root[--len] = '\0';
  ec_status st = is_zip ? list_zip(fi) : list_folder(fi);
  if (st) return st;
  if (fi->n == 0)
    return ec_err(EC_EFORMAT, "%s: no images (.png or .npy files) in this %s", fi->root, is_zip ? "archive" : "folder");
  for (int64_t i = 0; i < fi->n; i++) fi->items[i].name = fi->pool + fi->items[i].name_off;
  qsort(fi->items, (size_t)fi->n, sizeof *fi->items, cmp_items);
  d->info.n = fi->n;
  if ((st = first_item(d, fi))) return st;
  if (opts->use_labels && (st = load_labels(d, fi))) return st;
  return EC_OK;
}
