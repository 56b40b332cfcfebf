// A cross-encoder trained on the 'native' backend: the same losses as on 'cpu' step for step, and
// 1000 Adam steps with no growth in live tensors, native memory or process RSS.
import * as tf from '@tensorflow/tfjs';
import * as v8 from 'v8';
import * as vm from 'vm';

import { addon } from '../src/native';
import { NATIVE_BACKEND, registerNativeBackend } from '../src/backend/native/register';
import { CrossEncoder, CrossEncoderConfig } from '../src/models/cross_encoder';

registerNativeBackend();

// A full garbage collection, so that RSS reflects live memory rather than uncollected garbage.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const TINY: CrossEncoderConfig = {
  vocabSize: 97, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 32, typeVocab: 2, layerNormEps: 1e-12, initStd: 0.02,
};
const B = 4;
const L = 12;

function batch() {
  const ids = new Int32Array(B * L).map((_, i) => (i * 7919) % TINY.vocabSize);
  const mask = new Int32Array(B * L).map((_, i) => (i % L < L - (i % 3) ? 1 : 0)); // some padding
  return {
    inputIds: tf.tensor2d(ids, [B, L], 'int32'),
    tokenTypeIds: tf.tensor2d(new Int32Array(B * L).map((_, i) => (i % L >= L / 2 ? 1 : 0)), [B, L], 'int32'),
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
    const loss = optimizer.minimize(() => tf.mean(tf.squaredDifference(model.forward(x).scores, x.target)) as tf.Scalar, true, vars)!;
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
  for (let i = 0; i < cpu.length; i++) expect(Math.abs(native[i] - cpu[i])).toBeLessThanOrEqual(2e-4 * Math.max(1, Math.abs(cpu[i])));
  expect(native[19]).toBeLessThan(native[0]); // it learns
});

test('1000 training steps leak neither tensors nor native memory nor RSS', async () => {
  await tf.setBackend(NATIVE_BACKEND);
  const t = trainer(NATIVE_BACKEND);
  for (let i = 0; i < 50; i++) t.step(); // warm-up: optimizer slots, allocator and JIT steady state
  gc();
  const tensors = tf.memory().numTensors;
  const native = addon.hostBufferStats();
  const rss = process.memoryUsage().rss;
  let last = 0;
  for (let i = 0; i < 1000; i++) last = t.step();
  gc();
  expect(tf.memory().numTensors).toBe(tensors);
  expect(addon.hostBufferStats()).toEqual(native); // every block of a step reused from the cache
  // After a full GC, RSS may still move by what the allocators keep; a leak of one step's
  // activations and gradients (~300 KB here) over 1000 steps would add ~300 MB.
  expect(process.memoryUsage().rss - rss).toBeLessThan(32 * 1024 * 1024);
  expect(Number.isFinite(last)).toBe(true);
  t.dispose();
});
