/* The DINOv2 ViT-L/14 of FD_DINOv2 (metrics-reference.md §1.2): facebookresearch/dinov2's
 * dinov2_vitl14 (img_size 518, LayerScale, no registers, block_chunks 0) from an already
 * preprocessed (N, 3, 224, 224) float input (antialiased bicubic resize to 224, /255, ImageNet
 * mean/std; nn/resize.h) to the 1024-d CLS token after the final LayerNorm (not L2-normalised).
 * CPU, float32, on nn/ ops (OpenBLAS sgemm for every matrix product).
 *
 * Forward: patch_embed.proj (14×14 stride-14 conv with bias, 3→1024: 16×16 = 256 tokens, row-major
 * (h, w)); prepend cls_token; add the positional embedding, whose 37×37 grid is interpolated to
 * 16×16 once at load time as the official interpolate_pos_encoding does for a 224 input
 * (F.interpolate bicubic, scale_factor (16 + 0.1)/37, align_corners False, no antialiasing:
 * PyTorch's upsample_bicubic2d with the given scale, src = (dst + 0.5)·(1/scale) − 0.5 in float,
 * A = −0.75, taps clamped to the grid); 24 pre-norm blocks
 *     x += ls1.gamma ⊙ proj(attn(norm1(x))),   x += ls2.gamma ⊙ fc2(gelu(fc1(norm2(x)))),
 * (LayerNorm eps 1e-6, qkv with bias, 16 heads × 64, softmax(q·kᵀ/8)·v, exact-erf GELU); final
 * LayerNorm `norm`; output token 0. */
#ifndef EDM2C_METRICS_DINOV2_H
#define EDM2C_METRICS_DINOV2_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DINOV2_SIZE 224   /* input height and width */
#define DINOV2_DIM 1024   /* embedding and feature dimension */
#define DINOV2_DEPTH 24   /* blocks */
#define DINOV2_HEADS 16   /* attention heads (64 channels each) */
#define DINOV2_MLP 4096   /* hidden width of the MLP */
#define DINOV2_PATCH 14   /* patch size */
#define DINOV2_GRID 37    /* the checkpoint's positional grid (518/14) */
#define DINOV2_TOKENS 257 /* 1 + (224/14)² */
#define DINOV2_LN_EPS 1e-6
#define DINOV2_PARAMS 304368640L /* every tensor of the state dict, mask_token included */

typedef struct dinov2 dinov2;

/* A weight source: fills dst (n float32, row-major) with the tensor `name` in the official
 * state-dict naming (metrics-reference.md §1.2): cls_token (1024), pos_embed (1370·1024),
 * patch_embed.proj.weight (1024, 3, 14, 14), patch_embed.proj.bias, blocks.<i>.norm1.weight/bias,
 * blocks.<i>.attn.qkv.weight (3072, 1024)/bias, blocks.<i>.attn.proj.weight (1024, 1024)/bias,
 * blocks.<i>.ls1.gamma, blocks.<i>.norm2.weight/bias, blocks.<i>.mlp.fc1.weight (4096, 1024)/bias,
 * blocks.<i>.mlp.fc2.weight (1024, 4096)/bias, blocks.<i>.ls2.gamma, norm.weight/bias
 * (mask_token is not asked for). On failure it records the message (ec_err, naming the tensor)
 * and returns its status. */
typedef ec_status (*dinov2_source)(void *user, const char *name, float *dst, size_t n);

/* Builds the network from `src` (non-finite weights are refused, naming the tensor). */
ec_status dinov2_create(dinov2 **out, dinov2_source src, void *user);
void dinov2_free(dinov2 *net);

/* The positional embedding added at 224×224: (257, 1024), row 0 the cls row, rows 1.. the grid
 * interpolated to 16×16 (row-major). */
const float *dinov2_pos_embed(const dinov2 *net);

/* Scratch floats needed by dinov2_forward (independent of N: images run one at a time). */
size_t dinov2_workspace(const dinov2 *net);

/* Optional intermediate outputs for all N images (NULL = not wanted): the tokens after block 0
 * and after block 11, each (N, 257, 1024). */
typedef struct {
  float *block0, *block11;
} dinov2_taps;

/* feat (N, 1024) = DINOv2 features of x (N, 3, 224, 224). OVERWRITES feat; ws: dinov2_workspace()
 * floats; taps may be NULL. The GEMMs use OpenBLAS's threads. */
void dinov2_forward(const dinov2 *net, float *feat, const float *x, int N, float *ws,
                    const dinov2_taps *taps);

/* The deterministic test weights (tests/golden/gen_dinov2.py implements the same), with
 * n = inception_fid_hash_normal(name, i) (metrics/inception.h's hash; reimplemented here):
 *   cls_token, pos_embed = float(0.5·n); patch_embed.proj.weight = float(n/sqrt(588));
 *   linear weights = float(n/sqrt(fan_in)); every bias = float(0.05·n);
 *   LayerNorm weights = float(1 + 0.1·n); ls*.gamma = float(0.5 + 0.1·n).
 * Test inputs: dinov2_hash_input(i) = float((b/255 − mean[c])/std[c]) in double, b = the top byte
 * of the hash bits of ("input", i), c = (i / 224²) mod 3, ImageNet mean/std. `user` unused. */
double dinov2_hash_normal(const char *name, uint64_t i);
float dinov2_hash_input(uint64_t i);
ec_status dinov2_hash_source(void *user, const char *name, float *dst, size_t n);

#endif
