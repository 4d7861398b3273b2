/* Reference forms of nn/sdpa.h, float and double from sdpa.inc. */
#include "nn/sdpa.h"

#include "core/check.h"

size_t nn_sdpa_workspace(size_t L) { return L * L; }

#define NN_REF_SRC "nn/ref/sdpa.inc"
#include "nn/ref/instantiate.h"
