/* Private to nn/ref: compiles one op source (a .inc file) twice, once as the float32 `_ref`
 * forms and once as the float64 `_ref_f64` forms, so that every op is written once.
 *
 *   #define NN_REF_SRC "nn/ref/act.inc"
 *   #include "nn/ref/instantiate.h"
 *
 * Inside a .inc:
 *   T            the element type (float, then double);
 *   NN_REF(op)   the public name: nn_<op>_ref, then nn_<op>_ref_f64;
 *   NN_S(name)   a file-local helper's name, distinct per type;
 *   NN_GEMM      cblas_sgemm, then cblas_dgemm (every matrix product goes through OpenBLAS);
 *   NN_EXP(x)    exp for T: nn_ref_expf (nn/ref/vexp.h, vectorisable) for float, libm's exp for
 *                double (the f64 forms are references, not fast paths).
 *   NN_VEC       put before an elementwise op's definition: gcc compiles it for AVX-512, AVX2
 *                and baseline x86-64 and picks the CPU's best at load time (the default build
 *                targets baseline x86-64, i.e. 4-wide SSE2). The clones compute the same
 *                IEEE operations in the same order (no contraction into FMA under -std=c11,
 *                no reassociation), so their results are bitwise equal.
 * Math functions come from <tgmath.h>, so exp(x) is expf for a float x. <tgmath.h> pulls in
 * <complex.h>: `I` and `complex` are macros there, never use them as names. No include guard:
 * this file is meant to be included once per .c file, after NN_REF_SRC. */
#include <cblas.h>
#include <tgmath.h>

#include "nn/ref/vexp.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VEC
#endif

#define T float
#define NN_REF(op) nn_##op##_ref
#define NN_S(name) name##_f32
#define NN_GEMM cblas_sgemm
#define NN_EXP(x) nn_ref_expf(x)
#include NN_REF_SRC
#undef T
#undef NN_REF
#undef NN_S
#undef NN_GEMM
#undef NN_EXP

#define T double
#define NN_REF(op) nn_##op##_ref_f64
#define NN_S(name) name##_f64
#define NN_GEMM cblas_dgemm
#define NN_EXP(x) exp(x)
#include NN_REF_SRC
#undef T
#undef NN_REF
#undef NN_S
#undef NN_GEMM
#undef NN_EXP
