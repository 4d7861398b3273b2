/* Reference forms of nn/dropout.h: inverted dropout with counter-based masks, float and double
 * from dropout.inc. */
#include "nn/dropout.h"

#include "core/check.h"
#include "core/rng.h"

#define NN_REF_SRC "nn/ref/dropout.inc"
#include "nn/ref/instantiate.h"
