// The 'native' backend's elementwise kernels (src/backend/native/kernels/{binary,unary,cast,fill}.ts
// over native/math_ops.cc): every native kernel against tfjs's 'cpu' backend on the same inputs —
// bit for bit where the op is exact, within a few ulp (and against float64 JS Math) where it is
// transcendental — over broadcasting of every kind, empty and 0-d tensors, special values and a
// multi-threaded size; the addon's argument errors; gradients; leaks.
import * as tf from '@tensorflow/tfjs';

import { nativeKernelNames, registerNativeBackend } from '../src/backend/native/register';
import { addon } from '../src/native';
import { expectError } from './helpers/errors';
import { erf64, mulberry32, Rng } from './helpers/reference64';

registerNativeBackend();

type Backend = 'cpu' | 'native';
interface Result {
  values: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype: tf.DataType;
}

/** Runs f on one backend (tfjs's cpu and native backends initialise synchronously). */
function on(backend: Backend, f: () => tf.Tensor): Result {
  void tf.setBackend(backend);
  if (tf.getBackend() !== backend) throw new Error(`could not switch to ${backend}`);
  const t = tf.tidy(f);
  const r = { values: t.dataSync() as Result['values'], shape: t.shape, dtype: t.dtype };
  t.dispose();
  return r;
}

function both(f: () => tf.Tensor): { cpu: Result; native: Result } {
  return { cpu: on('cpu', f), native: on('native', f) };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Spacing of float32 at |v| (v rounded to float32 first); 2^-149 for zero and subnormals. */
function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (!Number.isFinite(a)) return Infinity;
  if (a >= 3.4028234663852886e38) return 2 ** 104;
  f32[0] = a;
  u32[0] += 1;
  return f32[0] - a;
}

function show(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/** Same values bit for bit (NaN equal to NaN, -0 distinct from +0), same shape and dtype. */
function expectSame(got: Result, want: Result, label: string): void {
  expect({ label, shape: got.shape, dtype: got.dtype }).toEqual({ label, shape: want.shape, dtype: want.dtype });
  expect(got.values.length).toBe(want.values.length);
  // Compared as bits first (one monomorphic loop: fast on the large arrays), then element by element
  // where the bits differ: NaNs may carry different payloads.
  const bits = (v: Result['values']): Int32Array | Uint8Array =>
    v instanceof Uint8Array ? v : new Int32Array(v.buffer, v.byteOffset, v.length);
  const g = bits(got.values),
    w = bits(want.values);
  const sameKind =
    g instanceof Int32Array === w instanceof Int32Array &&
    got.values instanceof Int32Array === want.values instanceof Int32Array;
  for (let i = 0; i < want.values.length; i++) {
    if (sameKind && g[i] === w[i]) continue;
    const gv = got.values[i],
      wv = want.values[i];
    if (!(Object.is(gv, wv) || (Number.isNaN(gv) && Number.isNaN(wv))))
      throw new Error(`${label}: element ${i} is ${show(gv)}, tfjs cpu gives ${show(wv)}`);
  }
}

/** Within `ulps` ulp of `want` (or `abs`), with the special values (NaN, inf, signed zero) equal. */
function expectClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  ulps: number,
  label: string,
  abs = 0,
  x?: ArrayLike<number>,
): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i],
      w = want[i];
    const at = x ? ` (x = ${show(x[i])})` : '';
    if (Number.isNaN(w) || !Number.isFinite(w)) {
      if (!(Object.is(g, Math.fround(w)) || (Number.isNaN(g) && Number.isNaN(w))))
        throw new Error(`${label}: element ${i} is ${show(g)}, want ${show(w)}${at}`);
      continue;
    }
    const err = Math.abs(g - w);
    if (err <= ulps * Math.abs(w) * 2 ** -24 && w !== 0) continue; // ulp(w) >= |w| 2^-24: no need to compute it
    if (!(err <= ulps * ulp(w) || err <= abs))
      throw new Error(`${label}: element ${i} is ${show(g)}, want ${show(w)} (${(err / ulp(w)).toFixed(2)} ulp)${at}`);
  }
}

// ---------------------------------------------------------------- inputs

const SPECIALS = [
  NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  1,
  -1,
  0.5,
  -0.5,
  1e30,
  -1e30,
  1e-40,
  -1e-40,
  3.4e38,
  -3.4e38,
  2,
  -2,
  1.5,
  -2.5,
];

/** n float32 values: normal with scale `scale`, a fraction of them special values. */
function floats(rng: Rng, n: number, scale = 3, specials = 0.1, list = SPECIALS): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (rng() < specials) a[i] = list[Math.floor(rng() * list.length)];
    else {
      const u = Math.max(rng(), 1e-12);
      a[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng()) * scale;
    }
  }
  return a;
}

function ints(rng: Rng, n: number, range = 100): Int32Array {
  const special = [0, 1, -1, 2147483647, -2147483648, 65536, -65536, 46341, 1 << 30];
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++)
    a[i] = rng() < 0.15 ? special[Math.floor(rng() * special.length)] : Math.floor((rng() - 0.5) * 2 * range);
  return a;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Shape pairs covering every kind of broadcast. */
const SHAPE_PAIRS: Array<[string, number[], number[]]> = [
  ['same shape', [3, 4, 5], [3, 4, 5]],
  ['bias (row vector)', [6, 7], [7]],
  ['column', [6, 1], [6, 7]],
  ['outer', [5, 1], [1, 4]],
  ['rank mismatch', [2, 3, 4, 5], [4, 1]],
  ['scalar right', [3, 4], []],
  ['scalar left', [], [3, 4]],
  ['0-d both', [], []],
  ['size-1 dims', [1, 3, 1], [2, 1, 4]],
  ['[1] vs [n]', [1], [9]],
  ['middle broadcast', [4, 1, 6], [4, 5, 6]],
  ['empty', [0, 3], [3]],
  ['empty both', [2, 0], [1]],
  ['empty vs scalar', [0], []],
  ['rank 6', [2, 1, 3, 1, 2, 3], [1, 2, 1, 2, 1, 3]],
];

/** Random broadcast-compatible shape pairs up to rank 6. */
function randomShapePairs(rng: Rng, count: number): Array<[string, number[], number[]]> {
  const out: Array<[string, number[], number[]]> = [];
  for (let k = 0; k < count; k++) {
    const rank = Math.floor(rng() * 7);
    const full = Array.from({ length: rank }, () => 1 + Math.floor(rng() * 4));
    const derive = (): number[] => {
      const drop = Math.floor(rng() * (rank + 1));
      return full.slice(drop).map((d) => (rng() < 0.35 ? 1 : d));
    };
    const a = derive(),
      b = derive();
    out.push([`random [${a}] vs [${b}]`, a, b]);
  }
  return out;
}

// ---------------------------------------------------------------- registration

describe('registration', () => {
  test('the elementwise kernels are native on the native backend', () => {
    const names = nativeKernelNames();
    for (const k of [
      ...Object.keys(addon.mathOps.binary),
      ...Object.keys(addon.mathOps.unary),
      'Cast',
      'Fill',
      'ZerosLike',
      'OnesLike',
    ])
      expect(names).toContain(k);
    // every opcode table entry is a real tfjs kernel name (a typo would register a dead kernel)
    for (const k of [...Object.keys(addon.mathOps.binary), ...Object.keys(addon.mathOps.unary)])
      expect(tf.getKernel(k, 'cpu')).toBeDefined();
  });
});

// ---------------------------------------------------------------- binary ops

const BINARY_FLOAT: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
  ['Add', tf.add],
  ['Sub', tf.sub],
  ['Mul', tf.mul],
  ['RealDiv', tf.div],
  ['Maximum', tf.maximum],
  ['Minimum', tf.minimum],
  ['SquaredDifference', tf.squaredDifference],
  ['FloorDiv', tf.floorDiv],
  ['Mod', tf.mod],
  ['Prelu', (a, b) => tf.prelu(a, b)],
  ['Greater', tf.greater],
  ['GreaterEqual', tf.greaterEqual],
  ['Less', tf.less],
  ['LessEqual', tf.lessEqual],
  ['Equal', tf.equal],
  ['NotEqual', tf.notEqual],
];

describe('binary ops, float32: bit for bit equal to cpu', () => {
  const rng = mulberry32(11);
  const pairs = [...SHAPE_PAIRS, ...randomShapePairs(rng, 12)];
  test.each(BINARY_FLOAT)('%s over every kind of broadcast', (name, op) => {
    let seed = 100;
    for (const [label, as, bs] of pairs) {
      const r = mulberry32(seed++);
      const a = floats(r, size(as), 3, 0.15),
        b = floats(r, size(bs), 3, 0.15);
      if (name !== 'Mod' && name !== 'FloorDiv' && b.length > 2) b[1] = a.length > 1 ? a[1] : 0; // equal pairs for comparisons
      const { cpu, native } = both(() => op(tf.tensor(a, as), tf.tensor(b, bs)));
      expectSame(native, cpu, `${name} ${label}`);
    }
  });

  test('Pow: within 1 ulp of cpu (float64 pow either side), JS special cases exact', () => {
    const r = mulberry32(5);
    const base = floats(r, 2000, 2, 0.1, [...SPECIALS, -8, 8]);
    const exps = floats(r, 2000, 2, 0.3, [NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, 3, 0.5, -0.5, 1 / 3, 127, -127]);
    for (let i = 0; i < 40; i++) base[i] = [1, -1, 0, -0][i % 4]; // pow(+-1, +-inf) and pow(x, NaN) are NaN in JS
    const { cpu, native } = both(() => tf.pow(tf.tensor(base), tf.tensor(exps)));
    expectClose(native.values, cpu.values, 1, 'Pow', 0, base);
    const bias = both(() => tf.pow(tf.tensor(base, [40, 50]), tf.tensor(exps.subarray(0, 50), [50])));
    expectClose(bias.native.values, bias.cpu.values, 1, 'Pow bias');
  });

  test('Maximum / Minimum: NaN propagates from either side, -0 < +0 (Math.max / Math.min)', () => {
    const a = new Float32Array([NaN, 1, -0, 0, -0, 0, Infinity, -Infinity]);
    const b = new Float32Array([1, NaN, 0, -0, -0, 0, NaN, -Infinity]);
    for (const op of [tf.maximum, tf.minimum]) {
      const { cpu, native } = both(() => op(tf.tensor(a), tf.tensor(b)));
      expectSame(native, cpu, 'max/min specials');
    }
    const mx = on('native', () => tf.maximum(tf.tensor(a), tf.tensor(b))).values;
    expect(Array.from(mx).map(show)).toEqual(['NaN', 'NaN', '0', '0', '-0', '0', 'NaN', '-Infinity']);
  });

  test('RealDiv by zero: +-Inf and NaN', () => {
    const native = on('native', () => tf.div(tf.tensor([1, -1, 0, -0, NaN]), tf.scalar(0))).values;
    expect(Array.from(native).map(show)).toEqual(['Infinity', '-Infinity', 'NaN', 'NaN', 'NaN']);
    expect(Array.from(on('native', () => tf.div(tf.tensor([1, -1]), tf.scalar(-0))).values)).toEqual([
      -Infinity,
      Infinity,
    ]);
  });
});

describe('binary ops, int32: bit for bit equal to cpu (JS ToInt32 wrapping)', () => {
  const INT_OPS: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
    ['Add', tf.add],
    ['Sub', tf.sub],
    ['Mul', tf.mul],
    ['Maximum', tf.maximum],
    ['Minimum', tf.minimum],
    ['SquaredDifference', tf.squaredDifference],
    ['FloorDiv', tf.floorDiv],
    ['Greater', tf.greater],
    ['LessEqual', tf.lessEqual],
    ['Equal', tf.equal],
    ['NotEqual', tf.notEqual],
  ];
  test.each(INT_OPS)('%s', (name, op) => {
    let seed = 500;
    for (const [label, as, bs] of SHAPE_PAIRS) {
      const r = mulberry32(seed++);
      const big = name === 'Mul' || name === 'SquaredDifference' ? 1 << 30 : 1000;
      const a = ints(r, size(as), big),
        b = ints(r, size(bs), name === 'FloorDiv' ? 7 : big);
      const { cpu, native } = both(() => op(tf.tensor(a, as, 'int32'), tf.tensor(b, bs, 'int32')));
      expectSame(native, cpu, `${name} int32 ${label}`);
    }
  });

  test('the native kernel ran (not the fallback): large results land in addon memory, small ones in JS arrays', () => {
    void tf.setBackend('native');
    (tf.backend() as unknown as { emptyCache(): void }).emptyCache(); // so the output cannot come from the cache
    const before = addon.hostBufferStats().buffers;
    const a = tf.range(0, 2048, 1, 'int32');
    const t = tf.add(a, a);
    expect(addon.hostBufferStats().buffers).toBe(before + 1);
    const small = tf.add(tf.tensor([1, 2], [2], 'int32'), tf.tensor([3, 4], [2], 'int32'));
    expect(addon.hostBufferStats().buffers).toBe(before + 1);
    expect(Array.from(small.dataSync())).toEqual([4, 6]);
    tf.dispose([a, t, small]);
    (tf.backend() as unknown as { emptyCache(): void }).emptyCache();
    expect(addon.hostBufferStats().buffers).toBe(before);
  });
});

describe('binary ops: fallbacks behave as cpu', () => {
  test('int32 RealDiv / Pow / Mod, complex64 Add, bool LogicalAnd-free comparisons on bool inputs', () => {
    const ai = new Int32Array([7, -7, 9, 0]),
      bi = new Int32Array([2, 2, -4, 3]);
    for (const op of [
      tf.pow,
      tf.mod,
      (a: tf.Tensor, b: tf.Tensor) => tf.engine().runKernel('RealDiv', { a, b }) as tf.Tensor,
    ]) {
      const { cpu, native } = both(() => op(tf.tensor(ai, [4], 'int32'), tf.tensor(bi, [4], 'int32')));
      expectSame(native, cpu, 'int32 fallback');
    }
    const c = both(() => tf.real(tf.add(tf.complex([1, 2], [3, 4]), tf.complex([5, 6], [7, 8]))));
    expectSame(c.native, c.cpu, 'complex64 add');
    const e = both(() =>
      tf.equal(tf.tensor([true, false, true], [3], 'bool'), tf.tensor([true, true, false], [3], 'bool')),
    );
    expectSame(e.native, e.cpu, 'bool equal');
  });

  test('a float32 tensor holding int32 data (a cpu-kernel Cast) is read as floats', () => {
    // Cast int32 -> float32 on 'cpu' shares the Int32Array; run it through the cpu kernel on native.
    void tf.setBackend('native');
    const x = tf.tensor([1, 2, 16777217], [3], 'int32');
    const shared = tf
      .getKernel('Cast', 'cpu')!
      .kernelFunc({ inputs: { x }, backend: tf.backend(), attrs: { dtype: 'float32' } }) as tf.TensorInfo;
    const xf = tf.engine().makeTensorFromTensorInfo(shared);
    const y = tf.add(xf, tf.scalar(0.5));
    expect(Array.from(y.dataSync())).toEqual([1.5, 2.5, 16777216]);
    tf.dispose([x, xf, y]);
  });
});

// ---------------------------------------------------------------- unary ops

// (tfjs-core selu_util: scale 1.0507009873554804934193349852946, scale * alpha 1.7580993408473768599402175208123)
const SELU_SCALE = 1.0507009873554805,
  SELU_SCALEALPHA = 1.7580993408473768;
// tfjs's softplus: exp(x) below log(eps) + 2, x above its negation, log(1 + e^x) between.
const SOFTPLUS_T = Math.log(1.1920928955078125e-7) + 2;
const softplus64 = (x: number): number =>
  x < SOFTPLUS_T ? Math.exp(x) : x > -SOFTPLUS_T ? x : x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));

/** Transcendental kernels: tf op, float64 reference, ulp bound vs float64 (measured max + margin). */
const TRANSCENDENTAL: Array<[string, (x: tf.Tensor) => tf.Tensor, (x: number) => number, number]> = [
  ['Exp', tf.exp, Math.exp, 1.5],
  ['Log', tf.log, Math.log, 1.5],
  ['Log1p', tf.log1p, Math.log1p, 1.5],
  ['Expm1', tf.expm1, Math.expm1, 2],
  ['Tanh', tf.tanh, Math.tanh, 1.5],
  ['Sigmoid', tf.sigmoid, (x) => 1 / (1 + Math.exp(-x)), 2],
  ['Erf', tf.erf, erf64, 1.5],
  ['Softplus', tf.softplus, softplus64, 2.5],
  ['Elu', tf.elu, (x) => (x >= 0 ? x : Math.expm1(x)), 2],
  ['Selu', tf.selu, (x) => (x >= 0 ? SELU_SCALE * x : SELU_SCALEALPHA * Math.expm1(x)), 2.5],
];

describe('unary transcendental ops: close to cpu and to float64', () => {
  test.each(TRANSCENDENTAL)('%s', (name, op, ref, bound) => {
    const rng = mulberry32(name.length * 77);
    const x = new Float32Array([
      ...floats(rng, 3000, 3, 0.1),
      ...floats(rng, 1000, 30, 0),
      ...floats(rng, 500, 0.01, 0),
      ...Array.from({ length: 200 }, (_, i) => (i - 100) * 0.93), // up to +-93: the exp overflow/underflow edges
      88.72,
      88.73,
      -87.3,
      -103.9,
      -104.5,
      1e-30,
      -1e-30,
      1e-44,
      9.02,
      -9.02,
      3.92,
      -3.92,
      13.94,
      -13.94,
    ]);
    const { cpu, native } = both(() => op(tf.tensor(x)));
    expect(native.dtype).toBe('float32');
    const want = Array.from(x, (v) => ref(v));
    expectClose(native.values, want, bound, `${name} vs float64`, 0, x);
    // vs tfjs's cpu kernel: the same within both errors. tfjs's Erf is Abramowitz-Stegun 7.1.26
    // (absolute error 1.5e-7) and its Elu/Selu compute exp(x) - 1, inexact near 0.
    const abs = name === 'Erf' ? 3e-7 : name === 'Elu' || name === 'Selu' ? 1e-15 : 0;
    expectClose(native.values, cpu.values, bound + 1, `${name} vs cpu`, abs, x);
  });

  test('special values are exact: NaN, +-inf, +-0, domain edges', () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 0, -0, -1, -2]);
    const got = (op: (t: tf.Tensor) => tf.Tensor): string[] =>
      Array.from(on('native', () => op(tf.tensor(x))).values).map(show);
    expect(got(tf.exp)).toEqual([
      'NaN',
      'Infinity',
      '0',
      '1',
      '1',
      String(Math.fround(Math.exp(-1))),
      String(Math.fround(Math.exp(-2))),
    ]);
    expect(got(tf.log)).toEqual(['NaN', 'Infinity', 'NaN', '-Infinity', '-Infinity', 'NaN', 'NaN']);
    expect(got(tf.log1p).slice(0, 6)).toEqual(['NaN', 'Infinity', 'NaN', '0', '-0', '-Infinity']);
    expect(got(tf.expm1).slice(0, 5)).toEqual(['NaN', 'Infinity', '-1', '0', '-0']);
    expect(got(tf.tanh).slice(0, 5)).toEqual(['NaN', '1', '-1', '0', '-0']);
    expect(got(tf.sigmoid).slice(0, 5)).toEqual(['NaN', '1', '0', '0.5', '0.5']);
    expect(got(tf.erf).slice(0, 5)).toEqual(['NaN', '1', '-1', '0', '-0']);
    expect(got(tf.softplus).slice(0, 3)).toEqual(['NaN', 'Infinity', '0']);
  });
});

/** Kernels that are exact: float64 tfjs rounded once equals the native result bit for bit. */
const EXACT_UNARY: Array<[string, (x: tf.Tensor) => tf.Tensor]> = [
  ['Relu', tf.relu],
  ['Relu6', tf.relu6],
  ['LeakyRelu', (x) => tf.leakyRelu(x, 0.2)],
  ['Step', (x) => tf.step(x, 0.3)],
  ['ClipByValue', (x) => tf.clipByValue(x, -0.7, 1.3)],
  ['Sqrt', tf.sqrt],
  ['Rsqrt', tf.rsqrt],
  ['Square', tf.square],
  ['Neg', tf.neg],
  ['Abs', tf.abs],
  ['Reciprocal', tf.reciprocal],
  ['Sign', tf.sign],
  ['Floor', tf.floor],
  ['Ceil', tf.ceil],
  ['Round', tf.round],
  ['IsNan', tf.isNaN],
  ['IsInf', tf.isInf],
  ['IsFinite', tf.isFinite],
];

describe('unary exact ops: bit for bit equal to cpu', () => {
  test.each(EXACT_UNARY)('%s', (name, op) => {
    const rng = mulberry32(name.length * 31);
    const halves = [
      -3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.49999997, 0.49999997, 8388607.5, -8388607.5, 6, -0.7, 1.3,
    ];
    for (const shape of [[0], [], [3, 0, 2], [7, 13], [2, 3, 4, 5]]) {
      const x = floats(rng, size(shape), 4, 0.2, [...SPECIALS, ...halves]);
      const { cpu, native } = both(() => op(tf.tensor(x, shape)));
      expectSame(native, cpu, `${name} [${shape}]`);
    }
  });

  test('Sin / Cos: float64 sin/cos rounded, within 1 ulp of cpu (glibc vs V8 libm)', () => {
    const x = floats(mulberry32(9), 3000, 100, 0.1);
    for (const op of [tf.sin, tf.cos]) {
      const { cpu, native } = both(() => op(tf.tensor(x)));
      expectClose(native.values, cpu.values, 1, 'sin/cos', 0, x);
    }
  });

  test('Round is half to even, -0.5 rounds to +0 as tfjs', () => {
    const x = [-2.5, -1.5, -0.5, -0.4, 0.5, 1.5, 2.5, -0];
    expect(Array.from(on('native', () => tf.round(tf.tensor(x))).values).map(show)).toEqual([
      '-2',
      '-2',
      '0',
      '-0',
      '0',
      '2',
      '2',
      '-0',
    ]);
  });

  test('LeakyRelu / Step / ClipByValue with attributes that are not floats', () => {
    const x = floats(mulberry32(3), 500, 2, 0.2);
    for (const op of [
      (t: tf.Tensor) => tf.leakyRelu(t, 0.1),
      (t: tf.Tensor) => tf.step(t, 1 / 3),
      (t: tf.Tensor) => tf.clipByValue(t, -1 / 3, 0.1),
    ]) {
      const { cpu, native } = both(() => op(tf.tensor(x)));
      expectSame(native, cpu, 'attrs');
    }
  });

  test('int32 input runs the cpu kernel', () => {
    for (const op of [tf.exp, tf.relu, tf.abs, tf.neg, tf.square]) {
      const { cpu, native } = both(() => op(tf.tensor([1, -2, 3], [3], 'int32')));
      expectSame(native, cpu, 'int32 unary');
    }
  });
});

// ---------------------------------------------------------------- large (multi-threaded) arrays

describe('large arrays (1024 x 1152, the parallel path)', () => {
  test('Add same shape, bias and column, Mul by scalar, Greater, Exp, Erf; the thread count does not matter', () => {
    const rng = mulberry32(77);
    const R = 1024,
      C = 1152,
      n = R * C;
    const a = floats(rng, n, 2, 0.001),
      b = a.map((v, i) => a[(i * 7919) % n] * 0.5 - 0.25),
      bias = floats(rng, C, 1, 0),
      col = b.subarray(0, R);
    const s = Math.fround(1.7);
    // References: plain loops (one float64 op rounded to float32 is what tfjs computes), and float64
    // Math on a strided sample for the transcendental ones (tfjs's cpu kernels are slow here).
    const loop = <T extends Float32Array | Uint8Array>(out: T, f: (i: number) => number): Result => {
      for (let i = 0; i < n; i++) out[i] = f(i);
      return { values: out, shape: [R, C], dtype: out instanceof Uint8Array ? 'bool' : 'float32' };
    };
    const cases: Array<[string, () => tf.Tensor, (() => Result) | ((x: number) => number)]> = [
      [
        'add',
        () => tf.add(tf.tensor(a, [R, C]), tf.tensor(b, [R, C])),
        () => loop(new Float32Array(n), (i) => a[i] + b[i]),
      ],
      [
        'bias',
        () => tf.add(tf.tensor(a, [R, C]), tf.tensor(bias, [C])),
        () => loop(new Float32Array(n), (i) => a[i] + bias[i % C]),
      ],
      [
        'column',
        () => tf.mul(tf.tensor(a, [R, C]), tf.tensor(col, [R, 1])),
        () => loop(new Float32Array(n), (i) => a[i] * col[Math.floor(i / C)]),
      ],
      ['scalar', () => tf.mul(tf.tensor(a, [R, C]), tf.scalar(1.7)), () => loop(new Float32Array(n), (i) => a[i] * s)],
      [
        'greater',
        () => tf.greater(tf.tensor(a, [R, C]), tf.tensor(bias, [C])),
        () => loop(new Uint8Array(n), (i) => (a[i] > bias[i % C] ? 1 : 0)),
      ],
      ['exp', () => tf.exp(tf.tensor(a, [R, C])), Math.exp],
      ['erf', () => tf.erf(tf.tensor(a, [R, C])), erf64],
    ];
    const threads = addon.getNumThreads();
    try {
      for (const [label, f, reference] of cases) {
        addon.setNumThreads(Math.max(2, threads));
        const native = on('native', f);
        if (reference.length === 0) expectSame(native, (reference as () => Result)(), label);
        else {
          const idx = Array.from({ length: Math.floor(n / 7) }, (_, k) => k * 7);
          const got = idx.map((i) => native.values[i]);
          expectClose(
            got,
            idx.map((i) => (reference as (x: number) => number)(a[i])),
            1.5,
            label,
          );
        }
        addon.setNumThreads(1);
        expectSame(on('native', f), native, `${label} on 1 thread`);
      }
    } finally {
      addon.setNumThreads(threads);
    }
  });
});

// ---------------------------------------------------------------- cast and fill

describe('Cast', () => {
  const FLOATS = [
    1.9,
    -1.9,
    0.5,
    -0.5,
    0,
    -0,
    NaN,
    Infinity,
    -Infinity,
    3e9,
    -3e9,
    2147483648,
    -2147483648,
    2147483520,
    1e20,
    -1e20,
    3.4e38,
    1e-40,
    16777217,
    5e18,
    1e19,
  ];
  test.each([
    ['float32', 'int32'],
    ['float32', 'bool'],
    ['int32', 'float32'],
    ['int32', 'bool'],
    ['bool', 'float32'],
    ['bool', 'int32'],
    ['float32', 'float32'],
    ['int32', 'int32'],
  ] as Array<[tf.DataType, tf.DataType]>)('%s -> %s', (from, to) => {
    const rng = mulberry32(4);
    const data =
      from === 'float32'
        ? new Float32Array([...FLOATS, ...floats(rng, 200, 1e6, 0)])
        : from === 'int32'
          ? new Int32Array([...ints(rng, 200, 1 << 30), 16777217, -16777217, 2147483647])
          : Uint8Array.from({ length: 50 }, () => (rng() < 0.5 ? 1 : 0));
    for (const shape of [[data.length], [0], []]) {
      const slice = shape.length === 0 ? data.subarray(0, 1) : data.subarray(0, size(shape));
      const { cpu, native } = both(() => tf.cast(tf.tensor(slice, shape, from), to));
      // tfjs's cpu Cast int32 -> float32 keeps the Int32Array, so its "float32" tensor holds ints
      // beyond 2^24 exactly; the native Cast converts (as tfjs's wasm and webgl backends do).
      if (from === 'int32' && to === 'float32') cpu.values = Float32Array.from(cpu.values);
      expectSame(native, cpu, `${from} -> ${to} [${shape}]`);
    }
  });

  test('a cast to float32 gives the native kernels a Float32Array', () => {
    void tf.setBackend('native');
    const x = tf.cast(tf.tensor([1, 2, 3], [3], 'int32'), 'float32');
    const values = (tf.backend() as unknown as { data: { get(id: object): { values: unknown } } }).data.get(
      x.dataId,
    ).values;
    expect(values).toBeInstanceOf(Float32Array);
    x.dispose();
  });
});

describe('Fill, ZerosLike, OnesLike', () => {
  test.each([
    ['fill float32', () => tf.fill([3, 4], 2.5)],
    ['fill float32 NaN', () => tf.fill([5], NaN)],
    ['fill float32 -0', () => tf.fill([2], -0)],
    ['fill float32 1/3', () => tf.fill([2, 2], 1 / 3)],
    ['fill int32', () => tf.fill([4, 2], 3, 'int32')],
    ['fill int32 wraps', () => tf.fill([3], 2 ** 32 + 5, 'int32')],
    ['fill empty', () => tf.fill([0, 3], 1)],
    ['fill 0-d', () => tf.fill([], 7)],
    ['fill bool (cpu)', () => tf.fill([3], 1, 'bool')],
    ['zerosLike float32', () => tf.zerosLike(tf.ones([3, 5]))],
    ['zerosLike int32', () => tf.zerosLike(tf.ones([3], 'int32'))],
    ['zerosLike bool', () => tf.zerosLike(tf.ones([3], 'bool'))],
    ['onesLike float32', () => tf.onesLike(tf.zeros([70000]))],
    ['onesLike int32', () => tf.onesLike(tf.zeros([2, 2], 'int32'))],
    ['onesLike bool', () => tf.onesLike(tf.zeros([4], 'bool'))],
    ['onesLike empty', () => tf.onesLike(tf.zeros([0]))],
  ] as Array<[string, () => tf.Tensor]>)('%s', (label, f) => {
    const { cpu, native } = both(f);
    expectSame(native, cpu, label);
  });

  test('a string fill runs the cpu kernel', () => {
    void tf.setBackend('native');
    const t = tf.fill([2], 'ab');
    expect(t.arraySync()).toEqual(['ab', 'ab']);
    t.dispose();
  });
});

// ---------------------------------------------------------------- gradients

describe('gradients through native kernels equal cpu', () => {
  test('GELU (erf), sigmoid, tanh, exp, relu, sqrt, div, max with broadcasting', () => {
    const rng = mulberry32(21);
    const xv = floats(rng, 6 * 8, 1.5, 0),
      bv = floats(rng, 8, 1, 0);
    const f = (x: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const h = tf.add(x, b);
      const gelu = tf.mul(tf.mul(h, 0.5), tf.add(1, tf.erf(tf.div(h, Math.SQRT2))));
      const t = tf.add(tf.mul(tf.sigmoid(h), tf.tanh(x)), tf.exp(tf.mul(b, 0.3)));
      const r = tf.div(tf.relu(h), tf.sqrt(tf.add(tf.square(b), 1)));
      return tf.sum(tf.add(tf.add(gelu, t), tf.add(r, tf.maximum(x, tf.mul(x, 0.3)))));
    };
    const grads = (backend: Backend): Float32Array[] => {
      void tf.setBackend(backend);
      return tf.tidy(() => {
        const [gx, gb] = tf.grads((x, b) => f(x, b))([tf.tensor(xv, [6, 8]), tf.tensor(bv, [8])]);
        return [gx.dataSync() as Float32Array, gb.dataSync() as Float32Array];
      });
    };
    const cpu = grads('cpu'),
      native = grads('native');
    // sums of a few float ops with erf/exp/tanh differences of ~1 ulp: a relative bound
    for (let k = 0; k < 2; k++) expectClose(native[k], cpu[k], 64, `grad ${k}`, 2e-6);
  });
});

// ---------------------------------------------------------------- leaks

describe('no leaks', () => {
  test('tensors and native buffers return to the baseline after dispose', () => {
    void tf.setBackend('native');
    const run = (): void => {
      tf.tidy(() => {
        const x = tf.tensor(floats(mulberry32(1), 4096, 1, 0), [64, 64]);
        const b = tf.tensor(floats(mulberry32(2), 64, 1, 0), [64]);
        tf.add(x, b);
        tf.greater(x, b);
        tf.floorDiv(x, b);
        tf.exp(x);
        tf.isNaN(x);
        tf.cast(x, 'int32');
        tf.cast(tf.cast(x, 'bool'), 'float32');
        tf.zerosLike(x);
        tf.onesLike(x);
        tf.fill([10, 10], 3);
        tf.add(tf.tensor([], [0]), tf.scalar(1));
        tf.grad((v: tf.Tensor) => tf.sum(tf.erf(v)))(tf.ones([100]));
      });
      const ones = tf.ones([5]); // tensors outside any tidy, disposed by hand
      const kept = tf.exp(ones);
      tf.dispose([ones, kept]);
    };
    run();
    const before = { ...tf.memory(), ...addon.hostBufferStats() };
    for (let i = 0; i < 3; i++) run();
    const after = { ...tf.memory(), ...addon.hostBufferStats() };
    expect([after.numTensors, after.numDataBuffers, after.buffers, after.bytes]).toEqual([
      before.numTensors,
      before.numDataBuffers,
      before.buffers,
      before.bytes,
    ]);
  });
});

// ---------------------------------------------------------------- addon argument checking

describe('addon argument errors', () => {
  const B = addon.mathOps.binary,
    U = addon.mathOps.unary;
  const a6 = new Float32Array(6),
    b3 = new Float32Array(3),
    o6 = new Float32Array(6);

  test('binaryOp', () => {
    const bad: Array<[() => unknown, RegExp, string]> = [
      [() => (addon.binaryOp as unknown as () => void)(), /expected 6 arguments/, 'TypeError'],
      [() => addon.binaryOp(99, a6, [2, 3], b3, [3], o6), /op must be an opcode in \[0, 17\)/, 'RangeError'],
      [() => addon.binaryOp(1.5, a6, [2, 3], b3, [3], o6), /op must be an opcode/, 'RangeError'],
      [() => addon.binaryOp('Add' as unknown as number, a6, [2, 3], b3, [3], o6), /op must be a number/, 'TypeError'],
      [
        () => addon.binaryOp(B.Add, [1, 2] as unknown as Float32Array, [2], b3, [3], o6),
        /a must be a Float32Array or Int32Array/,
        'TypeError',
      ],
      [
        () => addon.binaryOp(B.Add, new Float64Array(6) as unknown as Float32Array, [2, 3], b3, [3], o6),
        /a must be a Float32Array/,
        'TypeError',
      ],
      [() => addon.binaryOp(B.Add, a6, [2, 2], b3, [3], o6), /a must have 4 elements, got 6/, 'RangeError'],
      [() => addon.binaryOp(B.Add, a6, [2, -3], b3, [3], o6), /aShape\[1\] must be an integer/, 'RangeError'],
      [() => addon.binaryOp(B.Add, a6, [2, 1.5], b3, [3], o6), /aShape\[1\] must be an integer/, 'RangeError'],
      [
        () => addon.binaryOp(B.Add, a6, '2,3' as unknown as number[], b3, [3], o6),
        /aShape must be an array/,
        'TypeError',
      ],
      [() => addon.binaryOp(B.Add, a6, [2, 3], b3, [NaN], o6), /bShape\[0\] must be an integer/, 'RangeError'],
      [
        () => addon.binaryOp(B.Add, a6, new Array(13).fill(1).concat([6]), b3, [3], o6),
        /aShape has rank 14, more than 12/,
        'RangeError',
      ],
      [
        () => addon.binaryOp(B.Add, a6, [2, 3], new Int32Array(3), [3], o6),
        /b must be a Float32Array like a, got a Int32Array/,
        'TypeError',
      ],
      [() => addon.binaryOp(B.Add, a6, [6], b3, [3], o6), /shapes \[6\] and \[3\] do not broadcast/, 'RangeError'],
      [
        () => addon.binaryOp(B.Add, a6, [2, 3], b3, [3], new Float32Array(5)),
        /out must have 6 elements, got 5/,
        'RangeError',
      ],
      [() => addon.binaryOp(B.Greater, a6, [2, 3], b3, [3], o6), /out must be a Uint8Array/, 'TypeError'],
      [() => addon.binaryOp(B.FloorDiv, a6, [2, 3], b3, [3], o6), /out must be a Int32Array/, 'TypeError'],
      [
        () => addon.binaryOp(B.Pow, new Int32Array(6), [2, 3], new Int32Array(3), [3], new Int32Array(6)),
        /Pow does not take Int32Array inputs/,
        'TypeError',
      ],
      [() => addon.binaryOp(B.Add, a6, [2, 3], a6.subarray(0, 3), [3], a6), /out must not overlap b/, 'RangeError'],
      [
        () => addon.binaryOp(B.Add, a6.subarray(0, 3), [3], b3, [3], a6.subarray(1, 4)),
        /out must not overlap a/,
        'RangeError',
      ],
    ];
    for (const [f, msg, name] of bad) expectError(f, new RegExp(`^fused-distill: binaryOp: .*${msg.source}`), name);
    // in place: out may be a (or b) itself when it has the result's shape
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    addon.binaryOp(B.Add, x, [2, 3], new Float32Array([10, 20, 30]), [3], x);
    expect(Array.from(x)).toEqual([11, 22, 33, 14, 25, 36]);
    const y = new Float32Array([1, 2, 3]);
    addon.binaryOp(B.Multiply, new Float32Array([2]), [], y, [3], y);
    expect(Array.from(y)).toEqual([2, 4, 6]);
    addon.binaryOp(B.Add, new Float32Array(0), [0, 3], b3, [3], new Float32Array(0)); // empty: a no-op
  });

  test('a freed (detached) native buffer is rejected, not read', () => {
    const buf = addon.allocHostBuffer(24);
    const view = new Float32Array(buf);
    addon.freeHostBuffer(buf);
    expectError(
      () => addon.binaryOp(B.Add, view, [6], a6, [6], o6),
      /^fused-distill: binaryOp: a must be .*detached|a must have 6 elements, got 0/,
    );
    expectError(
      () => addon.unaryOp(U.Exp, view, o6),
      /^fused-distill: unaryOp: x must be .*detached|out must have 0 elements/,
    );
  });

  test('unaryOp, cast, fill', () => {
    const bad: Array<[() => unknown, RegExp, string]> = [
      [
        () => addon.unaryOp(U.Exp, a6, new Float32Array(5)),
        /^fused-distill: unaryOp: out must have 6 elements, got 5/,
        'RangeError',
      ],
      [
        () => addon.unaryOp(U.Exp, new Int32Array(6) as unknown as Float32Array, o6),
        /^fused-distill: unaryOp: x must be a Float32Array/,
        'TypeError',
      ],
      [() => addon.unaryOp(U.IsNan, a6, o6), /^fused-distill: unaryOp: out must be a Uint8Array/, 'TypeError'],
      [
        () => addon.unaryOp(U.Exp, a6, new Uint8Array(6) as unknown as Float32Array),
        /^fused-distill: unaryOp: out must be a Float32Array/,
        'TypeError',
      ],
      [() => addon.unaryOp(U.LeakyRelu, a6, o6), /^fused-distill: unaryOp: alpha must be a number/, 'TypeError'],
      [() => addon.unaryOp(U.ClipByValue, a6, o6, 0), /^fused-distill: unaryOp: max must be a number/, 'TypeError'],
      [() => addon.unaryOp(-1, a6, o6), /^fused-distill: unaryOp: op must be an opcode in \[0, 30\)/, 'RangeError'],
      [
        () => addon.unaryOp(U.Exp, a6, a6.subarray(1)),
        /^fused-distill: unaryOp: out must have 6 elements/,
        'RangeError',
      ],
      [
        () => addon.unaryOp(U.Exp, a6.subarray(0, 4), a6.subarray(2, 6)),
        /^fused-distill: unaryOp: out must not overlap x/,
        'RangeError',
      ],
      [() => addon.cast(a6, new Int32Array(5)), /^fused-distill: cast: out must have 6 elements, got 5/, 'RangeError'],
      [
        () => addon.cast(a6, new Float64Array(6) as unknown as Float32Array),
        /^fused-distill: cast: out must be a Float32Array or Int32Array or Uint8Array/,
        'TypeError',
      ],
      [
        () => addon.cast(a6, new Uint8Array(a6.buffer, 0, 6)),
        /^fused-distill: cast: out must not overlap x/,
        'RangeError',
      ],
      [() => addon.fill(o6, '1' as unknown as number), /^fused-distill: fill: value must be a number/, 'TypeError'],
      [() => addon.fill({} as Float32Array, 1), /^fused-distill: fill: out must be a/, 'TypeError'],
    ];
    for (const [f, msg, name] of bad) expectError(f, msg, name);
    const x = new Float32Array([1, 4, 9]);
    addon.unaryOp(U.Sqrt, x, x); // in place
    expect(Array.from(x)).toEqual([1, 2, 3]);
    const i = new Int32Array(3);
    addon.fill(i, -7.9);
    expect(Array.from(i)).toEqual([-7, -7, -7]);
  });
});
