/* posthoc/ema_list: EDM2's σ_rel list syntax, its `...` progressions and its errors. */
#include "core/alloc.h"
#include "posthoc/ema_list.h"
#include "tests/test.h"

TEST(edm2_example_gives_49_values) {
  double *v;
  int n;
  ASSERT_OK(phema_list_parse("0.010,0.015,...,0.250", &v, &n));
  ASSERT_EQ_INT(n, 49);
  for (int i = 0; i < n; i++) ASSERT_NEAR(v[i], 0.010 + 0.005 * i, 1e-15);
  for (int i = 1; i < n; i++) ASSERT_TRUE(v[i] > v[i - 1]);
  ASSERT_TRUE(v[0] == 0.010 && v[1] == 0.015 && v[48] == 0.250);
  /* Inserted values keep EDM2's binary rounding: b + (b − a)·k. */
  ASSERT_TRUE(v[2] == 0.015 + (0.015 - 0.010) * 1);
  ec_freep(&v);
}

TEST(plain_lists_sorted_and_deduplicated) {
  double *v;
  int n;
  ASSERT_OK(phema_list_parse(" 0.1 ,0.05,0.1, 0.2", &v, &n));
  ASSERT_EQ_INT(n, 3);
  ASSERT_TRUE(v[0] == 0.05 && v[1] == 0.1 && v[2] == 0.2);
  ec_freep(&v);
  ASSERT_OK(phema_list_parse("0.13", &v, &n));
  ASSERT_EQ_INT(n, 1);
  ASSERT_TRUE(v[0] == 0.13);
  ec_freep(&v);
  ASSERT_OK(phema_list_parse("1.3e-1,2.88e-1", &v, &n));
  ASSERT_EQ_INT(n, 2);
  ec_freep(&v);
}

TEST(chained_and_descending_progressions) {
  double *v;
  int n;
  ASSERT_OK(phema_list_parse("0.01,0.02,...,0.05,...,0.1", &v, &n));
  ASSERT_EQ_INT(n, 10);
  for (int i = 0; i < n; i++) ASSERT_NEAR(v[i], 0.01 * (i + 1), 1e-15);
  ec_freep(&v);
  ASSERT_OK(phema_list_parse("0.2,0.15,...,0.05", &v, &n));
  ASSERT_EQ_INT(n, 4);
  ASSERT_NEAR(v[0], 0.05, 1e-15);
  ASSERT_NEAR(v[3], 0.2, 1e-15);
  ec_freep(&v);
}

TEST(errors) {
  double *v = (double *)1;
  int n = 5;
  ASSERT_STATUS(phema_list_parse("0.1,...,0.2", &v, &n), EC_EINVAL,
                "'...' (item 2) must follow two numbers");
  ASSERT_TRUE(v == NULL && n == 0);
  ASSERT_STATUS(phema_list_parse("...,0.1", &v, &n), EC_EINVAL, "must follow two numbers");
  ASSERT_STATUS(phema_list_parse("0.1,0.2,...,0.25", &v, &n), EC_EINVAL, "not an even progression");
  ASSERT_STATUS(phema_list_parse("0.01,0.02,...,0.055", &v, &n), EC_EINVAL,
                "not an even progression");
  ASSERT_STATUS(phema_list_parse("0.01,0.02,...,0.03", &v, &n), EC_EINVAL,
                "with at least one value to insert");
  ASSERT_STATUS(phema_list_parse("0.1,0.1,...,0.2", &v, &n), EC_EINVAL, "not an even progression");
  ASSERT_STATUS(phema_list_parse("0.1,0.2,...", &v, &n), EC_EINVAL,
                "'...' must be followed by a number");
  ASSERT_STATUS(phema_list_parse("0.1,0.2,...,...,0.5", &v, &n), EC_EINVAL,
                "must follow two numbers");
  ASSERT_STATUS(phema_list_parse("", &v, &n), EC_EINVAL, "sigma list is empty");
  ASSERT_STATUS(phema_list_parse("0.1,,0.2", &v, &n), EC_EINVAL, "item 2 is empty");
  ASSERT_STATUS(phema_list_parse("0.1,", &v, &n), EC_EINVAL, "item 2 is empty");
  ASSERT_STATUS(phema_list_parse("0.1,abc", &v, &n), EC_EINVAL, "item 2 (\"abc\") is not a number");
  ASSERT_STATUS(phema_list_parse("nan", &v, &n), EC_EINVAL, "is not a number");
  ASSERT_STATUS(phema_list_parse("0x1p-3", &v, &n), EC_EINVAL, "is not a number");
  ASSERT_STATUS(phema_list_parse("0.1.2", &v, &n), EC_EINVAL, "is not a number");
  ASSERT_STATUS(phema_list_parse("0.05,0.3", &v, &n), EC_EINVAL,
                "sigma_rel 0.3 is out of range: it must be in (0, 0.288675) (12^-0.5)");
  ASSERT_STATUS(phema_list_parse("0,0.1", &v, &n), EC_EINVAL, "sigma_rel 0 is out of range");
  ASSERT_STATUS(phema_list_parse("-0.1", &v, &n), EC_EINVAL, "out of range");
  ASSERT_STATUS(phema_list_parse("0.2,0.25,...,0.35", &v, &n), EC_EINVAL,
                "sigma_rel 0.3 is out of range");
}

TEST(allocation_failure) {
  double *v;
  int n;
  ec_alloc_fail_after(0);
  ec_status st = phema_list_parse("0.010,0.015,...,0.250", &v, &n);
  ec_alloc_fail_after(-1);
  ASSERT_EQ_INT(st, EC_ENOMEM);
  ASSERT_TRUE(v == NULL);
}

TEST_MAIN(edm2_example_gives_49_values, plain_lists_sorted_and_deduplicated,
          chained_and_descending_progressions, errors, allocation_failure)
