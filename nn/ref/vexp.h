/* Private to nn/ref: exp() for float32 written so that gcc vectorises the loops that call it
 * (libm's expf is one call per element, and the exp of softmax and mp_silu would then dominate
 * those ops). Cephes' expf: x = k·ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact
 * product), a degree-7 polynomial for e^r, and 2^k built in the exponent bits. Error <= 1 ulp
 * over the normal range (measured 0.7·2^-23 relative); the input is clamped to [-87, 88], so
 * results below 1.6e-38 come out as 1.6e-38 and above 1.65e38 as 1.65e38 (softmax and sigmoid
 * only add such values to 1 or divide by sums >= 1); NaN gives NaN. The loops vectorise only
 * with -fno-trapping-math (nn/meson.build), which lets gcc turn the clamps into selects. */
#ifndef EDM2C_NN_REF_VEXP_H
#define EDM2C_NN_REF_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float nn_ref_expf(float x) {
  float xc = x < 88.0f ? x : 88.0f; /* also maps NaN to 88: no NaN reaches the int conversion */
  xc = xc > -87.0f ? xc : -87.0f;
  /* k = round(x / ln2), by the 1.5·2^23 trick (round to nearest, no libm call) */
  const float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23; /* 2^k, k in [-126, 127] */
  float s;
  memcpy(&s, &bits, sizeof s);
  const float v = p * s;
  return x == x ? v : x;
}

#endif
