/* Is there a usable GPU? One answer for every program and test.
 *
 * Any CUDA error counts as "no GPU": on a machine with the toolkit but no driver,
 * cudaGetDeviceCount returns cudaErrorInsufficientDriver, not cudaErrorNoDevice. Builds without
 * CUDA (-Dcuda=disabled) always answer 0. GPU tests use this to report SKIP (exit 77), never a
 * silent pass. */
#ifndef EDM2C_CORE_GPU_H
#define EDM2C_CORE_GPU_H

#include <stddef.h>

/* Number of usable CUDA devices; when 0, `why` (if not NULL) says why. */
int ec_gpu_count(char *why, size_t size);

/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for device 0, or the reason there is none. */
void ec_gpu_describe(char *buf, size_t size);

#endif
