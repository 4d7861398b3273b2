/* core/safetensors: round trips, conversions, the exact byte layout, every reader error on
 * corrupt files, writer errors (file size limit, allocation failures) and interop with a plain
 * Python parser. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/half.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "tests/test.h"

#define SHAPE(...)                                                                                 \
  ec_shape_make(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (int64_t[]){__VA_ARGS__})
#define SCALAR ec_shape_make(0, NULL)

/* Writes the 8-byte little-endian length of `json`, `json` itself and `dsize` zero bytes to
 * test_path(name); returns that path. */
static const char *raw_file(const char *name, const char *json, size_t dsize) {
  size_t n = strlen(json);
  unsigned char *buf = calloc(8 + n + dsize, 1);
  if (!buf) return NULL;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(buf + 8, json, n);
  const char *path = test_path(name);
  int rc = test_write_file(path, buf, 8 + n + dsize);
  free(buf);
  return rc == 0 ? path : NULL;
}

/* Opens a file built by raw_file and closes it again; returns what ec_st_open said. */
static ec_status open_json(const char *json, size_t dsize) {
  const char *path = raw_file("bad.safetensors", json, dsize);
  if (!path) return ec_err(EC_EIO, "test could not write bad.safetensors");
  ec_st_file f;
  ec_status st = ec_st_open(&f, path);
  ec_st_close(&f);
  return st;
}

/* The header in `json` (with dsize data bytes) is refused with a message naming the file and
 * containing `needle`. */
#define ASSERT_BAD(json, dsize, needle)                                                            \
  do {                                                                                             \
    ASSERT_STATUS(open_json(json, dsize), EC_EFORMAT, needle);                                     \
    ASSERT_CONTAINS(ec_errmsg(), "bad.safetensors");                                               \
  } while (0)

/* An entry with the given fields, for building corrupt headers. */
#define ENTRY(name, dtype, shape, offsets)                                                         \
  "\"" name "\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offsets "}"

TEST(roundtrip_all_dtypes) {
  const char *path = test_path("all.safetensors");
  float f32[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 42.0f};
  float to16[4] = {0.5f, -1.0f, 65504.0f, 0.1f};
  float tobf[3] = {1.0f, -3.5f, 1e20f};
  double f64[4] = {1e-300, -2.5, 3.141592653589793, 1e300};
  int32_t i32[5] = {-2147483647 - 1, -1, 0, 1, 2147483647};
  int64_t i64[2] = {INT64_MIN, INT64_MAX};
  uint8_t u8[7] = {0, 1, 2, 127, 128, 254, 255};
  float scalar = 7.0f;

  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "f32", EC_F32, SHAPE(2, 3)));
  ASSERT_OK(ec_st_writer_add(&w, "f16", EC_F16, SHAPE(4)));
  ASSERT_OK(ec_st_writer_add(&w, "empty", EC_F32, SHAPE(0, 3)));
  ASSERT_OK(ec_st_writer_add(&w, "bf16", EC_BF16, SHAPE(3, 1)));
  ASSERT_OK(ec_st_writer_add(&w, "f64", EC_F64, SHAPE(2, 2)));
  ASSERT_OK(ec_st_writer_add(&w, "i32", EC_I32, SHAPE(5)));
  ASSERT_OK(ec_st_writer_add(&w, "i64", EC_I64, SHAPE(2)));
  ASSERT_OK(ec_st_writer_add(&w, "u8", EC_U8, SHAPE(7)));
  ASSERT_OK(ec_st_writer_add(&w, "scalar", EC_F32, SCALAR));
  ASSERT_OK(ec_st_writer_add(&w, "empty_last", EC_I64, SHAPE(0)));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, f32, 4)); /* in two pieces */
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, f32 + 4, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, to16, 4));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, tobf, 3));
  ASSERT_OK(ec_st_writer_write(&w, EC_F64, f64, 4));
  ASSERT_OK(ec_st_writer_write(&w, EC_I32, i32, 5));
  ASSERT_OK(ec_st_writer_write(&w, EC_I64, i64, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_U8, u8, 7));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, &scalar, 1));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  ASSERT_EQ_INT(f.ntensors, 10);
  ASSERT_EQ_INT(f.data_start % 8, 0);
  for (int i = 1; i < f.ntensors; i++) ASSERT_TRUE(f.tensors[i - 1].begin <= f.tensors[i].begin);

  int k = ec_st_find(&f, "f32");
  ASSERT_TRUE(k >= 0);
  ASSERT_EQ_INT(f.tensors[k].dtype, EC_F32);
  ASSERT_TRUE(ec_shape_equal(&f.tensors[k].shape, &(ec_shape){2, {2, 3}}));
  float got[6];
  ASSERT_OK(ec_st_read(&f, k, EC_F32, got, 0, 6));
  ASSERT_TRUE(!memcmp(got, f32, sizeof f32));

  k = ec_st_find(&f, "f16");
  ASSERT_EQ_INT(f.tensors[k].dtype, EC_F16);
  uint16_t h[4];
  ASSERT_OK(ec_st_read(&f, k, EC_F16, h, 0, 4));
  for (int i = 0; i < 4; i++) ASSERT_EQ_INT(h[i], ec_float_to_half(to16[i]));

  k = ec_st_find(&f, "bf16");
  ASSERT_EQ_INT(f.tensors[k].dtype, EC_BF16);
  ASSERT_EQ_INT(f.tensors[k].shape.ndim, 2);
  ASSERT_OK(ec_st_read(&f, k, EC_BF16, h, 0, 3));
  for (int i = 0; i < 3; i++) ASSERT_EQ_INT(h[i], ec_float_to_bf16(tobf[i]));

  double d[4];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "f64"), EC_F64, d, 0, 4));
  ASSERT_TRUE(!memcmp(d, f64, sizeof f64));
  int32_t gi32[5];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "i32"), EC_I32, gi32, 0, 5));
  ASSERT_TRUE(!memcmp(gi32, i32, sizeof i32));
  int64_t gi64[2];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "i64"), EC_I64, gi64, 0, 2));
  ASSERT_TRUE(!memcmp(gi64, i64, sizeof i64));
  uint8_t gu8[7];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "u8"), EC_U8, gu8, 0, 7));
  ASSERT_TRUE(!memcmp(gu8, u8, sizeof u8));

  k = ec_st_find(&f, "scalar");
  ASSERT_EQ_INT(f.tensors[k].shape.ndim, 0);
  ASSERT_EQ_INT(f.tensors[k].end - f.tensors[k].begin, 4);
  float s = 0;
  ASSERT_OK(ec_st_read(&f, k, EC_F32, &s, 0, 1));
  ASSERT_NEAR(s, 7.0, 0);

  k = ec_st_find(&f, "empty");
  ASSERT_TRUE(ec_shape_equal(&f.tensors[k].shape, &(ec_shape){2, {0, 3}}));
  ASSERT_EQ_INT(f.tensors[k].end, f.tensors[k].begin);
  ASSERT_OK(ec_st_read(&f, k, EC_F32, NULL, 0, 0));
  ASSERT_TRUE(ec_st_find(&f, "empty_last") >= 0);

  ASSERT_EQ_INT(ec_st_find(&f, "missing"), -1);
  ASSERT_EQ_INT(ec_st_find(&f, ""), -1);
  ASSERT_EQ_INT(f.nmeta, 0);
  ASSERT_TRUE(ec_st_meta(&f, "format") == NULL);
  ec_st_close(&f);
  ec_st_close(&f); /* twice is fine */
}

TEST(converted_reads) {
  const char *path = test_path("conv.safetensors");
  float v[5] = {0.5f, -1.25f, 1024.0f, 0.1f, -0.0f};
  double dv[2] = {0.1, -7.5};
  int32_t iv[2] = {3, 4};
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "h", EC_F16, SHAPE(5)));
  ASSERT_OK(ec_st_writer_add(&w, "b", EC_BF16, SHAPE(5)));
  ASSERT_OK(ec_st_writer_add(&w, "f", EC_F32, SHAPE(5)));
  ASSERT_OK(ec_st_writer_add(&w, "d", EC_F64, SHAPE(2)));
  ASSERT_OK(ec_st_writer_add(&w, "i", EC_I32, SHAPE(2)));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 5));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 5));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 5));
  ASSERT_OK(ec_st_writer_write(&w, EC_F64, dv, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_I32, iv, 2));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  float out[5];
  double dout[5];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "h"), EC_F32, out, 0, 5));
  for (int i = 0; i < 5; i++) ASSERT_EQ_INT(out[i] == ec_half_to_float(ec_float_to_half(v[i])), 1);
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "h"), EC_F64, dout, 0, 5));
  ASSERT_NEAR(dout[3], 0.0999755859375, 0); /* float16 nearest to 0.1 */
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "b"), EC_F32, out, 0, 5));
  for (int i = 0; i < 5; i++) ASSERT_EQ_INT(out[i] == ec_bf16_to_float(ec_float_to_bf16(v[i])), 1);
  uint16_t h[5];
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "f"), EC_F16, h, 0, 5));
  for (int i = 0; i < 5; i++) ASSERT_EQ_INT(h[i], ec_float_to_half(v[i]));
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "d"), EC_F32, out, 0, 2));
  ASSERT_EQ_INT(out[0] == 0.1f, 1);

  /* What cannot be converted is an error that names the tensor and both types. */
  ASSERT_STATUS(ec_st_read(&f, ec_st_find(&f, "d"), EC_F16, h, 0, 2), EC_EINVAL,
                "tensor 'd' is float64 and cannot be read as float16");
  ASSERT_STATUS(ec_st_read(&f, ec_st_find(&f, "i"), EC_F32, out, 0, 2), EC_EINVAL,
                "tensor 'i' is int32 and cannot be read as float32");
  ASSERT_STATUS(ec_st_read(&f, ec_st_find(&f, "f"), EC_I32, out, 0, 2), EC_EINVAL, "int32");
  ASSERT_STATUS(ec_st_read(&f, 99, EC_F32, out, 0, 1), EC_EINVAL, "no tensor with index 99");
  ec_st_close(&f);
}

TEST(slices) {
  const char *path = test_path("slices.safetensors");
  float v[10];
  for (int i = 0; i < 10; i++) v[i] = (float)i;
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "pad", EC_U8, SHAPE(3))); /* puts "v" at an odd offset */
  ASSERT_OK(ec_st_writer_add(&w, "v", EC_F16, SHAPE(2, 5)));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_U8, "abc", 3));
  for (int i = 0; i < 10; i++) ASSERT_OK(ec_st_writer_write(&w, EC_F32, &v[i], 1));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  int k = ec_st_find(&f, "v");
  float out[10] = {0};
  ASSERT_OK(ec_st_read(&f, k, EC_F32, out, 3, 4));
  for (int i = 0; i < 4; i++) ASSERT_NEAR(out[i], 3 + i, 0);
  ASSERT_OK(ec_st_read(&f, k, EC_F32, out, 9, 1));
  ASSERT_NEAR(out[0], 9, 0);
  ASSERT_OK(ec_st_read(&f, k, EC_F32, out, 10, 0));
  uint16_t h[2];
  ASSERT_OK(ec_st_read(&f, k, EC_F16, h, 5, 2));
  ASSERT_EQ_INT(h[1], ec_float_to_half(6.0f));
  char pad[4] = {0};
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "pad"), EC_U8, pad, 1, 2));
  ASSERT_STR_EQ(pad, "bc");
  ASSERT_STATUS(ec_st_read(&f, k, EC_F32, out, 8, 3), EC_EINVAL, "tensor 'v': elements [8, 11)");
  ASSERT_STATUS(ec_st_read(&f, k, EC_F32, out, -1, 1), EC_EINVAL, "outside its 10");
  ASSERT_STATUS(ec_st_read(&f, k, EC_F32, out, 0, -1), EC_EINVAL, "slices.safetensors");
  ec_st_close(&f);
}

/* More elements than one conversion chunk, so both the writer's and the reader's chunk loops
 * take several turns, with pieces that do not line up with the chunks. */
TEST(large_converted) {
  const char *path = test_path("large.safetensors");
  enum { N = 700001 };
  float *v = malloc(N * sizeof *v), *back = malloc(N * sizeof *back);
  double *d = malloc(N * sizeof *d);
  ASSERT_TRUE(v && back && d);
  for (int i = 0; i < N; i++) v[i] = (float)((i % 2001) - 1000) / 8.0f;
  ec_st_writer w = {0};
  ec_status st = ec_st_writer_add(&w, "x", EC_F16, SHAPE(N));
  if (!st) st = ec_st_writer_begin(&w, path);
  if (!st) st = ec_st_writer_write(&w, EC_F32, v, 1000);
  if (!st) st = ec_st_writer_write(&w, EC_F32, v + 1000, 600000);
  if (!st) st = ec_st_writer_write(&w, EC_F32, v + 601000, N - 601000);
  if (!st) st = ec_st_writer_finish(&w);
  ec_st_writer_free(&w);
  ec_st_file f = {0};
  if (!st) st = ec_st_open(&f, path);
  if (!st) st = ec_st_read(&f, 0, EC_F32, back, 0, N);
  if (!st) st = ec_st_read(&f, 0, EC_F64, d, 0, N);
  ec_st_close(&f);
  int bad = -1;
  for (int i = 0; !st && i < N && bad < 0; i++)
    if (back[i] != v[i] || d[i] != (double)v[i]) bad = i; /* all exact in float16 */
  free(v);
  free(back);
  free(d);
  ASSERT_OK(st);
  ASSERT_EQ_INT(bad, -1);
}

TEST(metadata) {
  const char *path = test_path("meta.safetensors");
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_meta(&w, "format", "pt"));
  ASSERT_OK(ec_st_writer_meta(&w, "note", "quotes \" and \\ and\nnewline, caf\xc3\xa9"));
  ASSERT_OK(ec_st_writer_meta(&w, "empty", ""));
  ASSERT_STATUS(ec_st_writer_meta(&w, "format", "np"), EC_EINVAL,
                "duplicate metadata key 'format'");
  ASSERT_STATUS(ec_st_writer_meta(&w, "bad", "\xff"), EC_EINVAL, "not valid UTF-8");
  ASSERT_OK(ec_st_writer_begin(&w, path)); /* no tensors at all is a valid file */
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  ASSERT_EQ_INT(f.ntensors, 0);
  ASSERT_EQ_INT(ec_st_find(&f, "format"), -1);
  ASSERT_EQ_INT(f.nmeta, 3);
  ASSERT_STR_EQ(f.meta_keys[1], "note");
  ASSERT_STR_EQ(ec_st_meta(&f, "format"), "pt");
  ASSERT_STR_EQ(ec_st_meta(&f, "note"), "quotes \" and \\ and\nnewline, caf\xc3\xa9");
  ASSERT_STR_EQ(ec_st_meta(&f, "empty"), "");
  ASSERT_TRUE(ec_st_meta(&f, "missing") == NULL);
  ec_st_close(&f);
}

/* Pins the format: the header JSON, its padding to 8 bytes and the data layout, byte for byte. */
TEST(exact_bytes) {
  const char *path = test_path("exact.safetensors");
  ec_st_writer w = {0};
  float a[2] = {1.0f, -2.0f}, s = 1.0f;
  ASSERT_OK(ec_st_writer_add(&w, "a", EC_F32, SHAPE(2)));
  ASSERT_OK(ec_st_writer_add(&w, "s", EC_F16, SCALAR));
  ASSERT_OK(ec_st_writer_meta(&w, "k", "v"));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, a, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, &s, 1));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  static const char json[] = "{\"__metadata__\":{\"k\":\"v\"},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[8,10]}}";
  ASSERT_EQ_INT(strlen(json), 132); /* padded with 4 spaces to 136 */
  unsigned char want[8 + 136 + 10];
  memset(want, 0, sizeof want);
  want[0] = 136;
  memcpy(want + 8, json, 132);
  memset(want + 8 + 132, ' ', 4);
  static const unsigned char data[10] = {0x00, 0x00, 0x80, 0x3f, 0x00,
                                         0x00, 0x00, 0xc0, 0x00, 0x3c};
  memcpy(want + 8 + 136, data, sizeof data);

  size_t size = 0;
  char *got = test_read_file(path, &size);
  ASSERT_TRUE(got != NULL);
  int same = size == sizeof want && !memcmp(got, want, sizeof want);
  if (!same) printf("# got %zu bytes: %.*s\n", size, (int)(size > 8 ? size - 8 : 0), got + 8);
  free(got);
  ASSERT_TRUE(same);
}

TEST(reader_rejects_bad_length) {
  const char *path = test_path("short.safetensors");
  ec_st_file f;
  ASSERT_EQ_INT(test_write_file(path, "abc", 3), 0);
  ASSERT_STATUS(ec_st_open(&f, path), EC_EFORMAT, "too short");
  ASSERT_CONTAINS(ec_errmsg(), "short.safetensors");

  unsigned char buf[40] = {0};
  memcpy(buf + 8, "{}", 2);
  buf[0] = 33; /* one byte more than follows */
  path = test_path("long.safetensors");
  ASSERT_EQ_INT(test_write_file(path, buf, sizeof buf), 0);
  ASSERT_STATUS(ec_st_open(&f, path), EC_EFORMAT, "header length 33 is larger than the rest");
  ASSERT_CONTAINS(ec_errmsg(), "long.safetensors");

  buf[0] = 0, buf[4] = 1; /* 2^32 */
  ASSERT_EQ_INT(test_write_file(path, buf, sizeof buf), 0);
  ASSERT_STATUS(ec_st_open(&f, path), EC_EFORMAT, "header length 4294967296 exceeds");

  memset(buf, 0xff, 8); /* would be negative as a signed number */
  ASSERT_EQ_INT(test_write_file(path, buf, sizeof buf), 0);
  ASSERT_STATUS(ec_st_open(&f, path), EC_EFORMAT, "exceeds the 100000000-byte limit");

  memset(buf, 0, 8); /* empty header */
  ASSERT_EQ_INT(test_write_file(path, buf, sizeof buf), 0);
  ASSERT_STATUS(ec_st_open(&f, path), EC_EFORMAT, "not valid JSON");
  ec_st_close(&f);
}

TEST(reader_rejects_bad_json) {
  ASSERT_BAD("{\"a\": ", 0, "not valid JSON");
  ASSERT_BAD("{\"a\":{\"dtype\":\"F32\",}}", 0, "not valid JSON (error near byte");
  ASSERT_BAD("[1, 2]", 0, "not a JSON object");
  ASSERT_BAD("\"F32\"", 0, "not a JSON object");
  ASSERT_BAD("{} x", 0, "unexpected bytes after the header JSON (byte 3");
  ASSERT_BAD("{}{}", 0, "unexpected bytes after the header JSON");
  ASSERT_BAD("{\"\xff\":1}", 0, "not valid UTF-8 (byte 2");
  ASSERT_BAD("{\"\xc0\xaf\":1}", 0, "not valid UTF-8"); /* overlong '/' */
  /* What is valid: whitespace padding (even tabs and newlines), and an empty object. */
  ASSERT_OK(open_json("{}      ", 0));
  ASSERT_OK(open_json(" {\n}\t\r\n", 0));
  ASSERT_OK(open_json("{" ENTRY("caf\xc3\xa9", "\"U8\"", "[1]", "[0,1]") "}", 1));
}

TEST(reader_rejects_bad_entries) {
  ASSERT_BAD("{\"w\":3}", 0, "tensor 'w': entry is not a JSON object");
  ASSERT_BAD("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "tensor 'w': entry lacks \"dtype\"");
  ASSERT_BAD("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "'w': entry lacks \"shape\"");
  ASSERT_BAD("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w': entry lacks \"data_offsets\"");
  ASSERT_BAD("{" ENTRY("w", "5", "[1]", "[0,4]") "}", 4, "'w': \"dtype\" is not a string");
  ASSERT_BAD("{" ENTRY("w", "\"F8_E4M3\"", "[1]", "[0,1]") "}", 1,
             "tensor 'w': unsupported dtype 'F8_E4M3' (supported: F32, F16, BF16");
  /* Only safetensors codes are dtypes here, not the numpy names ec_dtype_parse also knows. */
  ASSERT_BAD("{" ENTRY("w", "\"float32\"", "[1]", "[0,4]") "}", 4, "unsupported dtype 'float32'");
  ASSERT_BAD("{" ENTRY("w", "\"f32\"", "[1]", "[0,4]") "}", 4, "unsupported dtype 'f32'");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "2", "[0,8]") "}", 8, "'w': \"shape\" is not an array");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "{}", "[0,8]") "}", 8, "\"shape\" is not an array");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2,-1]", "[0,8]") "}", 8,
             "tensor 'w': shape entry 1 is not a non-negative integer");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2.5]", "[0,8]") "}", 8, "shape entry 0 is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[\"2\"]", "[0,8]") "}", 8, "shape entry 0 is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[null]", "[0,8]") "}", 8, "shape entry 0 is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[1e300]", "[0,8]") "}", 8, "shape entry 0 is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
             "'w': shape has 9 dimensions, more than the 8 supported");
  ASSERT_BAD("{" ENTRY("w", "\"U8\"", "[4294967296,4294967296,0]", "[0,0]") "}", 0,
             "'w': shape [4294967296, 4294967296, 0] is impossibly large");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "\"0,8\"") "}", 8,
             "'w': \"data_offsets\" is not [begin, end] with non-negative integers");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[0]") "}", 8, "\"data_offsets\" is not [begin");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[0,8,16]") "}", 16, "\"data_offsets\" is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[-8,0]") "}", 8, "\"data_offsets\" is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[0,8.5]") "}", 16, "\"data_offsets\" is not");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[8,0]") "}", 8,
             "tensor 'w': data_offsets [8, 0] end before they begin");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[0,8]") "}", 7,
             "tensor 'w': data_offsets [0, 8] reach past the end of the 7-byte data buffer");
  ASSERT_BAD("{" ENTRY("w", "\"F32\"", "[2]", "[0,6]") "}", 8,
             "tensor 'w': shape [2] of F32 needs 8 bytes but data_offsets [0, 6] hold 6");
  ASSERT_BAD("{" ENTRY("w", "\"F16\"", "[]", "[0,4]") "}", 8, "shape [] of F16 needs 2 bytes");
  ASSERT_BAD("{" ENTRY("w", "\"F16\"", "[0]", "[0,2]") "}", 8, "needs 0 bytes");
}

TEST(reader_rejects_inconsistent_tensors) {
  ASSERT_BAD(
      "{" ENTRY("a", "\"F32\"", "[2]", "[0,8]") "," ENTRY("b", "\"F32\"", "[2]", "[4,12]") "}", 12,
      "tensors 'a' [0, 8] and 'b' [4, 12] overlap in the data buffer");
  ASSERT_BAD(
      "{" ENTRY("a", "\"F32\"", "[4]", "[0,16]") "," ENTRY("b", "\"U8\"", "[1]", "[15,16]") "}", 16,
      "tensors 'a' [0, 16] and 'b' [15, 16] overlap");
  ASSERT_BAD(
      "{" ENTRY("a", "\"F32\"", "[2]", "[0,8]") "," ENTRY("b", "\"F32\"", "[2]", "[0,8]") "}", 8,
      "overlap");
  ASSERT_BAD(
      "{" ENTRY("x", "\"F32\"", "[2]", "[0,8]") "," ENTRY("x", "\"F32\"", "[2]", "[8,16]") "}", 16,
      "duplicate tensor name 'x'");
  ASSERT_BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\" entry");
  ASSERT_BAD("{\"__metadata__\":[\"a\"]}", 0, "\"__metadata__\" is not a JSON object");
  ASSERT_BAD("{\"__metadata__\":{\"epoch\":3}}", 0,
             "\"__metadata__\" value for key 'epoch' is not a string");
  ASSERT_BAD("{\"__metadata__\":{\"k\":null}}", 0, "value for key 'k' is not a string");
  ASSERT_BAD("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
             "duplicate \"__metadata__\" key 'k'");

  /* Valid though unusual: gaps, trailing bytes, a zero-size tensor inside another's range, and
   * entries out of offset order (the reader lists them in offset order). */
  const char *path =
      raw_file("odd.safetensors",
               "{" ENTRY("b", "\"U8\"", "[2]", "[10,12]")             /* gap before it */
               "," ENTRY("z", "\"F32\"", "[0]", "[5,5]")              /* inside a's range */
               "," ENTRY("a", "\"F32\"", "[2]", "[2,10]") "}", 20); /* gap before, bytes after */
  ASSERT_TRUE(path != NULL);
  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  ASSERT_EQ_INT(f.ntensors, 3);
  ASSERT_STR_EQ(f.tensors[0].name, "a");
  ASSERT_STR_EQ(f.tensors[1].name, "z");
  ASSERT_STR_EQ(f.tensors[2].name, "b");
  ASSERT_EQ_INT(ec_st_find(&f, "b"), 2);
  ASSERT_EQ_INT(ec_st_find(&f, "z"), 1);
  ec_st_close(&f);
}

TEST(reader_system_errors) {
  ec_st_file f;
  ASSERT_STATUS(ec_st_open(&f, test_path("does-not-exist.safetensors")), EC_ENOENT,
                "does-not-exist.safetensors: cannot open: No such file or directory");
  ASSERT_STATUS(ec_st_open(&f, test_tmpdir()), EC_EFORMAT, "not a regular file");

  /* A zeroed struct closes without touching descriptor 0, and so does a failed open. */
  int stdin_open = fcntl(0, F_GETFD) != -1;
  ec_st_file z = {0};
  ec_st_close(&z);
  ec_st_close(&f);
  ASSERT_EQ_INT(fcntl(0, F_GETFD) != -1, stdin_open);
  ec_st_writer w = {0};
  ec_st_writer_free(&w);
  ASSERT_EQ_INT(fcntl(0, F_GETFD) != -1, stdin_open);
}

TEST(truncated_after_open) {
  const char *path = test_path("trunc.safetensors");
  float v[1000] = {0};
  v[10] = 5.0f;
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "big", EC_F32, SHAPE(1000)));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 1000));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, path));
  ASSERT_EQ_INT(truncate(path, (off_t)(f.data_start + 100)), 0);
  float out[1000];
  ASSERT_OK(ec_st_read(&f, 0, EC_F32, out, 0, 25)); /* still there */
  ASSERT_NEAR(out[10], 5.0, 0);
  ASSERT_STATUS(ec_st_read(&f, 0, EC_F32, out, 0, 1000), EC_EFORMAT,
                "unexpected end of file at byte");
  ASSERT_CONTAINS(ec_errmsg(), "trunc.safetensors");
  ASSERT_CONTAINS(ec_errmsg(), "tensor 'big'");
  ASSERT_CONTAINS(ec_errmsg(), "truncated while open");
  ASSERT_STATUS(ec_st_read(&f, 0, EC_F16, out, 500, 10), EC_EFORMAT, "unexpected end of file");
  ec_st_close(&f);
}

/* Adds "x" (float32, 2 elements) and begins writing `name`. */
static ec_status start(ec_st_writer *w, const char *name) {
  ec_status st = ec_st_writer_add(w, "x", EC_F32, SHAPE(2));
  return st ? st : ec_st_writer_begin(w, test_path(name));
}

TEST(writer_errors) {
  ec_st_writer w = {0};
  ASSERT_STATUS(ec_st_writer_add(&w, "", EC_F32, SHAPE(1)), EC_EINVAL, "empty tensor name");
  ASSERT_OK(ec_st_writer_add(&w, "x", EC_F32, SHAPE(1)));
  ASSERT_STATUS(ec_st_writer_add(&w, "x", EC_F16, SHAPE(2)), EC_EINVAL,
                "duplicate tensor name 'x'");
  ASSERT_STATUS(ec_st_writer_add(&w, "__metadata__", EC_F32, SHAPE(1)), EC_EINVAL, "reserved");
  ASSERT_STATUS(ec_st_writer_add(&w, "neg", EC_F32, SHAPE(3, -1)), EC_EINVAL,
                "tensor 'neg': negative dimension in shape [3, -1]");
  ASSERT_STATUS(ec_st_writer_add(&w, "a\xe2\x82", EC_F32, SHAPE(1)), EC_EINVAL, "not valid UTF-8");
  ASSERT_STATUS(ec_st_writer_add(&w, "huge", EC_F64, SHAPE(INT64_C(1) << 40, 1 << 20)), EC_EINVAL,
                "too large");
  ec_st_writer_free(&w);

  ASSERT_STATUS(start(&w, "no-such-dir/x.safetensors"), EC_ENOENT,
                "no-such-dir/x.safetensors: cannot create: No such file or directory");
  ec_st_writer_free(&w);

  float v[3] = {1, 2, 3};
  double d[2] = {1, 2};
  int32_t i[2] = {1, 2};
  ASSERT_OK(start(&w, "w1.safetensors"));
  ASSERT_STATUS(ec_st_writer_write(&w, EC_F32, v, 3), EC_EINVAL,
                "w1.safetensors: tensor 'x': 3 elements written but only 2 remain");
  ec_st_writer_free(&w);

  ASSERT_OK(start(&w, "w2.safetensors"));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 1));
  ASSERT_STATUS(ec_st_writer_write(&w, EC_F32, v, 2), EC_EINVAL, "only 1 remain");
  ec_st_writer_free(&w);

  ASSERT_OK(start(&w, "w3.safetensors"));
  ASSERT_STATUS(ec_st_writer_write(&w, EC_I32, i, 2), EC_EINVAL,
                "tensor 'x' is stored as float32; int32 data cannot be converted to it");
  ec_st_writer_free(&w);

  ASSERT_OK(ec_st_writer_add(&w, "h", EC_F16, SHAPE(2)));
  ASSERT_OK(ec_st_writer_begin(&w, test_path("w4.safetensors")));
  ASSERT_STATUS(ec_st_writer_write(&w, EC_F64, d, 2), EC_EINVAL,
                "float64 data cannot be converted to it");
  ec_st_writer_free(&w);

  ASSERT_OK(start(&w, "w5.safetensors"));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 1));
  ASSERT_STATUS(ec_st_writer_finish(&w), EC_EINVAL,
                "w5.safetensors: tensor 'x' got 1 of its 2 elements; the file is incomplete");
  ec_st_writer_free(&w);

  ASSERT_OK(start(&w, "w6.safetensors"));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, v, 0)); /* nothing is fine */
  ASSERT_STATUS(ec_st_writer_write(&w, EC_F32, v, 1), EC_EINVAL,
                "1 elements written after the last tensor");
  ec_st_writer_free(&w);

  /* The incomplete files stay for the caller to remove. */
  struct stat sb;
  ASSERT_EQ_INT(stat(test_path("w5.safetensors"), &sb), 0);
}

TEST(disk_full_is_enospc) {
  if (access("/dev/full", W_OK) != 0) TEST_SKIP("no /dev/full");
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "x", EC_F32, SHAPE(2)));
  ASSERT_STATUS(ec_st_writer_begin(&w, "/dev/full"), EC_ENOSPC,
                "/dev/full: write: No space left on device");
  ec_st_writer_free(&w);
}

/* In a child whose file size limit is 4096 bytes: writing a 400 kB tensor, directly and through
 * the conversion path, fails with EC_ENOSPC naming the file. Returns the child's exit code. */
static int fsize_child(void) {
  signal(SIGXFSZ, SIG_IGN); /* the default action would kill the process instead of EFBIG */
  struct rlimit rl = {4096, 4096};
  if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 3;
  enum { N = 100000 };
  float *data = calloc(N, sizeof *data);
  if (!data) return 4;
  int failures = 0;
  for (int conv = 0; conv < 2; conv++) {
    const char *path = test_path(conv ? "fsize-f16.safetensors" : "fsize-f32.safetensors");
    ec_st_writer w = {0};
    ec_status st = ec_st_writer_add(&w, "big", conv ? EC_F16 : EC_F32, SHAPE(N));
    if (!st) st = ec_st_writer_begin(&w, path);
    if (!st) st = ec_st_writer_write(&w, EC_F32, data, N);
    if (st != EC_ENOSPC || !strstr(ec_errmsg(), path) || !strstr(ec_errmsg(), "File too large")) {
      printf("#   child: %s: %s\n", ec_status_name(st), ec_errmsg());
      failures++;
    }
    ec_st_writer_free(&w);
  }
  free(data);
  fflush(stdout);
  return failures ? 1 : 0;
}

TEST(file_size_limit_is_enospc) {
  test_tmpdir(); /* created by the parent, so the child's exit does not race its removal */
  fflush(stdout);
  pid_t pid = fork();
  ASSERT_TRUE(pid >= 0);
  if (pid == 0) _exit(fsize_child()); /* _exit: the atexit handler would remove the tmpdir */
  int ws = 0;
  ASSERT_EQ_INT(waitpid(pid, &ws, 0), pid);
  ASSERT_TRUE(WIFEXITED(ws));
  ASSERT_EQ_INT(WEXITSTATUS(ws), 0);
}

/* Writes a file with metadata and enough tensors to grow every array, then reads it back and
 * checks it. Every failure path cleans up, so that running this with each allocation failing in
 * turn finds crashes and (under valgrind) leaks. */
static ec_status write_then_read(const char *path) {
  ec_st_writer w = {0};
  ec_st_file f = {0};
  ec_status st = EC_OK;
  float v[4] = {1.0f, 2.0f, 3.0f, 4.0f}, out[4];
  char name[32];
  for (int i = 0; i < 10 && !st; i++) {
    snprintf(name, sizeof name, "key%d", i);
    st = ec_st_writer_meta(&w, name, "value");
  }
  for (int i = 0; i < 20 && !st; i++) {
    snprintf(name, sizeof name, "t%02d", i);
    st = ec_st_writer_add(&w, name, i % 2 ? EC_F16 : EC_F32, SHAPE(4));
  }
  if (!st) st = ec_st_writer_begin(&w, path);
  for (int i = 0; i < 20 && !st; i++) st = ec_st_writer_write(&w, EC_F32, v, 4);
  if (!st) st = ec_st_writer_finish(&w);
  if (!st) st = ec_st_open(&f, path);
  for (int i = 0; i < 20 && !st; i++) {
    st = ec_st_read(&f, i, i % 2 ? EC_F64 : EC_F32, out, 0, 4);
    if (!st && i % 2 == 0 && memcmp(out, v, sizeof v)) st = ec_err(EC_EINVAL, "wrong data");
  }
  if (!st && (f.nmeta != 10 || !ec_st_meta(&f, "key9"))) st = ec_err(EC_EINVAL, "wrong metadata");
  ec_st_writer_free(&w);
  ec_st_close(&f);
  return st;
}

TEST(allocation_failures) {
  const char *path = test_path("alloc.safetensors");
  long n;
  for (n = 0;; n++) {
    ASSERT_TRUE(n < 10000);
    ec_alloc_fail_after(n);
    ec_status st = write_then_read(path);
    ec_alloc_fail_after(-1);
    if (st == EC_OK) break;
    if (st != EC_ENOMEM) {
      test_fail_(__FILE__, __LINE__, "n=%ld: %s: %s", n, ec_status_name(st), ec_errmsg());
      return;
    }
    ASSERT_CONTAINS(ec_errmsg(), "out of memory");
  }
  ASSERT_TRUE(n > 40); /* every allocation on the way was made to fail once */
}

/* The Python half of the interop test: parses the C writer's file with struct and json only. */
static const char check_py[] =
    "import json, struct, sys\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "assert (8 + n) % 8 == 0, n\n"
    "hdr = json.loads(raw[8:8 + n].decode('utf-8'))\n"
    "data = raw[8 + n:]\n"
    "meta = hdr.pop('__metadata__')\n"
    "assert meta == {'format': 'pt', 'note': 'a \"b\"\\nc'}, meta\n"
    "fmt = {'F32': 'f', 'F16': 'e', 'BF16': 'H', 'F64': 'd', 'I32': 'i', 'I64': 'q', 'U8': 'B'}\n"
    "def values(t):\n"
    "    b, e = t['data_offsets']\n"
    "    k = (e - b) // struct.calcsize(fmt[t['dtype']])\n"
    "    v = struct.unpack('<%d%s' % (k, fmt[t['dtype']]), data[b:e])\n"
    "    if t['dtype'] == 'BF16':\n"
    "        v = [struct.unpack('<f', struct.pack('<I', x << 16))[0] for x in v]\n"
    "    return list(v)\n"
    "want = {\n"
    "    'w': ('F16', [2, 3], [0.5, -1.0, 2.0, 3.25, -0.125, 100.0]),\n"
    "    'b': ('BF16', [2], [1.5, -3.0]),\n"
    "    'f': ('F32', [], [3.5]),\n"
    "    'e': ('F32', [0], []),\n"
    "    'd': ('F64', [2], [1e-300, 2.5]),\n"
    "    'i': ('I64', [3], [-1, 1 << 40, 7]),\n"
    "    'u': ('U8', [3], [0, 255, 9]),\n"
    "    'blk.\"q\"/\\u00e9': ('I32', [1], [-5]),\n"
    "}\n"
    "assert list(hdr) == list(want), list(hdr)\n"
    "end = 0\n"
    "for name, (dt, shape, vals) in want.items():\n"
    "    t = hdr[name]\n"
    "    assert t['dtype'] == dt and t['shape'] == shape, (name, t)\n"
    "    assert t['data_offsets'][0] == end, (name, t, end)\n"
    "    end = t['data_offsets'][1]\n"
    "    assert values(t) == vals, (name, values(t))\n"
    "assert end == len(data), (end, len(data))\n";

/* Writes a file the way other tools do: json.dumps spacing, no padding, keys out of offset
 * order. */
static const char make_py[] =
    "import json, struct, sys\n"
    "hdr = {'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [8, 16]},\n"
    "       '__metadata__': {'x': 'y'},\n"
    "       'a': {'dtype': 'I32', 'shape': [1, 2], 'data_offsets': [0, 8]}}\n"
    "h = json.dumps(hdr).encode()\n"
    "data = struct.pack('<2i', 7, -8) + struct.pack('<2f', 0.25, -4.0)\n"
    "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + data)\n";

TEST(python_interop) {
  if (access("/usr/bin/python3", X_OK) != 0) TEST_SKIP("/usr/bin/python3 not found");
  const char *path = test_path("interop.safetensors");
  float w16[6] = {0.5f, -1.0f, 2.0f, 3.25f, -0.125f, 100.0f}, bf[2] = {1.5f, -3.0f}, s = 3.5f;
  double d[2] = {1e-300, 2.5};
  int64_t i64[3] = {-1, INT64_C(1) << 40, 7};
  uint8_t u8[3] = {0, 255, 9};
  int32_t i32 = -5;
  ec_st_writer w = {0};
  ASSERT_OK(ec_st_writer_add(&w, "w", EC_F16, SHAPE(2, 3)));
  ASSERT_OK(ec_st_writer_add(&w, "b", EC_BF16, SHAPE(2)));
  ASSERT_OK(ec_st_writer_add(&w, "f", EC_F32, SCALAR));
  ASSERT_OK(ec_st_writer_add(&w, "e", EC_F32, SHAPE(0)));
  ASSERT_OK(ec_st_writer_add(&w, "d", EC_F64, SHAPE(2)));
  ASSERT_OK(ec_st_writer_add(&w, "i", EC_I64, SHAPE(3)));
  ASSERT_OK(ec_st_writer_add(&w, "u", EC_U8, SHAPE(3)));
  ASSERT_OK(ec_st_writer_add(&w, "blk.\"q\"/\xc3\xa9", EC_I32, SHAPE(1)));
  ASSERT_OK(ec_st_writer_meta(&w, "format", "pt"));
  ASSERT_OK(ec_st_writer_meta(&w, "note", "a \"b\"\nc"));
  ASSERT_OK(ec_st_writer_begin(&w, path));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, w16, 6));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, bf, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_F32, &s, 1));
  ASSERT_OK(ec_st_writer_write(&w, EC_F64, d, 2));
  ASSERT_OK(ec_st_writer_write(&w, EC_I64, i64, 3));
  ASSERT_OK(ec_st_writer_write(&w, EC_U8, u8, 3));
  ASSERT_OK(ec_st_writer_write(&w, EC_I32, &i32, 1));
  ASSERT_OK(ec_st_writer_finish(&w));
  ec_st_writer_free(&w);

  const char *check = test_path("check.py"), *make = test_path("make.py");
  ASSERT_EQ_INT(test_write_file(check, check_py, strlen(check_py)), 0);
  ASSERT_EQ_INT(test_write_file(make, make_py, strlen(make_py)), 0);
  ASSERT_EQ_INT(test_system("/usr/bin/python3 '%s' '%s'", check, path), 0);

  const char *theirs = test_path("python.safetensors");
  ASSERT_EQ_INT(test_system("/usr/bin/python3 '%s' '%s'", make, theirs), 0);
  ec_st_file f;
  ASSERT_OK(ec_st_open(&f, theirs));
  ASSERT_EQ_INT(f.ntensors, 2);
  ASSERT_STR_EQ(f.tensors[0].name, "a"); /* offset order, not header order */
  ASSERT_EQ_INT(f.tensors[0].dtype, EC_I32);
  ASSERT_TRUE(ec_shape_equal(&f.tensors[0].shape, &(ec_shape){2, {1, 2}}));
  ASSERT_STR_EQ(ec_st_meta(&f, "x"), "y");
  int32_t gi[2];
  double gd[2];
  ASSERT_OK(ec_st_read(&f, 0, EC_I32, gi, 0, 2));
  ASSERT_OK(ec_st_read(&f, ec_st_find(&f, "b"), EC_F64, gd, 0, 2));
  ec_st_close(&f);
  ASSERT_EQ_INT(gi[0], 7);
  ASSERT_EQ_INT(gi[1], -8);
  ASSERT_NEAR(gd[0], 0.25, 0);
  ASSERT_NEAR(gd[1], -4.0, 0);
}

TEST_MAIN(roundtrip_all_dtypes, converted_reads, slices, large_converted, metadata, exact_bytes,
          reader_rejects_bad_length, reader_rejects_bad_json, reader_rejects_bad_entries,
          reader_rejects_inconsistent_tensors, reader_system_errors, truncated_after_open,
          writer_errors, disk_full_is_enospc, file_size_limit_is_enospc, allocation_failures,
          python_interop)
