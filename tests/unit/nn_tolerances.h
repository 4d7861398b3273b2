/* Tolerances of tests/unit/test_nn_ops.c, in one table. An element of a float32 `_ref` result y32
 * passes against the float64 `_ref_f64` result y64 of the same op on the same inputs (the inputs
 * are float32 values, so both forms see identical numbers) when
 *     |y32 - y64| <= rtol·|y64| + atol·scale,
 * with `scale` chosen by the test as the entry says: the results' magnitude for elementwise ops,
 * sqrt(K)·(typical |product term|) for a sum of K products, so that atol is a multiple of the
 * float32 rounding of a K-term sum. Each tolerance sits 3 to 30 times above the largest error
 * measured on the test's shapes (the test prints "worst error / tolerance" for every comparison)
 * and far below what a wrong index or formula produces (O(1) relative). */
#ifndef EDM2C_TESTS_NN_TOLERANCES_H
#define EDM2C_TESTS_NN_TOLERANCES_H

typedef enum {
  TOL_NAIVE,       /* f64 op vs the test's own naive f64 formula */
  TOL_ELEMENTWISE, /* f32 vs f64: mp_sum, mp_cat, clip, modulate, scale, resample, dropout, ... */
  TOL_SILU,        /* f32 vs f64: mp_silu forward and backward */
  TOL_NORM,        /* f32 vs f64: pixel norm, weight norm (forward and backward) */
  TOL_GEMM,        /* f32 vs f64: convolutions and linear layers */
  TOL_ATTENTION,   /* f32 vs f64: attention forward and backward */
  TOL_FOURIER,     /* f32 vs f64: Fourier features */
  TOL_COUNT
} nn_tol_id;

typedef struct {
  const char *name;
  double rtol, atol;
  const char *why;
} nn_tol;

static const nn_tol nn_tolerances[TOL_COUNT] = {
    [TOL_NAIVE] = {"naive", 1e-13, 1e-13,
                   "both in float64, differing only in summation order; scale = sqrt(K)·term size"},
    [TOL_ELEMENTWISE] = {"elementwise", 1e-6, 1e-6,
                         "1-3 float32 roundings (6e-8 each) per element; scale = max |result|"},
    [TOL_SILU] = {"mp_silu", 1e-6, 1e-6,
                  "expf (1 ulp) plus 3-4 roundings of the sigmoid chain; scale = max |result|"},
    [TOL_NORM] = {"norm", 1e-6, 1e-6,
                  "the norm is summed in double; a division and a few float32 roundings remain, "
                  "the backward's two terms may cancel; scale = max |result|"},
    [TOL_GEMM] = {"gemm", 1e-5, 2e-6,
                  "float32 GEMM accumulation of K products; scale = sqrt(K)·rms(a)·rms(b)"},
    [TOL_ATTENTION] = {"attention", 1e-5, 2e-6,
                       "normalised q,k,v, logits of Ch terms, expf, sums of L terms; scale = "
                       "max |result|"},
    [TOL_FOURIER] = {"fourier", 1e-6, 4e-7,
                     "cos of a float32 argument a·f + p whose rounding error is 6e-8·|arg|; "
                     "scale = max |arg|"},
};

#endif
