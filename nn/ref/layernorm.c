/* Reference forms of nn/layernorm.h, float and double from layernorm.inc. */
#include "nn/layernorm.h"

#include "core/check.h"

#define NN_REF_SRC "nn/ref/layernorm.inc"
#include "nn/ref/instantiate.h"
