// Private to nn/cuda's .cu files: the grid-stride loop and the launch helper. Kernels index with
// size_t so that tensors of more than 2^31 elements work.
#ifndef EDM2C_NN_CUDA_COMMON_CUH
#define EDM2C_NN_CUDA_COMMON_CUH

#include "nn/cuda/kernels.h"

// for (i = this thread; i < n; i += all threads of the grid)
#define NN_CUDA_GRID_STRIDE(i, n)                                                                  \
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                          \
       i += (size_t)blockDim.x * gridDim.x)

// Launches kernel<<<blocks(n), NN_CUDA_THREADS, 0, stream>>>(args...) for n work items, nothing
// when n == 0, and returns cudaGetLastError() (a bad launch is reported here; a failure inside
// the kernel later, or at once with EDM2C_CUDA_SYNC=1, see nn/cuda/check.h).
#define NN_CUDA_LAUNCH_N(n, stream, kernel, ...)                                                   \
  do {                                                                                             \
    size_t nn_n_ = (n);                                                                            \
    if (nn_n_ == 0) return cudaSuccess;                                                            \
    kernel<<<nn_cuda_blocks(nn_n_, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, (stream)>>>(__VA_ARGS__); \
    return cudaGetLastError();                                                                     \
  } while (0)

#endif
