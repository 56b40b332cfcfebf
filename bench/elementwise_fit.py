#!/usr/bin/env python3
# The polynomial fits behind kernels/elementwise_math.h: minimax (discrete Remez exchange, mpmath)
# of each function's reduced form, printed as float32 coefficients (highest degree last).
#   python3 bench/elementwise_fit.py [exp|log|expm1|tanh|erf|erfc]   (needs mpmath; ~10 s per fit)
import sys
import mpmath as mp
import numpy as np

mp.mp.dps = 40


def remez(f, w, phis, a, b, iters=30, grid=1500):
    """min over c of max_x |w(x) (f(x) - sum_k c_k phi_k(x))| on [a, b]; returns (c, max error)."""
    n = len(phis)
    xs = [mp.mpf(a) + (mp.mpf(b) - a) * (1 - mp.cos(mp.pi * i / (grid - 1))) / 2 for i in range(grid)]
    fx = [f(x) for x in xs]
    wx = [w(x) for x in xs]
    ph = [[p(x) for p in phis] for x in xs]
    ref = [int(round((grid - 1) * (1 - np.cos(np.pi * i / n)) / 2)) for i in range(n + 1)]
    best = None
    for _ in range(iters):
        A = mp.matrix(n + 1, n + 1)
        rhs = mp.matrix(n + 1, 1)
        for r, i in enumerate(ref):
            for k in range(n):
                A[r, k] = ph[i][k]
            A[r, n] = (-1) ** r / wx[i]
            rhs[r] = fx[i]
        sol = mp.lu_solve(A, rhs)
        c = [sol[k] for k in range(n)]
        err = [wx[i] * (fx[i] - sum(c[k] * ph[i][k] for k in range(n))) for i in range(grid)]
        runs, start = [], 0  # the extremum of each run of one sign
        for j in range(1, grid + 1):
            if j == grid or (mp.sign(err[j]) != mp.sign(err[start]) and err[j] != 0):
                runs.append(max(range(start, j), key=lambda q: abs(err[q])))
                start = j
        while len(runs) > n + 1:
            runs.pop(0 if abs(err[runs[0]]) < abs(err[runs[-1]]) else -1)
        best = (c, max(abs(e) for e in err))
        if len(runs) != n + 1:
            break
        ref = runs
    return best


def show(name, c, maxerr):
    print(f'{name}: max weighted error {float(maxerr):.3e}')
    for v in c:
        print(f'  {float(np.float32(float(v))):.9e}f')


def powers(d, center=0):
    return [lambda x, k=k: (x - center) ** k for k in range(d + 1)]


FITS = {
    # e^r = 1 + r + r^2 p(r), |r| <= ln2/2, relative error of e^r
    'exp': lambda: remez(lambda r: (mp.exp(r) - 1 - r) / r**2, lambda r: r**2 / mp.exp(r), powers(4), -mp.log(2) / 2 * 1.01, mp.log(2) / 2 * 1.01),
    # log1p(f) = f - f^2/2 + f^3 p(f), f in [sqrt(1/2) - 1, sqrt(2) - 1], relative error of log1p
    'log': lambda: remez(lambda f: (mp.log1p(f) - f + f**2 / 2) / f**3, lambda f: abs(f**3 / mp.log1p(f)), powers(7), (mp.sqrt(0.5) - 1) * 1.01, (mp.sqrt(2) - 1) * 1.01),
    # expm1(r) = r + r^2/2 + r^3 p(r), relative error of expm1
    'expm1': lambda: remez(lambda r: (mp.expm1(r) - r - r**2 / 2) / r**3, lambda r: abs(r**3 / mp.expm1(r)), powers(4), -mp.log(2) / 2 * 1.01, mp.log(2) / 2 * 1.01),
    # tanh(x) = x + x^3 p(x^2), z = x^2 in [0, 1], relative error of tanh
    'tanh': lambda: remez(lambda z: (mp.tanh(mp.sqrt(z)) - mp.sqrt(z)) / z**1.5, lambda z: z**1.5 / mp.tanh(mp.sqrt(z)), powers(6), mp.mpf(1e-10), mp.mpf(1)),
    # erf(x) = x (2/sqrt(pi) + z p(z)), z = x^2 in [0, 1], relative error of erf
    'erf': lambda: remez(lambda z: (mp.erf(mp.sqrt(z)) / mp.sqrt(z) - 2 / mp.sqrt(mp.pi)) / z, lambda z: z * mp.sqrt(z) / mp.erf(mp.sqrt(z)), powers(5), mp.mpf(1e-12), mp.mpf(1)),
    # erfc(a) = e^-a^2 R(a - 1), a in [1, 4], absolute error of erfc
    'erfc': lambda: remez(lambda x: mp.erfc(x) * mp.exp(x**2), lambda x: mp.exp(-x**2), powers(9, 1), mp.mpf(1), mp.mpf(4)),
}

if __name__ == '__main__':
    for name in sys.argv[1:] or FITS:
        show(name, *FITS[name]())
