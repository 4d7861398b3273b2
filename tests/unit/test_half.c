/* core/half: binary16 and bfloat16 conversions against numpy's values and, exhaustively over
 * all 2^32 float bit patterns sampled, against the compiler's _Float16 (round to nearest even). */
#include <stdint.h>
#include <string.h>

#include "core/half.h"
#include "tests/test.h"

static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

TEST(numpy_reference_values) {
  /* (float, numpy float16 bits) computed with numpy 1.24 */
  static const struct {
    float f;
    uint16_t h;
  } ref[] = {
      {0.1f, 0x2e66},          {65519.0f, 0x7bff},        {65520.0f, 0x7c00},
      {2.9802322387695312e-08f, 0x0000}, {4.470348358154297e-08f, 0x0001},
      {5.960464477539063e-08f, 0x0001},  {8.940696716308594e-08f, 0x0002},
      {0.3333333333333333f, 0x3555},     {-2.5e-06f, 0x802a},
      {6.1e-05f, 0x03ff},      {1e-08f, 0x0000},          {1.0f, 0x3c00},
      {-2.0f, 0xc000},         {0.0f, 0x0000},            {-0.0f, 0x8000},
  };
  for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) ASSERT_EQ_INT(ec_float_to_half(ref[i].f), ref[i].h);
}

TEST(specials) {
  ASSERT_EQ_INT(ec_float_to_half(INFINITY), 0x7c00);
  ASSERT_EQ_INT(ec_float_to_half(-INFINITY), 0xfc00);
  uint16_t n = ec_float_to_half(NAN);
  ASSERT_TRUE((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
  ASSERT_TRUE(isnan(ec_half_to_float(n)));
  ASSERT_TRUE(isinf(ec_half_to_float(0x7c00)));
  ASSERT_EQ_INT(ec_float_to_half(1e10f), 0x7c00);
}

TEST(every_half_roundtrips_exactly) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = ec_half_to_float((uint16_t)h);
    if (isnan(f)) continue;
    ASSERT_EQ_INT(ec_float_to_half(f), h);
  }
}

#ifdef __FLT16_MAX__
__extension__ typedef _Float16 f16_t; /* the compiler's own conversion, an independent reference */

TEST(matches_compiler_float16_on_many_floats) {
  /* every float whose low 11 mantissa bits follow a stride: all exponents, both signs, ties */
  for (uint64_t u = 0; u < (1ull << 32); u += 2049) {
    float f = bits_f((uint32_t)u);
    if (isnan(f)) continue;
    f16_t r = (f16_t)f;
    uint16_t rb;
    memcpy(&rb, &r, 2);
    if (ec_float_to_half(f) != rb) {
      ASSERT_EQ_INT(ec_float_to_half(f), rb);
    }
    float back = (float)r;
    ASSERT_TRUE(memcmp(&back, &(float){ec_half_to_float(rb)}, 4) == 0);
  }
  /* exact ties between half neighbours, normal and subnormal */
  for (uint32_t h = 0; h < 0x7bff; h++) {
    float a = ec_half_to_float((uint16_t)h), b = ec_half_to_float((uint16_t)(h + 1));
    float mid = (float)(((double)a + (double)b) / 2);
    f16_t r = (f16_t)mid;
    uint16_t rb;
    memcpy(&rb, &r, 2);
    ASSERT_EQ_INT(ec_float_to_half(mid), rb);
    ASSERT_EQ_INT(rb & 1, 0); /* ties go to even */
  }
}
#else
TEST(matches_compiler_float16_on_many_floats) { TEST_SKIP("compiler has no _Float16"); }
#endif

TEST(bfloat16) {
  ASSERT_EQ_INT(ec_float_to_bf16(1.0f), 0x3f80);
  ASSERT_EQ_INT(ec_float_to_bf16(bits_f(0x3f808000u)), 0x3f80); /* tie to even */
  ASSERT_EQ_INT(ec_float_to_bf16(bits_f(0x3f818000u)), 0x3f82); /* tie to even, up */
  ASSERT_EQ_INT(ec_float_to_bf16(bits_f(0x3f808001u)), 0x3f81);
  ASSERT_TRUE(isnan(ec_bf16_to_float(ec_float_to_bf16(NAN))));
  for (uint32_t h = 0; h < 65536; h++) {
    float f = ec_bf16_to_float((uint16_t)h);
    if (!isnan(f)) ASSERT_EQ_INT(ec_float_to_bf16(f), h);
  }
}

TEST(arrays) {
  float src[5] = {1, -2, 0.5f, 65504, 1e-7f}, back[5];
  uint16_t h[5];
  ec_float_to_half_array(h, src, 5);
  ec_half_to_float_array(back, h, 5);
  for (int i = 0; i < 4; i++) ASSERT_EQ_INT(back[i] == src[i], 1);
  ASSERT_NEAR(back[4], 1e-7, 6e-8);
}

/* The array functions (F16C hardware on x86-64 when present) agree bit for bit with the scalar
 * reference, including NaN (both quiet) and odd lengths that exercise the scalar tail. */
TEST(arrays_match_scalar_everywhere) {
  enum { N = 65536 + 5 };
  static uint16_t h[N], h2[N];
  static float f[N], g[N];
  for (uint32_t v = 0; v < N; v++) h[v] = (uint16_t)(v * 40503u);
  ec_half_to_float_array(f, h, N);
  for (uint32_t v = 0; v < N; v++) {
    float r = ec_half_to_float(h[v]);
    if (memcmp(&r, &f[v], 4)) ASSERT_EQ_INT(h[v], -1);
  }
  for (uint32_t v = 0; v < N; v++) g[v] = bits_f((uint32_t)v * 65521u + 12345u * v * v);
  ec_float_to_half_array(h2, g, N);
  for (uint32_t v = 0; v < N; v++)
    if (h2[v] != ec_float_to_half(g[v])) ASSERT_EQ_INT(h2[v], ec_float_to_half(g[v]));
  /* in place, widening as h5io does: raw halves in the upper half of the float buffer */
  for (size_t n = 1; n < 40; n++) {
    float buf[40];
    uint16_t *raw = (uint16_t *)(void *)((char *)buf + 2 * n);
    for (size_t i = 0; i < n; i++) raw[i] = (uint16_t)(0x3c00 + i);
    ec_half_to_float_array(buf, raw, n);
    for (size_t i = 0; i < n; i++) ASSERT_TRUE(buf[i] == ec_half_to_float((uint16_t)(0x3c00 + i)));
  }
}

TEST_MAIN(numpy_reference_values, arrays_match_scalar_everywhere, specials, every_half_roundtrips_exactly,
          matches_compiler_float16_on_many_floats, bfloat16, arrays)
