/* metrics/stats and metrics/stats_io: float64 feature statistics against numpy.cov (golden
 * tests/golden/frechet.h5 /stats), merging, features with a large mean, NaN and N < 2 refusals,
 * and the HDF5 and .npz statistics files (round trips, numpy-written .npz, stored and deflated). */
#include <stdlib.h>
#include <unistd.h>

#include "core/atomic.h"
#include "metrics/stats.h"
#include "metrics/stats_io.h"
#include "tests/test.h"
#include "tests/unit/golden_h5.h"

/* max over i, j of |a − b| / sqrt(ref_ii ref_jj): covariance error relative to the variances. */
static double cov_err(const double *a, const double *ref, int64_t D) {
  double e = 0;
  for (int64_t i = 0; i < D; i++)
    for (int64_t j = 0; j < D; j++)
      e = fmax(e, fabs(a[i * D + j] - ref[i * D + j]) / sqrt(ref[i * D + i] * ref[j * D + j]));
  return e;
}

/* Checks statistics of golden group `name` added in blocks of `block` rows; returns the error. */
static double check_fixture(const char *name, int64_t block, int merge_halves, double *naive_err) {
  hid_t f = golden_open_file("frechet.h5");
  if (f < 0) return INFINITY;
  char p[128];
  size_t n = 0, D = 0, r = 0, c = 0;
  snprintf(p, sizeof p, "stats/%s/x", name);
  float *x = golden_f32_flat(f, p, &n);
  hid_t d = H5Dopen2(f, p, H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  hsize_t dims[2];
  H5Sget_simple_extent_dims(s, dims, NULL);
  H5Sclose(s);
  H5Dclose(d);
  D = dims[1];
  n = dims[0];
  snprintf(p, sizeof p, "stats/%s/mu", name);
  double *mu_ref = golden_f64(f, p, &r, NULL);
  snprintf(p, sizeof p, "stats/%s/cov", name);
  double *cov_ref = golden_f64(f, p, &r, &c);
  H5Fclose(f);
  double err = INFINITY;
  edm2_stats a, b;
  double *mu = malloc(D * sizeof(double)), *cov = malloc(D * D * sizeof(double));
  if (x && mu_ref && cov_ref && mu && cov && !edm2_stats_init(&a, (int64_t)D) && !edm2_stats_init(&b, (int64_t)D)) {
    int64_t half = merge_halves ? (int64_t)n / 2 : (int64_t)n;
    for (int64_t i = 0, m; i < (int64_t)n; i += m) {
      int64_t end = i < half ? half : (int64_t)n; /* blocks never straddle the halves */
      m = end - i < block ? end - i : block;
      edm2_stats_add(i < half ? &a : &b, x + i * (int64_t)D, m);
    }
    if (merge_halves) edm2_stats_merge(&a, &b);
    if (a.count == (int64_t)n && !edm2_stats_finalize(&a, mu, cov)) {
      err = cov_err(cov, cov_ref, (int64_t)D);
      for (size_t j = 0; j < D; j++) err = fmax(err, fabs(mu[j] - mu_ref[j]) / sqrt(cov_ref[j * D + j]));
    }
    if (naive_err) { /* EDM2's one-pass form, in float64: (Σxxᵀ − N μμᵀ)/(N − 1) */
      double *sxx = calloc(D * D, sizeof(double)), *sx = calloc(D, sizeof(double));
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) {
          sx[j] += x[i * D + j];
          for (size_t k = 0; k < D; k++) sxx[j * D + k] += (double)x[i * D + j] * x[i * D + k];
        }
      for (size_t j = 0; j < D; j++)
        for (size_t k = 0; k < D; k++)
          sxx[j * D + k] = (sxx[j * D + k] - (double)n * (sx[j] / n) * (sx[k] / n)) / (double)(n - 1);
      *naive_err = cov_err(sxx, cov_ref, (int64_t)D);
      free(sxx);
      free(sx);
    }
    edm2_stats_free(&a);
    edm2_stats_free(&b);
  }
  free(x);
  free(mu_ref);
  free(cov_ref);
  free(mu);
  free(cov);
  return err;
}

TEST(matches_numpy_cov) {
  for (int64_t block = 1; block <= 4096; block *= 16) {
    double e = check_fixture("plain", block, 0, NULL);
    printf("# plain, blocks of %lld: max error %.2e\n", (long long)block, e);
    ASSERT_TRUE(e <= 1e-13);
  }
}

TEST(merge_of_halves_equals_whole) {
  double whole = check_fixture("plain", 1000, 0, NULL), halves = check_fixture("plain", 7, 1, NULL);
  printf("# whole %.2e, merged halves %.2e\n", whole, halves);
  ASSERT_TRUE(whole <= 1e-13);
  ASSERT_TRUE(halves <= 1e-12);
  ASSERT_TRUE(check_fixture("large_mean", 100, 1, NULL) <= 1e-11);
}

/* Features with |μ|/σ ≈ 1e4: centred sums keep the accuracy float64 allows (the mean itself
 * rounds at ε·|μ| ≈ 2e-12 σ); the one-pass form loses ~8 digits of the covariance. */
TEST(large_mean_accuracy) {
  double naive = 0;
  double e = check_fixture("large_mean", 64, 0, &naive);
  printf("# |mu|/sigma = 1e4: ours %.2e, one-pass sum(xx^T) - N mu mu^T %.2e\n", e, naive);
  ASSERT_TRUE(e <= 1e-11);
  ASSERT_TRUE(naive > 1e3 * e);
}

TEST(nan_features_refused) {
  edm2_stats s;
  ASSERT_EQ_INT(edm2_stats_init(&s, 3), EC_OK);
  float x[6] = {1, 2, 3, 4, NAN, 6};
  ASSERT_EQ_INT(edm2_stats_add(&s, x, 1), EC_OK);
  ec_status st = edm2_stats_add(&s, x, 2);
  int64_t count = s.count;
  float y[3] = {1, INFINITY, 0};
  ec_status st2 = edm2_stats_add(&s, y, 1);
  edm2_stats_free(&s);
  ASSERT_EQ_INT(st, EC_EINVAL);
  ASSERT_EQ_INT(count, 1); /* nothing of the bad batch was added */
  ASSERT_EQ_INT(st2, EC_EINVAL);
  ASSERT_TRUE(strstr(ec_errmsg(), "feature 1 (column 1) is infinite") != NULL);
}

TEST(fewer_than_two_images) {
  edm2_stats s, t;
  ASSERT_EQ_INT(edm2_stats_init(&s, 2), EC_OK);
  ASSERT_EQ_INT(edm2_stats_init(&t, 3), EC_OK);
  double mu[2], sigma[4];
  ec_status st0 = edm2_stats_finalize(&s, mu, sigma);
  float x[2] = {1, 2};
  edm2_stats_add(&s, x, 1);
  ec_status st1 = edm2_stats_finalize(&s, mu, sigma);
  ec_status st2 = edm2_stats_merge(&s, &t);
  edm2_stats_free(&s);
  edm2_stats_free(&t);
  ASSERT_EQ_INT(st0, EC_EINVAL);
  ASSERT_EQ_INT(st1, EC_EINVAL);
  ASSERT_EQ_INT(st2, EC_EINVAL);
  ASSERT_TRUE(strstr(ec_errmsg(), "dimension 3 into dimension 2") != NULL);
}

static void fill(edm2_moments *m, int64_t D, double seed) {
  edm2_moments_alloc(m, D);
  for (int64_t i = 0; i < D; i++) {
    m->mu[i] = seed * 0.1 + i / 3.0;
    for (int64_t j = 0; j <= i; j++)
      m->sigma[i * D + j] = m->sigma[j * D + i] = (i == j ? 2.0 + i : 1.0 / (1 + i + j)) * seed;
  }
}

static int same(const edm2_moments *a, const edm2_moments *b) {
  return a->dim == b->dim && !memcmp(a->mu, b->mu, (size_t)a->dim * 8) &&
         !memcmp(a->sigma, b->sigma, (size_t)(a->dim * a->dim) * 8);
}

TEST(h5_round_trip) {
  edm2_stats_file w = {.num_images = 50000}, r = {0};
  fill(&w.metric[EDM2_METRIC_FID], 16, 1.0);
  fill(&w.metric[EDM2_METRIC_FD_DINOV2], 8, 2.0);
  w.metric[EDM2_METRIC_FID].num_images = 50000;
  const char *p = test_path("stats.h5");
  ASSERT_EQ_INT(edm2_stats_write_h5(p, &w, EC_ATOMIC_NOCLOBBER), EC_OK);
  ASSERT_EQ_INT(edm2_stats_write_h5(p, &w, EC_ATOMIC_NOCLOBBER), EC_EEXIST);
  ASSERT_EQ_INT(edm2_stats_read(p, &r), EC_OK);
  int ok = !r.is_npz && r.num_images == 50000 && same(&r.metric[0], &w.metric[0]) &&
           same(&r.metric[1], &w.metric[1]) && r.metric[0].num_images == 50000;
  edm2_stats_file_free(&w);
  edm2_stats_file_free(&r);
  ASSERT_TRUE(ok);
  ASSERT_TRUE(access(test_path("stats.h5.tmp"), F_OK) != 0);
}

static const char *golden_path(const char *name) {
  static char path[2100];
  char here[1024];
  snprintf(here, sizeof here, "%s", __FILE__);
  char *slash = strrchr(here, '/');
  if (slash) *slash = 0;
  else snprintf(here, sizeof here, ".");
  snprintf(path, sizeof path, "%s/../golden/%s", here, name);
  if (access(path, R_OK) != 0) snprintf(path, sizeof path, "tests/golden/%s", name);
  return path;
}

TEST(npz_round_trip) {
  edm2_moments m;
  fill(&m, 12, 3.0);
  edm2_stats_file r = {0};
  const char *p = test_path("stats.npz");
  ASSERT_EQ_INT(edm2_stats_write_npz(p, &m, 0), EC_OK);
  ASSERT_EQ_INT(edm2_stats_read(p, &r), EC_OK);
  int ok = r.is_npz && same(&r.unnamed, &m);
  edm2_stats_file_free(&r);
  ASSERT_TRUE(ok);
  /* numpy reads ours and writes a compressed copy, which we read back bit for bit. */
  if (test_system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0) {
    const char *q = test_path("numpy.npz");
    ASSERT_EQ_INT(test_system("/usr/bin/python3 -c \"import numpy as np, sys; z = np.load(sys.argv[1]); "
                              "assert z['mu'].dtype == np.float64 and z['sigma'].shape == (12, 12); "
                              "assert (z['sigma'] == z['sigma'].T).all(); "
                              "np.savez_compressed(sys.argv[2], mu=z['mu'], sigma=z['sigma'])\" %s %s",
                              p, q),
                  0);
    ASSERT_EQ_INT(edm2_stats_read(q, &r), EC_OK);
    ok = same(&r.unnamed, &m);
    edm2_stats_file_free(&r);
    ASSERT_TRUE(ok);
  } else {
    printf("# numpy not installed: the numpy half of this test is skipped\n");
  }
  edm2_moments_free(&m);
}

/* .npz files written by numpy (tests/golden/gen_frechet.py): stored, deflated, float32 Fortran. */
TEST(npz_from_numpy) {
  edm2_stats_file a = {0}, b = {0}, c = {0};
  ASSERT_EQ_INT(edm2_stats_read(golden_path("fd_a.npz"), &a), EC_OK);
  ASSERT_EQ_INT(edm2_stats_read(golden_path("fd_b_deflated.npz"), &b), EC_OK);
  ASSERT_EQ_INT(edm2_stats_read(golden_path("fd_b_f32_fortran.npz"), &c), EC_OK);
  int ok = a.unnamed.dim == 8 && b.unnamed.dim == 8 && c.unnamed.dim == 8;
  for (int i = 0; ok && i < 64; i++) ok = c.unnamed.sigma[i] == (double)(float)b.unnamed.sigma[i];
  edm2_stats_file_free(&a);
  edm2_stats_file_free(&b);
  edm2_stats_file_free(&c);
  ASSERT_TRUE(ok);
}

TEST(bad_files) {
  edm2_stats_file r = {0};
  const char *p = test_path("junk.npz");
  ASSERT_EQ_INT(test_write_file(p, "PK\x03\x04garbage", 11), 0);
  ASSERT_EQ_INT(edm2_stats_read(p, &r), EC_EFORMAT);
  ASSERT_EQ_INT(test_write_file(p, "hello", 5), 0);
  ASSERT_EQ_INT(edm2_stats_read(p, &r), EC_EFORMAT);
  ASSERT_TRUE(strstr(ec_errmsg(), "neither an HDF5 statistics file nor a .npz") != NULL);
  ASSERT_EQ_INT(edm2_stats_read(test_path("missing.h5"), &r), EC_ENOENT);
  ASSERT_EQ_INT(edm2_stats_read(golden_path("fd_bad_asym.h5"), &r), EC_EFORMAT);
  ASSERT_TRUE(strstr(ec_errmsg(), "not symmetric") != NULL);
  ASSERT_EQ_INT(edm2_stats_read(golden_path("frechet.h5"), &r), EC_EFORMAT);
  ASSERT_TRUE(strstr(ec_errmsg(), "not statistics") != NULL);
}

TEST_MAIN(matches_numpy_cov, merge_of_halves_equals_whole, large_mean_accuracy, nan_features_refused,
          fewer_than_two_images, h5_round_trip, npz_round_trip, npz_from_numpy, bad_files)
