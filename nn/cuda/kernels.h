/* Private to nn/cuda: the kernel launchers of act.cu, norm.cu and cast.cu, called by the plain-C
 * `_cuda` ops of ops.c. Each launches one kernel on `stream` (nothing when there is no work) and
 * returns cudaGetLastError(). Scalars derived from the op's double arguments (t, limit, alpha,
 * mp_cat's weights) are computed by the caller exactly as the `_ref` form computes them and come
 * in already rounded to float; `a` of pixel norm is sqrt(1/C) in double, as in nn/ref. Pointers
 * are device pointers. Included by C and by CUDA C++. */
#ifndef EDM2C_NN_CUDA_KERNELS_H
#define EDM2C_NN_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* act.cu */
cudaError_t nn_cuda_launch_mp_silu_fwd(cudaStream_t s, float *y, const float *x, size_t n);
cudaError_t nn_cuda_launch_mp_silu_bwd(cudaStream_t s, float *dx, const float *dy, const float *x,
                                       size_t n);
/* y = (a + t·(b - a)) / s when lower_half (t < 0.5), else (b - (b - a)·omt) / s. */
cudaError_t nn_cuda_launch_mp_sum_fwd(cudaStream_t s, float *y, const float *a, const float *b,
                                      float t, float omt, float div, int lower_half, size_t n);
/* da = dy·ca, db = dy·cb; either may be NULL (not both). */
cudaError_t nn_cuda_launch_mp_sum_bwd(cudaStream_t s, float *da, float *db, const float *dy,
                                      float ca, float cb, size_t n);
/* y per image: na = Ca·L elements wa·a, then nb = Cb·L elements wb·b. */
cudaError_t nn_cuda_launch_mp_cat_fwd(cudaStream_t s, float *y, const float *a, const float *b,
                                      float wa, float wb, size_t N, size_t na, size_t nb);
/* The transpose; da or db may be NULL (not both). */
cudaError_t nn_cuda_launch_mp_cat_bwd(cudaStream_t s, float *da, float *db, const float *dy,
                                      float wa, float wb, size_t N, size_t na, size_t nb);
cudaError_t nn_cuda_launch_clip_fwd(cudaStream_t s, float *y, const float *x, float lo, float hi,
                                    size_t n);
cudaError_t nn_cuda_launch_clip_bwd(cudaStream_t s, float *dx, const float *dy, const float *y,
                                    float hi, size_t n);
/* rows = N·C rows of L elements; s per row. */
cudaError_t nn_cuda_launch_modulate_fwd(cudaStream_t st, float *y, const float *x, const float *s,
                                        size_t rows, size_t L);
cudaError_t nn_cuda_launch_modulate_bwd_dx(cudaStream_t st, float *dx, const float *dy,
                                           const float *s, size_t rows, size_t L);
/* ds[r] = Σ_l dy·x in double, in the order of nn/ref/reduce.inc's dot_d (bitwise the same). */
cudaError_t nn_cuda_launch_modulate_bwd_ds(cudaStream_t st, float *ds, const float *dy,
                                           const float *x, size_t rows, size_t L);
/* nx = C·L elements per image of x; y has nx + L per image. */
cudaError_t nn_cuda_launch_append_ones_fwd(cudaStream_t s, float *y, const float *x, size_t N,
                                           size_t nx, size_t L);
cudaError_t nn_cuda_launch_append_ones_bwd(cudaStream_t s, float *dx, const float *dy, size_t N,
                                           size_t nx, size_t L);
/* b and z both NULL: y = a·x. */
cudaError_t nn_cuda_launch_rows_axpby(cudaStream_t s, float *y, const float *a, const float *x,
                                      const float *b, const float *z, size_t R, size_t M);
cudaError_t nn_cuda_launch_scale(cudaStream_t s, float *y, const float *x, float a, size_t n);
cudaError_t nn_cuda_launch_acc(cudaStream_t s, float *y, const float *x, size_t n);

/* norm.cu: one thread per pixel (n, l), channels in order, sums in double. */
cudaError_t nn_cuda_launch_pixelnorm_fwd(cudaStream_t s, float *y, const float *x, size_t N,
                                         size_t C, size_t L, double a);
cudaError_t nn_cuda_launch_pixelnorm_bwd(cudaStream_t s, float *dx, const float *dy,
                                         const float *x, size_t N, size_t C, size_t L, double a);

/* cast.cu: core/half.c's conversions, bit for bit (NaN payloads included). */
cudaError_t nn_cuda_launch_float_to_half(cudaStream_t s, uint16_t *dst, const float *src, size_t n);
cudaError_t nn_cuda_launch_half_to_float(cudaStream_t s, float *dst, const uint16_t *src, size_t n);

#ifdef __cplusplus
}
#endif

/* Launch geometry shared by the .cu files: grid-stride loops of NN_CUDA_THREADS threads per
 * block, at most NN_CUDA_MAX_BLOCKS blocks (the loop covers the rest, and n > 4096·256 takes that
 * path in nn-check). */
#define NN_CUDA_THREADS 256u
#define NN_CUDA_MAX_BLOCKS 4096u

static inline unsigned nn_cuda_blocks(size_t n, unsigned threads) {
  size_t b = (n + threads - 1) / threads;
  return b > NN_CUDA_MAX_BLOCKS ? NN_CUDA_MAX_BLOCKS : (unsigned)b;
}

#endif
