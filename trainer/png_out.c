/* uint8 conversion, PNG writing and grids (png_out.h). */
#include "trainer/png_out.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/atomic.h"

void edm2_to_u8(const float *chw, int C, int H, int W, uint8_t *hwc) {
  size_t HW = (size_t)H * W;
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < HW; i++) {
      /* Two float32 roundings, as PyTorch computes x * 127.5 + 128 (no fused multiply-add:
       * C11 mode contracts nothing). */
      float v = chw[(size_t)c * HW + i] * 127.5f;
      v = v + 128.0f;
      uint8_t u;
      if (!(v > 0)) u = 0; /* also NaN */
      else if (v >= 255) u = 255;
      else u = (uint8_t)v;  /* truncation */
      hwc[i * (size_t)C + (size_t)c] = u;
    }
}

void edm2_grid_shape(int n, int *cols, int *rows) {
  int c = 1;
  while ((int64_t)c * c < n) c++;
  *cols = c;
  *rows = n > 0 ? (n + c - 1) / c : 0;
}

void edm2_grid_place(uint8_t *grid, int cols, int W, int H, int C, int j, const uint8_t *hwc) {
  size_t row_bytes = (size_t)cols * W * C, cell = (size_t)W * C;
  uint8_t *dst = grid + (size_t)(j / cols) * H * row_bytes + (size_t)(j % cols) * cell;
  for (int y = 0; y < H; y++) memcpy(dst + (size_t)y * row_bytes, hwc + (size_t)y * cell, cell);
}

/* The encoded file in memory. */
typedef struct {
  uint8_t *data;
  size_t size, cap;
  int nomem;
  char msg[200];
} png_buf;

static void on_error(png_structp png, png_const_charp msg) {
  png_buf *b = png_get_error_ptr(png);
  snprintf(b->msg, sizeof b->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void on_write(png_structp png, png_bytep data, size_t len) {
  png_buf *b = png_get_io_ptr(png);
  if (len > b->cap - b->size) {
    size_t cap = b->cap ? b->cap : 4096;
    while (len > cap - b->size) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
      b->nomem = 1;
      png_error(png, "out of memory");
    }
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->size, data, len);
  b->size += len;
}

static void on_flush(png_structp png) { (void)png; }

/* Runs libpng; returns 1 after an error (message in b->msg). Nothing modified after setjmp lives
 * in locals. */
static int encode(png_structp png, png_infop info, png_buf *b, png_bytep *rows, int W, int H, int C) {
  if (setjmp(png_jmpbuf(png))) return 1;
  png_set_write_fn(png, b, on_write, on_flush);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  return 0;
}

ec_status edm2_png_write(const char *path, const uint8_t *hwc, int W, int H, int C, int flags) {
  if (C != 1 && C != 3) return ec_err(EC_EINVAL, "%s: PNG images have 1 or 3 channels, not %d", path, C);
  png_buf b = {0};
  png_bytep *rows = ec_mallocarray((size_t)H, sizeof *rows);
  if (!rows) return ec_err(EC_ENOMEM, "%s: out of memory", path);
  for (int y = 0; y < H; y++) rows[y] = (png_bytep)(hwc + (size_t)y * W * C);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &b, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  ec_status st = EC_OK;
  if (!info) {
    st = ec_err(EC_ENOMEM, "%s: libpng could not allocate its state", path);
  } else if (encode(png, info, &b, rows, W, H, C)) {
    st = b.nomem ? ec_err(EC_ENOMEM, "%s: out of memory encoding the PNG", path)
                 : ec_err(EC_EINVAL, "%s: libpng: %s", path, b.msg);
  }
  png_destroy_write_struct(&png, &info);
  ec_freep(&rows);
  if (st) {
    free(b.data);
    return st;
  }
  ec_atomic a = {.slot = -1};
  st = ec_atomic_begin(&a, path, flags);
  if (st == EC_EEXIST) st = ec_err(EC_EEXIST, "%s exists; give --force to replace it", path);
  if (!st) {
    FILE *f = fopen(a.tmp_path, "wb");
    int e = 0;
    if (!f) e = errno;
    else {
      if (fwrite(b.data, 1, b.size, f) != b.size) e = errno ? errno : EIO;
      if (fclose(f) && !e) e = errno ? errno : EIO;
    }
    if (e)
      st = ec_err((e == ENOSPC || e == EFBIG || e == EDQUOT) ? EC_ENOSPC : EC_EIO, "cannot write %s: %s", path,
                  strerror(e));
    else
      st = ec_atomic_commit(&a);
  }
  if (st) ec_atomic_abort(&a);
  free(b.data);
  return st;
}
