/* metrics/frechet: the Fréchet distance against pytorch-fid's scipy.linalg.sqrtm form on
 * well-conditioned statistics (≤ 1e-9 relative, D = 16 … 2048), against exact high-precision
 * values on singular (fewer images than dimensions) and near-singular ones, where sqrtm returns
 * complex, wrong or negative values, and closed forms. Inputs come from metrics/fd_gen.h, which
 * tests/golden/gen_frechet.py implements identically; tests/golden/frechet.h5 holds the values. */
#include <stdlib.h>

#include "metrics/fd_gen.h"
#include "metrics/frechet.h"
#include "tests/test.h"
#include "tests/unit/golden_h5.h"

typedef struct {
  int64_t D;
  double *mu1, *mu2, *s1, *s2;
} fd_case;

static void case_free(fd_case *c) {
  free(c->mu1);
  free(c->mu2);
  free(c->s1);
  free(c->s2);
}

/* Builds a case from a golden group's parameters; 0 on failure. */
static int case_load(hid_t f, const char *grp, fd_case *c) {
  double D = golden_attr_f64(f, grp, "D"), n1 = golden_attr_f64(f, grp, "n1"), n2 = golden_attr_f64(f, grp, "n2");
  double a = golden_attr_f64(f, grp, "seed1"), b = golden_attr_f64(f, grp, "seed2");
  double ma = golden_attr_f64(f, grp, "mu_seed1"), mb = golden_attr_f64(f, grp, "mu_seed2");
  double sc1 = golden_attr_f64(f, grp, "scale1"), sc2 = golden_attr_f64(f, grp, "scale2");
  double d1 = golden_attr_f64(f, grp, "delta1"), d2 = golden_attr_f64(f, grp, "delta2");
  if (isnan(D) || isnan(n1) || isnan(n2) || isnan(a) || isnan(b)) return 0;
  if (isnan(ma)) ma = a;
  if (isnan(mb)) mb = b;
  if (isnan(sc1)) sc1 = 1;
  if (isnan(sc2)) sc2 = 1;
  if (isnan(d1)) d1 = 0;
  if (isnan(d2)) d2 = 0;
  c->D = (int64_t)D;
  c->mu1 = malloc((size_t)c->D * sizeof(double));
  c->mu2 = malloc((size_t)c->D * sizeof(double));
  c->s1 = malloc((size_t)(c->D * c->D) * sizeof(double));
  c->s2 = malloc((size_t)(c->D * c->D) * sizeof(double));
  if (!c->mu1 || !c->mu2 || !c->s1 || !c->s2) return 0;
  fdgen_mu((uint64_t)ma, c->D, c->mu1);
  fdgen_mu((uint64_t)mb, c->D, c->mu2);
  return fdgen_sigma((uint64_t)a, c->D, (int64_t)n1, sc1, d1, c->s1) &&
         fdgen_sigma((uint64_t)b, c->D, (int64_t)n2, sc2, d2, c->s2);
}

static hid_t open_golden(void) { return golden_open_file("frechet.h5"); }

/* Runs every case of a golden group; compares with attribute `ref` to `rtol` relative (or, when
 * the reference is 0, to rtol · (tr Σ₁ + tr Σ₂) absolute) and prints the errors. */
static void run_group(const char *group, const char *ref, double rtol) {
  hid_t f = open_golden();
  ASSERT_TRUE(f >= 0);
  hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
  ASSERT_TRUE(g >= 0);
  hsize_t n = 0;
  H5Gget_num_objs(g, &n);
  int done = 0;
  for (hsize_t i = 0; i < n; i++) {
    char name[64], path[160];
    H5Gget_objname_by_idx(g, i, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", group, name);
    fd_case c = {0};
    int ok = case_load(f, path, &c);
    double want = golden_attr_f64(f, path, ref), scipy = golden_attr_f64(f, path, "fd_scipy");
    edm2_fd_result r;
    ec_status st = ok ? edm2_frechet(c.D, c.mu1, c.s1, c.mu2, c.s2, &r) : EC_ENOMEM;
    case_free(&c);
    if (!ok || st || isnan(want)) {
      H5Gclose(g);
      H5Fclose(f);
      ASSERT_TRUE(ok);
      ASSERT_EQ_INT(st, EC_OK);
      ASSERT_TRUE(!isnan(want));
    }
    double scale = want != 0 && fabs(want) > 1e-30 ? fabs(want) : r.trace1 + r.trace2;
    printf("# %-28s D=%-5lld rank %lld/%lld  ours %.17g  %s %.17g  rel err %.2e  (scipy %.17g, rel err %.2e)\n",
           path, (long long)c.D, (long long)r.rank1, (long long)r.rank_m, r.fd, ref, want,
           fabs(r.fd - want) / scale, scipy, fabs(scipy - want) / scale);
    if (!(fabs(r.fd - want) <= rtol * scale) || !isfinite(r.fd) || r.fd < 0) {
      H5Gclose(g);
      H5Fclose(f);
      ASSERT_NEAR(r.fd, want, rtol * scale);
      ASSERT_TRUE(r.fd >= 0);
    }
    done++;
  }
  H5Gclose(g);
  H5Fclose(f);
  ASSERT_TRUE(done > 0);
}

/* pytorch-fid's scipy form on well-conditioned inputs: the bound, 1e-9 relative. */
TEST(well_conditioned_vs_scipy) { run_group("wc", "fd_scipy", 1e-9); }

/* The same cases against 40-digit arithmetic (D ≤ 64). */
TEST(well_conditioned_vs_high_precision) {
  hid_t f = open_golden();
  ASSERT_TRUE(f >= 0);
  const char *groups[] = {"wc/d16", "wc/d64"};
  for (int i = 0; i < 2; i++) {
    fd_case c = {0};
    ASSERT_TRUE(case_load(f, groups[i], &c));
    edm2_fd_result r;
    ASSERT_EQ_INT(edm2_frechet(c.D, c.mu1, c.s1, c.mu2, c.s2, &r), EC_OK);
    double want = golden_attr_f64(f, groups[i], "fd_mp");
    printf("# %s: ours %.17g  mp %.17g  rel err %.2e\n", groups[i], r.fd, want, fabs(r.fd / want - 1));
    case_free(&c);
    ASSERT_REL(r.fd, want, 1e-12);
  }
  H5Fclose(f);
}

/* Singular covariances (n < D, up to D = 2048 with 64 images) against the exact value; scipy's
 * errors there are 1e-7 … 3e-5 relative, with complex parts, and −4e-4 for identical statistics. */
TEST(singular_vs_exact) { run_group("singular", "fd_ref", 1e-11); }

/* Near-singular (eigenvalues δ ≈ 1e-11 λ_max, far below the spread of the others) against
 * 40-digit arithmetic. Float64 eigenvalues carry absolute errors of about ε·λ_max, and the square
 * root turns an error e in a tiny eigenvalue λ into e / (2√λ): ours lands at 4e-11 … 2e-10
 * relative (scipy's sqrtm at 2e-8 … 3e-8, with complex parts). */
TEST(near_singular_vs_high_precision) { run_group("near", "fd_ref", 5e-10); }

/* Equal covariances: FD = |Δμ|² (pytorch-fid's own test), here with a singular Σ. */
TEST(equal_covariances) {
  const int64_t D = 96;
  double *s = malloc(D * D * sizeof(double)), mu1[96], mu2[96];
  ASSERT_TRUE(s && fdgen_sigma(31, D, 16, 1.0, 0.0, s));
  fdgen_mu(1, D, mu1);
  fdgen_mu(2, D, mu2);
  double want = 0;
  for (int i = 0; i < D; i++) want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
  edm2_fd_result r;
  ec_status st = edm2_frechet(D, mu1, s, mu2, s, &r);
  double tr = r.trace1;
  free(s);
  ASSERT_EQ_INT(st, EC_OK);
  ASSERT_EQ_INT(r.rank1, 16);
  ASSERT_NEAR(r.fd, want, 1e-13 * tr);
  ASSERT_NEAR(r.trace_sqrt, tr, 1e-13 * tr);
}

/* Diagonal covariances: FD = Σ (√a − √b)², including zero variances on either side. */
TEST(diagonal_closed_form) {
  enum { D = 40 };
  static double s1[D * D], s2[D * D];
  double mu[D] = {0}, want = 0;
  for (int i = 0; i < D; i++) {
    double a = i % 5 == 0 ? 0 : 0.5 + i, b = i % 7 == 0 ? 0 : 3.0 / (1 + i);
    s1[i * D + i] = a;
    s2[i * D + i] = b;
    want += (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
  }
  edm2_fd_result r;
  ASSERT_EQ_INT(edm2_frechet(D, mu, s1, mu, s2, &r), EC_OK);
  ASSERT_EQ_INT(r.rank1, D - 8);
  ASSERT_REL(r.fd, want, 1e-13);
  /* Symmetric in its arguments. */
  edm2_fd_result q;
  ASSERT_EQ_INT(edm2_frechet(D, mu, s2, mu, s1, &q), EC_OK);
  ASSERT_REL(q.fd, want, 1e-13);
}

/* Zero covariance on one side: FD = |Δμ|² + tr Σ₂; rank 0 is handled. */
TEST(zero_covariance) {
  enum { D = 8 };
  double s1[D * D] = {0}, s2[D * D] = {0}, mu1[D] = {0}, mu2[D] = {0};
  for (int i = 0; i < D; i++) s2[i * D + i] = 1 + i, mu2[i] = 1;
  edm2_fd_result r;
  ASSERT_EQ_INT(edm2_frechet(D, mu1, s1, mu2, s2, &r), EC_OK);
  ASSERT_EQ_INT(r.rank1, 0);
  ASSERT_REL(r.fd, 8 + 36, 1e-15);
}

/* NaN or Inf anywhere: an error, never a number. */
TEST(nan_input_fails) {
  enum { D = 4 };
  double s[D * D] = {0}, mu[D] = {0}, bad[D * D] = {0};
  for (int i = 0; i < D; i++) s[i * D + i] = bad[i * D + i] = 1;
  bad[1 * D + 2] = NAN;
  edm2_fd_result r;
  ASSERT_EQ_INT(edm2_frechet(D, mu, s, mu, bad, &r), EC_EINVAL);
  ASSERT_TRUE(strstr(ec_errmsg(), "NaN") != NULL);
  double mu_inf[D] = {0, INFINITY, 0, 0};
  ASSERT_EQ_INT(edm2_frechet(D, mu_inf, s, mu, s, &r), EC_EINVAL);
  ASSERT_TRUE(strstr(ec_errmsg(), "infinity") != NULL);
}

TEST_MAIN(well_conditioned_vs_scipy, well_conditioned_vs_high_precision, singular_vs_exact,
          near_singular_vs_high_precision, equal_covariances, diagonal_closed_form, zero_covariance,
          nan_input_fails)
