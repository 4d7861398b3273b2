/* core/h5direct: Fletcher-32 against a plain reference and against the checksums HDF5 stored,
 * which layouts map and which do not, every flat range read bit for bit as h5io reads it,
 * skipped filters, corruption, truncation, read errors, and concurrent reads. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/h5direct.h"
#include "core/h5io.h"
#include "core/half.h"
#include "tests/test.h"

/* HDF5's Fletcher-32 the plain way: one word at a time, folding every 360 words. */
static uint32_t ref_fletcher32(const uint8_t *p, size_t len) {
  uint32_t s1 = 0, s2 = 0;
  for (size_t n = len / 2; n > 0;) {
    size_t t = n > 360 ? 360 : n;
    n -= t;
    for (; t > 0; t--, p += 2) {
      s1 += (uint32_t)p[0] << 8 | p[1];
      s2 += s1;
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
  }
  if (len % 2) {
    s1 += (uint32_t)p[0] << 8;
    s2 += s1;
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
  }
  s1 = (s1 & 0xffff) + (s1 >> 16);
  s2 = (s2 & 0xffff) + (s2 >> 16);
  return s2 << 16 | s1;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Values of varied magnitude and sign, with a few NaN, infinities and float16 subnormals. */
static void fill_values(float *x, int64_t n, uint64_t seed) {
  for (int64_t i = 0; i < n; i++) {
    uint64_t r = rng_next(&seed);
    float v = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    switch (r & 255) {
    case 0: v = NAN; break;
    case 1: v = INFINITY; break;
    case 2: v = -INFINITY; break;
    case 3: v = 3e-6f; break;
    default: v *= (float)(1 << (r >> 8 & 7)); break;
    }
    x[i] = v;
  }
}

/* ---- Fletcher-32 ----------------------------------------------------------------------------- */

#define FL(p, n) h5direct_fletcher32_kernel(kernel, (p), (n))

static void check_kernel(unsigned kernel) {
  enum { MAX = (1 << 20) + 64 };
  uint8_t *buf = malloc(MAX);
  ASSERT_TRUE(buf);
  uint64_t seed = 1;
  for (size_t i = 0; i < MAX; i++) buf[i] = (uint8_t)rng_next(&seed);
  int bad = 0;
  /* Every length up to 2100 at every alignment mod 4, then lengths around the block sizes. */
  for (size_t len = 0; len <= 2100 && !bad; len++)
    for (size_t at = 0; at < 4; at++)
      if (FL(buf + at, len) != ref_fletcher32(buf + at, len)) bad = 1 + (int)len;
  ASSERT_EQ_INT(bad, 0);
  const size_t lens[] = {8191,   8192,   8193,   16383,  16384,   16385,         32767,
                         32768,  32769,  65535,  65536,  65537,   131071,        131072,
                         524287, 524288, 524289, 999999, 1 << 20, (1 << 20) + 4, (1 << 20) + 5};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
    for (size_t at = 0; at < 3; at++)
      ASSERT_EQ_INT(FL(buf + at, lens[i]), ref_fletcher32(buf + at, lens[i]));
  /* Extremes: all 0xff (largest sums), all zero, and sums that are multiples of 65535. */
  memset(buf, 0xff, MAX);
  for (size_t len = 0; len < 300; len++) ASSERT_EQ_INT(FL(buf, len), ref_fletcher32(buf, len));
  ASSERT_EQ_INT(FL(buf, 1 << 20), ref_fletcher32(buf, 1 << 20));
  ASSERT_EQ_INT(FL(buf, (1 << 20) + 3), ref_fletcher32(buf, (1 << 20) + 3));
  ASSERT_EQ_INT(FL(buf, 2), 0xffffffffu);
  memset(buf, 0, MAX);
  ASSERT_EQ_INT(FL(buf, 1 << 20), 0);
  ASSERT_EQ_INT(ref_fletcher32(buf, 1 << 20), 0);
  buf[(1 << 20) - 1] = 1; /* one non-zero byte at the very end */
  ASSERT_EQ_INT(FL(buf, 1 << 20), ref_fletcher32(buf, 1 << 20));
  buf[(1 << 20) - 1] = 0;
  buf[0] = 0x00, buf[1] = 0x01, buf[2] = 0xff, buf[3] = 0xfe; /* 1 + 65534 = 65535 */
  ASSERT_EQ_INT(FL(buf, 4), ref_fletcher32(buf, 4));
  ASSERT_EQ_INT(FL(buf, 4096), ref_fletcher32(buf, 4096));
  for (int trial = 0; trial < 200; trial++) { /* sparse data: mostly zero words */
    memset(buf, 0, 70000);
    size_t len = 1 + rng_next(&seed) % 69999;
    for (int j = 0; j < 3; j++) buf[rng_next(&seed) % len] = (uint8_t)rng_next(&seed);
    ASSERT_EQ_INT(FL(buf, len), ref_fletcher32(buf, len));
  }
  free(buf);
}
#undef FL

TEST(fletcher_matches_reference) {
  unsigned have = h5direct_fletcher32_kernels();
  ASSERT_TRUE(have & H5DIRECT_FL_PORTABLE);
  for (unsigned k = 1; k <= H5DIRECT_FL_AVX512; k <<= 1) {
    if (!(have & k)) {
      printf("# kernel %u not available on this CPU\n", k);
      continue;
    }
    check_kernel(k);
    if (test_failed_) {
      printf("# kernel %u\n", k);
      return;
    }
  }
  uint8_t b[1001];
  for (int i = 0; i < 1001; i++) b[i] = (uint8_t)(i * 7 + 3);
  ASSERT_EQ_INT(h5direct_fletcher32(b, 1001), ref_fletcher32(b, 1001));
}

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct {
  hid_t f;
  h5io_dset d;
  h5direct_map m;
  int fd;
  void *scratch;
} mapped;

static ec_status map_open(const char *path, const char *name, mapped *x) {
  memset(x, 0, sizeof *x);
  x->f = x->d.id = H5I_INVALID_HID;
  x->fd = -1;
  ec_status s = h5io_file_open(path, &x->f);
  if (!s) s = h5io_dset_open(x->f, name, &x->d);
  if (!s) s = h5direct_map_dataset(&x->d, &x->m);
  if (!s && (x->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) s = ec_err(EC_EIO, "open %s", path);
  if (!s && !(x->scratch = ec_aligned_alloc(x->m.scratch_size))) s = EC_ENOMEM;
  return s;
}

static void map_close(mapped *x) {
  h5direct_unmap(&x->m);
  h5io_dset_close(&x->d);
  h5io_file_close(&x->f);
  if (x->fd >= 0) close(x->fd);
  x->fd = -1;
  ec_freep(&x->scratch);
}

static ec_status dread(const mapped *x, int64_t offset, int64_t count, float *out) {
  return h5direct_read(&x->m, x->fd, offset, count, out, x->scratch, x->m.scratch_size);
}

/* Creates and writes a dataset of file type `ftype` from float32 memory (HDF5 converts). */
static int make_dset(hid_t f, const char *name, hid_t ftype, int ndim, const hsize_t *dims,
                     hid_t dcpl, const float *data) {
  hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(f, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  int ok =
      d >= 0 && (!data || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  h5io_close(&d);
  h5io_close(&space);
  return ok;
}

static hid_t chunked_dcpl(int ndim, const hsize_t *chunk, int fletcher) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, ndim, chunk);
  if (fletcher) H5Pset_fletcher32(dcpl);
  return dcpl;
}

static int64_t extents_total(const h5direct_map *m) {
  int64_t t = 0;
  for (int64_t i = 0; i < m->nextents; i++) {
    if (m->extents[i].first != t) return -1;
    t += m->extents[i].count;
  }
  return t;
}

/* ---- tensors written by h5io ----------------------------------------------------------------- */

typedef struct {
  const char *name;
  int ndim;
  int64_t dims[4];
  ec_dtype dtype;
  int64_t nchunks;
} shape_case;

static const shape_case h5io_cases[] = {
    {"a/f32_1d", 1, {1000}, EC_F32, 1},
    {"a/f16_1d", 1, {1000}, EC_F16, 1},
    {"a/tiny3", 1, {3}, EC_F16, 1},
    {"a/tiny1", 1, {1}, EC_F32, 1},
    {"a/conv_one_chunk", 4, {256, 128, 3, 3}, EC_F16, 1},
    {"a/conv_partial", 4, {600, 512, 3, 3}, EC_F16, 6}, /* 113 rows a chunk, last one 35 */
    {"a/long_rows_f32", 2, {5, 300000}, EC_F32, 10},    /* chunks [1, 262144]: 2 per row */
    {"a/long_rows_f16", 2, {3, 700000}, EC_F16, 6},     /* chunks [1, 524288] */
    {"a/exact_mib", 3, {64, 64, 64}, EC_F32, 1},
    {"a/outer_ones", 4, {2, 3, 700, 200}, EC_F16, 2}, /* chunks [1, 3, 700, 200] */
};
enum { N_H5IO_CASES = sizeof h5io_cases / sizeof h5io_cases[0] };

static const char *h5io_file(void) {
  static char path[4096];
  if (path[0]) return path;
  snprintf(path, sizeof path, "%s", test_path("h5io_tensors.h5"));
  hid_t f;
  if (h5io_file_create(path, &f)) return NULL;
  for (int c = 0; c < N_H5IO_CASES; c++) {
    ec_shape s = ec_shape_make(h5io_cases[c].ndim, h5io_cases[c].dims);
    int64_t n = ec_shape_numel(&s);
    float *x = malloc((size_t)n * sizeof *x);
    fill_values(x, n, 100 + (uint64_t)c);
    ec_status st =
        h5io_write_tensor(f, h5io_cases[c].name, &s, h5io_cases[c].dtype, EC_F32, x, H5IO_CHECKSUM);
    free(x);
    if (st) return NULL;
  }
  float gain = 0.75f;
  ec_shape scalar = ec_shape_make(0, NULL);
  if (h5io_write_tensor(f, "a/scalar", &scalar, EC_F16, EC_F32, &gain, H5IO_CHECKSUM)) return NULL;
  ec_shape empty = ec_shape_make(2, (int64_t[]){0, 4});
  if (h5io_write_tensor(f, "a/empty", &empty, EC_F32, EC_F32, &gain, H5IO_CHECKSUM)) return NULL;
  if (h5io_file_close(&f)) return NULL;
  return path;
}

TEST(h5io_tensors_read_as_h5io_reads_them) {
  const char *path = h5io_file();
  ASSERT_TRUE(path);
  uint64_t seed = 7;
  for (int c = 0; c < N_H5IO_CASES; c++) {
    mapped x;
    ASSERT_OK(map_open(path, h5io_cases[c].name, &x));
    if (!x.m.mappable) printf("# %s: %s\n", h5io_cases[c].name, x.m.why);
    ASSERT_TRUE(x.m.mappable);
    ASSERT_STR_EQ(x.m.why, "");
    ASSERT_EQ_INT(x.m.dtype, h5io_cases[c].dtype);
    ASSERT_EQ_INT(x.m.nextents, h5io_cases[c].nchunks);
    ASSERT_EQ_INT(extents_total(&x.m), x.d.numel);
    for (int64_t i = 0; i < x.m.nextents; i++) ASSERT_TRUE(x.m.extents[i].checksum);
    ASSERT_CONTAINS(x.m.where, h5io_cases[c].name);
    int64_t n = x.d.numel;
    float *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got);
    ASSERT_TRUE(want && got);
    ASSERT_OK(h5io_dset_read(&x.d, EC_F32, want, 0, n));
    memset(got, 0xa5, (size_t)n * sizeof *got);
    ASSERT_OK(dread(&x, 0, n, got));
    ASSERT_TRUE(!memcmp(want, got, (size_t)n * sizeof *got));
    for (int t = 0; t < 40; t++) {
      int64_t lo = (int64_t)(rng_next(&seed) % (uint64_t)n);
      int64_t len = (int64_t)(rng_next(&seed) % (uint64_t)(n - lo + 1));
      if (t % 4 == 0) len = n - lo < 7 ? n - lo : 7;
      memset(got, 0xa5, (size_t)len * sizeof *got);
      ASSERT_OK(dread(&x, lo, len, got));
      ASSERT_TRUE(!memcmp(want + lo, got, (size_t)len * sizeof *got));
    }
    free(want);
    free(got);
    map_close(&x);
  }
  /* A scalar (contiguous, 0-d) maps as one element; an empty tensor maps with nothing to read. */
  mapped x;
  ASSERT_OK(map_open(path, "a/scalar", &x));
  ASSERT_TRUE(x.m.mappable);
  ASSERT_EQ_INT(x.m.nextents, 1);
  float v = 0;
  ASSERT_OK(dread(&x, 0, 1, &v));
  ASSERT_TRUE(v == 0.75f);
  map_close(&x);
  ASSERT_OK(map_open(path, "a/empty", &x));
  ASSERT_TRUE(x.m.mappable);
  ASSERT_EQ_INT(x.m.nextents, 0);
  ASSERT_OK(dread(&x, 0, 0, &v));
  map_close(&x);
}

/* Our Fletcher-32 is the checksum HDF5 stored after every chunk. */
TEST(fletcher_matches_hdf5_stored_chunks) {
  const char *path = h5io_file();
  ASSERT_TRUE(path);
  int checked = 0;
  for (int c = 0; c < N_H5IO_CASES; c++) {
    mapped x;
    ASSERT_OK(map_open(path, h5io_cases[c].name, &x));
    hsize_t nchunks = 0;
    hid_t space = H5Dget_space(x.d.id);
    ASSERT_TRUE(H5Dget_num_chunks(x.d.id, space, &nchunks) >= 0);
    ASSERT_EQ_INT(nchunks, x.m.nextents);
    for (hsize_t i = 0; i < nchunks; i++) {
      hsize_t off[EC_MAX_DIMS];
      unsigned mask;
      haddr_t addr;
      hsize_t size;
      ASSERT_TRUE(H5Dget_chunk_info(x.d.id, space, i, off, &mask, &addr, &size) >= 0);
      ASSERT_EQ_INT(size, x.m.extents[i].size);
      ASSERT_EQ_INT(addr, x.m.extents[i].addr);
      uint8_t *raw = malloc(size);
      uint32_t filters = 0;
      ASSERT_TRUE(H5Dread_chunk(x.d.id, H5P_DEFAULT, off, &filters, raw) >= 0);
      ASSERT_EQ_INT(filters, 0);
      uint32_t stored = (uint32_t)raw[size - 4] | (uint32_t)raw[size - 3] << 8 |
                        (uint32_t)raw[size - 2] << 16 | (uint32_t)raw[size - 1] << 24;
      ASSERT_EQ_INT(h5direct_fletcher32(raw, size - 4), stored);
      ASSERT_TRUE(h5direct_checksum_ok(raw, size));
      raw[size / 3] ^= 0x10;
      ASSERT_TRUE(!h5direct_checksum_ok(raw, size));
      free(raw);
      checked++;
    }
    h5io_close(&space);
    map_close(&x);
  }
  ASSERT_EQ_INT(checked, 30);
}

/* ---- every range of small datasets in every layout we map ------------------------------------ */

TEST(every_range_of_small_datasets) {
  const char *path = test_path("small.h5");
  hsize_t dims[3] = {7, 5, 3};
  enum { N = 7 * 5 * 3 };
  float x[N];
  fill_values(x, N, 3);
  x[0] = 1e30f, x[1] = -1e30f, x[2] = 1e-30f; /* out of float16 range */
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  struct {
    const char *name;
    hid_t type;
    hsize_t chunk[3]; /* {0} = contiguous */
    int fletcher;
    int64_t nextents;
  } cases[] = {
      {"f16_ck", H5T_IEEE_F32LE, {2, 5, 3}, 1, 4},
      {"f32_ck", H5T_IEEE_F32LE, {2, 5, 3}, 1, 4},
      {"f64_ck", H5T_IEEE_F64LE, {3, 5, 3}, 1, 3},
      {"f16_plain_chunks", H5T_IEEE_F32LE, {3, 5, 3}, 0, 3},
      {"f32_rows", H5T_IEEE_F32LE, {1, 2, 3}, 1, 21},
      {"f16_rows", H5T_IEEE_F32LE, {1, 2, 3}, 1, 21},
      {"f32_cells", H5T_IEEE_F32LE, {1, 1, 2}, 1, 70},
      {"f32_contig", H5T_IEEE_F32LE, {0}, 0, 1},
      {"f16_contig", H5T_IEEE_F32LE, {0}, 0, 1},
      {"f64_contig", H5T_IEEE_F64LE, {0}, 0, 1},
  };
  enum { NC = sizeof cases / sizeof cases[0] };
  for (int c = 0; c < NC; c++) {
    if (!strncmp(cases[c].name, "f16", 3)) cases[c].type = h5io_type_f16();
    hid_t dcpl =
        cases[c].chunk[0] ? chunked_dcpl(3, cases[c].chunk, cases[c].fletcher) : H5P_DEFAULT;
    ASSERT_TRUE(make_dset(f, cases[c].name, cases[c].type, 3, dims, dcpl, x));
    if (dcpl != H5P_DEFAULT) h5io_close(&dcpl);
  }
  ASSERT_OK(h5io_file_close(&f));
  for (int c = 0; c < NC; c++) {
    mapped m;
    ASSERT_OK(map_open(path, cases[c].name, &m));
    if (!m.m.mappable) printf("# %s: %s\n", cases[c].name, m.m.why);
    ASSERT_TRUE(m.m.mappable);
    ASSERT_EQ_INT(m.m.nextents, cases[c].nextents);
    ASSERT_EQ_INT(extents_total(&m.m), N);
    for (int64_t i = 0; i < m.m.nextents; i++)
      ASSERT_EQ_INT(m.m.extents[i].checksum, cases[c].fletcher);
    float want[N], got[N + 1];
    ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, N));
    int bad = -1;
    for (int lo = 0; lo <= N && bad < 0; lo++) {
      for (int hi = lo; hi <= N && bad < 0; hi++) {
        memset(got, 0xa5, sizeof got);
        ASSERT_OK(dread(&m, lo, hi - lo, got));
        if (memcmp(got, want + lo, (size_t)(hi - lo) * sizeof *got)) bad = lo * 1000 + hi;
        uint32_t guard;
        memcpy(&guard, &got[hi - lo], 4);
        if (guard != 0xa5a5a5a5u) bad = lo * 1000 + hi; /* nothing written past the end */
      }
    }
    if (bad >= 0) printf("# %s: range [%d, %d) differs\n", cases[c].name, bad / 1000, bad % 1000);
    ASSERT_EQ_INT(bad, -1);
    /* Raw reads: the file's own element type, bit for bit, nothing written past the end. */
    size_t es = ec_dtype_size(m.m.dtype);
    unsigned char wantr[N * 8], gotr[N * 8 + 8];
    ASSERT_OK(h5io_dset_read(&m.d, m.m.dtype, wantr, 0, N));
    for (int lo = 0; lo <= N && bad < 0; lo++)
      for (int hi = lo; hi <= N && bad < 0; hi++) {
        memset(gotr, 0xa5, sizeof gotr);
        ASSERT_OK(h5direct_read_raw(&m.m, m.fd, lo, hi - lo, gotr, m.scratch, m.m.scratch_size));
        if (memcmp(gotr, wantr + (size_t)lo * es, (size_t)(hi - lo) * es) || gotr[(size_t)(hi - lo) * es] != 0xa5)
          bad = lo * 1000 + hi;
      }
    if (bad >= 0) printf("# %s: raw range [%d, %d) differs\n", cases[c].name, bad / 1000, bad % 1000);
    ASSERT_EQ_INT(bad, -1);
    /* Aligned pieces end where extents end. */
    for (int64_t off = 0; off < N; off++) {
      int64_t k = h5direct_aligned_count(&m.m, off, 10);
      ASSERT_TRUE(k >= 1 && k <= 10);
      int ends = off + k >= N || k == 10;
      for (int64_t i = 0; i < m.m.nextents; i++)
        if (m.m.extents[i].first + m.m.extents[i].count == off + k) ends = 1;
      ASSERT_TRUE(ends);
    }
    map_close(&m);
  }
}

/* A contiguous float16 dataset larger than the scratch buffer converts piece by piece. */
TEST(large_contiguous_float16) {
  const char *path = test_path("contig.h5");
  enum { N = 100003 };
  float *x = malloc(N * sizeof *x), *want = malloc(N * sizeof *want),
        *got = malloc(N * sizeof *got);
  ASSERT_TRUE(x && want && got);
  fill_values(x, N, 11);
  hid_t f;
  hsize_t dims[1] = {N};
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_TRUE(make_dset(f, "big16", h5io_type_f16(), 1, dims, H5P_DEFAULT, x));
  ASSERT_TRUE(make_dset(f, "big64", H5T_IEEE_F64LE, 1, dims, H5P_DEFAULT, x));
  ASSERT_OK(h5io_file_close(&f));
  const char *names[] = {"big16", "big64"};
  for (int c = 0; c < 2; c++) {
    mapped m;
    ASSERT_OK(map_open(path, names[c], &m));
    ASSERT_TRUE(m.m.mappable);
    ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, N));
    ASSERT_OK(dread(&m, 0, N, got));
    ASSERT_TRUE(!memcmp(want, got, N * sizeof *got));
    ASSERT_OK(dread(&m, 12345, 70001, got));
    ASSERT_TRUE(!memcmp(want + 12345, got, 70001 * sizeof *got));
    map_close(&m);
  }
  free(x);
  free(want);
  free(got);
}

/* float64 rounds to float32 as HDF5 converts it, overflow and underflow included. */
TEST(float64_conversion_matches_hdf5) {
  const char *path = test_path("f64.h5");
  /* clang-format off */
  double v[] = {1e300, -1e300, 1e-300, -1e-300, 3.4028235677973366e38, 3.4028234663852886e38,
                3.4028235e38 * 1.0000001, 1.4e-45, 7e-46, 1.0 / 3.0, NAN, -NAN, INFINITY,
                -INFINITY, -0.0, 65504.0, 1.0000000596046448, 1.0000001788139343};
  /* clang-format on */
  enum { N = sizeof v / sizeof v[0] };
  hsize_t dims[1] = {N}, chunk[1] = {4};
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  hid_t space = H5Screate_simple(1, dims, NULL), dcpl = chunked_dcpl(1, chunk, 1);
  hid_t d = H5Dcreate2(f, "d", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  ASSERT_TRUE(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
  h5io_close(&d);
  h5io_close(&dcpl);
  h5io_close(&space);
  ASSERT_OK(h5io_file_close(&f));
  mapped m;
  ASSERT_OK(map_open(path, "d", &m));
  ASSERT_TRUE(m.m.mappable);
  float want[N], got[N];
  ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, N));
  ASSERT_OK(dread(&m, 0, N, got));
  for (int i = 0; i < N; i++) {
    uint32_t a, b;
    memcpy(&a, &want[i], 4);
    memcpy(&b, &got[i], 4);
    if (a != b)
      printf("# %.17g: HDF5 %08x (%g), h5direct %08x (%g)\n", v[i], a, want[i], b, got[i]);
  }
  ASSERT_TRUE(!memcmp(want, got, sizeof got));
  map_close(&m);
}

/* ---- what does not map ----------------------------------------------------------------------- */

TEST(unsupported_layouts_are_not_mappable) {
  const char *path = test_path("unmappable.h5");
  float x[4 * 4 * 3 * 3];
  fill_values(x, 144, 5);
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  hsize_t d4[4] = {4, 4, 3, 3}, c4[4] = {2, 2, 3, 3}, d1[1] = {10}, c1[1] = {4};
  hid_t dcpl = chunked_dcpl(4, c4, 1); /* h5py chunks=True style */
  ASSERT_TRUE(make_dset(f, "h5py_chunks", H5T_IEEE_F32LE, 4, d4, dcpl, x));
  h5io_close(&dcpl);
  int have_deflate = H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0;
  if (have_deflate) {
    dcpl = chunked_dcpl(1, c1, 1);
    H5Pset_deflate(dcpl, 4);
    ASSERT_TRUE(make_dset(f, "deflate", H5T_IEEE_F32LE, 1, d1, dcpl, x));
    h5io_close(&dcpl);
  }
  dcpl = chunked_dcpl(1, c1, 0);
  H5Pset_shuffle(dcpl);
  H5Pset_fletcher32(dcpl);
  ASSERT_TRUE(make_dset(f, "shuffle", H5T_IEEE_F32LE, 1, d1, dcpl, x));
  h5io_close(&dcpl);
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_layout(dcpl, H5D_COMPACT);
  ASSERT_TRUE(make_dset(f, "compact_scalar", H5T_IEEE_F32LE, 0, NULL, dcpl, x));
  ASSERT_TRUE(make_dset(f, "compact_1d", H5T_IEEE_F32LE, 1, d1, dcpl, x));
  h5io_close(&dcpl);
  ASSERT_TRUE(make_dset(f, "big_endian", H5T_IEEE_F32BE, 1, d1, H5P_DEFAULT, x));
  int32_t ints[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  ec_shape s10 = ec_shape_make(1, (int64_t[]){10});
  ASSERT_OK(h5io_write_tensor(f, "ints", &s10, EC_I32, EC_I32, ints, H5IO_CHECKSUM));
  ASSERT_TRUE(make_dset(f, "never_written", H5T_IEEE_F32LE, 1, d1, H5P_DEFAULT, NULL));
  /* A chunked dataset of which only the first chunk was written. */
  dcpl = chunked_dcpl(1, c1, 1);
  hid_t space = H5Screate_simple(1, d1, NULL);
  hid_t d = H5Dcreate2(f, "partly_written", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  hsize_t start = 0, count = 4;
  hid_t mspace = H5Screate_simple(1, &count, NULL);
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
  ASSERT_TRUE(H5Dwrite(d, H5T_NATIVE_FLOAT, mspace, space, H5P_DEFAULT, x) >= 0);
  h5io_close(&mspace);
  h5io_close(&d);
  h5io_close(&space);
  h5io_close(&dcpl);
  ASSERT_OK(h5io_file_close(&f));

  struct {
    const char *name, *why;
  } cases[] = {
      {"h5py_chunks", "chunks of [2, 2, 3, 3] are not flat ranges of [4, 4, 3, 3]"},
      {"deflate", "(deflate) is not Fletcher-32"},
      {"shuffle", "(shuffle) is not Fletcher-32"},
      {"compact_scalar", "compact layout"},
      {"compact_1d", "compact layout"},
      {"big_endian", "element type"},
      {"ints", "element type"},
      {"never_written", "never written"},
      {"partly_written", "the chunk at [4] was never written"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (!have_deflate && !strcmp(cases[c].name, "deflate")) continue;
    hid_t g;
    h5io_dset ds;
    h5direct_map m;
    ASSERT_OK(h5io_file_open(path, &g));
    ASSERT_OK(h5io_dset_open(g, cases[c].name, &ds));
    ASSERT_OK(h5direct_map_dataset(&ds, &m));
    if (m.mappable || !strstr(m.why, cases[c].why))
      printf("# %s: mappable %d, why \"%s\"\n", cases[c].name, m.mappable, m.why);
    ASSERT_TRUE(!m.mappable);
    ASSERT_CONTAINS(m.why, cases[c].why);
    ASSERT_TRUE(m.extents == NULL && m.nextents == 0);
    /* h5io still reads them (where there is data of a float type). */
    float got[144];
    if (strcmp(cases[c].name, "ints") && strcmp(cases[c].name, "never_written") &&
        strcmp(cases[c].name, "partly_written")) {
      ASSERT_OK(h5io_dset_read(&ds, EC_F32, got, 0, ds.numel));
      ASSERT_TRUE(got[0] == x[0]);
    }
    h5direct_unmap(&m);
    h5io_dset_close(&ds);
    ASSERT_OK(h5io_file_close(&g));
  }
}

/* HDF5 1.10 reports chunk addresses without the user block: chunked datasets in such files do not
 * map; contiguous ones do (H5Dget_offset counts the user block). */
TEST(user_block) {
  const char *path = test_path("userblock.h5");
  float x[10];
  fill_values(x, 10, 9);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_userblock(fcpl, 512);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  h5io_close(&fcpl);
  ASSERT_TRUE(f >= 0);
  hsize_t d1[1] = {10}, c1[1] = {4};
  hid_t dcpl = chunked_dcpl(1, c1, 1);
  ASSERT_TRUE(make_dset(f, "chunked", H5T_IEEE_F32LE, 1, d1, dcpl, x));
  h5io_close(&dcpl);
  ASSERT_TRUE(make_dset(f, "contiguous", H5T_IEEE_F32LE, 1, d1, H5P_DEFAULT, x));
  ASSERT_OK(h5io_file_close(&f));
  mapped m;
  ASSERT_OK(map_open(path, "chunked", &m));
  ASSERT_TRUE(!m.m.mappable);
  ASSERT_CONTAINS(m.m.why, "user block");
  map_close(&m);
  ASSERT_OK(map_open(path, "contiguous", &m));
  ASSERT_TRUE(m.m.mappable);
  ASSERT_EQ_INT(m.m.userblock, 512);
  ASSERT_TRUE(m.m.extents[0].addr >= 512);
  float got[10];
  ASSERT_OK(dread(&m, 0, 10, got));
  ASSERT_TRUE(!memcmp(got, x, sizeof x));
  map_close(&m);
}

/* A file opened through another driver (here the in-memory one) does not map. */
TEST(other_file_driver) {
  const char *path = h5io_file();
  ASSERT_TRUE(path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 1 << 20, 0);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  h5io_close(&fapl);
  ASSERT_TRUE(f >= 0);
  h5io_dset d;
  h5direct_map m;
  ASSERT_OK(h5io_dset_open(f, "a/f32_1d", &d));
  ASSERT_OK(h5direct_map_dataset(&d, &m));
  ASSERT_TRUE(!m.mappable);
  ASSERT_CONTAINS(m.why, "driver");
  h5direct_unmap(&m);
  h5io_dset_close(&d);
  ASSERT_OK(h5io_file_close(&f));
}

/* ---- chunks stored without their checksum ---------------------------------------------------- */

TEST(skipped_fletcher_and_unfiltered_edge_chunks) {
  const char *path = test_path("skipped.h5");
  float x[10];
  fill_values(x, 10, 13);
  hsize_t d1[1] = {10}, c1[1] = {4};
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  /* Every chunk written raw with filter mask 1: "Fletcher-32 skipped", no checksum bytes. */
  hid_t dcpl = chunked_dcpl(1, c1, 1);
  ASSERT_TRUE(make_dset(f, "skipped", H5T_IEEE_F32LE, 1, d1, dcpl, NULL));
  hid_t d = H5Dopen2(f, "skipped", H5P_DEFAULT);
  for (hsize_t c = 0; c < 3; c++) {
    float chunk[4] = {0, 0, 0, 0};
    memcpy(chunk, x + 4 * c, (c < 2 ? 4 : 2) * sizeof(float));
    hsize_t off = 4 * c;
    ASSERT_TRUE(H5Dwrite_chunk(d, H5P_DEFAULT, 1, &off, sizeof chunk, chunk) >= 0);
  }
  h5io_close(&d);
  /* Partial edge chunks left unfiltered. */
  H5Pset_chunk_opts(dcpl, H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS);
  ASSERT_TRUE(make_dset(f, "unfiltered_edges", H5T_IEEE_F32LE, 1, d1, dcpl, x));
  h5io_close(&dcpl);
  ASSERT_OK(h5io_file_close(&f));

  mapped m;
  ASSERT_OK(map_open(path, "skipped", &m));
  if (!m.m.mappable) printf("# skipped: %s\n", m.m.why);
  ASSERT_TRUE(m.m.mappable);
  ASSERT_EQ_INT(m.m.nextents, 3);
  for (int i = 0; i < 3; i++) ASSERT_TRUE(!m.m.extents[i].checksum && m.m.extents[i].size == 16);
  float want[10], got[10];
  ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, 10));
  ASSERT_TRUE(!memcmp(want, x, sizeof x));
  ASSERT_OK(dread(&m, 0, 10, got));
  ASSERT_TRUE(!memcmp(got, x, sizeof x));
  map_close(&m);

  ASSERT_OK(map_open(path, "unfiltered_edges", &m));
  if (!m.m.mappable) printf("# unfiltered_edges: %s\n", m.m.why);
  ASSERT_TRUE(m.m.mappable);
  ASSERT_EQ_INT(m.m.nextents, 3);
  ASSERT_TRUE(m.m.extents[0].checksum && m.m.extents[0].size == 20);
  ASSERT_TRUE(!m.m.extents[2].checksum && m.m.extents[2].size == 16);
  ASSERT_OK(dread(&m, 0, 10, got));
  ASSERT_TRUE(!memcmp(got, x, sizeof x));
  ASSERT_OK(dread(&m, 9, 1, got));
  ASSERT_TRUE(got[0] == x[9]);
  map_close(&m);
}

/* ---- damaged files --------------------------------------------------------------------------- */

static int write_at(const char *path, const void *buf, size_t n, uint64_t at) {
  int fd = open(path, O_RDWR);
  int ok = fd >= 0 && pwrite(fd, buf, n, (off_t)at) == (ssize_t)n;
  if (fd >= 0) close(fd);
  return ok;
}

TEST(corrupted_chunk_is_a_checksum_error_others_still_read) {
  const char *path = test_path("corrupt.h5");
  ec_shape s = ec_shape_make(4, (int64_t[]){600, 512, 3, 3});
  int64_t n = ec_shape_numel(&s);
  float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *want),
        *got = malloc((size_t)n * sizeof *got);
  ASSERT_TRUE(x && want && got);
  fill_values(x, n, 17);
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  ASSERT_OK(h5io_write_tensor(f, "w", &s, EC_F16, EC_F32, x, H5IO_CHECKSUM));
  ASSERT_OK(h5io_file_close(&f));
  mapped m;
  ASSERT_OK(map_open(path, "w", &m));
  ASSERT_EQ_INT(m.m.nextents, 6);
  ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, n));
  map_close(&m);

  /* One flipped bit in chunk 2 (a byte past the middle, like tests/tools/snapfix). */
  ASSERT_OK(map_open(path, "w", &m));
  h5direct_extent e2 = m.m.extents[2], e3 = m.m.extents[3];
  map_close(&m);
  uint8_t b;
  int fd = open(path, O_RDONLY);
  ASSERT_EQ_INT(pread(fd, &b, 1, (off_t)(e2.addr + e2.size / 2)), 1);
  close(fd);
  b ^= 0x04;
  ASSERT_TRUE(write_at(path, &b, 1, e2.addr + e2.size / 2));
  /* Chunk 3's checksum rewritten in the pre-1.6.3 byte order: still accepted, as HDF5 does. */
  uint8_t ck[4];
  fd = open(path, O_RDONLY);
  ASSERT_EQ_INT(pread(fd, ck, 4, (off_t)(e3.addr + e3.size - 4)), 4);
  close(fd);
  uint8_t swapped[4] = {ck[1], ck[0], ck[3], ck[2]};
  ASSERT_TRUE(memcmp(swapped, ck, 4) != 0);
  ASSERT_TRUE(write_at(path, swapped, 4, e3.addr + e3.size - 4));

  ASSERT_OK(map_open(path, "w", &m));
  ASSERT_STATUS(dread(&m, e2.first + 5, 10, got), EC_ECHECKSUM,
                "corrupt.h5:/w: cannot read data: checksum mismatch (Fletcher-32): the stored data "
                "is corrupted");
  char ours[1024];
  snprintf(ours, sizeof ours, "%s", ec_errmsg());
  ASSERT_STATUS(h5io_dset_read(&m.d, EC_F32, got, e2.first + 5, 10), EC_ECHECKSUM,
                "checksum mismatch");
  ASSERT_STR_EQ(ours, ec_errmsg()); /* the same message as through HDF5 */
  ASSERT_STATUS(dread(&m, 0, n, got), EC_ECHECKSUM, "checksum mismatch");
  ASSERT_STATUS(dread(&m, e2.first - 1, 2, got), EC_ECHECKSUM, "checksum mismatch");
  /* Chunks 0, 1 (up to chunk 2) and 3 (swapped checksum), 4, 5 read. */
  ASSERT_OK(dread(&m, 0, e2.first, got));
  ASSERT_TRUE(!memcmp(got, want, (size_t)e2.first * sizeof *got));
  int64_t from = e3.first;
  ASSERT_OK(dread(&m, from, n - from, got));
  ASSERT_TRUE(!memcmp(got, want + from, (size_t)(n - from) * sizeof *got));
  ASSERT_OK(h5io_dset_read(&m.d, EC_F32, got, from, n - from)); /* HDF5 accepts the swapped form */
  map_close(&m);
  free(x);
  free(want);
  free(got);
}

TEST(truncated_after_mapping) {
  const char *path = test_path("trunc.h5");
  float x[3000];
  fill_values(x, 3000, 19);
  hsize_t d1[1] = {3000}, c1[1] = {1000};
  hid_t f;
  ASSERT_OK(h5io_file_create(path, &f));
  hid_t dcpl = chunked_dcpl(1, c1, 1);
  ASSERT_TRUE(make_dset(f, "ck", h5io_type_f16(), 1, d1, dcpl, x));
  h5io_close(&dcpl);
  ASSERT_TRUE(make_dset(f, "contig", H5T_IEEE_F32LE, 1, d1, H5P_DEFAULT, x));
  ASSERT_OK(h5io_file_close(&f));
  mapped ck, contig;
  ASSERT_OK(map_open(path, "ck", &ck));
  ASSERT_OK(map_open(path, "contig", &contig));
  /* Cut the file inside the later of the two datasets' data. */
  const h5direct_extent *last = &ck.m.extents[2], *c = &contig.m.extents[0];
  uint64_t cut = last->addr > c->addr ? last->addr + 100 : c->addr + 100;
  ASSERT_EQ_INT(truncate(path, (off_t)cut), 0);
  float got[3000];
  mapped *late = last->addr > c->addr ? &ck : &contig, *early = late == &ck ? &contig : &ck;
  const char *late_name = late == &ck ? "trunc.h5:/ck" : "trunc.h5:/contig";
  ASSERT_STATUS(dread(late, 0, 3000, got), EC_EFORMAT, "cannot read data: the file is truncated");
  ASSERT_CONTAINS(ec_errmsg(), late_name);
  ASSERT_OK(dread(early, 0, 3000, got));
  if (late == &ck) ASSERT_OK(dread(&ck, 0, 2000, got)); /* the chunks before the cut */
  map_close(&ck);
  map_close(&contig);
}

TEST(read_error_names_the_system_error) {
  const char *path = h5io_file();
  ASSERT_TRUE(path);
  mapped m;
  ASSERT_OK(map_open(path, "a/f16_1d", &m));
  int dirfd = open(test_tmpdir(), O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(dirfd >= 0);
  float got[10];
  ASSERT_STATUS(h5direct_read(&m.m, dirfd, 0, 10, got, m.scratch, m.m.scratch_size), EC_EIO,
                "a/f16_1d: cannot read data: Is a directory");
  close(dirfd);
  map_close(&m);
}

/* ---- files written by h5py --------------------------------------------------------------------
 */

typedef struct {
  char names[64][256];
  int n;
} dset_list;

static herr_t collect_dset(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
  dset_list *l = data;
  if (info->type == H5O_TYPE_DATASET && l->n < 64) snprintf(l->names[l->n++], 256, "%s", name);
  return 0;
}

/* Every float dataset of the h5py-written snapshots (chunks=True, fletcher32=True; the chunk
 * h5py picks for these small tensors is the whole tensor) maps and reads as h5io reads it. */
TEST(h5py_written_snapshots) {
  const char *dir = getenv("EDM2C_TEST_DATA");
  char path[4096];
  snprintf(path, sizeof path, "%s/h5py-snapshots/snapshot-000000008192.h5",
           dir ? dir : "tests/data");
  if (access(path, R_OK) != 0) TEST_SKIP("h5py test data not found");
  hid_t f;
  ASSERT_OK(h5io_file_open(path, &f));
  static dset_list l;
  l.n = 0;
  ASSERT_TRUE(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_dset, &l) >= 0);
  ASSERT_OK(h5io_file_close(&f));
  int mapped_n = 0, checksummed = 0;
  for (int i = 0; i < l.n; i++) {
    mapped m;
    ASSERT_OK(map_open(path, l.names[i], &m));
    if (!m.m.mappable) {
      printf("# %s: not mappable: %s\n", l.names[i], m.m.why);
      map_close(&m);
      continue;
    }
    mapped_n++;
    checksummed += m.m.nextents > 0 && m.m.extents[0].checksum;
    int64_t n = m.d.numel;
    float *want = malloc((size_t)(n + 1) * sizeof *want),
          *got = malloc((size_t)(n + 1) * sizeof *got);
    ASSERT_TRUE(want && got);
    ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, n));
    ASSERT_OK(dread(&m, 0, n, got));
    ASSERT_TRUE(!memcmp(want, got, (size_t)n * sizeof *got));
    free(want);
    free(got);
    map_close(&m);
  }
  printf("# %d datasets, %d mapped, %d with checksums\n", l.n, mapped_n, checksummed);
  ASSERT_TRUE(l.n >= 10);
  ASSERT_EQ_INT(mapped_n, l.n);
}

/* ---- threads --------------------------------------------------------------------------------- */

typedef struct {
  const h5direct_map *m;
  int fd, id, failures;
  const float *want;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = p;
  void *scratch = ec_aligned_alloc(a->m->scratch_size);
  float *got = malloc((size_t)a->m->numel * sizeof *got);
  uint64_t seed = 1000 + (uint64_t)a->id;
  int64_t n = a->m->numel;
  for (int t = 0; t < 12 && scratch && got; t++) {
    int64_t lo = (int64_t)(rng_next(&seed) % (uint64_t)n),
            len = (int64_t)(rng_next(&seed) % (uint64_t)(n - lo));
    if (t == a->id % 12) lo = 0, len = n;
    if (h5direct_read(a->m, a->fd, lo, len, got, scratch, a->m->scratch_size) ||
        memcmp(got, a->want + lo, (size_t)len * sizeof *got))
      a->failures++;
  }
  if (!scratch || !got) a->failures++;
  ec_freep(&scratch);
  free(got);
  return NULL;
}

TEST(concurrent_reads_of_one_file) {
  const char *path = h5io_file();
  ASSERT_TRUE(path);
  const char *names[] = {"a/conv_partial", "a/long_rows_f32"};
  for (int c = 0; c < 2; c++) {
    mapped m;
    ASSERT_OK(map_open(path, names[c], &m));
    float *want = malloc((size_t)m.d.numel * sizeof *want);
    ASSERT_TRUE(want);
    ASSERT_OK(h5io_dset_read(&m.d, EC_F32, want, 0, m.d.numel));
    enum { T = 4 };
    pthread_t th[T];
    reader_arg args[T];
    for (int i = 0; i < T; i++) {
      args[i] = (reader_arg){&m.m, m.fd, i, 0, want};
      ASSERT_EQ_INT(pthread_create(&th[i], NULL, reader, &args[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < T; i++) {
      pthread_join(th[i], NULL);
      failures += args[i].failures;
    }
    ASSERT_EQ_INT(failures, 0);
    free(want);
    map_close(&m);
  }
}

TEST_MAIN(fletcher_matches_reference, h5io_tensors_read_as_h5io_reads_them,
          fletcher_matches_hdf5_stored_chunks, every_range_of_small_datasets,
          large_contiguous_float16, float64_conversion_matches_hdf5,
          unsupported_layouts_are_not_mappable, user_block, other_file_driver,
          skipped_fletcher_and_unfiltered_edge_chunks,
          corrupted_chunk_is_a_checksum_error_others_still_read, truncated_after_mapping,
          read_error_names_the_system_error, h5py_written_snapshots, concurrent_reads_of_one_file)
