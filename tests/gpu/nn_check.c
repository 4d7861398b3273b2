/* nn-check: every CUDA op of nn/cuda/ops.h against its CPU reference (`_ref`, or core/half.h for
 * the casts) on random inputs, over sizes from 1 element to more than one full grid of the
 * grid-stride loops (4096 blocks of 256 threads), with odd shapes throughout.
 *
 *   nn-check [--small] [--sync] [--op SUBSTRING] [--list]
 *
 * For each op and size: inputs from core/rng.h (plus the special values the op must handle:
 * NaN and ±limit for clip, zero pixels for pixel norm, every float16 pattern for the casts),
 * device outputs poisoned with NaN bytes (0xff) before the run and followed by 64 guard
 * elements (a byte pattern of each buffer's own), which must be untouched afterwards; the op's
 * variants (in place where the header allows it, each NULL output alone) all compared with the
 * reference. One line per op and size: the largest |gpu - ref|, the largest |ref|, their ratio
 * against the op's tolerance, and the number of elements whose bits differ.
 *
 * Tolerance: every op here is expected to match its reference bit for bit (nn/cuda/README.md,
 * "Exactness"), so every tolerance is 0 and means "bitwise equal" (NaNs with the same bits,
 * -0 ≠ +0). A later op that cannot be exact (cuDNN convolutions) gets its own tolerance here.
 *
 * --small: the three smallest sizes, for compute-sanitizer. --sync: EDM2C_CUDA_SYNC on (check
 * after every launch). Exit status: 0 all passed, 1 a failure, 77 no usable GPU (SKIP).
 * The table of entries below is read by tests/unit/test_nn_cuda_complete.c, which fails when a
 * function of nn/cuda/ops.h has no entry. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gpu.h"
#include "core/half.h"
#include "core/rng.h"
#include "core/status.h"
#include "nn/act.h"
#include "nn/cuda/check.h"
#include "nn/cuda/ops.h"
#include "nn/norm.h"

/* One size: n elements for elementwise ops, (N, C, L) for the shaped ones (N·C·L close to n). */
typedef struct {
  size_t n;
  int N, C;
  size_t L;
} size_case;

static const size_case sizes[] = {
    {1, 1, 1, 1},
    {7, 1, 7, 1},
    {1000, 3, 7, 47},
    {65537, 3, 67, 326},
    {2097155, 5, 129, 3251}, /* n > 4096·256: the grid-stride loops go round more than once */
};
enum { NSIZES = sizeof sizes / sizeof sizes[0], NSMALL = 3 };

typedef struct {
  double max_err, max_ref; /* over every compared element of every variant */
  size_t compared, bits_differ, guard_bad;
  int op_failed; /* a CUDA error from the op (nn_cuda_sync) */
} result;

/* ---- harness: device buffers with guards, fatal on a CUDA failure of the harness itself ---- */

enum { GUARD = 64, MAX_ALLOCS = 64 };

static void *dallocs[MAX_ALLOCS], *hallocs[MAX_ALLOCS];
static unsigned char dguard[MAX_ALLOCS]; /* each device buffer's guard byte */
static int ndallocs, nhallocs;

static void fatal_cuda(cudaError_t e, const char *what, int line) {
  fprintf(stderr, "nn-check: %s:%d: %s: %s: %s\n", __FILE__, line, what, cudaGetErrorName(e),
          cudaGetErrorString(e));
  exit(1);
}

#define HCK(call)                                                                                  \
  do {                                                                                             \
    cudaError_t hck_e_ = (call);                                                                   \
    if (hck_e_ != cudaSuccess) fatal_cuda(hck_e_, #call, __LINE__);                                \
  } while (0)

static void *hnew(size_t bytes) {
  if (nhallocs == MAX_ALLOCS) {
    fprintf(stderr, "nn-check: too many host buffers\n");
    exit(1);
  }
  void *p = calloc(bytes ? bytes : 1, 1);
  if (!p) {
    fprintf(stderr, "nn-check: out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return hallocs[nhallocs++] = p;
}

static float *hfloat(size_t n) { return hnew(n * sizeof(float)); }

/* n elements of `esize` bytes, all bytes 0xff (NaN for float32 and float16), then GUARD elements
 * of a byte of the buffer's own (0x40 + its number: finite floats, different in every buffer,
 * so that an overrun that copies or propagates another buffer's guard still shows). */
static void *dnew(size_t n, size_t esize) {
  if (ndallocs == MAX_ALLOCS) {
    fprintf(stderr, "nn-check: too many device buffers\n");
    exit(1);
  }
  void *p = NULL;
  unsigned char g = (unsigned char)(0x40 + ndallocs);
  HCK(cudaMalloc(&p, (n + GUARD) * esize));
  HCK(cudaMemset(p, 0xff, n * esize));
  HCK(cudaMemset((char *)p + n * esize, g, GUARD * esize));
  dguard[ndallocs] = g;
  return dallocs[ndallocs++] = p;
}

static unsigned char guard_byte(const void *d) {
  for (int i = 0; i < ndallocs; i++)
    if (dallocs[i] == d) return dguard[i];
  fprintf(stderr, "nn-check: not a buffer of dnew()\n");
  exit(1);
}

static float *dout(size_t n) { return dnew(n, sizeof(float)); }

static float *din(const float *h, size_t n) {
  float *d = dout(n);
  HCK(cudaMemcpy(d, h, n * sizeof *h, cudaMemcpyHostToDevice));
  return d;
}

static void free_all(void) {
  for (int i = 0; i < ndallocs; i++) HCK(cudaFree(dallocs[i]));
  for (int i = 0; i < nhallocs; i++) free(hallocs[i]);
  ndallocs = nhallocs = 0;
}

/* After an op: wait for it and collect its error (nn/cuda/check.h). */
static void op_done(result *r, const char *what) {
  if (nn_cuda_sync(NULL) != EC_OK) {
    printf("#   %s: %s\n", what, ec_errmsg());
    r->op_failed = 1;
  }
}

static int guard_ok(const unsigned char *g, size_t bytes, unsigned char want) {
  for (size_t i = 0; i < bytes; i++)
    if (g[i] != want) return 0;
  return 1;
}

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* Compares device float32 output d (n elements, then its guard) with ref. A non-finite ref value
 * must be matched bit for bit; a NaN where ref is finite is an infinite error. */
static void cmp_f32(result *r, const float *ref, const float *d, size_t n) {
  float *got = malloc((n + GUARD) * sizeof *got);
  if (!got) exit(1);
  HCK(cudaMemcpy(got, d, (n + GUARD) * sizeof *got, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < n; i++) {
    double e;
    if (!isfinite(ref[i]) || !isfinite(got[i]))
      e = fbits(ref[i]) == fbits(got[i]) ? 0 : INFINITY;
    else
      e = fabs((double)got[i] - (double)ref[i]);
    if (isfinite(ref[i]) && fabs(ref[i]) > r->max_ref) r->max_ref = fabs(ref[i]);
    if (!(e <= r->max_err)) r->max_err = e;
    r->bits_differ += fbits(ref[i]) != fbits(got[i]);
  }
  r->compared += n;
  r->guard_bad += !guard_ok((const unsigned char *)(got + n), GUARD * sizeof *got, guard_byte(d));
  free(got);
}

static void cmp_u16(result *r, const uint16_t *ref, const uint16_t *d, size_t n) {
  uint16_t *got = malloc((n + GUARD) * sizeof *got);
  if (!got) exit(1);
  HCK(cudaMemcpy(got, d, (n + GUARD) * sizeof *got, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < n; i++)
    if (got[i] != ref[i]) {
      r->bits_differ++;
      r->max_err = INFINITY; /* casts are compared as bit patterns only */
    }
  r->max_ref = 1;
  r->compared += n;
  r->guard_bad += !guard_ok((const unsigned char *)(got + n), GUARD * sizeof *got, guard_byte(d));
  free(got);
}

/* ---- inputs ---- */

static uint64_t seed_next = 11000;

/* scale · N(0, 1), a fresh stream per call */
static float *randn(size_t n, double scale) {
  float *p = hfloat(n);
  ec_rng_normal_fill(p, n, seed_next++, 0);
  for (size_t i = 0; i < n; i++) p[i] = (float)(scale * p[i]);
  return p;
}

/* Overwrites the first values of x with specials[0..k) (as many as fit). */
static void put_specials(float *x, size_t n, const float *specials, size_t k) {
  for (size_t i = 0; i < n && i < k; i++) x[i] = specials[i];
}

static float *copyf(const float *x, size_t n) {
  float *p = hfloat(n);
  memcpy(p, x, n * sizeof *p);
  return p;
}

/* ---- the checks, one per function of nn/cuda/ops.h ---- */

static void check_mp_silu_fwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  static const float sp[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -87.5f, 1e-30f, -1e-30f, 20.0f,
                             -20.0f, 1e-40f};
  float *x = randn(n, 3), *ref = hfloat(n);
  put_specials(x, n, sp, sizeof sp / sizeof sp[0]);
  nn_mp_silu_fwd_ref(NULL, ref, x, n);
  float *dx = din(x, n), *dy = dout(n);
  nn_mp_silu_fwd_cuda(NULL, dy, dx, n);
  op_done(r, "y");
  cmp_f32(r, ref, dy, n);
  nn_mp_silu_fwd_cuda(NULL, dx, dx, n); /* in place */
  op_done(r, "y == x");
  cmp_f32(r, ref, dx, n);
}

static void check_mp_silu_bwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  static const float sp[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -87.5f, 1e-30f, 20.0f, -20.0f};
  float *x = randn(n, 3), *g = randn(n, 1), *ref = hfloat(n);
  put_specials(x, n, sp, sizeof sp / sizeof sp[0]);
  nn_mp_silu_bwd_ref(NULL, ref, g, x, n);
  float *dxx = din(x, n), *dg = din(g, n), *ddx = dout(n);
  nn_mp_silu_bwd_cuda(NULL, ddx, dg, dxx, n);
  op_done(r, "dx");
  cmp_f32(r, ref, ddx, n);
  nn_mp_silu_bwd_cuda(NULL, dg, dg, dxx, n); /* dx == dy */
  op_done(r, "dx == dy");
  cmp_f32(r, ref, dg, n);
  nn_mp_silu_bwd_cuda(NULL, NULL, dg, dxx, n); /* NULL dx: nothing to do */
  op_done(r, "dx NULL");
}

static void check_mp_sum_fwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  static const double ts[] = {0.3, 0.5, 0.7}; /* both of lerp's formulas */
  float *a = randn(n, 1), *b = randn(n, 2), *ref = hfloat(n);
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    nn_mp_sum_fwd_ref(NULL, ref, a, b, ts[k], n);
    float *da = din(a, n), *db = din(b, n), *dy = dout(n);
    nn_mp_sum_fwd_cuda(NULL, dy, da, db, ts[k], n);
    op_done(r, "y");
    cmp_f32(r, ref, dy, n);
    nn_mp_sum_fwd_cuda(NULL, da, da, db, ts[k], n);
    op_done(r, "y == a");
    cmp_f32(r, ref, da, n);
    da = din(a, n);
    nn_mp_sum_fwd_cuda(NULL, db, da, db, ts[k], n);
    op_done(r, "y == b");
    cmp_f32(r, ref, db, n);
  }
}

static void check_mp_sum_bwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  static const double ts[] = {0.3, 0.7};
  float *g = randn(n, 1), *ra = hfloat(n), *rb = hfloat(n);
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    nn_mp_sum_bwd_ref(NULL, ra, rb, g, ts[k], n);
    float *dg = din(g, n), *da = dout(n), *db = dout(n);
    nn_mp_sum_bwd_cuda(NULL, da, db, dg, ts[k], n);
    op_done(r, "da, db");
    cmp_f32(r, ra, da, n);
    cmp_f32(r, rb, db, n);
    float *da2 = dout(n);
    nn_mp_sum_bwd_cuda(NULL, da2, NULL, dg, ts[k], n);
    op_done(r, "da alone");
    cmp_f32(r, ra, da2, n);
    float *db2 = dout(n);
    nn_mp_sum_bwd_cuda(NULL, NULL, db2, dg, ts[k], n);
    op_done(r, "db alone");
    cmp_f32(r, rb, db2, n);
    float *db3 = dout(n);
    nn_mp_sum_bwd_cuda(NULL, dg, db3, dg, ts[k], n); /* da == dy */
    op_done(r, "da == dy");
    cmp_f32(r, ra, dg, n);
    cmp_f32(r, rb, db3, n);
  }
}

/* mp_cat's second input has a different channel count: Cb = C/2 + 1. */
static void check_mp_cat_fwd(const size_case *sc, result *r) {
  const int N = sc->N, Ca = sc->C, Cb = sc->C / 2 + 1;
  const size_t L = sc->L, na = (size_t)N * Ca * L, nb = (size_t)N * Cb * L, ny = na + nb;
  static const double ts[] = {0.5, 0.3};
  float *a = randn(na, 1), *b = randn(nb, 1), *ref = hfloat(ny);
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    nn_mp_cat_fwd_ref(NULL, ref, a, b, N, Ca, Cb, L, ts[k]);
    float *da = din(a, na), *db = din(b, nb), *dy = dout(ny);
    nn_mp_cat_fwd_cuda(NULL, dy, da, db, N, Ca, Cb, L, ts[k]);
    op_done(r, "y");
    cmp_f32(r, ref, dy, ny);
  }
}

static void check_mp_cat_bwd(const size_case *sc, result *r) {
  const int N = sc->N, Ca = sc->C, Cb = sc->C / 2 + 1;
  const size_t L = sc->L, na = (size_t)N * Ca * L, nb = (size_t)N * Cb * L, ny = na + nb;
  static const double ts[] = {0.5, 0.3};
  float *g = randn(ny, 1), *ra = hfloat(na), *rb = hfloat(nb);
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    nn_mp_cat_bwd_ref(NULL, ra, rb, g, N, Ca, Cb, L, ts[k]);
    float *dg = din(g, ny), *da = dout(na), *db = dout(nb);
    nn_mp_cat_bwd_cuda(NULL, da, db, dg, N, Ca, Cb, L, ts[k]);
    op_done(r, "da, db");
    cmp_f32(r, ra, da, na);
    cmp_f32(r, rb, db, nb);
    float *da2 = dout(na), *db2 = dout(nb);
    nn_mp_cat_bwd_cuda(NULL, da2, NULL, dg, N, Ca, Cb, L, ts[k]);
    op_done(r, "da alone");
    cmp_f32(r, ra, da2, na);
    nn_mp_cat_bwd_cuda(NULL, NULL, db2, dg, N, Ca, Cb, L, ts[k]);
    op_done(r, "db alone");
    cmp_f32(r, rb, db2, nb);
  }
}

#define CLIP_LIMIT 1.5

static float *clip_input(size_t n) {
  const float sp[] = {NAN, 1.5f, -1.5f, INFINITY, -INFINITY, 0.0f, -0.0f, 1.4999999f, -1.5000001f};
  float *x = randn(n, 2);
  put_specials(x, n, sp, sizeof sp / sizeof sp[0]);
  return x;
}

static void check_clip_fwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  float *x = clip_input(n), *ref = hfloat(n);
  nn_clip_fwd_ref(NULL, ref, x, CLIP_LIMIT, n);
  float *dx = din(x, n), *dy = dout(n);
  nn_clip_fwd_cuda(NULL, dy, dx, CLIP_LIMIT, n);
  op_done(r, "y");
  cmp_f32(r, ref, dy, n);
  nn_clip_fwd_cuda(NULL, dx, dx, CLIP_LIMIT, n);
  op_done(r, "y == x");
  cmp_f32(r, ref, dx, n);
}

static void check_clip_bwd(const size_case *sc, result *r) {
  size_t n = sc->n;
  float *x = clip_input(n), *y = hfloat(n), *g = randn(n, 1), *ref = hfloat(n);
  nn_clip_fwd_ref(NULL, y, x, CLIP_LIMIT, n); /* the clipped output, ±limit and NaN included */
  nn_clip_bwd_ref(NULL, ref, g, y, CLIP_LIMIT, n);
  float *dyy = din(y, n), *dg = din(g, n), *ddx = dout(n);
  nn_clip_bwd_cuda(NULL, ddx, dg, dyy, CLIP_LIMIT, n);
  op_done(r, "dx");
  cmp_f32(r, ref, ddx, n);
  nn_clip_bwd_cuda(NULL, dg, dg, dyy, CLIP_LIMIT, n);
  op_done(r, "dx == dy");
  cmp_f32(r, ref, dg, n);
  nn_clip_bwd_cuda(NULL, NULL, dg, dyy, CLIP_LIMIT, n);
  op_done(r, "dx NULL");
}

static void check_modulate_fwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L, ns = (size_t)N * C;
  float *x = randn(n, 1), *s = randn(ns, 0.5), *ref = hfloat(n);
  nn_modulate_fwd_ref(NULL, ref, x, s, N, C, L);
  float *dx = din(x, n), *ds = din(s, ns), *dy = dout(n);
  nn_modulate_fwd_cuda(NULL, dy, dx, ds, N, C, L);
  op_done(r, "y");
  cmp_f32(r, ref, dy, n);
  nn_modulate_fwd_cuda(NULL, dx, dx, ds, N, C, L);
  op_done(r, "y == x");
  cmp_f32(r, ref, dx, n);
}

static void check_modulate_bwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L, ns = (size_t)N * C;
  float *x = randn(n, 1), *s = randn(ns, 0.5), *g = randn(n, 1);
  float *rdx = hfloat(n), *rds = hfloat(ns);
  nn_modulate_bwd_ref(NULL, rdx, rds, g, x, s, N, C, L);
  float *dx = din(x, n), *ds = din(s, ns), *dg = din(g, n);
  float *odx = dout(n), *ods = dout(ns);
  nn_modulate_bwd_cuda(NULL, odx, ods, dg, dx, ds, N, C, L);
  op_done(r, "dx, ds");
  cmp_f32(r, rdx, odx, n);
  cmp_f32(r, rds, ods, ns);
  float *odx2 = dout(n), *ods2 = dout(ns);
  nn_modulate_bwd_cuda(NULL, odx2, NULL, dg, dx, ds, N, C, L);
  op_done(r, "dx alone");
  cmp_f32(r, rdx, odx2, n);
  nn_modulate_bwd_cuda(NULL, NULL, ods2, dg, dx, ds, N, C, L);
  op_done(r, "ds alone");
  cmp_f32(r, rds, ods2, ns);
  float *ods3 = dout(ns);
  nn_modulate_bwd_cuda(NULL, dg, ods3, dg, dx, ds, N, C, L); /* dx == dy */
  op_done(r, "dx == dy");
  cmp_f32(r, rdx, dg, n);
  cmp_f32(r, rds, ods3, ns);
}

static void check_append_ones_fwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L, ny = (size_t)N * (C + 1) * L;
  float *x = randn(n, 1), *ref = hfloat(ny);
  nn_append_ones_fwd_ref(NULL, ref, x, N, C, L);
  float *dx = din(x, n), *dy = dout(ny);
  nn_append_ones_fwd_cuda(NULL, dy, dx, N, C, L);
  op_done(r, "y");
  cmp_f32(r, ref, dy, ny);
}

static void check_append_ones_bwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L, ny = (size_t)N * (C + 1) * L;
  float *g = randn(ny, 1), *ref = hfloat(n);
  nn_append_ones_bwd_ref(NULL, ref, g, N, C, L);
  float *dg = din(g, ny), *dx = dout(n);
  nn_append_ones_bwd_cuda(NULL, dx, dg, N, C, L);
  op_done(r, "dx");
  cmp_f32(r, ref, dx, n);
  nn_append_ones_bwd_cuda(NULL, NULL, dg, N, C, L);
  op_done(r, "dx NULL");
}

/* R = N·C rows of M = L elements */
static void check_rows_axpby(const size_case *sc, result *r) {
  const int R = sc->N * sc->C;
  const size_t M = sc->L, n = (size_t)R * M;
  float *a = randn((size_t)R, 1), *b = randn((size_t)R, 1), *x = randn(n, 1), *z = randn(n, 1);
  float *ref = hfloat(n), *ref1 = hfloat(n);
  nn_rows_axpby_ref(NULL, ref, a, x, b, z, R, M);
  nn_rows_axpby_ref(NULL, ref1, a, x, NULL, NULL, R, M);
  float *da = din(a, (size_t)R), *db = din(b, (size_t)R), *dx = din(x, n), *dz = din(z, n);
  float *dy = dout(n), *dy1 = dout(n);
  nn_rows_axpby_cuda(NULL, dy, da, dx, db, dz, R, M);
  op_done(r, "a·x + b·z");
  cmp_f32(r, ref, dy, n);
  nn_rows_axpby_cuda(NULL, dy1, da, dx, NULL, NULL, R, M);
  op_done(r, "a·x");
  cmp_f32(r, ref1, dy1, n);
  nn_rows_axpby_cuda(NULL, dz, da, dx, db, dz, R, M); /* y == z */
  op_done(r, "y == z");
  cmp_f32(r, ref, dz, n);
  nn_rows_axpby_cuda(NULL, dx, da, dx, db, din(z, n), R, M); /* y == x */
  op_done(r, "y == x");
  cmp_f32(r, ref, dx, n);
  float *dx2 = din(x, n);
  nn_rows_axpby_cuda(NULL, dx2, da, dx2, NULL, NULL, R, M); /* y == x, no z */
  op_done(r, "y == x, a·x");
  cmp_f32(r, ref1, dx2, n);
}

static void check_scale(const size_case *sc, result *r) {
  size_t n = sc->n;
  const double alpha = 0.3701;
  float *x = randn(n, 1), *ref = hfloat(n);
  nn_scale_ref(NULL, ref, x, alpha, n);
  float *dx = din(x, n), *dy = dout(n);
  nn_scale_cuda(NULL, dy, dx, alpha, n);
  op_done(r, "y");
  cmp_f32(r, ref, dy, n);
  nn_scale_cuda(NULL, dx, dx, alpha, n);
  op_done(r, "y == x");
  cmp_f32(r, ref, dx, n);
}

static void check_acc(const size_case *sc, result *r) {
  size_t n = sc->n;
  float *x = randn(n, 1), *y0 = randn(n, 1), *ref = copyf(y0, n);
  nn_acc_ref(NULL, ref, x, n);
  float *dx = din(x, n), *dy = din(y0, n);
  nn_acc_cuda(NULL, dy, dx, n);
  op_done(r, "y += x");
  cmp_f32(r, ref, dy, n);
}

/* Pixel norm inputs: the scale varies by pixel (so that eps + r matters), and when there is more
 * than one pixel the last one is a zero vector (the reference's r = 0 branch). */
static float *pixel_input(const size_case *sc) {
  const size_t L = sc->L, n = (size_t)sc->N * sc->C * L;
  float *x = randn(n, 1);
  for (size_t i = 0; i < n; i++) {
    const size_t img = i / ((size_t)sc->C * L), pixel = img * L + i % L;
    x[i] *= (float)(1e-3 + (double)(pixel % 5));
    if (pixel + 1 == (size_t)sc->N * L && pixel > 0) x[i] = 0.0f;
  }
  return x;
}

static void check_pixelnorm_fwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L;
  float *x = pixel_input(sc), *ref = hfloat(n);
  nn_pixelnorm_fwd_ref(NULL, ref, x, N, C, L);
  float *dx = din(x, n), *dy = dout(n);
  nn_pixelnorm_fwd_cuda(NULL, dy, dx, N, C, L);
  op_done(r, "y");
  cmp_f32(r, ref, dy, n);
}

static void check_pixelnorm_bwd(const size_case *sc, result *r) {
  const int N = sc->N, C = sc->C;
  const size_t L = sc->L, n = (size_t)N * C * L;
  float *x = pixel_input(sc), *g = randn(n, 1), *ref = hfloat(n);
  nn_pixelnorm_bwd_ref(NULL, ref, g, x, N, C, L);
  float *dx = din(x, n), *dg = din(g, n), *odx = dout(n);
  nn_pixelnorm_bwd_cuda(NULL, odx, dg, dx, N, C, L);
  op_done(r, "dx");
  cmp_f32(r, ref, odx, n);
  nn_pixelnorm_bwd_cuda(NULL, NULL, dg, dx, N, C, L);
  op_done(r, "dx NULL");
}

/* Every fourth value is a random bit pattern (NaNs, infinities, subnormals of both kinds), the
 * others cycle through every float16 value, the midpoints between neighbours (rounding ties)
 * and the values just around those midpoints. */
static void check_float_to_half(const size_case *sc, result *r) {
  size_t n = sc->n;
  static const float sp[] = {NAN, -NAN, INFINITY, -INFINITY, 65504.0f, 65519.996f, 65520.0f,
                             2.98023224e-8f /* 2^-25 */, 4.47034836e-8f /* 1.5·2^-25 */, 0.0f,
                             -0.0f};
  float *x = hfloat(n);
  uint64_t seed = seed_next++;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = (uint32_t)(i / 4) & 0xffffu, u = ec_rng_u32(seed, i);
    float v = ec_half_to_float((uint16_t)k), w = ec_half_to_float((uint16_t)(k + 1u));
    float mid = (float)(((double)v + (double)w) / 2);
    switch (i % 4) {
    case 0: memcpy(&x[i], &u, sizeof u); break;
    case 1: x[i] = v; break;
    case 2: x[i] = isfinite(mid) ? mid : v; break;
    default: x[i] = isfinite(mid) ? nextafterf(mid, (u & 1) ? INFINITY : -INFINITY) : v; break;
    }
  }
  put_specials(x, n, sp, sizeof sp / sizeof sp[0]);
  x[n / 2] = -x[n / 2];
  uint16_t *ref = hnew(n * sizeof *ref);
  for (size_t i = 0; i < n; i++) ref[i] = ec_float_to_half(x[i]); /* the scalar reference */
  float *dx = din(x, n);
  uint16_t *dh = dnew(n, sizeof(uint16_t));
  nn_float_to_half_cuda(NULL, dh, dx, n);
  op_done(r, "half");
  cmp_u16(r, ref, dh, n);
}

/* Every float16 bit pattern in order (when n >= 65536), then random ones. */
static void check_half_to_float(const size_case *sc, result *r) {
  size_t n = sc->n;
  uint16_t *h = hnew(n * sizeof *h);
  uint64_t seed = seed_next++;
  for (size_t i = 0; i < n; i++) /* i·40503 mod 2^16 is a permutation of 0..65535 */
    h[i] = i < 65536 ? (uint16_t)(i * 40503u) : (uint16_t)ec_rng_u32(seed, i);
  float *ref = hfloat(n);
  for (size_t i = 0; i < n; i++) ref[i] = ec_half_to_float(h[i]);
  uint16_t *dh = dnew(n, sizeof(uint16_t));
  HCK(cudaMemcpy(dh, h, n * sizeof *h, cudaMemcpyHostToDevice));
  float *dy = dout(n);
  nn_half_to_float_cuda(NULL, dy, dh, n);
  op_done(r, "float");
  cmp_f32(r, ref, dy, n);
}

typedef struct {
  const char *name; /* the function of nn/cuda/ops.h that it checks */
  double tol;       /* allowed max |gpu - ref| / max |ref|; 0: bitwise equal */
  int shaped;       /* uses (N, C, L) rather than n */
  void (*run)(const size_case *sc, result *r);
} entry;

/* The entries, one per function of nn/cuda/ops.h (tests/unit/test_nn_cuda_complete.c reads the
 * quoted names between the two marker comments). */
static const entry entries[] = {
    /* BEGIN NN-CHECK ENTRIES */
    {"nn_mp_silu_fwd_cuda", 0, 0, check_mp_silu_fwd},
    {"nn_mp_silu_bwd_cuda", 0, 0, check_mp_silu_bwd},
    {"nn_mp_sum_fwd_cuda", 0, 0, check_mp_sum_fwd},
    {"nn_mp_sum_bwd_cuda", 0, 0, check_mp_sum_bwd},
    {"nn_mp_cat_fwd_cuda", 0, 1, check_mp_cat_fwd},
    {"nn_mp_cat_bwd_cuda", 0, 1, check_mp_cat_bwd},
    {"nn_clip_fwd_cuda", 0, 0, check_clip_fwd},
    {"nn_clip_bwd_cuda", 0, 0, check_clip_bwd},
    {"nn_modulate_fwd_cuda", 0, 1, check_modulate_fwd},
    {"nn_modulate_bwd_cuda", 0, 1, check_modulate_bwd},
    {"nn_append_ones_fwd_cuda", 0, 1, check_append_ones_fwd},
    {"nn_append_ones_bwd_cuda", 0, 1, check_append_ones_bwd},
    {"nn_rows_axpby_cuda", 0, 1, check_rows_axpby},
    {"nn_scale_cuda", 0, 0, check_scale},
    {"nn_acc_cuda", 0, 0, check_acc},
    {"nn_pixelnorm_fwd_cuda", 0, 1, check_pixelnorm_fwd},
    {"nn_pixelnorm_bwd_cuda", 0, 1, check_pixelnorm_bwd},
    {"nn_float_to_half_cuda", 0, 0, check_float_to_half},
    {"nn_half_to_float_cuda", 0, 0, check_half_to_float},
    /* END NN-CHECK ENTRIES */
};
enum { NENTRIES = sizeof entries / sizeof entries[0] };

static int passes(const entry *e, const result *r) {
  if (r->op_failed || r->guard_bad) return 0;
  if (e->tol == 0) return r->bits_differ == 0;
  double rel = r->max_ref > 0 ? r->max_err / r->max_ref : r->max_err;
  return rel <= e->tol;
}

static void usage(FILE *f) {
  fprintf(f, "usage: nn-check [--small] [--sync] [--op SUBSTRING] [--list]\n"
             "  every CUDA op of nn/cuda/ops.h against its CPU reference; exit 77 without a GPU\n");
}

int main(int argc, char **argv) {
  int small = 0, list = 0;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--small") == 0) small = 1;
    else if (strcmp(argv[i], "--sync") == 0) nn_cuda_set_sync(1);
    else if (strcmp(argv[i], "--list") == 0) list = 1;
    else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (list) {
    for (int e = 0; e < NENTRIES; e++) printf("%s\n", entries[e].name);
    return 0;
  }
  char why[256];
  if (!ec_gpu_count(why, sizeof why)) {
    printf("nn-check: SKIP: %s\n", why);
    return 77;
  }
  char desc[256];
  ec_gpu_describe(desc, sizeof desc);
  printf("# nn-check on %s%s%s\n", desc, small ? ", --small" : "",
         nn_cuda_sync_enabled() ? ", EDM2C_CUDA_SYNC=1" : "");
  printf("# %-24s %-9s %-16s %-10s %-10s %-10s %-6s %-14s %s\n", "op", "n", "(N,C,L)", "max_err",
         "max_ref", "rel", "tol", "bits differ", "result");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int checks = 0, failed = 0;
  const int nsizes = small ? NSMALL : NSIZES;
  for (int e = 0; e < NENTRIES; e++) {
    if (only && !strstr(entries[e].name, only)) continue;
    for (int s = 0; s < nsizes; s++) {
      result r = {0};
      entries[e].run(&sizes[s], &r);
      free_all();
      int ok = passes(&entries[e], &r);
      double rel = r.max_ref > 0 ? r.max_err / r.max_ref : r.max_err;
      char shape[48] = "-";
      if (entries[e].shaped)
        snprintf(shape, sizeof shape, "(%d,%d,%zu)", sizes[s].N, sizes[s].C, sizes[s].L);
      char bits[32];
      snprintf(bits, sizeof bits, "%zu/%zu", r.bits_differ, r.compared);
      printf("  %-24s %-9zu %-16s %-10.3g %-10.3g %-10.3g %-6g %-14s %s%s%s\n", entries[e].name,
             entries[e].shaped ? (size_t)sizes[s].N * sizes[s].C * sizes[s].L : sizes[s].n, shape,
             r.max_err, r.max_ref, rel, entries[e].tol, bits, ok ? "ok" : "FAIL",
             r.guard_bad ? " (guard overwritten)" : "", r.op_failed ? " (CUDA error)" : "");
      checks++;
      failed += !ok;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("nn-check: %d checks, %d passed, %d failed (%.1f s)\n", checks, checks - failed, failed,
         secs);
  if (checks == 0) {
    fprintf(stderr, "nn-check: no entry matches --op %s\n", only ? only : "");
    return 1;
  }
  return failed ? 1 : 0;
}
