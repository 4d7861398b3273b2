/* posthoc/combine: the reconstruction's kernels equal the plain loop (a fused multiply-add per
 * input, inputs in order) bit for bit, for every K, N and column range, in float32 and float64,
 * from float32 and from float16 inputs, tiled or streamed. */
#include <stdlib.h>

#include "core/half.h"
#include "posthoc/combine.h"
#include "tests/test.h"

static uint32_t rng = 12345;
static float rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((double)(rng >> 8) / (1 << 24) * 2 - 1);
}

static void check_all(void);

/* Every instruction-set path (EDM2C_COMBINE_ISA lowers the CPU's best) gives the same bits. */
TEST(matches_the_plain_loop_bit_for_bit) {
  const char *levels[3] = {NULL, "avx2", "portable"};
  for (int l = 0; l < 3; l++) {
    if (levels[l])
      setenv("EDM2C_COMBINE_ISA", levels[l], 1);
    else
      unsetenv("EDM2C_COMBINE_ISA");
    printf("# kernels: %s\n", levels[l] ? levels[l] : "the CPU's best");
    check_all();
    if (test_failed_) return;
  }
  unsetenv("EDM2C_COMBINE_ISA");
}

static void check_one(int K, int N, int64_t len);

/* K across the register tiles (8 outputs per AVX-512 tile, 6 per AVX2 one) and their leftovers;
 * lengths across the tile widths (48 and 16 columns) and the packed blocks (up to 384). */
static void check_all(void) {
  int Ks[] = {1, 2, 3, 4, 5, 8, 9, 16, 17}, Ns[] = {1, 2, 7, 16, 37};
  int64_t lens[] = {1, 47, 48, 49, 63, 64, 65, 200, 1000};
  for (size_t a = 0; a < sizeof Ks / sizeof *Ks && !test_failed_; a++)
    for (size_t b = 0; b < sizeof Ns / sizeof *Ns && !test_failed_; b++)
      for (size_t c = 0; c < sizeof lens / sizeof *lens && !test_failed_; c++) check_one(Ks[a], Ns[b], lens[c]);
  /* more inputs than the per-thread packing scratch holds at one tile's width */
  if (!test_failed_) check_one(9, 1400, 200);
  if (!test_failed_) check_one(17, 1400, 97);
}

static void check_one(int K, int N, int64_t len) {
  {
        float *w = malloc(sizeof(float) * (size_t)(K * N)), *in = malloc(sizeof(float) * (size_t)(N * len));
        double *dw = malloc(sizeof(double) * (size_t)(K * N));
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(N * len));
        float *o1 = malloc(sizeof(float) * (size_t)(K * len)), *o2 = malloc(sizeof(float) * (size_t)(K * len));
        float *o3 = malloc(sizeof(float) * (size_t)(K * len)), *ref = malloc(sizeof(float) * (size_t)(K * len));
        float *dref = malloc(sizeof(float) * (size_t)(K * len));
        for (int i = 0; i < K * N; i++) dw[i] = w[i] = rnd();
        for (int64_t i = 0; i < N * len; i++) {
          h[i] = ec_float_to_half(rnd() * 3);
          in[i] = ec_half_to_float(h[i]);
        }
        for (int k = 0; k < K; k++)
          for (int64_t e = 0; e < len; e++) {
            float s = 0;
            double d = 0;
            for (int i = 0; i < N; i++) {
              s = fmaf(w[k * N + i], in[i * len + e], s);
              d = fma(dw[k * N + i], (double)in[i * len + e], d);
            }
            ref[k * len + e] = s;
            dref[k * len + e] = (float)d;
          }
        /* whole range, and the range split at an odd column (as threads split it) */
        int64_t cut = len / 3 + 1 < len ? len / 3 + 1 : len;
        combine_f32(w, K, N, in, len, o1, 0, len);
        combine_f32(w, K, N, in, len, o2, 0, cut);
        combine_f32(w, K, N, in, len, o2, cut, len);
        combine_f32_h(w, K, N, h, len, o3, 0, len);
        ASSERT_TRUE(memcmp(o1, ref, sizeof(float) * (size_t)(K * len)) == 0);
        ASSERT_TRUE(memcmp(o2, ref, sizeof(float) * (size_t)(K * len)) == 0);
        ASSERT_TRUE(memcmp(o3, ref, sizeof(float) * (size_t)(K * len)) == 0);
        combine_f64(dw, K, N, in, len, o1, 0, len);
        combine_f64_h(dw, K, N, h, len, o2, 0, cut);
        combine_f64_h(dw, K, N, h, len, o2, cut, len);
        ASSERT_TRUE(memcmp(o1, dref, sizeof(float) * (size_t)(K * len)) == 0);
        ASSERT_TRUE(memcmp(o2, dref, sizeof(float) * (size_t)(K * len)) == 0);
        /* one input at a time (the streaming path), on zeroed accumulators */
        for (int k = 0; k < K; k++) {
          float *acc = calloc((size_t)len, sizeof *acc);
          double *dacc = calloc((size_t)len, sizeof *dacc);
          for (int i = 0; i < N; i++) {
            const uint16_t *row = h + i * len;
            combine_axpyn_h(acc, w + k * N + i, &row, 1, len);
            combine_axpyn_h64(dacc, dw + k * N + i, &row, 1, len);
          }
          ASSERT_TRUE(memcmp(acc, ref + k * len, sizeof(float) * (size_t)len) == 0);
          for (int64_t e = 0; e < len; e++) ASSERT_TRUE((float)dacc[e] == dref[k * len + e]);
          /* the same in groups of up to COMBINE_AXPY_MAX inputs per pass */
          memset(acc, 0, sizeof(float) * (size_t)len);
          memset(dacc, 0, sizeof(double) * (size_t)len);
          for (int i0 = 0; i0 < N; i0 += 3) {
            int n = N - i0 < 3 ? N - i0 : 3;
            const uint16_t *rows[COMBINE_AXPY_MAX];
            for (int q = 0; q < n; q++) rows[q] = h + (i0 + q) * len;
            combine_axpyn_h(acc, w + k * N + i0, rows, n, len);
            combine_axpyn_h64(dacc, dw + k * N + i0, rows, n, len);
          }
          ASSERT_TRUE(memcmp(acc, ref + k * len, sizeof(float) * (size_t)len) == 0);
          for (int64_t e = 0; e < len; e++) ASSERT_TRUE((float)dacc[e] == dref[k * len + e]);
          free(acc);
          free(dacc);
        }
        free(w), free(in), free(dw), free(h), free(o1), free(o2), free(o3), free(ref), free(dref);
      }
}

TEST_MAIN(matches_the_plain_loop_bit_for_bit)
