/* Reference forms of nn/linear.h, float and double from linear.inc. */
#include "nn/linear.h"

#include <string.h>

#include "core/check.h"

#define NN_REF_SRC "nn/ref/linear.inc"
#include "nn/ref/instantiate.h"
