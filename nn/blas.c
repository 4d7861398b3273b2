/* OpenBLAS kernel selection on mis-identified CPUs (see blas.h). */
#include "nn/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

const char *nn_blas_corename(void) {
  const char *c = openblas_get_corename();
  return c ? c : "unknown";
}

/* Kernel families older than AVX, which OpenBLAS falls back to when it does not recognise a CPU. */
static int pre_avx_core(const char *core) {
  static const char *old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai",
                              "Coppermine", "Northwood", "Atom", "Banias", "Generic"};
  for (size_t i = 0; i < sizeof old / sizeof *old; i++)
    if (!strcasecmp(core, old[i])) return 1;
  return 0;
}

void nn_blas_setup(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv("EDM2C_NO_BLAS_FIX")) return;
  if (!pre_avx_core(nn_blas_corename())) return;
  __builtin_cpu_init();
  const char *want = NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    want = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    want = "Haswell";
  else if (__builtin_cpu_supports("avx"))
    want = "Sandybridge";
  if (!want) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc): go on with the kernels OpenBLAS chose. */
}

int nn_blas_threads(void) { return openblas_get_num_threads(); }

void nn_blas_set_threads(int n) {
  if (n >= 1 && n != openblas_get_num_threads()) openblas_set_num_threads(n);
}
