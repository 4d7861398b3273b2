/* The inner loop of the reconstruction: out[k][e] = sum_i w[k][i] * in[i][e].
 *
 * Each output element is acc = fma(w_i, x_i, acc) over i in ascending order from 0 (one rounding
 * per input), so a target's output is bit-identical whatever other targets are computed beside
 * it, however the columns are split across threads, and on any CPU (vector kernels for AVX-512
 * and AVX2+FMA, fmaf/fma elsewhere). */
#ifndef EDM2C_POSTHOC_COMBINE_H
#define EDM2C_POSTHOC_COMBINE_H

#include <stdint.h>

/* Callers that split a slice's columns across threads should cut at multiples of this: every
 * kernel's tile width divides it, so no thread is left columns for the scalar loop. */
#define COMBINE_COL_QUANTUM 192

/* w: [K][N] weights; in: [N][len] inputs (row i at in + i*len); out: [K][len]. Computes columns
 * [e0, e1) only, so callers can split a slice across threads. float32 accumulation. */
void combine_f32(const float *w, int K, int N, const float *in, int64_t len, float *out, int64_t e0,
                 int64_t e1);
/* The same with float64 weights and accumulation, rounded to float32 once at the end. */
void combine_f64(const double *w, int K, int N, const float *in, int64_t len, float *out,
                 int64_t e0, int64_t e1);

/* The same with float16 inputs (IEEE binary16 bits, as stored in snapshots), converted exactly
 * while they are combined (F16C / AVX-512 where the CPU has them): half the memory traffic of
 * converting first, and bit-identical to combining their float32 values. */
void combine_f32_h(const float *w, int K, int N, const uint16_t *in, int64_t len, float *out,
                   int64_t e0, int64_t e1);
void combine_f64_h(const double *w, int K, int N, const uint16_t *in, int64_t len, float *out,
                   int64_t e0, int64_t e1);

/* The streaming path: out[e] += w[i] * in[i][e] for inputs i = 0 .. n-1 (n <= COMBINE_AXPY_MAX)
 * in one pass over `out`, float16 inputs anywhere in memory, float32 or float64 accumulators.
 * Applied to consecutive inputs on zeroed outputs it gives exactly the bits of combine_f32_h /
 * combine_f64_h. */
#define COMBINE_AXPY_MAX 8
void combine_axpyn_h(float *out, const float *w, const uint16_t *const *in, int n, int64_t len);
void combine_axpyn_h64(double *out, const double *w, const uint16_t *const *in, int n, int64_t len);

#endif
