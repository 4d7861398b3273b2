/* Reference forms of nn/pool.h: max, average and global average pooling, float and double from
 * pool.inc. Separable loops (a window's rows, then its columns): the direct k×k
 * loops took a fifth of the FID Inception's forward time. */
#include "nn/pool.h"

#include <math.h>

#include "core/check.h"

#define NN_REF_SRC "nn/ref/pool.inc"
#include "nn/ref/instantiate.h"
