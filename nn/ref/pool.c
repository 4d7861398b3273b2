/* Reference forms of nn/pool.h: max, average and global average pooling, float and double from
 * pool.inc. Direct loops: pooling is a small fraction of a feature network's time. */
#include "nn/pool.h"

#include <math.h>

#include "core/check.h"

#define NN_REF_SRC "nn/ref/pool.inc"
#include "nn/ref/instantiate.h"
