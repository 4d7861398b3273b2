/* Item encoders (see encode.h). */
#include "trainer/encode.h"

#include "core/rng.h"

/* 0.5 / raw_std and −raw_mean · scale for raw_mean = [5.81, 3.25, 0.12, −2.15] and
 * raw_std = [4.17, 4.62, 3.71, 3.28], rounded to float32 as the reference's tensors are. */
const float edm2_latent_scale[EDM2_LATENT_CHANNELS] = {0.5f / 4.17f, 0.5f / 4.62f, 0.5f / 3.71f, 0.5f / 3.28f};
const float edm2_latent_bias[EDM2_LATENT_CHANNELS] = {-5.81f * (0.5f / 4.17f), -3.25f * (0.5f / 4.62f),
                                                      -0.12f * (0.5f / 3.71f), 2.15f * (0.5f / 3.28f)};

void edm2_encode_pixels(float *y, const uint8_t *raw, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = (float)raw[i] / 127.5f - 1.0f;
}

void edm2_encode_latents(float *y, const float *raw, size_t pixels, uint64_t key, uint64_t first) {
  for (int c = 0; c < EDM2_LATENT_CHANNELS; c++) {
    const float *mean = raw + (size_t)c * pixels, *std = raw + (size_t)(c + EDM2_LATENT_CHANNELS) * pixels;
    float *out = y + (size_t)c * pixels;
    for (size_t e = 0; e < pixels; e++) {
      const float eps = (float)ec_rng_normal(key, first + (uint64_t)c * pixels + e);
      out[e] = (mean[e] + eps * std[e]) * edm2_latent_scale[c] + edm2_latent_bias[c];
    }
  }
}
