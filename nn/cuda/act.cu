// Kernels of nn/act.h's CUDA forms (nn/cuda/ops.h). Each computes the same IEEE float32
// operations in the same order as nn/ref/act.inc: this file is compiled with --fmad=false (no
// contraction into FMA, which gcc does not do under -std=c11 either), division is IEEE
// (nvcc's default -prec-div=true), and no fast-math, so the results are expected to equal the
// reference bit for bit. Scalars come in computed by the host exactly as the reference computes
// them (see kernels.h).
#include <stdint.h>

#include "nn/act.h"
#include "nn/cuda/common.cuh"

// nn/ref/vexp.h's expf (Cephes), the same operations in the same order; must stay in step with
// it. Error <= 1 ulp against the true exp; against nn_ref_expf: none.
static __device__ __forceinline__ float nn_cuda_expf(float x) {
  float xc = x < 88.0f ? x : 88.0f; // also maps NaN to 88
  xc = xc > -87.0f ? xc : -87.0f;
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
  const uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23; // 2^k, k in [-126, 127]
  const float s = __uint_as_float(bits);
  const float v = p * s;
  return x == x ? v : x;
}

static __global__ void mp_silu_fwd_kernel(float *y, const float *x, size_t n) {
  const float div = (float)NN_MP_SILU_DIV;
  NN_CUDA_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = v / (1.0f + nn_cuda_expf(-v)) / div;
  }
}

static __global__ void mp_silu_bwd_kernel(float *dx, const float *dy, const float *x, size_t n) {
  const float div = (float)NN_MP_SILU_DIV;
  NN_CUDA_GRID_STRIDE(i, n) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + nn_cuda_expf(-v));
    dx[i] = dy[i] / div * (s * (1.0f + v * (1.0f - s)));
  }
}

static __global__ void mp_sum_fwd_kernel(float *y, const float *a, const float *b, float t,
                                         float omt, float div, int lower_half, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) {
    const float av = a[i], bv = b[i];
    y[i] = lower_half ? (av + t * (bv - av)) / div : (bv - (bv - av) * omt) / div;
  }
}

// Reads dy[i] before writing either output, so da may alias dy.
static __global__ void mp_sum_bwd_kernel(float *da, float *db, const float *dy, float ca, float cb,
                                         size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) {
    const float g = dy[i];
    if (da) da[i] = g * ca;
    if (db) db[i] = g * cb;
  }
}

static __global__ void mp_cat_fwd_kernel(float *y, const float *a, const float *b, float wa,
                                         float wb, size_t N, size_t na, size_t nb) {
  const size_t per = na + nb;
  NN_CUDA_GRID_STRIDE(i, N * per) {
    const size_t n = i / per, r = i - n * per;
    y[i] = r < na ? wa * a[n * na + r] : wb * b[n * nb + (r - na)];
  }
}

static __global__ void mp_cat_bwd_kernel(float *da, float *db, const float *dy, float wa, float wb,
                                         size_t N, size_t na, size_t nb) {
  const size_t per = na + nb;
  NN_CUDA_GRID_STRIDE(i, N * per) {
    const size_t n = i / per, r = i - n * per;
    if (r < na) {
      if (da) da[n * na + r] = wa * dy[i];
    } else if (db) {
      db[n * nb + (r - na)] = wb * dy[i];
    }
  }
}

// Comparisons that let a NaN through, as torch.clamp and the reference do.
static __global__ void clip_fwd_kernel(float *y, const float *x, float lo, float hi, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

static __global__ void clip_bwd_kernel(float *dx, const float *dy, const float *y, float hi,
                                       size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) dx[i] = fabsf(y[i]) < hi ? dy[i] : 0.0f;
}

static __global__ void modulate_fwd_kernel(float *y, const float *x, const float *s, size_t rows,
                                           size_t L) {
  NN_CUDA_GRID_STRIDE(i, rows * L) y[i] = x[i] * (1.0f + s[i / L]);
}

static __global__ void modulate_bwd_dx_kernel(float *dx, const float *dy, const float *s,
                                              size_t rows, size_t L) {
  NN_CUDA_GRID_STRIDE(i, rows * L) dx[i] = dy[i] * (1.0f + s[i / L]);
}

// ds[r] = Σ_l dy[r,l]·x[r,l] in double, bit for bit as nn/ref/reduce.inc's dot_d: eight partial
// sums, lane k summing the elements l ≡ k (mod 8) in increasing l, combined as
// ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)). Here the eight lanes are eight consecutive
// threads (a block holds 32 rows) and the combination is three shuffles in that order. No atomics:
// every row is summed by one fixed group of threads.
enum { DS_LANES = 8, DS_ROWS_PER_BLOCK = NN_CUDA_THREADS / DS_LANES };

static __global__ void modulate_bwd_ds_kernel(float *ds, const float *dy, const float *x,
                                              size_t rows, size_t L) {
  const unsigned lane = threadIdx.x % DS_LANES, sub = threadIdx.x / DS_LANES;
  // The loop bound is the same for every thread of the block, so all of a warp's threads reach
  // the shuffles together (full mask).
  for (size_t base = (size_t)blockIdx.x * DS_ROWS_PER_BLOCK; base < rows;
       base += (size_t)gridDim.x * DS_ROWS_PER_BLOCK) {
    const size_t r = base + sub;
    double acc = 0;
    if (r < rows) {
      const float *g = dy + r * L, *xr = x + r * L;
      for (size_t l = lane; l < L; l += DS_LANES) acc += (double)g[l] * (double)xr[l];
    }
    acc = acc + __shfl_down_sync(0xffffffffu, acc, 4, DS_LANES); // s0+s4, s1+s5, s2+s6, s3+s7
    acc = acc + __shfl_down_sync(0xffffffffu, acc, 1, DS_LANES); // (s0+s4)+(s1+s5), (s2+s6)+(s3+s7)
    acc = acc + __shfl_down_sync(0xffffffffu, acc, 2, DS_LANES); // the two halves
    if (lane == 0 && r < rows) ds[r] = (float)acc;
  }
}

static __global__ void append_ones_fwd_kernel(float *y, const float *x, size_t N, size_t nx,
                                              size_t L) {
  const size_t per = nx + L;
  NN_CUDA_GRID_STRIDE(i, N * per) {
    const size_t n = i / per, r = i - n * per;
    y[i] = r < nx ? x[n * nx + r] : 1.0f;
  }
}

static __global__ void append_ones_bwd_kernel(float *dx, const float *dy, size_t N, size_t nx,
                                              size_t L) {
  NN_CUDA_GRID_STRIDE(i, N * nx) {
    const size_t n = i / nx, r = i - n * nx;
    dx[i] = dy[n * (nx + L) + r];
  }
}

static __global__ void rows_axpby_kernel(float *y, const float *a, const float *x, const float *b,
                                         const float *z, size_t R, size_t M) {
  NN_CUDA_GRID_STRIDE(i, R * M) {
    const size_t r = i / M;
    y[i] = b ? a[r] * x[i] + b[r] * z[i] : a[r] * x[i];
  }
}

static __global__ void scale_kernel(float *y, const float *x, float a, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) y[i] = a * x[i];
}

static __global__ void acc_kernel(float *y, const float *x, size_t n) {
  NN_CUDA_GRID_STRIDE(i, n) y[i] += x[i];
}

extern "C" {

cudaError_t nn_cuda_launch_mp_silu_fwd(cudaStream_t s, float *y, const float *x, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, mp_silu_fwd_kernel, y, x, n);
}

cudaError_t nn_cuda_launch_mp_silu_bwd(cudaStream_t s, float *dx, const float *dy, const float *x,
                                       size_t n) {
  NN_CUDA_LAUNCH_N(n, s, mp_silu_bwd_kernel, dx, dy, x, n);
}

cudaError_t nn_cuda_launch_mp_sum_fwd(cudaStream_t s, float *y, const float *a, const float *b,
                                      float t, float omt, float div, int lower_half, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, mp_sum_fwd_kernel, y, a, b, t, omt, div, lower_half, n);
}

cudaError_t nn_cuda_launch_mp_sum_bwd(cudaStream_t s, float *da, float *db, const float *dy,
                                      float ca, float cb, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, mp_sum_bwd_kernel, da, db, dy, ca, cb, n);
}

cudaError_t nn_cuda_launch_mp_cat_fwd(cudaStream_t s, float *y, const float *a, const float *b,
                                      float wa, float wb, size_t N, size_t na, size_t nb) {
  NN_CUDA_LAUNCH_N(N * (na + nb), s, mp_cat_fwd_kernel, y, a, b, wa, wb, N, na, nb);
}

cudaError_t nn_cuda_launch_mp_cat_bwd(cudaStream_t s, float *da, float *db, const float *dy,
                                      float wa, float wb, size_t N, size_t na, size_t nb) {
  NN_CUDA_LAUNCH_N(N * (na + nb), s, mp_cat_bwd_kernel, da, db, dy, wa, wb, N, na, nb);
}

cudaError_t nn_cuda_launch_clip_fwd(cudaStream_t s, float *y, const float *x, float lo, float hi,
                                    size_t n) {
  NN_CUDA_LAUNCH_N(n, s, clip_fwd_kernel, y, x, lo, hi, n);
}

cudaError_t nn_cuda_launch_clip_bwd(cudaStream_t s, float *dx, const float *dy, const float *y,
                                    float hi, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, clip_bwd_kernel, dx, dy, y, hi, n);
}

cudaError_t nn_cuda_launch_modulate_fwd(cudaStream_t st, float *y, const float *x, const float *s,
                                        size_t rows, size_t L) {
  NN_CUDA_LAUNCH_N(rows * L, st, modulate_fwd_kernel, y, x, s, rows, L);
}

cudaError_t nn_cuda_launch_modulate_bwd_dx(cudaStream_t st, float *dx, const float *dy,
                                           const float *s, size_t rows, size_t L) {
  NN_CUDA_LAUNCH_N(rows * L, st, modulate_bwd_dx_kernel, dx, dy, s, rows, L);
}

cudaError_t nn_cuda_launch_modulate_bwd_ds(cudaStream_t st, float *ds, const float *dy,
                                           const float *x, size_t rows, size_t L) {
  // rows·8 threads, 32 rows per block (L == 0 still writes ds = 0, as the reference does)
  NN_CUDA_LAUNCH_N(rows * DS_LANES, st, modulate_bwd_ds_kernel, ds, dy, x, rows, L);
}

cudaError_t nn_cuda_launch_append_ones_fwd(cudaStream_t s, float *y, const float *x, size_t N,
                                           size_t nx, size_t L) {
  NN_CUDA_LAUNCH_N(N * (nx + L), s, append_ones_fwd_kernel, y, x, N, nx, L);
}

cudaError_t nn_cuda_launch_append_ones_bwd(cudaStream_t s, float *dx, const float *dy, size_t N,
                                           size_t nx, size_t L) {
  NN_CUDA_LAUNCH_N(N * nx, s, append_ones_bwd_kernel, dx, dy, N, nx, L);
}

cudaError_t nn_cuda_launch_rows_axpby(cudaStream_t s, float *y, const float *a, const float *x,
                                      const float *b, const float *z, size_t R, size_t M) {
  NN_CUDA_LAUNCH_N(R * M, s, rows_axpby_kernel, y, a, x, b, z, R, M);
}

cudaError_t nn_cuda_launch_scale(cudaStream_t s, float *y, const float *x, float a, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, scale_kernel, y, x, a, n);
}

cudaError_t nn_cuda_launch_acc(cudaStream_t s, float *y, const float *x, size_t n) {
  NN_CUDA_LAUNCH_N(n, s, acc_kernel, y, x, n);
}

} // extern "C"
