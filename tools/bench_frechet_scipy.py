#!/usr/bin/python3
"""Times pytorch-fid's Fréchet distance (scipy.linalg.sqrtm of Σ₁Σ₂) on the statistics that
build/metrics/bench_frechet times for edm2c (metrics/fd_gen.h's generator, bit-identical inputs:
sigma1 = B₁B₁ᵀ/n, sigma2 = 2·B₂B₂ᵀ/n, n = 4D), and with --edm2c runs that benchmark in the same
invocation so the two numbers come from the same machine state (docs/performance.md):

    /usr/bin/python3 tools/bench_frechet_scipy.py [--dim 2048] [--repeats 3] \
        [--edm2c build/metrics/bench_frechet]

Needs Debian's python3-numpy and python3-scipy.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import scipy
import scipy.linalg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'golden'))
from fdgen import gen_mu, gen_sigma  # noqa: E402


def pytorch_fid(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError('Imaginary component {}'.format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dim', type=int, default=2048)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--edm2c', help='path of build/metrics/bench_frechet, run first')
    a = ap.parse_args()
    if a.edm2c:
        subprocess.run([a.edm2c, str(a.dim), str(max(a.repeats, 3))], check=True)
        sys.stdout.flush()
    D = a.dim
    s1, s2 = gen_sigma(1, D, 4 * D), gen_sigma(2, D, 4 * D, 2.0)
    mu1, mu2 = gen_mu(1, D), gen_mu(2, D)
    t = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        fd = pytorch_fid(mu1, s1, mu2, s2)
        t.append(time.perf_counter() - t0)
    t.sort()
    print('scipy sqrtm D=%d  fd=%.17g  best %.3f s  median %.3f s  (%d runs, scipy %s, numpy %s)'
          % (D, fd, t[0], t[len(t) // 2], a.repeats, scipy.__version__, np.__version__))


if __name__ == '__main__':
    main()
