/* The EDM2 sampler (trainer/generate.h; edm2-spec.md §8.1-8.2).
 *
 * Float32 arithmetic is written out operation by operation: each C expression below on floats
 * rounds once per operation (C11 mode, FLT_EVAL_METHOD 0 on x86-64 and aarch64, no contraction
 * into fused multiply-adds under -std=c11), which is what PyTorch's elementwise kernels do on
 * float32 tensors. The one place where PyTorch fuses is torch.lerp, written with fmaf here. */
#include "trainer/generate.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"

void edm2_gen_opts_default(edm2_gen_opts *o) {
  o->steps = 32;
  o->sigma_min = 0.002;
  o->sigma_max = 80;
  o->rho = 7;
  o->guidance = 1;
  o->S_churn = 0;
  o->S_min = 0;
  o->S_max = INFINITY;
  o->S_noise = 1;
}

/* torch.pow(float32 tensor, scalar exponent) on the CPU: the exponents 1, 0.5, 2 and 3 have their
 * own kernels (copy, sqrt, b·b, b·b·b); the others go through pow, here in double (the scalar
 * path of PyTorch's kernel; its vector path uses SLEEF's powf, within 1 ulp of this). */
static float pow_like_torch(float base, double e) {
  if (e == 1.0) return base;
  if (e == 0.5) return sqrtf(base);
  if (e == 2.0) return base * base;
  if (e == 3.0) return base * base * base;
  return (float)pow((double)base, e);
}

/* t_i for i < steps (the formula of generate.h). */
static float time_step(const edm2_gen_opts *o, int i) {
  double a = pow(o->sigma_max, 1.0 / o->rho), b = pow(o->sigma_min, 1.0 / o->rho);
  float fa = (float)a, fd = (float)(b - a);
  float frac = o->steps > 1 ? (float)i / (float)(o->steps - 1) : 0.0f;
  float base = fa + frac * fd;
  return pow_like_torch(base, o->rho);
}

void edm2_gen_timesteps(const edm2_gen_opts *o, float *t) {
  for (int i = 0; i < o->steps; i++) t[i] = time_step(o, i);
  t[o->steps] = 0.0f;
}

ec_status edm2_gen_opts_check(const edm2_gen_opts *o) {
  if (o->steps < 1) return ec_err(EC_EINVAL, "--steps: must be at least 1 (got %d)", o->steps);
  if (!(o->sigma_min > 0) || !isfinite(o->sigma_min))
    return ec_err(EC_EINVAL, "--sigma-min: must be a positive finite number (got %g)",
                  o->sigma_min);
  if (!(o->sigma_max > o->sigma_min) || !isfinite(o->sigma_max))
    return ec_err(EC_EINVAL, "--sigma-max: must be finite and greater than --sigma-min %g (got %g)",
                  o->sigma_min, o->sigma_max);
  if (!(o->rho > 0) || !isfinite(o->rho))
    return ec_err(EC_EINVAL, "--rho: must be a positive finite number (got %g)", o->rho);
  if (!(o->S_churn >= 0) || !isfinite(o->S_churn))
    return ec_err(EC_EINVAL, "--S-churn: must be a finite number >= 0 (got %g)", o->S_churn);
  if (isnan(o->S_min) || isnan(o->S_max) || !(o->S_min <= o->S_max))
    return ec_err(EC_EINVAL, "--S-min/--S-max: need S_min <= S_max (got %g and %g)", o->S_min,
                  o->S_max);
  if (!(o->S_noise >= 0) || !isfinite(o->S_noise))
    return ec_err(EC_EINVAL, "--S-noise: must be a finite number >= 0 (got %g)", o->S_noise);
  if (!isfinite(o->guidance))
    return ec_err(EC_EINVAL, "--guidance: must be a finite number (got %g)", o->guidance);
  /* The steps the sampler divides by must be positive float32 numbers: σ or ρ far out of range
   * (σ_min below float32's range, σ_max^ρ-like overflow) would sample NaN. Checked at the ends
   * and in the middle; t is monotonic in i. */
  int probe[3] = {0, o->steps / 2, o->steps - 1};
  for (int k = 0; k < 3; k++) {
    float t = time_step(o, probe[k]);
    if (!(t > 0) || !isfinite(t))
      return ec_err(EC_EINVAL,
                    "--sigma-min/--sigma-max/--rho: time step %d is %g, not a positive float32 "
                    "number (sigma %g ... %g, rho %g)",
                    probe[k], (double)t, o->sigma_min, o->sigma_max, o->rho);
  }
  return EC_OK;
}

/* Whether churn applies at a step starting at t_cur: PyTorch compares the float32 tensor with
 * the Python floats rounded to float32. */
static int churn_applies(const edm2_gen_opts *o, float t_cur) {
  return o->S_churn > 0 && (float)o->S_min <= t_cur && t_cur <= (float)o->S_max;
}

float edm2_gen_t_hat(const edm2_gen_opts *o, float t_cur) {
  if (!churn_applies(o, t_cur)) return t_cur;
  double g = fmin(o->S_churn / o->steps, sqrt(2.0) - 1.0);
  float gamma = (float)g;
  return t_cur + gamma * t_cur;
}

/* ---- per-seed streams ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

#define TAG_NOISE 0x6E6F697365ull /* "noise" */
#define TAG_CLASS 0x636C617373ull /* "class" */
#define TAG_CHURN 0x636875726Eull /* "churn" */

static uint64_t seed_key(int64_t seed, uint64_t tag) { return mix64(mix64((uint64_t)seed) ^ tag); }

void edm2_seed_noise(int64_t seed, float *out, size_t M) {
  ec_rng_normal_fill(out, M, seed_key(seed, TAG_NOISE), 0);
}

int edm2_seed_class(int64_t seed, int label_dim) {
  if (label_dim <= 0) return -1;
  double u = ec_rng_uniform(seed_key(seed, TAG_CLASS), 0);
  int c = (int)floor(u * label_dim);
  return c < label_dim - 1 ? c : label_dim - 1;
}

void edm2_seed_churn(void *ctx, int step, int j, float *eps, size_t M) {
  const int64_t *seeds = ctx;
  ec_rng_normal_fill(eps, M, seed_key(seeds[j], TAG_CHURN), (uint64_t)step * M);
}

/* ---- the sampler ----------------------------------------------------------------------------- */

typedef struct {
  edm2_pass *net, *gnet; /* gnet NULL: no guidance */
  float w;               /* the guidance weight as torch.lerp sees it (float32) */
  int n;
  size_t M;
  const float *labels;
  float *sigma, *Dg;
} denoiser;

/* D(x, t) for every image, guided: torch.lerp(Dg, D, w) in float32 as PyTorch's CPU kernel
 * computes it (the branch on w < 0.5, and a fused multiply-add in either branch). */
static void denoise(denoiser *d, const float *x, float t, float *D) {
  for (int j = 0; j < d->n; j++) d->sigma[j] = t;
  edm2_forward(d->net, d->n, x, d->sigma, d->labels, D, NULL, 0);
  if (!d->gnet) return;
  edm2_forward(d->gnet, d->n, x, d->sigma, d->labels, d->Dg, NULL, 0);
  size_t nm = (size_t)d->n * d->M;
  float w = d->w, one_minus_w = 1.0f - w;
  if (w < 0.5f) {
    for (size_t k = 0; k < nm; k++) D[k] = fmaf(w, D[k] - d->Dg[k], d->Dg[k]);
  } else {
    for (size_t k = 0; k < nm; k++) D[k] = fmaf(-(D[k] - d->Dg[k]), one_minus_w, D[k]);
  }
}

static int same_image_shape(const edm2_netcfg *a, const edm2_netcfg *b) {
  return a->img_channels == b->img_channels && a->img_resolution == b->img_resolution;
}

ec_status edm2_generate(const edm2_gen_opts *o, edm2_pass *net, edm2_pass *gnet, int n, float *x,
                        const float *labels, edm2_churn_fn churn, void *churn_ctx) {
  ec_status st = edm2_gen_opts_check(o);
  if (st) return st;
  if (!net || !net->net) return ec_err(EC_EINVAL, "edm2_generate: no network");
  if (n < 0 || n > net->cap)
    return ec_err(EC_EINVAL, "edm2_generate: %d images for a network pass of capacity %d", n,
                  net->cap);
  if (net->train)
    return ec_err(EC_EINVAL, "edm2_generate: the network pass is in training mode (eval needed)");
  int guided = o->guidance != 1.0;
  const edm2_netcfg *cfg = &net->net->arch.cfg;
  if (guided) {
    if (!gnet || !gnet->net)
      return ec_err(EC_EINVAL, "--guidance %g needs a guiding network (--gnet)", o->guidance);
    if (n > gnet->cap)
      return ec_err(EC_EINVAL, "edm2_generate: %d images for a guiding pass of capacity %d", n,
                    gnet->cap);
    if (gnet->train)
      return ec_err(EC_EINVAL,
                    "edm2_generate: the guiding network pass is in training mode (eval needed)");
    const edm2_netcfg *gc = &gnet->net->arch.cfg;
    if (!same_image_shape(cfg, gc))
      return ec_err(EC_EINVAL, "guiding network: images %dx%dx%d, the network's are %dx%dx%d",
                    gc->img_channels, gc->img_resolution, gc->img_resolution, cfg->img_channels,
                    cfg->img_resolution, cfg->img_resolution);
  }
  if (o->S_churn > 0 && !churn)
    return ec_err(EC_EINVAL, "edm2_generate: --S-churn %g needs a churn noise source", o->S_churn);
  if (n == 0) return EC_OK;

  size_t M = (size_t)cfg->img_channels * cfg->img_resolution * cfg->img_resolution;
  size_t nm = (size_t)n * M;
  int N = o->steps;
  float *t = ec_mallocarray((size_t)N + 1, sizeof *t);
  float *sigma = ec_mallocarray((size_t)n, sizeof *sigma);
  float *xhat_buf = ec_mallocarray(nm, sizeof *xhat_buf);
  float *d = ec_mallocarray(nm, sizeof *d);
  float *xn = ec_mallocarray(nm, sizeof *xn);
  float *D = ec_mallocarray(nm, sizeof *D);
  float *Dg = guided ? ec_mallocarray(nm, sizeof *Dg) : NULL;
  if (!t || !sigma || !xhat_buf || !d || !xn || !D || (guided && !Dg)) {
    st = EC_ENOMEM;
    goto done;
  }
  edm2_gen_timesteps(o, t);
  denoiser den = {net, guided ? gnet : NULL, (float)o->guidance, n, M, labels, sigma, Dg};

  /* x_0 = noise·t_0 */
  for (size_t k = 0; k < nm; k++) x[k] = x[k] * t[0];

  for (int i = 0; i < N; i++) {
    float t_cur = t[i], t_next = t[i + 1];
    float t_hat = t_cur;
    const float *xhat = x;
    if (churn_applies(o, t_cur)) {
      t_hat = edm2_gen_t_hat(o, t_cur);
      /* x̂ = x + (sqrt(t̂² − t²)·S_noise)·ε, the scalar rounded at each step as a 0-dim tensor. */
      float c = sqrtf(t_hat * t_hat - t_cur * t_cur) * (float)o->S_noise;
      for (int j = 0; j < n; j++) {
        float *e = xhat_buf + (size_t)j * M;
        churn(churn_ctx, i, j, e, M);
        const float *xj = x + (size_t)j * M;
        for (size_t k = 0; k < M; k++) e[k] = xj[k] + c * e[k];
      }
      xhat = xhat_buf;
    }

    /* Euler step. */
    float h = t_next - t_hat;
    denoise(&den, xhat, t_hat, D);
    for (size_t k = 0; k < nm; k++) {
      d[k] = (xhat[k] - D[k]) / t_hat;
      xn[k] = xhat[k] + h * d[k];
    }

    /* Heun's correction, except on the last step (t_next = 0). */
    if (i < N - 1) {
      denoise(&den, xn, t_next, D);
      for (size_t k = 0; k < nm; k++) {
        float dp = (xn[k] - D[k]) / t_next;
        xn[k] = xhat[k] + h * (0.5f * d[k] + 0.5f * dp);
      }
    }
    memcpy(x, xn, nm * sizeof *x);
  }

done:
  ec_freep(&t);
  ec_freep(&sigma);
  ec_freep(&xhat_buf);
  ec_freep(&d);
  ec_freep(&xn);
  ec_freep(&D);
  ec_freep(&Dg);
  return st;
}
