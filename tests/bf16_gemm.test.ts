// addon.sgemm with precision 'bf16' (operands rounded to bfloat16, fp32 accumulation) against float64
// references: on the rounded operands (only fp32 accumulation error allowed) and on the fp32 ones
// (the bf16 rounding bound); odd shapes, every transpose, batches with broadcast and offsets; 1 and
// 2 threads bit-identical; every ISA path bit-identical to the default one (AVX512-BF16 against the
// portable path, in child processes); NaN/Inf/denormal rules; the tfjs flag and its errors.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { registerNativeBackend } from '../src/backend/native/register';
import { UsageError, useBackend } from '../src/cli/common';
import { MATMUL_PRECISION_FLAG, bf16PathNote, matmulPrecision, setMatmulPrecision } from '../src/backend/precision';
import { addon } from './helpers/addon';
import { expectError } from './helpers/errors';
import { makeGemmCase, runGemm, type GemmCase, type GemmSpec } from './helpers/gemm_cases';

type Case = GemmCase;
type Spec = GemmSpec;
let seed = 101;
const makeCase = (spec: Spec): Case => makeGemmCase(spec, seed++);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7f800000) === 0) u32[0] = u & 0x80000000;
  else if ((u & 0x7fffffff) > 0x7f800000) u32[0] = (u | 0x00400000) & 0xffff0000;
  else u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

/** float64 products of op(a) op(b), of the bf16-rounded operands and of the fp32 ones, with sum |x y|. */
function references(c: Case) {
  const { batch, m, n, k } = c;
  const size = batch * m * n;
  const r = { ref16: new Float64Array(size), ref32: new Float64Array(size), scale: new Float64Array(size) };
  const opA = new Float64Array(m * k);
  const opB = new Float64Array(n * k);
  const opA16 = new Float64Array(m * k);
  const opB16 = new Float64Array(n * k);
  for (let bi = 0; bi < batch; ++bi) {
    const ao = c.aOffsets ? c.aOffsets[bi] : c.a.length === batch * m * k ? bi * m * k : 0;
    const bo = c.bOffsets ? c.bOffsets[bi] : c.b.length === batch * k * n ? bi * k * n : 0;
    for (let i = 0; i < m; ++i)
      for (let p = 0; p < k; ++p) opA[i * k + p] = c.a[ao + (c.transA ? p * m + i : i * k + p)];
    for (let j = 0; j < n; ++j)
      for (let p = 0; p < k; ++p) opB[j * k + p] = c.b[bo + (c.transB ? j * k + p : p * n + j)];
    for (let x = 0; x < m * k; ++x) opA16[x] = bf16(opA[x]);
    for (let x = 0; x < n * k; ++x) opB16[x] = bf16(opB[x]);
    for (let i = 0; i < m; ++i)
      for (let j = 0; j < n; ++j) {
        let s16 = 0;
        let s32 = 0;
        let sa = 0;
        for (let p = 0, x = i * k, y = j * k; p < k; ++p, ++x, ++y) {
          const v = opA[x] * opB[y];
          s32 += v;
          sa += v < 0 ? -v : v; // no Math.abs: slow in jest's sandbox
          s16 += opA16[x] * opB16[y];
        }
        const o = bi * m * n + i * n + j;
        r.ref16[o] = s16;
        r.ref32[o] = s32;
        r.scale[o] = sa;
      }
  }
  return r;
}

const run = (c: Case, precision: 'fp32' | 'bf16' = 'bf16', threads = c.threads): Float32Array =>
  runGemm(c, precision, threads);

function expectSameBits(label: string, x: Float32Array, y: Float32Array): void {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
  expect(u.length).toBe(v.length);
  for (let i = 0; i < u.length; ++i)
    if (u[i] !== v[i]) throw new Error(`${label}: element ${i} differs: ${x[i]} vs ${y[i]}`);
}

const refCache = new Map<Case, ReturnType<typeof references>>();
/**
 * |C - C64(bf16 operands)| <= (k + 2) 2^-24 sum|x y| (fp32 accumulation) plus, for flushed
 * denormal partial sums, k 2^-126; |C - C64(fp32 operands)| <= (2 2^-8 + 2^-16) sum|x y| on top.
 */
function expectBf16Close(c: Case, got: Float32Array): void {
  if (!refCache.has(c)) refCache.set(c, references(c));
  const { ref16, ref32, scale } = refCache.get(c)!;
  const acc = (c.k + 2) * 2 ** -24;
  const flush = c.k * 2 ** -126;
  const rounding = 2 * 2 ** -8 + 2 ** -16;
  for (let i = 0; i < got.length; ++i) {
    const e16 = Math.abs(got[i] - ref16[i]);
    const e32 = Math.abs(got[i] - ref32[i]);
    if (!(e16 <= acc * scale[i] + flush))
      throw new Error(`${c.label}: element ${i} is ${got[i]}, float64 on bf16 operands ${ref16[i]} (error ${e16})`);
    if (!(e32 <= (acc + rounding) * scale[i] + flush))
      throw new Error(`${c.label}: element ${i} is ${got[i]}, float64 on fp32 operands ${ref32[i]} (error ${e32})`);
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 1, 2],
  [9, 33, 1],
  [17, 33, 5],
  [130, 7, 300],
  [15, 47, 513],
  [29, 65, 1031], // three k slices of 512 / 512 / 7: an odd last slice
  [64, 64, 64],
  [3, 200, 17],
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
for (const s of [
  { batch: 5, m: 20, n: 30, k: 41, aMode: 'batched', bMode: 'broadcast' },
  { batch: 4, m: 17, n: 9, k: 33, aMode: 'broadcast', bMode: 'batched', transA: true },
  { batch: 6, m: 13, n: 35, k: 21, aMode: 'offsets', bMode: 'offsets', transB: true },
  { batch: 3, m: 31, n: 18, k: 291, aMode: 'offsets', bMode: 'batched', transA: true, transB: true },
  { batch: 32, m: 32, n: 40, k: 16, transB: true },
] as Spec[])
  CASES.push(makeCase(s));
// Tiny operands: partial sums near 2^-126 exercise the flush to zero (and -0) in every path.
for (const [transA, transB] of TRANS) CASES.push(makeCase({ m: 23, n: 37, k: 45, transA, transB, scale: 1e-19 }));
const THREADED: Case[] = [
  makeCase({ m: 300, n: 520, k: 1100 }),
  makeCase({ m: 515, n: 130, k: 301, transA: true, transB: true }),
  makeCase({ batch: 8, m: 64, n: 64, k: 63, bMode: 'broadcast' }),
];
CASES.push(...THREADED);

let savedThreads = 1;
beforeAll(() => {
  savedThreads = addon.getNumThreads();
});
afterAll(() => addon.setNumThreads(savedThreads));

describe(`bf16 on the default path (${addon.gemmIsa()})`, () => {
  test.each(CASES.filter((c) => c.k <= 600).map((c) => [c.label, c]))('%s', (_label, c) => {
    expectBf16Close(c as Case, run(c as Case));
  });

  test('bf16 is not fp32: the products differ by about the bf16 rounding, not by fp32 accumulation', () => {
    const c = CASES.find((x) => x.m === 64 && x.k === 64)!;
    const { ref16, scale } = references(c);
    const fp32 = run(c, 'fp32');
    let far = 0; // fp32 results outside the bf16 result's fp32-accumulation bound
    for (let i = 0; i < fp32.length; ++i) if (Math.abs(fp32[i] - ref16[i]) > (c.k + 2) * 2 ** -24 * scale[i]) ++far;
    expect(far).toBeGreaterThan(fp32.length / 2);
  });

  test('1 and 2 threads give bit-identical results', () => {
    for (const c of THREADED) expectSameBits(c.label, run(c, 'bf16', 2), run(c, 'bf16', 1));
  });

  test('a large product (several k slices, an odd last one) matches float64', () => {
    expectBf16Close(THREADED[0], run(THREADED[0], 'bf16', 2));
  });

  test('NaN and Inf propagate; bf16 overflow is Inf; fp32 denormal operands read as zero', () => {
    const m = 4;
    const n = 33;
    const k = 5;
    const a = new Float32Array(m * k).fill(1);
    const b = new Float32Array(k * n).fill(1);
    a[0 * k + 2] = Number.NaN; // row 0: NaN
    a[1 * k + 4] = Number.POSITIVE_INFINITY; // row 1: Inf, but Inf * 0 in column 7 is NaN
    b[4 * n + 7] = 0;
    a[2 * k + 0] = 3.4e38; // row 2: rounds to the bf16 Inf
    a.fill(0, 3 * k, 4 * k); // row 3: 1e30 x a denormal in column 9, zeros elsewhere
    a[3 * k + 1] = 1e30;
    b[1 * n + 9] = 1e-40;
    const c = new Float32Array(m * n);
    addon.sgemm(a, b, c, 1, m, n, k, false, false, null, null, 'bf16');
    for (let j = 0; j < n; ++j) expect(c[j]).toBeNaN();
    for (let j = 0; j < n; ++j) expect(c[n + j]).toBe(j === 7 ? Number.NaN : Number.POSITIVE_INFINITY);
    for (let j = 0; j < n; ++j) expect(c[2 * n + j]).toBe(Number.POSITIVE_INFINITY);
    expect(c[3 * n + 9]).toBe(0); // the denormal read as zero (fp32 gives about 1e-10)
    addon.sgemm(a, b, c, 1, m, n, k, false, false, null, null, 'fp32');
    expect(Number.isFinite(c[2 * n])).toBe(true);
    expect(c[3 * n + 9]).toBeGreaterThan(0);
  });

  test('bf16 rounding is to nearest even, on both operands', () => {
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even gives 1; 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
    const c = new Float32Array(2);
    addon.sgemm(
      Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8),
      Float32Array.of(1 + 2 ** -8),
      c,
      1,
      2,
      1,
      1,
      false,
      false,
      null,
      null,
      'bf16',
    );
    expect(Array.from(c)).toEqual([1, 1 + 2 ** -6]);
  });

  test('the precision argument is checked', () => {
    const args = [new Float32Array(4), new Float32Array(4), new Float32Array(4), 1, 2, 2, 2, false, false, null, null];
    const call = (p: unknown) => (addon.sgemm as unknown as (...x: unknown[]) => void)(...args, p);
    expectError(() => call('fp16'), /precision must be 'fp32' or 'bf16', got 'fp16'/, 'RangeError');
    expectError(() => call('tf32'), /'fp32' or 'bf16'.*device only/, 'RangeError');
    expectError(() => call(16), /precision must be 'fp32' or 'bf16'/, 'TypeError');
    expect(() => call(undefined)).not.toThrow();
  });
});

// FUSED_DISTILL_GEMM_ISA is read from the real environment: each path runs the cases in a child
// process (tests/helpers/sgemm_child.js), whose results must equal the vdpbf16ps path's bit for bit
// (the default path's, except on an AMX CPU: its tiles sum in another order, checked against float64
// by the tests above, which run on the default path).
const RANK: Record<string, number> = { scalar: 0, avx2: 1, avx512: 2, avx512bf16: 3, amxbf16: 4 };
function childRun(isa: string | null, dir: string): string {
  const env = { ...process.env };
  if (isa) env.FUSED_DISTILL_GEMM_ISA = isa;
  else delete env.FUSED_DISTILL_GEMM_ISA;
  const child = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'sgemm_child.js'), dir], {
    env,
    encoding: 'utf8',
    timeout: 100000,
  });
  if (child.status !== 0) throw new Error(`sgemm_child.js failed (${child.status}): ${child.stderr}`);
  return (JSON.parse(child.stdout) as { isa: string }).isa;
}

describe("every ISA path below AMX gives the vdpbf16ps path's bits (child processes)", () => {
  const ISA_CASES = CASES.filter((c) => c.k <= 600 || c === THREADED[0]);
  let dir = '';
  let best = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-bf16-'));
    const meta = ISA_CASES.map((c, i) => {
      fs.writeFileSync(path.join(dir, `${i}.a.f32`), Buffer.from(c.a.buffer, c.a.byteOffset, c.a.byteLength));
      fs.writeFileSync(path.join(dir, `${i}.b.f32`), Buffer.from(c.b.buffer, c.b.byteOffset, c.b.byteLength));
      const { a: _a, b: _b, ...rest } = c;
      return { ...rest, precision: 'bf16' };
    });
    fs.writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(meta));
    best = childRun(null, dir);
    if (best === 'amxbf16') expect(childRun('avx512bf16', dir)).toBe('avx512bf16');
    fs.mkdirSync(path.join(dir, 'best'));
    ISA_CASES.forEach((_c, i) => fs.renameSync(path.join(dir, `${i}.c.f32`), path.join(dir, 'best', `${i}.c.f32`)));
  });
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  const read = (file: string): Float32Array => {
    const buf = fs.readFileSync(path.join(dir, file));
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  };

  test.each(['avx512bf16', 'avx512', 'avx2', 'scalar'])('%s', (isa) => {
    if (RANK[isa] > RANK[best]) {
      console.warn(`FUSED_DISTILL_GEMM_ISA=${isa}: not exercised, this CPU's best path is ${best}`);
      return;
    }
    expect(childRun(isa, dir)).toBe(isa);
    ISA_CASES.forEach((c, i) => {
      const got = read(`${i}.c.f32`);
      expectSameBits(`${isa} ${c.label}`, got, read(path.join('best', `${i}.c.f32`)));
      expectBf16Close(c, got);
    });
  });
});

describe('the FUSED_DISTILL_MATMUL_PRECISION flag on the native backend', () => {
  beforeAll(async () => {
    registerNativeBackend();
    await tf.setBackend('native');
  });
  afterEach(() => tf.env().set(MATMUL_PRECISION_FLAG, 'fp32'));

  test('bf16 makes tf.matMul the addon bf16 product (fp32 by default)', () => {
    const c = makeCase({ m: 37, n: 45, k: 70, threads: 2 });
    const a = tf.tensor2d(c.a, [c.m, c.k]);
    const b = tf.tensor2d(c.b, [c.k, c.n]);
    expect(matmulPrecision()).toBe('fp32');
    const fp32 = tf.matMul(a, b).dataSync() as Float32Array;
    expectSameBits('fp32', fp32, run(c, 'fp32'));
    tf.env().set(MATMUL_PRECISION_FLAG, 'bf16');
    expect(matmulPrecision('native')).toBe('bf16');
    const bf = tf.matMul(a, b).dataSync() as Float32Array;
    expectSameBits('bf16', bf, run(c, 'bf16'));
    expectBf16Close(c, bf);
    // fused (bias + relu) products follow the flag too
    const fused = tf.fused.matMul({ a, b, bias: tf.zeros([c.n]), activation: 'relu' }).dataSync();
    for (let i = 0; i < bf.length; ++i) expect(fused[i]).toBe(Math.max(bf[i], 0));
    tf.dispose([a, b]);
  });

  test('an unknown value is refused naming the allowed ones (and the last good value stays)', () => {
    tf.env().set(MATMUL_PRECISION_FLAG, 'bf16');
    expectError(
      () => tf.env().set(MATMUL_PRECISION_FLAG, 'fp16'),
      /FUSED_DISTILL_MATMUL_PRECISION must be 'fp32', 'bf16' or 'tf32'.*got "fp16"/,
    );
    expect(tf.env().get(MATMUL_PRECISION_FLAG)).toBe('bf16');
  });

  test("'tf32' is a cuda precision: a product on native says so", () => {
    tf.env().set(MATMUL_PRECISION_FLAG, 'tf32');
    expectError(
      () => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])),
      /must be 'fp32' or 'bf16' on the native backend, got "tf32"/,
    );
    expectError(() => setMatmulPrecision('tf32', 'native'), /precision must be 'fp32' or 'bf16' on the native backend/);
    expectError(() => setMatmulPrecision('bf16', 'cpu'), /only this package's native and cuda backends/);
  });

  test('the CLI sets the flag (--precision), refusing what the backend lacks', async () => {
    await useBackend('native', undefined, 'bf16');
    expect(matmulPrecision()).toBe('bf16');
    const e = await useBackend('native', undefined, 'tf32').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect((e as Error).message).toMatch(/--precision: precision must be 'fp32' or 'bf16' on the native backend/);
    expect(matmulPrecision()).toBe('bf16');
  });

  test('bf16 without AVX512-BF16 names the path that runs instead', () => {
    expect(bf16PathNote('fp32')).toBeNull();
    const note = bf16PathNote('bf16');
    if (['amxbf16', 'avx512bf16'].includes(addon.gemmIsa())) expect(note).toBeNull();
    else expect(note).toMatch(/no AVX512-BF16; the portable bf16 path runs/);
  });
});
