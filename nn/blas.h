/* OpenBLAS set-up for programs that run the network on the CPU.
 *
 * Debian's OpenBLAS picks its kernels at load time from the CPU's identification. On virtual
 * machines that report a generic model ("Intel Xeon Processor") it falls back to its Prescott
 * (SSE3) kernels even when the CPU has AVX-512 or AVX2, which made the network's GEMMs 3-4×
 * slower here (docs/performance.md). nn_blas_setup() detects that case and re-executes the
 * program once with OPENBLAS_CORETYPE naming the kernels the CPU supports; OpenBLAS reads that
 * variable only at load time, hence the re-exec. A user's OPENBLAS_CORETYPE is respected, and
 * EDM2C_NO_BLAS_FIX=1 turns this off. Call it first thing in main(), before any output. */
#ifndef EDM2C_NN_BLAS_H
#define EDM2C_NN_BLAS_H

void nn_blas_setup(char **argv);

/* The kernel family OpenBLAS uses ("SkylakeX", "Haswell", "Prescott", ...). */
const char *nn_blas_corename(void);

/* OpenBLAS's own thread count for one GEMM. Process-wide: set it only from the thread that
 * drives the computation, while no GEMM runs (trainer/pass.c drops it to 1 while its own
 * threads each run a share of the batch). */
int nn_blas_threads(void);
void nn_blas_set_threads(int n);

#endif
