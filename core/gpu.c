/* GPU detection; see gpu.h. Host-side CUDA runtime calls are plain C. */
#include "gpu.h"

#include <stdio.h>

#include "edm2c_config.h"

#if EDM2C_HAVE_CUDA
#include <cuda_runtime_api.h>

int ec_gpu_count(char *why, size_t size) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) snprintf(why, size, "no usable CUDA device (%s)", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0 && why) snprintf(why, size, "no CUDA device");
  return n;
}

void ec_gpu_describe(char *buf, size_t size) {
  struct cudaDeviceProp p;
  if (!ec_gpu_count(buf, size)) return;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
    snprintf(buf, size, "device 0 (properties unavailable)");
    return;
  }
  snprintf(buf, size, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
           (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
}
#else
int ec_gpu_count(char *why, size_t size) {
  if (why) snprintf(why, size, "built without CUDA (-Dcuda=disabled)");
  return 0;
}

void ec_gpu_describe(char *buf, size_t size) { ec_gpu_count(buf, size); }
#endif
