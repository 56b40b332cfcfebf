// Fused multi-head attention (src/nn/attention.ts over native/nn_ops.cc and kernels/cpu/attention.cpp):
// forward, probabilities and all four input gradients against float64 references over odd shapes
// (L = 1 and 7, dh = 1, one head, H not a multiple of 16, batch 3), the float64 gradients against
// finite differences, fully masked rows as the composite's -10000, large logits, results independent
// of the thread count, the tfjs op against the plain-tfjs composite on every backend, the
// cross-encoder with the fused op against its composite path, leaks, and clear errors for bad input.
// (The 'cuda' backend's kernel under the host emulation: tests/cuda_backend.test.ts.)
import * as tf from '@tensorflow/tfjs';

import { nn } from '../src';
import { CrossEncoder, CrossEncoderConfig } from '../src/models';
import { addon } from '../src/native';
import { ATTENTION, ATTENTION_GRAD } from '../src/nn';
import { expectError } from './helpers/errors';
import {
  attention64,
  attentionGrad64,
  expectGradClose,
  finiteDiff,
  gaussian,
  mulberry32,
  Rng,
} from './helpers/reference64';
import { BACKENDS, expectNoLeak, useBackend } from './helpers/tfjs';

function normals(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = gaussian(rng) * scale;
  return a;
}

/** A [B, L] key bias: 0, or -10000 for each key masked with probability `p` (never a whole row). */
function keyBias(rng: Rng, B: number, L: number, p = 0.3): Float32Array {
  const bias = new Float32Array(B * L);
  for (let b = 0; b < B; b++) for (let j = 1; j < L; j++) if (rng() < p) bias[b * L + j] = -10000;
  return bias;
}

interface Case {
  B: number;
  L: number;
  H: number;
  A: number;
}

function inputs(rng: Rng, { B, L, H }: Case, scale = 1) {
  const n = B * L * H;
  return { q: normals(rng, n, scale), k: normals(rng, n, scale), v: normals(rng, n), bias: keyBias(rng, B, L) };
}

function addonAttention(
  x: ReturnType<typeof inputs>,
  { B, L, H, A }: Case,
  scale: number,
  dout: Float32Array,
  precision = 0,
) {
  const out = new Float32Array(B * L * H),
    probs = new Float32Array(B * A * L * L);
  addon.attention(x.q, x.k, x.v, x.bias, B, L, H, A, scale, precision, out, probs);
  const dq = new Float32Array(B * L * H),
    dk = new Float32Array(B * L * H),
    dv = new Float32Array(B * L * H),
    dbias = new Float32Array(B * L);
  addon.attentionGrad(dout, x.q, x.k, x.v, probs, B, L, H, A, scale, precision, dq, dk, dv, dbias);
  return { out, probs, dq, dk, dv, dbias };
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
    if (ia[i] !== ib[i]) throw new Error(`${label}: element ${i} differs: ${a[i]} vs ${b[i]}`);
}

const CASES: Array<[string, Case]> = [
  ['one token', { B: 1, L: 1, H: 4, A: 2 }],
  ['L 7, batch 3', { B: 3, L: 7, H: 8, A: 2 }],
  ['dh 1', { B: 2, L: 5, H: 5, A: 5 }],
  ['one head', { B: 2, L: 9, H: 12, A: 1 }],
  ['H 20 (not a multiple of 16), dh 5', { B: 3, L: 11, H: 20, A: 4 }],
  ['L 33, dh 24', { B: 2, L: 33, H: 72, A: 3 }],
  ['BERT-like head, L 64', { B: 2, L: 64, H: 128, A: 2 }],
];

describe('addon.attention / attentionGrad against float64', () => {
  const rng = mulberry32(17);
  test.each(CASES)('%s', (_, c) => {
    const scale = 1 / Math.sqrt(c.H / c.A);
    const x = inputs(rng, c);
    const dout = normals(rng, c.B * c.L * c.H);
    const got = addonAttention(x, c, scale, dout);
    const want = attention64(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
    expectGradClose(got.out, want.out, 2e-6, 'out', 1);
    expectGradClose(got.probs, want.probs, 1e-6, 'probs', 1);
    const g = attentionGrad64(dout, x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
    expectGradClose(got.dq, g.dq, 1e-5, 'dq', 1);
    expectGradClose(got.dk, g.dk, 1e-5, 'dk', 1);
    expectGradClose(got.dv, g.dv, 1e-5, 'dv', 1);
    expectGradClose(got.dbias, g.dbias, 1e-5, 'dkeyBias', 1);
    // Masked keys get (next to) no probability, and so no value gradient from any query.
    for (let b = 0; b < c.B; b++)
      for (let j = 0; j < c.L; j++)
        if (x.bias[b * c.L + j] !== 0)
          for (let d = 0; d < c.H; d++) expect(Math.abs(got.dv[(b * c.L + j) * c.H + d])).toBeLessThan(1e-30);
  });

  test('the float64 gradients match central differences of the float64 forward, any scale', () => {
    const c = { B: 2, L: 4, H: 6, A: 3 },
      scale = 0.7;
    const x = inputs(rng, c);
    x.bias[5] = -1.5; // a bias that is not a mask: its gradient matters
    const dout = normals(rng, c.B * c.L * c.H);
    const g = attentionGrad64(dout, x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
    const loss = (which: 'q' | 'k' | 'v' | 'bias') => (t: Float64Array) => {
      const a = { ...x, [which]: t };
      const out = attention64(a.q, a.k, a.v, a.bias, c.B, c.L, c.H, c.A, scale).out;
      return out.reduce((s, o, i) => s + o * dout[i], 0);
    };
    expectGradClose(g.dq, finiteDiff(loss('q'), x.q), 1e-6, 'dq', 1);
    expectGradClose(g.dk, finiteDiff(loss('k'), x.k), 1e-6, 'dk', 1);
    expectGradClose(g.dv, finiteDiff(loss('v'), x.v), 1e-6, 'dv', 1);
    expectGradClose(g.dbias, finiteDiff(loss('bias'), x.bias), 1e-6, 'dkeyBias', 1);
    // ... and the kernel's agree at this scale too.
    const got = addonAttention(x, c, scale, dout);
    expectGradClose(got.dq, g.dq, 1e-5, 'kernel dq', 1);
    expectGradClose(got.dbias, g.dbias, 1e-5, 'kernel dkeyBias', 1);
  });

  test('a fully masked row (every key -10000) gives what the composite gives: softmax of the unmasked logits', () => {
    const c = { B: 2, L: 6, H: 8, A: 2 };
    const x = inputs(rng, c);
    x.bias.fill(0);
    x.bias.fill(-10000, c.L); // batch entry 1: all keys masked
    const dout = normals(rng, c.B * c.L * c.H);
    const got = addonAttention(x, c, 0.5, dout);
    // Adding one constant to a row leaves its softmax unchanged: up to float32 rounding of the
    // logits at 10000 (an ulp there is 1e-3), batch entry 1 attends as if nothing were masked.
    const unmasked = attention64(x.q, x.k, x.v, new Float32Array(c.B * c.L), c.B, c.L, c.H, c.A, 0.5);
    expectGradClose(got.out, unmasked.out, 1e-2, 'out vs unmasked', 1);
    expect(got.out.every(Number.isFinite)).toBe(true);
    expect(got.dq.every(Number.isFinite)).toBe(true);
    for (let r = 0; r < c.B * c.A * c.L; r++) {
      const row = got.probs.subarray(r * c.L, (r + 1) * c.L);
      expect(Math.abs(row.reduce((s, p) => s + p, 0) - 1)).toBeLessThan(1e-6);
    }
    // The composite (tfjs ops on 'cpu') rounds the same way: it agrees far closer than the 1e-2 above.
    tf.setBackend('cpu');
    const t = (a: Float32Array) => tf.tensor3d(a, [c.B, c.L, c.H]);
    const comp = nn.reference
      .attention(t(x.q), t(x.k), t(x.v), tf.tensor2d(x.bias, [c.B, c.L]), { heads: c.A, scale: 0.5 })
      .dataSync();
    expectGradClose(got.out, comp, 2e-6, 'out vs composite', 1);
  });

  test('large logits: softmax stays finite and accurate (the row max is subtracted)', () => {
    const c = { B: 2, L: 16, H: 8, A: 2 };
    const x = inputs(rng, c, 30); // logits ~ 30 * 30 * 2 * scale: several thousand
    const dout = normals(rng, c.B * c.L * c.H);
    const got = addonAttention(x, c, 0.5, dout);
    for (const k of ['out', 'probs', 'dq', 'dk', 'dv', 'dbias'] as const)
      expect({ k, finite: got[k].every(Number.isFinite) }).toEqual({ k, finite: true });
    const want = attention64(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, 0.5);
    // The logits' own float32 rounding (products of size 1e3 to 1e4) bounds the accuracy here.
    expectGradClose(got.probs, want.probs, 5e-3, 'probs', 1);
    expectGradClose(got.out, want.out, 5e-3, 'out', 1);
    const g = attentionGrad64(dout, x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, 0.5);
    expectGradClose(got.dv, g.dv, 5e-3, 'dv', 1);
  });

  test('probs is optional: the same output without it', () => {
    const c = { B: 2, L: 7, H: 6, A: 3 };
    const x = inputs(rng, c);
    const full = addonAttention(x, c, 0.4, normals(rng, c.B * c.L * c.H));
    const out = new Float32Array(c.B * c.L * c.H);
    addon.attention(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, 0.4, 0, out);
    expectSameBits(out, full.out, 'out without probs');
    const out2 = new Float32Array(out.length);
    addon.attention(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, 0.4, 0, out2, null);
    expectSameBits(out2, full.out, 'out with probs null');
  });

  test('precision 1 (bf16 products, fp32 sums) runs within bfloat16 rounding of float64', () => {
    // Until sgemm_cpu implements kBf16 this is the fp32 result; either way within bf16's 2^-8.
    const c = { B: 2, L: 16, H: 32, A: 2 },
      scale = 0.25;
    const x = inputs(rng, c);
    const dout = normals(rng, c.B * c.L * c.H);
    const got = addonAttention(x, c, scale, dout, 1);
    const want = attention64(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
    expectGradClose(got.out, want.out, 3e-2, 'out (bf16)', 1);
    const g = attentionGrad64(dout, x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
    expectGradClose(got.dq, g.dq, 3e-2, 'dq (bf16)', 1);
    expectGradClose(got.dv, g.dv, 3e-2, 'dv (bf16)', 1);
  });

  test('results do not depend on the thread count (bit for bit)', () => {
    const c = { B: 3, L: 40, H: 24, A: 3 }; // 9 (batch, head) pairs
    const x = inputs(rng, c);
    const dout = normals(rng, c.B * c.L * c.H);
    const one = withThreads(1, () => addonAttention(x, c, 0.35, dout));
    for (const n of [2, 3]) {
      const other = withThreads(n, () => addonAttention(x, c, 0.35, dout));
      for (const k of ['out', 'probs', 'dq', 'dk', 'dv', 'dbias'] as const)
        expectSameBits(other[k], one[k], `${k} with ${n} threads`);
    }
  });
});

describe('addon argument errors name the argument', () => {
  const f = (n: number) => new Float32Array(n);
  // B 2, L 3, H 4, A 2: q/k/v/out 24, keyBias 6, probs 36
  const fwd = (over: Record<number, unknown>) => () => {
    const a: unknown[] = [f(24), f(24), f(24), f(6), 2, 3, 4, 2, 0.5, 0, f(24), f(36)];
    for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
    (addon.attention as unknown as (...x: unknown[]) => void)(...a);
  };
  const bwd = (over: Record<number, unknown>) => () => {
    const a: unknown[] = [f(24), f(24), f(24), f(24), f(36), 2, 3, 4, 2, 0.5, 0, f(24), f(24), f(24), f(6)];
    for (const [i, v] of Object.entries(over)) a[Number(i)] = v;
    (addon.attentionGrad as unknown as (...x: unknown[]) => void)(...a);
  };
  const shared = f(48);
  test.each([
    ['q length', fwd({ 0: f(23) }), /attention: q must be a Float32Array of length 24/],
    ['keyBias length', fwd({ 3: f(3) }), /attention: keyBias must be a Float32Array of length 6/],
    ['heads not dividing hidden', fwd({ 7: 3 }), /attention: hidden \(4\) must be a multiple of heads \(3\)/],
    ['len 0', fwd({ 5: 0 }), /attention: len must be an integer/],
    ['scale NaN', fwd({ 8: NaN }), /attention: scale must be finite/],
    ['precision 3', fwd({ 9: 3 }), /attention: precision must be 0 \(fp32\), 1 \(bf16\) or 2 \(tf32\)/],
    ['probs length', fwd({ 11: f(35) }), /attention: probs must be a Float32Array of length 36/],
    ['out is q', fwd({ 0: shared.subarray(0, 24), 10: shared.subarray(12, 36) }), /attention: out must not overlap/],
    ['too few', () => (addon.attention as unknown as (...a: unknown[]) => void)(f(24)), /attention: expected 11/],
    ['grad probs length', bwd({ 4: f(6) }), /attentionGrad: probs must be a Float32Array of length 36/],
    ['grad dv type', bwd({ 13: [0] }), /attentionGrad: dv must be a Float32Array/],
    ['grad dq overlaps dk', bwd({ 11: shared.subarray(0, 24), 12: shared.subarray(20, 44) }), /dq must not overlap/],
    ['grad dkeyBias length', bwd({ 14: f(5) }), /attentionGrad: dkeyBias must be a Float32Array of length 6/],
  ])('%s', (_, call, pattern) => {
    expectError(call as () => unknown, pattern as RegExp);
  });
});

describe.each(BACKENDS)('the tfjs op on %s', (backend) => {
  beforeAll(() => useBackend(backend));
  const rng = mulberry32(29);
  const t3 = (a: Float32Array, c: Case) => tf.tensor3d(a, [c.B, c.L, c.H]);

  test('the fused kernels are registered here', () => {
    for (const k of [ATTENTION, ATTENTION_GRAD]) expect(tf.getKernel(k, backend)).toBeDefined();
  });

  test('value and tf.grads of all four inputs against float64 and the composite', () => {
    for (const [, c] of CASES.slice(0, 5)) {
      const x = inputs(rng, c);
      x.bias[0] = -0.75; // one bias that is not a mask
      const w = normals(rng, c.B * c.L * c.H);
      const q = t3(x.q, c),
        k = t3(x.k, c),
        v = t3(x.v, c),
        bias = tf.tensor2d(x.bias, [c.B, c.L]),
        wt = t3(w, c);
      const y = nn.attention(q, k, v, bias, { heads: c.A });
      expect(y.shape).toEqual([c.B, c.L, c.H]);
      const scale = 1 / Math.sqrt(c.H / c.A);
      const want = attention64(x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
      expectGradClose(y.dataSync(), want.out, 2e-6, `${c.B}x${c.L}x${c.H}/${c.A}`, 1);
      const loss = (impl: typeof nn.attention) => (a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor, d: tf.Tensor) =>
        tf.sum(tf.mul(impl(a, b, cc, d, { heads: c.A }), wt));
      const fused = tf.grads(loss(nn.attention))([q, k, v, bias]);
      const comp = tf.grads(loss(nn.reference.attention))([q, k, v, bias]);
      const g = attentionGrad64(w, x.q, x.k, x.v, x.bias, c.B, c.L, c.H, c.A, scale);
      const names = ['dq', 'dk', 'dv', 'dkeyBias'];
      [g.dq, g.dk, g.dv, g.dbias].forEach((ref, i) => {
        expectGradClose(fused[i].dataSync(), ref, 1e-5, `${names[i]} vs float64`, 1);
        expectGradClose(fused[i].dataSync(), comp[i].dataSync(), 2e-5, `${names[i]} vs composite`, 1);
      });
      tf.dispose([q, k, v, bias, wt, y, ...fused, ...comp]);
    }
  });

  test('an explicit scale, and a graph where q = k = v (one input, three uses)', () => {
    const c = { B: 2, L: 5, H: 6, A: 2 };
    const xv = normals(rng, c.B * c.L * c.H);
    const x = t3(xv, c),
      bias = tf.tensor2d(keyBias(rng, c.B, c.L), [c.B, c.L]);
    const f = (impl: typeof nn.attention) => (a: tf.Tensor) =>
      tf.sum(tf.square(impl(a, a, a, bias, { heads: 2, scale: 0.3 })));
    expectGradClose(
      nn.attention(x, x, x, bias, { heads: 2, scale: 0.3 }).dataSync(),
      nn.reference.attention(x, x, x, bias, { heads: 2, scale: 0.3 }).dataSync(),
      2e-6,
      'value',
      1,
    );
    expectGradClose(
      tf.grad(f(nn.attention))(x).dataSync(),
      tf.grad(f(nn.reference.attention))(x).dataSync(),
      2e-5,
      'd/dx',
      1,
    );
    tf.dispose([x, bias]);
  });

  test('no tensors leak, with or without a gradient tape', () => {
    const c = { B: 2, L: 4, H: 6, A: 3 };
    const q = t3(normals(rng, 48), c),
      bias = tf.zeros([2, 4]);
    expectNoLeak(() => tf.dispose(nn.attention(q, q, q, bias, { heads: 3 })), 'attention');
    expectNoLeak(
      () =>
        tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(nn.attention(a, a, a, b, { heads: 3 })))([q, bias])),
      'attention grad',
    );
    tf.dispose([q, bias]);
  });

  test('bad input: a FusedDistillError naming the argument', () => {
    const q = tf.zeros([2, 3, 4]),
      bias = tf.zeros([2, 3]);
    const o = { heads: 2 };
    expectError(() => nn.attention(tf.zeros([6, 4]), q, q, bias, o), /attention: q must have shape \[B, L, H\]/);
    expectError(() => nn.attention(tf.zeros([2, 3, 4], 'int32'), q, q, bias, o), /attention: q must be float32/);
    expectError(() => nn.attention(q, tf.zeros([2, 3, 5]), q, bias, o), /attention: k must have shape \[2, 3, 4\]/);
    expectError(() => nn.attention(q, q, null as unknown as tf.Tensor, bias, o), /attention: v is required/);
    expectError(() => nn.attention(q, q, q, tf.zeros([2, 1, 1, 3]), o), /attention: keyBias must have shape \[2, 3\]/);
    expectError(
      () => nn.attention(q, q, q, bias, { heads: 3 }),
      /attention: heads must be a positive integer dividing H = 4/,
    );
    expectError(() => nn.attention(q, q, q, bias, { heads: 0 }), /attention: heads must be a finite number > 0/);
    expectError(() => nn.attention(q, q, q, bias, { heads: 2, scale: Infinity }), /attention: scale must be a finite/);
    expectError(
      () => nn.attention(q, q, q, bias, undefined as unknown as { heads: number }),
      /options must be an object/,
    );
    tf.dispose([q, bias]);
  });
});

describe('the fused op on native against the composite on the cpu backend', () => {
  test('a BERT-shaped layer (B 2, L 128, H 64, 4 heads): value and gradients', async () => {
    const c = { B: 2, L: 128, H: 64, A: 4 };
    const rng = mulberry32(31);
    const x = inputs(rng, c);
    const w = normals(rng, c.B * c.L * c.H);
    const run = (impl: typeof nn.attention) => {
      const t = (a: Float32Array) => tf.tensor3d(a, [c.B, c.L, c.H]);
      const [q, k, v, wt] = [x.q, x.k, x.v, w].map(t);
      const bias = tf.tensor2d(x.bias, [c.B, c.L]);
      const value = impl(q, k, v, bias, { heads: c.A }).dataSync();
      const grads = tf
        .grads((a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor) => tf.sum(tf.mul(impl(a, b, cc, bias, { heads: c.A }), wt)))(
          [q, k, v],
        )
        .map((g) => g.dataSync());
      tf.dispose([q, k, v, wt, bias]);
      return [value, ...grads];
    };
    await useBackend('native');
    const fused = run(nn.attention);
    await useBackend('cpu');
    const comp = run(nn.reference.attention);
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expectGradClose(fused[i], comp[i], 2e-5, name, 1));
  });
});

describe('the cross-encoder with fused attention', () => {
  const tiny: CrossEncoderConfig = {
    vocabSize: 40,
    hidden: 24,
    layers: 2,
    heads: 3, // dh 8
    intermediate: 48,
    maxPosition: 16,
    typeVocab: 2,
    layerNormEps: 1e-12,
    initStd: 0.2,
  };

  test.each(BACKENDS)('on %s: scores and gradients as the composite path (want.attention)', async (backend) => {
    await useBackend(backend);
    const model = new CrossEncoder(tiny, 4);
    const int2 = (rows: number[][]) => tf.tensor2d(rows, undefined, 'int32');
    const inputs = {
      inputIds: int2([
        [2, 5, 6, 3, 7, 8, 3, 0],
        [2, 9, 3, 10, 11, 12, 13, 3],
        [2, 4, 3, 0, 0, 0, 0, 0],
      ]),
      tokenTypeIds: int2([
        [0, 0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0, 0, 0, 0],
      ]),
      attentionMask: int2([
        [1, 1, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0, 0],
      ]),
    };
    const vars = [...model.params.values()];
    // want.attention keeps the composite (it returns the pre-softmax logits); without it the fused op runs.
    const run = (composite: boolean) => {
      const want = composite ? { hidden: true, attention: true } : { hidden: true };
      const out = model.forward(inputs, want);
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.square(model.forward(inputs, want).scores)) as tf.Scalar,
        vars,
      );
      const r = {
        scores: out.scores.dataSync(),
        hidden: out.hidden!.map((h) => h.dataSync()),
        grads: vars.map((v) => grads[v.name].dataSync()),
      };
      tf.dispose([out.scores, ...out.hidden!, ...(out.attention ?? []), ...Object.values(grads)]);
      return r;
    };
    const fused = run(false);
    const composite = run(true);
    expectGradClose(fused.scores, composite.scores, 1e-5, 'scores', 1);
    fused.hidden.forEach((h, i) => expectGradClose(h, composite.hidden[i], 1e-5, `hidden ${i}`, 1));
    fused.grads.forEach((g, i) => {
      const name = vars[i].name;
      // The attention key biases' gradients are 0 mathematically (softmax ignores a shift): both
      // paths give rounding noise (~1e-8) there, not comparable to each other.
      if (name.endsWith('attention.self.key.bias'))
        for (const grad of [g, composite.grads[i]]) expect(Math.max(...grad.map(Math.abs))).toBeLessThan(1e-6);
      else expectGradClose(g, composite.grads[i], 1e-4, `grad of ${name}`, 1e-4);
    });
    model.dispose();
    tf.dispose(Object.values(inputs));
  });
});
