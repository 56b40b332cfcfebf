// Throws seeded random wrong arguments at every addon function. Each call must throw an Error with a
// message (never crash the process, never return). Plus targeted aliasing/detaching cases, a check
// that the addon still computes the right answer after thousands of rejected calls, and the cuda.*
// functions the same way on device buffers from cuda.alloc (a GPU, else the host emulation).
import { addon, attentionLoss, hiddenLoss, rankingTotal } from './helpers/addon';
import { deviceTestsHere } from './helpers/device';
import { describe as show, thrown } from './helpers/errors';
import * as ref from './helpers/reference64';
import { mulberry32 } from './helpers/reference64';

type Rng = () => number;

/** Detaches buf's ArrayBuffer (structuredClone with transfer, or ArrayBuffer.prototype.transfer). */
function detach<T extends ArrayBufferView>(view: T): T {
  const buf = view.buffer as ArrayBuffer;
  const transfer = (ArrayBuffer.prototype as unknown as { transfer?: () => ArrayBuffer }).transfer;
  if (typeof structuredClone === 'function') structuredClone(buf, { transfer: [buf] });
  else if (transfer) transfer.call(buf);
  else throw new Error('cannot detach an ArrayBuffer in this runtime');
  if (buf.byteLength !== 0) throw new Error('detach failed');
  return view;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)];
}

// ---------------------------------------------------------------- argument kinds and their bad values

type Kind =
  // len -1: the array's length defines n (only arrays that are not usable at all are wrong);
  // upTo: any length 1..len is right (a transfer of the buffer's first elements)
  | { kind: 'f32'; len: number; optional?: boolean; upTo?: boolean }
  | { kind: 'f64'; len: number; optional?: boolean }
  | { kind: 'weights' }
  | { kind: 'size' } // a dimension: any other positive value mismatches the arrays
  | { kind: 'positive' } // temperature
  | { kind: 'finite' } // sigma, margin, c: any finite number is fine
  | { kind: 'threads' }
  | { kind: 'length' } // a buffer length: any integer in [1, 2^40] is fine
  | { kind: 'dtype' } // a buffer dtype: 'float32', 'int32', 'bool' (or null: float32)
  // a device buffer handle; anySize: any live buffer of any dtype is fine (free, size)
  | { kind: 'handle'; optional?: boolean; anySize?: boolean };

/** Values that are wrong for any argument position (never null/undefined, never a valid number). */
function junk(rng: Rng): unknown {
  const gens: Array<() => unknown> = [
    () => 'abc',
    () => '3',
    () => '',
    () => ({}),
    () => ({ length: 4, 0: 1 }),
    () => [1, 2, 3, 4],
    () => [],
    () => BigInt(3),
    () => Symbol('x'),
    () => true,
    () => () => 1,
    () => new Date(0),
    () => new Map(),
    () => /x/,
    () => new ArrayBuffer(16),
  ];
  return pick(rng, gens)();
}

function badTypedArray(rng: Rng, len: number, elem: 'f32' | 'f64'): unknown {
  const gens: Array<() => unknown> = [
    () => junk(rng),
    () => 1,
    () => Number.NaN,
    () => (elem === 'f32' ? new Float64Array(len) : new Float32Array(len)),
    () => new Int32Array(len),
    () => new Uint8Array(len * 4),
    () => new Uint32Array(len),
    () => new Float32Array(len).map(() => 1) as unknown, // wrong only if elem is f64
    () => new DataView(new ArrayBuffer(len * 4)),
    () => (elem === 'f32' ? new Float32Array(Math.max(0, len - 1)) : new Float64Array(Math.max(0, len - 1))),
    () => (elem === 'f32' ? new Float32Array(len + 1) : new Float64Array(len + 1)),
    () => (elem === 'f32' ? new Float32Array(0) : new Float64Array(0)),
    () => (elem === 'f32' ? new Float32Array(len * 2).subarray(1, len) : new Float64Array(len * 2).subarray(1, len)),
    () => detach(elem === 'f32' ? new Float32Array(len) : new Float64Array(len)),
    () => Array.from({ length: len }, () => 0),
  ];
  let v = pick(rng, gens)();
  if (elem === 'f32' && v instanceof Float32Array && v.length === len && v.buffer.byteLength > 0)
    v = new Float64Array(len);
  if (elem === 'f64' && v instanceof Float64Array && v.length === len && v.buffer.byteLength > 0)
    v = new Float32Array(len);
  return v;
}

function badValue(rng: Rng, k: Kind, current: unknown): unknown {
  switch (k.kind) {
    case 'f32': {
      if (k.len === -1) return badScaleX(rng);
      const v = rng() < 0.15 && !k.optional ? pick(rng, [null, undefined]) : badTypedArray(rng, k.len, 'f32');
      // a shorter Float32Array is a right one when any length up to len is
      return k.upTo && v instanceof Float32Array && v.length >= 1 && v.length <= k.len && v.buffer.byteLength > 0
        ? new Float32Array(k.len + 1)
        : v;
    }
    case 'f64':
      return rng() < 0.15 && !k.optional ? pick(rng, [null, undefined]) : badTypedArray(rng, k.len, 'f64');
    case 'weights': {
      const w = new Float32Array(7);
      w[Math.floor(rng() * 7)] = pick(rng, [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
      return rng() < 0.3 ? w : rng() < 0.1 ? pick(rng, [null, undefined]) : badTypedArray(rng, 7, 'f32');
    }
    case 'size': {
      const v = current as number;
      return pick(rng, [
        0,
        -1,
        -v,
        0.5,
        v + 0.5,
        v + 1,
        v * 2 + 3,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        2 ** 53,
        2 ** 40 + 1,
        2 ** 62,
        -(2 ** 53),
        Number.MAX_VALUE,
        Number.MIN_VALUE,
        null,
        undefined,
        junk(rng),
      ]);
    }
    case 'positive':
      return pick(rng, [
        0,
        -0,
        -1,
        -1e-30,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        null,
        undefined,
        junk(rng),
      ]);
    case 'finite':
      return pick(rng, [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, null, undefined, junk(rng)]);
    case 'threads':
      return pick(rng, [
        0,
        -1,
        1.5,
        1025,
        2 ** 31,
        2 ** 53,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        null,
        undefined,
        junk(rng),
      ]);
    case 'length':
      return pick(rng, [
        0,
        -1,
        0.5,
        2 ** 40 + 1,
        2 ** 53,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        null,
        undefined,
        junk(rng),
      ]);
    case 'dtype':
      return pick(rng, ['float64', 'float16', 'Float32', 'int64', 'complex64', '', 0, 1, junk(rng)]);
    case 'handle':
      return pick(rng, [
        ...(k.optional ? [] : [null, undefined]),
        -1,
        0,
        0.5,
        1e9,
        2 ** 53,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        junk(rng),
        new Float32Array(4),
      ]);
  }
}

// ---------------------------------------------------------------- the functions and their valid calls

interface FnSpec {
  name: string;
  fn: (...args: unknown[]) => unknown;
  kinds: Kind[];
  valid: () => unknown[];
  /** how many leading arguments are required (fewer must throw) */
  required: number;
}

const R = 3;
const C = 5;
const N = R * C;
const LAYERS = 2;
const B = 2;
const L = 3;
const H = 4;
const NH = LAYERS * B * L * H;
const A = 2;
const NA = B * A * L * L;

function f32(n: number, seed: number): Float32Array {
  return ref.scores(mulberry32(seed), n);
}

const ALL_WEIGHTS = Float32Array.from([0.5, 1, 1, 1, 1, 1, 1]);

const cpuSpecs: FnSpec[] = [
  {
    name: 'rankingObjective',
    fn: addon.rankingObjective as (...a: unknown[]) => unknown,
    required: 12,
    kinds: [
      { kind: 'f32', len: N },
      { kind: 'f32', len: N }, // t: required because every weight is non-zero
      { kind: 'f32', len: N }, // y: required for the same reason
      { kind: 'f32', len: N, optional: true },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'weights' },
      { kind: 'positive' },
      { kind: 'finite' },
      { kind: 'finite' },
      { kind: 'f32', len: N, optional: true },
      { kind: 'f32', len: 8 },
    ],
    valid: () => [
      f32(N, 1),
      f32(N, 2),
      ref.gradedLabels(mulberry32(3), N, 2),
      ref.mask2d(mulberry32(4), R, C),
      R,
      C,
      ALL_WEIGHTS.slice(),
      2,
      1,
      1,
      new Float32Array(N),
      new Float32Array(8),
    ],
  },
  {
    name: 'hiddenMSE',
    fn: addon.hiddenMSE as (...a: unknown[]) => unknown,
    required: 9,
    kinds: [
      { kind: 'f32', len: NH },
      { kind: 'f32', len: NH },
      { kind: 'f32', len: B * L, optional: true },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'f32', len: NH, optional: true },
      { kind: 'f32', len: 1 },
    ],
    valid: () => [
      f32(NH, 5),
      f32(NH, 6),
      Float32Array.from([1, 1, 0, 1, 0, 0]),
      LAYERS,
      B,
      L,
      H,
      new Float32Array(NH),
      new Float32Array(1),
    ],
  },
  {
    name: 'attentionMSE',
    fn: addon.attentionMSE as (...a: unknown[]) => unknown,
    required: 8,
    kinds: [
      { kind: 'f32', len: NA },
      { kind: 'f32', len: NA },
      { kind: 'f32', len: B * L, optional: true },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'f32', len: NA, optional: true },
      { kind: 'f32', len: 1 },
    ],
    valid: () => [
      f32(NA, 7),
      f32(NA, 8),
      Float32Array.from([1, 0, 1, 1, 1, 0]),
      B,
      A,
      L,
      new Float32Array(NA),
      new Float32Array(1),
    ],
  },
  {
    name: 'scale',
    fn: addon.scale as (...a: unknown[]) => unknown,
    required: 3,
    // x's length defines n: a shorter/longer x is fine as long as out matches it, so x only gets
    // values that are not a usable Float32Array at all.
    kinds: [{ kind: 'f32', len: -1 }, { kind: 'finite' }, { kind: 'f32', len: 8 }],
    valid: () => [f32(8, 9), 0.5, new Float32Array(8)],
  },
  {
    name: 'setNumThreads',
    fn: addon.setNumThreads as (...a: unknown[]) => unknown,
    required: 1,
    kinds: [{ kind: 'threads' }],
    valid: () => [2],
  },
  {
    name: 'layerNorm',
    fn: addon.layerNorm as (...a: unknown[]) => unknown,
    required: 7,
    kinds: [
      { kind: 'f32', len: N },
      { kind: 'f32', len: C },
      { kind: 'f32', len: C },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'finite' },
      { kind: 'f32', len: N },
      { kind: 'f32', len: R, optional: true },
      { kind: 'f32', len: R, optional: true },
    ],
    valid: () => [
      f32(N, 31),
      f32(C, 32),
      f32(C, 33),
      R,
      C,
      1e-12,
      new Float32Array(N),
      new Float32Array(R),
      new Float32Array(R),
    ],
  },
  {
    name: 'layerNormGrad',
    fn: addon.layerNormGrad as (...a: unknown[]) => unknown,
    required: 10,
    kinds: [
      { kind: 'f32', len: N },
      { kind: 'f32', len: N },
      { kind: 'f32', len: C },
      { kind: 'f32', len: R },
      { kind: 'f32', len: R },
      { kind: 'size' },
      { kind: 'size' },
      { kind: 'f32', len: N },
      { kind: 'f32', len: C },
      { kind: 'f32', len: C },
    ],
    valid: () => [
      f32(N, 34),
      f32(N, 35),
      f32(C, 36),
      f32(R, 37),
      f32(R, 38),
      R,
      C,
      new Float32Array(N),
      new Float32Array(C),
      new Float32Array(C),
    ],
  },
  {
    name: 'gelu',
    fn: addon.gelu as (...a: unknown[]) => unknown,
    required: 2,
    // x's length defines n, as scale's does.
    kinds: [
      { kind: 'f32', len: -1 },
      { kind: 'f32', len: 8 },
    ],
    valid: () => [f32(8, 39), new Float32Array(8)],
  },
  {
    name: 'geluGrad',
    fn: addon.geluGrad as (...a: unknown[]) => unknown,
    required: 3,
    // dy's length defines n; two mutations cannot make all three lengths agree again.
    kinds: [
      { kind: 'f32', len: 8 },
      { kind: 'f32', len: 8 },
      { kind: 'f32', len: 8 },
    ],
    valid: () => [f32(8, 40), f32(8, 41), new Float32Array(8)],
  },
];

/** Random bad value for scale's x: anything that is not a non-empty, attached Float32Array. */
function badScaleX(rng: Rng): unknown {
  return pick(rng, [
    () => junk(rng),
    () => null,
    () => undefined,
    () => new Float64Array(8),
    () => new Int32Array(8),
    () => new Float32Array(0),
    () => detach(new Float32Array(8)),
    () => Array.from({ length: 8 }, () => 1),
    () => 3,
  ])();
}

/**
 * Builds one call: the valid arguments `args` with 1..2 of them replaced by bad values (`bad`, by
 * default badValue), or truncated to fewer than `required`.
 */
function mutate(
  rng: Rng,
  spec: { kinds: Kind[]; required: number },
  args: unknown[],
  bad: (k: Kind, current: unknown) => unknown = (k, current) => badValue(rng, k, current),
): { args: unknown[]; what: string } {
  if (rng() < 0.12) {
    const keep = Math.floor(rng() * spec.required);
    return { args: args.slice(0, keep), what: `only ${keep} arguments` };
  }
  const positions = [Math.floor(rng() * spec.kinds.length)];
  // A second bad value elsewhere sometimes; two sizes are never changed together (a different
  // factorization of the same element count would be a valid call).
  if (rng() < 0.3) {
    const p = Math.floor(rng() * spec.kinds.length);
    if (p !== positions[0] && !(spec.kinds[p].kind === 'size' && spec.kinds[positions[0]].kind === 'size'))
      positions.push(p);
  }
  const whats: string[] = [];
  for (const p of positions) {
    const v = bad(spec.kinds[p], args[p]);
    args[p] = v;
    whats.push(`arg ${p} = ${describeValue(v)}`);
  }
  return { args, what: whats.join(', ') };
}

function describeValue(v: unknown): string {
  if (ArrayBuffer.isView(v)) {
    const detached = v.buffer.byteLength === 0 && v.byteLength === 0 ? ' (maybe detached)' : '';
    return `${v.constructor.name}(${(v as unknown as { length?: number }).length ?? v.byteLength})${detached}`;
  }
  return show(v);
}

function expectAddonError(f: () => unknown, what: string): Error {
  let e: Error;
  try {
    e = thrown(f);
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  const isError = Object.prototype.toString.call(e) === '[object Error]' || e instanceof Error;
  if (!isError || typeof e.message !== 'string' || !/fused-distill/.test(e.message))
    throw new Error(`${what}: threw something that is not a fused-distill Error: ${show(e)}`);
  return e;
}

// ---------------------------------------------------------------- tests

describe('valid baseline calls succeed (so the fuzz failures come from the mutations)', () => {
  test.each(cpuSpecs.map((s) => [s.name, s] as [string, FnSpec]))('%s', (_name, spec) => {
    const saved = addon.getNumThreads();
    const r = spec.fn(...spec.valid());
    if (typeof r === 'number') expect(Number.isFinite(r)).toBe(true);
    addon.setNumThreads(saved);
  });
});

describe('seeded random wrong arguments: every call throws a fused-distill Error', () => {
  const CALLS = 800;
  test.each(cpuSpecs.map((s, i) => [s.name, s, i] as [string, FnSpec, number]))('%s', (_name, spec, i) => {
    const saved = addon.getNumThreads();
    const rng = mulberry32(0xf00d + i);
    const names = new Set<string>();
    for (let c = 0; c < CALLS; c++) {
      const { args, what } = mutate(rng, spec, spec.valid());
      const e = expectAddonError(() => spec.fn(...args), `${spec.name}(${what})`);
      names.add(e.name);
    }
    // wrong types are TypeErrors, wrong values RangeErrors
    for (const n of names) expect(['TypeError', 'RangeError', 'Error']).toContain(n);
    expect(addon.getNumThreads()).toBe(saved);
  });

  test('the addon still computes correct results after the rejected calls', () => {
    const rng = mulberry32(11);
    const s = ref.scores(rng, 40);
    const t = ref.scores(rng, 40);
    const y = ref.gradedLabels(rng, 40);
    const m = ref.mask2d(rng, 4, 10);
    const opts = { weights: { pairwiseRankNet: 1, distillKL: 0.5, scoreMSE: 2 }, temperature: 1.5 };
    const want = ref.rankingObjective(s, t, y, m, 4, 10, opts);
    const grad = new Float32Array(40);
    const got = rankingTotal(s, t, y, m, 4, 10, Float32Array.from([0, 1, 0, 0, 0.5, 0, 2]), 1.5, 1, 1, grad);
    ref.expectLossClose(got, want.total);
    ref.expectGradClose(grad, want.grad);
  });
});

describe('specific wrong arguments', () => {
  const s = f32(N, 21);
  const t = f32(N, 22);
  const y = ref.gradedLabels(mulberry32(23), N);
  const call = (over: Record<number, unknown>, count = 12) => {
    const args: unknown[] = [s, t, y, null, R, C, ALL_WEIGHTS, 1, 1, 1, null, new Float32Array(8)];
    for (const [k, v] of Object.entries(over)) args[Number(k)] = v;
    return () => (addon.rankingObjective as (...a: unknown[]) => unknown)(...args.slice(0, count));
  };

  test.each([
    ['s as a plain array', { 0: Array.from(s) }, /\bs\b/],
    ['s as a Float64Array', { 0: Float64Array.from(s) }, /\bs\b.*Float32Array/],
    ['s too short', { 0: s.subarray(1) }, /\bs\b/],
    ['t too long', { 1: new Float32Array(N + 1) }, /\bt\b/],
    ['y as a string', { 2: 'labels' }, /\by\b/],
    ['mask as an Int32Array', { 3: new Int32Array(N) }, /mask/],
    ['rows as a BigInt', { 4: BigInt(R) }, /rows/],
    ['cols as a symbol', { 5: Symbol('c') }, /cols/],
    ['rows = 2**53', { 4: 2 ** 53 }, /rows/],
    ['cols = NaN', { 5: Number.NaN }, /cols/],
    ['rows = -3', { 4: -3 }, /rows/],
    ['cols = Infinity', { 5: Number.POSITIVE_INFINITY }, /cols/],
    ['weights of length 6', { 6: new Float32Array(6) }, /weights/],
    ['weights as a plain object', { 6: { scoreMSE: 1 } }, /weights/],
    ['temperature 0', { 7: 0 }, /temperature/],
    ['temperature -1', { 7: -1 }, /temperature/],
    ['temperature "1"', { 7: '1' }, /temperature/],
    ['sigma NaN', { 8: Number.NaN }, /sigma/],
    ['margin Infinity', { 9: Number.POSITIVE_INFINITY }, /margin/],
    ['grad as a Float64Array', { 10: new Float64Array(N) }, /grad/],
    ['result as a Float64Array', { 11: new Float64Array(8) }, /result/],
    ['result of length 7', { 11: new Float32Array(7) }, /result/],
    ['detached s', { 0: detach(new Float32Array(N)) }, /\bs\b.*detached/],
    ['detached grad', { 10: detach(new Float32Array(N)) }, /grad/],
    ['detached result', { 11: detach(new Float32Array(8)) }, /result/],
  ] as Array<[string, Record<number, unknown>, RegExp]>)(
    'rankingObjective: %s -> Error naming the argument',
    (_w, over, re) => {
      const e = expectAddonError(call(over), 'call');
      expect(e.message).toMatch(re);
    },
  );

  test('missing arguments', () => {
    for (let k = 0; k < 12; k++) expectAddonError(call({}, k), `${k} arguments`);
    expectAddonError(() => (addon.hiddenMSE as (...a: unknown[]) => unknown)(), 'hiddenMSE()');
    expectAddonError(() => (addon.attentionMSE as (...a: unknown[]) => unknown)(), 'attentionMSE()');
    expectAddonError(() => (addon.scale as (...a: unknown[]) => unknown)(), 'scale()');
    expectAddonError(() => (addon.setNumThreads as (...a: unknown[]) => unknown)(), 'setNumThreads()');
  });

  test('an element count over the limit is a clean RangeError, not an allocation', () => {
    const e = expectAddonError(call({ 4: 2 ** 30, 5: 2 ** 30 }), 'huge');
    expect(e.name).toBe('RangeError');
    const h = expectAddonError(
      () => hiddenLoss(new Float32Array(4), new Float32Array(4), null, 2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20, null),
      'huge hidden',
    );
    expect(h.name).toBe('RangeError');
  });

  test('a SharedArrayBuffer-backed input either works (same result) or throws a clean Error', () => {
    const w = Float32Array.from([0, 0, 0, 0, 0, 0, 1]);
    const want = rankingTotal(s, t, null, null, R, C, w, 1, 1, 1, null);
    const shared = new Float32Array(new SharedArrayBuffer(N * 4));
    shared.set(s);
    let got: number | undefined;
    try {
      got = rankingTotal(shared, t, null, null, R, C, w, 1, 1, 1, null);
    } catch (e) {
      expect((e as Error).message).toMatch(/fused-distill/);
      return;
    }
    expect(got).toBe(want);
  });
});

describe('outputs that alias inputs are rejected (they would give silently wrong results)', () => {
  test('rankingObjective: grad === s, or grad overlapping t / y / mask', () => {
    const w = Float32Array.from([0, 1, 0, 0, 1, 0, 1]);
    const big = new Float32Array(4 * N);
    const s = big.subarray(0, N);
    const t = big.subarray(N, 2 * N);
    const y = big.subarray(2 * N, 3 * N);
    const m = big.subarray(3 * N, 4 * N).fill(1);
    s.set(f32(N, 31));
    t.set(f32(N, 32));
    y.set(ref.gradedLabels(mulberry32(33), N));
    expectAddonError(() => rankingTotal(s, t, y, m, R, C, w, 1, 1, 1, s), 'grad === s');
    for (const off of [N - 2, 2 * N - 1, 3 * N - 3])
      expectAddonError(
        () => rankingTotal(s, t, y, m, R, C, w, 1, 1, 1, big.subarray(off, off + N)),
        `grad at offset ${off}`,
      );
  });

  test('hiddenMSE: grad overlapping tokenMask throws (else the mask is overwritten mid-pass)', () => {
    // grad's first floats are the token mask: writing token 0's gradient (1, 2) turns the mask
    // [1, 0] into [1, 2], and token 1 would then be counted.
    const buf = new Float32Array(4);
    const mask = buf.subarray(0, 2);
    mask.set([1, 0]);
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = new Float32Array(4);
    expectAddonError(() => hiddenLoss(a, b, mask, 1, 1, 2, 2, buf), 'hidden grad over tokenMask');
  });

  test('attentionMSE: grad overlapping tokenMask throws', () => {
    const buf = new Float32Array(4);
    const mask = buf.subarray(0, 2);
    mask.set([1, 0]);
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = new Float32Array(4);
    expectAddonError(() => attentionLoss(a, b, mask, 1, 1, 2, buf), 'attention grad over tokenMask');
  });

  test('hiddenMSE / attentionMSE: grad === hs throws', () => {
    const a = f32(NH, 41);
    expectAddonError(() => hiddenLoss(a, f32(NH, 42), null, LAYERS, B, L, H, a), 'hidden grad === hs');
    const x = f32(NA, 43);
    expectAddonError(() => attentionLoss(f32(NA, 44), x, null, B, A, L, x), 'attention grad === at');
  });

  test('rankingObjective: result sharing memory with grad or with s throws', () => {
    const w = Float32Array.from([0, 0, 0, 0, 0, 0, 1]);
    const t = f32(4, 51);
    const buf = new ArrayBuffer(64);
    const grad = new Float32Array(buf, 0, 4);
    const result = new Float32Array(buf, 0, 8);
    expectAddonError(
      () => addon.rankingObjective(f32(4, 52), t, null, null, 2, 2, w, 1, 1, 1, grad, result),
      'result over grad',
    );
    const buf2 = new ArrayBuffer(64);
    const s2 = new Float32Array(buf2, 0, 4);
    s2.set([1, 2, 3, 4]);
    const result2 = new Float32Array(buf2, 0, 8);
    expectAddonError(() => addon.rankingObjective(s2, t, null, null, 2, 2, w, 1, 1, 1, null, result2), 'result over s');
  });

  test('scale: out partially overlapping x throws; out === x is allowed', () => {
    const buf = f32(10, 61);
    expectAddonError(() => addon.scale(buf.subarray(0, 8), 2, buf.subarray(2, 10)), 'partial overlap');
    const x = buf.subarray(0, 8);
    const before = Array.from(x);
    addon.scale(x, 2, x);
    expect(Array.from(x)).toEqual(before.map((v) => Math.fround(v * 2)));
  });
});

test('cuda.* query functions never throw and return the right types, whatever they are given', () => {
  expect(typeof addon.builtWithCuda()).toBe('boolean');
  expect(typeof addon.cuda.isAvailable()).toBe('boolean');
  expect(typeof addon.cuda.lastError()).toBe('string');
  expect(typeof (addon.getNumThreads as (...a: unknown[]) => number)('x', {})).toBe('number');
  expect(typeof (addon.cuda.isAvailable as (...a: unknown[]) => boolean)(Symbol('x'))).toBe('boolean');
});

// ---------------------------------------------------------------- cuda.*: the same on device buffers

// On a device (a GPU, or the host emulation in a child jest: tests/helpers/device.ts): calls made of
// buffers from cuda.alloc, each shown to succeed unchanged before its mutations must throw.
if (deviceTestsHere(__filename)) {
  const cuda = addon.cuda;
  const NO_DEVICE = /without CUDA|no CUDA device/;

  /** `put(x)`: a live float32 buffer holding x; `put(x, 'int32')`: an int32 buffer of x's length. */
  type Put = (x: Float32Array, dtype?: 'float32' | 'int32') => number;
  interface DeviceFnSpec {
    name: string;
    /** how many leading arguments are required (fewer must throw) */
    required: number;
    kinds: Kind[];
    /** a call that succeeds, each buffer exactly as large as the sizes ask (so a size made larger is wrong) */
    valid: (put: Put) => unknown[];
  }

  const deviceSpecs: DeviceFnSpec[] = [
    { name: 'alloc', required: 1, kinds: [{ kind: 'length' }, { kind: 'dtype' }], valid: () => [16, 'float32'] },
    {
      name: 'free',
      required: 1,
      kinds: [{ kind: 'handle', anySize: true }],
      valid: (put) => [put(new Float32Array(4))],
    },
    {
      name: 'size',
      required: 1,
      kinds: [{ kind: 'handle', anySize: true }],
      valid: (put) => [put(new Float32Array(4))],
    },
    {
      name: 'upload',
      required: 2,
      kinds: [{ kind: 'handle' }, { kind: 'f32', len: 4, upTo: true }],
      valid: (put) => [put(new Float32Array(4)), f32(4, 71)],
    },
    {
      name: 'download',
      required: 2,
      kinds: [{ kind: 'handle' }, { kind: 'f32', len: 4, upTo: true }],
      valid: (put) => [put(f32(4, 72)), new Float32Array(4)],
    },
    {
      name: 'rankingObjective',
      required: 12,
      kinds: [
        { kind: 'handle' },
        { kind: 'handle' },
        { kind: 'handle' },
        { kind: 'handle', optional: true },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'weights' },
        { kind: 'positive' },
        { kind: 'finite' },
        { kind: 'finite' },
        { kind: 'handle', optional: true },
        { kind: 'handle' },
      ],
      valid: (put) => [
        put(f32(N, 73)),
        put(f32(N, 74)),
        put(ref.gradedLabels(mulberry32(75), N, 2)),
        put(ref.mask2d(mulberry32(76), R, C)),
        R,
        C,
        ALL_WEIGHTS.slice(),
        2,
        1,
        1,
        put(new Float32Array(N)),
        put(new Float32Array(8)),
      ],
    },
    {
      name: 'hiddenMSE',
      required: 9,
      kinds: [
        { kind: 'handle' },
        { kind: 'handle' },
        { kind: 'handle', optional: true },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'handle', optional: true },
        { kind: 'handle' },
      ],
      valid: (put) => [
        put(f32(NH, 77)),
        put(f32(NH, 78)),
        put(Float32Array.from([1, 1, 0, 1, 0, 0])),
        LAYERS,
        B,
        L,
        H,
        put(new Float32Array(NH)),
        put(new Float32Array(1)),
      ],
    },
    {
      name: 'attentionMSE',
      required: 8,
      kinds: [
        { kind: 'handle' },
        { kind: 'handle' },
        { kind: 'handle', optional: true },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'size' },
        { kind: 'handle', optional: true },
        { kind: 'handle' },
      ],
      valid: (put) => [
        put(f32(NA, 79)),
        put(f32(NA, 80)),
        put(Float32Array.from([1, 0, 1, 1, 1, 0])),
        B,
        A,
        L,
        put(new Float32Array(NA)),
        put(new Float32Array(1)),
      ],
    },
    {
      name: 'scale',
      required: 3,
      // x's length defines n (as on the host): a shorter x with a matching out is a valid call.
      kinds: [{ kind: 'handle', anySize: true }, { kind: 'finite' }, { kind: 'handle' }],
      valid: (put) => [put(f32(8, 81)), 0.5, put(new Float32Array(8))],
    },
  ];

  describe('cuda.* with random wrong arguments throw a fused-distill Error (from calls that succeed unchanged)', () => {
    const fns = cuda as unknown as Record<string, (...a: unknown[]) => unknown>;
    const live = new Set<number>();
    const put: Put = (x, dtype = 'float32') => {
      const h = cuda.alloc(x.length, dtype);
      live.add(h);
      if (dtype === 'float32') cuda.upload(h, x);
      return h;
    };
    /** Frees every buffer the last call left (free's own call may have freed its argument). */
    function freeAll(): void {
      for (const h of live) {
        try {
          cuda.free(h);
        } catch (e) {
          expect((e as Error).message).toMatch(/not a live device buffer handle/);
        }
      }
      live.clear();
    }
    /** Device-only wrong handles: freed, one element too short, another dtype (unless any buffer will do). */
    function badHandle(rng: Rng, k: Extract<Kind, { kind: 'handle' }>, current: unknown): unknown {
      const n = typeof current === 'number' ? cuda.size(current) : 4;
      const gens: Array<() => unknown> = [
        () => badValue(rng, k, current),
        () => badValue(rng, k, current),
        () => {
          const h = cuda.alloc(n);
          cuda.free(h);
          return h;
        },
      ];
      if (!k.anySize) {
        gens.push(() => put(new Float32Array(n), 'int32'));
        if (n > 1) gens.push(() => put(new Float32Array(n - 1)));
      }
      return pick(rng, gens)();
    }
    function expectArgumentError(f: () => unknown, name: string, what: string): Error {
      const e = expectAddonError(f, what);
      // an argument check of this function, not "no device" and not a device failure
      if (
        NO_DEVICE.test(e.message) ||
        !e.message.startsWith(`fused-distill: cuda.${name}: `) ||
        !['TypeError', 'RangeError'].includes(e.name)
      )
        throw new Error(`${what}: threw ${e.name} "${e.message}", not an argument error of cuda.${name}`);
      return e;
    }

    afterEach(freeAll);

    test.each(deviceSpecs.map((s, i) => [s.name, s, i] as [string, DeviceFnSpec, number]))(
      'cuda.%s',
      (name, spec, i) => {
        const call = (args: unknown[]) => {
          const r = fns[name](...args);
          if (name === 'alloc' && typeof r === 'number') live.add(r);
          return r;
        };
        const buffersBefore = cuda.memoryStats().buffers;
        // the unmodified call succeeds, so that what fails below is the mutation
        call(spec.valid(put));
        cuda.synchronize();
        freeAll();
        const rng = mulberry32(0xcafe + i);
        for (let c = 0; c < 150; c++) {
          const { args, what } = mutate(rng, spec, spec.valid(put), (k, current) =>
            k.kind === 'handle' ? badHandle(rng, k, current) : badValue(rng, k, current),
          );
          expectArgumentError(() => call(args), name, `cuda.${name}(${what})`);
          freeAll();
        }
        // the rejected calls left no buffer behind (alloc's included)
        expect(cuda.memoryStats().buffers).toBe(buffersBefore);
      },
    );
  });
}
