/* Reference forms of nn/norm.h: pixel and weight normalisation, float and double from norm.inc. */
#include "nn/norm.h"

#include "core/check.h"

#define NN_REF_SRC "nn/ref/norm.inc"
#include "nn/ref/instantiate.h"
