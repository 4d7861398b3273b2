/* nn/ backward ops against finite differences, in double precision (the `_f64` forms), on small
 * shapes with odd sizes.
 *
 * For each op the objective is L = Σ r ⊙ y with a fixed random r, so the analytic gradient is the
 * backward called with dy = r. Every element of every differentiable input is perturbed with the
 * 4-point central stencil
 *     g ≈ [8 (L(x+h) - L(x-h)) - (L(x+2h) - L(x-2h))] / 12h,  h = 2^-10 · max|x| (≈ 1e-3),
 * whose truncation error is h⁴·|L⁽⁵⁾|/30 ≈ 1e-13 for these smooth, unit-scale ops and whose
 * rounding error is ≈ 1e-16·|L|/h ≈ 1e-13·|L|. Both are far below the tolerance of 1e-7 of the
 * largest |g|, while any wrong term, factor or index in a backward shows up at O(1e-2) or more.
 *
 * Each op's backward is also checked for its output semantics (nn/nn.h): outputs that OVERWRITE
 * are pre-filled with NaN (a read of them, or an element left unwritten, shows), outputs that
 * ACCUMULATE are pre-filled with random values and must end at prefill + g, then prefill + 2g
 * after a second call; and every output can be asked for alone, the others being NULL. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "nn/act.h"
#include "nn/attn.h"
#include "nn/conv.h"
#include "nn/dropout.h"
#include "nn/norm.h"
#include "nn/resample.h"
#include "tests/test.h"

#define GRAD_TOL 1e-7

/* ---- helpers ---------------------------------------------------------------------------------- */

static uint64_t next_seed = 1000;

static double *vec(size_t n) {
  double *p = calloc(n ? n : 1, sizeof *p);
  if (!p) abort();
  return p;
}

/* n normal deviates times `scale`, from a fresh stream per call */
static double *randn(size_t n, double scale) {
  double *p = vec(n);
  uint64_t seed = next_seed++;
  for (size_t i = 0; i < n; i++) p[i] = scale * ec_rng_normal(seed, i);
  return p;
}

static double max_abs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
  return m;
}

/* Up to three differentiable inputs; out[i] of the backward is the gradient of in[i]. */
enum { MAX_IO = 3 };
typedef struct grad_case grad_case;
struct grad_case {
  const char *name;
  void (*fwd)(const grad_case *c, double *y);
  void (*bwd)(const grad_case *c, const double *dy, double *const out[MAX_IO]);
  size_t ny;
  int nin;
  double *in[MAX_IO];
  size_t n_in[MAX_IO];
  int acc[MAX_IO]; /* 1: that gradient ACCUMULATES, 0: it OVERWRITES */
  /* op parameters */
  int N, C, C2, H, W, k, heads;
  size_t L;
  double t, limit, p;
  uint64_t seed, offset;
  double *aux, *aux2; /* non-differentiable inputs or state (gain, s, saved, ...) */
  double *ws;
};

static double objective(const grad_case *c, const double *r, double *y) {
  c->fwd(c, y);
  double s = 0;
  for (size_t i = 0; i < c->ny; i++) s += r[i] * y[i];
  return s;
}

/* Runs the backward at the current inputs with dy = r. The forward runs first, as in training
 * (attention's backward reads what its forward saved). */
static void analytic(const grad_case *c, const double *r, double *const out[MAX_IO]) {
  double *y = vec(c->ny);
  c->fwd(c, y);
  c->bwd(c, r, out);
  free(y);
}

/* Finite differences of every input against the backward. */
static void check_fd(grad_case *c) {
  double *r = randn(c->ny, 1.0), *y = vec(c->ny);
  double *g[MAX_IO] = {0};
  for (int i = 0; i < c->nin; i++) g[i] = vec(c->n_in[i]); /* zero: also right for accumulators */
  analytic(c, r, g);
  for (int i = 0; i < c->nin; i++) {
    double *x = c->in[i];
    const double gmax = max_abs(g[i], c->n_in[i]);
    const double h = ldexp(1.0, ilogb(max_abs(x, c->n_in[i])) - 10);
    double err = 0;
    size_t worst = 0;
    double worst_fd = 0;
    for (size_t j = 0; j < c->n_in[i]; j++) {
      const double x0 = x[j];
      x[j] = x0 + h;
      double p1 = objective(c, r, y);
      x[j] = x0 - h;
      double m1 = objective(c, r, y);
      x[j] = x0 + 2 * h;
      double p2 = objective(c, r, y);
      x[j] = x0 - 2 * h;
      double m2 = objective(c, r, y);
      x[j] = x0;
      double fd = (8 * (p1 - m1) - (p2 - m2)) / (12 * h);
      if (fabs(fd - g[i][j]) > err) {
        err = fabs(fd - g[i][j]);
        worst = j;
        worst_fd = fd;
      }
    }
    printf("# %-16s input %d: %5zu elements, max |fd - g| / max |g| = %.1e\n", c->name, i,
           c->n_in[i], gmax > 0 ? err / gmax : INFINITY);
    if (!(gmax > 0) || !(err <= GRAD_TOL * gmax)) {
      test_fail_(__FILE__, __LINE__,
                 "%s: input %d: max |fd - analytic| = %.3g at %zu (fd %.12g, analytic %.12g), "
                 "max |g| = %.3g, tolerance %.3g",
                 c->name, i, err, worst, worst_fd, g[i][worst], gmax, GRAD_TOL * gmax);
      break;
    }
  }
  for (int i = 0; i < c->nin; i++) free(g[i]);
  free(r);
  free(y);
}

static int same_vec(const double *a, const double *b, size_t n, double rtol) {
  double m = max_abs(b, n);
  for (size_t i = 0; i < n; i++)
    if (!(fabs(a[i] - b[i]) <= rtol * m)) return 0;
  return 1;
}

/* OVERWRITE / ACCUMULATE and NULL-output semantics of the backward. */
static void check_semantics(grad_case *c) {
  double *r = randn(c->ny, 1.0);
  double *g[MAX_IO] = {0}, *o[MAX_IO] = {0}, *base[MAX_IO] = {0};
  for (int i = 0; i < c->nin; i++) {
    g[i] = vec(c->n_in[i]);
    o[i] = vec(c->n_in[i]);
    base[i] = randn(c->n_in[i], 1.0);
  }
  analytic(c, r, g); /* reference: accumulators start at 0 */
  /* pre-fill: NaN for overwritten outputs, a random base for accumulated ones */
  for (int i = 0; i < c->nin; i++)
    for (size_t j = 0; j < c->n_in[i]; j++) o[i][j] = c->acc[i] ? base[i][j] : NAN;
  for (int call = 1; call <= 2; call++) {
    analytic(c, r, o);
    for (int i = 0; i < c->nin; i++) {
      double *want = vec(c->n_in[i]);
      for (size_t j = 0; j < c->n_in[i]; j++) want[j] = c->acc[i] ? base[i][j] + call * g[i][j] : g[i][j];
      int ok = same_vec(o[i], want, c->n_in[i], 1e-13);
      free(want);
      if (!ok) {
        test_fail_(__FILE__, __LINE__, "%s: output %d after call %d is not %s", c->name, i, call,
                   c->acc[i] ? "prefill + call·g (ACCUMULATE)" : "g (OVERWRITE)");
        goto done;
      }
    }
  }
  /* each output alone, the others NULL */
  for (int i = 0; i < c->nin; i++) {
    double *only[MAX_IO] = {0};
    only[i] = o[i];
    for (size_t j = 0; j < c->n_in[i]; j++) o[i][j] = c->acc[i] ? 0 : NAN;
    analytic(c, r, only);
    if (!same_vec(o[i], g[i], c->n_in[i], 1e-13)) {
      test_fail_(__FILE__, __LINE__, "%s: output %d alone (others NULL) differs", c->name, i);
      goto done;
    }
  }
  /* all outputs NULL: accepted, nothing to do */
  {
    double *none[MAX_IO] = {0};
    analytic(c, r, none);
  }
done:
  for (int i = 0; i < c->nin; i++) {
    free(g[i]);
    free(o[i]);
    free(base[i]);
  }
  free(r);
}

static void run_case(grad_case *c) {
  check_fd(c);
  check_semantics(c);
}

static void free_case(grad_case *c) {
  for (int i = 0; i < c->nin; i++) free(c->in[i]);
  free(c->aux);
  free(c->aux2);
  free(c->ws);
}

/* ---- convolution and linear ------------------------------------------------------------------- */

static void conv_fwd(const grad_case *c, double *y) {
  nn_conv2d_fwd_ref_f64(NULL, y, c->in[0], c->in[1], c->N, c->C, c->C2, c->H, c->W, c->k, c->ws);
}
static void conv_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_conv2d_bwd_ref_f64(NULL, out[0], out[1], dy, c->in[0], c->in[1], c->N, c->C, c->C2, c->H,
                        c->W, c->k, c->ws);
}

static void conv_case(int N, int Cin, int Cout, int H, int W, int k) {
  const size_t L = (size_t)H * W;
  grad_case c = {.name = k == 3 ? "conv3x3" : "conv1x1", .fwd = conv_fwd, .bwd = conv_bwd,
                 .ny = (size_t)N * Cout * L, .nin = 2, .N = N, .C = Cin, .C2 = Cout, .H = H,
                 .W = W, .k = k};
  c.n_in[0] = (size_t)N * Cin * L;
  c.n_in[1] = (size_t)Cout * Cin * k * k;
  c.in[0] = randn(c.n_in[0], 1.0);
  c.in[1] = randn(c.n_in[1], 0.5);
  c.acc[0] = 0;
  c.acc[1] = 1;
  c.ws = vec(nn_conv2d_workspace(N, Cin, Cout, H, W, k));
  run_case(&c);
  free_case(&c);
}

TEST(conv1x1_grad) {
  conv_case(2, 3, 4, 5, 3, 1);
  conv_case(3, 4, 1, 1, 7, 1);
}

TEST(conv3x3_grad) {
  conv_case(2, 3, 4, 5, 3, 3); /* several images per GEMM block */
  conv_case(2, 4, 3, 3, 5, 3);
  conv_case(3, 2, 2, 1, 6, 3); /* one row: both vertical taps outside */
  conv_case(2, 2, 3, 6, 1, 3); /* one column: both horizontal taps outside */
}

TEST(conv3x3_grad_banded) {
  /* 37·29 = 1073 positions: one image is cut into bands of whole rows (35 rows, then 2) */
  conv_case(1, 2, 2, 37, 29, 3);
}

static void linear_fwd(const grad_case *c, double *y) {
  nn_linear_fwd_ref_f64(NULL, y, c->in[0], c->in[1], c->N, c->C, c->C2);
}
static void linear_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_linear_bwd_ref_f64(NULL, out[0], out[1], dy, c->in[0], c->in[1], c->N, c->C, c->C2);
}

TEST(linear_grad) {
  const int B = 3, in = 5, out = 4;
  grad_case c = {.name = "linear", .fwd = linear_fwd, .bwd = linear_bwd, .ny = (size_t)B * out,
                 .nin = 2, .N = B, .C = in, .C2 = out};
  c.n_in[0] = (size_t)B * in;
  c.n_in[1] = (size_t)out * in;
  c.in[0] = randn(c.n_in[0], 1.0);
  c.in[1] = randn(c.n_in[1], 1.0);
  c.acc[1] = 1;
  run_case(&c);
  free_case(&c);
}

/* ---- normalisation ----------------------------------------------------------------------------- */

/* in[0] = w, in[1] = gain (one element) when present */
static void wn_fwd(const grad_case *c, double *y) {
  nn_weightnorm_fwd_ref_f64(NULL, y, c->in[0], c->nin > 1 ? c->in[1] : NULL, c->N, c->C);
}
static void wn_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_weightnorm_bwd_ref_f64(NULL, out[0], c->nin > 1 ? out[1] : NULL, dy, c->in[0],
                            c->nin > 1 ? c->in[1] : NULL, c->N, c->C);
}

TEST(weightnorm_grad) {
  for (int with_gain = 0; with_gain <= 1; with_gain++) {
    const int rows = 4, fan_in = 7;
    grad_case c = {.name = with_gain ? "weightnorm(gain)" : "weightnorm", .fwd = wn_fwd,
                   .bwd = wn_bwd, .ny = (size_t)rows * fan_in, .nin = 1 + with_gain, .N = rows,
                   .C = fan_in};
    c.n_in[0] = (size_t)rows * fan_in;
    c.in[0] = randn(c.n_in[0], 2.0); /* not unit norm: the normalisation's Jacobian matters */
    c.acc[0] = 1;
    if (with_gain) {
      c.n_in[1] = 1;
      c.in[1] = vec(1);
      c.in[1][0] = 1.7;
      c.acc[1] = 1;
    }
    run_case(&c);
    free_case(&c);
  }
}

static void pn_fwd(const grad_case *c, double *y) {
  nn_pixelnorm_fwd_ref_f64(NULL, y, c->in[0], c->N, c->C, c->L);
}
static void pn_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_pixelnorm_bwd_ref_f64(NULL, out[0], dy, c->in[0], c->N, c->C, c->L);
}

TEST(pixelnorm_grad) {
  const int N = 2, C = 3;
  const size_t L = 15;
  grad_case c = {.name = "pixelnorm", .fwd = pn_fwd, .bwd = pn_bwd, .ny = N * C * L, .nin = 1,
                 .N = N, .C = C, .L = L};
  c.n_in[0] = c.ny;
  c.in[0] = randn(c.n_in[0], 1.0);
  run_case(&c);
  free_case(&c);
}

/* ---- elementwise ------------------------------------------------------------------------------- */

static void silu_fwd(const grad_case *c, double *y) { nn_mp_silu_fwd_ref_f64(NULL, y, c->in[0], c->ny); }
static void silu_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_mp_silu_bwd_ref_f64(NULL, out[0], dy, c->in[0], c->ny);
}

TEST(mp_silu_grad) {
  grad_case c = {.name = "mp_silu", .fwd = silu_fwd, .bwd = silu_bwd, .ny = 31, .nin = 1};
  c.n_in[0] = c.ny;
  c.in[0] = randn(c.ny, 2.0);
  run_case(&c);
  free_case(&c);
}

static void sum_fwd(const grad_case *c, double *y) {
  nn_mp_sum_fwd_ref_f64(NULL, y, c->in[0], c->in[1], c->t, c->ny);
}
static void sum_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_mp_sum_bwd_ref_f64(NULL, out[0], out[1], dy, c->t, c->ny);
}

TEST(mp_sum_grad) {
  const double ts[] = {0.3, 0.5, 0.8}; /* both branches of lerp */
  for (int i = 0; i < 3; i++) {
    grad_case c = {.name = "mp_sum", .fwd = sum_fwd, .bwd = sum_bwd, .ny = 17, .nin = 2,
                   .t = ts[i]};
    c.n_in[0] = c.n_in[1] = c.ny;
    c.in[0] = randn(c.ny, 1.0);
    c.in[1] = randn(c.ny, 1.0);
    run_case(&c);
    free_case(&c);
  }
}

static void cat_fwd(const grad_case *c, double *y) {
  nn_mp_cat_fwd_ref_f64(NULL, y, c->in[0], c->in[1], c->N, c->C, c->C2, c->L, c->t);
}
static void cat_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_mp_cat_bwd_ref_f64(NULL, out[0], out[1], dy, c->N, c->C, c->C2, c->L, c->t);
}

TEST(mp_cat_grad) {
  const int N = 2, Ca = 3, Cb = 2;
  const size_t L = 5;
  grad_case c = {.name = "mp_cat", .fwd = cat_fwd, .bwd = cat_bwd, .ny = N * (Ca + Cb) * L,
                 .nin = 2, .N = N, .C = Ca, .C2 = Cb, .L = L, .t = 0.3};
  c.n_in[0] = N * Ca * L;
  c.n_in[1] = N * Cb * L;
  c.in[0] = randn(c.n_in[0], 1.0);
  c.in[1] = randn(c.n_in[1], 1.0);
  run_case(&c);
  free_case(&c);
}

static void clip_fwd(const grad_case *c, double *y) { nn_clip_fwd_ref_f64(NULL, y, c->in[0], c->limit, c->ny); }
static void clip_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  double *y = vec(c->ny);
  nn_clip_fwd_ref_f64(NULL, y, c->in[0], c->limit, c->ny);
  nn_clip_bwd_ref_f64(NULL, out[0], dy, y, c->limit, c->ny);
  free(y);
}

TEST(clip_grad) {
  grad_case c = {.name = "clip", .fwd = clip_fwd, .bwd = clip_bwd, .ny = 40, .nin = 1, .limit = 1.5};
  c.n_in[0] = c.ny;
  c.in[0] = randn(c.ny, 2.0);
  /* keep every input at least 0.05 (> 2h ≈ 0.008) away from the kinks at ±limit */
  int clipped = 0, passed = 0;
  for (size_t i = 0; i < c.ny; i++) {
    double *v = &c.in[0][i];
    if (fabs(fabs(*v) - c.limit) < 0.05) *v = *v > 0 ? c.limit + 0.3 : -(c.limit + 0.3);
    clipped += fabs(*v) > c.limit;
    passed += fabs(*v) < c.limit;
  }
  ASSERT_TRUE(clipped >= 5 && passed >= 5);
  run_case(&c);
  free_case(&c);
}

/* in[0] = x, in[1] = s */
static void mod_fwd(const grad_case *c, double *y) {
  nn_modulate_fwd_ref_f64(NULL, y, c->in[0], c->in[1], c->N, c->C, c->L);
}
static void mod_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_modulate_bwd_ref_f64(NULL, out[0], out[1], dy, c->in[0], c->in[1], c->N, c->C, c->L);
}

TEST(modulate_grad) {
  const int N = 2, C = 3;
  const size_t L = 5;
  grad_case c = {.name = "modulate", .fwd = mod_fwd, .bwd = mod_bwd, .ny = N * C * L, .nin = 2,
                 .N = N, .C = C, .L = L};
  c.n_in[0] = c.ny;
  c.n_in[1] = N * C;
  c.in[0] = randn(c.n_in[0], 1.0);
  c.in[1] = randn(c.n_in[1], 0.5);
  run_case(&c);
  free_case(&c);
}

static void ones_fwd(const grad_case *c, double *y) {
  nn_append_ones_fwd_ref_f64(NULL, y, c->in[0], c->N, c->C, c->L);
}
static void ones_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_append_ones_bwd_ref_f64(NULL, out[0], dy, c->N, c->C, c->L);
}

TEST(append_ones_grad) {
  const int N = 2, C = 3;
  const size_t L = 5;
  grad_case c = {.name = "append_ones", .fwd = ones_fwd, .bwd = ones_bwd, .ny = N * (C + 1) * L,
                 .nin = 1, .N = N, .C = C, .L = L};
  c.n_in[0] = N * C * L;
  c.in[0] = randn(c.n_in[0], 1.0);
  run_case(&c);
  free_case(&c);
}

static void down_fwd(const grad_case *c, double *y) {
  nn_down2_fwd_ref_f64(NULL, y, c->in[0], c->N, c->C, c->H, c->W);
}
static void down_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_down2_bwd_ref_f64(NULL, out[0], dy, c->N, c->C, c->H, c->W);
}
static void up_fwd(const grad_case *c, double *y) {
  nn_up2_fwd_ref_f64(NULL, y, c->in[0], c->N, c->C, c->H, c->W);
}
static void up_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_up2_bwd_ref_f64(NULL, out[0], dy, c->N, c->C, c->H, c->W);
}

TEST(resample_grad) {
  {
    const int N = 2, C = 3, H = 4, W = 6;
    grad_case c = {.name = "down2", .fwd = down_fwd, .bwd = down_bwd,
                   .ny = (size_t)N * C * (H / 2) * (W / 2), .nin = 1, .N = N, .C = C, .H = H, .W = W};
    c.n_in[0] = (size_t)N * C * H * W;
    c.in[0] = randn(c.n_in[0], 1.0);
    run_case(&c);
    free_case(&c);
  }
  {
    const int N = 2, C = 3, H = 5, W = 3;
    grad_case c = {.name = "up2", .fwd = up_fwd, .bwd = up_bwd, .ny = (size_t)N * C * 4 * H * W,
                   .nin = 1, .N = N, .C = C, .H = H, .W = W};
    c.n_in[0] = (size_t)N * C * H * W;
    c.in[0] = randn(c.n_in[0], 1.0);
    run_case(&c);
    free_case(&c);
  }
}

/* aux = saved */
static void attn_fwd(const grad_case *c, double *y) {
  nn_attn_fwd_ref_f64(NULL, y, c->aux, c->in[0], c->N, c->heads, c->C, c->L, c->ws);
}
static void attn_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_attn_bwd_ref_f64(NULL, out[0], dy, c->aux, c->in[0], c->N, c->heads, c->C, c->L, c->ws);
}

TEST(attention_grad) {
  const int N = 2, heads = 2, Ch = 3;
  const size_t L = 5;
  grad_case c = {.name = "attention", .fwd = attn_fwd, .bwd = attn_bwd,
                 .ny = (size_t)N * heads * Ch * L, .nin = 1, .N = N, .C = Ch, .heads = heads, .L = L};
  c.n_in[0] = (size_t)N * 3 * heads * Ch * L;
  c.in[0] = randn(c.n_in[0], 1.0);
  c.aux = vec(nn_attn_saved_size(N, heads, Ch, L));
  c.ws = vec(nn_attn_workspace(N, heads, Ch, L));
  run_case(&c);
  free_case(&c);
}

static void drop_fwd(const grad_case *c, double *y) {
  nn_dropout_fwd_ref_f64(NULL, y, c->in[0], c->ny, c->p, c->seed, c->offset);
}
static void drop_bwd(const grad_case *c, const double *dy, double *const out[MAX_IO]) {
  nn_dropout_bwd_ref_f64(NULL, out[0], dy, c->ny, c->p, c->seed, c->offset);
}

TEST(dropout_grad) {
  /* the mask is fixed by (seed, offset), so the op is linear and its FD exact */
  grad_case c = {.name = "dropout", .fwd = drop_fwd, .bwd = drop_bwd, .ny = 50, .nin = 1,
                 .p = 0.3, .seed = 77, .offset = 5};
  c.n_in[0] = c.ny;
  c.in[0] = randn(c.ny, 1.0);
  run_case(&c);
  free_case(&c);
}

TEST_MAIN(conv1x1_grad, conv3x3_grad, conv3x3_grad_banded, linear_grad, weightnorm_grad,
          pixelnorm_grad, mp_silu_grad, mp_sum_grad, mp_cat_grad, clip_grad, modulate_grad,
          append_ones_grad, resample_grad, attention_grad, dropout_grad)
