// A cross-encoder trained on the 'native' backend: the same losses as on 'cpu' step for step, and
// 1000 Adam steps with no growth in live tensors, native memory or process RSS.
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'child_process';
import * as path from 'path';

import { NATIVE_BACKEND, registerNativeBackend } from '../src/backend/native/register';
import { CrossEncoder, CrossEncoderConfig } from '../src/models/cross_encoder';

registerNativeBackend();

const TINY: CrossEncoderConfig = {
  vocabSize: 97,
  hidden: 16,
  layers: 2,
  heads: 2,
  intermediate: 32,
  maxPosition: 32,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.02,
};
const B = 4;
const L = 12;

function batch() {
  const ids = new Int32Array(B * L).map((_, i) => (i * 7919) % TINY.vocabSize);
  const mask = new Int32Array(B * L).map((_, i) => (i % L < L - (i % 3) ? 1 : 0)); // some padding
  return {
    inputIds: tf.tensor2d(ids, [B, L], 'int32'),
    tokenTypeIds: tf.tensor2d(
      new Int32Array(B * L).map((_, i) => (i % L >= L / 2 ? 1 : 0)),
      [B, L],
      'int32',
    ),
    attentionMask: tf.tensor2d(mask, [B, L], 'int32'),
    target: tf.tensor1d([1, 0, 0.5, 0.25]),
  };
}

function trainer(backendName: string) {
  const model = new CrossEncoder(TINY, 3);
  const x = batch();
  const optimizer = tf.train.adam(1e-2);
  const vars = [...model.params.values()];
  const step = () => {
    const loss = optimizer.minimize(
      () => tf.mean(tf.squaredDifference(model.forward(x).scores, x.target)) as tf.Scalar,
      true,
      vars,
    )!;
    const v = loss.dataSync()[0];
    loss.dispose();
    return v;
  };
  const dispose = () => {
    model.dispose();
    optimizer.dispose();
    tf.dispose(Object.values(x));
  };
  return { step, dispose, backendName };
}

test('native and cpu give the same losses for 20 steps', async () => {
  const run = async (name: string) => {
    await tf.setBackend(name);
    const t = trainer(name);
    const losses = Array.from({ length: 20 }, () => t.step());
    t.dispose();
    return losses;
  };
  const cpu = await run('cpu');
  const native = await run(NATIVE_BACKEND);
  for (let i = 0; i < cpu.length; i++)
    expect(Math.abs(native[i] - cpu[i])).toBeLessThanOrEqual(2e-4 * Math.max(1, Math.abs(cpu[i])));
  expect(native[19]).toBeLessThan(native[0]); // it learns
});

test('1000 training steps leak neither tensors nor native memory nor RSS', () => {
  // In a child process on the built dist/: jest's module sandbox grows RSS by itself.
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', path.join(__dirname, 'helpers', 'native_leak_child.js'), '1000'],
    {
      encoding: 'utf8',
      cwd: path.join(__dirname, '..'),
    },
  );
  const { before, after } = JSON.parse(out.trim().split('\n').pop()!);
  expect(after.tensors).toBe(before.tensors);
  expect(after.native).toEqual(before.native); // every block of a step reused from the cache
  // A leak of one step's activations and gradients (~300 KB here) would add ~300 MB; what is left
  // is the JS heap's own growth (seen up to ~18 MB with two test workers on 2 cores).
  expect(after.rss - before.rss).toBeLessThan(64 * 1024 * 1024);
  expect(Number.isFinite(after.loss)).toBe(true);
});
