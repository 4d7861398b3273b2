/* core/h5io: round trips of attributes and tensors, flat slices of N-d datasets, float16 layout,
 * listing order, and the error translation (missing, not HDF5, truncated, checksum). */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/h5io.h"
#include "core/half.h"
#include "tests/test.h"

/* Every id we opened must be closed again once the file is closed. */
static int open_ids(void) { return (int)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL); }

TEST(attributes_roundtrip) {
  hid_t f, g;
  const char *path = test_path("attrs.h5");
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_OK(h5io_group_create(f, "ema/0.050", &g));
  ASSERT_OK(h5io_attr_write_str(f, "format", "edm2c-snapshot"));
  ASSERT_OK(h5io_attr_write_i64(f, "nimg", 8388608));
  ASSERT_OK(h5io_attr_write_f64(g, "sigma_rel", 0.05));
  ASSERT_OK(h5io_attr_write_i64(f, "nimg", 4096)); /* replaces */
  h5io_close(&g);
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_EQ_INT(open_ids(), 0);

  ASSERT_OK(h5io_file_open(path, &f));
  char *s = NULL;
  int64_t n = 0;
  double x = 0;
  ASSERT_OK(h5io_attr_read_str(f, "format", &s));
  ASSERT_STR_EQ(s, "edm2c-snapshot");
  ec_freep(&s);
  ASSERT_OK(h5io_attr_read_i64(f, "nimg", &n));
  ASSERT_EQ_INT(n, 4096);
  ASSERT_OK(h5io_attr_read_f64(f, "nimg", &x)); /* integers read as numbers */
  ASSERT_NEAR(x, 4096, 0);
  ASSERT_OK(h5io_group_open(f, "ema/0.050", &g));
  ASSERT_OK(h5io_attr_read_f64(g, "sigma_rel", &x));
  ASSERT_NEAR(x, 0.05, 0);
  ASSERT_STATUS(h5io_attr_read_i64(g, "sigma_rel", &n), EC_EFORMAT, "'sigma_rel' must be a single integer");
  ASSERT_STATUS(h5io_attr_read_str(f, "nimg", &s), EC_EFORMAT, "attribute 'nimg' must be a single string");
  ASSERT_STATUS(h5io_attr_read_i64(f, "missing", &n), EC_ENOENT, "attrs.h5: attribute 'missing' missing");
  ASSERT_STATUS(h5io_attr_read_f64(g, "gamma", &x), EC_ENOENT, "attrs.h5:/ema/0.050: attribute 'gamma'");
  h5io_close(&g);
  ASSERT_STATUS(h5io_group_open(f, "ema/0.100", &g), EC_ENOENT, "attrs.h5:/ema/0.100: group missing");
  ASSERT_TRUE(h5io_exists(f, "ema/0.050") && !h5io_exists(f, "ema/0.100") && !h5io_exists(f, "x/y/z"));
  ASSERT_TRUE(h5io_is_group(f, "ema") && !h5io_is_dataset(f, "ema"));
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_EQ_INT(open_ids(), 0);
}

TEST(fixed_length_string_attribute) {
  const char *path = test_path("fixed.h5");
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
  H5Tset_size(t, 14);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, "edm2c-snapshot");
  h5io_close(&a);
  h5io_close(&sp);
  h5io_close(&t);
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_OK(h5io_file_open(path, &f));
  char *s = NULL;
  ASSERT_OK(h5io_attr_read_str(f, "format", &s));
  ASSERT_STR_EQ(s, "edm2c-snapshot");
  ec_freep(&s);
  ASSERT_OK(h5io_file_close(&f));
}

TEST(tensor_roundtrip_all_types) {
  const char *path = test_path("tensors.h5");
  hid_t f;
  float w[2 * 3 * 4];
  for (int i = 0; i < 24; i++) w[i] = (float)i * 0.37f - 3.1f;
  ec_shape s = ec_shape_make(3, (int64_t[]){2, 3, 4}), scalar = ec_shape_make(0, NULL);
  float gain = 0.75f;
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_OK(h5io_write_tensor(f, "p/f32", &s, EC_F32, EC_F32, w, H5IO_CHECKSUM));
  ASSERT_OK(h5io_write_tensor(f, "p/f16", &s, EC_F16, EC_F32, w, H5IO_CHECKSUM));
  ASSERT_OK(h5io_write_tensor(f, "p/f64", &s, EC_F64, EC_F32, w, 0));
  ASSERT_OK(h5io_write_tensor(f, "p/gain", &scalar, EC_F16, EC_F32, &gain, H5IO_CHECKSUM));
  uint16_t h[24];
  ec_float_to_half_array(h, w, 24);
  ASSERT_OK(h5io_write_tensor(f, "p/from_half", &s, EC_F32, EC_F16, h, H5IO_CHECKSUM));
  ASSERT_STATUS(h5io_write_tensor(f, "p/bf", &s, EC_BF16, EC_F32, w, 0), EC_EINVAL, "cannot store bfloat16");
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_EQ_INT(open_ids(), 0);

  ASSERT_OK(h5io_file_open(path, &f));
  float r[24];
  double rd[24];
  uint16_t rh[24];
  ASSERT_OK(h5io_read_tensor(f, "p/f32", EC_F32, r, 24));
  for (int i = 0; i < 24; i++) ASSERT_TRUE(r[i] == w[i]);
  ASSERT_OK(h5io_read_tensor(f, "p/f16", EC_F32, r, 24));
  for (int i = 0; i < 24; i++) ASSERT_TRUE(r[i] == ec_half_to_float(h[i]));
  ASSERT_OK(h5io_read_tensor(f, "p/f16", EC_F64, rd, 24));
  for (int i = 0; i < 24; i++) ASSERT_TRUE(rd[i] == (double)ec_half_to_float(h[i]));
  ASSERT_OK(h5io_read_tensor(f, "p/f16", EC_F16, rh, 24));
  ASSERT_TRUE(!memcmp(rh, h, sizeof h));
  ASSERT_OK(h5io_read_tensor(f, "p/f64", EC_F32, r, 24));
  for (int i = 0; i < 24; i++) ASSERT_TRUE(r[i] == w[i]);
  ASSERT_OK(h5io_read_tensor(f, "p/f32", EC_F16, rh, 24)); /* float32 file read as float16 */
  ASSERT_TRUE(!memcmp(rh, h, sizeof h));
  ASSERT_OK(h5io_read_tensor(f, "p/from_half", EC_F32, r, 24));
  for (int i = 0; i < 24; i++) ASSERT_TRUE(r[i] == ec_half_to_float(h[i]));
  ASSERT_OK(h5io_read_tensor(f, "p/gain", EC_F32, r, 1));
  ASSERT_TRUE(r[0] == 0.75f);
  ASSERT_STATUS(h5io_read_tensor(f, "p/f32", EC_F32, r, 23), EC_EFORMAT, "has 24 elements (shape [2, 3, 4]), expected 23");
  ASSERT_STATUS(h5io_read_tensor(f, "p/nope", EC_F32, r, 1), EC_ENOENT, "tensors.h5:/p/nope: dataset missing");

  h5io_dset d;
  ASSERT_OK(h5io_dset_open(f, "p/f16", &d));
  ASSERT_EQ_INT(d.dtype, EC_F16);
  ASSERT_TRUE(d.chunked && d.checksummed);
  ASSERT_EQ_INT(d.shape.ndim, 3);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_dset_open(f, "p/gain", &d));
  ASSERT_TRUE(!d.chunked && !d.checksummed && d.shape.ndim == 0 && d.numel == 1);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_dset_open(f, "p/f64", &d));
  ASSERT_TRUE(!d.chunked && d.dtype == EC_F64);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_EQ_INT(open_ids(), 0);
}

TEST(flat_slices_of_nd_datasets) {
  /* Every [lo, hi) range of a 3x4x5 tensor, in both storage types. */
  const char *path = test_path("slices.h5");
  hid_t f;
  float w[60], r[60];
  for (int i = 0; i < 60; i++) w[i] = (float)i;
  ec_shape s = ec_shape_make(3, (int64_t[]){3, 4, 5});
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_OK(h5io_write_tensor(f, "a", &s, EC_F32, EC_F32, w, H5IO_CHECKSUM));
  ASSERT_OK(h5io_write_tensor(f, "b", &s, EC_F16, EC_F32, w, 0));
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_OK(h5io_file_open(path, &f));
  const char *names[2] = {"a", "b"};
  for (int k = 0; k < 2; k++) {
    h5io_dset d;
    ASSERT_OK(h5io_dset_open(f, names[k], &d));
    for (int lo = 0; lo <= 60; lo++)
      for (int hi = lo; hi <= 60; hi++) {
        memset(r, 0xff, sizeof r);
        ASSERT_OK(h5io_dset_read(&d, EC_F32, r, lo, hi - lo));
        for (int i = 0; i < hi - lo; i++) ASSERT_TRUE(r[i] == (float)(lo + i));
      }
    h5io_dset_close(&d);
  }
  ASSERT_OK(h5io_file_close(&f));
}

TEST(chunk_shapes) {
  hsize_t c[EC_MAX_DIMS];
  ec_shape conv = ec_shape_make(4, (int64_t[]){512, 512, 3, 3});
  h5io_chunk_shape(&conv, 2, c); /* 512*3*3*2 bytes per row: 113 rows per MiB, so 5 chunks of 103 */
  ASSERT_EQ_INT(c[0], 103);
  ASSERT_EQ_INT(c[1], 512);
  ASSERT_EQ_INT(c[3], 3);
  ec_shape big = ec_shape_make(2, (int64_t[]){4, 1 << 20});
  h5io_chunk_shape(&big, 4, c); /* a row is 4 MiB: split it */
  ASSERT_EQ_INT(c[0], 1);
  ASSERT_EQ_INT(c[1], 1 << 18);
  ec_shape uneven = ec_shape_make(4, (int64_t[]){256, 256, 3, 3});
  h5io_chunk_shape(&uneven, 2, c); /* 227 rows fit: 2 chunks of 128, not 227 + 29 stored as 454 */
  ASSERT_EQ_INT(c[0], 128);
  ec_shape small = ec_shape_make(1, (int64_t[]){7});
  h5io_chunk_shape(&small, 4, c);
  ASSERT_EQ_INT(c[0], 7);
}

TEST(list_in_creation_order) {
  const char *path = test_path("order.h5");
  hid_t f;
  float v = 1;
  ec_shape s = ec_shape_make(1, (int64_t[]){1});
  const char *names[] = {"unet.out_gain", "unet.emb_noise.weight", "unet.enc.64x64_conv.weight", "logvar_linear.weight"};
  ASSERT_OK(h5io_file_create(path, &f));
  for (int i = 0; i < 4; i++) ASSERT_OK(h5io_write_tensor(f, names[i], &s, EC_F32, EC_F32, &v, 0));
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_OK(h5io_file_open(path, &f));
  char **got;
  int n;
  ASSERT_OK(h5io_list(f, &got, &n));
  ASSERT_EQ_INT(n, 4);
  for (int i = 0; i < 4; i++) ASSERT_STR_EQ(got[i], names[i]);
  h5io_free_names(&got, n);
  ASSERT_TRUE(got == NULL);
  ASSERT_OK(h5io_file_close(&f));
}

TEST(strings_dataset) {
  const char *path = test_path("strings.h5");
  hid_t f;
  const char *in[3] = {"snapshot-000000008192.h5", "", "ünïcode"};
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_OK(h5io_write_strings(f, "posthoc/sources", 3, in));
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_OK(h5io_file_open(path, &f));
  char **out;
  int n;
  ASSERT_OK(h5io_read_strings(f, "posthoc/sources", &out, &n));
  ASSERT_EQ_INT(n, 3);
  for (int i = 0; i < 3; i++) ASSERT_STR_EQ(out[i], in[i]);
  h5io_free_names(&out, n);
  ASSERT_STATUS(h5io_read_strings(f, "posthoc", &out, &n), EC_ENOENT, "dataset missing");
  ASSERT_OK(h5io_file_close(&f));
  ASSERT_EQ_INT(open_ids(), 0);
}

TEST(open_errors_are_told_apart) {
  hid_t f;
  ASSERT_STATUS(h5io_file_open(test_path("nope.h5"), &f), EC_ENOENT, "No such file or directory");
  ASSERT_STATUS(h5io_file_open(test_tmpdir(), &f), EC_EFORMAT, "is a directory, not a file");
  const char *txt = test_path("text.h5");
  test_write_file(txt, "hello, not hdf5\n", 16);
  ASSERT_STATUS(h5io_file_open(txt, &f), EC_EFORMAT, "text.h5 is not an HDF5 file (16 bytes");
  test_write_file(test_path("empty.h5"), "", 0);
  ASSERT_STATUS(h5io_file_open(test_path("empty.h5"), &f), EC_EFORMAT, "is not an HDF5 file (0 bytes");
  if (geteuid() != 0) {
    const char *locked = test_path("locked.h5");
    test_write_file(locked, "x", 1);
    chmod(locked, 0);
    ASSERT_STATUS(h5io_file_open(locked, &f), EC_EIO, "Permission denied");
  }
}

/* Writes a file with one sizable checksummed dataset and returns its size. */
static long make_big(const char *path) {
  hid_t f;
  enum { N = 500000 };
  float *w = malloc(N * sizeof *w);
  for (int i = 0; i < N; i++) w[i] = (float)i;
  ec_shape s = ec_shape_make(2, (int64_t[]){1000, 500}); /* two chunks */
  if (h5io_file_create(path, &f) || h5io_write_tensor(f, "x", &s, EC_F32, EC_F32, w, H5IO_CHECKSUM) ||
      h5io_file_close(&f))
    return -1;
  free(w);
  FILE *fp = fopen(path, "rb");
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fclose(fp);
  return size;
}

TEST(truncated_file) {
  const char *path = test_path("trunc.h5");
  long size = make_big(path);
  ASSERT_TRUE(size > 800000);
  ASSERT_EQ_INT(truncate(path, size / 2), 0);
  hid_t f;
  ASSERT_STATUS(h5io_file_open(path, &f), EC_EFORMAT, "the file is truncated");
}

TEST(flipped_byte_is_a_checksum_error) {
  const char *path = test_path("flip.h5");
  ASSERT_TRUE(make_big(path) > 0);
  hid_t f;
  ASSERT_OK(h5io_file_open(path, &f));
  h5io_dset d;
  ASSERT_OK(h5io_dset_open(f, "x", &d));
  haddr_t addr;
  hsize_t csize;
  unsigned mask;
  hsize_t off[2] = {0, 0};
  ASSERT_TRUE(H5Dget_chunk_info_by_coord(d.id, off, &mask, &addr, &csize) >= 0);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_file_close(&f));
  int fd = open(path, O_RDWR);
  unsigned char b;
  ASSERT_EQ_INT(pread(fd, &b, 1, (off_t)addr + 1000), 1);
  b ^= 0x10;
  ASSERT_EQ_INT(pwrite(fd, &b, 1, (off_t)addr + 1000), 1);
  close(fd);

  float *r = malloc(500000 * sizeof *r);
  ASSERT_OK(h5io_file_open(path, &f));
  ASSERT_OK(h5io_dset_open(f, "x", &d));
  ec_status st = h5io_dset_read(&d, EC_F32, r, 0, 1000);
  ASSERT_EQ_INT(st, EC_ECHECKSUM);
  ASSERT_CONTAINS(ec_errmsg(), "flip.h5:/x: cannot read data: checksum mismatch (Fletcher-32)");
  /* chunks other than the damaged one still read */
  ASSERT_OK(h5io_dset_read(&d, EC_F32, r, 499000, 1000));
  ASSERT_TRUE(r[999] == 499999.0f);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_file_close(&f));
  free(r);
  ASSERT_EQ_INT(open_ids(), 0);
}

TEST(half_type_matches_numpy_float16_layout) {
  hid_t t = h5io_type_f16();
  size_t spos, epos, esize, mpos, msize;
  H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
  ASSERT_EQ_INT(H5Tget_size(t), 2);
  ASSERT_EQ_INT(H5Tget_ebias(t), 15);
  ASSERT_EQ_INT(spos, 15);
  ASSERT_EQ_INT(epos, 10);
  ASSERT_EQ_INT(esize, 5);
  ASSERT_EQ_INT(msize, 10);
  ASSERT_EQ_INT(H5Tget_order(t), H5T_ORDER_LE);
}

TEST_MAIN(attributes_roundtrip, fixed_length_string_attribute, tensor_roundtrip_all_types,
          flat_slices_of_nd_datasets, chunk_shapes, list_in_creation_order, strings_dataset,
          open_errors_are_told_apart, truncated_file, flipped_byte_is_a_checksum_error,
          half_type_matches_numpy_float16_layout)
