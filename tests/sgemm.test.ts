// addon.sgemm against a float64 reference on seeded random inputs: every transpose combination, odd
// shapes (edge tiles, several k slices, k = 0), batches with broadcast and explicit offsets, 1 and 2
// threads (bit-identical), every ISA path (AVX-512, AVX2, portable) and every bad argument.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { addon } from './helpers/addon';
import { expectError } from './helpers/errors';
import { makeGemmCase, runGemm, type GemmCase, type GemmSpec } from './helpers/gemm_cases';

type Case = GemmCase;
type Spec = GemmSpec;
let seed = 1;
const makeCase = (spec: Spec): Case => makeGemmCase(spec, seed++);

/** float64 op(a) op(b) per batch entry and the error scale sum_p |op(a)[i,p]| |op(b)[p,j]|. */
function reference(c: Case): { ref: Float64Array; scale: Float64Array } {
  const { batch, m, n, k } = c;
  const ref = new Float64Array(batch * m * n);
  const scale = new Float64Array(batch * m * n);
  const opA = new Float64Array(m * k); // op(a[bi]) row-major, op(b[bi]) transposed: contiguous dots
  const opBt = new Float64Array(n * k);
  for (let bi = 0; bi < batch; ++bi) {
    const ao = c.aOffsets ? c.aOffsets[bi] : c.a.length === batch * m * k ? bi * m * k : 0;
    const bo = c.bOffsets ? c.bOffsets[bi] : c.b.length === batch * k * n ? bi * k * n : 0;
    for (let i = 0; i < m; ++i)
      for (let p = 0; p < k; ++p) opA[i * k + p] = c.a[ao + (c.transA ? p * m + i : i * k + p)];
    for (let j = 0; j < n; ++j)
      for (let p = 0; p < k; ++p) opBt[j * k + p] = c.b[bo + (c.transB ? j * k + p : p * n + j)];
    dots(opA, opBt, m, n, k, ref, scale, bi * m * n);
  }
  return { ref, scale };
}

// The hot loop on its own, and no Math.abs: in jest's sandbox that call made this loop ~70x slower.
function dots(
  opA: Float64Array,
  opBt: Float64Array,
  m: number,
  n: number,
  k: number,
  ref: Float64Array,
  scale: Float64Array,
  base: number,
): void {
  for (let i = 0; i < m; ++i)
    for (let j = 0; j < n; ++j) {
      let s = 0;
      let sa = 0;
      for (let p = 0, x = i * k, y = j * k; p < k; ++p, ++x, ++y) {
        const v = opA[x] * opBt[y];
        s += v;
        sa += v < 0 ? -v : v;
      }
      ref[base + i * n + j] = s;
      scale[base + i * n + j] = sa;
    }
}

/** Same bits (NaN included), without jest's slow deep equality on big arrays. */
function expectSameBits(label: string, x: Float32Array, y: Float32Array): void {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
  expect(u.length).toBe(v.length);
  for (let i = 0; i < u.length; ++i)
    if (u[i] !== v[i]) throw new Error(`${label}: element ${i} differs: ${x[i]} vs ${y[i]}`);
}

// Keyed by the a operand: the 1- and 2-thread copies of a case share it.
const references = new Map<Float32Array, { ref: Float64Array; scale: Float64Array }>();
function expectClose(c: Case, got: Float32Array): void {
  if (!references.has(c.a)) references.set(c.a, reference(c));
  const { ref, scale } = references.get(c.a)!;
  // A float32 dot product of length k (FMA or not) is within about k * 2^-24 * sum |x y| of the truth.
  const tol = (c.k + 2) * 2 ** -24;
  for (let i = 0; i < ref.length; ++i) {
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= tol * scale[i]))
      throw new Error(
        `${c.label}: element ${i} is ${got[i]}, float64 gives ${ref[i]} ` + `(error ${err}, allowed ${tol * scale[i]})`,
      );
  }
}

const run = (c: Case): Float32Array => runGemm(c);

// m x n x k, chosen to hit edge tiles of every kernel (14 x 32, 6 x 16, 4 x 16), several k slices
// (k > 256), a single element, and k = 0.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [17, 33, 5],
  [130, 7, 300],
  [15, 33, 257],
  [29, 65, 513],
  [64, 64, 64],
  [3, 200, 17],
  [100, 47, 0],
];
const TRANS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

const CASES: Case[] = [];
for (const [m, n, k] of SHAPES)
  for (const [transA, transB] of TRANS) CASES.push(makeCase({ m, n, k, transA, transB, threads: 1 }));
const BATCHED: Spec[] = [
  { batch: 5, m: 20, n: 30, k: 40, aMode: 'batched', bMode: 'broadcast' },
  { batch: 4, m: 17, n: 9, k: 33, aMode: 'broadcast', bMode: 'batched', transA: true },
  { batch: 6, m: 13, n: 35, k: 21, aMode: 'offsets', bMode: 'offsets', transB: true },
  { batch: 3, m: 31, n: 18, k: 290, aMode: 'offsets', bMode: 'batched', transA: true, transB: true },
  { batch: 64, m: 32, n: 40, k: 16, transB: true }, // attention-like: many small products
];
for (const s of BATCHED) CASES.push(makeCase(s));
// Big enough to be cut into several units per thread, A blocks and k slices; the same inputs on
// 1 and 2 threads must give the same bits.
const THREADED: Spec[] = [
  { m: 300, n: 520, k: 270 },
  { m: 515, n: 130, k: 300, transA: true, transB: true },
  { batch: 8, m: 64, n: 64, k: 64, bMode: 'broadcast' },
];
const THREAD_PAIRS: [Case, Case][] = THREADED.map((s) => {
  const one = makeCase({ ...s, threads: 1 });
  const two: Case = { ...one, threads: 2, label: one.label.replace('1thr', '2thr') };
  CASES.push(one, two);
  return [one, two];
});

let savedThreads = 1;
beforeAll(() => {
  savedThreads = addon.getNumThreads();
});
afterAll(() => addon.setNumThreads(savedThreads));

describe(`default path (${addon.gemmIsa()})`, () => {
  test.each(CASES.map((c) => [c.label, c]))('%s', (_label, c) => {
    expectClose(c, run(c as Case));
  });

  test('1 and 2 threads give bit-identical results', () => {
    for (const [one, two] of THREAD_PAIRS) expectSameBits(two.label, run(two), run(one));
  });

  test('k = 0 with empty operands gives zeros', () => {
    const c = new Float32Array(6).fill(Number.NaN);
    addon.sgemm(new Float32Array(0), new Float32Array(0), c, 2, 1, 3, 0, false, true, null, null);
    expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('gemmIsa names a path', () => {
    expect(['amxbf16', 'avx512bf16', 'avx512', 'avx2', 'scalar']).toContain(addon.gemmIsa());
  });
});

// FUSED_DISTILL_GEMM_ISA is read from the real environment, which jest's process.env does not reach:
// each path runs the same cases in a child process and the results are checked here. A path this CPU
// lacks would fall back silently to a lower one: its tests are skipped, saying so.
const GEMM_RANK: Record<string, number> = { scalar: 0, avx2: 1, avx512: 2, avx512bf16: 3, amxbf16: 4 };
/** The best path this CPU has: what the addon takes with FUSED_DISTILL_GEMM_ISA unset. */
function bestGemmIsa(): string {
  const env = { ...process.env };
  delete env.FUSED_DISTILL_GEMM_ISA;
  const child = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'sgemm_child.js')], {
    env,
    encoding: 'utf8',
    timeout: 100000,
  });
  if (child.status !== 0) throw new Error(`sgemm_child.js failed (${child.status}): ${child.stderr}`);
  return (JSON.parse(child.stdout) as { isa: string }).isa;
}
const BEST_GEMM_ISA = bestGemmIsa();
const ISA_CASES = ['avx512bf16', 'avx512', 'avx2', 'scalar'].map((isa) =>
  GEMM_RANK[isa] > GEMM_RANK[BEST_GEMM_ISA]
    ? [isa, `: not exercised, this CPU's best path is ${BEST_GEMM_ISA}`]
    : [isa, ''],
);

describe.each(ISA_CASES)('FUSED_DISTILL_GEMM_ISA=%s (child process)%s', (isa, notHere) => {
  const test = notHere ? global.test.skip : global.test;
  let dir = '';
  let used = '';
  beforeAll(() => {
    if (notHere) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-sgemm-'));
    const meta = CASES.map((c, i) => {
      fs.writeFileSync(path.join(dir, `${i}.a.f32`), Buffer.from(c.a.buffer, c.a.byteOffset, c.a.byteLength));
      fs.writeFileSync(path.join(dir, `${i}.b.f32`), Buffer.from(c.b.buffer, c.b.byteOffset, c.b.byteLength));
      const { a: _a, b: _b, ...rest } = c;
      return rest;
    });
    fs.writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(meta));
    const child = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'sgemm_child.js'), dir], {
      env: { ...process.env, FUSED_DISTILL_GEMM_ISA: isa },
      encoding: 'utf8',
      timeout: 100000,
    });
    if (child.status !== 0) throw new Error(`child failed (${child.status}): ${child.stderr}`);
    used = (JSON.parse(child.stdout) as { isa: string }).isa;
  });
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  const result = (i: number): Float32Array => {
    const buf = fs.readFileSync(path.join(dir, `${i}.c.f32`));
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  };

  test('the path taken is the one asked for', () => {
    expect(used).toBe(isa);
  });

  test('every case matches float64', () => {
    CASES.forEach((c, i) => expectClose(c, result(i)));
  });

  test('1 and 2 threads give bit-identical results', () => {
    for (const [one, two] of THREAD_PAIRS)
      expectSameBits(two.label, result(CASES.indexOf(two)), result(CASES.indexOf(one)));
  });
});

describe('bad arguments throw a TypeError or RangeError naming the argument', () => {
  // A valid call: batch 2, m 2, n 3, k 4; a batched, b broadcast.
  const a = () => new Float32Array(2 * 2 * 4);
  const b = () => new Float32Array(4 * 3);
  const c = () => new Float32Array(2 * 2 * 3);
  type Args = Parameters<typeof addon.sgemm>;
  const valid = (): Args => [a(), b(), c(), 2, 2, 3, 4, false, false, null, null];
  const call = (...args: unknown[]) => (addon.sgemm as unknown as (...x: unknown[]) => void)(...args);
  /** The valid arguments with some replaced: { index: value }. */
  const withArgs = (changes: Record<number, unknown>): unknown[] => {
    const args: unknown[] = valid();
    for (const [i, v] of Object.entries(changes)) args[Number(i)] = v;
    return args;
  };
  const detached = () => {
    const buf = new ArrayBuffer(64);
    const view = new Float32Array(buf);
    structuredClone(buf, { transfer: [buf] });
    return view;
  };
  const f64 = (...x: number[]) => new Float64Array(x);

  test('the valid call works (so the failures below come from the bad argument)', () => {
    expect(() => call(...valid())).not.toThrow();
    expect(() => call(...withArgs({ 9: f64(8, 3), 10: f64(0, 0) }))).not.toThrow();
  });

  const T = 'TypeError';
  const R = 'RangeError';
  const cases: [string, () => unknown[], string, RegExp][] = [
    ['too few arguments', () => valid().slice(0, 10), T, /expected 11 arguments, got 10/],
    ['a is not a Float32Array', () => withArgs({ 0: new Float64Array(16) }), T, /\ba must be a Float32Array\b/],
    ['a is a plain array', () => withArgs({ 0: Array.from(a()) }), T, /\ba must be a Float32Array\b/],
    ['a is null', () => withArgs({ 0: null }), T, /\ba must be a Float32Array\b/],
    [
      'a has a wrong length',
      () => withArgs({ 0: new Float32Array(15) }),
      R,
      /\ba must be a Float32Array of length batch\*m\*k = 16 or m\*k = 8 .*got length 15/,
    ],
    [
      'a (transposed) has a wrong length',
      () => withArgs({ 0: new Float32Array(9), 7: true }),
      R,
      /\ba must .*batch\*k\*m = 16 or k\*m = 8/,
    ],
    [
      'b has a wrong length',
      () => withArgs({ 1: new Float32Array(13) }),
      R,
      /\bb must be a Float32Array of length batch\*k\*n = 24 or k\*n = 12 .*got length 13/,
    ],
    ['b is detached', () => withArgs({ 1: detached() }), T, /\bb must be a Float32Array.*detached/],
    [
      'c has a wrong length',
      () => withArgs({ 2: new Float32Array(6) }),
      R,
      /\bc must be a Float32Array of length 12, got length 6/,
    ],
    ['c is not a Float32Array', () => withArgs({ 2: new Int32Array(12) }), T, /\bc must be a Float32Array/],
    ['batch is 0', () => withArgs({ 3: 0 }), R, /\bbatch must be an integer in \[1, 2\^40\]/],
    ['m is fractional', () => withArgs({ 4: 1.5 }), R, /\bm must be an integer/],
    ['n is a string', () => withArgs({ 5: '3' }), T, /\bn must be a number/],
    ['k is negative', () => withArgs({ 6: -1 }), R, /\bk must be an integer in \[0, 2\^40\]/],
    ['k is NaN', () => withArgs({ 6: Number.NaN }), R, /\bk must be finite/],
    ['m * k is too large', () => withArgs({ 4: 2 ** 39 }), R, /\ba has more than 2\^40 elements/],
    ['transA is a number', () => withArgs({ 7: 1 }), T, /\btransA must be a boolean/],
    ['transB is missing', () => withArgs({ 8: undefined }), T, /\btransB must be a boolean/],
    [
      'aOffsets is a Float32Array',
      () => withArgs({ 9: new Float32Array(2) }),
      T,
      /\baOffsets must be a Float64Array of length 2 \(or null\)/,
    ],
    [
      'aOffsets has a wrong length',
      () => withArgs({ 9: f64(0, 0, 0) }),
      R,
      /\baOffsets must be a Float64Array of length 2/,
    ],
    ['aOffsets is fractional', () => withArgs({ 9: f64(0, 0.5) }), R, /\baOffsets\[1\] must be an integer in \[0, 8\]/],
    ['aOffsets is negative', () => withArgs({ 9: f64(-1, 0) }), R, /\baOffsets\[0\] must be an integer/],
    [
      'aOffsets runs past a',
      () => withArgs({ 9: f64(0, 9) }),
      R,
      /\baOffsets\[1\] must be an integer in \[0, 8\] \(a has 16 elements, m\*k = 8 per entry\), got 9/,
    ],
    ['aOffsets is NaN', () => withArgs({ 9: f64(Number.NaN, 0) }), R, /\baOffsets\[0\] must be an integer/],
    ['bOffsets runs past b', () => withArgs({ 10: f64(0, 1) }), R, /\bbOffsets\[1\] must be an integer in \[0, 0\]/],
    [
      'b is shorter than one entry with bOffsets',
      () => withArgs({ 1: new Float32Array(5), 10: f64(0, 0) }),
      R,
      /\bb must hold at least k\*n = 12 elements when bOffsets is given, got length 5/,
    ],
  ];
  test.each(cases)('%s', (_name, args, name, pattern) => {
    const e = expectError(() => call(...args()), pattern, name);
    expect(e.message).toMatch(/^fused-distill: sgemm: /);
  });

  test('c overlapping a or b is rejected; adjacent views are fine', () => {
    const buf = new Float32Array(64);
    const A = buf.subarray(0, 16);
    const B = buf.subarray(16, 28);
    const overlap = /\bc must not overlap/;
    expectError(() => call(A, B, buf.subarray(10, 22), 2, 2, 3, 4, false, false, null, null), overlap, 'RangeError');
    expectError(() => call(A, B, buf.subarray(20, 32), 2, 2, 3, 4, false, false, null, null), overlap, 'RangeError');
    expect(() => call(A, B, buf.subarray(28, 40), 2, 2, 3, 4, false, false, null, null)).not.toThrow();
  });

  test('the addon still works after every rejection', () => {
    const x = makeCase({ m: 9, n: 11, k: 13, threads: 2 });
    expectClose(x, run(x));
  });
});
