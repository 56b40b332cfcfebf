// The raw addon's CPU kernels against the float64 references of tests/helpers/reference64.ts,
// term by term and combined, on fresh seeded random inputs.
import { addon, attention, attentionLoss, hidden, hiddenLoss, objective, rankingTotal } from './helpers/addon';
import { expectError } from './helpers/errors';
import * as ref from './helpers/reference64';
import { TERMS, Term, expectGradClose, expectLossClose, mulberry32 } from './helpers/reference64';

const TEACHER_TERMS: Term[] = ['distillKL', 'marginMSE', 'scoreMSE'];
const REL = 1e-5;

interface Inputs {
  s: Float32Array;
  t: Float32Array;
  y: Float32Array;
  mask: Float32Array | null;
}

function makeInputs(seed: number, name: Term, rows: number, cols: number, masked: boolean, scale = 2): Inputs {
  const rng = mulberry32(seed);
  const n = rows * cols;
  return {
    s: ref.scores(rng, n, scale),
    t: ref.scores(rng, n, scale),
    y: name === 'pointwiseBCE' ? ref.unitLabels(rng, n) : ref.gradedLabels(rng, n),
    mask: masked ? ref.mask2d(rng, rows, cols) : null,
  };
}

/** Options that differ from the defaults, so a kernel ignoring them fails. */
const NON_DEFAULT = { temperature: 2.5, sigma: 1.7, margin: 0.6 };

/** Runs one term through the addon with weight w and checks loss, parts and gradient against reference64. */
function checkTerm(
  name: Term,
  inp: Inputs,
  rows: number,
  cols: number,
  opts: { temperature?: number; sigma?: number; margin?: number } = {},
  w = 1,
  rel = REL,
): ref.LossGrad {
  const k = TERMS.indexOf(name);
  const needsT = TEACHER_TERMS.includes(name);
  const r = ref.term(name, inp.s, inp.t, inp.y, inp.mask, rows, cols, opts);
  // Pass only what the term reads: the other input is null.
  const got = objective(inp.s, needsT ? inp.t : null, needsT ? null : inp.y, inp.mask, rows, cols, {
    weights: { [name]: w },
    ...opts,
  });
  expectLossClose(got.total, w * r.loss, rel, name);
  for (let j = 0; j < 7; j++) {
    if (j === k) expectLossClose(got.parts[j], w * r.loss, rel, `${name} part`);
    else expect(got.parts[j]).toBe(0);
  }
  // An empty set must give an exactly zero gradient; otherwise the gradient's scale is |w| / count.
  expectGradClose(
    got.grad,
    r.grad.map((g) => w * g),
    rel,
    name,
    r.count > 0 ? Math.abs(w) / r.count : 0,
  );
  return r;
}

const SHAPES: Array<[number, number]> = [
  [1, 7], // B = 1
  [6, 1], // G = 1
  [9, 7],
  [4, 257],
  [2, 2000], // long rows
];

describe.each(TERMS.map((t, i) => [t, i] as [Term, number]))('%s vs reference64', (name, k) => {
  test.each(SHAPES)('B=%i G=%i, unmasked and masked, default and non-default options', (rows, cols) => {
    let seed = 1000 * k + rows * 31 + cols;
    for (const masked of [false, true]) {
      checkTerm(name, makeInputs(seed++, name, rows, cols, masked), rows, cols);
      checkTerm(name, makeInputs(seed++, name, rows, cols, masked), rows, cols, NON_DEFAULT, 0.75);
    }
  });

  test('the set being averaged over is not empty in the random cases (sanity of the generator)', () => {
    const r = ref.term(name, ...argsOf(makeInputs(7, name, 9, 7, true)), 9, 7);
    expect(r.count).toBeGreaterThan(0);
    expect(r.loss).not.toBe(0);
  });

  test('fully masked rows get exactly zero gradient and do not count', () => {
    const rows = 5;
    const cols = 6;
    const inp = makeInputs(50 + k, name, rows, cols, false);
    const rng = mulberry32(99 + k);
    inp.mask = ref.mask2d(rng, rows, cols, { fullyMasked: [1, 3], pValid: 0.8 });
    const r = checkTerm(name, inp, rows, cols, NON_DEFAULT);
    // Changing the values in the fully masked rows changes nothing, bit for bit.
    const base = objective(inp.s, inp.t, inp.y, inp.mask, rows, cols, { weights: { [name]: 1 }, ...NON_DEFAULT });
    const s2 = inp.s.slice();
    const t2 = inp.t.slice();
    const y2 = inp.y.slice();
    for (const row of [1, 3])
      for (let c = 0; c < cols; c++) {
        s2[row * cols + c] = 1e3 * (c + 1);
        t2[row * cols + c] = -7;
        y2[row * cols + c] = c % 2;
      }
    const changed = objective(s2, t2, y2, inp.mask, rows, cols, { weights: { [name]: 1 }, ...NON_DEFAULT });
    expect(changed.total).toBe(base.total);
    expect(Array.from(changed.grad)).toEqual(Array.from(base.grad));
    for (const row of [1, 3]) for (let c = 0; c < cols; c++) expect(base.grad[row * cols + c]).toBe(0);
    expect(r.count).toBeGreaterThan(0);
  });

  test('everything masked: loss 0 and an all-zero gradient', () => {
    const inp = makeInputs(70 + k, name, 3, 5, false);
    inp.mask = new Float32Array(15);
    const got = objective(inp.s, inp.t, inp.y, inp.mask, 3, 5, { weights: { [name]: 1 } });
    expect(got.total).toBe(0);
    expect(Array.from(got.parts)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(got.grad)).toEqual(new Array(15).fill(0));
  });

  function extremeInputs(): Inputs {
    const inp = makeInputs(90 + k, name, 4, 33, true);
    const rng = mulberry32(91 + k);
    for (let i = 0; i < inp.s.length; i++) {
      inp.s[i] = rng() < 0.5 ? 1e4 : -1e4;
      inp.t[i] = rng() < 0.5 ? 1e4 : -1e4;
    }
    inp.s[5] = 1e4 - 3; // not every value on the two extremes
    inp.t[6] = -1e4 + 2;
    return inp;
  }

  test('logits of +-1e4 give a finite loss and a finite gradient', () => {
    const inp = extremeInputs();
    for (const opts of [{}, NON_DEFAULT]) {
      const got = objective(inp.s, inp.t, inp.y, inp.mask, 4, 33, { weights: { [name]: 1 }, ...opts });
      expect(Number.isFinite(got.total)).toBe(true);
      for (const g of got.grad) if (!Number.isFinite(g)) throw new Error(`non-finite gradient entry ${g}`);
    }
  });

  test('logits of +-1e4: loss and gradient still match the reference (1e-5)', () => {
    const inp = extremeInputs();
    for (const opts of [{}, NON_DEFAULT]) checkTerm(name, inp, 4, 33, opts);
  });

  test('grad = null and parts = null give the same total, bit for bit', () => {
    const inp = makeInputs(110 + k, name, 7, 13, true);
    const withGrad = objective(inp.s, inp.t, inp.y, inp.mask, 7, 13, { weights: { [name]: 1.5 }, ...NON_DEFAULT });
    const w = new Float32Array(7);
    w[k] = 1.5;
    const total = rankingTotal(inp.s, inp.t, inp.y, inp.mask, 7, 13, w, 2.5, 1.7, 0.6, null);
    expect(total).toBe(withGrad.total);
  });

  test('NaN in a valid student entry propagates to the loss; NaN in a masked entry does not', () => {
    const rows = 3;
    const cols = 8;
    const inp = makeInputs(130 + k, name, rows, cols, false);
    // Row 1: distinct labels (so entry 3 is in pairs), entry 0 valid, entry 3 valid, entry 5 masked.
    for (let c = 0; c < cols; c++) inp.y[cols + c] = name === 'pointwiseBCE' ? c % 2 : c % 4;
    inp.y[cols + 5] = 3;
    inp.mask = new Float32Array(rows * cols).fill(1);
    inp.mask[cols + 5] = 0;
    const clean = objective(inp.s, inp.t, inp.y, inp.mask, rows, cols, { weights: { [name]: 1 } });
    expect(Number.isFinite(clean.total)).toBe(true);

    const sValid = inp.s.slice();
    sValid[cols + 3] = Number.NaN;
    const nanValid = objective(sValid, inp.t, inp.y, inp.mask, rows, cols, { weights: { [name]: 1 } });
    expect(nanValid.total).toBeNaN();

    const sMasked = inp.s.slice();
    const tMasked = inp.t.slice();
    const yMasked = inp.y.slice();
    sMasked[cols + 5] = Number.NaN;
    tMasked[cols + 5] = Number.NaN;
    yMasked[cols + 5] = Number.NaN;
    const nanMasked = objective(sMasked, tMasked, yMasked, inp.mask, rows, cols, { weights: { [name]: 1 } });
    expect(nanMasked.total).toBe(clean.total);
    expect(Array.from(nanMasked.grad)).toEqual(Array.from(clean.grad));
  });
});

function argsOf(inp: Inputs): [Float32Array, Float32Array, Float32Array, Float32Array | null] {
  return [inp.s, inp.t, inp.y, inp.mask];
}

describe('teacher NaN and label NaN', () => {
  test.each(TEACHER_TERMS)('%s: NaN in a valid teacher entry propagates', (name) => {
    const inp = makeInputs(200, name, 2, 6, false);
    inp.t[7] = Number.NaN;
    expect(objective(inp.s, inp.t, null, null, 2, 6, { weights: { [name]: 1 } }).total).toBeNaN();
  });
  test('pointwiseBCE: NaN in a valid label propagates', () => {
    const inp = makeInputs(201, 'pointwiseBCE', 2, 6, false);
    inp.y[4] = Number.NaN;
    expect(objective(inp.s, null, inp.y, null, 2, 6, { weights: { pointwiseBCE: 1 } }).total).toBeNaN();
  });
  test.each(['scoreMSE', 'pointwiseBCE'] as Term[])(
    '%s: +Inf in a valid student entry gives a non-finite loss',
    (name) => {
      const inp = makeInputs(202, name, 2, 6, false);
      inp.s[3] = Number.POSITIVE_INFINITY;
      inp.y[3] = 0;
      const got = objective(inp.s, inp.t, inp.y, null, 2, 6, { weights: { [name]: 1 } });
      expect(Number.isFinite(got.total)).toBe(false);
    },
  );
});

describe('ties and empty sets', () => {
  test.each(['pairwiseRankNet', 'pairwiseHinge'] as Term[])(
    '%s: all-ties labels -> empty P: loss 0, zero gradient',
    (name) => {
      const rng = mulberry32(300);
      const s = ref.scores(rng, 4 * 9);
      const y = new Float32Array(36).fill(2);
      const got = objective(s, null, y, null, 4, 9, { weights: { [name]: 1 } });
      expect(got.total).toBe(0);
      expect(got.parts[TERMS.indexOf(name)]).toBe(0);
      expect(Array.from(got.grad)).toEqual(new Array(36).fill(0));
    },
  );

  test.each(['pairwiseRankNet', 'pairwiseHinge'] as Term[])(
    '%s: ties in some rows only: the tied rows get zero gradient',
    (name) => {
      const rng = mulberry32(301);
      const rows = 4;
      const cols = 9;
      const s = ref.scores(rng, rows * cols);
      const y = ref.gradedLabels(rng, rows * cols);
      for (let c = 0; c < cols; c++) y[2 * cols + c] = 1; // row 2 all tied
      y[cols] = 3; // row 1 has at least one pair
      const r = ref.term(name, s, null, y, null, rows, cols);
      const got = objective(s, null, y, null, rows, cols, { weights: { [name]: 1 } });
      expectLossClose(got.total, r.loss, REL, name);
      expectGradClose(got.grad, r.grad, REL, name);
      for (let c = 0; c < cols; c++) expect(got.grad[2 * cols + c]).toBe(0);
    },
  );

  test('listwiseSoftmaxCE: rows with all-zero labels are outside the set', () => {
    const rng = mulberry32(302);
    const s = ref.scores(rng, 3 * 5);
    const y = new Float32Array(15);
    y[5 + 2] = 2; // only row 1 has relevance
    const r = ref.listwiseSoftmaxCE(s, y, null, 3, 5);
    expect(r.count).toBe(1);
    const got = objective(s, null, y, null, 3, 5, { weights: { listwiseSoftmaxCE: 1 } });
    expectLossClose(got.total, r.loss, REL);
    expectGradClose(got.grad, r.grad, REL);
    for (const c of [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]) expect(got.grad[c]).toBe(0);
  });

  test('listwiseSoftmaxCE: relevance only on masked entries -> the row is outside the set', () => {
    const s = Float32Array.from([1, 2, 3, 4]);
    const y = Float32Array.from([0, 0, 1, 0]);
    const mask = Float32Array.from([1, 1, 0, 1]);
    const got = objective(s, null, y, mask, 1, 4, { weights: { listwiseSoftmaxCE: 1 } });
    expect(got.total).toBe(0);
    expect(Array.from(got.grad)).toEqual([0, 0, 0, 0]);
  });

  test('marginMSE: rows whose entry 0 is masked do not count', () => {
    const rng = mulberry32(303);
    const s = ref.scores(rng, 12);
    const t = ref.scores(rng, 12);
    const mask = Float32Array.from([0, 1, 1, 1, /**/ 1, 1, 0, 1, /**/ 0, 1, 1, 1]);
    const r = ref.marginMSE(s, t, mask, 3, 4);
    expect(r.count).toBe(2);
    const got = objective(s, t, null, mask, 3, 4, { weights: { marginMSE: 1 } });
    expectLossClose(got.total, r.loss, REL);
    expectGradClose(got.grad, r.grad, REL);
    for (const c of [0, 1, 2, 3, 8, 9, 10, 11]) expect(got.grad[c]).toBe(0);
  });

  test('marginMSE with a single candidate (G = 1): empty set, loss 0, zero gradient', () => {
    const got = objective(Float32Array.from([1, 2]), Float32Array.from([3, 5]), null, null, 2, 1, {
      weights: { marginMSE: 1 },
    });
    expect(got.total).toBe(0);
    expect(Array.from(got.grad)).toEqual([0, 0]);
  });

  test('distillKL: a row with one valid entry has zero loss and zero gradient but counts as a row', () => {
    const s = Float32Array.from([0.3, 5, -1, /**/ 1, 2, 3]);
    const t = Float32Array.from([2, -3, 1, /**/ 3, 2, 1]);
    const mask = Float32Array.from([0, 1, 0, /**/ 1, 1, 1]);
    const r = ref.distillKL(s, t, mask, 2, 3, 1.5);
    expect(r.count).toBe(2);
    const got = objective(s, t, null, mask, 2, 3, { weights: { distillKL: 1 }, temperature: 1.5 });
    expectLossClose(got.total, r.loss, REL);
    expectGradClose(got.grad, r.grad, REL);
    expect(Math.abs(got.grad[1])).toBeLessThan(1e-7);
  });

  test('distillKL: the gradient is T (q - p) / rows (checked on a hand-sized case)', () => {
    const T = 2;
    const s = Float32Array.from([1, 0, -1]);
    const t = Float32Array.from([0, 0, 0]);
    const q = [Math.exp(0.5), 1, Math.exp(-0.5)];
    const zq = q[0] + q[1] + q[2];
    const got = objective(s, t, null, null, 1, 3, { weights: { distillKL: 1 }, temperature: T });
    for (let i = 0; i < 3; i++) expect(got.grad[i]).toBeCloseTo(T * (q[i] / zq - 1 / 3), 6);
    const kl = [0, 1, 2].reduce((a, i) => a + (1 / 3) * (Math.log(1 / 3) - Math.log(q[i] / zq)), 0);
    expect(got.total).toBeCloseTo(T * T * kl, 6);
  });
});

describe('combined objective', () => {
  const W: Record<Term, number> = {
    pointwiseBCE: 0.3,
    pairwiseRankNet: 1,
    pairwiseHinge: 0.7,
    listwiseSoftmaxCE: 0.5,
    distillKL: 2,
    marginMSE: 0.25,
    scoreMSE: 0.1,
  };
  test.each([
    [1, 7, false],
    [11, 9, true],
    [3, 257, true],
    [2, 2000, true],
  ] as Array<[number, number, boolean]>)(
    'all seven weights, B=%i G=%i masked=%s: total, parts and gradient',
    (rows, cols, masked) => {
      const rng = mulberry32(400 + rows + cols);
      const n = rows * cols;
      const s = ref.scores(rng, n, 2);
      const t = ref.scores(rng, n, 2);
      const y = ref.gradedLabels(rng, n, 2); // 0/1 graded labels: valid for BCE and the pairwise terms
      const mask = masked ? ref.mask2d(rng, rows, cols) : null;
      const opts = { weights: W, temperature: 3, sigma: 0.7, margin: 0.4 };
      const r = ref.rankingObjective(s, t, y, mask, rows, cols, opts);
      const got = objective(s, t, y, mask, rows, cols, opts);
      expectLossClose(got.total, r.total, REL, 'total');
      TERMS.forEach((name, k) => expectLossClose(got.parts[k], r.parts[k], REL, name));
      expectLossClose(
        got.parts.reduce((a, b) => a + b, 0),
        got.total,
        1e-6, // the total and the parts are each rounded to float32 in the result operand
        'sum of parts',
      );
      expectGradClose(got.grad, r.grad, REL, 'objective');
    },
  );

  test('zero weights: zero-weight terms do not need their inputs', () => {
    const rng = mulberry32(410);
    const s = ref.scores(rng, 40);
    const t = ref.scores(rng, 40);
    const y = ref.gradedLabels(rng, 40);
    // teacher-only terms: y may be null
    const a = ref.rankingObjective(s, t, null, null, 5, 8, { weights: { distillKL: 0.5, scoreMSE: 2 } });
    const ga = objective(s, t, null, null, 5, 8, { weights: { distillKL: 0.5, scoreMSE: 2 } });
    expectLossClose(ga.total, a.total);
    expectGradClose(ga.grad, a.grad);
    // label-only terms: t may be null
    const b = ref.rankingObjective(s, null, y, null, 5, 8, { weights: { pairwiseHinge: 1, listwiseSoftmaxCE: 3 } });
    const gb = objective(s, null, y, null, 5, 8, { weights: { pairwiseHinge: 1, listwiseSoftmaxCE: 3 } });
    expectLossClose(gb.total, b.total);
    expectGradClose(gb.grad, b.grad);
  });

  test('a term with non-zero weight whose input is null throws, naming it', () => {
    const s = new Float32Array(6);
    const w = new Float32Array(7);
    w[TERMS.indexOf('distillKL')] = 1;
    expectError(() => rankingTotal(s, null, null, null, 2, 3, w, 1, 1, 1, null), /\bt\b/);
    w.fill(0);
    w[TERMS.indexOf('pairwiseRankNet')] = 1;
    expectError(() => rankingTotal(s, null, null, null, 2, 3, w, 1, 1, 1, null), /\by\b/);
  });

  test('all weights zero: total 0 and zero gradient', () => {
    const s = Float32Array.from([1, 2, 3, 4]);
    const got = objective(s, null, null, null, 2, 2, { weights: {} });
    expect(got.total).toBe(0);
    expect(Array.from(got.grad)).toEqual([0, 0, 0, 0]);
  });

  test('inputs given as offset views into larger buffers', () => {
    const rng = mulberry32(420);
    const rows = 6;
    const cols = 11;
    const n = rows * cols;
    const big = new Float32Array(4 * n + 40);
    const s = big.subarray(3, 3 + n);
    const t = big.subarray(n + 10, 2 * n + 10);
    const y = big.subarray(2 * n + 20, 3 * n + 20);
    const m = big.subarray(3 * n + 30, 4 * n + 30);
    s.set(ref.scores(rng, n));
    t.set(ref.scores(rng, n));
    y.set(ref.gradedLabels(rng, n));
    m.set(ref.mask2d(rng, rows, cols));
    const gradBuf = new Float32Array(n + 7);
    const grad = gradBuf.subarray(5, 5 + n);
    const opts = { weights: { pairwiseRankNet: 1, distillKL: 1, marginMSE: 1 }, temperature: 2 };
    const r = ref.rankingObjective(s, t, y, m, rows, cols, opts);
    const total = rankingTotal(s, t, y, m, rows, cols, Float32Array.from([0, 1, 0, 0, 1, 1, 0]), 2, 1, 1, grad);
    expectLossClose(total, r.total);
    expectGradClose(grad, r.grad);
    // nothing written outside the view
    for (const i of [0, 1, 2, 3, 4, n + 5, n + 6]) expect(gradBuf[i]).toBe(0);
  });
});

describe('hiddenMSE vs reference64', () => {
  test.each([
    [1, 1, 1, 1, false],
    [1, 2, 5, 16, false],
    [1, 3, 7, 33, true],
    [3, 2, 9, 64, false],
    [4, 3, 10, 24, true],
  ] as Array<[number, number, number, number, boolean]>)(
    'layers=%i B=%i L=%i H=%i masked=%s',
    (layers, batch, len, hs, masked) => {
      const rng = mulberry32(500 + layers * 7 + len);
      const n = layers * batch * len * hs;
      const a = ref.scores(rng, n);
      const b = ref.scores(rng, n);
      const m = masked ? ref.tokenMask(rng, batch, len, { emptyRow: 1 }) : null;
      const r = ref.hiddenMSE(a, b, m, layers, batch, len, hs);
      const got = hidden(a, b, m, layers, batch, len, hs);
      expectLossClose(got.loss, r.loss);
      expectGradClose(got.grad, r.grad);
    },
  );

  test('the loss is the same, bit for bit, with and without a gradient buffer (stable summation order)', () => {
    const rng = mulberry32(505);
    for (const [layers, batch, len, hs] of [
      [3, 2, 9, 64],
      [4, 3, 10, 24],
      [1, 4, 16, 100],
    ]) {
      const n = layers * batch * len * hs;
      const a = ref.scores(rng, n);
      const b = ref.scores(rng, n);
      for (const m of [null, ref.tokenMask(rng, batch, len)])
        expect([layers, batch, len, hs, hiddenLoss(a, b, m, layers, batch, len, hs, null)]).toEqual([
          layers,
          batch,
          len,
          hs,
          hidden(a, b, m, layers, batch, len, hs).loss,
        ]);
    }
  });

  test('the mask applies to every layer (layer > 0 tokens masked too)', () => {
    const layers = 2;
    const a = Float32Array.from([1, 2, 3, 4, /* layer 1 */ 5, 6, 7, 8]); // B=1, L=2, H=2
    const b = new Float32Array(8);
    const m = Float32Array.from([1, 0]);
    const got = hidden(a, b, m, layers, 1, 2, 2);
    // valid: layer0 tok0 (1,2), layer1 tok0 (5,6): (1+4+25+36)/4
    expect(got.loss).toBeCloseTo(66 / 4, 10);
    expect(Array.from(got.grad)).toEqual([0.5, 1, 0, 0, 2.5, 3, 0, 0]);
  });

  test('all tokens masked: loss 0, zero gradient', () => {
    const got = hidden(Float32Array.from([1, 2, 3, 4]), new Float32Array(4), new Float32Array(2), 1, 1, 2, 2);
    expect(got.loss).toBe(0);
    expect(Array.from(got.grad)).toEqual([0, 0, 0, 0]);
  });

  test('NaN in a valid token propagates; NaN in a masked token does not', () => {
    const rng = mulberry32(510);
    const a = ref.scores(rng, 2 * 3 * 4);
    const b = ref.scores(rng, 2 * 3 * 4);
    const m = Float32Array.from([1, 1, 0, 1, 0, 0]); // B=2, L=3, H=4
    const clean = hidden(a, b, m, 1, 2, 3, 4);
    const a1 = a.slice();
    a1[4 + 2] = Number.NaN; // token (0,1): valid
    expect(hidden(a1, b, m, 1, 2, 3, 4).loss).toBeNaN();
    const a2 = a.slice();
    const b2 = b.slice();
    a2[8 + 1] = Number.NaN; // token (0,2): masked
    b2[20] = Number.NaN; // token (1,2): masked
    const masked = hidden(a2, b2, m, 1, 2, 3, 4);
    expect(masked.loss).toBe(clean.loss);
    expect(Array.from(masked.grad)).toEqual(Array.from(clean.grad));
  });
});

describe('attentionMSE vs reference64', () => {
  test.each([
    [1, 1, 1, false],
    [1, 2, 6, false],
    [2, 3, 8, true],
    [3, 2, 17, true],
    [2, 12, 32, true],
  ] as Array<[number, number, number, boolean]>)('B=%i A=%i L=%i masked=%s', (batch, heads, len, masked) => {
    const rng = mulberry32(600 + heads * 3 + len);
    const n = batch * heads * len * len;
    const a = ref.scores(rng, n);
    const b = ref.scores(rng, n);
    const m = masked ? ref.tokenMask(rng, batch, len) : null;
    if (m && len > 2) m[1] = 0; // a hole in the middle of sequence 0, not just trailing padding
    const r = ref.attentionMSE(a, b, m, batch, heads, len);
    const got = attention(a, b, m, batch, heads, len);
    expectLossClose(got.loss, r.loss);
    expectGradClose(got.grad, r.grad);
  });

  test('the loss is the same, bit for bit, with and without a gradient buffer (stable summation order)', () => {
    const rng = mulberry32(605);
    for (const [batch, heads, len] of [
      [2, 12, 32],
      [3, 2, 17],
      [1, 2, 6],
    ]) {
      const n = batch * heads * len * len;
      const a = ref.scores(rng, n);
      const b = ref.scores(rng, n);
      for (const m of [null, ref.tokenMask(rng, batch, len)])
        expect([batch, heads, len, attentionLoss(a, b, m, batch, heads, len, null)]).toEqual([
          batch,
          heads,
          len,
          attention(a, b, m, batch, heads, len).loss,
        ]);
    }
  });

  test('valid iff query AND key token are valid (hand-sized)', () => {
    // B=1, A=1, L=2, token 1 masked: only (q=0, k=0) counts.
    const a = Float32Array.from([3, 1, 1, 1]);
    const b = Float32Array.from([1, 0, 0, 0]);
    const got = attention(a, b, Float32Array.from([1, 0]), 1, 1, 2);
    expect(got.loss).toBeCloseTo(4, 10);
    expect(Array.from(got.grad)).toEqual([4, 0, 0, 0]);
  });

  test('a sequence with no valid token contributes nothing; all masked gives 0', () => {
    const rng = mulberry32(610);
    const a = ref.scores(rng, 2 * 2 * 3 * 3);
    const b = ref.scores(rng, 2 * 2 * 3 * 3);
    const m = Float32Array.from([0, 0, 0, 1, 1, 0]);
    const r = ref.attentionMSE(a, b, m, 2, 2, 3);
    const got = attention(a, b, m, 2, 2, 3);
    expectLossClose(got.loss, r.loss);
    expectGradClose(got.grad, r.grad);
    const none = attention(a, b, new Float32Array(6), 2, 2, 3);
    expect(none.loss).toBe(0);
    expect(Array.from(none.grad)).toEqual(new Array(36).fill(0));
  });

  test('NaN in a valid entry propagates; NaN where the key or query is masked does not', () => {
    const rng = mulberry32(620);
    const a = ref.scores(rng, 9);
    const b = ref.scores(rng, 9);
    const m = Float32Array.from([1, 1, 0]); // B=1 A=1 L=3
    const clean = attention(a, b, m, 1, 1, 3);
    const a1 = a.slice();
    a1[1] = Number.NaN; // (q=0, k=1): valid
    expect(attention(a1, b, m, 1, 1, 3).loss).toBeNaN();
    const a2 = a.slice();
    a2[2] = Number.NaN; // (q=0, k=2): key masked
    a2[7] = Number.NaN; // (q=2, k=1): query masked
    const masked = attention(a2, b, m, 1, 1, 3);
    expect(masked.loss).toBe(clean.loss);
    expect(Array.from(masked.grad)).toEqual(Array.from(clean.grad));
  });
});

describe('thread count does not change results (bitwise)', () => {
  let saved = 1;
  beforeAll(() => {
    saved = addon.getNumThreads();
  });
  afterAll(() => addon.setNumThreads(saved));

  test('setNumThreads / getNumThreads round-trip', () => {
    for (const n of [1, 2, 3, 1024]) {
      addon.setNumThreads(n);
      expect(addon.getNumThreads()).toBe(n);
    }
  });

  function withThreads<T>(n: number, f: () => T): T {
    addon.setNumThreads(n);
    return f();
  }

  test('rankingObjective, 4096 x 64, all terms, masked', () => {
    const rng = mulberry32(700);
    const rows = 4096;
    const cols = 64;
    const n = rows * cols;
    const s = ref.scores(rng, n, 2);
    const t = ref.scores(rng, n, 2);
    const y = ref.gradedLabels(rng, n, 2);
    const m = ref.mask2d(rng, rows, cols);
    const opts = {
      weights: {
        pointwiseBCE: 1,
        pairwiseRankNet: 1,
        pairwiseHinge: 1,
        listwiseSoftmaxCE: 1,
        distillKL: 1,
        marginMSE: 1,
        scoreMSE: 1,
      },
      temperature: 2,
    };
    const runs = [1, 2, 3].map((k) => withThreads(k, () => objective(s, t, y, m, rows, cols, opts)));
    for (const r of runs.slice(1)) {
      expect(r.total).toBe(runs[0].total);
      expect(Array.from(r.parts)).toEqual(Array.from(runs[0].parts));
      expect(Buffer.compare(Buffer.from(r.grad.buffer), Buffer.from(runs[0].grad.buffer))).toBe(0);
    }
    // and the (shared) answer is right
    const want = ref.rankingObjective(s, t, y, m, rows, cols, opts);
    expectLossClose(runs[0].total, want.total);
  });

  test('rankingObjective, 4096 x 64, unmasked, teacher terms only', () => {
    const rng = mulberry32(701);
    const n = 4096 * 64;
    const s = ref.scores(rng, n);
    const t = ref.scores(rng, n);
    const opts = { weights: { distillKL: 1, scoreMSE: 0.5 } };
    const runs = [1, 2].map((k) => withThreads(k, () => objective(s, t, null, null, 4096, 64, opts)));
    expect(runs[1].total).toBe(runs[0].total);
    expect(Buffer.compare(Buffer.from(runs[1].grad.buffer), Buffer.from(runs[0].grad.buffer))).toBe(0);
  });

  test('hiddenMSE, 16 x 128 x 768, masked', () => {
    const rng = mulberry32(702);
    const n = 16 * 128 * 768;
    const a = ref.scores(rng, n);
    const b = ref.scores(rng, n);
    const m = ref.tokenMask(rng, 16, 128);
    const runs = [1, 2, 3].map((k) => withThreads(k, () => hidden(a, b, m, 1, 16, 128, 768)));
    for (const r of runs.slice(1)) {
      expect(r.loss).toBe(runs[0].loss);
      expect(Buffer.compare(Buffer.from(r.grad.buffer), Buffer.from(runs[0].grad.buffer))).toBe(0);
    }
    expectLossClose(runs[0].loss, ref.hiddenMSE(a, b, m, 1, 16, 128, 768).loss);
  });

  test('attentionMSE, 8 x 12 x 64 x 64, masked', () => {
    const rng = mulberry32(703);
    const n = 8 * 12 * 64 * 64;
    const a = ref.scores(rng, n);
    const b = ref.scores(rng, n);
    const m = ref.tokenMask(rng, 8, 64);
    const runs = [1, 2].map((k) => withThreads(k, () => attention(a, b, m, 8, 12, 64)));
    expect(runs[1].loss).toBe(runs[0].loss);
    expect(Buffer.compare(Buffer.from(runs[1].grad.buffer), Buffer.from(runs[0].grad.buffer))).toBe(0);
  });
});

describe('mask checks', () => {
  const s = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const y = Float32Array.from([1, 0, 2, 0, 1, 3]);
  const w = Float32Array.from([0, 1, 0, 0, 0, 0, 0]);
  test.each([0.5, 2, -1, Number.NaN, Number.POSITIVE_INFINITY, -0.0001])(
    'rankingObjective mask holding %p throws a RangeError naming mask',
    (bad) => {
      const m = Float32Array.from([1, 1, 0, 1, 0, 1]);
      m[4] = bad;
      expectError(() => rankingTotal(s, null, y, m, 2, 3, w, 1, 1, 1, null), /mask/, 'RangeError');
    },
  );
  test('-0 is a valid 0 in a mask', () => {
    const m = Float32Array.from([1, 1, -0, 1, 1, 1]);
    const m0 = Float32Array.from([1, 1, 0, 1, 1, 1]);
    expect(rankingTotal(s, null, y, m, 2, 3, w, 1, 1, 1, null)).toBe(
      rankingTotal(s, null, y, m0, 2, 3, w, 1, 1, 1, null),
    );
  });
  test.each([0.5, 3, Number.NaN])('hiddenMSE / attentionMSE tokenMask holding %p throws naming tokenMask', (bad) => {
    const m = Float32Array.from([1, bad]);
    expectError(
      () => hiddenLoss(new Float32Array(4), new Float32Array(4), m, 1, 1, 2, 2, null),
      /tokenMask/,
      'RangeError',
    );
    expectError(
      () => attentionLoss(new Float32Array(4), new Float32Array(4), m, 1, 1, 2, null),
      /tokenMask/,
      'RangeError',
    );
  });
});

describe('scale', () => {
  test('out = x * c, also in place', () => {
    const rng = mulberry32(800);
    const x = ref.scores(rng, 70000); // more than one block
    const out = new Float32Array(x.length);
    addon.scale(x, 0.37, out);
    for (let i = 0; i < x.length; i += 997) expect(out[i]).toBe(Math.fround(x[i] * Math.fround(0.37)));
    expect(out[x.length - 1]).toBe(Math.fround(x[x.length - 1] * Math.fround(0.37)));
    const y = x.slice();
    addon.scale(y, -2, y);
    for (let i = 0; i < x.length; i++) if (y[i] !== -2 * x[i]) throw new Error(`in-place scale wrong at ${i}`);
  });
});
