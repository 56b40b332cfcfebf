// The package without its native addon (node-gyp-build fails here): it still imports, the fused ops
// run their plain-tfjs reference composites (the same numbers, bit for bit, gradients included) with
// one notice per backend, and any direct use of the addon throws the load error.
jest.mock('node-gyp-build', () => () => {
  throw new Error('no addon in this test');
});

import * as tf from '@tensorflow/tfjs';

import { addon, addonLoadError, losses, nn } from '../src';
import { expectError } from './helpers/errors';
import { mulberry32 } from './helpers/reference64';

const rng = mulberry32(7);
const data = (n: number) => Float32Array.from({ length: n }, () => rng() * 4 - 2);

describe('without the native addon', () => {
  const warn = jest.spyOn(console, 'warn');
  beforeAll(() => tf.setBackend('cpu'));
  afterAll(() => warn.mockRestore());

  test('the load error is recorded and any use of the addon throws it', () => {
    expect(addonLoadError()?.message).toMatch(
      /fused-distill: the native addon could not be loaded: no addon in this test/,
    );
    expectError(() => addon.gelu(new Float32Array(1), new Float32Array(1)), /native addon could not be loaded/);
  });

  test('layerNorm and gelu are the composites exactly, gradients too', () => {
    const x = tf.tensor2d(data(5 * 6), [5, 6]),
      gamma = tf.tensor1d(data(6)),
      beta = tf.tensor1d(data(6));
    expect(Array.from(nn.layerNorm(x, gamma, beta, 1e-3).dataSync())).toEqual(
      Array.from(nn.reference.layerNorm(x, gamma, beta, 1e-3).dataSync()),
    );
    expect(Array.from(nn.gelu(x).dataSync())).toEqual(Array.from(nn.reference.gelu(x).dataSync()));
    const g = tf
      .grad((a: tf.Tensor) => tf.sum(nn.gelu(nn.layerNorm(a, gamma, beta))))(x)
      .dataSync();
    const c = tf
      .grad((a: tf.Tensor) => tf.sum(nn.reference.gelu(nn.reference.layerNorm(a, gamma, beta))))(x)
      .dataSync();
    expect(Array.from(g)).toEqual(Array.from(c));
  });

  test('attention is the composite exactly, gradients too', () => {
    const x = tf.tensor3d(data(2 * 3 * 4), [2, 3, 4]),
      bias = tf.tensor2d([0, 0, -10000, 0, 0, 0], [2, 3]);
    const f = (impl: typeof nn.attention) => (a: tf.Tensor) => impl(a, tf.sin(a), tf.cos(a), bias, { heads: 2 });
    expect(Array.from(f(nn.attention)(x).dataSync())).toEqual(Array.from(f(nn.reference.attention)(x).dataSync()));
    const g = tf
      .grad((a: tf.Tensor) => tf.sum(f(nn.attention)(a)))(x)
      .dataSync();
    const c = tf
      .grad((a: tf.Tensor) => tf.sum(f(nn.reference.attention)(a)))(x)
      .dataSync();
    expect(Array.from(g)).toEqual(Array.from(c));
  });

  test('the losses are the composites exactly, gradients too', () => {
    const s = tf.tensor2d(data(12), [3, 4]),
      t = tf.tensor2d(data(12), [3, 4]);
    const y = tf.tensor2d([1, 0, 2, 0, 0, 1, 1, 0, 2, 2, 0, 1], [3, 4]);
    const weights = { pairwiseRankNet: 1, distillKL: 0.5, scoreMSE: 2 };
    const pairs: Array<[(x: tf.Tensor) => tf.Scalar, (x: tf.Tensor) => tf.Scalar]> = [
      [(x) => losses.pairwiseRankNet(x, y), (x) => losses.reference.pairwiseRankNet(x, y)],
      [(x) => losses.distillKL(x, t, { temperature: 2 }), (x) => losses.reference.distillKL(x, t, { temperature: 2 })],
      [
        (x) => losses.rankingObjective(x, t, y, { weights }),
        (x) => losses.reference.rankingObjective(x, t, y, { weights }),
      ],
    ];
    for (const [fused, composite] of pairs) {
      expect(fused(s).dataSync()[0]).toBe(composite(s).dataSync()[0]);
      expect(Array.from(tf.grad(fused)(s).dataSync())).toEqual(Array.from(tf.grad(composite)(s).dataSync()));
    }
    const parts = losses.rankingObjectiveParts(s, t, y, { weights });
    const want = losses.reference.rankingObjectiveParts(s, t, y, { weights });
    expect(parts.total.dataSync()[0]).toBe(want.total.dataSync()[0]);
    expect(parts.parts.scoreMSE.dataSync()[0]).toBe(want.parts.scoreMSE.dataSync()[0]);
    const hs = tf.tensor3d(data(2 * 3 * 4), [2, 3, 4]),
      ht = tf.tensor3d(data(2 * 3 * 4), [2, 3, 4]);
    expect(losses.hiddenMSE(hs, ht).dataSync()[0]).toBe(losses.reference.hiddenMSE(hs, ht).dataSync()[0]);
    // Arguments are still checked, under the op's name.
    expectError(() => losses.scoreMSE(s, tf.ones([3, 5])), /scoreMSE: t must have shape \[3, 4\]/);
  });

  test('one notice for the backend, saying the composites run', () => {
    const notices = warn.mock.calls.map((args) => String(args[0])).filter((m) => m.startsWith('fused-distill:'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(
      /^fused-distill: on backend 'cpu' the fused ops run their plain-tfjs reference composites \(fused-distill: the native addon could not be loaded: no addon in this test\)/,
    );
  });
});
