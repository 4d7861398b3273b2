/* snapfix: damages HDF5 files in controlled ways, for the bad-input tests of the snapshot store.
 * Test-only; never installed.
 *
 *   snapfix flip FILE DATASET            flip one bit in the middle of the dataset's first chunk
 *   snapfix set-str FILE OBJ ATTR VALUE  (re)write a string attribute of object OBJ ("/" = root)
 *   snapfix set-int FILE OBJ ATTR VALUE
 *   snapfix set-f64 FILE OBJ ATTR VALUE
 *   snapfix delete FILE PATH             unlink a group or dataset
 *   snapfix reshape FILE DATASET D1,D2.. replace a dataset by zeros of another shape (same type)
 *   snapfix poison FILE DATASET INDEX    write NaN at a flat index (float16 or float32 data)
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/h5io.h"

static int fail(const char *what) {
  fprintf(stderr, "snapfix: %s: %s\n", what, ec_errmsg()[0] ? ec_errmsg() : "failed");
  return 1;
}

static int flip(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return fail("open");
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0, zero[8] = {0};
  unsigned mask;
  if (H5Dget_chunk_info_by_coord(d, zero, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF) {
    /* contiguous layout */
    addr = H5Dget_offset(d);
    size = H5Dget_storage_size(d);
  }
  H5Dclose(d);
  H5Fclose(f);
  if (addr == HADDR_UNDEF || size == 0) return fail("locate data");
  int fd = open(path, O_RDWR);
  unsigned char b;
  off_t at = (off_t)(addr + size / 2);
  if (fd < 0 || pread(fd, &b, 1, at) != 1) return fail("read byte");
  b ^= 0x04;
  if (pwrite(fd, &b, 1, at) != 1) return fail("write byte");
  close(fd);
  return 0;
}

static int set_attr(const char *path, const char *obj, const char *attr, const char *kind,
                    const char *value) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t o = f < 0 ? -1 : H5Oopen(f, obj, H5P_DEFAULT);
  if (o < 0) return fail("open object");
  ec_status s;
  if (!strcmp(kind, "str"))
    s = h5io_attr_write_str(o, attr, value);
  else if (!strcmp(kind, "int"))
    s = h5io_attr_write_i64(o, attr, strtoll(value, NULL, 10));
  else
    s = h5io_attr_write_f64(o, attr, strtod(value, NULL));
  H5Oclose(o);
  H5Fclose(f);
  return s ? fail("write attribute") : 0;
}

static int delete(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0 || H5Ldelete(f, name, H5P_DEFAULT) < 0) return fail("delete");
  H5Fclose(f);
  return 0;
}

static int reshape(const char *path, const char *name, const char *dims) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
  if (d < 0) return fail("open");
  hid_t t = H5Dget_type(d);
  H5Dclose(d);
  H5Ldelete(f, name, H5P_DEFAULT);
  hsize_t dv[8];
  int nd = 0;
  for (const char *p = dims; *p && nd < 8; nd++) {
    char *end;
    dv[nd] = strtoull(p, &end, 10);
    p = *end ? end + 1 : end;
  }
  hid_t sp = H5Screate_simple(nd, dv, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, nd, dv); /* checksummed like the writer's, so only the shape differs */
  H5Pset_fletcher32(dcpl);
  d = H5Dcreate2(f, name, t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  if (d < 0) return fail("create");
  H5Dclose(d);
  H5Sclose(sp);
  H5Tclose(t);
  H5Fclose(f);
  return 0;
}

static int poison(const char *path, const char *name, long long index) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  h5io_dset d;
  if (f < 0 || h5io_dset_open(f, name, &d)) return fail("open");
  hid_t sp = H5Dget_space(d.id);
  hsize_t coord[8], rem = (hsize_t)index;
  for (int i = d.shape.ndim - 1; i >= 0; i--) {
    coord[i] = rem % (hsize_t)d.shape.dims[i];
    rem /= (hsize_t)d.shape.dims[i];
  }
  if (d.shape.ndim) H5Sselect_elements(sp, H5S_SELECT_SET, 1, coord);
  hsize_t one = 1;
  hid_t ms = H5Screate_simple(1, &one, NULL);
  float nan = NAN;
  herr_t r = H5Dwrite(d.id, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &nan);
  H5Sclose(ms);
  H5Sclose(sp);
  h5io_dset_close(&d);
  H5Fclose(f);
  return r < 0 ? fail("write") : 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "flip")) return flip(argv[2], argv[3]);
  if (argc >= 6 && !strncmp(argv[1], "set-", 4)) return set_attr(argv[2], argv[3], argv[4], argv[1] + 4, argv[5]);
  if (argc >= 4 && !strcmp(argv[1], "delete")) return delete(argv[2], argv[3]);
  if (argc >= 5 && !strcmp(argv[1], "reshape")) return reshape(argv[2], argv[3], argv[4]);
  if (argc >= 5 && !strcmp(argv[1], "poison")) return poison(argv[2], argv[3], atoll(argv[4]));
  fprintf(stderr, "usage: see the comment at the top of tests/tools/snapfix.c\n");
  return 2;
}
