// Child process of tests/native_training.test.ts: trains a tiny cross-encoder on the 'native' backend
// (built dist/) and prints live tensors, native memory and RSS after full garbage collections, once
// after warm-up and once 1000 steps later. Run outside jest because jest's module sandbox itself
// grows RSS; needs --expose-gc.
'use strict';
const path = require('path');
const tf = require('@tensorflow/tfjs');
const fd = require(path.join(__dirname, '..', '..', 'dist'));

const TINY = {
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
const steps = Number(process.argv[2] || 1000);

async function main() {
  await tf.setBackend('native');
  const model = new fd.models.CrossEncoder(TINY, 3);
  const x = {
    inputIds: tf.tensor2d(
      new Int32Array(B * L).map((_, i) => (i * 7919) % TINY.vocabSize),
      [B, L],
      'int32',
    ),
    tokenTypeIds: tf.tensor2d(
      new Int32Array(B * L).map((_, i) => (i % L >= L / 2 ? 1 : 0)),
      [B, L],
      'int32',
    ),
    attentionMask: tf.tensor2d(
      new Int32Array(B * L).map((_, i) => (i % L < L - (i % 3) ? 1 : 0)),
      [B, L],
      'int32',
    ),
  };
  const target = tf.tensor1d([1, 0, 0.5, 0.25]);
  const optimizer = tf.train.adam(1e-2);
  const vars = [...model.params.values()];
  let loss = NaN;
  const step = () => {
    const l = optimizer.minimize(() => tf.mean(tf.squaredDifference(model.forward(x).scores, target)), true, vars);
    loss = l.dataSync()[0];
    l.dispose();
  };
  const sample = () => {
    global.gc();
    return {
      tensors: tf.memory().numTensors,
      native: fd.addon.hostBufferStats(),
      rss: process.memoryUsage().rss,
      loss,
    };
  };
  for (let i = 0; i < 200; i++) step(); // warm-up: optimizer slots, block cache and JIT steady state
  const before = sample();
  for (let i = 0; i < steps; i++) step(); // synchronous, as a training loop is
  const after = sample();
  process.stdout.write(JSON.stringify({ before, after }) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
