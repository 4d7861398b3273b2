/* Reference forms of nn/gelu.h, float and double from gelu.inc. */
#include "nn/gelu.h"

#define NN_REF_SRC "nn/ref/gelu.inc"
#include "nn/ref/instantiate.h"
