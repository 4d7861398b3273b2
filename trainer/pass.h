/* Forward and backward passes of the EDM2 denoiser (Precond + U-Net + uncertainty head,
 * edm2-spec.md §2–4) on the reference ops of nn/.
 *
 *   edm2_pass p;
 *   edm2_pass_init(&p, &net, 8, 1);                    // up to 8 images, training mode
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

typedef struct edm2_block_acts edm2_block_acts;

typedef struct {
  edm2_net *net; /* not owned */
  int cap;       /* the largest batch */
  int train;
  float *what;   /* normalised and gain-scaled weights (parameter slab layout) */
  float *dwhat;  /* their gradient during a backward (training mode) */
  int *gain_of;  /* per tensor: the index of the gain that scales it, or -1 */
  /* Memory: activations (and gradients in training mode) in one arena; op scratch. */
  float *arena, *ws;
  size_t arena_size, ws_size;
  /* Per-image and top-level activations (cap rows each). */
  float *c_in, *c_skip, *c_out, *c_noise;
  float *x_in, *x_ones, *fourier, *e_noise, *labels, *e_label, *e_sum, *emb, *h0, *F, *lv_fourier;
  edm2_block_acts *blocks;
  int *skip_of;  /* decoder blocks: the encoder module whose output they concatenate, or -1 */
  float **skip_out; /* encoder module outputs (the skips), module 0 = input convolution */
  /* Gradient buffers (training mode). */
  float **dskip, *g_a, *g_b, *t1, *t2, *t3, *t4, *ds, *demb, *demb_t, *de0, *de1;
  /* The last forward. */
  int n;
  uint64_t seed;
  const float *x, *in_labels;
  int have_forward;
} edm2_pass;

/* Plans and allocates everything for batches of up to `cap` images; train = 1 keeps what the
 * backward needs and allocates gradient buffers. */
ec_status edm2_pass_init(edm2_pass *p, edm2_net *net, int cap, int train);
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

#endif
