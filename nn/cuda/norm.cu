// Kernels of nn/norm.h's pixel norm (nn/cuda/ops.h). One thread per pixel (n, l) walks the C
// channels in order with double sums, exactly as nn/ref/colnorm.inc does per position, so the
// results are deterministic (no atomics, no reduction tree) and expected to equal the reference
// bit for bit (--fmad=false, IEEE division and sqrt). Neighbouring threads read neighbouring l,
// so every channel row is read coalesced. For small L (attention's q/k/v, L = tokens) this leaves
// most of the GPU idle; a block-per-pixel form can come when profiles say so.
#include "nn/cuda/common.cuh"
#include "nn/nn.h"

static __global__ void pixelnorm_fwd_kernel(float *y, const float *x, size_t N, size_t C, size_t L,
                                            double a) {
  NN_CUDA_GRID_STRIDE(p, N * L) {
    const size_t n = p / L, l = p - n * L;
    const float *xp = x + n * C * L + l;
    float *yp = y + n * C * L + l;
    double r2 = 0;
    for (size_t c = 0; c < C; c++) r2 += (double)xp[c * L] * (double)xp[c * L];
    const float d = (float)(NN_NORM_EPS + sqrt(r2) * a);
    for (size_t c = 0; c < C; c++) yp[c * L] = xp[c * L] / d;
  }
}

// dx = dy/d - x·a(dy·x)/(r·d²), and dy/eps at r = 0 (nn/ref/colnorm.inc).
static __global__ void pixelnorm_bwd_kernel(float *dx, const float *dy, const float *x, size_t N,
                                            size_t C, size_t L, double a) {
  NN_CUDA_GRID_STRIDE(p, N * L) {
    const size_t n = p / L, l = p - n * L, off = n * C * L + l;
    const float *xp = x + off, *gp = dy + off;
    float *dp = dx + off;
    double r2 = 0, dot = 0;
    for (size_t c = 0; c < C; c++) {
      r2 += (double)xp[c * L] * (double)xp[c * L];
      dot += (double)gp[c * L] * (double)xp[c * L];
    }
    const double r = sqrt(r2), d = NN_NORM_EPS + r * a;
    const float inv_d = (float)(1.0 / d);
    const float coef = r > 0 ? (float)(a * dot / (r * d * d)) : 0.0f;
    for (size_t c = 0; c < C; c++) dp[c * L] = gp[c * L] * inv_d - xp[c * L] * coef;
  }
}

extern "C" {

cudaError_t nn_cuda_launch_pixelnorm_fwd(cudaStream_t s, float *y, const float *x, size_t N,
                                         size_t C, size_t L, double a) {
  NN_CUDA_LAUNCH_N(N * L, s, pixelnorm_fwd_kernel, y, x, N, C, L, a);
}

cudaError_t nn_cuda_launch_pixelnorm_bwd(cudaStream_t s, float *dx, const float *dy,
                                         const float *x, size_t N, size_t C, size_t L, double a) {
  NN_CUDA_LAUNCH_N(N * L, s, pixelnorm_bwd_kernel, dx, dy, x, N, C, L, a);
}

} // extern "C"
