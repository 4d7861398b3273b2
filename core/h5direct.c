/* Direct reads of HDF5 tensor data; see h5direct.h. */
#include "h5direct.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"
#include "half.h"

/* ---- Fletcher-32 ------------------------------------------------------------------------------
 *
 * HDF5 sums the data as big-endian 16-bit words w_0 .. w_n-1 (an odd last byte b counts as the
 * word b << 8): sum1 += w_i, sum2 += sum1, folding both with x = (x & 0xffff) + (x >> 16) every
 * 360 words and twice at the end. Folding keeps the value modulo 65535 and keeps it positive, and
 * the end result fits 16 bits, so HDF5's sums are
 *     sum1 = S1 mod 65535,  sum2 = S2 mod 65535,  with 65535 in place of 0 when S1 > 0,
 * where S1 = Σ w_i and S2 = Σ (n - i) w_i, and both are 0 only when every word is 0.
 *
 * Two identities make this fast. 65536 ≡ 1 (mod 65535), so a big-endian word w = 256·hi + lo is
 * ≡ 256·v where v = 256·lo + hi is the same two bytes read little-endian: the vector code sums
 * the words as the machine loads them and multiplies by 256 once. And the sums split into L
 * independent lanes: lane l takes the words l, l + L, l + 2L, ... of a block of T·L words and
 * keeps its own s1_l += v, s2_l += s1_l; then over the block
 *     Σ v_i = Σ_l s1_l,    Σ (T·L - i) v_i = L·Σ_l s2_l - Σ_l l·s1_l.
 * A block of T = 256 steps keeps every 32-bit lane exact (s2 < 65535·256·257/2 < 2^32); blocks
 * combine as S2(xy) = S2(x) + n(y)·S1(x) + S2(y). Each 32-bit lane holds two words (the low and
 * the high half of the load), so a step is an AND, a shift and four additions per vector. */

enum { FL_MOD = 65535, FL_BLOCK_STEPS = 256 };

/* S1 and S2 modulo 65535 (in the big-endian word domain) of the words so far, and whether one
 * of them was non-zero. */
typedef struct {
  uint64_t s1, s2;
  int nonzero;
} fl_state;

/* Appends a block of `steps` steps of `nlanes` 32-bit lanes (2·nlanes words a step, the even
 * word of lane k in its low half): lane sums lo1/lo2 of the low halves, hi1/hi2 of the high. */
static void fl_add_block(fl_state *st, size_t steps, int nlanes, const uint32_t *lo1,
                         const uint32_t *lo2, const uint32_t *hi1, const uint32_t *hi2) {
  uint64_t sum1 = 0, sum2 = 0, weighted = 0, words_per_step = 2 * (uint64_t)nlanes;
  for (int k = 0; k < nlanes; k++) {
    sum1 += (uint64_t)lo1[k] + hi1[k];
    sum2 += (uint64_t)lo2[k] + hi2[k];
    weighted += (uint64_t)(2 * k) * lo1[k] + (uint64_t)(2 * k + 1) * hi1[k];
  }
  /* Exact little-endian sums of the block, then ×256 into the big-endian domain. */
  uint64_t blk1 = sum1, blk2 = words_per_step * sum2 - weighted;
  uint64_t n = (words_per_step * steps) % FL_MOD;
  st->s2 = (st->s2 + n * st->s1 + (blk2 % FL_MOD) * 256) % FL_MOD;
  st->s1 = (st->s1 + (blk1 % FL_MOD) * 256) % FL_MOD;
  if (blk1) st->nonzero = 1;
}

/* Portable lanes: 8 lanes of 32 bits, 16 words a step. Returns the words consumed. */
static size_t fl_lanes_generic(const uint8_t *p, size_t nwords, fl_state *st) {
  enum { LANES = 8, WORDS = 2 * LANES };
  size_t nsteps = nwords / WORDS;
  for (size_t done = 0; done < nsteps;) {
    size_t steps = nsteps - done < FL_BLOCK_STEPS ? nsteps - done : FL_BLOCK_STEPS;
    uint32_t lo1[LANES] = {0}, lo2[LANES] = {0}, hi1[LANES] = {0}, hi2[LANES] = {0};
    const uint8_t *q = p + done * 2 * WORDS;
    for (size_t t = 0; t < steps; t++, q += 2 * WORDS) {
      for (int k = 0; k < LANES; k++) {
        const uint8_t *b = q + 4 * k;
        lo1[k] += (uint32_t)b[0] | (uint32_t)b[1] << 8;
        lo2[k] += lo1[k];
        hi1[k] += (uint32_t)b[2] | (uint32_t)b[3] << 8;
        hi2[k] += hi1[k];
      }
    }
    fl_add_block(st, steps, LANES, lo1, lo2, hi1, hi2);
    done += steps;
  }
  return nsteps * WORDS;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static size_t fl_lanes_avx2(const uint8_t *p, size_t nwords,
                                                            fl_state *st) {
  enum { LANES = 8, WORDS = 2 * LANES };
  size_t nsteps = nwords / WORDS;
  const __m256i low = _mm256_set1_epi32(0xffff);
  for (size_t done = 0; done < nsteps;) {
    size_t steps = nsteps - done < FL_BLOCK_STEPS ? nsteps - done : FL_BLOCK_STEPS;
    __m256i lo1 = _mm256_setzero_si256(), lo2 = lo1, hi1 = lo1, hi2 = lo1;
    const uint8_t *q = p + done * 2 * WORDS;
    for (size_t t = 0; t < steps; t++, q += 2 * WORDS) {
      __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)q);
      lo1 = _mm256_add_epi32(lo1, _mm256_and_si256(x, low));
      lo2 = _mm256_add_epi32(lo2, lo1);
      hi1 = _mm256_add_epi32(hi1, _mm256_srli_epi32(x, 16));
      hi2 = _mm256_add_epi32(hi2, hi1);
    }
    uint32_t l1[LANES], l2[LANES], h1[LANES], h2[LANES];
    _mm256_storeu_si256((__m256i *)(void *)l1, lo1);
    _mm256_storeu_si256((__m256i *)(void *)l2, lo2);
    _mm256_storeu_si256((__m256i *)(void *)h1, hi1);
    _mm256_storeu_si256((__m256i *)(void *)h2, hi2);
    fl_add_block(st, steps, LANES, l1, l2, h1, h2);
    done += steps;
  }
  return nsteps * WORDS;
}

__attribute__((target("avx512f"))) static size_t fl_lanes_avx512(const uint8_t *p, size_t nwords,
                                                                 fl_state *st) {
  enum { LANES = 16, WORDS = 2 * LANES };
  size_t nsteps = nwords / WORDS;
  const __m512i low = _mm512_set1_epi32(0xffff);
  for (size_t done = 0; done < nsteps;) {
    size_t steps = nsteps - done < FL_BLOCK_STEPS ? nsteps - done : FL_BLOCK_STEPS;
    __m512i lo1 = _mm512_setzero_si512(), lo2 = lo1, hi1 = lo1, hi2 = lo1;
    const uint8_t *q = p + done * 2 * WORDS;
    for (size_t t = 0; t < steps; t++, q += 2 * WORDS) {
      __m512i x = _mm512_loadu_si512((const void *)q);
      lo1 = _mm512_add_epi32(lo1, _mm512_and_si512(x, low));
      lo2 = _mm512_add_epi32(lo2, lo1);
      hi1 = _mm512_add_epi32(hi1, _mm512_srli_epi32(x, 16));
      hi2 = _mm512_add_epi32(hi2, hi1);
    }
    uint32_t l1[LANES], l2[LANES], h1[LANES], h2[LANES];
    _mm512_storeu_si512((void *)l1, lo1);
    _mm512_storeu_si512((void *)l2, lo2);
    _mm512_storeu_si512((void *)h1, hi1);
    _mm512_storeu_si512((void *)h2, hi2);
    fl_add_block(st, steps, LANES, l1, l2, h1, h2);
    done += steps;
  }
  return nsteps * WORDS;
}
#endif

unsigned h5direct_fletcher32_kernels(void) {
  unsigned k = H5DIRECT_FL_PORTABLE;
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx2")) k |= H5DIRECT_FL_AVX2;
  if (__builtin_cpu_supports("avx512f")) k |= H5DIRECT_FL_AVX512;
#endif
  return k;
}

static size_t fl_lanes(unsigned kernel, const uint8_t *p, size_t nwords, fl_state *st) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kernel & H5DIRECT_FL_AVX512) return fl_lanes_avx512(p, nwords, st);
  if (kernel & H5DIRECT_FL_AVX2) return fl_lanes_avx2(p, nwords, st);
#endif
  return fl_lanes_generic(p, nwords, st);
}

static void fl_add_word(fl_state *st, uint32_t w) {
  st->s1 = (st->s1 + w) % FL_MOD;
  st->s2 = (st->s2 + st->s1) % FL_MOD;
  if (w) st->nonzero = 1;
}

uint32_t h5direct_fletcher32_kernel(unsigned kernel, const void *data, size_t len) {
  EC_ASSERTF((kernel & h5direct_fletcher32_kernels()) == kernel && !(kernel & (kernel - 1)),
             "h5direct_fletcher32_kernel: kernel %#x not available", kernel);
  const uint8_t *p = data;
  fl_state st = {0, 0, 0};
  size_t nwords = len / 2;
  size_t i = fl_lanes(kernel, p, nwords, &st);
  for (; i < nwords; i++) fl_add_word(&st, (uint32_t)p[2 * i] << 8 | p[2 * i + 1]);
  if (len % 2) fl_add_word(&st, (uint32_t)p[len - 1] << 8);
  if (!st.nonzero) return 0;
  uint32_t sum1 = st.s1 ? (uint32_t)st.s1 : 0xffffu, sum2 = st.s2 ? (uint32_t)st.s2 : 0xffffu;
  return sum2 << 16 | sum1;
}

uint32_t h5direct_fletcher32(const void *data, size_t len) {
  /* The widest kernel the CPU has (valgrind hides AVX-512, so it runs the AVX2 one). */
  unsigned k = h5direct_fletcher32_kernels();
  k = k & H5DIRECT_FL_AVX512 ? H5DIRECT_FL_AVX512
      : k & H5DIRECT_FL_AVX2 ? H5DIRECT_FL_AVX2
                             : H5DIRECT_FL_PORTABLE;
  return h5direct_fletcher32_kernel(k, data, len);
}

/* The stored checksum (little-endian) matches `computed`, or its old byte-swapped form. */
static int checksum_matches(uint32_t computed, const uint8_t *stored) {
  uint32_t s = (uint32_t)stored[0] | (uint32_t)stored[1] << 8 | (uint32_t)stored[2] << 16 |
               (uint32_t)stored[3] << 24;
  uint32_t swapped = ((computed & 0x00ff00ffu) << 8) | ((computed >> 8) & 0x00ff00ffu);
  return s == computed || s == swapped;
}

int h5direct_checksum_ok(const void *chunk, size_t size) {
  if (size < 4) return 0;
  const uint8_t *p = chunk;
  return checksum_matches(h5direct_fletcher32(p, size - 4), p + size - 4);
}

/* ---- mapping --------------------------------------------------------------------------------- */

/* Below this, scratch buffers are not worth sizing tightly; conversions of unchecksummed data go
 * through pieces of this size. */
enum { MIN_SCRATCH = 64 << 10 };

static void quiet_hdf5(void) {
  static _Thread_local int done;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

/* Marks the map not mappable with a reason; returns EC_OK (not being mappable is no error). */
__attribute__((format(printf, 2, 3))) static ec_status not_mappable(h5direct_map *m,
                                                                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->why, sizeof m->why, fmt, ap);
  va_end(ap);
  m->mappable = 0;
  m->nextents = 0;
  ec_freep(&m->extents);
  H5Eclear2(H5E_DEFAULT);
  return EC_OK;
}

/* The element type of an IEEE little-endian float type we convert ourselves, or -1. */
static int float_dtype(hid_t t) {
  if (H5Tget_class(t) != H5T_FLOAT || H5Tget_order(t) != H5T_ORDER_LE || H5Tget_offset(t) != 0)
    return -1;
  size_t size = H5Tget_size(t), spos, epos, esize, mpos, msize;
  if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0 || mpos != 0 ||
      H5Tget_precision(t) != 8 * size || H5Tget_norm(t) != H5T_NORM_IMPLIED)
    return -1;
  size_t ebias = H5Tget_ebias(t);
  if (size == 2 && spos == 15 && epos == 10 && esize == 5 && msize == 10 && ebias == 15)
    return EC_F16;
  if (size == 4 && spos == 31 && epos == 23 && esize == 8 && msize == 23 && ebias == 127)
    return EC_F32;
  if (size == 8 && spos == 63 && epos == 52 && esize == 11 && msize == 52 && ebias == 1023)
    return EC_F64;
  return -1;
}

static const char *shape_text(int ndim, const hsize_t *dims, char *buf, size_t size) {
  ec_shape s = {ndim, {0}};
  for (int i = 0; i < ndim; i++) s.dims[i] = (int64_t)dims[i];
  return ec_shape_str(&s, buf, size);
}

static ec_status map_contiguous(const h5io_dset *d, hid_t dcpl, size_t esize, h5direct_map *m) {
  int next = H5Pget_external_count(dcpl);
  if (next != 0) return not_mappable(m, "the data is in external files");
  if (m->numel == 0) return EC_OK;
  haddr_t addr = H5Dget_offset(d->id);
  if (addr == HADDR_UNDEF) return not_mappable(m, "never written (no storage allocated)");
  hsize_t size = H5Dget_storage_size(d->id);
  if (size != (hsize_t)m->numel * esize)
    return not_mappable(m, "stores %llu bytes, expected %llu", (unsigned long long)size,
                        (unsigned long long)((hsize_t)m->numel * esize));
  if (!(m->extents = ec_calloc(1, sizeof *m->extents))) return EC_ENOMEM;
  m->extents[0] = (h5direct_extent){0, m->numel, (uint64_t)addr, (uint64_t)size, 0};
  m->nextents = 1;
  return EC_OK;
}

static ec_status map_chunked(const h5io_dset *d, hid_t dcpl, size_t esize, h5direct_map *m) {
  int nfilters = H5Pget_nfilters(dcpl);
  if (nfilters < 0) return not_mappable(m, "cannot read its filter pipeline");
  for (int i = 0; i < nfilters; i++) {
    unsigned flags, cd[8], config;
    size_t ncd = 8;
    char name[64] = "";
    H5Z_filter_t id =
        H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof name, name, &config);
    if (id != H5Z_FILTER_FLETCHER32)
      return not_mappable(m, "filter %d (%s) is not Fletcher-32", (int)id, name[0] ? name : "?");
  }
  if (nfilters > 1) return not_mappable(m, "more than one filter");

  if (m->userblock) return not_mappable(m, "chunked, in a file with a user block");

  int ndim = d->shape.ndim;
  hsize_t dims[EC_MAX_DIMS], cdims[EC_MAX_DIMS];
  for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)d->shape.dims[i];
  if (ndim < 1 || H5Pget_chunk(dcpl, ndim, cdims) != ndim)
    return not_mappable(m, "cannot read its chunk shape");
  /* Chunks are flat ranges when they are single rows above one dimension k and whole below. */
  int k = ndim - 1;
  while (k > 0 && cdims[k] == dims[k]) k--;
  for (int i = 0; i < k; i++) {
    if (cdims[i] != 1) {
      char a[96], b[96];
      return not_mappable(m, "chunks of %s are not flat ranges of %s",
                          shape_text(ndim, cdims, a, sizeof a),
                          shape_text(ndim, dims, b, sizeof b));
    }
  }
  if (m->numel == 0) return EC_OK;
  unsigned opts = 0;
  if (H5Pget_chunk_opts(dcpl, &opts) < 0) return not_mappable(m, "cannot read its chunk options");
  int unfiltered_edges = (opts & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS) != 0;

  hsize_t inner = 1, outer = 1, rows = cdims[k], dk = dims[k];
  for (int i = k + 1; i < ndim; i++) inner *= dims[i];
  for (int i = 0; i < k; i++) outer *= dims[i];
  hsize_t per_outer = (dk + rows - 1) / rows, nchunks = outer * per_outer;
  uint64_t chunk_bytes = (uint64_t)(rows * inner) * esize;
  if (!(m->extents = ec_calloc((size_t)nchunks, sizeof *m->extents))) return EC_ENOMEM;

  hsize_t coord[EC_MAX_DIMS] = {0};
  size_t need = 0;
  for (hsize_t o = 0, e = 0; o < outer; o++) {
    for (hsize_t rest = o, i = (hsize_t)k; i-- > 0;) { /* row-major coordinates of row o */
      coord[i] = rest % dims[i];
      rest /= dims[i];
    }
    for (hsize_t c = 0; c < per_outer; c++, e++) {
      coord[k] = c * rows;
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      hsize_t size = 0;
      char a[96];
      if (H5Dget_chunk_info_by_coord(d->id, coord, &mask, &addr, &size) < 0)
        return not_mappable(m, "cannot look up the chunk at %s",
                            shape_text(ndim, coord, a, sizeof a));
      if (addr == HADDR_UNDEF)
        return not_mappable(m, "the chunk at %s was never written (HDF5 gives the fill value)",
                            shape_text(ndim, coord, a, sizeof a));
      int partial = coord[k] + rows > dk;
      int checksum = nfilters == 1 && !(partial && unfiltered_edges) && !(mask & 1u);
      uint64_t expect = chunk_bytes + (checksum ? 4 : 0);
      if ((uint64_t)size != expect)
        return not_mappable(m, "the chunk at %s stores %llu bytes, expected %llu",
                            shape_text(ndim, coord, a, sizeof a), (unsigned long long)size,
                            (unsigned long long)expect);
      hsize_t valid = (partial ? dk - coord[k] : rows) * inner;
      m->extents[e] = (h5direct_extent){(int64_t)((o * dk + coord[k]) * inner), (int64_t)valid,
                                        (uint64_t)addr, (uint64_t)size, checksum};
      if (checksum && size > need) need = (size_t)size;
    }
  }
  m->nextents = (int64_t)nchunks;
  if (need > m->scratch_size) m->scratch_size = need;
  return EC_OK;
}

/* Addresses are offsets in one plain file only with the default (sec2) or stdio driver; HDF5
 * before 1.14.4 reports chunk addresses without the user block's size, so that is looked up. */
void h5direct_file_info(hid_t obj, h5direct_file *f) {
  hid_t file = H5Iget_file_id(obj);
  hid_t fapl = file < 0 ? H5I_INVALID_HID : H5Fget_access_plist(file);
  hid_t fcpl = file < 0 ? H5I_INVALID_HID : H5Fget_create_plist(file);
  hid_t driver = fapl < 0 ? H5I_INVALID_HID : H5Pget_driver(fapl);
  f->userblock = 0;
  f->plain = driver >= 0 && (driver == H5FD_SEC2 || driver == H5FD_STDIO) && fcpl >= 0 &&
             H5Pget_userblock(fcpl, &f->userblock) >= 0;
  h5io_close(&fcpl);
  h5io_close(&fapl);
  h5io_close(&file);
}

ec_status h5direct_map_dataset(const h5io_dset *d, h5direct_map *m) {
  h5direct_file f;
  h5direct_file_info(d->id, &f);
  return h5direct_map_dataset_in(d, &f, m);
}

ec_status h5direct_map_dataset_in(const h5io_dset *d, const h5direct_file *f, h5direct_map *m) {
  quiet_hdf5();
  memset(m, 0, sizeof *m);
  m->numel = d->numel;
  m->scratch_size = MIN_SCRATCH;
  if (!(m->where = ec_strdup(h5io_where(d->id)))) return EC_ENOMEM;
  hid_t type = H5Dget_type(d->id), space = H5Dget_space(d->id), dcpl = H5Dget_create_plist(d->id);
  ec_status s = EC_OK;
  int dt = type < 0 ? -1 : float_dtype(type);
  if (type < 0 || space < 0 || dcpl < 0) {
    s = not_mappable(m, "cannot read its type, dataspace or creation properties");
  } else if (!f->plain) {
    s = not_mappable(m, "the file is not opened with the default (sec2) driver");
  } else if (dt < 0) {
    s = not_mappable(m, "element type is not float16, float32 or float64 little-endian");
  } else if (H5Sget_simple_extent_type(space) == H5S_NULL) {
    s = not_mappable(m, "null dataspace");
  } else {
    m->dtype = (ec_dtype)dt;
    m->userblock = f->userblock;
    m->mappable = 1;
    size_t esize = ec_dtype_size(m->dtype);
    switch (H5Pget_layout(dcpl)) {
    case H5D_CONTIGUOUS: s = map_contiguous(d, dcpl, esize, m); break;
    case H5D_CHUNKED: s = map_chunked(d, dcpl, esize, m); break;
    case H5D_COMPACT:
      s = not_mappable(m, "compact layout (the data is in the object header)");
      break;
    case H5D_VIRTUAL: s = not_mappable(m, "virtual dataset"); break;
    default: s = not_mappable(m, "unknown layout"); break;
    }
  }
  h5io_close(&dcpl);
  h5io_close(&space);
  h5io_close(&type);
  if (s) {
    m->mappable = 0;
    ec_freep(&m->extents);
    m->nextents = 0;
  }
  return s;
}

void h5direct_unmap(h5direct_map *m) {
  ec_freep(&m->extents);
  ec_freep(&m->where);
  m->nextents = 0;
  m->mappable = 0;
}

/* ---- reading --------------------------------------------------------------------------------- */

static ec_status pread_full(const h5direct_map *m, int fd, void *buf, size_t len, uint64_t at) {
  char *p = buf;
  while (len > 0) {
    ssize_t r = pread(fd, p, len, (off_t)at);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ec_err(EC_EIO, "%s: cannot read data: %s", m->where, strerror(errno));
    }
    if (r == 0)
      return ec_err(EC_EFORMAT,
                    "%s: cannot read data: the file is truncated (an incomplete copy or write?)",
                    m->where);
    p += r;
    len -= (size_t)r;
    at += (uint64_t)r;
  }
  return EC_OK;
}

static ec_status checksum_error(const h5direct_map *m) {
  return ec_err(
      EC_ECHECKSUM,
      "%s: cannot read data: checksum mismatch (Fletcher-32): the stored data is corrupted",
      m->where);
}

static void to_float(float *out, const uint8_t *src, ec_dtype t, size_t n) {
  switch (t) {
  case EC_F16: {
    /* ec_half_to_float_array takes uint16_t: aligned in practice (scratch from an allocator, an
     * even element offset); copy through memcpy otherwise. */
    if (((uintptr_t)src & 1) == 0) {
      ec_half_to_float_array(out, (const uint16_t *)(const void *)src, n);
    } else {
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        out[i] = ec_half_to_float(h);
      }
    }
    break;
  }
  case EC_F32: memcpy(out, src, n * 4); break;
  case EC_F64:
    for (size_t i = 0; i < n; i++) {
      double v;
      memcpy(&v, src + 8 * i, 8);
      out[i] = (float)v;
    }
    break;
  default: EC_ABORT("h5direct: unexpected element type %d", (int)t);
  }
}

/* Index of the extent holding flat element x (extents tile [0, numel)). */
static int64_t find_extent(const h5direct_map *m, int64_t x) {
  int64_t lo = 0, hi = m->nextents - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo + 1) / 2;
    if (m->extents[mid].first <= x)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* Elements [lo, lo + n) of one extent. */
static ec_status read_extent(const h5direct_map *m, const h5direct_extent *e, int fd, int64_t lo,
                             int64_t n, float *out, uint8_t *scratch, size_t scratch_size) {
  size_t esize = ec_dtype_size(m->dtype);
  ec_status s;
  if (e->checksum) {
    size_t data_bytes = (size_t)e->size - 4;
    if (m->dtype == EC_F32 && lo == 0 && (size_t)n * 4 == data_bytes) {
      /* A whole, full float32 chunk: straight into the output, the checksum beside it. */
      uint8_t ck[4];
      if ((s = pread_full(m, fd, out, data_bytes, e->addr)) ||
          (s = pread_full(m, fd, ck, 4, e->addr + data_bytes)))
        return s;
      return checksum_matches(h5direct_fletcher32(out, data_bytes), ck) ? EC_OK : checksum_error(m);
    }
    if ((s = pread_full(m, fd, scratch, (size_t)e->size, e->addr))) return s;
    if (!checksum_matches(h5direct_fletcher32(scratch, data_bytes), scratch + data_bytes))
      return checksum_error(m);
    to_float(out, scratch + (size_t)lo * esize, m->dtype, (size_t)n);
    return EC_OK;
  }
  uint64_t at = e->addr + (uint64_t)lo * esize;
  if (m->dtype == EC_F32) return pread_full(m, fd, out, (size_t)n * 4, at);
  size_t piece = scratch_size / esize;
  for (int64_t done = 0; done < n;) {
    size_t k = (size_t)(n - done) < piece ? (size_t)(n - done) : piece;
    if ((s = pread_full(m, fd, scratch, k * esize, at + (uint64_t)done * esize))) return s;
    to_float(out + done, scratch, m->dtype, k);
    done += (int64_t)k;
  }
  return EC_OK;
}

/* read_extent without conversion: elements stay in the file's type. */
static ec_status read_extent_raw(const h5direct_map *m, const h5direct_extent *e, int fd, int64_t lo,
                                 int64_t n, uint8_t *out, uint8_t *scratch) {
  size_t esize = ec_dtype_size(m->dtype);
  ec_status s;
  if (!e->checksum) return pread_full(m, fd, out, (size_t)n * esize, e->addr + (uint64_t)lo * esize);
  size_t data_bytes = (size_t)e->size - 4;
  if (lo == 0 && (size_t)n * esize == data_bytes) { /* a whole full chunk: straight into out */
    uint8_t ck[4];
    if ((s = pread_full(m, fd, out, data_bytes, e->addr)) || (s = pread_full(m, fd, ck, 4, e->addr + data_bytes)))
      return s;
    return checksum_matches(h5direct_fletcher32(out, data_bytes), ck) ? EC_OK : checksum_error(m);
  }
  if ((s = pread_full(m, fd, scratch, (size_t)e->size, e->addr))) return s;
  if (!checksum_matches(h5direct_fletcher32(scratch, data_bytes), scratch + data_bytes)) return checksum_error(m);
  memcpy(out, scratch + (size_t)lo * esize, (size_t)n * esize);
  return EC_OK;
}

ec_status h5direct_read_raw(const h5direct_map *m, int fd, int64_t offset, int64_t count, void *out,
                            void *scratch, size_t scratch_size) {
  EC_ASSERTF(m->mappable, "h5direct_read_raw: %s is not mappable (%s)", m->where ? m->where : "?", m->why);
  EC_ASSERTF(offset >= 0 && count >= 0 && offset <= m->numel && count <= m->numel - offset,
             "h5direct_read_raw: range [%lld, %lld) outside %lld elements", (long long)offset,
             (long long)(offset + count), (long long)m->numel);
  EC_ASSERTF(scratch && scratch_size >= m->scratch_size, "h5direct_read_raw: scratch of %zu bytes, %s needs %zu",
             scratch_size, m->where, m->scratch_size);
  size_t esize = ec_dtype_size(m->dtype);
  uint8_t *o = out;
  for (int64_t i = count ? find_extent(m, offset) : 0; count > 0; i++) {
    const h5direct_extent *e = &m->extents[i];
    int64_t lo = offset - e->first, n = e->count - lo < count ? e->count - lo : count;
    ec_status s = read_extent_raw(m, e, fd, lo, n, o, scratch);
    if (s) return s;
    o += (size_t)n * esize;
    offset += n;
    count -= n;
  }
  return EC_OK;
}

ec_status h5direct_read(const h5direct_map *m, int fd, int64_t offset, int64_t count, float *out,
                        void *scratch, size_t scratch_size) {
  EC_ASSERTF(m->mappable, "h5direct_read: %s is not mappable (%s)", m->where ? m->where : "?",
             m->why);
  EC_ASSERTF(offset >= 0 && count >= 0 && offset <= m->numel && count <= m->numel - offset,
             "h5direct_read: range [%lld, %lld) outside %lld elements", (long long)offset,
             (long long)(offset + count), (long long)m->numel);
  EC_ASSERTF(scratch && scratch_size >= m->scratch_size,
             "h5direct_read: scratch of %zu bytes, %s needs %zu", scratch_size, m->where,
             m->scratch_size);
  if (count == 0) return EC_OK;
  for (int64_t i = find_extent(m, offset); count > 0; i++) {
    const h5direct_extent *e = &m->extents[i];
    int64_t lo = offset - e->first, n = e->count - lo < count ? e->count - lo : count;
    ec_status s = read_extent(m, e, fd, lo, n, out, scratch, scratch_size);
    if (s) return s;
    out += n;
    offset += n;
    count -= n;
  }
  return EC_OK;
}

int64_t h5direct_aligned_count(const h5direct_map *m, int64_t offset, int64_t max_count) {
  int64_t end = offset + max_count;
  if (max_count <= 0 || end >= m->numel || m->nextents == 0) return max_count;
  const h5direct_extent *e = &m->extents[find_extent(m, end - 1)];
  if (e->first + e->count == end || e->first <= offset) return max_count;
  return e->first - offset;
}
