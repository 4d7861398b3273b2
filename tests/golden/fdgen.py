"""The counter-based statistics generator of metrics/fd_gen.h, in numpy (bit-identical to C).

    h(seed, i) = splitmix64(splitmix64(seed) + i)
    B[r, c]    = (h(seed, r*n + c) >> 60) - 7.5          D x n
    sigma      = scale * B @ B.T / n + delta * I          exact in float64 (see fd_gen.h)
    mu[i]      = (h(seed + 1000, i) >> 11) * 2**-53 - 0.5
Used by tests/golden/gen_frechet.py and tools/bench_frechet_scipy.py (run by hand with Debian numpy).
"""
import numpy as np

M64 = (1 << 64) - 1


def _splitmix64(z):
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_stream(seed, count):
    with np.errstate(over='ignore'):
        s = _splitmix64(np.array([seed], dtype=np.uint64))[0]
        return _splitmix64(s + np.arange(count, dtype=np.uint64))


def gen_B(seed, D, n):
    return ((hash_stream(seed, D * n) >> np.uint64(60)).astype(np.float64) - 7.5).reshape(D, n)


def gen_sigma(seed, D, n, scale=1.0, delta=0.0):
    B = gen_B(seed, D, n)
    s = (B @ B.T) * scale / n
    s[np.diag_indices(D)] += delta
    return s


def gen_mu(seed, D):
    return (hash_stream(seed + 1000, D) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 - 0.5
