/* Reference forms of nn/act.h: elementwise and per-channel ops, float and double from act.inc. */
#include "nn/act.h"

#include "core/check.h"

#define NN_REF_SRC "nn/ref/act.inc"
#include "nn/ref/instantiate.h"
