/* Reference forms of nn/fourier.h: magnitude-preserving Fourier features, float and double from
 * fourier.inc. */
#include "nn/fourier.h"

#include "core/check.h"

#define NN_REF_SRC "nn/ref/fourier.inc"
#include "nn/ref/instantiate.h"
