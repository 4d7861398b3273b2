/* binary16 and bfloat16 conversions; see half.h. Bit manipulation only, no FPU state. */
#include "half.h"

#include <string.h>

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t ec_float_to_half(float f) {
  uint32_t x = float_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) /* inf or NaN; keep NaN quiet and non-zero */
    return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x0200u | ((absx >> 13) & 0x3ffu) : 0));
  if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00u);
  if (absx < 0x38800000u) { /* below the smallest normal half (2^-14): subnormal or zero */
    if (absx < 0x33000000u) return sign; /* < 2^-25 rounds to zero (2^-25 itself ties to 0) */
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* value = mant * 2^(e-150); half subnormal unit = 2^-24 */
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  /* normal: rebias the exponent (127 -> 15), round the 13 dropped mantissa bits to even. The
   * carry of a mantissa overflow correctly bumps the exponent. */
  uint32_t h = ((absx - 0x38000000u) >> 13);
  uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

float ec_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  /* NaN comes out quiet (bit 22 set), as the hardware conversions do. */
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0));
  if (e == 0) {
    if (m == 0) return bits_float(sign);
    /* subnormal: m * 2^-24, exact in float */
    float v = (float)m * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* On x86-64 with F16C the array conversions use the hardware instructions, 8 values at a time;
 * they round exactly as the scalar code above (tests/unit/test_half.c checks both against each
 * other). Reading float16 snapshots was otherwise dominated by the scalar conversion. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

static int have_f16c(void) { return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"); }

__attribute__((target("avx,f16c"))) static size_t half_to_float_f16c(float *dst, const uint16_t *src,
                                                                      size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i))));
  return i;
}

__attribute__((target("avx,f16c"))) static size_t float_to_half_f16c(uint16_t *dst, const float *src,
                                                                      size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(void *)(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return i;
}
#endif

void ec_float_to_half_array(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (have_f16c()) i = float_to_half_f16c(dst, src, n);
#endif
  for (; i < n; i++) dst[i] = ec_float_to_half(src[i]);
}

void ec_half_to_float_array(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (have_f16c()) i = half_to_float_f16c(dst, src, n);
#endif
  for (; i < n; i++) dst[i] = ec_half_to_float(src[i]);
}

uint16_t ec_float_to_bf16(float f) {
  uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)((x + rounding) >> 16);
}

float ec_bf16_to_float(uint16_t h) { return bits_float((uint32_t)h << 16); }
