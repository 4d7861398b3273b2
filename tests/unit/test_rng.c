/* core/rng: Philox4x32-10 against Random123's known-answer vectors, the stream layout, and the
 * statistics of the uniform and normal deviates built on it. Statistical bounds are 5 standard
 * errors of the estimator (false alarm ~6e-7 per check), derived below from the draw count. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "tests/test.h"

/* Random123 1.14, kat_vectors: "philox4x32 10" lines (ctr, key, expected output). */
TEST(philox_known_answers) {
  static const struct {
    uint32_t ctr[4], key[2], out[4];
  } kat[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    uint32_t out[4];
    ec_philox4x32(kat[i].ctr, kat[i].key, out);
    for (int w = 0; w < 4; w++) ASSERT_EQ_INT(out[w], kat[i].out[w]);
  }
}

/* Index i is word i%4 of block i/4, the block number split into counter words 0 (low) and 1
 * (high), the seed into the two key words. */
TEST(stream_layout) {
  const uint64_t seeds[] = {0, 1, 0x123456789abcdef0ull};
  const uint64_t idx[] = {0, 1, 2, 3, 4, 7, 1000001, (1ull << 34) + 5, ~0ull};
  for (size_t s = 0; s < 3; s++)
    for (size_t j = 0; j < sizeof idx / sizeof idx[0]; j++) {
      uint64_t b = idx[j] / 4;
      uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, 0};
      uint32_t key[2] = {(uint32_t)seeds[s], (uint32_t)(seeds[s] >> 32)};
      uint32_t out[4];
      ec_philox4x32(ctr, key, out);
      ASSERT_EQ_INT(ec_rng_u32(seeds[s], idx[j]), out[idx[j] % 4]);
    }
  /* the high words of seed and block matter */
  ASSERT_NE_INT(ec_rng_u32(1, 0), ec_rng_u32(1 | (1ull << 32), 0));
  ASSERT_NE_INT(ec_rng_u32(1, 0), ec_rng_u32(1, 1ull << 34));
}

TEST(uniform_range_and_moments) {
  const uint64_t n = 1000000;
  double sum = 0, sum2 = 0;
  uint64_t bins[16] = {0};
  for (uint64_t i = 0; i < n; i++) {
    float u = ec_rng_uniform(42, i);
    ASSERT_TRUE(u >= 0.0f && u < 1.0f);
    double scaled = (double)u * 16777216.0; /* 24 random bits: an exact integer */
    ASSERT_TRUE(scaled == floor(scaled));
    ASSERT_EQ_INT((uint32_t)scaled, ec_rng_u32(42, i) >> 8);
    sum += u;
    sum2 += (double)u * u;
    bins[(int)(u * 16)]++;
  }
  double mean = sum / n, var = sum2 / n - mean * mean;
  /* U(0,1): mean 1/2 with SE sqrt(1/12/n); variance 1/12 with SE sqrt((1/80 - 1/144)/n) */
  ASSERT_NEAR(mean, 0.5, 5 * sqrt(1.0 / 12 / n));
  ASSERT_NEAR(var, 1.0 / 12, 5 * sqrt((1.0 / 80 - 1.0 / 144) / n));
  /* each of 16 bins: binomial(n, 1/16) */
  for (int b = 0; b < 16; b++)
    ASSERT_NEAR((double)bins[b], n / 16.0, 5 * sqrt(n * (1.0 / 16) * (15.0 / 16)));
}

TEST(normal_moments_and_tails) {
  const uint64_t n = 1000000;
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0, zmax = 0;
  uint64_t over1 = 0, over2 = 0, over3 = 0;
  for (uint64_t i = 0; i < n; i++) {
    double z = ec_rng_normal(7, i);
    ASSERT_TRUE(isfinite(z));
    s1 += z;
    s2 += z * z;
    s3 += z * z * z;
    s4 += z * z * z * z;
    double a = fabs(z);
    zmax = a > zmax ? a : zmax;
    over1 += a > 1;
    over2 += a > 2;
    over3 += a > 3;
  }
  /* Moments of N(0,1) and the standard errors of their sample estimates:
   * mean 0 (SE 1/sqrt(n)), E z² = 1 (Var z² = 2), E z³ = 0 (Var z³ = 15), E z⁴ = 3 (Var z⁴ = 96). */
  ASSERT_NEAR(s1 / n, 0, 5 / sqrt((double)n));
  ASSERT_NEAR(s2 / n, 1, 5 * sqrt(2.0 / n));
  ASSERT_NEAR(s3 / n, 0, 5 * sqrt(15.0 / n));
  ASSERT_NEAR(s4 / n, 3, 5 * sqrt(96.0 / n));
  /* two-sided tail probabilities P(|z| > k) = erfc(k/sqrt 2), binomial SE */
  const double p1 = erfc(1 / sqrt(2.0)), p2 = erfc(2 / sqrt(2.0)), p3 = erfc(3 / sqrt(2.0));
  ASSERT_NEAR((double)over1 / n, p1, 5 * sqrt(p1 * (1 - p1) / n));
  ASSERT_NEAR((double)over2 / n, p2, 5 * sqrt(p2 * (1 - p2) / n));
  ASSERT_NEAR((double)over3 / n, p3, 5 * sqrt(p3 * (1 - p3) / n));
  /* Box–Muller on 32-bit uniforms offset by half a step: |z| <= sqrt(-2 log(2^-33)) = 6.76 */
  ASSERT_TRUE(zmax < 6.77);
  ASSERT_TRUE(zmax > 4); /* 1e6 draws: P(max < 4) = (1 - 6.3e-5)^1e6 ≈ 0 */
}

TEST(normal_pairs_are_uncorrelated) {
  /* consecutive indices use disjoint words, so neighbouring deviates are independent */
  const uint64_t n = 200000;
  double sxy = 0;
  for (uint64_t i = 0; i < n; i++) sxy += ec_rng_normal(3, 2 * i) * ec_rng_normal(3, 2 * i + 1);
  ASSERT_NEAR(sxy / n, 0, 5 / sqrt((double)n));
}

TEST(normal_fill_is_deterministic) {
  enum { n = 1000 };
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  ASSERT_TRUE(a && b && c);
  ec_rng_normal_fill(a, n, 99, 0);
  ec_rng_normal_fill(b, n, 99, 0);
  ASSERT_TRUE(memcmp(a, b, n * sizeof *a) == 0);
  for (int i = 0; i < n; i++) ASSERT_TRUE(a[i] == (float)ec_rng_normal(99, (uint64_t)i));
  /* `first` shifts the stream: filling from 300 gives the tail of the fill from 0 */
  ec_rng_normal_fill(c, n - 300, 99, 300);
  ASSERT_TRUE(memcmp(a + 300, c, (n - 300) * sizeof *a) == 0);
  /* another seed gives other numbers */
  ec_rng_normal_fill(b, n, 100, 0);
  int same = 0;
  for (int i = 0; i < n; i++) same += a[i] == b[i];
  ASSERT_TRUE(same < 5);
  free(a);
  free(b);
  free(c);
}

TEST_MAIN(philox_known_answers, stream_layout, uniform_range_and_moments,
          normal_moments_and_tails, normal_pairs_are_uncorrelated, normal_fill_is_deterministic)
