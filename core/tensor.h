/* Element types and shapes shared by the file formats (HDF5, safetensors) and the tensor code. */
#ifndef EDM2C_CORE_TENSOR_H
#define EDM2C_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  EC_F32 = 0,  /* float */
  EC_F16 = 1,  /* IEEE binary16, stored in uint16_t */
  EC_BF16 = 2, /* bfloat16, stored in uint16_t */
  EC_F64 = 3,  /* double */
  EC_I32 = 4,
  EC_I64 = 5,
  EC_U8 = 6,
  EC_DTYPE_COUNT
} ec_dtype;

/* The most dimensions any tensor we store has (EDM2 uses at most 4). */
#define EC_MAX_DIMS 8

typedef struct {
  int ndim; /* 0 = scalar */
  int64_t dims[EC_MAX_DIMS];
} ec_shape;

size_t ec_dtype_size(ec_dtype t);
/* "float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8" (numpy names). */
const char *ec_dtype_name(ec_dtype t);
/* Parses a numpy name or a safetensors code ("F32", "F16", "BF16", "F64", "I32", "I64", "U8").
 * Returns -1 when unknown. */
int ec_dtype_parse(const char *s);
/* Safetensors code of a dtype ("F32"). */
const char *ec_dtype_st_code(ec_dtype t);

int64_t ec_shape_numel(const ec_shape *s);
int ec_shape_equal(const ec_shape *a, const ec_shape *b);
/* Writes "[128, 5, 3, 3]" ("[]" for a scalar) into buf; returns buf. */
char *ec_shape_str(const ec_shape *s, char *buf, size_t size);
ec_shape ec_shape_make(int ndim, const int64_t *dims);

/* Converts n elements between floating types (F32, F16, BF16, F64). Exact where the target can
 * represent the value, round-to-nearest-even otherwise. Buffers must not overlap. */
void ec_convert(void *dst, ec_dtype dst_type, const void *src, ec_dtype src_type, size_t n);
/* Index of the first NaN or infinite value in x[0..n), or n when all are finite. Fast enough to
 * run on every value read (snapshot verification). */
size_t ec_first_nonfinite(const float *x, size_t n);

/* 1 when both types are floating types that ec_convert handles. */
int ec_dtype_is_float(ec_dtype t);

#endif
