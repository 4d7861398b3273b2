/* nn/cuda/check.h without a GPU (CUDA builds only): NN_CUDA_CHECK's message and status, the
 * pending error of the void `_cuda` ops (first kept, collected once), the debug switch
 * EDM2C_CUDA_SYNC, zero-size ops that launch nothing, and, where there is no usable GPU, a real
 * launch failing with file:line. Runs on the GPU machine too (the no-GPU parts are skipped). */
#include <stdlib.h>
#include <string.h>

#include "core/gpu.h"
#include "nn/cuda/check.h"
#include "nn/cuda/ops.h"
#include "tests/test.h"

static cudaError_t fake_failure(void) { return cudaErrorInvalidValue; }
static cudaError_t fake_other_failure(void) { return cudaErrorMemoryAllocation; }

static int check_line; /* the line of the NN_CUDA_CHECK below */

static ec_status returns_status(void) {
  check_line = __LINE__ + 1;
  NN_CUDA_CHECK(fake_failure());
  return EC_OK;
}

static void void_op(cudaError_t (*fn)(void)) { NN_CUDA_OP(fn()); }

TEST(check_records_file_line) {
  ec_err_clear();
  ASSERT_EQ_INT(returns_status(), EC_ECUDA);
  char want[128];
  snprintf(want, sizeof want, "test_nn_cuda_check.c:%d: fake_failure(): cudaErrorInvalidValue",
           check_line);
  printf("# %s\n", ec_errmsg());
  ASSERT_TRUE(strstr(ec_errmsg(), want) != NULL);
}

TEST(op_errors_stay_pending) {
  ASSERT_EQ_INT(nn_cuda_status(), EC_OK);
  void_op(fake_failure);
  void_op(fake_other_failure); /* dropped: the first failure is the one reported */
  ec_err_clear();
  ASSERT_EQ_INT(nn_cuda_status(), EC_ECUDA);
  ASSERT_TRUE(strstr(ec_errmsg(), "cudaErrorInvalidValue") != NULL);
  ASSERT_TRUE(strstr(ec_errmsg(), "cudaErrorMemoryAllocation") == NULL);
  ASSERT_EQ_INT(nn_cuda_status(), EC_OK); /* collected once */
}

/* meson runs this test with EDM2C_CUDA_SYNC=1; by hand, whatever the environment says. */
TEST(sync_switch) {
  const char *v = getenv("EDM2C_CUDA_SYNC");
  ASSERT_EQ_INT(nn_cuda_sync_enabled(), v && strcmp(v, "1") == 0);
  nn_cuda_set_sync(0);
  ASSERT_EQ_INT(nn_cuda_sync_enabled(), 0);
  ASSERT_EQ_INT(nn_cuda_after_launch("here.c", 1), EC_OK); /* off: does not touch the device */
  nn_cuda_set_sync(1);
  ASSERT_EQ_INT(nn_cuda_sync_enabled(), 1);
  ec_status st = nn_cuda_after_launch("here.c", 42);
  if (ec_gpu_count(NULL, 0)) {
    ASSERT_EQ_INT(st, EC_OK);
  } else { /* the synchronisation itself fails, reported at the launch's file:line */
    printf("# %s\n", ec_errmsg());
    ASSERT_EQ_INT(st, EC_ECUDA);
    ASSERT_TRUE(strstr(ec_errmsg(), "here.c:42: kernel (EDM2C_CUDA_SYNC=1)") != NULL);
  }
  nn_cuda_set_sync(0);
}

/* n = 0 launches nothing, so it succeeds even without a device. */
TEST(empty_ops_launch_nothing) {
  nn_cuda_set_sync(0);
  ASSERT_TRUE(nn_cuda_stream(NULL) == (cudaStream_t)0);
  nn_mp_silu_fwd_cuda(NULL, NULL, NULL, 0);
  nn_scale_cuda(NULL, NULL, NULL, 2.0, 0);
  nn_acc_cuda(NULL, NULL, NULL, 0);
  nn_float_to_half_cuda(NULL, NULL, NULL, 0);
  nn_modulate_fwd_cuda(NULL, NULL, NULL, NULL, 1, 1, 0);
  nn_mp_sum_bwd_cuda(NULL, NULL, NULL, NULL, 0.5, 10); /* no output wanted: nothing to do */
  ASSERT_EQ_INT(nn_cuda_status(), EC_OK);
}

/* Without a usable GPU a real launch fails; the op keeps the failure with its file:line. */
TEST(failed_launch_is_reported) {
  if (ec_gpu_count(NULL, 0)) TEST_SKIP("a GPU is present (nn-check covers the launches)");
  nn_cuda_set_sync(0);
  float *bogus = (float *)(uintptr_t)0x1000;
  nn_scale_cuda(NULL, bogus, bogus, 2.0, 5);
  ec_err_clear();
  ASSERT_EQ_INT(nn_cuda_status(), EC_ECUDA);
  printf("# %s\n", ec_errmsg());
  ASSERT_TRUE(strstr(ec_errmsg(), "ops.c:") != NULL);
  ASSERT_TRUE(strstr(ec_errmsg(), "nn_cuda_launch_scale") != NULL);
  ASSERT_EQ_INT(nn_cuda_sync(NULL), EC_ECUDA); /* the wait fails too: no device */
}

TEST_MAIN(check_records_file_line, op_errors_stay_pending, sync_switch, empty_ops_launch_nothing,
          failed_launch_is_reported)
