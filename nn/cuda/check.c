/* Checking CUDA calls from plain C; see check.h. */
#include "nn/cuda/check.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

enum { PENDING_MAX = 1024 };

/* This thread's first unreported failure of a `_cuda` op. */
static _Thread_local int pending;
static _Thread_local char pending_msg[PENDING_MAX];

/* -1: not read yet; 0 or 1 afterwards. Relaxed atomics: every thread computes the same value
 * from the environment, and nn_cuda_set_sync() simply wins. */
static atomic_int sync_mode = -1;

ec_status nn_cuda_fail(cudaError_t err, const char *what, const char *file, int line) {
  return ec_err(EC_ECUDA, "%s:%d: %s: %s: %s", file, line, what, cudaGetErrorName(err),
                cudaGetErrorString(err));
}

static void keep_pending(const char *msg) {
  if (pending) return;
  pending = 1;
  snprintf(pending_msg, sizeof pending_msg, "%s", msg);
}

int nn_cuda_op_failed(cudaError_t err, const char *what, const char *file, int line) {
  if (err == cudaSuccess) return 0;
  nn_cuda_fail(err, what, file, line);
  keep_pending(ec_errmsg());
  return 1;
}

int nn_cuda_sync_enabled(void) {
  int m = atomic_load_explicit(&sync_mode, memory_order_relaxed);
  if (m < 0) {
    const char *v = getenv("EDM2C_CUDA_SYNC");
    m = v && strcmp(v, "1") == 0;
    atomic_store_explicit(&sync_mode, m, memory_order_relaxed);
  }
  return m;
}

void nn_cuda_set_sync(int on) {
  atomic_store_explicit(&sync_mode, on ? 1 : 0, memory_order_relaxed);
}

ec_status nn_cuda_after_launch(const char *file, int line) {
  if (!nn_cuda_sync_enabled()) return EC_OK;
  /* The device-wide wait catches a failure of this kernel (or of any earlier one). */
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) return nn_cuda_fail(e, "kernel (EDM2C_CUDA_SYNC=1)", file, line);
  return EC_OK;
}

int nn_cuda_op_after_launch_(const char *file, int line) {
  if (nn_cuda_after_launch(file, line) == EC_OK) return 0;
  keep_pending(ec_errmsg());
  return 1;
}

ec_status nn_cuda_status(void) {
  if (!pending) return EC_OK;
  pending = 0;
  return ec_err(EC_ECUDA, "%s", pending_msg);
}

ec_status nn_cuda_sync(nn_ctx *ctx) {
  cudaError_t e = cudaStreamSynchronize(nn_cuda_stream(ctx));
  if (pending) return nn_cuda_status(); /* the first failure is the one worth reporting */
  if (e != cudaSuccess) return nn_cuda_fail(e, "cudaStreamSynchronize", __FILE__, __LINE__);
  return EC_OK;
}

cudaStream_t nn_cuda_stream(nn_ctx *ctx) {
  EC_ASSERTF(ctx == NULL, "nn/cuda: a non-NULL nn_ctx is not supported yet (streams come later)");
  return (cudaStream_t)0;
}
