// Fused attention (nn.attention) against the composite it replaces, on 'native': the attention block
// alone (forward + backward, BERT-mini's [16, 128, 256] with 4 heads) and the whole BERT-mini training
// step (forward + MSE + backward + AdamW) with the cross-encoder's fused path against its composite
// path (forward(x, { attention: true }) keeps the composite for the pre-softmax scores). The two
// variants alternate step by step, so load on a shared machine hits both alike.
//
//   npm run build && node bench/attention.js [--steps=6] [--reps=20] [--threads=2]   (0 skips a part)
'use strict';
const tf = require('@tensorflow/tfjs');
const fd = require('../dist');
const { CrossEncoder, BERT_MINI } = fd.models;

const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const STEPS = Number(arg('steps', '6'));
const REPS = Number(arg('reps', '20'));
const THREADS = Number(arg('threads', '2'));
const [B, L, H, A] = [16, 128, 256, 4];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs) => `median ${median(xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)} ms`;

// Times each variant's f once per round, the variants alternating; f returns nothing to keep.
function alternate(variants, rounds) {
  const times = variants.map(() => []);
  for (const v of variants) v.f(); // warm-up
  for (let r = 0; r < rounds; r++)
    variants.forEach((v, i) => {
      const t0 = performance.now();
      v.f();
      times[i].push(performance.now() - t0);
    });
  return times;
}

function blockBench() {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const t = () => tf.tensor3d(Float32Array.from({ length: B * L * H }, rand), [B, L, H]);
  const [q, k, v, w] = [t(), t(), t(), t()];
  const bias = tf.zeros([B, L]);
  const run = (impl) => () =>
    tf.tidy(() => {
      const g = tf.grads((a, b, c) => tf.sum(tf.mul(impl(a, b, c, bias, { heads: A }), w)))([q, k, v]);
      g[0].dataSync();
    });
  const [fused, comp] = alternate([{ f: run(fd.nn.attention) }, { f: run(fd.nn.reference.attention) }], REPS);
  console.log(`attention block [${B}, ${L}, ${H}] / ${A} heads, forward + backward:`);
  console.log(`  fused      ${fmt(fused)}`);
  console.log(`  composite  ${fmt(comp)}  (${(median(comp) / median(fused)).toFixed(2)}x the fused time)`);
  tf.dispose([q, k, v, w, bias]);
}

function stepBench() {
  const model = new CrossEncoder(BERT_MINI, 0);
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const x = {
    inputIds: tf.tensor2d(
      new Int32Array(B * L).map(() => Math.floor(rand() * BERT_MINI.vocabSize)),
      [B, L],
      'int32',
    ),
    tokenTypeIds: tf.tensor2d(
      new Int32Array(B * L).map((_, i) => (i % L >= L / 4 ? 1 : 0)),
      [B, L],
      'int32',
    ),
    attentionMask: tf.ones([B, L], 'int32'),
  };
  const target = tf.tensor1d(new Float32Array(B).map(() => rand()));
  const optimizer = new fd.distill.AdamW(model.params, { lr: 1e-4, warmup: 0, totalSteps: 1e9 });
  const names = [...model.params.keys()];
  const vars = [...model.params.values()];
  const step = (want) => () => {
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forward(x, want);
      tf.dispose(out.attention ?? []);
      return tf.mean(tf.squaredDifference(out.scores, target));
    }, vars);
    optimizer.apply(new Map(names.map((n, i) => [n, grads[vars[i].name]])));
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const [fused, comp] = alternate([{ f: step({}) }, { f: step({ attention: true }) }], STEPS);
  console.log(`BERT-mini training step (${B} x ${L}, AdamW):`);
  console.log(`  fused attention      ${fmt(fused)}`);
  console.log(`  composite attention  ${fmt(comp)}  (${(median(comp) / median(fused)).toFixed(2)}x the fused time)`);
  model.dispose();
}

(async () => {
  if (!(await tf.setBackend('native'))) throw new Error("backend 'native' did not initialise");
  fd.addon.setNumThreads(THREADS);
  console.log(`native backend, ${THREADS} threads, gemm ${fd.addon.gemmIsa()}`);
  if (REPS > 0) blockBench();
  if (STEPS > 0) stepBench();
})();
