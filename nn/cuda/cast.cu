// float32 <-> float16 cast kernels (nn/cuda/ops.h): core/half.c's integer code, ported line for
// line, so the results equal the CPU reference bit for bit, NaN payloads included (the hardware
// conversion __float2half_rn rounds the same way but returns one canonical NaN). Storage is
// uint16_t, as on the CPU. Keep in step with core/half.c.
#include <stdint.h>

#include "nn/cuda/common.cuh"

static __device__ __forceinline__ uint16_t nn_cuda_float_to_half(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) // inf or NaN; keep NaN quiet and non-zero
    return (uint16_t)(sign | 0x7c00u |
                      (absx > 0x7f800000u ? 0x0200u | ((absx >> 13) & 0x3ffu) : 0));
  if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return (uint16_t)(sign | 0x7c00u);
  if (absx < 0x38800000u) { // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000u) return sign; // < 2^-25 rounds to zero (2^-25 itself ties to 0)
    const uint32_t e = absx >> 23;
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t h = ((absx - 0x38000000u) >> 13); // normal: rebias, round 13 bits to even
  const uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

static __device__ __forceinline__ float nn_cuda_half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0));
  if (e == 0) {
    if (m == 0) return __uint_as_float(sign);
    const float v = (float)m * (1.0f / 16777216.0f); // subnormal: m·2^-24, exact
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

static __global__ void float_to_half_kernel(uint16_t *dst, const float *src, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) dst[i] = nn_cuda_float_to_half(src[i]);
}

static __global__ void half_to_float_kernel(float *dst, const uint16_t *src, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) dst[i] = nn_cuda_half_to_float(src[i]);
}

extern "C" {

cudaError_t nn_cuda_launch_float_to_half(cudaStream_t s, uint16_t *dst, const float *src,
                                         size_t n) {
  NN_CUDA_LAUNCH_N(n, s, float_to_half_kernel, dst, src, n);
}

cudaError_t nn_cuda_launch_half_to_float(cudaStream_t s, float *dst, const uint16_t *src,
                                         size_t n) {
  NN_CUDA_LAUNCH_N(n, s, half_to_float_kernel, dst, src, n);
}

} // extern "C"
