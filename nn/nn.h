/* nn/: tensor ops with no model knowledge. This header holds what every op family shares.
 *
 * Dimension letters, used in every shape comment of nn/:
 *   N  batch            C  channels (Cin, Cout for a convolution's input and output)
 *   H  height           W  width            L  positions per image (H·W, or attention tokens)
 *   B  rows of a linear layer's input (batch, or 1)
 *   heads, Ch  attention heads and channels per head (C = heads·Ch)
 * Tensors are dense, row-major, NCHW, like PyTorch.
 *
 * Every op comes in forms with the same signature: `_ref` (plain C, float32: the definition of
 * correct), `_ref_f64` (the same code in float64, used by the finite-difference gradient checks
 * and as a high-precision reference in tests) and, with the CUDA backend, `_cuda` (device
 * pointers). Contracts shared by all of them:
 *   - ops never allocate: outputs, saved state and scratch come from the caller; scratch sizes
 *     come from the `*_workspace` functions (counted in elements of the op's type);
 *   - every backward says, per output, whether it OVERWRITES or ACCUMULATES (+=); gradients of
 *     parameters accumulate (so a batch can be split), gradients of activations overwrite;
 *   - a NULL gradient output means "not needed" and is skipped;
 *   - outputs may alias inputs only where the op's comment says so;
 *   - shape mistakes are programming errors and abort (EC_ASSERT), they are not returned.
 *
 * `ctx` carries the backend's handles (stream, cuBLAS/cuDNN) for `_cuda`; the reference forms
 * ignore it and accept NULL. */
#ifndef EDM2C_NN_NN_H
#define EDM2C_NN_NN_H

#include <stddef.h>
#include <stdint.h>

typedef struct nn_ctx nn_ctx;

/* The eps of every EDM2 normalisation (weights, pixel norm, attention q/k/v). */
#define NN_NORM_EPS 1e-4

/* Declares an op family for both reference types: NN_DECLARE(MACRO) expands MACRO(float, ) and
 * MACRO(double, _f64), where MACRO(T, S) declares functions named nn_<op>_ref##S. */
#define NN_DECLARE(MACRO) MACRO(float, ) MACRO(double, _f64)

#endif
