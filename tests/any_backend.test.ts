// Every fused op on a backend this package registers nothing for (as tfjs-node's 'tensorflow', webgl
// or webgpu): a stand-in backend with only tfjs's own CPU kernels. The ops run the native kernels on
// host copies of its tensors, with values and gradients equal to the 'cpu' backend's, errors still
// named after the op, and one notice saying which path the backend takes.
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

import { losses, nn } from '../src';
import { expectError } from './helpers/errors';
import { mulberry32 } from './helpers/reference64';

const STANDIN = 'standin';
tf.registerBackend(STANDIN, () => new MathBackendCPU());
for (const k of tf.getKernelsForBackend('cpu'))
  if (!k.kernelName.startsWith('FusedDistill')) tf.registerKernel({ ...k, backendName: STANDIN });

const B = 3,
  G = 5,
  L = 4,
  H = 6,
  A = 2;
const rng = mulberry32(2024);
const data = (n: number, f: () => number = () => rng() * 4 - 2) => Float32Array.from({ length: n }, f);
const S = data(B * G),
  T = data(B * G),
  Y = data(B * G, () => Math.floor(rng() * 3));
const MASK = Float32Array.from({ length: B * G }, (_, i) => (i % 4 === 3 ? 0 : 1));
const HS = data(2 * B * L * H),
  HT = data(2 * B * L * H);
const AS = data(B * A * L * L),
  AT = data(B * A * L * L);
const TOKENS = Float32Array.from({ length: B * L }, (_, i) => (i % L === L - 1 ? 0 : 1));
const X = data(B * H),
  GAMMA = data(H),
  BETA = data(H);

type Case = [string, number[], Float32Array, (x: tf.Tensor) => tf.Tensor];
// Each op as a function of its differentiable input, its other inputs made on the current backend.
const cases: Case[] = [
  [
    'pointwiseBCE',
    [B, G],
    S,
    (s) => losses.pointwiseBCE(s, tf.tensor(Y, [B, G]).div(2), { mask: tf.tensor(MASK, [B, G]) }),
  ],
  [
    'pairwiseRankNet',
    [B, G],
    S,
    (s) => losses.pairwiseRankNet(s, tf.tensor(Y, [B, G]), { mask: tf.tensor(MASK, [B, G]) }),
  ],
  ['pairwiseHinge', [B, G], S, (s) => losses.pairwiseHinge(s, tf.tensor(Y, [B, G]), { margin: 0.7 })],
  ['listwiseSoftmaxCE', [B, G], S, (s) => losses.listwiseSoftmaxCE(s, tf.tensor(Y, [B, G]))],
  ['distillKL', [B, G], S, (s) => losses.distillKL(s, tf.tensor(T, [B, G]), { temperature: 2 })],
  ['marginMSE', [B, G], S, (s) => losses.marginMSE(s, tf.tensor(T, [B, G]))],
  ['scoreMSE', [B, G], S, (s) => losses.scoreMSE(s, tf.tensor(T, [B, G]), { mask: tf.tensor(MASK, [B, G]) })],
  [
    'rankingObjective',
    [B, G],
    S,
    (s) =>
      losses.rankingObjective(s, tf.tensor(T, [B, G]), tf.tensor(Y, [B, G]), {
        weights: { pairwiseRankNet: 1, distillKL: 0.5, scoreMSE: 2 },
      }),
  ],
  [
    'hiddenMSE',
    [2, B, L, H],
    HS,
    (hs) => losses.hiddenMSE(hs, tf.tensor(HT, [2, B, L, H]), { tokenMask: tf.tensor(TOKENS, [B, L]) }),
  ],
  [
    'attentionMSE',
    [B, A, L, L],
    AS,
    (as) => losses.attentionMSE(as, tf.tensor(AT, [B, A, L, L]), { tokenMask: tf.tensor(TOKENS, [B, L]) }),
  ],
  ['nn.layerNorm', [B, H], X, (x) => nn.layerNorm(x, tf.tensor(GAMMA), tf.tensor(BETA), 1e-5)],
  ['nn.gelu', [B, H], X, (x) => nn.gelu(x)],
  [
    'nn.attention',
    [B, L, H],
    HS.subarray(0, B * L * H),
    (x) => nn.attention(x, tf.tanh(x), tf.sin(x), tf.tensor(TOKENS, [B, L]).sub(1).mul(10000), { heads: A }),
  ],
];

/** The op's value and its gradient, for dy = 1 (the loss itself) and dy = 3 (scaled upstream). */
function run(backend: string, [, shape, values, op]: Case): number[][] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor(values, shape);
    const value = op(x);
    const g1 = tf.grad((a: tf.Tensor) => tf.sum(op(a)))(x);
    const g3 = tf.grad((a: tf.Tensor) => tf.mul(tf.sum(op(a)), 3))(x);
    return [value, g1, g3].map((t) => Array.from(t.dataSync()));
  });
}

function expectClose(got: number[], want: number[], label: string): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    if (!(Math.abs(g - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i]))))
      throw new Error(`${label}[${i}]: got ${g}, want ${want[i]}`);
  });
}

describe(`every fused op on a backend without fused kernels ('${STANDIN}')`, () => {
  const warn = jest.spyOn(console, 'warn');
  afterAll(() => warn.mockRestore());

  test.each(cases)("%s: value and gradients equal the cpu backend's", (...c) => {
    const want = run('cpu', c);
    const got = run(STANDIN, c);
    ['value', 'gradient', 'gradient x3'].forEach((what, i) => expectClose(got[i], want[i], `${c[0]} ${what}`));
  });

  test("rankingObjectiveParts: total and parts equal the cpu backend's", () => {
    const parts = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => {
        // labels in [0, 1], pointwiseBCE's domain, as in its own case above
        const y = tf.tensor(Y, [B, G]).div(2);
        const r = losses.rankingObjectiveParts(tf.tensor(S, [B, G]), tf.tensor(T, [B, G]), y, {
          weights: { marginMSE: 1, listwiseSoftmaxCE: 3, pointwiseBCE: 0.5 },
          mask: tf.tensor(MASK, [B, G]),
        });
        return [r.total, ...Object.values(r.parts)].map((t) => t.dataSync()[0]);
      });
    };
    expectClose(parts(STANDIN), parts('cpu'), 'parts');
  });

  test('the fused kernels were registered for it on the fly', () => {
    for (const name of [
      'FusedDistillRankingObjective',
      'FusedDistillScaleByUpstream',
      'FusedDistillLayerNorm',
      'FusedDistillGeluGrad',
    ])
      expect(tf.getKernel(name, STANDIN)).toBeDefined();
  });

  test('errors are still named after the op', () => {
    tf.setBackend(STANDIN);
    tf.tidy(() => {
      const s = tf.tensor(S, [B, G]),
        y = tf.tensor(Y, [B, G]);
      const mask = tf.tensor(
        MASK.map((v, i) => (i === 3 ? 2 : v)),
        [B, G],
      );
      expectError(
        () => losses.pairwiseRankNet(s, y, { mask }),
        /pairwiseRankNet: mask must hold only 0 and 1, got 2 at index 3/,
      );
      expectError(
        () => losses.hiddenMSE(tf.ones([1, 2, 2]), tf.ones([1, 2, 2]), { tokenMask: tf.tensor([[1, 0.5]]) }),
        /hiddenMSE: tokenMask must hold only 0 and 1, got 0.5 at index 1/,
      );
      expectError(() => losses.scoreMSE(s, tf.ones([B, G + 1])), /scoreMSE: t must have shape \[3, 5\]/);
      expectError(
        () => nn.layerNorm(tf.ones([2, 3]), tf.ones([4]), tf.zeros([3])),
        /layerNorm: gamma must have shape \[3\]/,
      );
    });
  });

  test('one notice, naming the backend and the path', () => {
    const notices = warn.mock.calls.map((args) => String(args[0])).filter((m) => m.startsWith('fused-distill:'));
    expect(notices).toEqual([
      `fused-distill: backend '${STANDIN}' has no fused kernels: the fused ops run the native kernels on host copies of its tensors`,
    ]);
  });
});
