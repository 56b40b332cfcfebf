// The loss ops at the edges of their domains (docs/loss-contract.md): argument values outside a
// loss's domain are refused naming the argument, NaN labels in valid entries propagate, distillKL of
// identical distributions is exactly 0, and a native allocation that fails is a thrown error, never an
// abort (a child process under an address-space limit).
import { spawnSync } from 'child_process';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { losses } from '../../src';
import { addon, objective, weights32 } from '../helpers/addon';
import { expectError } from '../helpers/errors';
import { BACKENDS, BackendName, scalarValue, useBackend, values } from '../helpers/tfjs';

const ROOT = path.join(__dirname, '..', '..');

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randomScores = (rng: () => number, n: number) => Float32Array.from({ length: n }, () => 6 * rng() - 3);

/** The loss and d(loss)/ds of a loss op at s. */
function valueAndGrad(f: (s: tf.Tensor) => tf.Scalar, s: tf.Tensor): { loss: number; grad: Float32Array } {
  const { value, grad } = tf.valueAndGrad(f)(s);
  const r = { loss: scalarValue(value), grad: values(grad) };
  tf.dispose([value, grad]);
  return r;
}

describe.each(BACKENDS.map((b) => [b] as [BackendName]))('backend %s', (backend) => {
  beforeAll(() => useBackend(backend));

  describe('argument domains', () => {
    const s = () => tf.tensor2d([0.5, -1, 2, 0.25, 1, -0.5], [2, 3]);
    const y = () => tf.tensor2d([1, 0, 0, 0, 1, 0], [2, 3]);

    test('a negative sigma or margin is refused naming it; 0 is a plain loss', () => {
      expectError(
        () => losses.pairwiseRankNet(s(), y(), { sigma: -1 }),
        /pairwiseRankNet: sigma .*>= 0, got -1/,
        'FusedDistillError',
      );
      expectError(
        () => losses.pairwiseHinge(s(), y(), { margin: -0.5 }),
        /pairwiseHinge: margin .*>= 0, got -0.5/,
        'FusedDistillError',
      );
      // sigma 0: every pair costs log 2 and pulls nowhere; margin 0: a hinge at the pairs' order.
      const rn = valueAndGrad((x) => losses.pairwiseRankNet(x, y(), { sigma: 0 }), s());
      expect(rn.loss).toBeCloseTo(Math.log(2), 6);
      expect(Array.from(rn.grad).every((g) => g === 0)).toBe(true);
      const hinge = scalarValue(losses.pairwiseHinge(s(), y(), { margin: 0 }));
      expect(hinge).toBeCloseTo(1.5 / 4, 6); // only the pair (0, 2) of row 0 is out of order
    });

    test('a negative weight is refused naming the term; 0 turns the term off', () => {
      for (const f of [losses.rankingObjective, losses.rankingObjectiveParts] as const) {
        expectError(
          () => f(s(), s(), y(), { weights: { distillKL: -0.5, scoreMSE: 1 } }),
          /weights\.distillKL .*>= 0, got -0.5/,
          'FusedDistillError',
        );
      }
      const zero = scalarValue(
        losses.rankingObjective(s(), null, y(), { weights: { pairwiseHinge: 1, distillKL: 0 } }),
      );
      expect(zero).toBeCloseTo(scalarValue(losses.pairwiseHinge(s(), y())), 6);
    });

    test('BCE labels outside [0, 1] are refused naming the first index and value', () => {
      const bad = tf.tensor2d([1, 0, 0.5, 0, 1.5, -2], [2, 3]);
      expectError(
        () => losses.pointwiseBCE(s(), bad),
        /pointwiseBCE: y must hold labels in \[0, 1\] .*got 1\.5 at index 4/,
        'FusedDistillError',
      );
      expectError(
        () => losses.rankingObjective(s(), null, bad, { weights: { pointwiseBCE: 1, pairwiseRankNet: 1 } }),
        /rankingObjective: y .*\[0, 1\].*got 1\.5 at index 4/,
        'FusedDistillError',
      );
      // a masked-out label is not read; graded labels are fine where BCE is off
      const mask = tf.tensor2d([1, 1, 1, 1, 0, 0], [2, 3]);
      expect(Number.isFinite(scalarValue(losses.pointwiseBCE(s(), bad, { mask })))).toBe(true);
      const graded = tf.tensor2d([3, 0, 2, 1, 0, 2], [2, 3]);
      expect(Number.isFinite(scalarValue(losses.pairwiseRankNet(s(), graded)))).toBe(true);
    });

    test('the addon refuses the same values itself (its last line of defence)', () => {
      const sv = Float32Array.from([0.5, -1, 2]);
      const yv = Float32Array.from([1, 0, 0]);
      const result = new Float32Array(8);
      const call = (w: Record<string, number>, sigma: number, margin: number, y = yv) =>
        addon.rankingObjective(sv, sv, y, null, 1, 3, weights32(w), 1, sigma, margin, null, result);
      expectError(
        () => call({ pairwiseRankNet: 1 }, -1, 1),
        /rankingObjective: sigma must be >= 0, got -1/,
        'RangeError',
      );
      expectError(
        () => call({ pairwiseHinge: 1 }, 1, -2),
        /rankingObjective: margin must be >= 0, got -2/,
        'RangeError',
      );
      expectError(() => call({ scoreMSE: -1 }, 1, 1), /weights\.scoreMSE must be >= 0, got -1/, 'RangeError');
      expectError(
        () => call({ pointwiseBCE: 1 }, 1, 1, Float32Array.from([0, -0.25, 1])),
        /y must hold labels in \[0, 1\] for pointwiseBCE, got -0\.25 at index 1/,
        'RangeError',
      );
    });
  });

  describe('NaN labels', () => {
    const rng = mulberry32(7);
    const sv = randomScores(rng, 10);
    const labels = Float32Array.from([1, 0, 0.5, 0, 1, 0, 1, 0, 0.5, 1]);
    const withNaN = labels.slice();
    withNaN[2] = NaN; // row 0, entry 2
    type Op = (s: tf.Tensor, y: tf.Tensor, o: { mask?: tf.Tensor }) => tf.Scalar;
    const ops: Array<[string, Op, boolean]> = [
      // name, op, whether a NaN label reaches the gradient of the whole row (else its entry only)
      ['pairwiseRankNet', losses.pairwiseRankNet, true],
      ['pairwiseHinge', losses.pairwiseHinge, true],
      ['listwiseSoftmaxCE', losses.listwiseSoftmaxCE, true],
      ['pointwiseBCE', losses.pointwiseBCE, false],
    ];

    test.each(ops)('%s: a NaN label in a valid entry makes the loss and its gradient NaN', (_, op, wholeRow) => {
      const { loss, grad } = valueAndGrad((s) => op(s, tf.tensor2d(withNaN, [2, 5]), {}), tf.tensor2d(sv, [2, 5]));
      expect(loss).toBeNaN();
      for (let i = 0; i < 5; ++i) expect(Number.isNaN(grad[i])).toBe(wholeRow || i === 2);
      // row 1 has no NaN label: its gradient is finite (scaled by the same count)
      for (let i = 5; i < 10; ++i) expect(Number.isFinite(grad[i])).toBe(true);
    });

    test.each(ops)('%s: a NaN label in a masked-out entry changes nothing, bit for bit', (_, op) => {
      const mask = tf.tensor2d([1, 1, 0, 1, 1, 1, 1, 1, 1, 1], [2, 5]);
      const zeroed = labels.slice();
      zeroed[2] = 0;
      const a = valueAndGrad((s) => op(s, tf.tensor2d(withNaN, [2, 5]), { mask }), tf.tensor2d(sv, [2, 5]));
      const b = valueAndGrad((s) => op(s, tf.tensor2d(zeroed, [2, 5]), { mask }), tf.tensor2d(sv, [2, 5]));
      expect(a.loss).toBe(b.loss);
      expect(Array.from(a.grad)).toEqual(Array.from(b.grad));
      expect(Number.isFinite(a.loss)).toBe(true);
    });

    test('pairwise: a row of NaN labels only (no ordered pair anywhere) still gives NaN', () => {
      const y = tf.tensor2d([NaN, NaN, NaN], [1, 3]);
      const s = tf.tensor2d([0.5, 1, -1], [1, 3]);
      expect(scalarValue(losses.pairwiseRankNet(s, y))).toBeNaN();
      expect(scalarValue(losses.pairwiseHinge(s, y))).toBeNaN();
      // one valid entry has no pair: nothing to propagate into
      const mask = tf.tensor2d([1, 0, 0], [1, 3]);
      expect(scalarValue(losses.pairwiseRankNet(s, y, { mask }))).toBe(0);
    });
  });

  describe('distillKL of identical distributions', () => {
    test.each([1, 0.7, 3])('one candidate per row gives exactly 0, and gradient 0 (T = %p)', (temperature) => {
      const rng = mulberry32(11);
      const s = tf.tensor2d(randomScores(rng, 8), [8, 1]);
      const t = tf.tensor2d(randomScores(rng, 8), [8, 1]);
      const { loss, grad } = valueAndGrad((x) => losses.distillKL(x, t, { temperature }), s);
      expect(loss).toBe(0);
      expect(Array.from(grad).every((g) => g === 0)).toBe(true);
      // one valid entry under a mask
      const sm = tf.tensor2d(randomScores(rng, 12), [3, 4]);
      const tm = tf.tensor2d(randomScores(rng, 12), [3, 4]);
      const mask = tf.tensor2d([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1], [3, 4]);
      const m = valueAndGrad((x) => losses.distillKL(x, tm, { mask, temperature }), sm);
      expect(m.loss).toBe(0);
      expect(Array.from(m.grad).every((g) => g === 0)).toBe(true);
    });

    test.each([1, 0.7, 3])('t == s gives exactly 0, and any rows give >= 0 (T = %p)', (temperature) => {
      const rng = mulberry32(13);
      const sv = randomScores(rng, 64);
      const same = valueAndGrad(
        (x) => losses.distillKL(x, tf.tensor2d(sv, [8, 8]), { temperature }),
        tf.tensor2d(sv, [8, 8]),
      );
      expect(same.loss).toBe(0);
      expect(Array.from(same.grad).every((g) => g === 0)).toBe(true);
      for (let k = 0; k < 20; ++k) {
        const t = tf.tensor2d(randomScores(rng, 64), [8, 8]);
        expect(scalarValue(losses.distillKL(tf.tensor2d(sv, [8, 8]), t, { temperature }))).toBeGreaterThanOrEqual(0);
        t.dispose();
      }
    });
  });
});

test('the addon gives distillKL 0 on one-candidate rows for any temperature', () => {
  const rng = mulberry32(17);
  for (const temperature of [0.1, 0.7, 1.3, 5]) {
    const r = objective(randomScores(rng, 6), randomScores(rng, 6), null, null, 6, 1, {
      weights: { distillKL: 1 },
      temperature,
    });
    expect(r.total).toBe(0);
    expect(Array.from(r.grad).every((g) => g === 0)).toBe(true);
  }
});

describe('out of memory', () => {
  const child = (cols: number, limitKb?: number) => {
    const node = `node -r ./tests/helpers/ts_register.js tests/helpers/oom_child.ts ${cols}`;
    const r = spawnSync('bash', ['-c', limitKb ? `ulimit -v ${limitKb}; exec ${node}` : `exec ${node}`], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { status: r.status, signal: r.signal, stderr: r.stderr, lines };
  };

  test('distillKL whose working memory cannot be allocated throws a FusedDistillError naming the op and the bytes', () => {
    // The child's address space with small inputs, then a limit that holds the [1, 2^27] inputs
    // (1 GiB) but not the kernel's working memory (1.5 GiB more).
    const base = child(4096);
    expect(base.status).toBe(0);
    const baseKb = base.lines[0].vmKb as number;
    const cols = 2 ** 27;
    const r = child(cols, baseKb + 1_800_000);
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    expect(r.stderr).not.toMatch(/terminate|bad_alloc|Aborted/);
    const outcome = r.lines[1];
    expect(outcome.name).toBe('FusedDistillError');
    expect(outcome.message).toMatch(/^fused-distill: distillKL: out of memory: needs \d+ bytes/);
    const bytes = Number(/needs (\d+) bytes/.exec(outcome.message as string)![1]);
    expect(bytes).toBeGreaterThanOrEqual(3 * 4 * cols); // two rows of scratch and a discarded gradient row
  }, 240_000);
});
