#!/usr/bin/python3
"""Golden data for the post-hoc EMA math and solver tests (tests/unit/test_phema_math.c,
tests/unit/test_solve.c). Run by hand, from the repository root, with Debian's Python
(numpy 1.24, scipy 1.10, h5py 3.7):

    /usr/bin/python3 tests/golden/gen_posthoc_solver.py [out.h5]

It writes tests/golden/posthoc_solver.h5 (float64, ~0.4 MB); CI only reads that file.

Two independent references are computed:
  * EDM2's float64 computation, written here from the paper's math (Algorithm 2: the largest real
    root of γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) by numpy.roots; Algorithm 3: the Gram matrix from
    Eq. 151, numpy.linalg.solve (LAPACK gesv), then each column divided by its sum as EDM2 does);
  * the exact least-squares optimum in 60-digit decimal arithmetic: γ by Newton's method, inner
    products in closed form or (exponential·power) by a positive series, the solution by the
    interval decomposition (posthoc-reference §3.2) or, for irregular layouts, by Gaussian
    elimination on the dense normal equations, and the relative L2 response error of any weights
    from the same decomposition. At 60 digits the cancellations that limit float64 do not matter.
Times are integers (images); t_i = i · 2^23 (8 Mi) for the uniform cases.
"""
import sys
from decimal import Decimal, getcontext
from fractions import Fraction

import h5py
import numpy as np
import scipy
import scipy.integrate

getcontext().prec = 60
D = Decimal
LN2 = D(2).ln()
ONE = D(1)


# ---- EDM2's float64 computation (paper Algorithms 2 and 3) -------------------------------------

def edm2_gamma(sigma):
    t = sigma ** -2
    return float(np.roots([1, 7, 16 - t, 12 - t]).real.max())


def edm2_corr(ta, ga, tb, gb):
    ta, ga, tb, gb = (np.asarray(v, dtype=np.float64) for v in (ta, ga, tb, gb))
    ratio = ta / tb
    e = np.where(ta < tb, gb, -ga)
    return (ga + 1) * (gb + 1) * ratio ** e / ((ga + gb + 1) * np.maximum(ta, tb))


def edm2_solve(t, g, tr, gr):
    col = lambda v: np.float64(v).reshape(-1, 1)
    row = lambda v: np.float64(v).reshape(1, -1)
    A = edm2_corr(col(t), col(g), row(t), row(g))
    B = edm2_corr(col(t), col(g), row(tr), row(gr))
    X = np.linalg.solve(A, B)
    return X, X / np.sum(X, axis=0)


# ---- high precision ------------------------------------------------------------------------------

def dpow(x, y):
    """x^y for Decimal x ≥ 0."""
    if x == 0:
        return D(0)
    return (y * x.ln()).exp()


def gamma_hp(sigma):
    """Positive root of σ²γ(γ²+7γ+4) = (1 − 12σ²)(γ+1) (Eq. 126 times σ²) for the double σ."""
    s2 = D(sigma) ** 2
    dd = 1 - 12 * s2
    assert dd > 0
    g = D(edm2_gamma(sigma)) if sigma > 0.002 else 1 / D(sigma)
    if g <= 0:
        g = 3 * dd
    for _ in range(200):
        f = s2 * g * (g * g + 7 * g + 4) - dd * (g + 1)
        fp = s2 * (3 * g * g + 14 * g + 4) - dd
        step = f / fp
        g -= step
        if abs(step) <= g * D(10) ** -58:
            break
    return g


def largest_admissible_sigma():
    """Largest double σ with 1 − 12σ² > 0 (exactly)."""
    s = float(np.sqrt(1 / 12))
    while Fraction(1) - 12 * Fraction(s) ** 2 <= 0:
        s = float(np.nextafter(s, 0))
    while True:
        n = float(np.nextafter(s, 1))
        if Fraction(1) - 12 * Fraction(n) ** 2 > 0:
            s = n
        else:
            return s


def exp_c(k, t):
    return k / (1 - (-k * t).exp())


def pow_pow_hp(ta, ga, tb, gb):
    ta, tb, ga, gb = D(ta), D(tb), D(ga), D(gb)
    c = (ga + 1) * (gb + 1) / (ga + gb + 1)
    if ta <= tb:
        return c * dpow(ta / tb, gb) / tb
    return c * dpow(tb / ta, ga) / ta


def kernel_series(g, a, lo=D(0), hi=D(1)):
    """∫_lo^hi u^g e^{a u} du = Σ aⁿ/n! (hi^{g+n+1} − lo^{g+n+1})/(g+n+1), positive terms."""
    total, term, n = D(0), D(1), 0
    lh, ll = hi.ln(), (lo.ln() if lo > 0 else None)
    while True:
        e = g + n + 1
        piece = (e * lh).exp() - ((e * ll).exp() if ll is not None else 0)
        c = term * piece / e
        total += c
        if n > a and c < total * D(10) ** -62:
            return total
        n += 1
        term = term * a / n


def exp_pow_hp(te, h, tp, g):
    te, tp, g = D(te), D(tp), D(g)
    k = LN2 / D(h)
    m = min(te, tp)
    a = k * m
    j = (-a).exp() * kernel_series(g, a)
    return exp_c(k, te) * (g + 1) * dpow(m / tp, g + 1) * (-k * (te - m)).exp() * j


def exp_exp_hp(ta, ha, tb, hb):
    ta, tb = D(ta), D(tb)
    ka, kb = LN2 / D(ha), LN2 / D(hb)
    m = min(ta, tb)
    ks = ka + kb
    return (exp_c(ka, ta) * exp_c(kb, tb) * (-ka * (ta - m) - kb * (tb - m)).exp() *
            (1 - (-ks * m).exp()) / ks)


def norm2_hp(r):
    if r['kind'] == 'power':
        g = D(r['gamma'])
        return (g + 1) ** 2 / ((2 * g + 1) * D(r['t']))
    return exp_exp_hp(r['t'], r['h'], r['t'], r['h'])


def inner_hp(ti, gi, r):
    if r['kind'] == 'power':
        return pow_pow_hp(ti, gi, r['t'], r['gamma'])
    return exp_pow_hp(r['t'], r['h'], ti, gi)


def gauss_solve(A, b):
    """Gaussian elimination with partial pivoting on Decimal lists (A n×n, b n×k)."""
    n = len(A)
    A = [row[:] for row in A]
    b = [row[:] for row in b]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(A[r][c]))
        A[c], A[p] = A[p], A[c]
        b[c], b[p] = b[p], b[c]
        for r in range(c + 1, n):
            f = A[r][c] / A[c][c]
            if f != 0:
                for cc in range(c, n):
                    A[r][cc] -= f * A[c][cc]
                for cc in range(len(b[r])):
                    b[r][cc] -= f * b[c][cc]
    x = [[D(0)] * len(b[0]) for _ in range(n)]
    for r in range(n - 1, -1, -1):
        for cc in range(len(b[0])):
            s = b[r][cc] - sum(A[r][k] * x[k][cc] for k in range(r + 1, n))
            x[r][cc] = s / A[r][r]
    return x


# ---- interval decomposition in high precision ----------------------------------------------------

class Interval:
    """Exact least squares for layouts where every time carries the exponents gs (ascending)."""

    def __init__(self, times, gs):
        self.T = [D(t) for t in times]
        self.times = list(times)
        self.g = [D(g) for g in gs]

    def _target_pieces(self, j, r):
        """(ρ, umax, G, h, Q) on interval j in u = τ/T_j, or None past the target."""
        Tj = self.T[j]
        lo = self.T[j - 1] if j else D(0)
        tr = D(r['t'])
        if lo >= tr:
            return None
        rho = lo / Tj
        umax = min(ONE, tr / Tj)
        P = len(self.g)
        G = [[(1 - dpow(rho, gk + gl + 1)) / (gk + gl + 1) for gl in self.g] for gk in self.g]
        if r['kind'] == 'power':
            gr = D(r['gamma'])
            K = (gr + 1) * dpow(Tj / tr, gr + 1)
            h = [K * (dpow(umax, gk + gr + 1) - dpow(rho, gk + gr + 1)) / (gk + gr + 1)
                 for gk in self.g]
            Q = K * K * (dpow(umax, 2 * gr + 1) - dpow(rho, 2 * gr + 1)) / (2 * gr + 1)
        else:
            k = LN2 / D(r['h'])
            a = k * Tj
            pref = Tj * exp_c(k, tr) * (-k * tr).exp()
            h = [pref * kernel_series(gk, a, rho, umax) for gk in self.g]
            Q = pref * pref * ((2 * a * umax).exp() - (2 * a * rho).exp()) / (2 * a)
        return rho, umax, G, h, Q

    def solve(self, r):
        """Exact weights, rows ordered (time, exponent)."""
        m, P = len(self.T), len(self.g)
        beta = []
        for j in range(m):
            pc = self._target_pieces(j, r)
            if pc is None:
                beta.append([D(0)] * P)
                continue
            _, _, G, h, _ = pc
            sol = gauss_solve(G, [[v] for v in h])
            beta.append([s[0] for s in sol])
        x = []
        for j in range(m):
            for k in range(P):
                nxt = D(0)
                if j + 1 < m:
                    nxt = beta[j + 1][k] * dpow(self.T[j] / self.T[j + 1], self.g[k] + 1)
                x.append((beta[j][k] - nxt) / (self.g[k] + 1))
        return x

    def rel_error(self, x, r):
        """‖Σ x p − p_r‖ / ‖p_r‖ for weights x (Decimal or float), rows ordered (time, exponent)."""
        m, P = len(self.T), len(self.g)
        x = [D(v) for v in x]
        beta = [[D(0)] * P for _ in range(m)]
        for j in range(m - 1, -1, -1):
            for k in range(P):
                b = (self.g[k] + 1) * x[j * P + k]
                if j + 1 < m:
                    b += beta[j + 1][k] * dpow(self.T[j] / self.T[j + 1], self.g[k] + 1)
                beta[j][k] = b
        total = D(0)
        for j in range(m):
            Tj = self.T[j]
            lo = self.T[j - 1] if j else D(0)
            rho = lo / Tj
            G = [[(1 - dpow(rho, gk + gl + 1)) / (gk + gl + 1) for gl in self.g] for gk in self.g]
            e2 = sum(beta[j][a] * G[a][b] * beta[j][b] for a in range(P) for b in range(P))
            pc = self._target_pieces(j, r)
            if pc is not None:
                _, _, _, h, Q = pc
                e2 += Q - 2 * sum(beta[j][a] * h[a] for a in range(P))
            total += e2 / Tj
        return float((max(total, D(0)) / norm2_hp(r)).sqrt())


def dense_exact(t, g, targets):
    """Exact weights for any layout from the dense normal equations (small n only)."""
    n = len(t)
    A = [[pow_pow_hp(t[i], g[i], t[j], g[j]) for j in range(n)] for i in range(n)]
    B = [[inner_hp(t[i], g[i], r) for r in targets] for i in range(n)]
    X = gauss_solve(A, B)
    errs = []
    for c, r in enumerate(targets):
        x = [X[i][c] for i in range(n)]
        e2 = norm2_hp(r) - 2 * sum(x[i] * B[i][c] for i in range(n))
        e2 += sum(x[i] * A[i][j] * x[j] for i in range(n) for j in range(n))
        errs.append(float((max(e2, D(0)) / norm2_hp(r)).sqrt()))
    return X, errs


def power_target(t, sigma):
    return {'kind': 'power', 't': t, 'sigma': sigma, 'gamma': float(gamma_hp(sigma)), 'h': 0.0}


def exp_target(t, h):
    return {'kind': 'exp', 't': t, 'sigma': 0.0, 'gamma': 0.0, 'h': float(h)}


def write_targets(grp, targets):
    grp['target_kind'] = np.array([0 if r['kind'] == 'power' else 1 for r in targets], np.int32)
    grp['target_t'] = np.array([r['t'] for r in targets], np.int64)
    grp['target_sigma'] = np.array([r['sigma'] for r in targets], np.float64)
    grp['target_gamma'] = np.array([r['gamma'] for r in targets], np.float64)
    grp['target_half_life'] = np.array([r['h'] for r in targets], np.float64)


# ---- cases ---------------------------------------------------------------------------------------

def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'tests/golden/posthoc_solver.h5'
    f = h5py.File(out, 'w')
    f.attrs['generator'] = 'tests/golden/gen_posthoc_solver.py'
    f.attrs['numpy'] = np.__version__
    f.attrs['scipy'] = scipy.__version__
    f.attrs['h5py'] = h5py.__version__
    f.attrs['python'] = sys.version.split()[0]
    f.attrs['decimal_digits'] = getcontext().prec
    s05, s10 = 0.05, 0.10
    g05, g10 = float(gamma_hp(s05)), float(gamma_hp(s10))

    # γ(σ) over the admissible range, up to the largest double below 12^-0.5.
    smax = largest_admissible_sigma()
    sig = list(np.geomspace(0.001, 0.28, 160))
    sig += [0.015, 0.05, 0.07, 0.10, 0.13, 0.135, 0.2, 0.25, 0.28, 0.288, 0.2886, 0.28867,
            0.288675, 0.2886751, 0.28867513, 0.288675134, 0.2886751345, 0.28867513459,
            0.288675134594, 0.2886751345948, 0.28867513459481, smax,
            float(np.nextafter(smax, 0)), 1e-4]
    sig = np.array(sorted(set(float(s) for s in sig)))
    gam = [gamma_hp(s) for s in sig]
    f['gamma/sigma'] = sig
    f['gamma/gamma'] = np.array([float(g) for g in gam])
    f['gamma/gamma_edm2'] = np.array([edm2_gamma(s) if s > 0.002 else np.nan for s in sig])
    f['gamma'].attrs['sigma_max_admissible'] = smax
    print('gamma: %d values, largest admissible sigma %.17g' % (len(sig), smax))

    # Inner products: exponential·power over a grid of a = k·min(te, tp) and γ.
    rows = []
    T = 1 << 31
    for g in [0.01, 0.169, 0.72, 4.6036, 16.9722, 63.659, 1000.0, 1e4]:
        for a in [1e-6, 0.3, 3.0, 8.5, 20.0, 95.0, 700.0, 4000.0]:
            for te, tp in [(T, T), (T, T // 2), (T // 3, T)]:
                m = min(te, tp)
                h = float(LN2 * D(m) / D(a))
                rows.append([te, h, tp, g, float(exp_pow_hp(te, h, tp, g))])
    rows = np.array(rows)
    f['inner/exp_pow'] = rows
    # scipy cross-check of the series. Substituting τ = m s^(1/(γ+1)) removes the τ^γ endpoint
    # singularity: value = C (m/tp)^(γ+1) ∫₀¹ exp(−k (te − m s^(1/(γ+1)))) ds.
    for te, h, tp, g, val in rows[::3]:
        k = np.log(2) / h
        m = min(te, tp)
        if k * m > 100:
            continue
        c = k / -np.expm1(-k * te)
        fun = lambda s: np.exp(-k * (te - m * s ** (1 / (g + 1))))
        q, _ = scipy.integrate.quad(fun, 0, 1, epsabs=0, epsrel=1e-13, limit=400)
        q *= c * np.exp((g + 1) * np.log(m / tp))
        assert abs(q - val) <= 1e-10 * abs(val), (te, h, tp, g, q, val)
    ee = []
    for ta, ha, tb, hb in [(T, T / 10, T, T / 10), (T, T / 10, T // 2, T / 40), (T // 7, 1e3, T, 5e8),
                           (T, 1e15, T, 1e15), (T, 100.0, T, 100.0), (T // 5, T / 3, T, 2e7)]:
        ee.append([ta, ha, tb, hb, float(exp_exp_hp(ta, ha, tb, hb))])
    f['inner/exp_exp'] = np.array(ee)
    pp = []
    for ta, ga, tb, gb in [(T, 16.97, T, 6.94), (T // 3, 1e4, T, 1e4), (T - 1, 1e4, T, 5e3),
                           (1 << 23, 0.01, T, 63.66), (T, 1e5, T - 4096, 2.0), (12, 3.0, 1 << 50, 0.5)]:
        pp.append([ta, ga, tb, gb, float(pow_pow_hp(ta, ga, tb, gb))])
    f['inner/pow_pow'] = np.array(pp)
    print('inner products: %d exp·pow, %d exp·exp, %d pow·pow' % (len(rows), len(ee), len(pp)))

    # Uniform layouts: t_i = i·8Mi, σ 0.05 and 0.10 at every time, targets at the last time.
    for n in [8, 64, 256, 512, 4096]:
        times = [(i + 1) << 23 for i in range(n)]
        t = np.repeat(np.array(times, np.int64), 2)
        g = np.tile([g05, g10], n)
        sigmas = [0.015, 0.05, 0.13, 0.25] if n <= 512 else [0.015, 0.13]
        targets = [power_target(times[-1], s) for s in sigmas]
        grp = f.create_group('uniform_n%d' % n)
        grp['t'] = t
        grp['gamma'] = g
        write_targets(grp, targets)
        iv = Interval(times, [g05, g10])
        X = np.zeros((2 * n, len(targets)))
        errs = []
        for c, r in enumerate(targets):
            x = iv.solve(r)
            X[:, c] = [float(v) for v in x]
            errs.append(iv.rel_error(x, r))
        grp['x_exact'] = X
        grp['err_exact'] = np.array(errs)
        if n <= 512:
            ge = np.tile([edm2_gamma(s05), edm2_gamma(s10)], n)
            Xr, Xn = edm2_solve(t.astype(np.float64), ge, [r['t'] for r in targets],
                                [edm2_gamma(s) for s in sigmas])
            grp['x_edm2_raw'] = Xr
            grp['x_edm2'] = Xn
            grp['err_edm2'] = np.array([iv.rel_error(Xn[:, c], r) for c, r in enumerate(targets)])
        print('uniform n=%d: err_exact %s' % (n, ' '.join('%.4e' % e for e in errs)))

    # A target time between snapshot times (interval solver with a partial interval).
    times = [(i + 1) << 23 for i in range(16)]
    targets = [power_target(21 << 22, 0.10), exp_target(21 << 22, float(3 << 23))]
    grp = f.create_group('midtime')
    grp['t'] = np.repeat(np.array(times, np.int64), 2)
    grp['gamma'] = np.tile([g05, g10], 16)
    write_targets(grp, targets)
    iv = Interval(times, [g05, g10])
    X = np.zeros((32, len(targets)))
    errs = []
    for c, r in enumerate(targets):
        x = iv.solve(r)
        X[:, c] = [float(v) for v in x]
        errs.append(iv.rel_error(x, r))
    grp['x_exact'] = X
    grp['err_exact'] = np.array(errs)
    print('midtime: err_exact %s' % ' '.join('%.4e' % e for e in errs))

    # Exponential (fixed half-life) targets on a uniform layout, mixed with a power target.
    n = 32
    times = [(i + 1) << 23 for i in range(n)]
    Tn = times[-1]
    targets = [exp_target(Tn, Tn / 10), exp_target(Tn, Tn / 40), exp_target(times[19], Tn / 20),
               power_target(Tn, 0.13)]
    grp = f.create_group('exp_n32')
    grp['t'] = np.repeat(np.array(times, np.int64), 2)
    grp['gamma'] = np.tile([g05, g10], n)
    write_targets(grp, targets)
    iv = Interval(times, [g05, g10])
    X = np.zeros((2 * n, len(targets)))
    errs = []
    for c, r in enumerate(targets):
        x = iv.solve(r)
        X[:, c] = [float(v) for v in x]
        errs.append(iv.rel_error(x, r))
    grp['x_exact'] = X
    grp['err_exact'] = np.array(errs)
    print('exp_n32: err_exact %s' % ' '.join('%.4e' % e for e in errs))

    # Irregular layout: different profile sets at some times (dense path).
    g07 = float(gamma_hp(0.07))
    t, g = [], []
    for i in range(1, 17):
        ti = i << 23
        prof = {3: [g05], 7: [g05], 10: [g10], 12: [g05, g07, g10]}.get(i, [g05, g10])
        for gg in prof:
            t.append(ti)
            g.append(gg)
    targets = [power_target(16 << 23, 0.015), power_target(16 << 23, 0.13),
               power_target(16 << 23, 0.25), power_target(12 << 23, 0.08),
               exp_target(16 << 23, float(2 << 23))]
    grp = f.create_group('irregular')
    grp['t'] = np.array(t, np.int64)
    grp['gamma'] = np.array(g)
    write_targets(grp, targets)
    Xd, errs = dense_exact(t, g, targets)
    grp['x_exact'] = np.array([[float(v) for v in row] for row in Xd])
    grp['err_exact'] = np.array(errs)
    pw = [r for r in targets if r['kind'] == 'power']
    Xr, _ = edm2_solve(np.array(t, np.float64), np.array(g), [r['t'] for r in pw],
                       [r['gamma'] for r in pw])
    grp['x_edm2_raw'] = Xr
    print('irregular: %d profiles, err_exact %s' % (len(t), ' '.join('%.4e' % e for e in errs)))
    f.close()


if __name__ == '__main__':
    main()
