// A first kernel for the GPU test suite: float32 -> float16 -> float32 casts on the device, to be
// compared bit for bit with core/half.c (the CPU reference). It proves that the nvcc toolchain,
// the architecture flags and the runtime work end to end on a real GPU.
#include <cuda_fp16.h>
#include <stdint.h>

static __global__ void cast_roundtrip_kernel(const float *x, uint16_t *h, float *y, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  __half v = __float2half_rn(x[i]);
  h[i] = __half_as_ushort(v);
  y[i] = __half2float(v);
}

extern "C" int smoke_cast_roundtrip(const float *x, uint16_t *h, float *y, int64_t n) {
  int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  cast_roundtrip_kernel<<<(unsigned)blocks, threads>>>(x, h, y, n);
  return (int)cudaGetLastError();
}
