// The TensorFlow.js ops (src/losses) on the 'cpu' and 'wasm' backends: values and gradients against
// the float64 references (tests/helpers/reference64.ts) and against losses.reference.* composites,
// finite differences on the fused ops, upstream gradients, leaks, training with optimizers and models.
import * as tf from '@tensorflow/tfjs';

import { losses } from '../src';
import * as ref from './helpers/reference64';
import { TERMS, Term, expectGradClose, expectLossClose, mulberry32 } from './helpers/reference64';
import { BACKENDS, BackendName, expectNoLeak, scalarValue, useBackend, values } from './helpers/tfjs';

type Scalar = tf.Scalar;
type AnyOp = (...args: unknown[]) => Scalar;
const fused = losses as unknown as Record<string, AnyOp>;
const composite = losses.reference as unknown as Record<string, AnyOp>;

const LABEL_TERMS: Term[] = ['pointwiseBCE', 'pairwiseRankNet', 'pairwiseHinge', 'listwiseSoftmaxCE'];

/** Non-default options per op (each op only gets the options it takes). */
const OP_OPTS: Record<Term, { temperature?: number; sigma?: number; margin?: number }> = {
  pointwiseBCE: {},
  pairwiseRankNet: { sigma: 1.4 },
  pairwiseHinge: { margin: 0.7 },
  listwiseSoftmaxCE: {},
  distillKL: { temperature: 2 },
  marginMSE: {},
  scoreMSE: {},
};

/** One op call under test: x is the student input, the rest is fixed. */
interface OpCase {
  label: string;
  shape: number[];
  x0: Float32Array;
  fused: (x: tf.Tensor) => Scalar;
  composite: (x: tf.Tensor) => Scalar;
  want: { loss: number; grad: Float64Array; count: number };
  /** tolerance of the plain-tfjs composite vs float64 (it is float32 tfjs, not the fused kernel) */
  compositeRel: number;
  dispose: () => void;
}

function scoreCase(name: Term, rows: number, cols: number, masked: boolean, seed: number, defaults = false): OpCase {
  const rng = mulberry32(seed);
  const n = rows * cols;
  const s = ref.scores(rng, n, 1.5);
  if (name === 'pairwiseHinge') {
    // keep pairs off the hinge's kink (|margin - (s_i - s_j)| >= ~0.05) so finite differences are valid
    for (let i = 0; i < n; i++) s[i] = Math.round(s[i] * 4) * 0.3 + 0.013 * (i % 7);
  }
  const teacher = ref.scores(rng, n, 1.5);
  const labels = name === 'pointwiseBCE' ? ref.unitLabels(rng, n) : ref.gradedLabels(rng, n);
  const other = LABEL_TERMS.includes(name) ? labels : teacher;
  const m = masked ? ref.mask2d(rng, rows, cols) : null;
  const opts = defaults ? {} : OP_OPTS[name];
  const want = ref.term(name, s, teacher, labels, m, rows, cols, opts);
  const otherT = tf.tensor2d(other, [rows, cols]);
  const maskT = m ? tf.tensor2d(m, [rows, cols]) : null;
  const apiOpts = defaults && !masked ? undefined : { ...(maskT ? { mask: maskT } : {}), ...opts };
  return {
    label: `${name} [${rows}, ${cols}]${masked ? ' masked' : ''}${defaults ? ' default options' : ''}`,
    shape: [rows, cols],
    x0: s,
    fused: (x) => fused[name](x, otherT, apiOpts),
    composite: (x) => composite[name](x, otherT, apiOpts),
    want,
    compositeRel: 1e-4,
    dispose: () => {
      otherT.dispose();
      maskT?.dispose();
    },
  };
}

function klRankCase(shape: number[], masked: boolean, seed: number): OpCase {
  const rng = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const cols = shape[shape.length - 1];
  const rows = n / cols;
  const s = ref.scores(rng, n, 1.5);
  const t = ref.scores(rng, n, 1.5);
  const m = masked ? ref.mask2d(rng, rows, cols) : null;
  const want = ref.distillKL(s, t, m, rows, cols, 1.5);
  const tT = tf.tensor(t, shape);
  const maskT = m ? tf.tensor(m, shape) : null;
  const o = { mask: maskT, temperature: 1.5 };
  return {
    label: `distillKL rank ${shape.length} [${shape.join(', ')}]${masked ? ' masked' : ''}`,
    shape,
    x0: s,
    fused: (x) => losses.distillKL(x, tT, o),
    composite: (x) => losses.reference.distillKL(x, tT, o),
    want,
    compositeRel: 1e-4,
    dispose: () => {
      tT.dispose();
      maskT?.dispose();
    },
  };
}

function hiddenCase(shape: number[], masked: boolean, seed: number): OpCase {
  const rng = mulberry32(seed);
  const full = shape.length === 3 ? [1, ...shape] : shape;
  const [layers, batch, len, h] = full;
  const n = layers * batch * len * h;
  const a = ref.scores(rng, n);
  const b = ref.scores(rng, n);
  const m = masked ? ref.tokenMask(rng, batch, len) : null;
  const want = ref.hiddenMSE(a, b, m, layers, batch, len, h);
  const bT = tf.tensor(b, shape);
  const maskT = m ? tf.tensor2d(m, [batch, len]) : null;
  const o = maskT ? { tokenMask: maskT } : {};
  return {
    label: `hiddenMSE [${shape.join(', ')}]${masked ? ' masked' : ''}`,
    shape,
    x0: a,
    fused: (x) => losses.hiddenMSE(x, bT, o),
    composite: (x) => losses.reference.hiddenMSE(x, bT, o),
    want,
    compositeRel: 1e-5,
    dispose: () => {
      bT.dispose();
      maskT?.dispose();
    },
  };
}

function attentionCase(shape: number[], masked: boolean, seed: number): OpCase {
  const rng = mulberry32(seed);
  const [batch, heads, len] = shape;
  const n = batch * heads * len * len;
  const a = ref.scores(rng, n);
  const b = ref.scores(rng, n);
  const m = masked ? ref.tokenMask(rng, batch, len) : null;
  if (m && len > 2) m[1] = 0; // a hole, not only trailing padding
  const want = ref.attentionMSE(a, b, m, batch, heads, len);
  const bT = tf.tensor(b, shape);
  const maskT = m ? tf.tensor2d(m, [batch, len]) : null;
  const o = maskT ? { tokenMask: maskT } : {};
  return {
    label: `attentionMSE [${shape.join(', ')}]${masked ? ' masked' : ''}`,
    shape,
    x0: a,
    fused: (x) => losses.attentionMSE(x, bT, o),
    composite: (x) => losses.reference.attentionMSE(x, bT, o),
    want,
    compositeRel: 1e-5,
    dispose: () => {
      bT.dispose();
      maskT?.dispose();
    },
  };
}

const ALL_WEIGHTS: Record<Term, number> = {
  pointwiseBCE: 0.3,
  pairwiseRankNet: 1,
  pairwiseHinge: 0.7,
  listwiseSoftmaxCE: 0.5,
  distillKL: 2,
  marginMSE: 0.25,
  scoreMSE: 0.1,
};

function objectiveCase(rows: number, cols: number, masked: boolean, seed: number, parts = false): OpCase {
  const rng = mulberry32(seed);
  const n = rows * cols;
  const s = ref.scores(rng, n, 1.5);
  for (let i = 0; i < n; i++) s[i] = Math.round(s[i] * 4) * 0.3 + 0.013 * (i % 7); // hinge: off the kink
  const t = ref.scores(rng, n, 1.5);
  const y = ref.gradedLabels(rng, n, 2);
  const m = masked ? ref.mask2d(rng, rows, cols) : null;
  const o = { weights: ALL_WEIGHTS, temperature: 3, sigma: 0.7, margin: 0.4 };
  const r = ref.rankingObjective(s, t, y, m, rows, cols, o);
  const tT = tf.tensor2d(t, [rows, cols]);
  const yT = tf.tensor2d(y, [rows, cols]);
  const maskT = m ? tf.tensor2d(m, [rows, cols]) : null;
  const apiOpts = { ...o, mask: maskT };
  return {
    label: `${parts ? 'rankingObjectiveParts' : 'rankingObjective'} [${rows}, ${cols}]${masked ? ' masked' : ''}, all seven terms`,
    shape: [rows, cols],
    x0: s,
    fused: parts
      ? (x) => {
          const p = losses.rankingObjectiveParts(x, tT, yT, apiOpts);
          for (const v of Object.values(p.parts)) v.dispose();
          return p.total;
        }
      : (x) => losses.rankingObjective(x, tT, yT, apiOpts),
    composite: (x) => losses.reference.rankingObjective(x, tT, yT, apiOpts),
    want: { loss: r.total, grad: r.grad, count: 1 },
    compositeRel: 1e-4,
    dispose: () => {
      tT.dispose();
      yT.dispose();
      maskT?.dispose();
    },
  };
}

/** The cases, as factories (tensors are made after the backend is set). */
const CASES: Array<[string, () => OpCase]> = [];
TERMS.forEach((name, k) => {
  const seed = 100 * (k + 1);
  CASES.push([`${name} small masked`, () => scoreCase(name, 4, 6, true, seed)]);
  CASES.push([`${name} B=1`, () => scoreCase(name, 1, 7, false, seed + 1)]);
  CASES.push([`${name} G=1`, () => scoreCase(name, 5, 1, true, seed + 2)]);
  CASES.push([`${name} G=257`, () => scoreCase(name, 3, 257, true, seed + 3)]);
  CASES.push([`${name} default options`, () => scoreCase(name, 6, 9, false, seed + 4, true)]);
});
CASES.push(['distillKL rank 4', () => klRankCase([2, 3, 4, 5], true, 900)]);
CASES.push(['distillKL rank 3', () => klRankCase([2, 3, 8], false, 901)]);
CASES.push(['distillKL rank 1', () => klRankCase([9], false, 902)]);
CASES.push(['hiddenMSE [B, L, H] masked', () => hiddenCase([3, 5, 8], true, 910)]);
CASES.push(['hiddenMSE [B, L, H]', () => hiddenCase([2, 4, 16], false, 911)]);
CASES.push(['hiddenMSE [layers, B, L, H] masked', () => hiddenCase([3, 2, 5, 8], true, 912)]);
CASES.push(['attentionMSE masked', () => attentionCase([2, 3, 6, 6], true, 920)]);
CASES.push(['attentionMSE', () => attentionCase([1, 2, 5, 5], false, 921)]);
CASES.push(['rankingObjective', () => objectiveCase(5, 8, true, 930)]);
CASES.push(['rankingObjectiveParts total', () => objectiveCase(4, 6, true, 931, true)]);

/** Cases small enough for finite differences on the fused op (each FD index costs two calls). */
const FD_CASES = new Set([
  ...TERMS.map((n) => `${n} small masked`),
  'distillKL rank 4',
  'hiddenMSE [layers, B, L, H] masked',
  'attentionMSE masked',
  'rankingObjective',
]);

/** float32 central differences of the fused op at a few indices, vs its tf.grad. */
function checkFD(c: OpCase, x: tf.Tensor, g: Float32Array): void {
  const h = 1e-2;
  const rng = mulberry32(7);
  const n = c.x0.length;
  const idx = Array.from({ length: 10 }, () => Math.floor(rng() * n));
  const gmax = ref.maxAbs(g);
  for (const i of idx) {
    const plus = c.x0.slice();
    const minus = c.x0.slice();
    plus[i] += h;
    minus[i] -= h;
    const fp = tf.tidy(() => scalarValue(c.fused(tf.tensor(plus, c.shape))));
    const fm = tf.tidy(() => scalarValue(c.fused(tf.tensor(minus, c.shape))));
    const fd = (fp - fm) / (2 * h);
    if (!(Math.abs(fd - g[i]) <= 3e-3 * gmax + 5e-5))
      throw new Error(`${c.label}: finite difference at ${i}: ${fd} vs tf.grad ${g[i]} (max|grad| ${gmax})`);
  }
  expect(x.shape).toEqual(c.shape);
}

describe.each(BACKENDS.map((b) => [b] as [BackendName]))('backend %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  describe.each(CASES)('%s', (key, make) => {
    let c: OpCase;
    let x: tf.Tensor;
    beforeAll(async () => {
      await useBackend(backend);
      c = make();
      x = tf.tensor(c.x0, c.shape);
    });
    afterAll(() => {
      x.dispose();
      c.dispose();
    });

    test('loss and tf.grad match reference64', () => {
      const loss = c.fused(x);
      expect(loss.rank).toBe(0);
      expect(loss.dtype).toBe('float32');
      expectLossClose(scalarValue(loss), c.want.loss, 1e-5, c.label);
      loss.dispose();
      const g = tf.grad((s: tf.Tensor) => c.fused(s))(x);
      expect(g.shape).toEqual(c.shape);
      expectGradClose(values(g), c.want.grad, 1e-5, c.label, c.want.count > 0 ? 1 / c.want.count : 0);
      g.dispose();
    });

    test('the loss is the same with and without a gradient being recorded', () => {
      const plain = tf.tidy(() => scalarValue(c.fused(x)));
      const { value, grad } = tf.valueAndGrad((s: tf.Tensor) => c.fused(s))(x);
      expectLossClose(scalarValue(value), plain, 1e-6, c.label);
      expectLossClose(scalarValue(value), c.want.loss, 1e-5, c.label);
      expectGradClose(values(grad), c.want.grad, 1e-5, c.label, c.want.count > 0 ? 1 / c.want.count : 0);
      value.dispose();
      grad.dispose();
    });

    test('losses.reference composite: same loss as reference64 and as the fused op', () => {
      const v = tf.tidy(() => scalarValue(c.composite(x)));
      expectLossClose(v, c.want.loss, c.compositeRel, `${c.label} composite`);
      const f = tf.tidy(() => scalarValue(c.fused(x)));
      expectLossClose(f, v, c.compositeRel, `${c.label} fused vs composite`);
    });

    test('losses.reference composite: differentiable with tf.grad, gradient agrees', () => {
      const g = tf.grad((s: tf.Tensor) => c.composite(s))(x);
      expectGradClose(
        values(g),
        c.want.grad,
        c.compositeRel * 10,
        `${c.label} composite`,
        c.want.count > 0 ? 1 / c.want.count : 0,
      );
      g.dispose();
    });

    test('upstream gradients other than 1 scale the gradient', () => {
      const g1 = tf.grad((s: tf.Tensor) => c.fused(s))(x);
      const base = values(g1);
      for (const k of [3, -0.25]) {
        const gk = tf.grad((s: tf.Tensor) => tf.mul(c.fused(s), k))(x);
        expectGradClose(
          values(gk),
          base.map((v) => v * k),
          1e-6,
          `${c.label} x${k}`,
        );
        gk.dispose();
      }
      // two uses of the op in one graph: gradients add up
      const g3 = tf.grad((s: tf.Tensor) => tf.add(c.fused(s), tf.mul(c.fused(s), 2)))(x);
      expectGradClose(
        values(g3),
        base.map((v) => v * 3),
        1e-6,
        `${c.label} sum of two uses`,
      );
      g3.dispose();
      // combined with another op on the same input: d/ds (loss + sum(s^2)) = grad + 2 s
      const gmix = tf.grad((s: tf.Tensor) => tf.add(c.fused(s), tf.sum(tf.square(s))))(x);
      expectGradClose(
        values(gmix),
        base.map((v, i) => v + 2 * c.x0[i]),
        1e-6,
        `${c.label} + sum(s^2)`,
      );
      gmix.dispose();
      // upstream 0: zero gradient
      const g0 = tf.grad((s: tf.Tensor) => tf.mul(c.fused(s), 0))(x);
      expect(ref.maxAbs(values(g0))).toBe(0);
      g0.dispose();
      // a non-trivial function of the loss: d/ds loss^2 = 2 loss dloss/ds
      const l = tf.tidy(() => scalarValue(c.fused(x)));
      const gsq = tf.grad((s: tf.Tensor) => tf.square(c.fused(s)))(x);
      expectGradClose(
        values(gsq),
        base.map((v) => 2 * l * v),
        1e-5,
        `${c.label} loss^2`,
      );
      gsq.dispose();
      g1.dispose();
    });

    test('no tensor leaks (forward, tf.grad, valueAndGrad, inside tidy)', () => {
      expectNoLeak(() => c.fused(x).dispose(), `${c.label} forward`);
      expectNoLeak(
        () =>
          tf
            .grad((s: tf.Tensor) => c.fused(s))(x)
            .dispose(),
        `${c.label} tf.grad`,
      );
      expectNoLeak(
        () =>
          tf
            .grad((s: tf.Tensor) => tf.mul(c.fused(s), 3))(x)
            .dispose(),
        `${c.label} tf.grad x3`,
      );
      expectNoLeak(() => {
        const { value, grad } = tf.valueAndGrad((s: tf.Tensor) => c.fused(s))(x);
        value.dispose();
        grad.dispose();
      }, `${c.label} valueAndGrad`);
      expectNoLeak(
        () =>
          tf.tidy(() => {
            c.fused(x);
          }),
        `${c.label} tidy`,
      );
      // the op under a tape that differentiates something else
      const w = tf.scalar(2);
      expectNoLeak(
        () =>
          tf
            .grad((v: tf.Tensor) => tf.mul(v, c.fused(x)))(w)
            .dispose(),
        `${c.label} other-variable tape`,
      );
      const gw = tf.grad((v: tf.Tensor) => tf.mul(v, c.fused(x)))(w);
      expectLossClose(scalarValue(gw), c.want.loss, 1e-5, `${c.label} d(w*loss)/dw`);
      gw.dispose();
      w.dispose();
    });

    if (FD_CASES.has(key)) {
      test('finite differences on the fused op agree with its tf.grad', () => {
        const g = tf.grad((s: tf.Tensor) => c.fused(s))(x);
        checkFD(c, x, values(g));
        g.dispose();
      });
    }
  });

  describe('the same tensor as student and teacher', () => {
    test.each(['distillKL', 'marginMSE', 'scoreMSE'])('%s(x, x) is 0 with a zero gradient', (name) => {
      const x = tf.tensor2d(ref.scores(mulberry32(940), 24), [4, 6]);
      const l = fused[name](x, x, {});
      expect(Math.abs(scalarValue(l))).toBeLessThan(1e-6);
      const g = tf.grad((s: tf.Tensor) => fused[name](s, x, {}))(x);
      expect(ref.maxAbs(values(g))).toBeLessThan(1e-6);
      [l, g, x].forEach((v) => v.dispose());
    });
  });

  describe('rankingObjectiveParts', () => {
    test('parts match reference64, sum to the total, and equal rankingObjective', () => {
      const rows = 7;
      const cols = 11;
      const rng = mulberry32(950);
      const n = rows * cols;
      const s = ref.scores(rng, n, 2);
      const t = ref.scores(rng, n, 2);
      const y = ref.gradedLabels(rng, n, 2);
      const m = ref.mask2d(rng, rows, cols);
      const o = { weights: ALL_WEIGHTS, temperature: 3, sigma: 0.7, margin: 0.4 };
      const r = ref.rankingObjective(s, t, y, m, rows, cols, o);
      const [sT, tT, yT, mT] = [s, t, y, m].map((a) => tf.tensor2d(a, [rows, cols]));
      const before = tf.memory().numTensors;
      const p = losses.rankingObjectiveParts(sT, tT, yT, { ...o, mask: mT });
      expect(Object.keys(p.parts).sort()).toEqual([...TERMS].sort());
      let sum = 0;
      TERMS.forEach((name, k) => {
        const v = scalarValue(p.parts[name]);
        expectLossClose(v, r.parts[k], 1e-5, name);
        sum += v;
      });
      expectLossClose(scalarValue(p.total), r.total, 1e-5, 'total');
      expectLossClose(sum, scalarValue(p.total), 1e-6, 'sum of parts');
      const single = losses.rankingObjective(sT, tT, yT, { ...o, mask: mT });
      expect(scalarValue(single)).toBe(scalarValue(p.total));
      single.dispose();
      p.total.dispose();
      for (const v of Object.values(p.parts)) v.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // the reference composite's parts too
      const rp = losses.reference.rankingObjectiveParts(sT, tT, yT, { ...o, mask: mT });
      TERMS.forEach((name, k) => expectLossClose(scalarValue(rp.parts[name]), r.parts[k], 1e-4, `reference ${name}`));
      rp.total.dispose();
      for (const v of Object.values(rp.parts)) v.dispose();
      [sT, tT, yT, mT].forEach((a) => a.dispose());
    });

    test('absent weights are 0 parts; a single term equals the single op', () => {
      const rng = mulberry32(951);
      const sT = tf.tensor2d(ref.scores(rng, 24), [4, 6]);
      const yT = tf.tensor2d(ref.gradedLabels(rng, 24), [4, 6]);
      const p = losses.rankingObjectiveParts(sT, null, yT, { weights: { pairwiseRankNet: 2 }, sigma: 1.4 });
      const single = losses.pairwiseRankNet(sT, yT, { sigma: 1.4 });
      expectLossClose(scalarValue(p.parts.pairwiseRankNet), 2 * scalarValue(single), 1e-6);
      for (const name of TERMS) if (name !== 'pairwiseRankNet') expect(scalarValue(p.parts[name])).toBe(0);
      p.total.dispose();
      for (const v of Object.values(p.parts)) v.dispose();
      single.dispose();
      sT.dispose();
      yT.dispose();
    });

    test('total from rankingObjectiveParts is differentiable', () => {
      const rng = mulberry32(952);
      const s = ref.scores(rng, 24);
      const t = ref.scores(rng, 24);
      const sT = tf.tensor2d(s, [4, 6]);
      const tT = tf.tensor2d(t, [4, 6]);
      const g = tf.grad((x: tf.Tensor) => {
        const p = losses.rankingObjectiveParts(x, tT, null, { weights: { scoreMSE: 1, distillKL: 0.5 } });
        return p.total;
      })(sT);
      const r = ref.rankingObjective(s, t, null, null, 4, 6, { weights: { scoreMSE: 1, distillKL: 0.5 } });
      expectGradClose(values(g), r.grad, 1e-5);
      [g, sT, tT].forEach((a) => a.dispose());
    });
  });

  describe('training', () => {
    test('optimizer.minimize on a tf.variable: one SGD step equals s - lr * grad, and the loss falls', () => {
      const rows = 6;
      const cols = 8;
      const rng = mulberry32(960);
      const s0 = ref.scores(rng, rows * cols);
      const y = ref.gradedLabels(rng, rows * cols);
      const m = ref.mask2d(rng, rows, cols);
      const yT = tf.tensor2d(y, [rows, cols]);
      const mT = tf.tensor2d(m, [rows, cols]);
      const v = tf.variable(tf.tensor2d(s0, [rows, cols]));
      const opt = tf.train.sgd(0.5);
      const lr = 0.5;
      const r = ref.listwiseSoftmaxCE(s0, y, m, rows, cols);
      const before = tf.memory().numTensors;
      const cost = opt.minimize(() => losses.listwiseSoftmaxCE(v, yT, { mask: mT }), true)!;
      expectLossClose(scalarValue(cost), r.loss, 1e-5, 'cost');
      cost.dispose();
      const after = values(v);
      for (let i = 0; i < s0.length; i++) expect(after[i]).toBeCloseTo(s0[i] - lr * r.grad[i], 5);
      // Full-batch gradient descent on a convex loss with a small step: the loss falls at every step
      // (towards the labels' entropy, not 0).
      let prev = r.loss;
      for (let step = 0; step < 40; step++) {
        const c = opt.minimize(() => losses.listwiseSoftmaxCE(v, yT, { mask: mT }), true)!;
        const cur = scalarValue(c);
        expect(cur).toBeLessThan(prev);
        prev = cur;
        c.dispose();
      }
      expect(prev).toBeLessThan(r.loss - 0.05);
      expect(tf.memory().numTensors).toBe(before);
      // masked entries were never touched
      const final = values(v);
      for (let i = 0; i < m.length; i++) if (m[i] === 0) expect(final[i]).toBe(s0[i]);
      opt.dispose();
      [v, yT, mT].forEach((a) => a.dispose());
    });

    test('optimizer.minimize with the combined objective and adam', () => {
      const rng = mulberry32(961);
      const s0 = ref.scores(rng, 40);
      const t = ref.scores(rng, 40);
      const y = ref.gradedLabels(rng, 40, 2);
      const [tT, yT] = [t, y].map((a) => tf.tensor2d(a, [5, 8]));
      const v = tf.variable(tf.tensor2d(s0, [5, 8]));
      const opt = tf.train.adam(0.05);
      const f = () =>
        losses.rankingObjective(v, tT, yT, { weights: { pairwiseRankNet: 1, distillKL: 1, marginMSE: 0.5 } });
      const first = tf.tidy(() => scalarValue(f()));
      for (let i = 0; i < 30; i++) opt.minimize(f);
      const last = tf.tidy(() => scalarValue(f()));
      expect(last).toBeLessThan(first);
      opt.dispose();
      [v, tT, yT].forEach((a) => a.dispose());
    });

    test.each([
      ['pairwiseRankNet', (yTrue: tf.Tensor, yPred: tf.Tensor) => losses.pairwiseRankNet(yPred, yTrue)],
      ['distillKL', (yTrue: tf.Tensor, yPred: tf.Tensor) => losses.distillKL(yPred, yTrue, { temperature: 2 })],
      [
        'rankingObjective',
        (yTrue: tf.Tensor, yPred: tf.Tensor) =>
          losses.rankingObjective(yPred, null, yTrue, { weights: { listwiseSoftmaxCE: 1, pairwiseHinge: 0.5 } }),
      ],
    ] as Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Scalar]>)(
      'a LayersModel with a %s loss fits and its loss decreases',
      async (_name, lossFn) => {
        const F = 6;
        const G = 5;
        const N = 64;
        const rng = mulberry32(970);
        const xs = ref.scores(rng, N * F);
        // targets: a fixed linear map of the features, so the task is learnable
        const W = ref.scores(rng, F * G);
        const target = new Float32Array(N * G);
        for (let i = 0; i < N; i++)
          for (let g = 0; g < G; g++) {
            let v = 0;
            for (let f = 0; f < F; f++) v += xs[i * F + f] * W[f * G + g];
            target[i * G + g] = _name === 'distillKL' ? v : v > 0.5 ? 2 : v > -0.5 ? 1 : 0;
          }
        const xT = tf.tensor2d(xs, [N, F]);
        const yT = tf.tensor2d(target, [N, G]);
        const model = tf.sequential({
          layers: [tf.layers.dense({ units: G, inputShape: [F], kernelInitializer: 'zeros' })],
        });
        model.compile({ optimizer: tf.train.adam(0.05), loss: lossFn });
        const h1 = await model.fit(xT, yT, { epochs: 4, batchSize: 16, shuffle: false, verbose: 0 });
        const before = tf.memory().numTensors;
        const h2 = await model.fit(xT, yT, { epochs: 4, batchSize: 16, shuffle: false, verbose: 0 });
        expect(tf.memory().numTensors).toBe(before);
        const l = [...(h1.history.loss as number[]), ...(h2.history.loss as number[])];
        for (const v of l) expect(Number.isFinite(v)).toBe(true);
        expect(l[l.length - 1]).toBeLessThan(l[0]);
        model.dispose();
        xT.dispose();
        yT.dispose();
      },
    );
  });

  describe('larger inputs', () => {
    test('hiddenMSE [2, 8, 128, 256] with a token mask (forces the wasm heap to grow)', () => {
      const shape = [2, 8, 128, 256];
      const n = 2 * 8 * 128 * 256;
      const rng = mulberry32(980);
      const a = ref.scores(rng, n);
      const b = ref.scores(rng, n);
      const m = ref.tokenMask(rng, 8, 128);
      const want = ref.hiddenMSE(a, b, m, 2, 8, 128, 256);
      const [aT, bT] = [a, b].map((v) => tf.tensor(v, shape));
      const mT = tf.tensor2d(m, [8, 128]);
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => losses.hiddenMSE(x, bT, { tokenMask: mT }))(aT);
      expectLossClose(scalarValue(value), want.loss, 1e-5);
      expectGradClose(values(grad), want.grad, 1e-5);
      [value, grad, aT, bT, mT].forEach((v) => v.dispose());
    });

    test('rankingObjective on rows of 2000 candidates', () => {
      const rng = mulberry32(981);
      const n = 2 * 2000;
      const s = ref.scores(rng, n);
      const t = ref.scores(rng, n);
      const y = ref.gradedLabels(rng, n);
      const m = ref.mask2d(rng, 2, 2000);
      const o = { weights: { pairwiseRankNet: 1, listwiseSoftmaxCE: 1, distillKL: 1 }, temperature: 2 };
      const r = ref.rankingObjective(s, t, y, m, 2, 2000, o);
      const [sT, tT, yT, mT] = [s, t, y, m].map((v) => tf.tensor2d(v, [2, 2000]));
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => losses.rankingObjective(x, tT, yT, { ...o, mask: mT }))(
        sT,
      );
      expectLossClose(scalarValue(value), r.total, 1e-5);
      expectGradClose(values(grad), r.grad, 1e-5);
      [value, grad, sT, tT, yT, mT].forEach((v) => v.dispose());
    });
  });
});

describe('thread count through the TS API', () => {
  test('setNumThreads / getNumThreads round-trip, results unchanged', async () => {
    const { setNumThreads, getNumThreads } = await import('../src');
    await useBackend('cpu');
    const saved = getNumThreads();
    const rng = mulberry32(990);
    const sT = tf.tensor2d(ref.scores(rng, 512 * 64), [512, 64]);
    const yT = tf.tensor2d(ref.gradedLabels(rng, 512 * 64), [512, 64]);
    const run = () => {
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => losses.pairwiseRankNet(x, yT))(sT);
      const out = { v: scalarValue(value), g: Array.from(values(grad)) };
      value.dispose();
      grad.dispose();
      return out;
    };
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    const one = run();
    setNumThreads(2);
    expect(getNumThreads()).toBe(2);
    const two = run();
    expect(two.v).toBe(one.v);
    expect(two.g).toEqual(one.g);
    setNumThreads(saved);
    sT.dispose();
    yT.dispose();
  });
});
