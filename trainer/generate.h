/* The EDM2 sampler (edm2-spec.md §8.1-8.2): Heun's 2nd-order method on the EDM time steps with
 * optional stochastic churn, and guidance as a lerp between a guiding net's and the main net's
 * denoised outputs (classifier-free guidance with an unconditional net, or autoguidance with a
 * smaller or less-trained one). Eval-mode networks (trainer/pass.h); float32 throughout, as the
 * reference samples in float32 on the CPU.
 *
 *   edm2_gen_opts o;
 *   edm2_gen_opts_default(&o);                        // 32 steps, σ 0.002 … 80, ρ 7, no guidance
 *   for each image j: edm2_seed_noise(seed[j], x + j*M, M); label = edm2_seed_class(seed[j], L);
 *   edm2_generate(&o, &net_pass, NULL, n, x, labels, edm2_seed_churn, seeds);   // x: noise in, samples out
 *
 * Per-seed random streams (core/rng.h, Philox): the initial noise, the class and the churn noise
 * of every step, each a pure function of (seed, index), so an image depends only on its seed and
 * the options, never on the batch it was made in or on the process that made it: bit for bit as
 * far as the sampler goes, while the network's GEMMs take a batch's images together and their
 * float32 sums may change in the last bits with the batch size or thread split (~1e-6). The
 * reference draws them from one torch.Generator per seed; the values differ, the structure is
 * the same (--noise-from in edm2-generate imports noise for exact comparisons). Layout: stream s
 * of seed S has the Philox key K(S, s) = mix(mix(S) XOR tag_s), mix = splitmix64's finaliser (add
 * 0x9E3779B97F4A7C15, then its xor-shift-multiply rounds), S taken as uint64_t, tag_s the stream
 * name's ASCII bytes read as a big-endian integer:
 *   noise  ("noise" = 0x6E6F697365): element e of the image (CHW order) = ec_rng_normal(K, e);
 *   class  ("class" = 0x636C617373): floor(ec_rng_uniform(K, 0)·label_dim), at most label_dim − 1;
 *   churn  ("churn" = 0x636875726E): element e at step i = ec_rng_normal(K, i·M + e).
 *
 * Float32 as the reference (PyTorch 1.13, CPU): every elementwise operation rounds to float32
 * once, scalars (σ_min, S_noise, γ, w, ...) are rounded to float32 where they meet a float32
 * tensor, S_min ≤ t ≤ S_max compares in float32, and the guidance lerp is PyTorch's:
 * w < 0.5 ? fma(w, D − Dg, Dg) : fma(−(D − Dg), 1 − w, D). Time steps: see edm2_gen_timesteps. */
#ifndef EDM2C_TRAINER_GENERATE_H
#define EDM2C_TRAINER_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "trainer/pass.h"

typedef struct {
  int steps;                            /* N >= 1; NFE = 2N − 1 */
  double sigma_min, sigma_max, rho;     /* 0.002, 80, 7 */
  double guidance;                      /* w; 1 = no guidance (no guiding net needed) */
  double S_churn, S_min, S_max, S_noise; /* 0, 0, inf, 1: deterministic */
} edm2_gen_opts;

void edm2_gen_opts_default(edm2_gen_opts *o);
/* EC_EINVAL naming the option (--steps, --sigma-min, ...) when the values cannot sample,
 * including σ and ρ whose float32 time steps would be 0 or infinite (e.g. ρ = 0.5 over
 * 0.002 … 80: the base cancels to 0 at the last step). */
ec_status edm2_gen_opts_check(const edm2_gen_opts *o);

/* t_0 … t_N (steps + 1 values, t_N = 0), in float32 as the reference computes them:
 * base_i = float(σmax^(1/ρ)) + (float(i) / float(N − 1))·float(σmin^(1/ρ) − σmax^(1/ρ)) with
 * the powers and their difference in double, then t_i = base_i^ρ as torch.pow does it (ρ = 1:
 * base; 2, 3: base·base(·base) in float32; 0.5: sqrtf; otherwise pow in double, rounded). The
 * reference's AVX2 kernel computes the last case with SLEEF's powf (1 ulp) on chunks of 16, so
 * some of its steps differ from these by 1 ulp (tests/unit/test_generate_golden.c). N = 1 gives
 * t_0 = σmax (the reference divides 0 by 0 there and samples NaN). */
void edm2_gen_timesteps(const edm2_gen_opts *o, float *t);

/* t̂ of the step starting at t_cur: t_cur + float(γ)·t_cur in float32 when churn applies there
 * (S_churn > 0 and S_min ≤ t_cur ≤ S_max in float32; γ = min(S_churn/N, sqrt(2) − 1)),
 * else t_cur. */
float edm2_gen_t_hat(const edm2_gen_opts *o, float t_cur);

/* Per-seed streams (layout above). Noise: M unit normals. Class: uniform in [0, label_dim);
 * -1 when label_dim <= 0. */
void edm2_seed_noise(int64_t seed, float *out, size_t M);
int edm2_seed_class(int64_t seed, int label_dim);

/* Churn noise: unit normals for image j (0 … n−1 of the call) at step i, M elements. Called
 * only at the steps where churn applies, for j = 0 … n−1 in order, from the calling thread. */
typedef void (*edm2_churn_fn)(void *ctx, int step, int j, float *eps, size_t M);
/* The per-seed churn stream: ctx is the call's array of int64_t seeds. */
void edm2_seed_churn(void *ctx, int step, int j, float *eps, size_t M);

/* Samples n images in place: x (n, C, H, W) holds unit-normal noise on entry (it is scaled by
 * t_0 here) and the final samples on return. labels (n, label_dim) or NULL (all-zero labels for
 * a conditional net, as the reference). net and gnet are eval-mode passes of capacity >= n; gnet
 * is used iff guidance != 1 and must then be non-NULL with the same image shape. churn may be
 * NULL when S_churn = 0. Allocates its scratch (returns EC_ENOMEM if it cannot). EC_EINVAL for
 * options edm2_gen_opts_check rejects, n < 0 or above a pass's capacity, a training-mode pass,
 * a missing or misshapen gnet, or a missing churn function; n = 0 does nothing. */
ec_status edm2_generate(const edm2_gen_opts *o, edm2_pass *net, edm2_pass *gnet, int n, float *x,
                        const float *labels, edm2_churn_fn churn, void *churn_ctx);

#endif
