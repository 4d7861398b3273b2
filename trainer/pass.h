/* Forward and backward passes of the EDM2 denoiser (Precond + U-Net + uncertainty head,
 * edm2-spec.md §2–4) on the reference ops of nn/.
 *
 *   edm2_pass p;
 *   edm2_pass_init(&p, &net, 8, 1, threads);           // up to 8 images, training mode
 *   edm2_forward(&p, n, x, sigma, labels, D, logvar, seed);
 *   edm2_loss_ref(NULL, loss, dD, du, D, y, logvar, sigma, n, M, 0.5, 1.0 / n);
 *   edm2_backward(&p, dD, du, grads);                  // grads += d loss / d params
 *
 * Training mode does what the reference's train() mode does: before use, every weight is
 * replaced IN PLACE in the network by its normalised self (forced weight normalisation,
 * edm2-spec.md §1.7), and dropout is applied when the configuration asks for it. The pass
 * keeps what the backward needs. Eval mode changes nothing in the network. */
#ifndef EDM2C_TRAINER_PASS_H
#define EDM2C_TRAINER_PASS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "trainer/net.h"

typedef struct edm2_shard edm2_shard;
typedef struct ec_pool ec_pool;

typedef struct {
  edm2_net *net; /* not owned */
  int cap;       /* the largest batch */
  int train;
  int threads;   /* threads the pass uses (its own, or OpenBLAS's when one shard runs) */
  float *what;   /* normalised and gain-scaled weights (parameter slab layout), shared by shards */
  int *gain_of;  /* per tensor: the index of the gain that scales it, or -1 */
  int *skip_of;  /* decoder blocks: the encoder module whose output they concatenate, or -1 */
  /* The batch is cut into up to `nshards` consecutive slices, one per thread; each shard keeps
   * its slice's activations and its own weight gradient (summed after the backward). */
  edm2_shard *shards;
  int nshards, active; /* active: shards the last forward used */
  ec_pool *pool;       /* NULL when nshards == 1 */
  int n;
  int have_forward;
  /* Dropout masks of image i of a forward are those of image image_base + i of the stream
   * `seed` (0 unless set): a training step split into accumulation rounds sets it to the
   * round's first image, so the split does not change the masks. */
  int64_t image_base;
} edm2_pass;

/* Plans and allocates everything for batches of up to `cap` images; train = 1 keeps what the
 * backward needs and allocates gradient buffers. threads >= 1: the batch is split into
 * min(threads, cap) slices that run concurrently, each on single-threaded OpenBLAS (small
 * GEMMs do not scale across OpenBLAS's threads; whole images do); a batch of one image runs on
 * OpenBLAS's threads instead. Results do not depend on the split except for the order in which
 * weight gradients of different images are summed. */
ec_status edm2_pass_init(edm2_pass *p, edm2_net *net, int cap, int train, int threads);
void edm2_pass_free(edm2_pass *p);
/* Bytes the pass allocates (arena, scratch, normalised weights). */
size_t edm2_pass_bytes(const edm2_pass *p);

/* D (n, C, H, W) and logvar (n; may be NULL) for x (n, C, H, W), sigma (n; each > 0) and labels
 * (n, label_dim; NULL = all-zero labels, ignored when unconditional). `seed` selects the dropout
 * masks (training mode with dropout > 0). x must stay valid until the backward. */
void edm2_forward(edm2_pass *p, int n, const float *x, const float *sigma, const float *labels,
                  float *D, float *logvar, uint64_t seed);

/* Gradients of a scalar loss with respect to every parameter, given dD = dloss/dD (n, C, H, W)
 * and dlogvar = dloss/dlogvar (n; NULL = 0), after a training-mode forward. ACCUMULATES into
 * grads (parameter slab layout), as PyTorch accumulates .grad. */
void edm2_backward(edm2_pass *p, const float *dD, const float *dlogvar, float *grads);

/* Activation magnitudes of the last forward (paper Appendix A.6), per resolution bucket of the
 * U-Net's blocks ("enc32", "dec8", … in network order): the outputs of the operations that use
 * the bucket's weights (both 3×3 convolutions, the skip convolution, the embedding's linear
 * layer as N×1 features, the attention's qkv and projection), before any nonlinearity and after
 * the gains. Each feature's magnitude is sqrt(mean over pixels of h²), averaged over the images
 * of the forward; max and mean are over all features of the bucket. Returns the number of
 * buckets written (at most cap). */
typedef struct {
  char bucket[16];
  double max, mean;
} edm2_act_magnitude;
int edm2_pass_act_magnitudes(const edm2_pass *p, edm2_act_magnitude *out, int cap);

#endif
