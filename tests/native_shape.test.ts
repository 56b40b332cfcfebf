// The 'native' backend's reductions, softmax and layout kernels against tfjs's 'cpu' backend (the
// behaviour they replace), float64 references, and the addon's argument checks.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

import { nativeProfile } from '../src/backend/native/profile';
import { nativeKernelNames, registerNativeBackend } from '../src/backend/native/register';
import { rng } from '../src/data/random';
import { addon, HostArray } from '../src/native';
import { expectError } from './helpers/errors';

registerNativeBackend();

// Jest runs test code in a vm context where global lookups (Math, ...) are slow: bind them once.
const { abs, exp, log, max, floor, round } = Math;

type Backend = 'cpu' | 'native';
type Values = Float32Array | Int32Array | Uint8Array;
interface Out {
  shape: number[];
  dtype: string;
  values: Values;
}

beforeAll(async () => {
  for (const b of ['cpu', 'native']) {
    expect(await tf.setBackend(b)).toBe(true);
    await tf.ready();
  }
});

// Both backends are initialised, so the switch is synchronous.
function use(b: Backend): void {
  void tf.setBackend(b);
  if (tf.getBackend() !== b) throw new Error(`backend is ${tf.getBackend()}, wanted ${b}`);
}

/** f's result(s) on backend b, read back and disposed. */
function run(b: Backend, f: () => tf.Tensor | tf.Tensor[]): Out[] {
  use(b);
  const r = tf.tidy(f);
  const list = Array.isArray(r) ? r : [r];
  const out = list.map((t) => ({ shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync() as Values }));
  tf.dispose(list);
  return out;
}

/** f on both backends; f must build its inputs from plain arrays (so each backend gets its own). */
function both(f: () => tf.Tensor | tf.Tensor[]): { cpu: Out[]; native: Out[] } {
  return { cpu: run('cpu', f), native: run('native', f) };
}

function same(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

/** Exact equality (NaN equals NaN, +0 differs from -0), or within abs + rel * |want| when tol is given. */
function compare(got: Out, want: Out, label: string, tol?: { rel: number; abs: number }): void {
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape) || got.dtype !== want.dtype)
    throw new Error(`${label}: got ${got.dtype}[${got.shape}], want ${want.dtype}[${want.shape}]`);
  if (got.values.length !== want.values.length)
    throw new Error(`${label}: length ${got.values.length} vs ${want.values.length}`);
  for (let i = 0; i < want.values.length; ++i) {
    const g = got.values[i],
      w = want.values[i];
    if (same(g, w)) continue;
    if (tol && Number.isFinite(w) && abs(g - w) <= tol.abs + tol.rel * abs(w)) continue;
    throw new Error(`${label}: element ${i}: got ${g}, want ${w}`);
  }
}

function expectBoth(f: () => tf.Tensor | tf.Tensor[], label: string, tol?: { rel: number; abs: number }): Out[] {
  const r = both(f);
  r.native.forEach((o, i) => compare(o, r.cpu[i], `${label} [${i}]`, tol));
  return r.native;
}

// ---- random inputs ----
const rand = rng(20240611);
const randInt = (n: number): number => floor(rand() * n);

/** Large inputs: uniform in [lo, lo + span) from a xorshift with no global lookups (fast under jest). */
let seed = 0x2545f491;
function bigFloats(n: number, lo = -4, span = 8): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = lo + (span * (s >>> 8)) / 16777216;
  }
  seed = s;
  return a;
}

function randomShape(maxRank = 5, maxDim = 5): number[] {
  const rank = randInt(maxRank + 1);
  return Array.from({ length: rank }, () => (rand() < 0.2 ? 1 : 1 + randInt(maxDim)));
}

function randomValues(dtype: 'float32' | 'int32' | 'bool', n: number, ties = false): Values {
  if (dtype === 'bool') return Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
  if (dtype === 'int32') return Int32Array.from({ length: n }, () => randInt(2001) - 1000);
  return Float32Array.from({ length: n }, () => (ties ? round(rand() * 6 - 3) : rand() * 8 - 4));
}

function randomAxes(rank: number): number[] {
  const axes: number[] = [];
  for (let i = 0; i < rank; ++i) if (rand() < 0.5) axes.push(rand() < 0.3 ? i - rank : i);
  return axes;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
const TOL = { rel: 2e-6, abs: 1e-6 };

// ---- float64 references ----
function refSum(x: ArrayLike<number>, shape: number[], axes: number[], mean: boolean): Float64Array {
  const rank = shape.length;
  const red = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  const keptDims = shape.filter((_, i) => !red.has(i));
  const out = new Float64Array(size(keptDims));
  let count = 1;
  for (const a of red) count *= shape[a];
  const idx = new Array(rank).fill(0);
  for (let i = 0; i < x.length; ++i) {
    let o = 0;
    for (let d = 0; d < rank; ++d) if (!red.has(d)) o = o * shape[d] + idx[d];
    out[o] += x[i];
    for (let d = rank - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  if (mean) for (let i = 0; i < out.length; ++i) out[i] /= count;
  return out;
}

function refSoftmax(x: ArrayLike<number>, cols: number, logOut: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; ++r) {
    let m = -Infinity;
    for (let c = 0; c < cols; ++c) m = max(m, x[r * cols + c]);
    let s = 0;
    for (let c = 0; c < cols; ++c) s += exp(x[r * cols + c] - m);
    for (let c = 0; c < cols; ++c)
      out[r * cols + c] = logOut ? x[r * cols + c] - m - log(s) : exp(x[r * cols + c] - m) / s;
  }
  return out;
}

function closeTo64(got: ArrayLike<number>, want: Float64Array, label: string, rel = 3e-6, absTol = 1e-6): void {
  for (let i = 0; i < want.length; ++i)
    if (!(abs(got[i] - want[i]) <= absTol + rel * abs(want[i])))
      throw new Error(`${label}: element ${i}: got ${got[i]}, float64 reference ${want[i]}`);
}

// ---------------------------------------------------------------------------------------------

describe('registration', () => {
  test('the shape kernels run natively on the native backend', () => {
    const names = nativeKernelNames();
    for (const k of [
      'Sum',
      'Mean',
      'Prod',
      'Max',
      'Min',
      'Any',
      'All',
      'ArgMax',
      'ArgMin',
      'Softmax',
      'Transpose',
      'Slice',
      'PadV2',
      'Concat',
      'Tile',
      'GatherV2',
      'UnsortedSegmentSum',
    ])
      expect(names).toContain(k);
    // Reshape-like kernels stay tfjs's zero-copy ones.
    for (const k of ['Reshape', 'ExpandDims', 'Squeeze', 'Identity']) expect(names).not.toContain(k);
  });
});

describe('reductions', () => {
  const ops = {
    sum: (x: tf.Tensor, axes: number[], keep: boolean) => tf.sum(x, axes, keep),
    mean: (x: tf.Tensor, axes: number[], keep: boolean) => tf.mean(x, axes, keep),
    prod: (x: tf.Tensor, axes: number[], keep: boolean) => tf.prod(x, axes, keep),
    max: (x: tf.Tensor, axes: number[], keep: boolean) => tf.max(x, axes, keep),
    min: (x: tf.Tensor, axes: number[], keep: boolean) => tf.min(x, axes, keep),
    any: (x: tf.Tensor, axes: number[], keep: boolean) => tf.any(x, axes, keep),
    all: (x: tf.Tensor, axes: number[], keep: boolean) => tf.all(x, axes, keep),
  };
  const dtypes: Record<keyof typeof ops, Array<'float32' | 'int32' | 'bool'>> = {
    sum: ['float32', 'int32', 'bool'],
    mean: ['float32', 'int32', 'bool'],
    prod: ['float32', 'int32'],
    max: ['float32', 'int32', 'bool'],
    min: ['float32', 'int32', 'bool'],
    any: ['bool'],
    all: ['bool'],
  };

  test.each(Object.keys(ops) as Array<keyof typeof ops>)(
    '%s: native equals cpu on random shapes, axes, keepDims, dtypes',
    (name) => {
      for (let trial = 0; trial < 60; ++trial) {
        const shape = randomShape();
        const dtype = dtypes[name][trial % dtypes[name].length];
        const values = randomValues(dtype, size(shape), trial % 3 === 0);
        const axes = trial % 7 === 0 ? undefined : randomAxes(shape.length);
        const keep = trial % 2 === 1;
        const label = `${name} ${dtype}[${shape}] axes ${JSON.stringify(axes)} keepDims ${keep}`;
        const exact = name === 'max' || name === 'min' || name === 'any' || name === 'all' || dtype !== 'float32';
        const tol = name === 'mean' && dtype !== 'float32' ? TOL : exact ? undefined : TOL;
        const [got] = expectBoth(() => ops[name](tf.tensor(values, shape, dtype), axes as number[], keep), label, tol);
        if ((name === 'sum' || name === 'mean') && dtype === 'float32')
          closeTo64(got.values, refSum(values, shape, axes ?? shape.map((_, i) => i), name === 'mean'), label);
      }
    },
  );

  test('argMax / argMin: random shapes and axes (negative too), ties and NaN', () => {
    for (let trial = 0; trial < 60; ++trial) {
      let shape = randomShape();
      if (shape.length === 0) shape = [3];
      const dtype = trial % 2 ? 'int32' : 'float32';
      const values = randomValues(dtype, size(shape), true);
      if (dtype === 'float32' && trial % 4 === 0) for (let k = 0; k < 3; ++k) values[randInt(values.length)] = NaN;
      const axis = randInt(shape.length) - (trial % 3 === 0 ? shape.length : 0);
      const label = `arg ${dtype}[${shape}] axis ${axis}`;
      expectBoth(
        () => [tf.argMax(tf.tensor(values, shape, dtype), axis), tf.argMin(tf.tensor(values, shape, dtype), axis)],
        label,
      );
    }
  });

  test('max / min: NaN propagates, the first of +0 / -0 wins, Infinity', () => {
    const rows = [
      [1, NaN, 3],
      [NaN, 1, 2],
      [-0, 0],
      [0, -0],
      [-Infinity, -Infinity],
      [Infinity, 1, NaN],
      Array.from({ length: 40 }, (_, i) => (i % 3 ? 0 : -0)),
      Array.from({ length: 40 }, (_, i) => (i % 3 ? -0 : 0)),
      Array.from({ length: 70 }, (_, i) => (i === 65 ? NaN : i)),
    ];
    for (const row of rows) {
      const label = `[${row.slice(0, 6)}...] (${row.length})`;
      expectBoth(
        () => [
          tf.max(tf.tensor1d(row)),
          tf.min(tf.tensor1d(row)),
          tf.argMax(tf.tensor1d(row)),
          tf.argMin(tf.tensor1d(row)),
        ],
        label,
      );
      // the same values down a column (the strided path)
      expectBoth(
        () => [
          tf.max(tf.tensor2d(row, [row.length, 1]).tile([1, 3]), 0),
          tf.argMin(tf.tensor2d(row, [row.length, 1]).tile([1, 3]), 0),
        ],
        `column ${label}`,
      );
    }
  });

  test('non-contiguous axes, size-1 axes and empty tensors', () => {
    const values = randomValues('float32', 3 * 4 * 5 * 6 * 2);
    for (const axes of [[0, 2], [1, 3], [0, 2, 4], [-1, 0], [1, 2, 3], [0, 1, 2, 3, 4], []]) {
      const label = `axes ${axes}`;
      const f = () => [
        tf.sum(tf.tensor(values, [3, 4, 5, 6, 2]), axes),
        tf.max(tf.tensor(values, [3, 4, 5, 6, 2]), axes, true),
      ];
      const [s] = expectBoth(f, label, TOL);
      closeTo64(s.values, refSum(values, [3, 4, 5, 6, 2], axes.length ? axes : [], false), label);
    }
    const ones = randomValues('float32', 24);
    expectBoth(
      () => [tf.sum(tf.tensor(ones, [1, 4, 1, 6]), [0, 2]), tf.mean(tf.tensor(ones, [1, 4, 1, 6]), [2], true)],
      'size-1',
      TOL,
    );
    // Empty tensors run tfjs's kernels: same results (NaN / 0 / identities)
    expectBoth(
      () => [
        tf.sum(tf.zeros([0, 3]), 0),
        tf.sum(tf.zeros([3, 0]), 1),
        tf.mean(tf.zeros([2, 0]), 1),
        tf.prod(tf.zeros([0, 2]), 0),
      ],
      'empty',
    );
  });

  test('float32 tensors stored as Int32Array (Cast keeps the data) are read as floats', () => {
    const ints = Int32Array.from({ length: 12 }, (_, i) => i * 7 - 30);
    expectBoth(
      () => [
        tf.sum(tf.cast(tf.tensor(ints, [3, 4], 'int32'), 'float32'), 1),
        tf.max(tf.cast(tf.tensor(ints, [3, 4], 'int32'), 'float32')),
      ],
      'cast',
    );
  });

  test('large reductions (>1M elements, threaded and split paths)', () => {
    const shape = [1100, 1024];
    const big = bigFloats(1100 * 1024);
    // against cpu: a column sum (split over rows) and a row max
    expectBoth(() => [tf.sum(tf.tensor(big, shape), 0), tf.max(tf.tensor(big, shape), 1)], 'large vs cpu', {
      rel: 1e-6,
      abs: 1e-5,
    });
    const [sum1, sumAll, mean1, max0, min0, argMax1, argMin0] = run('native', () => [
      tf.sum(tf.tensor(big, shape), 1), // rows
      tf.sum(tf.tensor(big, shape)), // one long row, split
      tf.mean(tf.tensor(big, shape), 1),
      tf.max(tf.tensor(big, shape), 0),
      tf.min(tf.tensor(big, shape), 0),
      tf.argMax(tf.tensor(big, shape), 1),
      tf.argMin(tf.tensor(big, shape), 0),
    ]).map((o) => o.values);
    closeTo64(sum1, refSum(big, shape, [1], false), 'sum 1', 1e-6, 1e-4);
    closeTo64(sumAll, refSum(big, shape, [0, 1], false), 'sum all', 1e-6, 1e-3);
    closeTo64(mean1, refSum(big, shape, [1], true), 'mean 1', 1e-6, 1e-6);
    const R = 1100,
      C = 1024;
    for (let c = 0; c < C; ++c) {
      let mx = -Infinity,
        mn = Infinity,
        amn = 0;
      for (let r = 0; r < R; ++r) {
        const v = big[r * C + c];
        if (v > mx) mx = v;
        if (v < mn) {
          mn = v;
          amn = r;
        }
      }
      if (max0[c] !== mx || min0[c] !== mn || argMin0[c] !== amn) throw new Error(`column ${c}`);
    }
    for (let r = 0; r < R; ++r) {
      let mx = big[r * C],
        amx = 0;
      for (let c = 1; c < C; ++c)
        if (big[r * C + c] > mx) {
          mx = big[r * C + c];
          amx = c;
        }
      if (argMax1[r] !== amx) throw new Error(`row ${r}`);
    }
  });
});

describe('softmax', () => {
  test('random shapes: equals cpu and a float64 reference', () => {
    for (let trial = 0; trial < 40; ++trial) {
      const shape = randomShape(3, 8);
      shape.push(1 + randInt(trial % 4 ? 40 : 300));
      const values = Float32Array.from({ length: size(shape) }, () => rand() * 40 - 20);
      const label = `softmax [${shape}]`;
      const [got] = expectBoth(() => tf.softmax(tf.tensor(values, shape)), label, { rel: 1e-5, abs: 1e-7 });
      closeTo64(got.values, refSoftmax(values, shape[shape.length - 1], false), label, 1e-5, 1e-7);
    }
  });

  test('extreme rows: +-1e30, -Inf (masked and whole rows), +Inf, NaN', () => {
    const rows = [
      [1e30, -1e30, 0, 1e30],
      [-1e30, -1e30, -1e30, -1e30],
      [0, -Infinity, 1, -Infinity],
      [-Infinity, -Infinity, -Infinity, -Infinity],
      [Infinity, 0, 1, 2],
      [NaN, 0, 1, 2],
      [88, -88, 100, -100],
    ];
    const flat = rows.flat();
    const [got] = expectBoth(() => tf.softmax(tf.tensor2d(flat, [rows.length, 4])), 'extreme', {
      rel: 1e-6,
      abs: 1e-30,
    });
    expect(Array.from(got.values.slice(0, 4))).toEqual([0.5, 0, 0, 0.5]);
    expect(Array.from(got.values.slice(8, 12)).map((v) => +v.toFixed(6))).toEqual([0.268941, 0, 0.731059, 0]);
    for (let r = 3; r < 6; ++r) for (let c = 0; c < 4; ++c) expect(got.values[r * 4 + c]).toBeNaN();
  });

  test('log-softmax (addon) against a float64 reference, in place too', () => {
    const x = Float32Array.from({ length: 37 * 129 }, () => rand() * 60 - 30);
    const out = new Float32Array(x.length);
    addon.softmax(x, 37, 129, out, true);
    closeTo64(out, refSoftmax(x, 129, true), 'logSoftmax', 1e-6, 2e-6);
    const y = x.slice();
    addon.softmax(y, 37, 129, y);
    closeTo64(y, refSoftmax(x, 129, false), 'softmax in place', 1e-5, 1e-8);
  });

  test('large (>1M elements)', () => {
    const values = bigFloats(4096 * 300, -20, 40);
    const [got] = run('native', () => tf.softmax(tf.tensor2d(values, [4096, 300])));
    closeTo64(got.values, refSoftmax(values, 300, false), 'large softmax', 1e-5, 1e-9);
  });
});

describe('layout', () => {
  const DT = ['float32', 'int32', 'bool'] as const;

  test('transpose: random shapes (rank 0..5), perms, dtypes', () => {
    for (let trial = 0; trial < 80; ++trial) {
      const shape = randomShape(5, 6);
      const perm = shape.map((_, i) => i).sort(() => rand() - 0.5);
      const dtype = DT[trial % 3];
      const values = randomValues(dtype, size(shape));
      expectBoth(
        () => tf.transpose(tf.tensor(values, shape, dtype), perm),
        `transpose ${dtype}[${shape}] perm ${perm}`,
      );
    }
  });

  test('transpose: BERT head split / merge, matrix tiles, size-1 axes shared, large', () => {
    const cases: Array<[number[], number[]]> = [
      [
        [2, 9, 4, 16],
        [0, 2, 1, 3],
      ],
      [
        [2, 4, 9, 16],
        [0, 2, 1, 3],
      ],
      [
        [2, 4, 9, 16],
        [0, 1, 3, 2],
      ],
      [
        [33, 70],
        [1, 0],
      ],
      [
        [3, 65, 129],
        [2, 1, 0],
      ],
      [
        [5, 1, 7, 1],
        [1, 0, 3, 2],
      ],
      [
        [16, 16, 4, 64],
        [0, 2, 1, 3],
      ],
      [
        [19, 37],
        [1, 0],
      ],
      [
        [3, 40, 24],
        [0, 2, 1],
      ],
      [
        [2, 17, 3, 24],
        [3, 1, 2, 0],
      ],
    ];
    for (const [shape, perm] of cases)
      for (const dtype of DT) {
        const values = randomValues(dtype, size(shape));
        expectBoth(() => tf.transpose(tf.tensor(values, shape, dtype), perm), `transpose ${dtype}[${shape}] ${perm}`);
      }
    // > 1M elements (threaded), against plain index arithmetic
    const big = bigFloats(16 * 128 * 8 * 64);
    const mat = bigFloats(1100 * 1000);
    const [heads, kt, mt] = run('native', () => [
      tf.transpose(tf.tensor(big, [16, 128, 8, 64]), [0, 2, 1, 3]),
      tf.transpose(tf.tensor(big, [16, 8, 128, 64]), [0, 1, 3, 2]),
      tf.transpose(tf.tensor(mat, [1100, 1000]), [1, 0]),
    ]).map((o) => o.values);
    for (let b = 0; b < 16; ++b)
      for (let l = 0; l < 128; ++l)
        for (let h = 0; h < 8; ++h)
          for (let d = 0; d < 64; ++d) {
            const src = ((b * 128 + l) * 8 + h) * 64 + d;
            if (heads[((b * 8 + h) * 128 + l) * 64 + d] !== big[src]) throw new Error(`heads ${b} ${l} ${h} ${d}`);
            // the same flat index read as [16, 8, 128, 64] = [b, h', l', d']: out [b, h', d', l']
            const h2 = (src >> 13) & 7,
              l2 = (src >> 6) & 127;
            if (kt[((b * 8 + h2) * 64 + d) * 128 + l2] !== big[src]) throw new Error(`kt ${src}`);
          }
    for (let r = 0; r < 1100; ++r)
      for (let c = 0; c < 1000; ++c) if (mt[c * 1100 + r] !== mat[r * 1000 + c]) throw new Error(`mt ${r} ${c}`);
    use('native');
    const x = tf.tensor(randomValues('float32', 35), [5, 1, 7, 1]);
    const t = tf.transpose(x, [1, 0, 3, 2]); // only size-1 axes move: no copy
    expect(t.dataId).toBe(x.dataId);
    expect(t.shape).toEqual([1, 5, 1, 7]);
    tf.dispose([x, t]);
  });

  test('slice: random begin / size (with -1), dtypes', () => {
    for (let trial = 0; trial < 80; ++trial) {
      let shape = randomShape(5, 6);
      if (shape.length === 0) shape = [5];
      const begin = shape.map((d) => randInt(d));
      const sz = shape.map((d, i) => (rand() < 0.2 ? -1 : 1 + randInt(d - begin[i])));
      const dtype = DT[trial % 3];
      const values = randomValues(dtype, size(shape));
      expectBoth(() => tf.slice(tf.tensor(values, shape, dtype), begin, sz), `slice ${dtype}[${shape}] ${begin} ${sz}`);
    }
    const big = bigFloats(2048 * 600);
    const [s1] = run('native', () => tf.slice(tf.tensor2d(big, [2048, 600]), [3, 100], [2000, 256])).map(
      (o) => o.values,
    );
    for (let r = 0; r < 2000; ++r)
      for (let c = 0; c < 256; ++c)
        if (s1[r * 256 + c] !== big[(r + 3) * 600 + c + 100]) throw new Error(`slice ${r} ${c}`);
    expectBoth(() => tf.slice(tf.tensor2d(big.slice(0, 20), [4, 5]), [1, 1], [0, 2]), 'slice empty');
  });

  test('pad: random shapes (rank 1..5), paddings, constants, dtypes; the [CLS] gradient; empty', () => {
    const constants = [0, 1.5, -2, 0.1, 300, -0.5, Infinity, NaN];
    for (let trial = 0; trial < 80; ++trial) {
      let shape = randomShape(5, 5);
      if (shape.length === 0) shape = [3];
      if (trial % 10 === 0) shape[randInt(shape.length)] = 0; // an empty x: the output is all constant
      const paddings = shape.map(() => [randInt(3), randInt(3)] as [number, number]);
      const dtype = DT[trial % 3];
      const value = constants[trial % constants.length];
      const values = randomValues(dtype, size(shape));
      expectBoth(
        () => tf.pad(tf.tensor(values, shape, dtype), paddings, value),
        `pad ${dtype}[${shape}] ${JSON.stringify(paddings)} ${value}`,
      );
    }
    // The gradient of a cross-encoder's [CLS] slice: [16, 1, 256] -> [16, 128, 256], checked in full.
    const cls = bigFloats(16 * 256);
    const [padded] = run('native', () =>
      tf.pad(tf.tensor3d(cls, [16, 1, 256]), [
        [0, 0],
        [0, 127],
        [0, 0],
      ]),
    );
    expect(padded.shape).toEqual([16, 128, 256]);
    for (let b = 0; b < 16; ++b)
      for (let l = 0; l < 128; ++l)
        for (let h = 0; h < 256; ++h) {
          const want = l === 0 ? cls[b * 256 + h] : 0;
          if (!Object.is(padded.values[(b * 128 + l) * 256 + h], want)) throw new Error(`pad cls ${b} ${l} ${h}`);
        }
    // Width not a multiple of 16, padding on the last axis only, across threads' blocks.
    const wide = bigFloats(3001 * 17);
    expectBoth(
      () =>
        tf.pad(
          tf.tensor2d(wide, [3001, 17]),
          [
            [0, 0],
            [5, 2],
          ],
          -1,
        ),
      'pad last axis',
    );
    expectBoth(
      () =>
        tf.pad(tf.tensor2d(wide.slice(0, 6), [2, 3]), [
          [0, 0],
          [0, 0],
        ]),
      'pad nothing',
    );
    expectBoth(
      () =>
        tf.pad(tf.tensor2d([], [0, 3]), [
          [0, 0],
          [1, 1],
        ]),
      'pad to empty',
    );
    const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, [0, 1], [2, 2]), 3)));
    expectBoth(() => grad(tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [2, 4])), 'slice gradient');
  });

  test('pad: the same bits with 1 and 2 threads', () => {
    const x = bigFloats(64 * 3 * 129);
    const saved = addon.getNumThreads();
    const outs = [1, 2].map((t) => {
      addon.setNumThreads(t);
      try {
        return run('native', () =>
          tf.pad(
            tf.tensor3d(x, [64, 3, 129]),
            [
              [1, 2],
              [0, 125],
              [3, 0],
            ],
            0.25,
          ),
        )[0].values;
      } finally {
        addon.setNumThreads(saved);
      }
    });
    expect(Buffer.from(outs[0].buffer).equals(Buffer.from(outs[1].buffer))).toBe(true);
  });

  test('concat: n inputs, any axis (negative too), empty inputs, dtypes', () => {
    for (let trial = 0; trial < 60; ++trial) {
      let shape = randomShape(4, 5);
      if (shape.length === 0) shape = [2];
      const axis = randInt(shape.length);
      const n = 1 + randInt(4);
      const dtype = DT[trial % 3];
      const parts = Array.from({ length: n }, () => {
        const s = shape.slice();
        s[axis] = rand() < 0.15 ? 0 : 1 + randInt(4);
        return { s, v: randomValues(dtype, size(s)) };
      });
      const ax = trial % 2 ? axis - shape.length : axis;
      expectBoth(
        () =>
          tf.concat(
            parts.map((p) => tf.tensor(p.v, p.s, dtype)),
            ax,
          ),
        `concat ${dtype} axis ${ax} ${parts.map((p) => `[${p.s}]`)}`,
      );
    }
    const a = bigFloats(2048 * 256),
      b = bigFloats(2048 * 256);
    const [c0, c1] = run('native', () => [
      tf.concat([tf.tensor2d(a, [2048, 256]), tf.tensor2d(b, [2048, 256])], 0),
      tf.concat([tf.tensor2d(a, [2048, 256]), tf.tensor2d(b, [2048, 256])], 1),
    ]).map((o) => o.values);
    for (let i = 0; i < a.length; ++i)
      if (c0[i] !== a[i] || c0[a.length + i] !== b[i]) throw new Error(`concat 0 at ${i}`);
    for (let r = 0; r < 2048; ++r)
      for (let c = 0; c < 256; ++c)
        if (c1[r * 512 + c] !== a[r * 256 + c] || c1[r * 512 + 256 + c] !== b[r * 256 + c])
          throw new Error(`concat 1 at ${r} ${c}`);
  });

  test('tile: random reps, dtypes, rank 0..4', () => {
    for (let trial = 0; trial < 50; ++trial) {
      const shape = randomShape(4, 4);
      const reps = shape.map(() => 1 + randInt(3));
      const dtype = DT[trial % 3];
      const values = randomValues(dtype, size(shape));
      expectBoth(() => tf.tile(tf.tensor(values, shape, dtype), reps), `tile ${dtype}[${shape}] ${reps}`);
    }
    const v = bigFloats(300 * 64);
    const [big] = run('native', () => tf.tile(tf.tensor2d(v, [300, 64]), [4, 15])).map((o) => o.values);
    for (let r = 0; r < 1200; ++r)
      for (let c = 0; c < 960; ++c)
        if (big[r * 960 + c] !== v[(r % 300) * 64 + (c % 64)]) throw new Error(`tile ${r} ${c}`);
  });

  test('gather: random axes (negative too), batchDims, dtypes; out-of-range errors as tfjs reports them', () => {
    for (let trial = 0; trial < 60; ++trial) {
      let shape = randomShape(4, 5);
      if (shape.length === 0) shape = [4];
      const batchDims = trial % 4 === 0 && shape.length >= 2 ? 1 : 0;
      const axis = batchDims + randInt(shape.length - batchDims);
      const idxShape = [...shape.slice(0, batchDims), ...randomShape(2, 4)];
      const ids = Int32Array.from({ length: size(idxShape) }, () => randInt(shape[axis]));
      const dtype = DT[trial % 3];
      const values = randomValues(dtype, size(shape));
      const ax = trial % 3 === 0 ? axis - shape.length : axis;
      expectBoth(
        () => tf.gather(tf.tensor(values, shape, dtype), tf.tensor(ids, idxShape, 'int32'), ax, batchDims),
        `gather ${dtype}[${shape}] idx[${idxShape}] axis ${ax} batchDims ${batchDims}`,
      );
    }
    for (const bad of [
      [0, 4, 1],
      [-1, 2],
      [2, 1000],
    ]) {
      const msgs = (['cpu', 'native'] as const).map((b) => {
        use(b);
        return expectError(() => tf.tidy(() => tf.gather(tf.ones([4, 3]), tf.tensor1d(bad, 'int32')))).message;
      });
      expect(msgs[1]).toBe(msgs[0]);
      expect(msgs[1]).toMatch(/^GatherV2: the index value -?\d+ is not in \[0, 3\]$/);
    }
  });

  test('gather: 2048 rows of a [30522, 256] table (native against plain JS)', () => {
    use('native');
    const table = bigFloats(30522 * 256);
    const ids = Int32Array.from({ length: 2048 }, () => randInt(30522));
    const got = tf.tidy(() =>
      tf.gather(tf.tensor2d(table, [30522, 256]), tf.tensor2d(ids, [16, 128], 'int32')).dataSync(),
    );
    for (let i = 0; i < 2048; ++i)
      for (const c of [0, 97, 255])
        if (got[i * 256 + c] !== table[ids[i] * 256 + c]) throw new Error(`row ${i} col ${c}`);
  });

  test('unsortedSegmentSum: equals cpu (random ids, out-of-range ids dropped)', () => {
    for (let trial = 0; trial < 30; ++trial) {
      const rows = 1 + randInt(20);
      const inner = [1 + randInt(4), ...(trial % 2 ? [1 + randInt(3)] : [])];
      const numSegments = 1 + randInt(8);
      const ids = Int32Array.from({ length: rows }, () => randInt(numSegments + 2) - 1);
      const values = randomValues('float32', rows * size(inner));
      expectBoth(
        () => tf.unsortedSegmentSum(tf.tensor(values, [rows, ...inner]), tf.tensor1d(ids, 'int32'), numSegments),
        `uss rows ${rows} [${inner}] n ${numSegments}`,
        TOL,
      );
    }
  });

  test('unsortedSegmentSum: 2048 rows into 30522 segments (float64 reference)', () => {
    use('native');
    const rows = 2048,
      cols = 256,
      segs = 30522;
    const x = bigFloats(rows * cols);
    const ids = Int32Array.from({ length: rows }, () => randInt(600) * 50); // repeats
    const got = tf.tidy(() =>
      tf.unsortedSegmentSum(tf.tensor2d(x, [rows, cols]), tf.tensor1d(ids, 'int32'), segs).dataSync(),
    );
    const want = new Float64Array(segs * cols);
    for (let j = 0; j < rows; ++j) for (let c = 0; c < cols; ++c) want[ids[j] * cols + c] += x[j * cols + c];
    closeTo64(got, want, 'uss large', 1e-6, 1e-6);
  });
});

describe('ScatterNd (the embedding gradient)', () => {
  test('equals cpu: index depth 1 and 2, duplicates summed, scalar and row slices', () => {
    for (let trial = 0; trial < 30; ++trial) {
      const depth = 1 + (trial % 2);
      const outer = Array.from({ length: depth }, () => 1 + randInt(5));
      const inner = trial % 3 === 0 ? [] : [1 + randInt(4)];
      const n = 1 + randInt(25); // more updates than rows: duplicates
      const idx = Int32Array.from({ length: n * depth }, (_, i) => randInt(outer[i % depth]));
      const values = randomValues('float32', n * size(inner));
      expectBoth(
        () =>
          tf.scatterND(tf.tensor2d(idx, [n, depth], 'int32'), tf.tensor(values, [n, ...inner]), [...outer, ...inner]),
        `scatterND depth ${depth} outer [${outer}] inner [${inner}] n ${n}`,
        TOL,
      );
    }
  });

  test('runs natively, 2048 rows into [30522, 256] (float64 reference)', () => {
    use('native');
    const rows = 2048,
      cols = 256,
      vocab = 30522;
    const x = bigFloats(rows * cols);
    const ids = Int32Array.from({ length: rows }, () => randInt(600) * 50); // repeats
    nativeProfile.start();
    const got = tf.tidy(() =>
      tf.scatterND(tf.tensor2d(ids, [rows, 1], 'int32'), tf.tensor2d(x, [rows, cols]), [vocab, cols]).dataSync(),
    );
    const stats = nativeProfile.stop();
    expect(stats.find((r) => r.kernel === 'ScatterNd')?.impl).toBe('native');
    const want = new Float64Array(vocab * cols);
    for (let j = 0; j < rows; ++j) for (let c = 0; c < cols; ++c) want[ids[j] * cols + c] += x[j * cols + c];
    closeTo64(got, want, 'scatterND large', 1e-6, 1e-6);
  });

  test("an index outside the shape: tfjs's error, on native as on cpu", () => {
    for (const bad of [[5], [-1]]) {
      const msgs = (['cpu', 'native'] as const).map((b) => {
        use(b);
        return expectError(() =>
          tf.tidy(() => tf.scatterND(tf.tensor2d([[1], bad], [2, 1], 'int32'), tf.ones([2, 3]), [5, 3])),
        ).message;
      });
      expect(msgs[1]).toBe(msgs[0]);
      expect(msgs[1]).toMatch(/^Invalid indices: -?\d+ does not index into 5,3$/);
    }
  });
});

describe("cases left to tfjs's cpu kernels behave as on cpu", () => {
  const arrays = (b: Backend, f: () => tf.Tensor[]): unknown[] => {
    use(b);
    return tf.tidy(() => f().map((t) => ({ shape: t.shape, dtype: t.dtype, v: t.arraySync() })));
  };
  test('empty tensors, complex64 and strings', () => {
    const f = () => [
      tf.transpose(tf.zeros([0, 3]), [1, 0]),
      tf.tile(tf.zeros([2, 0]), [2, 2]),
      tf.gather(tf.ones([4, 3]), tf.tensor1d([], 'int32')),
      tf.concat([tf.zeros([2, 0]), tf.zeros([2, 0])], 1),
      tf.concat([tf.zeros([0, 3]), tf.ones([2, 3])], 0), // one non-empty input: shared, as tfjs does
      tf.softmax(tf.zeros([2, 0])),
      tf.concat([tf.complex([1, 2], [3, 4]), tf.complex([5], [6])]),
      tf.transpose(
        tf.complex(
          [
            [1, 2],
            [3, 4],
          ],
          [
            [5, 6],
            [7, 8],
          ],
        ),
      ),
      tf.slice(
        tf.tensor2d([
          ['a', 'b', 'c'],
          ['d', 'e', 'f'],
        ]),
        [0, 1],
        [2, 2],
      ),
      tf.tile(tf.tensor1d(['p', 'q']), [2]),
      tf.concat([tf.tensor1d(['a']), tf.tensor1d(['b', 'c'])]),
    ];
    expect(arrays('native', f)).toEqual(arrays('cpu', f));
  });
  test("errors: tfjs's own messages", () => {
    for (const f of [
      () => tf.sum(tf.complex([1], [2])),
      () =>
        tf.slice(
          tf.complex(
            [
              [1, 2],
              [3, 4],
            ],
            [
              [5, 6],
              [7, 8],
            ],
          ),
          [0, 1],
          [2, 1],
        ),
      () => tf.softmax(tf.ones([2, 3]), 0),
      () => tf.concat([tf.ones([2, 3]), tf.ones([3, 2])], 0),
      () => tf.slice(tf.ones([2, 3]), [0, 2], [1, 2]),
    ]) {
      const msgs = (['cpu', 'native'] as const).map((b) => {
        use(b);
        return expectError(() => tf.tidy(f)).message;
      });
      expect(msgs[1]).toBe(msgs[0]);
    }
  });
});

describe('gradients through the native kernels equal cpu', () => {
  test('softmax, gather, sum, max, transpose, slice, concat', () => {
    const x = randomValues('float32', 6 * 10) as Float32Array;
    const w = randomValues('float32', 6 * 10) as Float32Array;
    const table = randomValues('float32', 12 * 8) as Float32Array;
    const ids = Int32Array.from([3, 1, 3, 0, 11, 3]);
    const gw = randomValues('float32', 6 * 8) as Float32Array;
    const w64 = randomValues('float32', 64) as Float32Array;
    const f = () => {
      const softmaxGrad = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.softmax(a), tf.tensor(w, [6, 10]))))(
        tf.tensor(x, [6, 10]),
      );
      const gatherGrad = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor(gw, [6, 8]))),
      )(tf.tensor(table, [12, 8]));
      const sumGrad = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.sum(a, [0], true), tf.max(a, 1, true))))(
        tf.tensor(x, [6, 10]),
      );
      const layoutGrad = tf.grad((a: tf.Tensor) => {
        const t = tf.transpose(tf.reshape(a, [2, 3, 10]), [2, 0, 1]);
        const s = tf.slice(t, [1, 0, 1], [8, 2, 2]);
        return tf.sum(tf.mul(tf.concat([s, s], 2), tf.tensor(w64, [8, 2, 4])));
      })(tf.tensor(x, [6, 10]));
      return [softmaxGrad, gatherGrad, sumGrad, layoutGrad];
    };
    expectBoth(f, 'grads', { rel: 1e-5, abs: 1e-6 });
  });
});

describe('addon argument checks', () => {
  const x = new Float32Array(24);
  test('reduce', () => {
    expectError(
      () => addon.reduce('median' as 'sum', x, [2, 3, 4], [0], new Float32Array(12)),
      /op must be one of/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', [1, 2] as unknown as Float32Array, [2], [0], new Float32Array(1)),
      /x must be a Float32Array, Int32Array or Uint8Array/,
      'TypeError',
    );
    expectError(
      () => addon.reduce('sum', x, [2, 3, 5], [0], new Float32Array(15)),
      /x has length 24 but shape describes 30/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', x, [2, 3, 4], [3], new Float32Array(6)),
      /axes\[0\] must be an integer in \[-3, 2\]/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', x, [2, 3, 4], [1, -2], new Float32Array(8)),
      /axes has axis 1 twice/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', x, [2, 3, 4], [0], new Float32Array(11)),
      /out must be a Float32Array of length 12/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', new Int32Array(24), [2, 3, 4], [0], new Float32Array(12)),
      /out must be a Int32Array/,
      'TypeError',
    );
    expectError(
      () => addon.reduce('any', x, [2, 3, 4], [0], new Uint8Array(12)),
      /any does not support x of type Float32Array/,
      'TypeError',
    );
    expectError(
      () => addon.reduce('argMax', x, [2, 3, 4], [0, 1], new Int32Array(4)),
      /argMax needs exactly one axis/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', new Float32Array(0), [0, 3], [0], new Float32Array(3)),
      /x must not be empty/,
      'RangeError',
    );
    expectError(() => addon.reduce('sum', x, [2, 3, 4], [0], x.subarray(0, 12)), /out must not overlap/, 'RangeError');
    expectError(
      () => addon.reduce('sum', x, [2, NaN, 4] as number[], [0], new Float32Array(12)),
      /shape\[1\] must be an integer/,
      'RangeError',
    );
    expectError(
      () => addon.reduce('sum', x, 'abc' as unknown as number[], [0], new Float32Array(12)),
      /shape must be an array/,
      'TypeError',
    );
    expectError(
      () => addon.reduce('sum', x, new Array(17).fill(1), [0], new Float32Array(12)),
      /at most 16 axes/,
      'RangeError',
    );
  });
  test('softmax, transpose, slice, concat, tile', () => {
    expectError(
      () => addon.softmax(x, 5, 5, new Float32Array(25)),
      /x must be a Float32Array of length 25/,
      'RangeError',
    );
    expectError(() => addon.softmax(x, 4, 6, x.subarray(1, 25) as Float32Array), /out must/, 'RangeError');
    expectError(
      () => addon.softmax(new Int32Array(24) as unknown as Float32Array, 4, 6, new Float32Array(24)),
      /x must be a Float32Array/,
      'TypeError',
    );
    expectError(
      () => addon.transpose(x, [2, 3, 4], [0, 1], new Float32Array(24)),
      /perm must have 3 entries/,
      'RangeError',
    );
    expectError(
      () => addon.transpose(x, [2, 3, 4], [0, 1, 1], new Float32Array(24)),
      /perm must be a permutation/,
      'RangeError',
    );
    expectError(
      () => addon.transpose(x, [2, 3, 4], [2, 1, 0], new Int32Array(24)),
      /out must be a Float32Array/,
      'TypeError',
    );
    expectError(
      () => addon.slice(x, [2, 3, 4], [1, 2, 0], [1, 2, 4], new Float32Array(8)),
      /begin\[1\] \+ size\[1\] = 4 exceeds shape\[1\] = 3/,
      'RangeError',
    );
    expectError(
      () => addon.pad(x, [2, 3, 4], [0, 1, 0], [0, 0], Float32Array.of(0), new Float32Array(32)),
      /after must have 3 entries, got 2/,
      'RangeError',
    );
    expectError(
      () => addon.pad(x, [2, 3, 4], [0, 1, 0], [0, 0, -1], Float32Array.of(0), new Float32Array(32)),
      /after\[2\] must be an integer/,
      'RangeError',
    );
    expectError(
      () => addon.pad(x, [2, 3, 4], [0, 1, 0], [0, 0, 0], Int32Array.of(0), new Float32Array(32)),
      /value must be a Float32Array of length 1/,
      'TypeError',
    );
    expectError(
      () => addon.pad(x, [2, 3, 4], [0, 1, 0], [0, 0, 0], Float32Array.of(0), new Float32Array(31)),
      /out must be a Float32Array of length 32/,
      'RangeError',
    );
    expectError(
      () => addon.pad(x, [2, 3, 4], [0, 1, 0], [0, 0, 0], Float32Array.of(0), x),
      /out must be a Float32Array of length 32/,
      'RangeError',
    );
    expectError(
      () => addon.slice(x, [2, 3, 4], [-1, 0, 0], [1, 1, 1], new Float32Array(1)),
      /begin\[0\] must be an integer/,
      'RangeError',
    );
    expectError(
      () =>
        addon.concat(
          [x, new Int32Array(24)],
          [
            [2, 3, 4],
            [2, 3, 4],
          ],
          0,
          new Float32Array(48),
        ),
      /inputs\[1\] is a Int32Array but inputs\[0\] is a Float32Array/,
      'TypeError',
    );
    expectError(
      () =>
        addon.concat(
          [x, x],
          [
            [2, 3, 4],
            [2, 4, 3],
          ],
          0,
          new Float32Array(48),
        ),
      /shapes\[1\]\[1\] = 4 differs/,
      'RangeError',
    );
    expectError(
      () => addon.concat([x, x], [[2, 3, 4]], 0, new Float32Array(48)),
      /shapes has 1 entries for 2 inputs/,
      'RangeError',
    );
    expectError(
      () =>
        addon.concat(
          [x, x],
          [
            [2, 3, 4],
            [2, 3, 4],
          ],
          3,
          new Float32Array(48),
        ),
      /axis must be an integer in \[-3, 2\]/,
      'RangeError',
    );
    expectError(
      () =>
        addon.concat(
          [x, x],
          [
            [2, 3, 4],
            [2, 3, 4],
          ],
          0,
          x,
        ),
      /out must/,
      'RangeError',
    );
    expectError(() => addon.tile(x, [2, 3, 4], [1, 2], new Float32Array(48)), /reps must have 3 entries/, 'RangeError');
    expectError(
      () => addon.tile(x, [2, 3, 4], [1, 2, 1], new Float32Array(24)),
      /out must be a Float32Array of length 48/,
      'RangeError',
    );
  });
  test('gather, unsortedSegmentSum; a freed (detached) buffer', () => {
    const ids = Int32Array.from([0, 5, 6, 1]);
    expectError(
      () => addon.gather(x, [1, 1, 6, 4], ids, new Float32Array(16)),
      /indices\[2\] = 6 is out of range \[0, 6\)/,
      'RangeError',
    );
    expectError(
      () => addon.gather(x, [1, 1, 6, 4], Int32Array.from([-3]), new Float32Array(4)),
      /indices\[0\] = -3 is out of range/,
      'RangeError',
    );
    expectError(
      () => addon.gather(x, [1, 1, 6, 4], Float32Array.from([1]) as unknown as Int32Array, new Float32Array(4)),
      /indices must be an Int32Array/,
      'TypeError',
    );
    expectError(
      () => addon.gather(x, [2, 1, 3, 4], Int32Array.from([1, 2, 0]), new Float32Array(12)),
      /not a multiple of the batch 2/,
      'RangeError',
    );
    expectError(() => addon.gather(x, [1, 1, 6], ids, new Float32Array(16)), /dims must have 4 entries/, 'RangeError');
    expectError(
      () => addon.unsortedSegmentSum(x, 6, 4, Int32Array.from([0, 1, 2]), 3, new Float32Array(12)),
      /segmentIds must be a Int32Array of length 6/,
      'RangeError',
    );
    expectError(
      () => addon.unsortedSegmentSum(x, 6, 4, new Int32Array(6), 0, new Float32Array(0)),
      /numSegments must be an integer/,
      'RangeError',
    );
    expectError(() => addon.unsortedSegmentSum(x, 6, 4, new Int32Array(6), 6, x), /out must/, 'RangeError');
    const buffer = addon.allocHostBuffer(96);
    const freed = new Float32Array(buffer);
    addon.freeHostBuffer(buffer);
    expectError(() => addon.transpose(freed, [4, 6], [1, 0], new Float32Array(24)), /detached/, 'TypeError');
    expectError(() => addon.reduce('sum', x, [24], [0], freed), /out must be .*detached/, 'TypeError');
    // A getter in a shape array that frees x: x is only looked at after every plain array is read.
    const buffer2 = addon.allocHostBuffer(96);
    const victim = new Float32Array(buffer2);
    const shape = [4, 6];
    Object.defineProperty(shape, 1, { get: () => (addon.freeHostBuffer(buffer2), 6) });
    expectError(
      () => addon.transpose(victim, shape, [1, 0], new Float32Array(24)),
      /x must be .*detached/,
      'TypeError',
    );
  });
});

describe('determinism and memory', () => {
  const bits = (v: HostArray): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

  test('1 and 2 threads give bit-identical results', () => {
    const threads = addon.getNumThreads();
    const x = bigFloats(1200 * 1024);
    const ids = Int32Array.from({ length: 1200 }, () => randInt(300));
    const runAll = () => {
      const shape = [1200, 1024];
      const outs: HostArray[] = [
        new Float32Array(1024),
        new Float32Array(1200),
        new Float32Array(1),
        new Float32Array(x.length),
        new Float32Array(300 * 1024),
        new Float32Array(1200 * 1024),
        new Float32Array(1),
      ];
      addon.reduce('sum', x, shape, [0], outs[0]);
      addon.reduce('mean', x, shape, [1], outs[1]);
      addon.reduce('sum', x, shape, [0, 1], outs[2]);
      addon.softmax(x, 1200, 1024, outs[3] as Float32Array);
      addon.unsortedSegmentSum(x, 1200, 1024, ids, 300, outs[4] as Float32Array);
      addon.transpose(x, [1200, 1024], [1, 0], outs[5]);
      addon.reduce('prod', x.subarray(0, 100000), [100000], [0], outs[6]);
      return outs.map((o) => bits(o).slice());
    };
    try {
      addon.setNumThreads(1);
      const one = runAll();
      addon.setNumThreads(2);
      const two = runAll();
      one.forEach((o, i) => expect(Buffer.compare(Buffer.from(o), Buffer.from(two[i]))).toBe(0));
    } finally {
      addon.setNumThreads(threads);
    }
  });

  test('no leaks: tensors and native blocks back to baseline, failed kernels included', () => {
    use('native');
    const x = randomValues('float32', 4 * 6 * 8) as Float32Array;
    const work = () => {
      tf.tidy(() => {
        const t = tf.tensor3d(x, [4, 6, 8]);
        tf.sum(t, [0, 2]).dataSync();
        tf.max(t, 1, true).dataSync();
        tf.argMax(t, 2).dataSync();
        tf.softmax(t).dataSync();
        tf.transpose(t, [2, 0, 1]).dataSync();
        tf.slice(t, [1, 1, 1], [2, 3, 4]).dataSync();
        tf.slice(t, [1, 0, 0], [2, 6, 8]).dataSync(); // contiguous: a view of the same block
        tf.concat([t, t], 1).dataSync();
        tf.tile(t, [1, 2, 1]).dataSync();
        tf.gather(t, tf.tensor1d([3, 0], 'int32'), 1).dataSync();
        tf.unsortedSegmentSum(tf.reshape(t, [24, 8]), tf.fill([24], 2, 'int32'), 5).dataSync();
        tf.grad((a: tf.Tensor) => tf.sum(tf.softmax(tf.gather(a, tf.tensor1d([1, 1, 2], 'int32')))))(
          tf.reshape(t, [24, 8]),
        ).dataSync();
      });
      expectError(() => tf.tidy(() => tf.gather(tf.ones([4, 3]), tf.tensor1d([9], 'int32'))));
    };
    work();
    const tensors = tf.memory().numTensors;
    const blocks = addon.hostBufferStats();
    work();
    work();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(addon.hostBufferStats()).toEqual(blocks);
  });
});
