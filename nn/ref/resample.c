/* Reference forms of nn/resample.h: 2× down/up sampling, float and double from resample.inc. */
#include "nn/resample.h"

#include "core/check.h"

#define NN_REF_SRC "nn/ref/resample.inc"
#include "nn/ref/instantiate.h"
