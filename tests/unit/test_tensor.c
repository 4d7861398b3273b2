/* core/tensor: dtype names, shapes, conversions. */
#include "core/half.h"
#include "core/tensor.h"
#include "tests/test.h"

TEST(dtype_names_roundtrip) {
  for (int t = 0; t < EC_DTYPE_COUNT; t++) {
    ASSERT_EQ_INT(ec_dtype_parse(ec_dtype_name((ec_dtype)t)), t);
    ASSERT_EQ_INT(ec_dtype_parse(ec_dtype_st_code((ec_dtype)t)), t);
  }
  ASSERT_EQ_INT(ec_dtype_parse("float8"), -1);
  ASSERT_EQ_INT(ec_dtype_size(EC_F16), 2);
  ASSERT_EQ_INT(ec_dtype_size(EC_F64), 8);
}

TEST(shapes) {
  ec_shape s = ec_shape_make(4, (int64_t[]){128, 5, 3, 3});
  char buf[64];
  ASSERT_EQ_INT(ec_shape_numel(&s), 5760);
  ASSERT_STR_EQ(ec_shape_str(&s, buf, sizeof buf), "[128, 5, 3, 3]");
  ec_shape scalar = ec_shape_make(0, NULL);
  ASSERT_EQ_INT(ec_shape_numel(&scalar), 1);
  ASSERT_STR_EQ(ec_shape_str(&scalar, buf, sizeof buf), "[]");
  ASSERT_TRUE(!ec_shape_equal(&s, &scalar));
  ec_shape t = s;
  ASSERT_TRUE(ec_shape_equal(&s, &t));
  t.dims[3] = 1;
  ASSERT_TRUE(!ec_shape_equal(&s, &t));
}

TEST(conversions) {
  float f[4] = {1.5f, -0.1f, 3e5f, 1e-3f};
  double d[4];
  uint16_t h[4], b[4];
  float back[4];
  ec_convert(d, EC_F64, f, EC_F32, 4);
  for (int i = 0; i < 4; i++) ASSERT_EQ_INT(d[i] == (double)f[i], 1);
  ec_convert(h, EC_F16, f, EC_F32, 4);
  for (int i = 0; i < 4; i++) ASSERT_EQ_INT(h[i], ec_float_to_half(f[i]));
  ec_convert(b, EC_BF16, h, EC_F16, 4);
  ec_convert(back, EC_F32, b, EC_BF16, 4);
  ASSERT_NEAR(back[0], 1.5, 0);
  ec_convert(d, EC_F64, h, EC_F16, 4);
  ASSERT_TRUE(isinf(d[2])); /* 3e5 overflows float16 */
  ec_convert(back, EC_F32, d, EC_F64, 4);
  ASSERT_NEAR(back[3], 1e-3, 1e-6);
}

TEST(first_nonfinite) {
  static float x[1000];
  for (int i = 0; i < 1000; i++) x[i] = (float)i - 500.0f;
  ASSERT_EQ_INT(ec_first_nonfinite(x, 1000), 1000);
  ASSERT_EQ_INT(ec_first_nonfinite(x, 0), 0);
  int where[] = {0, 63, 64, 130, 999};
  for (int k = 0; k < 5; k++) {
    x[where[k]] = k % 2 ? INFINITY : NAN;
    ASSERT_EQ_INT(ec_first_nonfinite(x, 1000), where[k]);
    ASSERT_EQ_INT(ec_first_nonfinite(x, (size_t)where[k]), where[k]); /* not within the range */
    x[where[k]] = -INFINITY;
    ASSERT_EQ_INT(ec_first_nonfinite(x, 1000), where[k]);
    x[where[k]] = 3.0e38f; /* large but finite */
    ASSERT_EQ_INT(ec_first_nonfinite(x, 1000), 1000);
  }
}

TEST_MAIN(dtype_names_roundtrip, shapes, conversions, first_nonfinite)
