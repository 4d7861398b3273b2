#!/usr/bin/python3
"""Golden data for the Fréchet distance and feature statistics (tests/unit/test_frechet.c,
tests/unit/test_stats.c, tests/cli/edm2_metrics_fd.sh). Run by hand, from the repository root,
with Debian's Python (numpy 1.24, scipy 1.10, h5py 3.7, mpmath 1.2); about 2 minutes:

    /usr/bin/python3 tests/golden/gen_frechet.py

It writes tests/golden/frechet.h5 (~60 KB), small statistics files for the command-line test
(tests/golden/fd_*.npz, fd_*.h5) and tests/golden/fd_expected.txt. CI only reads them.

Inputs come from the counter-based generator of metrics/fd_gen.h (tests/golden/fdgen.py, identical
bits in C and numpy), so the 2048-dimensional cases store no matrices, only parameters and values:
  * /wc/*: well-conditioned pairs (sigma = B Bᵀ/n with n = 4D, the second scaled by 2);
    fd_scipy is pytorch-fid's calculate_frechet_distance (scipy.linalg.sqrtm of Σ₁Σ₂, with its
    eps retry and imaginary-part check); fd_mp, for D ≤ 64, the same formula evaluated through
    symmetric eigendecompositions in 40-digit mpmath arithmetic on the exact float64 inputs.
  * /singular/*: n < D, rank-n covariances. The exact value needs no large high-precision
    eigensolve: with Σᵢ = BᵢBᵢᵀ/nᵢ, tr (Σ₁^½Σ₂Σ₁^½)^½ is the nuclear norm of B₁ᵀB₂ / √(n₁n₂),
    an n₁ × n₂ matrix whose entries numpy computes exactly (sums of quarter-integers); its
    singular values come from 40-digit mpmath. fd_scipy records what pytorch-fid returns (NaN
    with `scipy_error` set when it raises), and scipy_max_imag the imaginary part sqrtm produced.
  * /near/*: sigma = B Bᵀ/n + δ I with tiny δ (eigenvalues δ ≈ 1e-9 · λ_max): fd_mp by the
    full 40-digit computation (D ≤ 64).
  * /stats/*: float32 features, their mean and numpy.cov (ddof 1, two-pass float64), plain and
    with a large mean (|μ|/σ ≈ 1e4).
"""
import os
import sys

import h5py
import mpmath
import numpy as np
import scipy
import scipy.linalg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fdgen import gen_B, gen_mu, gen_sigma  # noqa: E402

mpmath.mp.dps = 40
OUT = 'tests/golden'


def pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance (the published formula and failure handling).
    Returns (value or nan, error text or '', max |imag| of sqrtm's result)."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    imag = float(np.max(np.abs(covmean.imag))) if np.iscomplexobj(covmean) else 0.0
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            return float('nan'), 'ValueError: Imaginary component {}'.format(m), imag
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean), '', imag


def mp_fd(mu1, s1, mu2, s2):
    """FD in 40-digit arithmetic through eigsy, on the exact float64 inputs."""
    D = len(mu1)
    A = mpmath.matrix(s1.tolist())
    E, Q = mpmath.eigsy(A)
    S = Q * mpmath.diag([mpmath.sqrt(max(e, 0)) for e in E]) * Q.T
    M = S * mpmath.matrix(s2.tolist()) * S
    M = (M + M.T) / 2
    ev = mpmath.eigsy(M, eigvals_only=True)
    tr = sum(mpmath.sqrt(max(e, 0)) for e in ev)
    mean = sum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(mu1, mu2))
    t1 = sum(mpmath.mpf(s1[i, i]) for i in range(D))
    t2 = sum(mpmath.mpf(s2[i, i]) for i in range(D))
    return float(mean + t1 + t2 - 2 * tr)


def exact_singular(mu1, mu2, seed1, seed2, D, n1, n2):
    B1, B2 = gen_B(seed1, D, n1), gen_B(seed2, D, n2)
    C = B1.T @ B2  # exact: quarter-integers
    sv = mpmath.svd_r(mpmath.matrix(C.tolist()), compute_uv=False)
    nuc = sum(sv[i] for i in range(len(sv)))
    mean = sum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(mu1, mu2))
    t1 = mpmath.mpf(float((B1 * B1).sum())) / n1  # exact integer-valued sums
    t2 = mpmath.mpf(float((B2 * B2).sum())) / n2
    return float(mean + t1 + t2 - 2 * nuc / mpmath.sqrt(n1 * n2))


def main():
    f = h5py.File(os.path.join(OUT, 'frechet.h5'), 'w')
    f.attrs['format'] = 'edm2c-golden-frechet'
    f.attrs['format_version'] = 1
    f.attrs['scipy_version'] = scipy.__version__
    f.attrs['numpy_version'] = np.__version__

    for D in (16, 64, 256, 2048):
        n = 4 * D
        s1, s2 = gen_sigma(1, D, n), gen_sigma(2, D, n, 2.0)
        mu1, mu2 = gen_mu(1, D), gen_mu(2, D)
        g = f.create_group('wc/d%d' % D)
        for k, v in dict(D=D, n1=n, n2=n, seed1=1, seed2=2, scale1=1.0, scale2=2.0, delta1=0.0,
                         delta2=0.0).items():
            g.attrs[k] = v
        fd, err, imag = pytorch_fid(mu1, s1, mu2, s2)
        g.attrs['fd_scipy'] = fd
        g.attrs['scipy_max_imag'] = imag
        if D <= 64:
            g.attrs['fd_mp'] = mp_fd(mu1, s1, mu2, s2)
            print('wc D=%d scipy %.17g mp %.17g rel %.3g' % (D, fd, g.attrs['fd_mp'], abs(fd / g.attrs['fd_mp'] - 1)))
        else:
            print('wc D=%d scipy %.17g' % (D, fd))

    # Singular: (name, D, n1, n2, seed1, seed2, mu seeds)
    for name, D, n1, n2, a, b, ma, mb in [
            ('d64_n16', 64, 16, 16, 3, 4, 3, 4),
            ('d256_n32_n64', 256, 32, 64, 5, 6, 5, 6),
            ('d2048_n64', 2048, 64, 64, 7, 8, 7, 8),
            ('d2048_n256_n128', 2048, 256, 128, 9, 10, 9, 10),
            ('d2048_same', 2048, 64, 64, 11, 11, 11, 12),  # identical sigma: FD = |Δμ|²
            ('d256_identical', 256, 32, 32, 13, 13, 13, 13)]:  # identical statistics: FD = 0
        s1, s2 = gen_sigma(a, D, n1), gen_sigma(b, D, n2)
        mu1, mu2 = gen_mu(ma, D), gen_mu(mb, D)
        ref = exact_singular(mu1, mu2, a, b, D, n1, n2)
        fd, err, imag = pytorch_fid(mu1, s1, mu2, s2)
        g = f.create_group('singular/' + name)
        for k, v in dict(D=D, n1=n1, n2=n2, seed1=a, seed2=b, mu_seed1=ma, mu_seed2=mb).items():
            g.attrs[k] = v
        g.attrs['fd_ref'] = ref
        g.attrs['fd_scipy'] = fd
        g.attrs['scipy_error'] = err
        g.attrs['scipy_max_imag'] = imag
        print('singular %s: exact %.17g  scipy %.17g %s (max imag %.3g)' % (name, ref, fd, err, imag))

    # Near-singular: sigma = B Bᵀ/n + δ I, full 40-digit reference.
    for name, D, n1, n2, d1, d2, a, b in [
            ('d32_n8', 32, 8, 8, 2.0 ** -30, 2.0 ** -30, 21, 22),
            ('d64_n16', 64, 16, 16, 2.0 ** -30, 2.0 ** -34, 23, 24),
            ('d64_n16_wc', 64, 16, 256, 2.0 ** -30, 0.0, 25, 26)]:
        s1, s2 = gen_sigma(a, D, n1, 1.0, d1), gen_sigma(b, D, n2, 1.0, d2)
        mu1, mu2 = gen_mu(a, D), gen_mu(b, D)
        ref = mp_fd(mu1, s1, mu2, s2)
        fd, err, imag = pytorch_fid(mu1, s1, mu2, s2)
        g = f.create_group('near/' + name)
        for k, v in dict(D=D, n1=n1, n2=n2, seed1=a, seed2=b, mu_seed1=a, mu_seed2=b, delta1=d1,
                         delta2=d2).items():
            g.attrs[k] = v
        g.attrs['fd_ref'] = ref
        g.attrs['fd_scipy'] = fd
        g.attrs['scipy_error'] = err
        g.attrs['scipy_max_imag'] = imag
        print('near %s: mp %.17g  scipy %.17g %s (max imag %.3g)' % (name, ref, fd, err, imag))

    # Feature statistics.
    rng = np.random.default_rng(8)
    for name, n, D, loc, scale in [('plain', 203, 8, 0.0, 3.0), ('large_mean', 517, 16, 1e4, 1.0)]:
        x = (loc + scale * rng.standard_normal((n, D)) * np.linspace(0.5, 2, D)).astype(np.float32)
        g = f.create_group('stats/' + name)
        g['x'] = x
        g['mu'] = x.astype(np.float64).mean(axis=0)
        g['cov'] = np.cov(x.astype(np.float64), rowvar=False)
    f.close()

    # Command-line fixtures: D = 8 and 4 statistics, pytorch-fid .npz files and edm2c-stats HDF5.
    def moments(seed, D, n):
        x = np.random.default_rng(seed).standard_normal((n, D)) + 0.1 * seed
        return x.mean(axis=0), np.cov(x, rowvar=False)

    fa, fb = moments(1, 8, 40), moments(2, 8, 50)
    da, db = moments(3, 4, 30), moments(4, 4, 30)
    np.savez(os.path.join(OUT, 'fd_a.npz'), mu=fa[0], sigma=fa[1])
    np.savez_compressed(os.path.join(OUT, 'fd_b_deflated.npz'), mu=fb[0], sigma=fb[1])
    np.savez(os.path.join(OUT, 'fd_b_f32_fortran.npz'), mu=fb[0].astype(np.float32),
             sigma=np.asfortranarray(fb[1].astype(np.float32)))
    np.savez(os.path.join(OUT, 'fd_dino_a.npz'), mu=da[0], sigma=da[1])

    def h5stats(name, sets, attrs=None):
        with h5py.File(os.path.join(OUT, name), 'w') as h:
            h.attrs['format'] = 'edm2c-stats'
            h.attrs['format_version'] = np.int64(1)
            h.attrs['num_images'] = np.int64(40)
            for k, (mu, sigma) in sets.items():
                g = h.create_group(k)
                g.attrs['num_images'] = np.int64(40)
                g['mu'] = mu
                g['sigma'] = sigma

    h5stats('fd_both_a.h5', {'fid': fa, 'fd_dinov2': da})
    h5stats('fd_both_b.h5', {'fid': fb, 'fd_dinov2': db})
    h5stats('fd_fid_b.h5', {'fid': fb})
    h5stats('fd_dino_b.h5', {'fd_dinov2': db})
    bad = fb[1].copy()
    bad[0, 1] += 1e-3
    h5stats('fd_bad_asym.h5', {'fid': (fb[0], bad)})
    nan = fb[0].copy()
    nan[3] = np.nan
    h5stats('fd_bad_nan.h5', {'fid': (nan, fb[1])})
    with h5py.File(os.path.join(OUT, 'fd_bad_nosigma.h5'), 'w') as h:
        h.attrs['format'] = 'edm2c-stats'
        h.attrs['format_version'] = np.int64(1)
        h.create_group('fid')['mu'] = fb[0]

    with open(os.path.join(OUT, 'fd_expected.txt'), 'w') as t:
        t.write('# pytorch-fid (scipy %s) values for tests/cli/edm2_metrics_fd.sh\n' % scipy.__version__)
        t.write('fid_ab %.17g\n' % pytorch_fid(*fa, *fb)[0])
        t.write('dino_ab %.17g\n' % pytorch_fid(*da, *db)[0])
        t.write('fid_ab_f32 %.17g\n' % pytorch_fid(fa[0], fa[1], fb[0].astype(np.float32).astype(np.float64),
                                                  fb[1].astype(np.float32).astype(np.float64))[0])


if __name__ == '__main__':
    main()
