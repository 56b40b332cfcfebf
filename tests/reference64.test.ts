// Checks of the test oracle itself (tests/helpers/reference64.ts): its gradients against float64
// central differences of its own losses, and hand-computed values. If these fail, the other
// suites' verdicts mean nothing.
import * as ref from './helpers/reference64';
import { TERMS, Term, finiteDiff, mulberry32 } from './helpers/reference64';

function expectFD(f: (x: Float64Array) => number, x: ArrayLike<number>, grad: ArrayLike<number>, label: string): void {
  const fd = finiteDiff(f, x, 1e-6);
  // float64 central differences: truncation ~h^2, rounding ~eps/h ~ 1e-10
  ref.expectGradClose(fd, grad, 1e-6, label, 1e-3);
}

describe('reference64 gradients match float64 central differences', () => {
  const opts = { temperature: 1.7, sigma: 1.3, margin: 0.8 };
  test.each(TERMS.map((t) => [t] as [Term]))('%s (masked, with a fully masked row)', (name) => {
    const rows = 4;
    const cols = 6;
    const rng = mulberry32(TERMS.indexOf(name) + 1);
    const s = Float64Array.from(ref.scores(rng, rows * cols, 1.5));
    const t = ref.scores(rng, rows * cols, 1.5);
    const y = name === 'pointwiseBCE' ? ref.unitLabels(rng, rows * cols) : ref.gradedLabels(rng, rows * cols);
    const mask = ref.mask2d(rng, rows, cols, { fullyMasked: [2] });
    if (name === 'pairwiseHinge') {
      // keep every pair away from the hinge's kink so the loss is differentiable at s
      for (let i = 0; i < s.length; i++) s[i] = Math.round(s[i] * 4) * 0.3 + 0.01 * i;
    }
    const f = (x: Float64Array) => ref.term(name, x, t, y, mask, rows, cols, opts).loss;
    const r = ref.term(name, s, t, y, mask, rows, cols, opts);
    expect(r.count).toBeGreaterThan(0);
    expectFD(f, s, r.grad, name);
    // masked entries: zero gradient
    for (let i = 0; i < mask.length; i++) if (mask[i] === 0) expect(r.grad[i]).toBe(0);
  });

  test('hiddenMSE with layers and a token mask', () => {
    const rng = mulberry32(20);
    const a = Float64Array.from(ref.scores(rng, 2 * 2 * 3 * 4));
    const b = ref.scores(rng, 48);
    const m = Float32Array.from([1, 0, 1, 1, 1, 0]);
    const r = ref.hiddenMSE(a, b, m, 2, 2, 3, 4);
    expect(r.count).toBe(2 * 4 * 4);
    expectFD((x) => ref.hiddenMSE(x, b, m, 2, 2, 3, 4).loss, a, r.grad, 'hidden');
  });

  test('attentionMSE with a token mask', () => {
    const rng = mulberry32(21);
    const a = Float64Array.from(ref.scores(rng, 2 * 2 * 3 * 3));
    const b = ref.scores(rng, 36);
    const m = Float32Array.from([1, 0, 1, 1, 1, 0]);
    const r = ref.attentionMSE(a, b, m, 2, 2, 3);
    expect(r.count).toBe(2 * 4 + 2 * 4);
    expectFD((x) => ref.attentionMSE(x, b, m, 2, 2, 3).loss, a, r.grad, 'attention');
  });
});

describe('reference64 hand-computed values', () => {
  test('pointwiseBCE', () => {
    const r = ref.pointwiseBCE([0, 2], [1, 0], null, 1, 2);
    expect(r.loss).toBeCloseTo((Math.log(2) + Math.log(1 + Math.exp(2))) / 2, 12);
  });
  test('pairwiseRankNet counts only y_i > y_j with both valid', () => {
    // pairs: (0,1) and (0,2): y = [2, 1, 0]; entry 2 masked -> only (0,1)
    const r = ref.pairwiseRankNet([1, 0, 5], [2, 1, 0], [1, 1, 0], 1, 3, 2);
    expect(r.count).toBe(1);
    expect(r.loss).toBeCloseTo(Math.log(1 + Math.exp(-2)), 12);
  });
  test('pairwiseHinge', () => {
    const r = ref.pairwiseHinge([0.5, 0, 3], [1, 0, 0], null, 1, 3, 1);
    // pairs (0,1): 1 - 0.5 = 0.5; (0,2): 1 - (0.5 - 3) = 3.5
    expect(r.count).toBe(2);
    expect(r.loss).toBeCloseTo(2, 12);
    expect(Array.from(r.grad)).toEqual([-1, 0.5, 0.5]);
  });
  test('listwiseSoftmaxCE equals -log softmax for a one-hot label, skips Y = 0 rows', () => {
    const r = ref.listwiseSoftmaxCE([1, 2, 3, 0, 0, 0], [0, 0, 2, 0, 0, 0], null, 2, 3);
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    expect(r.count).toBe(1);
    expect(r.loss).toBeCloseTo(lse - 3, 12);
  });
  test('distillKL is 0 when s = t, positive otherwise, and scales with T^2', () => {
    expect(ref.distillKL([1, 2, 3], [1, 2, 3], null, 1, 3, 2).loss).toBeCloseTo(0, 14);
    const a = ref.distillKL([0, 0], [Math.log(3), 0], null, 1, 2, 1).loss;
    // p = (3/4, 1/4), q = (1/2, 1/2): KL = 3/4 log(3/2) + 1/4 log(1/2)
    expect(a).toBeCloseTo(0.75 * Math.log(1.5) + 0.25 * Math.log(0.5), 12);
  });
  test('marginMSE and scoreMSE', () => {
    const m = ref.marginMSE([3, 1, 0], [1, 0, 1], null, 1, 3);
    // (2 - 1)^2, (3 - 0)^2 -> mean 5
    expect(m.loss).toBeCloseTo(5, 12);
    expect(ref.scoreMSE([1, 2], [0, 0], [1, 0], 1, 2).loss).toBe(1);
  });
  test('empty sets give 0 and a zero gradient', () => {
    for (const name of TERMS) {
      const r = ref.term(name, [1, 2, 3, 4], [0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0], 2, 2);
      expect([name, r.loss, r.count, ref.maxAbs(r.grad)]).toEqual([name, 0, 0, 0]);
    }
  });
  test('the PRNG is deterministic and the label generator makes ties', () => {
    const a = ref.scores(mulberry32(5), 10);
    const b = ref.scores(mulberry32(5), 10);
    expect(Array.from(a)).toEqual(Array.from(b));
    const y = ref.gradedLabels(mulberry32(6), 20);
    expect(new Set(y).size).toBeLessThan(20);
  });
});
