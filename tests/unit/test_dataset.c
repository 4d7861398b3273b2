/* Training datasets (trainer/dataset.h): IDX files (plain and gzip), EDM-style image folders and
 * zip archives of PNGs and .npy latents, dataset.json labels, and every error path, on fixtures
 * written here (zlib, libpng, libzip); and the real Fashion-MNIST when Debian's
 * dataset-fashion-mnist is installed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <png.h>
#include <setjmp.h>
#include <zip.h>
#include <zlib.h>

#include "core/fs.h"
#include "test.h"
#include "trainer/dataset.h"

static const edm2_dataset_opts LABELS = {.use_labels = 1}, NO_LABELS = {.use_labels = 0};

/* ------------------------------------------------------------------------------------------ */
/* Fixture writers */

static int write_bytes(const char *path, const uint8_t *data, size_t size, int gz) {
  if (!gz) return test_write_file(path, data, size);
  gzFile f = gzopen(path, "wb");
  if (!f) return -1;
  int ok = size == 0 || gzwrite(f, data, (unsigned)size) == (int)size;
  return gzclose(f) == Z_OK && ok ? 0 : -1;
}

static void put_be32(uint8_t *b, uint32_t v) {
  b[0] = (uint8_t)(v >> 24);
  b[1] = (uint8_t)(v >> 16);
  b[2] = (uint8_t)(v >> 8);
  b[3] = (uint8_t)v;
}

static uint8_t idx_pixel(uint32_t k, uint32_t r, uint32_t c) { return (uint8_t)(1 + (k * 7 + r * 13 + c * 3) % 250); }

/* An IDX image file announcing n images of h × w and holding `keep` of its pixel bytes (all when
 * keep < 0). */
static int write_idx_images(const char *path, int gz, uint32_t magic, uint32_t n, uint32_t h, uint32_t w,
                            long keep) {
  size_t px = (size_t)n * h * w, size = 16 + (keep < 0 ? px : (size_t)keep);
  uint8_t *b = calloc(1, size > 16 + px ? size : 16 + px);
  if (!b) return -1;
  put_be32(b, magic);
  put_be32(b + 4, n);
  put_be32(b + 8, h);
  put_be32(b + 12, w);
  for (uint32_t k = 0; k < n; k++)
    for (uint32_t r = 0; r < h; r++)
      for (uint32_t c = 0; c < w; c++) b[16 + ((size_t)k * h + r) * w + c] = idx_pixel(k, r, c);
  int rc = write_bytes(path, b, size, gz);
  free(b);
  return rc;
}

static int write_idx_labels(const char *path, int gz, uint32_t n, const uint8_t *labels, size_t count) {
  uint8_t b[64];
  put_be32(b, 0x00000801u);
  put_be32(b + 4, n);
  memcpy(b + 8, labels, count);
  return write_bytes(path, b, 8 + count, gz);
}

/* A PNG of any color type and depth; `data` holds the rows as PNG stores them (16-bit samples
 * big-endian), `stride` bytes apart. */
static int write_png_ex(const char *path, int w, int h, int color, int depth, int interlace, const uint8_t *data,
                        size_t stride, const png_color *pal, int npal) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  png_bytep *rows = malloc((size_t)h * sizeof *rows);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!rows || !info) {
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
    return -1;
  }
  for (int r = 0; r < h; r++) rows[r] = (png_bytep)(data + (size_t)r * stride);
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (pal) png_set_PLTE(png, info, pal, npal);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  return fclose(f);
}

/* Pixel (channel k, row r, column c) of folder image `id`. */
static uint8_t img_pixel(int id, int k, int r, int c) {
  return (uint8_t)(id * 37 + k * 11 + r * 5 + c * 3 + (r * c) % 7);
}

/* An 8-bit gray (channels 1) or RGB (3) image `id` of h × w. */
static int write_png(const char *path, int id, int channels, int h, int w) {
  uint8_t *d = malloc((size_t)h * w * channels);
  if (!d) return -1;
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++)
      for (int k = 0; k < channels; k++) d[((size_t)r * w + c) * channels + k] = img_pixel(id, k, r, c);
  int rc = write_png_ex(path, w, h, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, 0, d,
                        (size_t)w * channels, NULL, 0);
  free(d);
  return rc;
}

static float npy_value(int id, size_t k) { return (float)id * 1000.0f + (float)k * 0.25f - 3.0f; }

/* A little-endian float32 .npy of the given shape (values npy_value(id, k)); `cut` bytes off
 * the end. */
static int write_npy(const char *path, int id, const char *shape, size_t count, size_t cut) {
  char hdr[128];
  int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
  int pad = 64 - (10 + len + 1) % 64;
  size_t hlen = (size_t)len + (size_t)pad + 1, size = 10 + hlen + count * 4;
  uint8_t *b = malloc(size);
  if (!b) return -1;
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hlen;
  b[9] = (uint8_t)(hlen >> 8);
  memcpy(b + 10, hdr, (size_t)len);
  memset(b + 10 + len, ' ', (size_t)pad);
  b[10 + hlen - 1] = '\n';
  for (size_t k = 0; k < count; k++) {
    float v = npy_value(id, k);
    memcpy(b + 10 + hlen + 4 * k, &v, 4);
  }
  int rc = test_write_file(path, b, size - cut);
  free(b);
  return rc;
}

static int write_text(const char *path, const char *text) { return test_write_file(path, text, strlen(text)); }

/* A zip of `names` (files under dir), with directory entries; odd entries stored uncompressed. */
static int write_zip(const char *zpath, const char *dir, const char *const *names, int count) {
  int err = 0;
  zip_t *z = zip_open(zpath, ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) return -1;
  int ok = zip_dir_add(z, "a", 0) >= 0 && zip_dir_add(z, "a/sub", 0) >= 0;
  for (int i = 0; i < count && ok; i++) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", dir, names[i]);
    zip_source_t *s = zip_source_file(z, full, 0, 0);
    zip_int64_t idx = s ? zip_file_add(z, names[i], s, ZIP_FL_OVERWRITE) : -1;
    if (idx < 0) {
      zip_source_free(s);
      ok = 0;
    } else if (i % 2) {
      ok = zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0) == 0;
    }
  }
  if (!ok) {
    zip_discard(z);
    return -1;
  }
  return zip_close(z);
}

static int mkdirs(const char *path) { return ec_mkdirs(path) == EC_OK ? 0 : -1; }

/* ------------------------------------------------------------------------------------------ */
/* IDX */

TEST(idx_pads_to_power_of_two_and_reads_labels) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_path("idx"));
  ASSERT_EQ_INT(mkdirs(dir), 0);
  const uint8_t labels[3] = {3, 0, 7};
  ASSERT_EQ_INT(write_idx_images(test_path("idx/train-images-idx3-ubyte.gz"), 1, 0x803, 3, 28, 28, -1), 0);
  ASSERT_EQ_INT(write_idx_labels(test_path("idx/train-labels-idx1-ubyte"), 0, 3, labels, 3), 0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, dir, &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->n, 3);
  ASSERT_EQ_INT(in->channels, 1);
  ASSERT_EQ_INT(in->height, 32);
  ASSERT_EQ_INT(in->width, 32);
  ASSERT_EQ_INT(in->type, EDM2_ITEM_U8);
  ASSERT_EQ_INT(in->item_bytes, 1024);
  ASSERT_EQ_INT(in->label_dim, 8);
  ASSERT_STR_EQ(in->kind, "idx");
  uint8_t img[1024];
  float label[8];
  for (int k = 0; k < 3; k++) {
    ASSERT_OK(edm2_dataset_read(d, k, img, label));
    /* Source pixel (0, 0) lands at (2, 2); 2 zero rows and columns on each side. */
    ASSERT_EQ_INT(img[2 * 32 + 2], idx_pixel((uint32_t)k, 0, 0));
    for (int r = 0; r < 32; r++)
      for (int c = 0; c < 32; c++) {
        int inside = r >= 2 && r < 30 && c >= 2 && c < 30;
        ASSERT_EQ_INT(img[r * 32 + c], inside ? idx_pixel((uint32_t)k, (uint32_t)r - 2, (uint32_t)c - 2) : 0);
      }
    for (int j = 0; j < 8; j++) ASSERT_NEAR(label[j], j == labels[k] ? 1.0 : 0.0, 0);
  }
  ASSERT_STATUS(edm2_dataset_read(d, 3, img, label), EC_EINVAL, "item 3 is out of range");
  ASSERT_STATUS(edm2_dataset_read(d, -1, img, label), EC_EINVAL, "out of range");
  edm2_dataset_close(&d);
  ASSERT_TRUE(d == NULL);
  edm2_dataset_close(&d);

  /* Without labels: label_dim 0, a NULL label pointer is fine. */
  ASSERT_OK(edm2_dataset_open(&d, dir, &NO_LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->label_dim, 0);
  ASSERT_OK(edm2_dataset_read(d, 0, img, NULL));
  edm2_dataset_close(&d);
  ASSERT_OK(edm2_dataset_open(&d, dir, NULL));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->label_dim, 0);
  edm2_dataset_close(&d);
}

TEST(idx_non_square_is_centred) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_path("idx53"));
  ASSERT_EQ_INT(mkdirs(dir), 0);
  ASSERT_EQ_INT(write_idx_images(test_path("idx53/train-images-idx3-ubyte"), 0, 0x803, 2, 5, 3, -1), 0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, dir, &NO_LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->height, 8);
  ASSERT_EQ_INT(in->width, 8);
  uint8_t img[64];
  ASSERT_OK(edm2_dataset_read(d, 1, img, NULL));
  /* Rows 1..5, columns 2..4. */
  for (int r = 0; r < 8; r++)
    for (int c = 0; c < 8; c++) {
      int inside = r >= 1 && r < 6 && c >= 2 && c < 5;
      ASSERT_EQ_INT(img[r * 8 + c], inside ? idx_pixel(1, (uint32_t)r - 1, (uint32_t)c - 2) : 0);
    }
  edm2_dataset_close(&d);
}

TEST(idx_errors_name_the_file) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_path("idxbad"));
  ASSERT_EQ_INT(mkdirs(dir), 0);
  char images[4096];
  snprintf(images, sizeof images, "%s", test_path("idxbad/train-images-idx3-ubyte.gz"));
  char labels[4096];
  snprintf(labels, sizeof labels, "%s", test_path("idxbad/train-labels-idx1-ubyte.gz"));
  const uint8_t lab[4] = {1, 2, 3, 0};
  edm2_dataset *d = NULL;

  /* Labels missing (only an error when they are used). */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x803, 3, 28, 28, -1), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_ENOENT, "train-labels-idx1-ubyte[.gz]: missing");
  ASSERT_TRUE(d == NULL);
  ASSERT_OK(edm2_dataset_open(&d, dir, &NO_LABELS));
  edm2_dataset_close(&d);

  /* Label count differs from the image count. */
  ASSERT_EQ_INT(write_idx_labels(labels, 1, 2, lab, 2), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "train-labels-idx1-ubyte.gz: 2 labels for the 3 images");
  /* Fewer labels than announced. */
  ASSERT_EQ_INT(write_idx_labels(labels, 1, 3, lab, 2), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "train-labels-idx1-ubyte.gz: truncated: the header announces 3 labels, the file holds 2");
  /* More bytes than announced. */
  ASSERT_EQ_INT(write_idx_labels(labels, 1, 3, lab, 4), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "train-labels-idx1-ubyte.gz: the file holds more bytes than its header announces (3 labels)");
  ASSERT_EQ_INT(write_idx_labels(labels, 0, 3, lab, 3), 0);
  ASSERT_OK(edm2_dataset_open(&d, dir, &LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->label_dim, 4);
  edm2_dataset_close(&d);

  /* Bad magic: a label file where the images should be. */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x801, 3, 28, 28, -1), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "train-images-idx3-ubyte.gz: bad magic number 0x00000801: not an IDX image file (expected 0x00000803)");
  /* Truncated pixels. */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x803, 3, 28, 28, 2 * 784 + 100), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "train-images-idx3-ubyte.gz: truncated: the header announces 3 images of 28×28 (2352 bytes of "
                "pixels), the file holds 1668 (2 complete images)");
  /* Truncated header. */
  ASSERT_EQ_INT(test_write_file(images, "\0\0\x08\x03\0\0", 6), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT,
                "truncated: the IDX header needs 16 bytes, the file holds 6");
  /* A gzip stream cut in the middle. */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x803, 3, 28, 28, -1), 0);
  size_t size = 0;
  char *gz = test_read_file(images, &size);
  ASSERT_TRUE(gz != NULL && size > 100);
  ASSERT_EQ_INT(test_write_file(images, gz, size / 2), 0);
  free(gz);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &LABELS), EC_EFORMAT, "train-images-idx3-ubyte.gz: truncated");
  ASSERT_CONTAINS(ec_errmsg(), "(the gzip stream is cut short)");
  /* A header announcing a billion images: truncated, not an allocation failure. */
  {
    uint8_t *b = calloc(1, 16 + 2 * 784);
    ASSERT_TRUE(b != NULL);
    put_be32(b, 0x803);
    put_be32(b + 4, 1000000000u);
    put_be32(b + 8, 28);
    put_be32(b + 12, 28);
    int rc = write_bytes(images, b, 16 + 2 * 784, 1);
    free(b);
    ASSERT_EQ_INT(rc, 0);
  }
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &NO_LABELS), EC_EFORMAT,
                "truncated: the header announces 1000000000 images of 28×28 (784000000000 bytes of pixels), the "
                "file holds 1568 (2 complete images)");
  /* Trailing bytes. */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x803, 2, 28, 28, 3 * 784), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &NO_LABELS), EC_EFORMAT, "holds more bytes than its header announces");
  /* No images. */
  ASSERT_EQ_INT(write_idx_images(images, 1, 0x803, 0, 28, 28, -1), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, dir, &NO_LABELS), EC_EFORMAT, "holds no images");
  ASSERT_TRUE(d == NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Folders and zips */

/* The folder fixture: four RGB images across subdirectories, in sorted order, a file that is
 * not an image, and dataset.json. */
static const char *const TREE[] = {"a/sub/y.PNG", "a/z.png", "a0.png", "b.png"};
static const int TREE_LABEL[] = {1, 0, 5, 2};

static int make_tree(const char *root) {
  char p[4096];
  snprintf(p, sizeof p, "%s/a/sub", root);
  if (mkdirs(p)) return -1;
  /* Written out of order. */
  for (int i = 3; i >= 0; i--) {
    snprintf(p, sizeof p, "%s/%s", root, TREE[i]);
    if (write_png(p, i, 3, 6, 5)) return -1;
  }
  snprintf(p, sizeof p, "%s/a/notes.txt", root);
  if (write_text(p, "not an image")) return -1;
  snprintf(p, sizeof p, "%s/dataset.json", root);
  return write_text(p, "{\"labels\": [[\"b.png\", 2], [\"a/z.png\", 0], [\"a0.png\", 5], [\"a/sub/y.PNG\", 1], "
                       "[\"gone.png\", 9]]}");
}

/* Checks that a dataset holds the TREE images and labels. */
static void check_tree(const char *path, const char *kind) {
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, path, &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_STR_EQ(in->kind, kind);
  ASSERT_EQ_INT(in->n, 4);
  ASSERT_EQ_INT(in->channels, 3);
  ASSERT_EQ_INT(in->height, 6);
  ASSERT_EQ_INT(in->width, 5);
  ASSERT_EQ_INT(in->type, EDM2_ITEM_U8);
  ASSERT_EQ_INT(in->item_bytes, 90);
  ASSERT_EQ_INT(in->label_dim, 6); /* max over the images (gone.png's 9 is not one) + 1 */
  uint8_t img[90];
  float label[6];
  for (int i = 0; i < 4; i++) {
    ASSERT_OK(edm2_dataset_read(d, i, img, label));
    for (int k = 0; k < 3; k++)
      for (int r = 0; r < 6; r++)
        for (int c = 0; c < 5; c++) ASSERT_EQ_INT(img[(k * 6 + r) * 5 + c], img_pixel(i, k, r, c));
    for (int j = 0; j < 6; j++) ASSERT_NEAR(label[j], j == TREE_LABEL[i] ? 1.0 : 0.0, 0);
  }
  edm2_dataset_close(&d);
}

TEST(folder_sorted_chw_one_hot) {
  char root[4096];
  snprintf(root, sizeof root, "%s", test_path("tree"));
  ASSERT_EQ_INT(make_tree(root), 0);
  check_tree(root, "folder");
  if (test_failed_) return;
  /* A trailing slash is the same folder. */
  char slash[4200];
  snprintf(slash, sizeof slash, "%s/", root);
  check_tree(slash, "folder");
  if (test_failed_) return;
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, root, &NO_LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->label_dim, 0);
  edm2_dataset_close(&d);
}

TEST(folder_symlinks) {
  /* A link to a file is an item; a link to a directory is not followed (os.walk); a dangling
   * link is not an item. */
  char root[4096], p[4200];
  snprintf(root, sizeof root, "%s", test_path("links"));
  snprintf(p, sizeof p, "%s/real", root);
  ASSERT_EQ_INT(mkdirs(p), 0);
  snprintf(p, sizeof p, "%s/real/a.png", root);
  ASSERT_EQ_INT(write_png(p, 0, 1, 4, 4), 0);
  ASSERT_EQ_INT(test_system("cd '%s' && ln -s real link && ln -s real/a.png b.png && ln -s nowhere.png c.png", root),
                0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->n, 2);
  uint8_t a[16], b[16];
  ASSERT_OK(edm2_dataset_read(d, 0, a, NULL)); /* b.png */
  ASSERT_OK(edm2_dataset_read(d, 1, b, NULL)); /* real/a.png */
  ASSERT_TRUE(!memcmp(a, b, sizeof a));
  edm2_dataset_close(&d);
}

TEST(zip_equals_folder) {
  char root[4096];
  snprintf(root, sizeof root, "%s", test_path("ztree"));
  ASSERT_EQ_INT(make_tree(root), 0);
  const char *const names[] = {"b.png", "a/z.png", "dataset.json", "a/sub/y.PNG", "a0.png", "a/notes.txt"};
  char zpath[4096];
  snprintf(zpath, sizeof zpath, "%s", test_path("ztree.zip"));
  ASSERT_EQ_INT(write_zip(zpath, root, names, 6), 0);
  check_tree(zpath, "zip");
  if (test_failed_) return;
  /* Byte for byte the folder's items. */
  edm2_dataset *f = NULL, *z = NULL;
  ASSERT_OK(edm2_dataset_open(&f, root, &LABELS));
  ASSERT_OK(edm2_dataset_open(&z, zpath, &LABELS));
  uint8_t a[90], b[90];
  float la[6], lb[6];
  for (int i = 0; i < 4; i++) {
    ASSERT_OK(edm2_dataset_read(f, i, a, la));
    ASSERT_OK(edm2_dataset_read(z, i, b, lb));
    ASSERT_TRUE(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la));
  }
  edm2_dataset_close(&f);
  edm2_dataset_close(&z);
}

TEST(npy_latents_and_vector_labels) {
  char root[4096];
  snprintf(root, sizeof root, "%s", test_path("npy"));
  ASSERT_EQ_INT(mkdirs(test_path("npy/00000")), 0);
  /* [8, 4, 4], and [2, 4, 4, 4] reshaped to [-1, 4, 4]. */
  ASSERT_EQ_INT(write_npy(test_path("npy/00000/img-mean-std-00000000.npy"), 0, "(8, 4, 4)", 128, 0), 0);
  ASSERT_EQ_INT(write_npy(test_path("npy/00000/img-mean-std-00000001.npy"), 1, "(2, 4, 4, 4)", 128, 0), 0);
  ASSERT_EQ_INT(write_npy(test_path("npy/00000/img-mean-std-00000002.NPY"), 2, "(8, 4, 4)", 128, 0), 0);
  ASSERT_EQ_INT(write_text(test_path("npy/dataset.json"),
                           "{\"labels\": [[\"00000/img-mean-std-00000002.NPY\", [0.5, -1, 2e3]],"
                           " [\"00000/img-mean-std-00000000.npy\", [0, 0, 1]],"
                           " [\"00000/img-mean-std-00000001.npy\", [0.25, 0.125, 0]]]}"),
                0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->n, 3);
  ASSERT_EQ_INT(in->type, EDM2_ITEM_F32);
  ASSERT_EQ_INT(in->channels, 8);
  ASSERT_EQ_INT(in->height, 4);
  ASSERT_EQ_INT(in->width, 4);
  ASSERT_EQ_INT(in->item_bytes, 128 * 4);
  ASSERT_EQ_INT(in->label_dim, 3);
  static const float want_label[3][3] = {{0, 0, 1}, {0.25f, 0.125f, 0}, {0.5f, -1, 2000}};
  float v[128], label[3];
  for (int i = 0; i < 3; i++) {
    ASSERT_OK(edm2_dataset_read(d, i, v, label));
    for (size_t k = 0; k < 128; k++) ASSERT_NEAR(v[k], npy_value(i, k), 0);
    for (int j = 0; j < 3; j++) ASSERT_NEAR(label[j], want_label[i][j], 0);
  }
  edm2_dataset_close(&d);

  /* {"labels": null}: unconditional. */
  ASSERT_EQ_INT(write_text(test_path("npy/dataset.json"), "{\"labels\": null}"), 0);
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->label_dim, 0);
  edm2_dataset_close(&d);

  /* A truncated .npy and one of another shape fail when read, naming the file. */
  ASSERT_EQ_INT(write_npy(test_path("npy/00000/img-mean-std-00000001.npy"), 1, "(8, 4, 4)", 128, 6), 0);
  ASSERT_EQ_INT(write_npy(test_path("npy/00000/img-mean-std-00000002.NPY"), 2, "(4, 4, 4)", 64, 0), 0);
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, v, NULL), EC_EFORMAT,
                "00000/img-mean-std-00000001.npy: truncated: the .npy header announces 512 bytes of data, the "
                "file holds 506");
  ASSERT_STATUS(edm2_dataset_read(d, 2, v, NULL), EC_EFORMAT,
                "00000/img-mean-std-00000002.NPY: item of shape float32 [4, 4, 4] differs from the first item's "
                "(00000/img-mean-std-00000000.npy): float32 [8, 4, 4]");
  ASSERT_OK(edm2_dataset_read(d, 0, v, NULL));
  edm2_dataset_close(&d);

  /* A NaN in a latent. */
  char p[4200];
  snprintf(p, sizeof p, "%s/00000/img-mean-std-00000001.npy", root);
  ASSERT_EQ_INT(write_npy(p, 1, "(8, 4, 4)", 128, 0), 0);
  size_t size = 0;
  char *bytes = test_read_file(p, &size);
  ASSERT_TRUE(bytes != NULL && size > 8);
  memcpy(bytes + size - 8, "\x00\x00\xc0\x7f", 4);
  ASSERT_EQ_INT(test_write_file(p, bytes, size), 0);
  free(bytes);
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, v, NULL), EC_EFORMAT, "img-mean-std-00000001.npy: element 126 is NaN");
  edm2_dataset_close(&d);
}

TEST(npy_uint8_images) {
  /* A '|u1' array [3, 2, 2]: uint8 items. */
  char root[4096], p[4200];
  snprintf(root, sizeof root, "%s", test_path("npyu8"));
  ASSERT_EQ_INT(mkdirs(root), 0);
  const char hdr[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2), }";
  uint8_t b[128];
  size_t hlen = 128 - 10 - 12;
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hlen;
  b[9] = 0;
  memset(b + 10, ' ', hlen);
  memcpy(b + 10, hdr, sizeof hdr - 1);
  b[10 + hlen - 1] = '\n';
  for (int k = 0; k < 12; k++) b[10 + hlen + (size_t)k] = (uint8_t)(k * 20);
  snprintf(p, sizeof p, "%s/x.npy", root);
  ASSERT_EQ_INT(test_write_file(p, b, sizeof b), 0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, root, &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->type, EDM2_ITEM_U8);
  ASSERT_EQ_INT(in->channels, 3);
  ASSERT_EQ_INT(in->item_bytes, 12);
  uint8_t out[12];
  ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
  for (int k = 0; k < 12; k++) ASSERT_EQ_INT(out[k], k * 20);
  edm2_dataset_close(&d);
}

TEST(png_conversions) {
  /* Each folder holds one image; the reader's output against what the conversion should give. */
  edm2_dataset *d = NULL;
  uint8_t out[3 * 4 * 4];
  {
    /* RGBA: alpha dropped. */
    uint8_t px[4 * 4 * 4];
    for (int p = 0; p < 16; p++)
      for (int k = 0; k < 4; k++) px[p * 4 + k] = (uint8_t)(p * 16 + k * 3);
    ASSERT_EQ_INT(mkdirs(test_path("rgba")), 0);
    ASSERT_EQ_INT(write_png_ex(test_path("rgba/x.png"), 4, 4, PNG_COLOR_TYPE_RGBA, 8, 0, px, 16, NULL, 0), 0);
    ASSERT_OK(edm2_dataset_open(&d, test_path("rgba"), &NO_LABELS));
    ASSERT_EQ_INT(edm2_dataset_get_info(d)->channels, 3);
    ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
    for (int k = 0; k < 3; k++)
      for (int p = 0; p < 16; p++) ASSERT_EQ_INT(out[k * 16 + p], px[p * 4 + k]);
    edm2_dataset_close(&d);
  }
  {
    /* 16-bit gray with alpha: the high byte, 1 channel. */
    uint8_t px[4 * 4 * 4];
    for (int p = 0; p < 16; p++) {
      px[p * 4 + 0] = (uint8_t)(200 - p);
      px[p * 4 + 1] = 0xff;
      px[p * 4 + 2] = 0x12;
      px[p * 4 + 3] = 0x34;
    }
    ASSERT_EQ_INT(mkdirs(test_path("ga16")), 0);
    ASSERT_EQ_INT(write_png_ex(test_path("ga16/x.png"), 4, 4, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, px, 16, NULL, 0), 0);
    ASSERT_OK(edm2_dataset_open(&d, test_path("ga16"), &NO_LABELS));
    ASSERT_EQ_INT(edm2_dataset_get_info(d)->channels, 1);
    ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
    for (int p = 0; p < 16; p++) ASSERT_EQ_INT(out[p], 200 - p);
    edm2_dataset_close(&d);
  }
  {
    /* Palette: expanded to RGB. */
    png_color pal[4] = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {255, 0, 128}};
    uint8_t px[16];
    for (int p = 0; p < 16; p++) px[p] = (uint8_t)(p % 4);
    ASSERT_EQ_INT(mkdirs(test_path("pal")), 0);
    ASSERT_EQ_INT(write_png_ex(test_path("pal/x.png"), 4, 4, PNG_COLOR_TYPE_PALETTE, 8, 0, px, 4, pal, 4), 0);
    ASSERT_OK(edm2_dataset_open(&d, test_path("pal"), &NO_LABELS));
    ASSERT_EQ_INT(edm2_dataset_get_info(d)->channels, 3);
    ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
    for (int p = 0; p < 16; p++) {
      ASSERT_EQ_INT(out[p], pal[p % 4].red);
      ASSERT_EQ_INT(out[16 + p], pal[p % 4].green);
      ASSERT_EQ_INT(out[32 + p], pal[p % 4].blue);
    }
    edm2_dataset_close(&d);
  }
  {
    /* Interlaced RGB (Adam7). */
    uint8_t px[4 * 4 * 3];
    for (int p = 0; p < 16; p++)
      for (int k = 0; k < 3; k++) px[p * 3 + k] = (uint8_t)(p * 7 + k * 50);
    ASSERT_EQ_INT(mkdirs(test_path("adam7")), 0);
    ASSERT_EQ_INT(write_png_ex(test_path("adam7/x.png"), 4, 4, PNG_COLOR_TYPE_RGB, 8, 1, px, 12, NULL, 0), 0);
    ASSERT_OK(edm2_dataset_open(&d, test_path("adam7"), &NO_LABELS));
    ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
    for (int k = 0; k < 3; k++)
      for (int p = 0; p < 16; p++) ASSERT_EQ_INT(out[k * 16 + p], px[p * 3 + k]);
    edm2_dataset_close(&d);
  }
  {
    /* 1-bit gray: 0 and 255. */
    uint8_t px[4] = {0xa0, 0x50, 0xf0, 0x00};
    ASSERT_EQ_INT(mkdirs(test_path("bit1")), 0);
    ASSERT_EQ_INT(write_png_ex(test_path("bit1/x.png"), 4, 4, PNG_COLOR_TYPE_GRAY, 1, 0, px, 1, NULL, 0), 0);
    ASSERT_OK(edm2_dataset_open(&d, test_path("bit1"), &NO_LABELS));
    ASSERT_EQ_INT(edm2_dataset_get_info(d)->channels, 1);
    ASSERT_OK(edm2_dataset_read(d, 0, out, NULL));
    for (int p = 0; p < 16; p++) ASSERT_EQ_INT(out[p], (px[p / 4] >> (7 - p % 4)) & 1 ? 255 : 0);
    edm2_dataset_close(&d);
  }
}

TEST(folder_errors_name_the_file) {
  edm2_dataset *d = NULL;
  uint8_t img[3 * 16 * 16];

  /* A truncated PNG opens (only its header is read at open) and fails when read. */
  ASSERT_EQ_INT(mkdirs(test_path("trunc")), 0);
  ASSERT_EQ_INT(write_png(test_path("trunc/a.png"), 0, 3, 16, 16), 0);
  ASSERT_EQ_INT(write_png(test_path("trunc/b.png"), 1, 3, 16, 16), 0);
  size_t size = 0;
  char *png = test_read_file(test_path("trunc/b.png"), &size);
  ASSERT_TRUE(png != NULL && size > 100);
  ASSERT_EQ_INT(test_write_file(test_path("trunc/b.png"), png, size / 2), 0);
  free(png);
  ASSERT_OK(edm2_dataset_open(&d, test_path("trunc"), &LABELS));
  ASSERT_OK(edm2_dataset_read(d, 0, img, NULL));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT, "trunc/b.png: bad PNG: truncated: the file ends early");
  ASSERT_OK(edm2_dataset_read(d, 0, img, NULL)); /* still usable after a libpng error */
  edm2_dataset_close(&d);
  /* Garbage where a PNG should be. */
  ASSERT_EQ_INT(write_text(test_path("trunc/b.png"), "definitely not a png"), 0);
  ASSERT_OK(edm2_dataset_open(&d, test_path("trunc"), &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT, "trunc/b.png: not a PNG file");
  edm2_dataset_close(&d);
  /* A corrupt byte inside the image data: the chunk CRC catches it. */
  png = test_read_file(test_path("trunc/a.png"), &size);
  ASSERT_TRUE(png != NULL);
  png[size - 30] ^= 0x55;
  ASSERT_EQ_INT(test_write_file(test_path("trunc/b.png"), png, size), 0);
  free(png);
  ASSERT_OK(edm2_dataset_open(&d, test_path("trunc"), &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT, "trunc/b.png: bad PNG: ");
  edm2_dataset_close(&d);

  /* A PNG of another shape than item 0. */
  ASSERT_EQ_INT(mkdirs(test_path("shape")), 0);
  ASSERT_EQ_INT(write_png(test_path("shape/a.png"), 0, 3, 8, 8), 0);
  ASSERT_EQ_INT(write_png(test_path("shape/b.png"), 1, 1, 8, 8), 0);
  ASSERT_EQ_INT(write_png(test_path("shape/c.png"), 2, 3, 8, 9), 0);
  ASSERT_OK(edm2_dataset_open(&d, test_path("shape"), &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT,
                "shape/b.png: item of shape uint8 [1, 8, 8] differs from the first item's (a.png): uint8 [3, 8, 8]");
  ASSERT_STATUS(edm2_dataset_read(d, 2, img, NULL), EC_EFORMAT, "shape/c.png: item of shape uint8 [3, 8, 9]");
  edm2_dataset_close(&d);
  /* A .npy among PNGs. */
  ASSERT_EQ_INT(write_npy(test_path("shape/b.npy"), 0, "(3, 8, 8)", 192, 0), 0);
  ASSERT_OK(edm2_dataset_open(&d, test_path("shape"), &LABELS));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT,
                "shape/b.npy: item of shape float32 [3, 8, 8] differs from the first item's (a.png): uint8 [3, 8, 8]");
  edm2_dataset_close(&d);

  /* Labels: an image missing from dataset.json, malformed entries, bad JSON. */
  ASSERT_EQ_INT(mkdirs(test_path("lab")), 0);
  ASSERT_EQ_INT(write_png(test_path("lab/a.png"), 0, 1, 4, 4), 0);
  ASSERT_EQ_INT(write_png(test_path("lab/b.png"), 1, 1, 4, 4), 0);
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0]]}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT,
                "lab/dataset.json: no label for image 'b.png'");
  ASSERT_TRUE(d == NULL);
  ASSERT_OK(edm2_dataset_open(&d, test_path("lab"), &NO_LABELS));
  edm2_dataset_close(&d);
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0], [\"b.png\", 1.5]]}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT,
                "the label of 'b.png' (1.5) is not a class number");
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0], [\"b.png\", [1]]]}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT,
                "the label of 'b.png' is not like the first image's");
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0], [\"a.png\", 1]]}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT, "image 'a.png' is listed twice");
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0], \"b.png\"]}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT,
                "lab/dataset.json: \"labels\" entry 1 is not [path, label]");
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"labels\": [[\"a.png\", 0]"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT, "lab/dataset.json: invalid JSON");
  ASSERT_EQ_INT(write_text(test_path("lab/dataset.json"), "{\"classes\": 3}"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab"), &LABELS), EC_EFORMAT, "lab/dataset.json: no \"labels\" key");

  /* Missing paths, empty folders, other image formats, files that are not zips. */
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("nowhere"), &LABELS), EC_ENOENT, "nowhere: No such file or directory");
  ASSERT_EQ_INT(mkdirs(test_path("empty/sub")), 0);
  ASSERT_EQ_INT(write_text(test_path("empty/sub/readme.txt"), "hi"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("empty"), &LABELS), EC_EFORMAT,
                "empty: no images (.png or .npy files) in this folder");
  ASSERT_EQ_INT(write_text(test_path("empty/sub/photo.JPG"), "jpeg"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("empty"), &LABELS), EC_EFORMAT,
                "empty/sub/photo.JPG: jpg images are not supported");
  ASSERT_EQ_INT(write_text(test_path("fake.zip"), "PK not really"), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("fake.zip"), &LABELS), EC_EFORMAT,
                "fake.zip: cannot open as a zip archive");
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("lab/a.png"), &LABELS), EC_EINVAL,
                "a.png: not a dataset: expected a directory (image folder or IDX files) or a .zip archive");
  ASSERT_TRUE(d == NULL);
}

TEST(zip_errors_name_the_entry) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_path("zsrc"));
  ASSERT_EQ_INT(mkdirs(dir), 0);
  ASSERT_EQ_INT(write_png(test_path("zsrc/a.png"), 0, 3, 16, 16), 0);
  ASSERT_EQ_INT(write_png(test_path("zsrc/b.png"), 1, 3, 16, 16), 0);
  size_t size = 0;
  char *png = test_read_file(test_path("zsrc/b.png"), &size);
  ASSERT_TRUE(png != NULL);
  ASSERT_EQ_INT(test_write_file(test_path("zsrc/b.png"), png, size / 2), 0);
  free(png);
  ASSERT_EQ_INT(write_text(test_path("zsrc/dataset.json"), "{\"labels\": [[\"b.png\", 1]]}"), 0);
  const char *const names[] = {"a.png", "b.png", "dataset.json"};
  char zpath[4096];
  snprintf(zpath, sizeof zpath, "%s", test_path("zbad.zip"));
  ASSERT_EQ_INT(write_zip(zpath, dir, names, 3), 0);
  edm2_dataset *d = NULL;
  ASSERT_STATUS(edm2_dataset_open(&d, zpath, &LABELS), EC_EFORMAT, "zbad.zip:dataset.json: no label for image 'a.png'");
  ASSERT_OK(edm2_dataset_open(&d, zpath, &NO_LABELS));
  uint8_t img[3 * 16 * 16];
  ASSERT_OK(edm2_dataset_read(d, 0, img, NULL));
  ASSERT_STATUS(edm2_dataset_read(d, 1, img, NULL), EC_EFORMAT, "zbad.zip:b.png: bad PNG: truncated");
  edm2_dataset_close(&d);
}

/* ------------------------------------------------------------------------------------------ */
/* The real Fashion-MNIST */

TEST(fashion_mnist) {
  FILE *probe = fopen("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb");
  if (!probe) TEST_SKIP("Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)");
  fclose(probe);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, "fashion-mnist", &LABELS));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double open_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("# fashion-mnist opened in %.3f s\n", open_s);
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->n, 60000);
  ASSERT_EQ_INT(in->channels, 1);
  ASSERT_EQ_INT(in->height, 32);
  ASSERT_EQ_INT(in->width, 32);
  ASSERT_EQ_INT(in->item_bytes, 1024);
  ASSERT_EQ_INT(in->label_dim, 10);
  ASSERT_STR_EQ(in->kind, "idx");
  ASSERT_STR_EQ(in->path, "/usr/share/datasets/fashion-mnist");
  uint8_t img[1024];
  float label[10];
  ASSERT_OK(edm2_dataset_read(d, 0, img, label));
  /* Item 0 is an ankle boot (class 9). */
  for (int j = 0; j < 10; j++) ASSERT_NEAR(label[j], j == 9 ? 1.0 : 0.0, 0);
  int nonzero = 0;
  for (int r = 0; r < 32; r++)
    for (int c = 0; c < 32; c++) {
      if (r < 2 || r >= 30 || c < 2 || c >= 30) ASSERT_EQ_INT(img[r * 32 + c], 0);
      else nonzero += img[r * 32 + c] != 0;
    }
  ASSERT_TRUE(nonzero > 100);
  /* 6000 images of each class. */
  long count[10] = {0};
  for (int64_t i = 0; i < in->n; i++) {
    ASSERT_OK(edm2_dataset_read(d, i, img, label));
    for (int j = 0; j < 10; j++) count[j] += label[j] == 1.0f;
  }
  for (int j = 0; j < 10; j++) ASSERT_EQ_INT(count[j], 6000);
  edm2_dataset_close(&d);
}

/* "DIR:test": the t10k-* files of an IDX directory, read and padded as the training files. */
TEST(idx_test_split) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", test_path("idxsplit"));
  ASSERT_EQ_INT(mkdirs(dir), 0);
  const uint8_t labels[4] = {1, 0, 5, 2};
  ASSERT_EQ_INT(write_idx_images(test_path("idxsplit/train-images-idx3-ubyte.gz"), 1, 0x803, 3, 28, 28, -1), 0);
  char spec[4200];
  snprintf(spec, sizeof spec, "%s:test", dir);
  edm2_dataset *d = NULL;
  /* No t10k files yet: the message names the split and the directory. */
  ASSERT_STATUS(edm2_dataset_open(&d, spec, &LABELS), EC_ENOENT, "holds no t10k-images-idx3-ubyte[.gz]");
  ASSERT_CONTAINS(ec_errmsg(), dir);
  ASSERT_EQ_INT(write_idx_images(test_path("idxsplit/t10k-images-idx3-ubyte"), 0, 0x803, 4, 28, 28, -1), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, spec, &LABELS), EC_ENOENT, "t10k-labels-idx1-ubyte[.gz]: missing");
  ASSERT_EQ_INT(write_idx_labels(test_path("idxsplit/t10k-labels-idx1-ubyte.gz"), 1, 4, labels, 4), 0);
  ASSERT_OK(edm2_dataset_open(&d, spec, &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->n, 4);
  ASSERT_EQ_INT(in->height, 32);
  ASSERT_EQ_INT(in->label_dim, 6);
  ASSERT_STR_EQ(in->kind, "idx");
  ASSERT_CONTAINS(in->path, "idxsplit:test");
  uint8_t img[1024];
  float label[6];
  ASSERT_OK(edm2_dataset_read(d, 3, img, label));
  ASSERT_EQ_INT(img[0], 0);
  ASSERT_EQ_INT(img[2 * 32 + 2], idx_pixel(3, 0, 0));
  ASSERT_NEAR(label[2], 1.0, 0);
  ASSERT_STATUS(edm2_dataset_read(d, 4, img, label), EC_EINVAL, "idxsplit:test: item 4 is out of range");
  edm2_dataset_close(&d);
  /* The training split of the same directory is unchanged. */
  ASSERT_OK(edm2_dataset_open(&d, dir, &NO_LABELS));
  ASSERT_EQ_INT(edm2_dataset_get_info(d)->n, 3);
  edm2_dataset_close(&d);
  /* Other folders have no test split; a missing one is named. */
  ASSERT_EQ_INT(mkdirs(test_path("plain")), 0);
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("plain:test"), &LABELS), EC_ENOENT,
                "plain:test: ");
  ASSERT_CONTAINS(ec_errmsg(), "holds no t10k-images-idx3-ubyte[.gz]: ':test' names the test split of IDX data");
  ASSERT_STATUS(edm2_dataset_open(&d, test_path("nothere:test"), &LABELS), EC_ENOENT, "nothere: No such file");
}

TEST(fashion_mnist_test_split) {
  FILE *probe = fopen("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb");
  if (!probe) TEST_SKIP("Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)");
  fclose(probe);
  edm2_dataset *d = NULL;
  ASSERT_OK(edm2_dataset_open(&d, "fashion-mnist:test", &LABELS));
  const edm2_dataset_info *in = edm2_dataset_get_info(d);
  ASSERT_EQ_INT(in->n, 10000);
  ASSERT_EQ_INT(in->channels, 1);
  ASSERT_EQ_INT(in->height, 32);
  ASSERT_EQ_INT(in->width, 32);
  ASSERT_EQ_INT(in->label_dim, 10);
  ASSERT_STR_EQ(in->path, "/usr/share/datasets/fashion-mnist:test");
  uint8_t img[1024];
  float label[10];
  ASSERT_OK(edm2_dataset_read(d, 0, img, label));
  /* Test item 0 is an ankle boot (class 9), like training item 0. */
  for (int j = 0; j < 10; j++) ASSERT_NEAR(label[j], j == 9 ? 1.0 : 0.0, 0);
  long count[10] = {0};
  for (int64_t i = 0; i < in->n; i++) {
    ASSERT_OK(edm2_dataset_read(d, i, img, label));
    for (int r = 0; r < 32; r++)
      for (int c = 0; c < 32; c++)
        if (r < 2 || r >= 30 || c < 2 || c >= 30) ASSERT_EQ_INT(img[r * 32 + c], 0);
    for (int j = 0; j < 10; j++) count[j] += label[j] == 1.0f;
  }
  for (int j = 0; j < 10; j++) ASSERT_EQ_INT(count[j], 1000);
  edm2_dataset_close(&d);
}

TEST_MAIN(idx_pads_to_power_of_two_and_reads_labels, idx_non_square_is_centred, idx_errors_name_the_file,
          folder_sorted_chw_one_hot, folder_symlinks, zip_equals_folder, npy_latents_and_vector_labels, npy_uint8_images, png_conversions,
          folder_errors_name_the_file, zip_errors_name_the_entry, fashion_mnist, idx_test_split, fashion_mnist_test_split)
