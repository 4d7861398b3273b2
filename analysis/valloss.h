/* val-loss: the EDM2 denoising loss of a network on held-out data over a fixed σ grid with fixed
 * noise (edm2-sweep's cheap, deterministic metric; docs/training.md "val-loss").
 *
 *   edm2_valloss_opts o;
 *   edm2_valloss_opts_default(&o);              // Fashion-MNIST's test split, 128 images × 4 σ
 *   double v, se, per_sigma[4];
 *   edm2_valloss(&net, &o, &v, per_sigma, &se);
 *
 * Many models on the same inputs (a sweep over EMA lengths) read the data once:
 *
 *   edm2_valloss_set *s;
 *   edm2_valloss_open(&s, &o, &net.arch.cfg);   // images, labels, σ grid, noise streams
 *   edm2_valloss_eval(s, &net_a, &v, per_sigma, &se, NULL);
 *   edm2_valloss_eval(s, &net_b, &v, per_sigma, &se, NULL);
 *   edm2_valloss_close(&s);
 *
 * Definition. The items k in [first, first + num) of `data` (trainer/dataset.h): by default
 * "fashion-mnist:test", Fashion-MNIST's test split; for any other dataset the caller holds out
 * a range of items. Each is encoded as the trainer encodes it (trainer/encode.h): y = x/127.5 − 1
 * for images; for VAE latents (8 channels of mean and std) one fixed sample, ε of stream
 * edm2_valloss_key(seed, -1) at k·M + e, scaled as in training. Labels come from the dataset for
 * a class-conditional network (whose label_dim it must match), none for an unconditional one.
 * The σ grid is the midpoint quantiles of training's log-normal ln σ ~ N(P_mean, P_std²):
 *   σ_j = exp(P_mean + P_std·Φ⁻¹((j + ½)/nsigma)),  j = 0 … nsigma − 1,
 * so that a plain mean over j stands for the expectation over training's σ; σ_j is rounded to
 * float32 (the network's input) and that value is used throughout. Element e of the noise n_kj
 * of item k at level j is ec_rng_normal(edm2_valloss_key(seed, j), k·M + e) (core/rng.h): a
 * pure function of (seed, item index, σ index), whatever the batch, the thread count, the slice
 * (an item keeps its noise in any range that holds it), nsigma or the models evaluated.
 * Then, with D the denoiser in eval mode (edm2_pass, train = 0: no dropout, weights normalised
 * on the fly without rewriting the network, as sampling uses it) and M elements per image,
 *   ℓ_kj = λ(σ_j)·(1/M)·Σ_e (D(y_k + σ_j·n_kj; σ_j, label_k) − y_k)²,
 *   λ(σ) = (σ² + σ_data²)/(σ·σ_data)²   (trainer/precond.h's edm2_loss_ref with u = 0),
 *   value = mean over k and j;  per_sigma[j] = mean over k;
 *   stderr = (standard deviation over k of mean_j ℓ_kj)/sqrt(num)  (NaN when num = 1),
 * all summed in float64 in a fixed order.
 *
 * Without the uncertainty term. Training divides λ by e^u and adds u, u the learned
 * log-variance of the σ level (edm2-spec.md §6.3). That head is a training device: it reweights
 * the σ levels as training goes so that their losses balance, sampling never uses it, and
 * post-hoc EMA averages it along with everything else. Comparing EMA lengths must compare the
 * denoiser that sampling uses under one fixed weighting; with u each model would weight the σ
 * levels its own way, and the difference would mix in how well its log-variance head fits.
 *
 * Common random numbers. Every model evaluated with the same options sees the same images, σ
 * values and noise, so differences between models (an EMA sweep) are much more precise than the
 * standard error of one value, which is dominated by how hard the individual images are.
 *
 * Determinism. The sums run in a fixed order; D of an image does not depend on the other images
 * of its batch or the thread count except through OpenBLAS, whose kernels may round a GEMM
 * differently at another batch width, so values agree to rounding, not to the bit
 * (tests/unit/test_valloss.c: batch 3, 16 and 60 with 1 and 2 threads differ by at most 7e-10
 * relative). The same options and threads give the same bits.
 *
 * Cost and size (the defaults, measured on this project's 2-core VM with the `fmnist` preset
 * network, 32 channels at 32×32; other jobs shared the machine). One value is num·nsigma = 512
 * eval-mode forwards: 3.7 s on a quiet machine (7.2 ms per forward with 2 threads), 5–7 s with
 * the usual other load, reading the 10000 test images and encoding 128 of them 0.05–0.13 s once
 * per set, a posthoc-ema model file 0.01–0.03 s; the 25 models of a sweep over σ_rel 0.010 …
 * 0.250 take about 2–3 minutes. Batch 16 keeps the pass at 250 MiB (64: 950 MiB) at the same
 * speed. Why 128 × 4 suffices: on the demo's run (16Ki images, profiles 0.050 and 0.100), 512 ×
 * 4 gave 0.2620, 0.2601, 0.2601, 0.2614, 0.2635, 0.2707, 0.2886, 0.3413 for σ_rel 0.010, 0.025,
 * 0.050, 0.075, 0.100, 0.150, 0.200, 0.250, each ± 0.004 (standard error); the first 128
 * images alone (± 0.007) give the same curve shifted down by 0.006: the differences between
 * models, paired over the common items, have standard errors of 0.0003–0.0007 near the minimum
 * (0.0018 at 0.250), an order of magnitude below those of the values, and each of four disjoint
 * 128-image blocks finds the minimum at 0.025 or 0.050. These times need OpenBLAS's AVX-512 kernels: a program calls
 * nn_blas_setup() first (nn/blas.h); without it this VM gets the SSE3 kernels and 2.5× the time
 * (20 ms per forward). */
#ifndef EDM2C_ANALYSIS_VALLOSS_H
#define EDM2C_ANALYSIS_VALLOSS_H

#include <stdint.h>

#include "core/status.h"
#include "trainer/net.h"
#include "trainer/netconfig.h"

#define EDM2_VALLOSS_MAX_SIGMA 1024

typedef struct {
  const char *data;     /* dataset path (trainer/dataset.h); default "fashion-mnist:test" */
  int64_t first, num;   /* the held-out items [first, first + num); default 0, 128 */
  int nsigma;           /* σ levels, 1 … EDM2_VALLOSS_MAX_SIGMA; default 4 */
  uint64_t seed;        /* noise (and latent samples); default 0 */
  double P_mean, P_std; /* the run's training σ distribution; default the fmnist preset's (−0.8,
                           1.6; also img64's). Set them from the run's config.json. */
  int batch;            /* (image, σ) pairs per forward; default 16 */
  int threads;          /* 0 (default): all online CPUs */
} edm2_valloss_opts;

void edm2_valloss_opts_default(edm2_valloss_opts *o);
/* Sets P_mean and P_std from a run's configuration JSON: RUN/config.json, or the `config`
 * attribute of a snapshot, checkpoint or posthoc-ema model file (keys absent: unchanged).
 * EC_EFORMAT, prefixed by `what`, for text that is not a JSON object or bad values. */
ec_status edm2_valloss_opts_from_config(edm2_valloss_opts *o, const char *json, const char *what);

/* The held-out data of one configuration of options, shared by every model it evaluates. */
typedef struct edm2_valloss_set edm2_valloss_set;

/* Reads and encodes the held-out items for networks shaped as cfg (resolution, channels,
 * label_dim). Errors (EC_EINVAL unless the dataset's own) name the dataset path: a range outside
 * the dataset, num < 1, items that do not fit the network, a conditional network and a dataset
 * without labels or with another label_dim, bad nsigma, P_std, batch or threads. */
ec_status edm2_valloss_open(edm2_valloss_set **s, const edm2_valloss_opts *o, const edm2_netcfg *cfg);
void edm2_valloss_close(edm2_valloss_set **s);

/* The value of one network (shaped as the set's cfg; EC_EINVAL otherwise). per_sigma (nsigma
 * values), std_err and per_item (num values: each item's mean over σ, for paired comparisons
 * of two models, sd(a − b)/sqrt(num)) may be NULL. The network is not changed. */
ec_status edm2_valloss_eval(edm2_valloss_set *s, edm2_net *net, double *value, double *per_sigma,
                            double *std_err, double *per_item);

/* open + eval + close. */
ec_status edm2_valloss(edm2_net *net, const edm2_valloss_opts *o, double *value, double *per_sigma,
                       double *std_err);

/* The σ grid of the options (nsigma values, float32-rounded as the network sees them); EC_EINVAL
 * for bad nsigma, P_mean or P_std. */
ec_status edm2_valloss_sigmas(const edm2_valloss_opts *o, double *sigma);

/* The stream key of σ level j (j >= 0) or of latent samples (j = −1):
 * splitmix64(splitmix64(seed) + 0x76616c6c6f737300 + j) with j as two's complement ("valloss"
 * keeps these apart from the trainer's streams of the same seed). */
uint64_t edm2_valloss_key(uint64_t seed, int64_t j);

/* Φ⁻¹(p), the standard normal quantile, for 0 < p < 1 in float64 (Acklam's rational
 * approximation, relative error 1.2e-9, refined by one Halley step on erfc: within 1e-12 of the
 * exact quantile of the double p from 1e-300 to 1 − 2⁻⁵³); −inf at 0, +inf at 1, NaN outside. */
double edm2_normal_quantile(double p);

#endif
