/* nn/cuda: how host code checks CUDA calls (plain C; see nn/cuda/README.md).
 *
 * Two kinds of callers:
 *   - functions that return an ec_status use NN_CUDA_CHECK(call): on failure it records
 *     "file:line: call: cudaErrorName: description" with ec_err and returns EC_ECUDA;
 *   - the `_cuda` ops return void (they have the signatures of their `_ref` forms), so they use
 *     NN_CUDA_OP(call) and NN_CUDA_LAUNCH(launcher(...)): a failure is recorded as this thread's
 *     pending CUDA error (the first one is kept, later ones are dropped) and the op returns.
 *     The caller collects it with nn_cuda_status() or nn_cuda_sync(), which return EC_ECUDA with
 *     the first failure's message (through ec_err) and clear it.
 *
 * Kernel launchers (the extern "C" functions of the .cu files) return cudaGetLastError() after
 * the launch. Kernels run asynchronously, so an error inside a kernel (an illegal address) shows
 * up at a later call; the debug switch EDM2C_CUDA_SYNC=1 in the environment (or
 * nn_cuda_set_sync(1)) makes nn_cuda_after_launch(), called by NN_CUDA_LAUNCH after every
 * launch, synchronise the device and check, so the failure is reported at the launch's file:line.
 *
 * Streams: every `_cuda` op takes the stream from its nn_ctx through nn_cuda_stream(). There is
 * no CUDA nn_ctx yet, so ctx must be NULL (checked), which means the default (legacy) stream. */
#ifndef EDM2C_NN_CUDA_CHECK_H
#define EDM2C_NN_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#include "core/status.h"
#include "nn/nn.h"

/* Records the failure of `what` at file:line and returns EC_ECUDA. */
ec_status nn_cuda_fail(cudaError_t err, const char *what, const char *file, int line);

#define NN_CUDA_CHECK(call)                                                                        \
  do {                                                                                             \
    cudaError_t nn_cuda_e_ = (call);                                                               \
    if (nn_cuda_e_ != cudaSuccess) return nn_cuda_fail(nn_cuda_e_, #call, __FILE__, __LINE__);     \
  } while (0)

/* Keeps the failure of `what` at file:line as this thread's pending error (unless one is already
 * pending) and returns 1; returns 0 for cudaSuccess. */
int nn_cuda_op_failed(cudaError_t err, const char *what, const char *file, int line);

/* In a void `_cuda` op: on failure, keep it pending and return from the op. */
#define NN_CUDA_OP(call)                                                                           \
  do {                                                                                             \
    if (nn_cuda_op_failed((call), #call, __FILE__, __LINE__)) return;                              \
  } while (0)

/* The debug switch: 1 when EDM2C_CUDA_SYNC=1 (read once) or after nn_cuda_set_sync(1). */
int nn_cuda_sync_enabled(void);
/* Overrides the environment (tests, nn-check --sync); on: 1 or 0. */
void nn_cuda_set_sync(int on);

/* Called after every kernel launch with the launch's file:line: with the debug switch on,
 * synchronises the device and returns the error of the kernels run so far as EC_ECUDA (message
 * naming file:line); otherwise returns EC_OK without touching the device. */
ec_status nn_cuda_after_launch(const char *file, int line);

/* In a void `_cuda` op: `launch` is a launcher call returning cudaError_t; a failure of the
 * launch, or with the debug switch of the kernels up to it, is kept pending and the op returns. */
#define NN_CUDA_LAUNCH(launch)                                                                     \
  do {                                                                                             \
    NN_CUDA_OP(launch);                                                                            \
    if (nn_cuda_op_after_launch_(__FILE__, __LINE__)) return;                                      \
  } while (0)

/* Private to NN_CUDA_LAUNCH: nn_cuda_after_launch(), its failure kept pending; 1 on failure. */
int nn_cuda_op_after_launch_(const char *file, int line);

/* EC_OK when no op failed since the last call; otherwise EC_ECUDA with the first failure's
 * message recorded through ec_err. Clears the pending error. Does not synchronise. */
ec_status nn_cuda_status(void);

/* Waits for the ctx's stream (NULL: the default stream) to finish, then
 * returns the first pending error, or the error of the wait (an asynchronous kernel failure).
 * Clears the pending error. */
ec_status nn_cuda_sync(nn_ctx *ctx);

/* The stream of the ctx. Only NULL exists for now (the default stream); anything else aborts,
 * so that the first real CUDA nn_ctx cannot be silently ignored. */
cudaStream_t nn_cuda_stream(nn_ctx *ctx);

#endif
