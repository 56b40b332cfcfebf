// The fused layers (src/nn over native/nn_ops.cc and kernels/cpu/{layer_norm,gelu}.cpp): LayerNorm and
// GELU forward and backward against float64 references over odd shapes (cols 1, 7, 257, 1000) and
// extreme values, tf.grad against finite differences, the fused ops against the plain-tfjs composites
// they replace (GELU bit for bit on 'native'), results independent of the thread count, the
// bias / residual variants (biasGelu, addLayerNorm) against the same kernels on the summed input and
// float64, the
// cross-encoder's numbers with and without the fused kernels, leaks, and clear errors for bad input.
import * as tf from '@tensorflow/tfjs';

import { nn } from '../src';
import { CrossEncoder, CrossEncoderConfig } from '../src/models';
import { addon } from '../src/native';
import {
  ADD_LAYER_NORM,
  ADD_LAYER_NORM_GRAD,
  BIAS_GELU,
  BIAS_GELU_GRAD,
  GELU,
  GELU_GRAD,
  LAYER_NORM,
  LAYER_NORM_GRAD,
} from '../src/nn';
import { expectError } from './helpers/errors';
import {
  erf64,
  expectGradClose,
  finiteDiff,
  gaussian,
  gelu64,
  geluGrad64,
  layerNorm64,
  layerNormGrad64,
  mulberry32,
  Rng,
} from './helpers/reference64';
import { BACKENDS, expectNoLeak, useBackend } from './helpers/tfjs';

const { abs, max } = Math;

function normals(rng: Rng, n: number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + gaussian(rng) * scale;
  return a;
}

/** Runs layerNorm through the addon; mean/rstd always requested. */
function addonLayerNorm(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  rows: number,
  cols: number,
  eps: number,
) {
  const y = new Float32Array(rows * cols),
    mean = new Float32Array(rows),
    rstd = new Float32Array(rows);
  addon.layerNorm(x, gamma, beta, rows, cols, eps, y, mean, rstd);
  return { y, mean, rstd };
}

function addonLayerNormGrad(
  dy: Float32Array,
  x: Float32Array,
  gamma: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  rows: number,
  cols: number,
) {
  const dx = new Float32Array(rows * cols),
    dgamma = new Float32Array(cols),
    dbeta = new Float32Array(cols);
  addon.layerNormGrad(dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta);
  return { dx, dgamma, dbeta };
}

function withThreads<T>(n: number, f: () => T): T {
  const saved = addon.getNumThreads();
  addon.setNumThreads(n);
  try {
    return f();
  } finally {
    addon.setNumThreads(saved);
  }
}

function expectSameBits(a: Float32Array, b: Float32Array, label: string): void {
  expect(a.length).toBe(b.length);
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length),
    ib = new Int32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ia.length; i++)
    if (ia[i] !== ib[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i])))
      throw new Error(`${label}: element ${i} differs: ${a[i]} vs ${b[i]}`);
}

const SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 1],
  [1, 7],
  [5, 7],
  [2, 257],
  [33, 257],
  [4, 1000],
  [300, 257], // the last: several blocks and threads
];

describe('addon.layerNorm / layerNormGrad against float64', () => {
  const rng = mulberry32(11);
  test.each(SHAPES)('rows %i x cols %i', (rows, cols) => {
    const x = normals(rng, rows * cols, 2, 0.5),
      gamma = normals(rng, cols, 1, 1),
      beta = normals(rng, cols);
    const eps = 1e-5;
    const got = addonLayerNorm(x, gamma, beta, rows, cols, eps);
    const want = layerNorm64(x, gamma, beta, rows, cols, eps);
    expectGradClose(got.y, want.y, 2e-6, 'y');
    expectGradClose(got.mean, want.mean, 1e-6, 'mean', 1);
    expectGradClose(got.rstd, want.rstd, 1e-6, 'rstd');
    const dy = normals(rng, rows * cols);
    const g = addonLayerNormGrad(dy, x, gamma, got.mean, got.rstd, rows, cols);
    const w = layerNormGrad64(dy, x, gamma, rows, cols, eps);
    // cols = 1: xhat is 0 and dx exactly 0 (the row is its own mean).
    expectGradClose(g.dx, w.dx, 1e-5, 'dx');
    expectGradClose(g.dgamma, w.dgamma, 1e-5, 'dgamma', 1);
    expectGradClose(g.dbeta, w.dbeta, 1e-6, 'dbeta');
  });

  test('mean and rstd are optional; the same y without them', () => {
    const x = normals(rng, 4 * 9),
      gamma = normals(rng, 9),
      beta = normals(rng, 9);
    const y = new Float32Array(36);
    addon.layerNorm(x, gamma, beta, 4, 9, 1e-12, y);
    const y2 = new Float32Array(36);
    addon.layerNorm(x, gamma, beta, 4, 9, 1e-12, y2, null, null);
    expectSameBits(y, addonLayerNorm(x, gamma, beta, 4, 9, 1e-12).y, 'y');
    expectSameBits(y2, y, 'y (nulls)');
  });

  test('extreme values: a large offset, huge and tiny magnitudes, a constant row, eps, Inf and NaN rows', () => {
    const cols = 64;
    const rows: Float32Array[] = [
      normals(rng, cols, 1, 1e4), // offset >> spread: two-pass in double keeps full accuracy
      normals(rng, cols, 1e30), // squares overflow float, not double
      normals(rng, cols, 1e-20), // var far below eps = 1e-12... see eps test below
      new Float32Array(cols).fill(3.25), // constant: y = beta exactly
      normals(rng, cols, 1e-3),
    ];
    const x = new Float32Array(rows.length * cols);
    rows.forEach((r, i) => x.set(r, i * cols));
    const gamma = normals(rng, cols, 1, 1),
      beta = normals(rng, cols);
    // The kernel keeps the mean as a float (as PyTorch does), which for row 0 (at 1e4) is up to 5e-4
    // off the true mean: the reference subtracts the float mean too.
    const floatMean = (eps: number) => {
      const w = layerNorm64(x, gamma, beta, rows.length, cols, eps);
      for (let r = 0; r < rows.length; r++)
        for (let c = 0; c < cols; c++)
          w.y[r * cols + c] = (x[r * cols + c] - Math.fround(w.mean[r])) * w.rstd[r] * gamma[c] + beta[c];
      return w;
    };
    const got = addonLayerNorm(x, gamma, beta, rows.length, cols, 1e-12);
    const want = floatMean(1e-12);
    for (let r = 0; r < rows.length; r++)
      expectGradClose(
        got.y.subarray(r * cols, (r + 1) * cols),
        want.y.subarray(r * cols, (r + 1) * cols),
        4e-6,
        `row ${r}`,
      );
    for (let c = 0; c < cols; c++) expect(got.y[3 * cols + c]).toBe(beta[c]);
    // eps dominates a tiny variance exactly as in the reference
    const big = addonLayerNorm(x, gamma, beta, rows.length, cols, 0.5);
    expectGradClose(big.y, floatMean(0.5).y, 4e-6, 'eps 0.5');
    // A row with Inf or NaN gives NaN in that row only.
    const bad = Float32Array.from(x);
    bad[1 * cols + 5] = Infinity;
    bad[4 * cols + 7] = NaN;
    const r = addonLayerNorm(bad, gamma, beta, rows.length, cols, 1e-12);
    for (let c = 0; c < cols; c++) {
      expect(r.y[1 * cols + c]).toBeNaN();
      expect(r.y[4 * cols + c]).toBeNaN();
      expect(r.y[c]).toBe(got.y[c]);
    }
  });

  test('results do not depend on the thread count (bit for bit)', () => {
    const rows = 700,
      cols = 257; // 3 backward blocks of 63+ rows; forward blocks of 31 rows
    const x = normals(rng, rows * cols),
      gamma = normals(rng, cols),
      beta = normals(rng, cols),
      dy = normals(rng, rows * cols);
    const run = () => {
      const f = addonLayerNorm(x, gamma, beta, rows, cols, 1e-12);
      return { ...f, ...addonLayerNormGrad(dy, x, gamma, f.mean, f.rstd, rows, cols) };
    };
    const one = withThreads(1, run);
    for (const n of [2, 3, 8]) {
      const other = withThreads(n, run);
      for (const k of ['y', 'mean', 'rstd', 'dx', 'dgamma', 'dbeta'] as const)
        expectSameBits(other[k], one[k], `${k} with ${n} threads`);
    }
  });
});

describe('addon.gelu / geluGrad against float64', () => {
  const specials = [
    0, -0, 1e-30, -1e-30, 1e-3, -1e-3, 0.5, -0.5, 1, -1, 2.5, -2.5, 3, -3, 5.5, -5.5, 10, -10, 14.9, -14.9, 15, -15,
    100, -100, 1e30, -1e30,
  ];
  const rng = mulberry32(5);
  const x = Float32Array.from([...specials, ...normals(rng, 40000, 3)]); // > 2 blocks: the threaded path

  test('forward and backward within a few float32 roundings of float64', () => {
    const y = new Float32Array(x.length),
      dx = new Float32Array(x.length);
    const dy = normals(rng, x.length);
    addon.gelu(x, y);
    addon.geluGrad(dy, x, dx);
    for (let i = 0; i < x.length; i++) {
      // The erf form loses relative accuracy where 1 + erf(x / sqrt2) cancels (x << 0), like the
      // composite it reproduces: bound the error by the input's scale.
      const tol = 3e-7 * max(1, abs(x[i]));
      if (!(abs(y[i] - gelu64(x[i])) <= tol)) throw new Error(`gelu(${x[i]}) = ${y[i]}, want ${gelu64(x[i])}`);
      const want = dy[i] * geluGrad64(x[i]);
      if (!(abs(dx[i] - want) <= tol * abs(dy[i]) + 1e-30))
        throw new Error(`geluGrad(${x[i]}) = ${dx[i]}, want ${want}`);
    }
  });

  test('special values: +-Inf, NaN, -0', () => {
    const s = Float32Array.from([Infinity, -Infinity, NaN, -0]);
    const y = new Float32Array(4),
      dx = new Float32Array(4);
    addon.gelu(s, y);
    addon.geluGrad(Float32Array.from([2, 2, 2, 2]), s, dx);
    expect(y[0]).toBe(Infinity);
    expect(y[1]).toBeNaN(); // -inf * 0, as the composite (x * 0.5) * (1 + erf(x / sqrt2))
    expect(y[2]).toBeNaN();
    expect(Object.is(y[3], -0)).toBe(true);
    expect(Array.from(dx.subarray(0, 2))).toEqual([2, 0]); // the limits of gelu'
    expect(dx[2]).toBeNaN();
    expect(dx[3]).toBe(1); // gelu'(0) = 1/2
  });

  test('in place (y = x, dx = dy) and thread-count independence', () => {
    const y = new Float32Array(x.length);
    addon.gelu(x, y);
    const inPlace = Float32Array.from(x);
    addon.gelu(inPlace, inPlace);
    expectSameBits(inPlace, y, 'gelu in place');
    const dy = normals(rng, x.length),
      dx = new Float32Array(x.length);
    addon.geluGrad(dy, x, dx);
    const dyCopy = Float32Array.from(dy);
    addon.geluGrad(dyCopy, x, dyCopy);
    expectSameBits(dyCopy, dx, 'geluGrad in place');
    for (const n of [1, 3]) {
      const y1 = new Float32Array(x.length),
        d1 = new Float32Array(x.length);
      withThreads(n, () => {
        addon.gelu(x, y1);
        addon.geluGrad(dy, x, d1);
      });
      expectSameBits(y1, y, `gelu, ${n} threads`);
      expectSameBits(d1, dx, `geluGrad, ${n} threads`);
    }
  });
});

// (x + bias) + residual rounded as float32 adds round: the input the bias / residual variants normalise.
function summed(x: Float32Array, bias: Float32Array | null, res: Float32Array | null, cols: number): Float32Array {
  const s = new Float32Array(x.length);
  const f = Math.fround;
  for (let i = 0; i < x.length; i++) {
    let v = x[i];
    if (bias) v = f(v + bias[i % cols]);
    if (res) v = f(v + res[i]);
    s[i] = v;
  }
  return s;
}

function columnSum64(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c] += x[r * cols + c];
  return out;
}

describe('addon.layerNorm / layerNormGrad with a bias and a residual', () => {
  const rng = mulberry32(31);
  const variants: Array<[string, boolean, boolean]> = [
    ['bias and residual', true, true],
    ['residual only', false, true],
    ['bias only', true, false],
  ];
  test.each(SHAPES)('rows %i x cols %i: the kernels on x + bias + residual, dbias against float64', (rows, cols) => {
    for (const [label, withBias, withRes] of variants) {
      const n = rows * cols;
      const x = normals(rng, n, 2, 0.5),
        bias = withBias ? normals(rng, cols, 0.5) : null,
        res = withRes ? normals(rng, n, 3, -0.25) : null,
        gamma = normals(rng, cols, 1, 1),
        beta = normals(rng, cols),
        dy = normals(rng, n);
      const s = summed(x, bias, res, cols);
      const want = addonLayerNorm(s, gamma, beta, rows, cols, 1e-5);
      const y = new Float32Array(n),
        mean = new Float32Array(rows),
        rstd = new Float32Array(rows);
      addon.layerNorm(x, gamma, beta, rows, cols, 1e-5, y, mean, rstd, res, bias);
      // The sum is formed as the composite forms it: the fused op's bits are LayerNorm's on it.
      expectSameBits(y, want.y, `${label}: y`);
      expectSameBits(mean, want.mean, `${label}: mean`);
      expectSameBits(rstd, want.rstd, `${label}: rstd`);
      expectGradClose(y, layerNorm64(s, gamma, beta, rows, cols, 1e-5).y, 2e-6, `${label}: y vs float64`);
      const g = addonLayerNormGrad(dy, s, gamma, mean, rstd, rows, cols);
      const dx = new Float32Array(n),
        dgamma = new Float32Array(cols),
        dbeta = new Float32Array(cols),
        dbias = withBias ? new Float32Array(cols) : null;
      addon.layerNormGrad(dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta, res, bias, dbias);
      expectSameBits(dx, g.dx, `${label}: dx`);
      expectSameBits(dgamma, g.dgamma, `${label}: dgamma`);
      expectSameBits(dbeta, g.dbeta, `${label}: dbeta`);
      const ref = layerNormGrad64(dy, s, gamma, rows, cols, 1e-5);
      if (dbias) expectGradClose(dbias, columnSum64(ref.dx, rows, cols), 2e-5, `${label}: dbias vs float64`, 1e-3);
    }
  });

  test('extremes (an Inf row, a 1e4 offset) and the same bits for any thread count', () => {
    const rows = 700,
      cols = 257;
    const n = rows * cols;
    const x = normals(rng, n),
      res = normals(rng, n, 1, 1e4), // offset >> spread
      bias = normals(rng, cols, 1e-3),
      gamma = normals(rng, cols),
      beta = normals(rng, cols),
      dy = normals(rng, n);
    x.fill(Infinity, 5 * cols, 6 * cols); // an Inf row: NaN there, and only there
    const run = () => {
      const y = new Float32Array(n),
        mean = new Float32Array(rows),
        rstd = new Float32Array(rows);
      addon.layerNorm(x, gamma, beta, rows, cols, 1e-12, y, mean, rstd, res, bias);
      const dx = new Float32Array(n),
        dgamma = new Float32Array(cols),
        dbeta = new Float32Array(cols),
        dbias = new Float32Array(cols);
      addon.layerNormGrad(dy, x, gamma, mean, rstd, rows, cols, dx, dgamma, dbeta, res, bias, dbias);
      return { y, mean, rstd, dx, dgamma, dbeta, dbias };
    };
    const one = withThreads(1, run);
    expect(one.y[5 * cols]).toBeNaN();
    expect(Number.isFinite(one.y[4 * cols])).toBe(true);
    for (const k of [2, 3]) {
      const other = withThreads(k, run);
      for (const key of ['y', 'mean', 'rstd', 'dx', 'dgamma', 'dbeta', 'dbias'] as const)
        expectSameBits(other[key], one[key], `${key} with ${k} threads`);
    }
    // Without the Inf row the float64 reference holds at a 1e4 offset.
    x.fill(0.5, 5 * cols, 6 * cols);
    const r = run();
    const s = summed(x, bias, res, cols);
    // The mean is kept as a float (kernels/nn.h): y is accurate to about ulp(1e4) * rstd * |gamma|.
    expectGradClose(r.y, layerNorm64(s, gamma, beta, rows, cols, 1e-12).y, 3e-4, 'y at offset 1e4');
    const ref = layerNormGrad64(dy, s, gamma, rows, cols, 1e-12);
    expectGradClose(r.dbias, columnSum64(ref.dx, rows, cols), 1e-4, 'dbias at offset 1e4', 1);
  });
});

describe('addon.biasGelu / biasGeluGrad', () => {
  const rng = mulberry32(37);
  test.each(SHAPES)('rows %i x cols %i: gelu on x + bias bit for bit, dbias against float64', (rows, cols) => {
    const n = rows * cols;
    const x = normals(rng, n, 3),
      bias = normals(rng, cols, 1),
      dy = normals(rng, n);
    const s = summed(x, bias, null, cols);
    const want = new Float32Array(n),
      wantDx = new Float32Array(n);
    addon.gelu(s, want);
    addon.geluGrad(dy, s, wantDx);
    const y = new Float32Array(n),
      dx = new Float32Array(n),
      dbias = new Float32Array(cols);
    addon.biasGelu(x, bias, y);
    addon.biasGeluGrad(dy, x, bias, dx, dbias);
    expectSameBits(y, want, 'y');
    expectSameBits(dx, wantDx, 'dx');
    // Forward's erf kept for backward: the same y, dx and dbias bits.
    const y2 = new Float32Array(n),
      erf = new Float32Array(n),
      dx2 = new Float32Array(n),
      dbias2 = new Float32Array(cols);
    addon.biasGelu(x, bias, y2, erf);
    addon.biasGeluGrad(dy, x, bias, dx2, dbias2, erf);
    expectSameBits(y2, y, 'y (erf kept)');
    expectSameBits(dx2, dx, 'dx (from the kept erf)');
    expectSameBits(dbias2, dbias, 'dbias (from the kept erf)');
    expectGradClose(
      erf,
      Float64Array.from(s, (v) => erf64(v / Math.SQRT2)),
      1e-6,
      'erf vs float64',
      1,
    );
    const ref = Float64Array.from(s, (v, i) => dy[i] * geluGrad64(v));
    expectGradClose(dx, ref, 1e-6, 'dx vs float64', 1e-3);
    expectGradClose(dbias, columnSum64(ref, rows, cols), 1e-5, 'dbias vs float64', 1e-3);
  });

  test('extremes, in place, and the same bits for any thread count', () => {
    const rows = 301,
      cols = 1000; // several blocks of rows
    const n = rows * cols;
    const x = normals(rng, n, 4),
      bias = normals(rng, cols),
      dy = normals(rng, n);
    x.set([Infinity, -Infinity, NaN, 1e30, -1e30, 20, -20], 0);
    const run = () => {
      const y = new Float32Array(n),
        dx = new Float32Array(n),
        dbias = new Float32Array(cols),
        erf = new Float32Array(n),
        dxKept = new Float32Array(n),
        dbiasKept = new Float32Array(cols);
      addon.biasGelu(x, bias, y);
      addon.biasGeluGrad(dy, x, bias, dx, dbias);
      addon.biasGelu(x, bias, new Float32Array(n), erf);
      addon.biasGeluGrad(dy, x, bias, dxKept, dbiasKept, erf);
      expectSameBits(dxKept, dx, 'dx from the kept erf');
      expectSameBits(dbiasKept, dbias, 'dbias from the kept erf');
      return { y, dx, dbias };
    };
    const one = withThreads(1, run);
    expect(one.y[0]).toBe(Infinity);
    expect(one.dx[0]).toBe(dy[0]); // gelu'(+inf) = 1
    expect(one.dx[1]).toBe(0);
    expect(one.dx[2]).toBeNaN();
    expect(one.dbias[2]).toBeNaN(); // a NaN propagates into its column's sum only
    expect(Number.isFinite(one.dbias[3])).toBe(true);
    for (const k of [2, 3]) {
      const other = withThreads(k, run);
      for (const key of ['y', 'dx', 'dbias'] as const) expectSameBits(other[key], one[key], `${key}, ${k} threads`);
    }
    const inPlace = Float32Array.from(x);
    addon.biasGelu(inPlace, bias, inPlace);
    expectSameBits(inPlace, one.y, 'biasGelu in place');
    const dyCopy = Float32Array.from(dy),
      dbias = new Float32Array(cols);
    addon.biasGeluGrad(dyCopy, x, bias, dyCopy, dbias);
    expectSameBits(dyCopy, one.dx, 'biasGeluGrad in place');
  });
});

describe('addon argument errors name the argument', () => {
  const f = (n: number) => new Float32Array(n);
  test.each([
    [
      'x length',
      () => addon.layerNorm(f(5), f(3), f(3), 2, 3, 1e-5, f(6)),
      /layerNorm: x must be a Float32Array of length 6/,
    ],
    [
      'gamma length',
      () => addon.layerNorm(f(6), f(2), f(3), 2, 3, 1e-5, f(6)),
      /layerNorm: gamma must be a Float32Array of length 3/,
    ],
    [
      'beta type',
      () => addon.layerNorm(f(6), f(3), new Float64Array(3) as unknown as Float32Array, 2, 3, 1e-5, f(6)),
      /layerNorm: beta must be a Float32Array/,
    ],
    ['rows', () => addon.layerNorm(f(6), f(3), f(3), 0, 3, 1e-5, f(6)), /layerNorm: rows must be an integer/],
    ['cols', () => addon.layerNorm(f(6), f(3), f(3), 2, 1.5, 1e-5, f(6)), /layerNorm: cols must be an integer/],
    ['eps < 0', () => addon.layerNorm(f(6), f(3), f(3), 2, 3, -1, f(6)), /layerNorm: eps must be >= 0/],
    ['eps NaN', () => addon.layerNorm(f(6), f(3), f(3), 2, 3, NaN, f(6)), /layerNorm: eps must be finite/],
    [
      'mean length',
      () => addon.layerNorm(f(6), f(3), f(3), 2, 3, 0, f(6), f(3)),
      /layerNorm: mean must be a Float32Array of length 2/,
    ],
    [
      'too few',
      () => (addon.layerNorm as unknown as (...a: unknown[]) => void)(f(6), f(3)),
      /layerNorm: expected 7 arguments/,
    ],
    [
      'y overlaps x',
      () => {
        const b = f(12);
        addon.layerNorm(b.subarray(0, 6), f(3), f(3), 2, 3, 0, b.subarray(3, 9));
      },
      /layerNorm: y must not overlap/,
    ],
    [
      'y is x',
      () => {
        const b = f(6);
        addon.layerNorm(b, f(3), f(3), 2, 3, 0, b);
      },
      /layerNorm: y must not overlap/,
    ],
    [
      'grad dy length',
      () => addon.layerNormGrad(f(5), f(6), f(3), f(2), f(2), 2, 3, f(6), f(3), f(3)),
      /layerNormGrad: dy must be a Float32Array of length 6/,
    ],
    [
      'grad rstd',
      () => addon.layerNormGrad(f(6), f(6), f(3), f(2), f(3), 2, 3, f(6), f(3), f(3)),
      /layerNormGrad: rstd must be a Float32Array of length 2/,
    ],
    [
      'grad dgamma',
      () => addon.layerNormGrad(f(6), f(6), f(3), f(2), f(2), 2, 3, f(6), null as unknown as Float32Array, f(3)),
      /layerNormGrad: dgamma must be a Float32Array/,
    ],
    [
      'grad dx = dy',
      () => {
        const d = f(6);
        addon.layerNormGrad(d, f(6), f(3), f(2), f(2), 2, 3, d, f(3), f(3));
      },
      /layerNormGrad: dx must not overlap/,
    ],
    [
      'grad dbeta = dgamma',
      () => {
        const g = f(3);
        addon.layerNormGrad(f(6), f(6), f(3), f(2), f(2), 2, 3, f(6), g, g);
      },
      /layerNormGrad: dgamma must not overlap/,
    ],
    [
      'residual length',
      () => addon.layerNorm(f(6), f(3), f(3), 2, 3, 0, f(6), null, null, f(5)),
      /layerNorm: residual must be a Float32Array of length 6/,
    ],
    [
      'bias length',
      () => addon.layerNorm(f(6), f(3), f(3), 2, 3, 0, f(6), null, null, null, f(2)),
      /layerNorm: bias must be a Float32Array of length 3/,
    ],
    [
      'y is the residual',
      () => {
        const r = f(6);
        addon.layerNorm(f(6), f(3), f(3), 2, 3, 0, r, null, null, r);
      },
      /layerNorm: y must not overlap/,
    ],
    [
      'grad dbias length',
      () => addon.layerNormGrad(f(6), f(6), f(3), f(2), f(2), 2, 3, f(6), f(3), f(3), null, null, f(6)),
      /layerNormGrad: dbias must be a Float32Array of length 3/,
    ],
    [
      'grad dbias = dbeta',
      () => {
        const g = f(3);
        addon.layerNormGrad(f(6), f(6), f(3), f(2), f(2), 2, 3, f(6), f(3), g, null, f(3), g);
      },
      /layerNormGrad: dbeta must not overlap/,
    ],
    [
      'biasGelu x not rows of bias',
      () => addon.biasGelu(f(7), f(3), f(7)),
      /biasGelu: x has length 7, not a multiple of bias's 3/,
    ],
    ['biasGelu empty bias', () => addon.biasGelu(f(6), f(0), f(6)), /biasGelu: bias must not be empty/],
    ['biasGelu y length', () => addon.biasGelu(f(6), f(3), f(5)), /biasGelu: y must be a Float32Array of length 6/],
    [
      'biasGelu y is the bias',
      () => {
        const b = f(6);
        addon.biasGelu(f(6), b.subarray(0, 3), b);
      },
      /biasGelu: y must not overlap/,
    ],
    [
      'biasGelu erfOut is y',
      () => {
        const y = f(6);
        addon.biasGelu(f(6), f(3), y, y);
      },
      /biasGelu: erfOut must not overlap/,
    ],
    [
      'biasGeluGrad erf length',
      () => addon.biasGeluGrad(f(6), f(6), f(3), f(6), f(3), f(5)),
      /biasGeluGrad: erf must be a Float32Array of length 6/,
    ],
    [
      'biasGeluGrad dbias length',
      () => addon.biasGeluGrad(f(6), f(6), f(3), f(6), f(2)),
      /biasGeluGrad: dbias must be a Float32Array of length 3/,
    ],
    [
      'biasGeluGrad dbias overlaps dy',
      () => {
        const d = f(6);
        addon.biasGeluGrad(d, f(6), f(3), f(6), d.subarray(0, 3));
      },
      /biasGeluGrad: dbias must not overlap/,
    ],
    ['gelu empty', () => addon.gelu(f(0), f(0)), /gelu: x must not be empty/],
    ['gelu y length', () => addon.gelu(f(4), f(3)), /gelu: y must be a Float32Array of length 4/],
    [
      'gelu y overlaps',
      () => {
        const b = f(8);
        addon.gelu(b.subarray(0, 4), b.subarray(2, 6));
      },
      /gelu: y must be x itself or not overlap it/,
    ],
    ['gelu x type', () => addon.gelu([1, 2] as unknown as Float32Array, f(2)), /gelu: x must be a Float32Array/],
    ['geluGrad x length', () => addon.geluGrad(f(4), f(3), f(4)), /geluGrad: x must be a Float32Array of length 4/],
    [
      'geluGrad dx overlaps',
      () => {
        const b = f(8);
        addon.geluGrad(b.subarray(0, 4), f(4), b.subarray(1, 5));
      },
      /geluGrad: dx must be dy itself or not overlap it/,
    ],
  ])('%s', (_, call, pattern) => {
    expectError(call as () => unknown, pattern as RegExp);
  });
});

describe.each(BACKENDS)('tfjs ops on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const rng = mulberry32(23);

  test('the fused kernels are registered here', () => {
    for (const k of [
      LAYER_NORM,
      LAYER_NORM_GRAD,
      GELU,
      GELU_GRAD,
      ADD_LAYER_NORM,
      ADD_LAYER_NORM_GRAD,
      BIAS_GELU,
      BIAS_GELU_GRAD,
    ])
      expect(tf.getKernel(k, backend)).toBeDefined();
  });

  test('layerNorm: value against float64 and the composite, any rank', () => {
    for (const shape of [[7], [3, 1], [2, 3, 257], [2, 2, 1000]]) {
      const cols = shape[shape.length - 1],
        size = shape.reduce((a, b) => a * b, 1);
      const xv = normals(rng, size, 3, 1),
        gv = normals(rng, cols, 1, 1),
        bv = normals(rng, cols);
      const x = tf.tensor(xv, shape),
        gamma = tf.tensor1d(gv),
        beta = tf.tensor1d(bv);
      const y = nn.layerNorm(x, gamma, beta, 1e-12);
      expect(y.shape).toEqual(shape);
      const want = layerNorm64(xv, gv, bv, size / cols, cols, 1e-12).y;
      expectGradClose(y.dataSync(), want, 3e-6, `${shape}`);
      expectGradClose(
        y.dataSync(),
        nn.reference.layerNorm(x, gamma, beta, 1e-12).dataSync(),
        2e-5,
        `${shape} vs composite`,
      );
      tf.dispose([x, gamma, beta, y]);
    }
  });

  test('layerNorm: tf.grads against float64 and finite differences', () => {
    const rows = 3,
      cols = 7,
      eps = 1e-5;
    const xv = normals(rng, rows * cols),
      gv = normals(rng, cols, 0.5, 1),
      bv = normals(rng, cols),
      wv = normals(rng, rows * cols);
    const x = tf.tensor2d(xv, [rows, cols]),
      gamma = tf.tensor1d(gv),
      beta = tf.tensor1d(bv),
      w = tf.tensor2d(wv, [rows, cols]);
    const loss = (impl: typeof nn.layerNorm) => (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(impl(a, g, b, eps), w));
    const [dx, dg, db] = tf.grads(loss(nn.layerNorm))([x, gamma, beta]);
    const ref = layerNormGrad64(wv, xv, gv, rows, cols, eps);
    expectGradClose(dx.dataSync(), ref.dx, 2e-5, 'dx');
    expectGradClose(dg.dataSync(), ref.dgamma, 2e-5, 'dgamma');
    expectGradClose(db.dataSync(), ref.dbeta, 2e-6, 'dbeta');
    // The float64 reference itself, by central differences of the float64 forward.
    const f64 = (xx: Float64Array) => {
      const y = layerNorm64(xx, gv, bv, rows, cols, eps).y;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * wv[i];
      return s;
    };
    expectGradClose(dx.dataSync(), finiteDiff(f64, xv, 1e-5), 1e-4, 'dx vs finite differences');
    // ... and the composite's autodiff.
    const [cx, cg, cb] = tf.grads(loss(nn.reference.layerNorm))([x, gamma, beta]);
    expectGradClose(dx.dataSync(), cx.dataSync(), 1e-4, 'dx vs composite');
    expectGradClose(dg.dataSync(), cg.dataSync(), 1e-5, 'dgamma vs composite');
    expectGradClose(db.dataSync(), cb.dataSync(), 1e-6, 'dbeta vs composite');
    tf.dispose([x, gamma, beta, w, dx, dg, db, cx, cg, cb]);
  });

  test('gelu: value and tf.grad against float64, finite differences and the composite', () => {
    const xv = Float32Array.from([0, -0.7, 4, -4, 12, ...normals(rng, 200, 2)]);
    const x = tf.tensor1d(xv);
    const y = nn.gelu(x).dataSync();
    const comp = nn.reference.gelu(x).dataSync();
    for (let i = 0; i < xv.length; i++) {
      expect(abs(y[i] - gelu64(xv[i]))).toBeLessThanOrEqual(3e-7 * max(1, abs(xv[i])));
      if (backend === 'native')
        expect(y[i]).toBe(comp[i]); // the same erf: the same bits
      else expect(abs(y[i] - comp[i])).toBeLessThanOrEqual(1e-6 * max(1, abs(xv[i])));
    }
    const dy = tf.tensor1d(normals(rng, xv.length));
    const g = tf
      .grad((a: tf.Tensor) => tf.sum(tf.mul(nn.gelu(a), dy)))(x)
      .dataSync();
    const gc = tf
      .grad((a: tf.Tensor) => tf.sum(tf.mul(nn.reference.gelu(a), dy)))(x)
      .dataSync();
    const dyv = dy.dataSync();
    const fd = finiteDiff((xx) => xx.reduce((s, v, i) => s + gelu64(v) * dyv[i], 0), xv, 1e-6);
    for (let i = 0; i < xv.length; i++) {
      const tol = 3e-7 * max(1, abs(xv[i])) * abs(dyv[i]) + 1e-30;
      expect(abs(g[i] - dyv[i] * geluGrad64(xv[i]))).toBeLessThanOrEqual(tol);
      expect(abs(g[i] - fd[i])).toBeLessThanOrEqual(1e-6 * max(1, abs(dyv[i])));
      expect(abs(g[i] - gc[i])).toBeLessThanOrEqual(2e-6 * max(1, abs(xv[i])) * abs(dyv[i]));
    }
    tf.dispose([x, dy]);
  });

  test('addLayerNorm: value as the composite (bits on native), grads against float64 and finite differences', () => {
    const rows = 3,
      cols = 7,
      eps = 1e-5;
    for (const withBias of [true, false]) {
      const xv = normals(rng, rows * cols),
        rv = normals(rng, rows * cols, 2),
        biv = normals(rng, cols),
        gv = normals(rng, cols, 0.5, 1),
        bv = normals(rng, cols),
        wv = normals(rng, rows * cols);
      const x = tf.tensor2d(xv, [rows, cols]),
        res = tf.tensor2d(rv, [rows, cols]),
        bias = tf.tensor1d(biv),
        gamma = tf.tensor1d(gv),
        beta = tf.tensor1d(bv),
        w = tf.tensor2d(wv, [rows, cols]);
      const b = withBias ? bias : null;
      const sv = summed(xv, withBias ? biv : null, rv, cols);
      const y = nn.addLayerNorm(x, res, b, gamma, beta, eps);
      const composite = nn.layerNorm(tf.add(b ? tf.add(x, b) : x, res), gamma, beta, eps);
      if (backend === 'native') expectSameBits(y.dataSync() as Float32Array, composite.dataSync() as Float32Array, 'y');
      expectGradClose(y.dataSync(), layerNorm64(sv, gv, bv, rows, cols, eps).y, 3e-6, 'y vs float64');
      expectGradClose(
        y.dataSync(),
        nn.reference.addLayerNorm(x, res, b, gamma, beta, eps).dataSync(),
        2e-5,
        'y vs reference',
      );
      // Without a bias the op has four inputs (tf.grads refuses one that does not reach the loss).
      const grads = withBias
        ? tf.grads((a: tf.Tensor, r: tf.Tensor, bi: tf.Tensor, g: tf.Tensor, be: tf.Tensor) =>
            tf.sum(tf.mul(nn.addLayerNorm(a, r, bi, g, be, eps), w)),
          )([x, res, bias, gamma, beta])
        : tf.grads((a: tf.Tensor, r: tf.Tensor, g: tf.Tensor, be: tf.Tensor) =>
            tf.sum(tf.mul(nn.addLayerNorm(a, r, null, g, be, eps), w)),
          )([x, res, gamma, beta]);
      const [dx, dr, dbias, dg, db] = withBias ? grads : [grads[0], grads[1], null, grads[2], grads[3]];
      const ref = layerNormGrad64(wv, sv, gv, rows, cols, eps);
      expectGradClose(dx.dataSync(), ref.dx, 2e-5, 'dx');
      expectGradClose(dr.dataSync(), ref.dx, 2e-5, 'dresidual');
      expectGradClose(dg.dataSync(), ref.dgamma, 2e-5, 'dgamma');
      expectGradClose(db.dataSync(), ref.dbeta, 2e-6, 'dbeta');
      if (dbias) {
        expectGradClose(dbias.dataSync(), columnSum64(ref.dx, rows, cols), 2e-5, 'dbias', 1e-3);
        // dbias by central differences of the float64 forward.
        const f64 = (bb: Float64Array) => {
          const yy = layerNorm64(
            Float64Array.from(xv, (v, i) => v + bb[i % cols] + rv[i]),
            gv,
            bv,
            rows,
            cols,
            eps,
          ).y;
          return yy.reduce((acc, v, i) => acc + v * wv[i], 0);
        };
        expectGradClose(dbias.dataSync(), finiteDiff(f64, biv, 1e-5), 1e-4, 'dbias vs finite differences', 1e-3);
      }
      tf.dispose([x, res, bias, gamma, beta, w, y, composite, ...grads]);
    }
  });

  test('biasGelu: value as the composite (bits on native), grads against float64 and finite differences', () => {
    const rows = 5,
      cols = 9;
    const xv = normals(rng, rows * cols, 2),
      biv = normals(rng, cols),
      wv = normals(rng, rows * cols);
    const x = tf.tensor3d(xv, [1, rows, cols]),
      bias = tf.tensor1d(biv),
      w = tf.tensor3d(wv, [1, rows, cols]);
    const sv = summed(xv, biv, null, cols);
    const y = nn.biasGelu(x, bias);
    expect(y.shape).toEqual([1, rows, cols]);
    const composite = nn.gelu(tf.add(x, bias));
    if (backend === 'native') expectSameBits(y.dataSync() as Float32Array, composite.dataSync() as Float32Array, 'y');
    expectGradClose(y.dataSync(), Float64Array.from(sv, gelu64), 1e-6, 'y vs float64', 1);
    expectGradClose(y.dataSync(), nn.reference.biasGelu(x, bias).dataSync(), 2e-6, 'y vs reference', 1);
    const [dx, dbias] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(nn.biasGelu(a, b), w)))([x, bias]);
    const ref = Float64Array.from(sv, (v, i) => wv[i] * geluGrad64(v));
    expectGradClose(dx.dataSync(), ref, 2e-6, 'dx', 1);
    expectGradClose(dbias.dataSync(), columnSum64(ref, rows, cols), 2e-6, 'dbias', 1);
    const f64 = (bb: Float64Array) => xv.reduce((acc, v, i) => acc + gelu64(v + bb[i % cols]) * wv[i], 0);
    expectGradClose(dbias.dataSync(), finiteDiff(f64, biv, 1e-6), 1e-5, 'dbias vs finite differences', 1);
    tf.dispose([x, bias, w, y, composite, dx, dbias]);
  });

  test('addLayerNorm, biasGelu: no leaks with or without a tape; bad input names the argument', () => {
    const x = tf.tensor2d(normals(rng, 4 * 8), [4, 8]),
      r = tf.tensor2d(normals(rng, 4 * 8), [4, 8]),
      b = tf.tensor1d(normals(rng, 8)),
      gamma = tf.ones([8]),
      beta = tf.zeros([8]);
    expectNoLeak(() => tf.dispose(nn.addLayerNorm(x, r, b, gamma, beta)), 'addLayerNorm');
    expectNoLeak(() => tf.dispose(nn.biasGelu(x, b)), 'biasGelu');
    expectNoLeak(
      () =>
        tf.dispose(
          tf.grads((a: tf.Tensor, rr: tf.Tensor, bb: tf.Tensor, g: tf.Tensor, be: tf.Tensor) =>
            tf.sum(nn.addLayerNorm(a, rr, bb, g, be)),
          )([x, r, b, gamma, beta]),
        ),
      'addLayerNorm grad',
    );
    expectNoLeak(
      () => tf.dispose(tf.grads((a: tf.Tensor, bb: tf.Tensor) => tf.sum(nn.biasGelu(a, bb)))([x, b])),
      'biasGelu grad',
    );
    expectError(
      () => nn.addLayerNorm(x, tf.zeros([4, 7]), b, gamma, beta),
      /addLayerNorm: residual must have shape \[4, 8\]/,
    );
    expectError(
      () => nn.addLayerNorm(x, null as unknown as tf.Tensor, b, gamma, beta),
      /addLayerNorm: residual is required/,
    );
    expectError(() => nn.addLayerNorm(x, r, tf.zeros([7]), gamma, beta), /addLayerNorm: bias must have shape \[8\]/);
    expectError(() => nn.addLayerNorm(x, r, b, gamma, beta, -1), /addLayerNorm: eps must be >= 0/);
    expectError(() => nn.biasGelu(x, tf.zeros([4])), /biasGelu: bias must have shape \[8\]/);
    expectError(() => nn.biasGelu(x, null as unknown as tf.Tensor), /biasGelu: bias is required/);
    expectError(() => nn.biasGelu(tf.zeros([8], 'int32'), b), /biasGelu: x must be float32, got int32/);
    tf.dispose([x, r, b, gamma, beta]);
  });

  test('no tensors leak, with or without a gradient tape', () => {
    const x = tf.tensor2d(normals(rng, 4 * 8), [4, 8]),
      gamma = tf.ones([8]),
      beta = tf.zeros([8]);
    expectNoLeak(() => tf.dispose(nn.layerNorm(x, gamma, beta)), 'layerNorm');
    expectNoLeak(() => tf.dispose(nn.gelu(x)), 'gelu');
    expectNoLeak(
      () =>
        tf.dispose(
          tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(nn.layerNorm(a, g, b)))([x, gamma, beta]),
        ),
      'layerNorm grad',
    );
    expectNoLeak(() => tf.dispose(tf.grad((a: tf.Tensor) => tf.sum(nn.gelu(a)))(x)), 'gelu grad');
    tf.dispose([x, gamma, beta]);
  });

  test('bad input: a FusedDistillError naming the argument', () => {
    const x = tf.zeros([2, 3]),
      g3 = tf.ones([3]),
      b3 = tf.zeros([3]);
    expectError(() => nn.layerNorm(tf.zeros([2, 3], 'int32'), g3, b3), /layerNorm: x must be float32, got int32/);
    expectError(() => nn.layerNorm(tf.zeros([2, 0]), tf.ones([0]), tf.zeros([0])), /layerNorm: x must not be empty/);
    expectError(() => nn.layerNorm(x, tf.ones([4]), b3), /layerNorm: gamma must have shape \[3\]/);
    expectError(() => nn.layerNorm(x, g3, tf.zeros([1, 3])), /layerNorm: beta must have shape \[3\]/);
    expectError(() => nn.layerNorm(x, null as unknown as tf.Tensor, b3), /layerNorm: gamma is required/);
    expectError(() => nn.layerNorm(x, g3, b3, -1), /layerNorm: eps must be >= 0/);
    expectError(() => nn.layerNorm(x, g3, b3, NaN), /layerNorm: eps must be a finite number/);
    expectError(() => nn.gelu([1, 2] as unknown as tf.Tensor), /gelu: x must be a tf.Tensor/);
    expectError(() => nn.gelu(tf.zeros([0])), /gelu: x must not be empty/);
    tf.dispose([x, g3, b3]);
  });
});

describe('where no fused kernel is registered, the ops register theirs on the fly', () => {
  // (Without the addon they are the composites: tests/any_backend.test.ts.)
  test('layerNorm and gelu without their kernels on cpu give the fused results exactly', async () => {
    await useBackend('cpu');
    const rng = mulberry32(3);
    const x = tf.tensor2d(normals(rng, 5 * 6), [5, 6]),
      gamma = tf.tensor1d(normals(rng, 6)),
      beta = tf.tensor1d(normals(rng, 6));
    const run = () =>
      [
        nn.layerNorm(x, gamma, beta, 1e-3).dataSync(),
        nn.gelu(x).dataSync(),
        tf
          .grad((a: tf.Tensor) => tf.sum(nn.gelu(nn.layerNorm(a, gamma, beta))))(x)
          .dataSync(),
        tf
          .grad((a: tf.Tensor) => tf.sum(nn.biasGelu(nn.addLayerNorm(a, x, beta, gamma, beta), gamma)))(x)
          .dataSync(),
      ].map((v) => Array.from(v));
    const want = run();
    const saved = [
      LAYER_NORM,
      LAYER_NORM_GRAD,
      GELU,
      GELU_GRAD,
      ADD_LAYER_NORM,
      ADD_LAYER_NORM_GRAD,
      BIAS_GELU,
      BIAS_GELU_GRAD,
    ].map((k) => tf.getKernel(k, 'cpu')!);
    for (const k of saved) tf.unregisterKernel(k.kernelName, 'cpu');
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      expect(run()).toEqual(want);
    } finally {
      warn.mockRestore();
      for (const k of saved) {
        if (tf.getKernel(k.kernelName, 'cpu')) tf.unregisterKernel(k.kernelName, 'cpu');
        tf.registerKernel(k);
      }
    }
    tf.dispose([x, gamma, beta]);
  });
});

describe('the cross-encoder with the fused layers', () => {
  const tiny: CrossEncoderConfig = {
    vocabSize: 40,
    hidden: 24,
    layers: 2,
    heads: 2,
    intermediate: 48,
    maxPosition: 16,
    typeVocab: 2,
    layerNormEps: 1e-12,
    initStd: 0.2,
  };

  test.each(BACKENDS)(
    'on %s: scores, hidden states and gradients as with the composites, to float32 rounding',
    async (backend) => {
      await useBackend(backend);
      const model = new CrossEncoder(tiny, 4);
      const ids = tf.tensor2d(
        [
          [2, 5, 6, 3, 7, 8, 3, 0],
          [2, 9, 3, 10, 11, 12, 13, 3],
        ],
        undefined,
        'int32',
      );
      const inputs = {
        inputIds: ids,
        tokenTypeIds: tf.tensor2d(
          [
            [0, 0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, 1, 1, 1, 1, 1],
          ],
          undefined,
          'int32',
        ),
        attentionMask: tf.tensor2d(
          [
            [1, 1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 1, 1],
          ],
          undefined,
          'int32',
        ),
      };
      const vars = [...model.params.values()];
      const run = () => {
        const out = model.forward(inputs, { hidden: true });
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(model.forward(inputs).scores)) as tf.Scalar, vars);
        const r = {
          scores: out.scores.dataSync(),
          hidden: out.hidden!.map((h) => h.dataSync()),
          grads: vars.map((v) => grads[v.name].dataSync()),
        };
        tf.dispose([out.scores, ...out.hidden!, ...Object.values(grads)]);
        return r;
      };
      const fused = run();
      const saved = [
        LAYER_NORM,
        LAYER_NORM_GRAD,
        GELU,
        GELU_GRAD,
        ADD_LAYER_NORM,
        ADD_LAYER_NORM_GRAD,
        BIAS_GELU,
        BIAS_GELU_GRAD,
      ].map((k) => tf.getKernel(k, backend)!);
      for (const k of saved) tf.unregisterKernel(k.kernelName, backend);
      let composite: ReturnType<typeof run>;
      try {
        composite = run();
      } finally {
        for (const k of saved) tf.registerKernel(k);
      }
      expectGradClose(fused.scores, composite.scores, 1e-5, 'scores', 1);
      fused.hidden.forEach((h, i) => expectGradClose(h, composite.hidden[i], 1e-5, `hidden ${i}`));
      // floor: the attention key biases' gradients are 0 mathematically (softmax ignores a shift), ~1e-8
      // of rounding noise in both.
      fused.grads.forEach((g, i) => expectGradClose(g, composite.grads[i], 1e-3, `grad of ${vars[i].name}`, 1e-4));
      model.dispose();
      tf.dispose(Object.values(inputs));
    },
  );
});
