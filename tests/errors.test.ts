// Every bad input listed in docs/loss-contract.md ("Bad input — mismatched shapes, wrong dtype, rank too low,
// T ≤ 0, a non-0/1 mask, an empty tensor (size 0)") plus unknown/invalid weights, through the TS API
// on both backends: each throws an Error whose message names the argument, leaks nothing, and leaves
// the library usable.
import * as tf from '@tensorflow/tfjs';

import { losses } from '../src';
import { expectError } from './helpers/errors';
import { BACKENDS, BackendName, scalarValue, useBackend } from './helpers/tfjs';

type AnyOp = (...args: unknown[]) => unknown;
const op = losses as unknown as Record<string, AnyOp>;

const LABEL_OPS = ['pointwiseBCE', 'pairwiseRankNet', 'pairwiseHinge', 'listwiseSoftmaxCE'] as const;
const TEACHER_OPS = ['distillKL', 'marginMSE', 'scoreMSE'] as const;
const SCORE_OPS = [...LABEL_OPS, ...TEACHER_OPS];

interface BackendWithIds {
  numDataIds(): number;
}
function dataIds(): number {
  return (tf.engine().backend as unknown as BackendWithIds).numDataIds();
}

/** f throws an Error matching every pattern, and neither tensors nor backend buffers leak. */
function expectBad(f: () => unknown, ...patterns: RegExp[]): Error {
  const tensors = tf.memory().numTensors;
  const ids = dataIds();
  const e = expectError(f);
  for (const p of patterns)
    if (!p.test(e.message)) throw new Error(`message ${JSON.stringify(e.message)} does not match ${p}`);
  const leakedTensors = tf.memory().numTensors - tensors;
  const leakedIds = dataIds() - ids;
  if (leakedTensors !== 0 || leakedIds !== 0)
    throw new Error(`a rejected call leaked ${leakedTensors} tensors and ${leakedIds} backend buffers (${e.message})`);
  return e;
}

describe.each(BACKENDS.map((b) => [b] as [BackendName]))('backend %s', (backend) => {
  let s: tf.Tensor2D;
  let t: tf.Tensor2D;
  let y: tf.Tensor2D;
  let m: tf.Tensor2D;
  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(x: T): T => {
    owned.push(x);
    return x;
  };
  beforeAll(async () => {
    await useBackend(backend);
    s = keep(
      tf.tensor2d([
        [1, 2, 3],
        [0.5, -1, 2],
      ]),
    );
    t = keep(
      tf.tensor2d([
        [0, 1, 2],
        [1, 1, 0],
      ]),
    );
    y = keep(
      tf.tensor2d([
        [1, 0, 2],
        [0, 1, 0],
      ]),
    );
    m = keep(
      tf.tensor2d([
        [1, 1, 0],
        [1, 0, 1],
      ]),
    );
  });
  afterAll(() => owned.forEach((x) => x.dispose()));

  const other = (name: string) => ((LABEL_OPS as readonly string[]).includes(name) ? y : t);

  describe.each(SCORE_OPS.map((n) => [n]))('%s', (name) => {
    test('a valid call works (so the failures below come from the bad argument)', () => {
      const l = op[name](s, other(name), { mask: m }) as tf.Scalar;
      expect(Number.isFinite(scalarValue(l))).toBe(true);
      l.dispose();
    });

    test('mismatched shapes name the argument and the expected shape', () => {
      const argName = (LABEL_OPS as readonly string[]).includes(name) ? 'y' : 't';
      const wrong = keep(tf.zeros([2, 4]));
      const e = expectBad(() => op[name](s, wrong, {}), new RegExp(`\\b${argName}\\b`), /shape/);
      expect(e.message).toMatch(/2, 3/); // the expected shape
      const wrongT = keep(tf.zeros([3, 2]));
      expectBad(() => op[name](s, wrongT, {}), new RegExp(`\\b${argName}\\b`), /shape/);
      const wrongRank = keep(tf.zeros([2, 3, 1]));
      expectBad(() => op[name](s, wrongRank, {}), new RegExp(`\\b${argName}\\b`), /shape/);
      const badMask = keep(tf.ones([2, 4]));
      expectBad(() => op[name](s, other(name), { mask: badMask }), /mask/, /shape/);
      const maskRow = keep(tf.ones([3]));
      expectBad(() => op[name](s, other(name), { mask: maskRow }), /mask/, /shape/);
    });

    test('wrong dtype (int32, bool) names the argument', () => {
      const si = keep(
        tf.tensor2d(
          [
            [1, 2, 3],
            [0, 1, 2],
          ],
          undefined,
          'int32',
        ),
      );
      expectBad(() => op[name](si, other(name), {}), /\bs\b/, /float32|dtype|int32/);
      const oi = keep(
        tf.tensor2d(
          [
            [1, 0, 2],
            [0, 1, 0],
          ],
          undefined,
          'int32',
        ),
      );
      expectBad(() => op[name](s, oi, {}), /\b[ty]\b/, /float32|dtype|int32/);
      const mi = keep(
        tf.tensor2d(
          [
            [1, 1, 0],
            [1, 0, 1],
          ],
          undefined,
          'int32',
        ),
      );
      expectBad(() => op[name](s, other(name), { mask: mi }), /mask/, /float32|dtype|int32/);
      const mb = keep(
        tf.tensor2d(
          [
            [1, 1, 0],
            [1, 0, 1],
          ],
          undefined,
          'bool',
        ),
      );
      expectBad(() => op[name](s, other(name), { mask: mb }), /mask/);
    });

    test('rank too low names the argument', () => {
      const minRank = name === 'distillKL' ? 1 : 2;
      const low = keep(minRank === 2 ? tf.tensor1d([1, 2, 3]) : tf.scalar(1));
      const lowOther = keep(minRank === 2 ? tf.tensor1d([1, 0, 2]) : tf.scalar(0));
      expectBad(() => op[name](low, lowOther, {}), /\bs\b/, /shape|rank/);
    });

    test('an empty tensor (size 0) names the argument', () => {
      for (const shape of [
        [0, 3],
        [2, 0],
      ]) {
        const e0 = keep(tf.zeros(shape));
        const o0 = keep(tf.zeros(shape));
        expectBad(() => op[name](e0, o0, {}), /\bs\b/, /empty|size|shape/);
      }
    });

    test('a mask holding values other than 0 and 1 names mask', () => {
      for (const bad of [0.5, 2, -1, NaN]) {
        const mb = keep(
          tf.tensor2d([
            [1, 1, 0],
            [1, bad, 1],
          ]),
        );
        expectBad(() => op[name](s, other(name), { mask: mb }), /mask/);
      }
    });

    test('a missing second input names it', () => {
      const argName = (LABEL_OPS as readonly string[]).includes(name) ? 'y' : 't';
      expectBad(() => op[name](s, null, {}), new RegExp(`\\b${argName}\\b`));
      expectBad(() => op[name](s, undefined), new RegExp(`\\b${argName}\\b`));
    });

    test('non-tensor inputs name the argument', () => {
      expectBad(
        () =>
          op[name](
            [
              [1, 2, 3],
              [4, 5, 6],
            ],
            other(name),
            {},
          ),
        /\bs\b/,
      );
      expectBad(() => op[name](new Float32Array(6), other(name), {}), /\bs\b/);
      expectBad(() => op[name](s, 'labels', {}), /\b[ty]\b/);
      expectBad(
        () =>
          op[name](s, other(name), {
            mask: [
              [1, 1, 1],
              [1, 1, 1],
            ],
          }),
        /mask/,
      );
    });

    test('the library still works after the errors above', () => {
      const l = op[name](s, other(name), { mask: m }) as tf.Scalar;
      expect(Number.isFinite(scalarValue(l))).toBe(true);
      l.dispose();
      const g = tf.grad((x: tf.Tensor) => op[name](x, other(name), { mask: m }) as tf.Scalar)(s);
      expect(g.shape).toEqual([2, 3]);
      g.dispose();
    });

    test('errors are also clean when a gradient is being recorded', () => {
      const mb = keep(
        tf.tensor2d([
          [1, 1, 0],
          [1, 0.5, 1],
        ]),
      );
      expectBad(() => tf.grad((x: tf.Tensor) => op[name](x, other(name), { mask: mb }) as tf.Scalar)(s), /mask/);
      const wrong = keep(tf.zeros([2, 4]));
      expectBad(() => tf.grad((x: tf.Tensor) => op[name](x, wrong) as tf.Scalar)(s), /\b[ty]\b/);
    });
  });

  describe('temperature, sigma, margin', () => {
    test.each([0, -1, -1e-9, NaN, Infinity, -Infinity])('distillKL temperature %p names temperature', (T) => {
      expectBad(() => losses.distillKL(s, t, { temperature: T }), /temperature/);
      expectBad(
        () => losses.rankingObjective(s, t, null, { weights: { distillKL: 1 }, temperature: T }),
        /temperature/,
      );
    });
    test('temperature as a string names temperature', () => {
      expectBad(() => losses.distillKL(s, t, { temperature: '2' as unknown as number }), /temperature/);
    });
    test.each([NaN, Infinity])('sigma %p / margin %p name the option', (v) => {
      expectBad(() => losses.pairwiseRankNet(s, y, { sigma: v }), /sigma/);
      expectBad(() => losses.pairwiseHinge(s, y, { margin: v }), /margin/);
    });
  });

  describe('rankingObjective weights', () => {
    test('an unknown weight name is rejected, naming it', () => {
      expectBad(() => losses.rankingObjective(s, t, y, { weights: { rankNet: 1 } as never }), /rankNet/, /weight/);
      expectBad(() => losses.rankingObjectiveParts(s, t, y, { weights: { kl: 1, scoreMSE: 1 } as never }), /\bkl\b/);
      expectBad(
        () => losses.reference.rankingObjective(s, t, y, { weights: { PointwiseBCE: 1 } as never }),
        /PointwiseBCE/,
      );
    });
    test('missing or non-object weights name weights', () => {
      expectBad(() => losses.rankingObjective(s, t, y, {} as never), /weights/);
      expectBad(() => losses.rankingObjective(s, t, y, undefined as never), /weights/);
      expectBad(() => losses.rankingObjective(s, t, y, { weights: 1 } as never), /weights/);
    });
    test.each([NaN, Infinity, -Infinity, '1', [1]])('weight value %p is rejected, naming the term', (w) => {
      expectBad(() => losses.rankingObjective(s, t, y, { weights: { scoreMSE: w as never } }), /scoreMSE/);
    });
    test('a weighted term whose input is null names that input', () => {
      expectBad(() => losses.rankingObjective(s, null, y, { weights: { distillKL: 1 } }), /\bt\b/);
      expectBad(() => losses.rankingObjective(s, t, null, { weights: { pairwiseHinge: 1 } }), /\by\b/);
      expectBad(
        () => losses.rankingObjectiveParts(s, null, null, { weights: { marginMSE: 1, pointwiseBCE: 1 } }),
        /\b[ty]\b/,
      );
    });
    test('mismatched shapes and a bad mask through the objective', () => {
      const wrong = keep(tf.zeros([2, 4]));
      expectBad(() => losses.rankingObjective(s, wrong, y, { weights: { scoreMSE: 1 } }), /\bt\b/, /shape/);
      expectBad(() => losses.rankingObjective(s, t, wrong, { weights: { pointwiseBCE: 1 } }), /\by\b/, /shape/);
      const mb = keep(
        tf.tensor2d([
          [1, 1, 0],
          [1, 3, 1],
        ]),
      );
      expectBad(() => losses.rankingObjective(s, t, y, { weights: { scoreMSE: 1 }, mask: mb }), /mask/);
    });
    test('rank too low / empty / int32 through the objective', () => {
      const r1 = keep(tf.tensor1d([1, 2, 3]));
      expectBad(() => losses.rankingObjective(r1, r1, r1, { weights: { scoreMSE: 1 } }), /\bs\b/);
      const e = keep(tf.zeros([0, 3]));
      expectBad(() => losses.rankingObjective(e, e, e, { weights: { scoreMSE: 1 } }), /\bs\b/, /empty|size/);
      const i = keep(
        tf.tensor2d(
          [
            [1, 2, 3],
            [4, 5, 6],
          ],
          undefined,
          'int32',
        ),
      );
      expectBad(() => losses.rankingObjective(i, t, y, { weights: { scoreMSE: 1 } }), /\bs\b/);
    });
  });

  describe('hiddenMSE', () => {
    let hs: tf.Tensor;
    let ht: tf.Tensor;
    let tm: tf.Tensor;
    beforeAll(() => {
      hs = keep(tf.randomNormal([2, 3, 4], 0, 1, 'float32', 1));
      ht = keep(tf.randomNormal([2, 3, 4], 0, 1, 'float32', 2));
      tm = keep(
        tf.tensor2d([
          [1, 1, 0],
          [1, 0, 0],
        ]),
      );
    });
    test('valid calls work ([B, L, H] and [layers, B, L, H])', () => {
      const l = losses.hiddenMSE(hs, ht, { tokenMask: tm });
      expect(Number.isFinite(scalarValue(l))).toBe(true);
      l.dispose();
      const h4 = keep(tf.stack([hs, hs]));
      const t4 = keep(tf.stack([ht, hs]));
      const l4 = losses.hiddenMSE(h4, t4, { tokenMask: tm });
      expect(Number.isFinite(scalarValue(l4))).toBe(true);
      l4.dispose();
    });
    test('mismatched shapes name ht / tokenMask', () => {
      const v1 = keep(tf.zeros([2, 3, 5]));
      expectBad(() => losses.hiddenMSE(hs, v1), /\bht\b/, /shape/);
      const v2 = keep(tf.zeros([1, 2, 3, 4]));
      expectBad(() => losses.hiddenMSE(hs, v2), /\bht\b/, /shape/);
      const v3 = keep(tf.ones([2, 4]));
      expectBad(() => losses.hiddenMSE(hs, ht, { tokenMask: v3 }), /tokenMask/, /shape/);
      const v4 = keep(tf.ones([2, 3, 1]));
      expectBad(() => losses.hiddenMSE(hs, ht, { tokenMask: v4 }), /tokenMask/, /shape/);
    });
    test('wrong dtype, rank too low, rank too high, empty', () => {
      const v5 = keep(tf.zeros([2, 3, 4], 'int32'));
      expectBad(() => losses.hiddenMSE(v5, ht), /\bhs\b/, /float32|dtype|int32/);
      const v6 = keep(tf.zeros([2, 3, 4], 'int32'));
      expectBad(() => losses.hiddenMSE(hs, v6), /\bht\b/);
      const v7 = keep(tf.ones([2, 3], 'int32'));
      expectBad(() => losses.hiddenMSE(hs, ht, { tokenMask: v7 }), /tokenMask/);
      const v8 = keep(tf.zeros([3, 4]));
      const v9 = keep(tf.zeros([3, 4]));
      expectBad(() => losses.hiddenMSE(v8, v9), /\bhs\b/, /shape|rank/);
      const v10 = keep(tf.zeros([1, 2, 3, 4, 1]));
      const v11 = keep(tf.zeros([1, 2, 3, 4, 1]));
      expectBad(() => losses.hiddenMSE(v10, v11), /\bhs\b/, /shape|rank/);
      const v12 = keep(tf.zeros([2, 0, 4]));
      const v13 = keep(tf.zeros([2, 0, 4]));
      expectBad(() => losses.hiddenMSE(v12, v13), /\bhs\b/, /empty|size/);
    });
    test('a tokenMask holding values other than 0 and 1 names tokenMask', () => {
      for (const bad of [0.5, 2, NaN]) {
        const tb = keep(
          tf.tensor2d([
            [1, bad, 0],
            [1, 0, 0],
          ]),
        );
        expectBad(() => losses.hiddenMSE(hs, ht, { tokenMask: tb }), /tokenMask/);
        expectBad(() => tf.grad((x: tf.Tensor) => losses.hiddenMSE(x, ht, { tokenMask: tb }))(hs), /tokenMask/);
      }
    });
    test('a missing teacher names ht', () => {
      expectBad(() => losses.hiddenMSE(hs, null as never), /\bht\b/);
    });
  });

  describe('attentionMSE', () => {
    let as: tf.Tensor;
    let at: tf.Tensor;
    beforeAll(() => {
      as = keep(tf.randomNormal([2, 2, 3, 3], 0, 1, 'float32', 3));
      at = keep(tf.randomNormal([2, 2, 3, 3], 0, 1, 'float32', 4));
    });
    test('mismatched shapes, non-square L x L, wrong tokenMask shape', () => {
      const v14 = keep(tf.zeros([2, 2, 3, 4]));
      expectBad(() => losses.attentionMSE(as, v14), /\bat\b/, /shape/);
      const v15 = keep(tf.zeros([2, 2, 3, 4]));
      const v16 = keep(tf.zeros([2, 2, 3, 4]));
      expectBad(() => losses.attentionMSE(v15, v16), /\bas\b/, /shape|L/);
      const v17 = keep(tf.ones([2, 2]));
      expectBad(() => losses.attentionMSE(as, at, { tokenMask: v17 }), /tokenMask/, /shape/);
    });
    test('wrong dtype, rank too low, empty', () => {
      const v18 = keep(tf.zeros([2, 2, 3, 3], 'int32'));
      expectBad(() => losses.attentionMSE(v18, at), /\bas\b/);
      const v19 = keep(tf.zeros([2, 3, 3]));
      const v20 = keep(tf.zeros([2, 3, 3]));
      expectBad(() => losses.attentionMSE(v19, v20), /\bas\b/, /shape|rank/);
      const v21 = keep(tf.zeros([0, 2, 3, 3]));
      const v22 = keep(tf.zeros([0, 2, 3, 3]));
      expectBad(() => losses.attentionMSE(v21, v22), /\bas\b/, /empty|size/);
    });
    test('a tokenMask holding values other than 0 and 1 names tokenMask', () => {
      const tb = keep(
        tf.tensor2d([
          [1, 1, 0],
          [1, -1, 0],
        ]),
      );
      expectBad(() => losses.attentionMSE(as, at, { tokenMask: tb }), /tokenMask/);
    });
  });
});
