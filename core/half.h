/* IEEE 754 binary16 ("half", numpy float16) conversions on the CPU.
 *
 * float -> half rounds to nearest, ties to even, as numpy, PyTorch and CUDA's __float2half_rn
 * do; overflow gives ±inf; NaN stays NaN (quiet, sign kept). half -> float is exact. These are
 * the reference for the CUDA cast kernels and the conversion used when reading float16
 * snapshots (faster than HDF5's generic soft conversion). */
#ifndef EDM2C_CORE_HALF_H
#define EDM2C_CORE_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t ec_float_to_half(float f);
float ec_half_to_float(uint16_t h);

void ec_float_to_half_array(uint16_t *dst, const float *src, size_t n);
void ec_half_to_float_array(float *dst, const uint16_t *src, size_t n);

/* bfloat16 (upper 16 bits of a float, round to nearest even), for safetensors BF16 tensors. */
uint16_t ec_float_to_bf16(float f);
float ec_bf16_to_float(uint16_t h);

#endif
