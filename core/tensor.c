/* dtype and shape helpers; see tensor.h. */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "half.h"

static const struct {
  const char *name, *st;
  size_t size;
} dtypes[EC_DTYPE_COUNT] = {
    [EC_F32] = {"float32", "F32", 4}, [EC_F16] = {"float16", "F16", 2},
    [EC_BF16] = {"bfloat16", "BF16", 2}, [EC_F64] = {"float64", "F64", 8},
    [EC_I32] = {"int32", "I32", 4},     [EC_I64] = {"int64", "I64", 8},
    [EC_U8] = {"uint8", "U8", 1},
};

size_t ec_dtype_size(ec_dtype t) {
  EC_ASSERT(t >= 0 && t < EC_DTYPE_COUNT);
  return dtypes[t].size;
}

const char *ec_dtype_name(ec_dtype t) {
  EC_ASSERT(t >= 0 && t < EC_DTYPE_COUNT);
  return dtypes[t].name;
}

const char *ec_dtype_st_code(ec_dtype t) {
  EC_ASSERT(t >= 0 && t < EC_DTYPE_COUNT);
  return dtypes[t].st;
}

int ec_dtype_parse(const char *s) {
  for (int t = 0; t < EC_DTYPE_COUNT; t++)
    if (!strcmp(s, dtypes[t].name) || !strcmp(s, dtypes[t].st)) return t;
  return -1;
}

int ec_dtype_is_float(ec_dtype t) { return t == EC_F32 || t == EC_F16 || t == EC_BF16 || t == EC_F64; }

int64_t ec_shape_numel(const ec_shape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= s->dims[i];
  return n;
}

int ec_shape_equal(const ec_shape *a, const ec_shape *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->dims[i] != b->dims[i]) return 0;
  return 1;
}

char *ec_shape_str(const ec_shape *s, char *buf, size_t size) {
  size_t len = 0;
  len += (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < s->ndim && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, i ? ", %lld" : "%lld", (long long)s->dims[i]);
  if (len < size) snprintf(buf + len, size - len, "]");
  return buf;
}

ec_shape ec_shape_make(int ndim, const int64_t *dims) {
  ec_shape s = {0};
  EC_ASSERT(ndim >= 0 && ndim <= EC_MAX_DIMS);
  s.ndim = ndim;
  for (int i = 0; i < ndim; i++) s.dims[i] = dims[i];
  return s;
}

/* Loads element i of a floating array as double (exact for every source type). */
static double load(const void *src, ec_dtype t, size_t i) {
  switch (t) {
  case EC_F32: return ((const float *)src)[i];
  case EC_F16: return ec_half_to_float(((const uint16_t *)src)[i]);
  case EC_BF16: return ec_bf16_to_float(((const uint16_t *)src)[i]);
  case EC_F64: return ((const double *)src)[i];
  default: EC_ABORT("ec_convert: %s is not a floating type", ec_dtype_name(t));
  }
}

void ec_convert(void *dst, ec_dtype dst_type, const void *src, ec_dtype src_type, size_t n) {
  if (dst_type == src_type) {
    memcpy(dst, src, n * ec_dtype_size(src_type));
    return;
  }
  /* Fast paths for the conversions on hot paths (reading and writing float16 snapshots). */
  if (dst_type == EC_F32 && src_type == EC_F16) {
    ec_half_to_float_array(dst, src, n);
    return;
  }
  if (dst_type == EC_F16 && src_type == EC_F32) {
    ec_float_to_half_array(dst, src, n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    double v = load(src, src_type, i);
    switch (dst_type) {
    case EC_F32: ((float *)dst)[i] = (float)v; break;
    /* Two roundings (double -> float -> half) can differ from one rounding only for doubles;
     * go through float only when the source is float-exact. */
    case EC_F16:
      EC_ASSERTF(src_type != EC_F64, "ec_convert: float64 -> float16 is not supported");
      ((uint16_t *)dst)[i] = ec_float_to_half((float)v);
      break;
    case EC_BF16:
      EC_ASSERTF(src_type != EC_F64, "ec_convert: float64 -> bfloat16 is not supported");
      ((uint16_t *)dst)[i] = ec_float_to_bf16((float)v);
      break;
    case EC_F64: ((double *)dst)[i] = v; break;
    default: EC_ABORT("ec_convert: %s is not a floating type", ec_dtype_name(dst_type));
    }
  }
}

size_t ec_first_nonfinite(const float *x, size_t n) {
  /* Blocks of a fixed size with an integer OR-reduction of "exponent all ones", which compilers
   * vectorize at -O2; a block with a hit is rescanned to find the index. */
  enum { BLOCK = 64 };
  size_t i = 0;
  for (; i + BLOCK <= n; i += BLOCK) {
    uint32_t hit = 0;
    for (size_t k = 0; k < BLOCK; k++) {
      uint32_t u;
      memcpy(&u, &x[i + k], sizeof u);
      hit |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (hit) break;
  }
  for (; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return i;
  }
  return n;
}
