/* The CUDA forms of nn's ops (float32, device pointers). Each has the signature of its `_ref`
 * float form in nn/act.h or nn/norm.h (checked at compile time in ops.c), the same contract
 * (shapes, OVERWRITES/ACCUMULATES, NULL outputs skipped, the allowed aliasing, EC_ASSERT on a
 * broken contract) and, by construction, the same float32 results bit for bit (nn-check,
 * tests/gpu/nn_check.c, verifies it; nn/cuda/README.md says why it holds).
 *
 * Asynchronous: an op enqueues its kernels and returns; pointers must stay valid until the
 * stream is done. ctx must be NULL for now (the default stream; see nn_cuda_stream in
 * nn/cuda/check.h). Errors: an op cannot return one (void, like `_ref`); a failed CUDA call is
 * kept as the thread's pending error, to be collected with nn_cuda_status() or nn_cuda_sync().
 *
 * float32 only: the float16 activation path of the GPU training step (DESIGN.md "Precision")
 * needs `__half` forms of these kernels and comes later; the casts below are its first piece.
 *
 * Every function declared here must have an entry in nn-check's table (tests/gpu/nn_check.c);
 * the CPU test tests/unit/test_nn_cuda_complete.c fails otherwise. */
#ifndef EDM2C_NN_CUDA_OPS_H
#define EDM2C_NN_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn.h"

/* nn/act.h: see there for the definitions. */
void nn_mp_silu_fwd_cuda(nn_ctx *ctx, float *y, const float *x, size_t n);
void nn_mp_silu_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *x, size_t n);
void nn_mp_sum_fwd_cuda(nn_ctx *ctx, float *y, const float *a, const float *b, double t, size_t n);
void nn_mp_sum_bwd_cuda(nn_ctx *ctx, float *da, float *db, const float *dy, double t, size_t n);
void nn_mp_cat_fwd_cuda(nn_ctx *ctx, float *y, const float *a, const float *b, int N, int Ca,
                        int Cb, size_t L, double t);
void nn_mp_cat_bwd_cuda(nn_ctx *ctx, float *da, float *db, const float *dy, int N, int Ca, int Cb,
                        size_t L, double t);
void nn_clip_fwd_cuda(nn_ctx *ctx, float *y, const float *x, double limit, size_t n);
void nn_clip_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *y, double limit,
                      size_t n);
/* s: (N, C) on the device. */
void nn_modulate_fwd_cuda(nn_ctx *ctx, float *y, const float *x, const float *s, int N, int C,
                          size_t L);
/* ds is summed in double in the reference's order (deterministic, no atomics). */
void nn_modulate_bwd_cuda(nn_ctx *ctx, float *dx, float *ds, const float *dy, const float *x,
                          const float *s, int N, int C, size_t L);
void nn_append_ones_fwd_cuda(nn_ctx *ctx, float *y, const float *x, int N, int C, size_t L);
void nn_append_ones_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, int N, int C, size_t L);
/* a, b: (R) on the device. */
void nn_rows_axpby_cuda(nn_ctx *ctx, float *y, const float *a, const float *x, const float *b,
                        const float *z, int R, size_t M);
void nn_scale_cuda(nn_ctx *ctx, float *y, const float *x, double alpha, size_t n);
void nn_acc_cuda(nn_ctx *ctx, float *y, const float *x, size_t n);

/* nn/norm.h: pixel norm. One thread per pixel, channels summed in order in double. */
void nn_pixelnorm_fwd_cuda(nn_ctx *ctx, float *y, const float *x, int N, int C, size_t L);
void nn_pixelnorm_bwd_cuda(nn_ctx *ctx, float *dx, const float *dy, const float *x, int N, int C,
                           size_t L);

/* float32 <-> IEEE binary16 (stored as uint16_t), bit for bit as core/half.h's
 * ec_float_to_half_array / ec_half_to_float_array (round to nearest even, overflow to inf, NaN
 * payloads kept). dst may not alias src. */
void nn_float_to_half_cuda(nn_ctx *ctx, uint16_t *dst, const float *src, size_t n);
void nn_half_to_float_cuda(nn_ctx *ctx, float *dst, const uint16_t *src, size_t n);

#endif
