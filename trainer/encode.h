/* Encoding dataset items into the network's input space (edm2-spec.md §10.2), every time an item
 * is used:
 *   - uint8 images (StandardRGBEncoder): x / 127.5 − 1;
 *   - VAE latents stored as 8 channels, the posterior's mean (0–3) and std (4–7)
 *     (StabilityVAEEncoder): a fresh sample z = mean + ε·std, then z·scale + bias per channel,
 *     scale = 0.5 / raw_std and bias = −raw_mean·scale with the reference's constants, giving
 *     4 channels of about zero mean and standard deviation 0.5. ε is element `first + e` of the
 *     counter-based stream `key` (core/rng.h), so every use of an item draws anew and a resumed
 *     run draws the same. */
#ifndef EDM2C_TRAINER_ENCODE_H
#define EDM2C_TRAINER_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#define EDM2_LATENT_CHANNELS 4

/* y (C × pixels) from uint8 (C × pixels). */
void edm2_encode_pixels(float *y, const uint8_t *raw, size_t n);

/* y (4 × pixels) from a float32 item (8 × pixels). */
void edm2_encode_latents(float *y, const float *raw, size_t pixels, uint64_t key, uint64_t first);

/* The per-channel constants (for tests and the decoder). */
extern const float edm2_latent_scale[EDM2_LATENT_CHANNELS], edm2_latent_bias[EDM2_LATENT_CHANNELS];

#endif
