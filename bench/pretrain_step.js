// One masked-language-model pre-training step (src/distill/pretrain.ts) on 'native', broken down:
// the whole step (trainStep: encoder + head + loss forward and backward, AdamW), the encoder's
// forward + backward alone (a cheap loss on its last hidden states), the head's (transform, tied
// decoder, fused cross-entropy) on fixed hidden states, and the [M, V] cross-entropy alone. Default:
// the main job's teacher (configs/main/main.json: 4 layers, hidden 128, 2 heads, FFN 512, term match
// 4 levels), 64 passages of the bundled collection cut to 128 tokens, bf16 matrix products.
//
//   npm run build && node bench/pretrain_step.js [--steps=5] [--precision=bf16|fp32] [--threads=n]
'use strict';
const tf = require('@tensorflow/tfjs');
const fd = require('../dist');
const { useBackend } = require('../dist/cli/common');
const { defaultTokenizer } = require('../dist/distill/setup');
const { listwiseSoftmaxCE } = require('../dist/losses/listwise');

const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const STEPS = Number(arg('steps', '5'));
const PRECISION = arg('precision', 'bf16');
const THREADS = arg('threads', null);
const SIZES = { layers: 4, hidden: 128, heads: 2, intermediate: 512, termMatch: true, termMatchLevels: 4 };

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// Median ms of `f` over STEPS runs after one warm-up.
function time(f) {
  f();
  const ms = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = process.hrtime.bigint();
    f();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ms);
}

function grads(loss, vars) {
  const { value, grads: g } = tf.variableGrads(loss, vars);
  value.dataSync();
  tf.dispose([value, ...Object.values(g)]);
}

(async () => {
  await useBackend('native', THREADS == null ? undefined : Number(THREADS), PRECISION);
  const { distill, models } = fd;
  const tok = defaultTokenizer();
  const config = distill.parsePretrainConfig({ output: 'unused', model: SIZES });
  const corpus = await distill.pretrainCorpus(config, tok);
  const model = new models.CrossEncoder({ ...config.model }, 1);
  const head = new distill.MlmHead(model, 1);
  const masking = {
    probability: 0.15,
    maskId: tok.ids('[MASK]')[0],
    padId: tok.padId,
    vocabSize: tok.vocabSize,
    special: new Set([tok.clsId, tok.sepId, tok.padId]),
  };
  const b = distill.maskBatch(corpus.slice(0, 64), masking, 1, 1);
  const M = b.positions.length;
  const V = model.config.vocabSize;
  const params = new Map([...[...model.params].filter(([n]) => distill.mlmTrained(n)), ...head.params]);
  const optimizer = distill.runOptimizer(params, { ...config.train, steps: 1000 });
  const encoderVars = [...model.params].filter(([n]) => distill.mlmTrained(n)).map(([, v]) => v);
  const hidden = tf.variable(tf.randomNormal([b.batch * b.length, model.config.hidden]), true);
  const words = model.params.get('bert.embeddings.word_embeddings.weight');
  const logits = tf.variable(tf.randomNormal([M, V]), true);
  const labels = tf.keep(distill.oneHotRows(b.labels, V));

  const rows = {
    'whole step (trainStep: forward, backward, AdamW)': time(() =>
      distill.trainStep(
        [
          {
            share: 1,
            loss: () => {
              const total = head.batchLoss(b);
              return { total, parts: {} };
            },
            dispose: () => undefined,
          },
        ],
        params,
        optimizer,
      ),
    ),
    'encoder forward + backward': time(() =>
      grads(() => tf.tidy(() => tf.mean(tf.square(head.encode(b)))), encoderVars),
    ),
    'encoder forward': time(() =>
      tf.tidy(() => {
        head.encode(b).dataSync();
      }),
    ),
    'head + loss forward + backward (fixed hidden states)': time(() =>
      grads(() => head.loss(hidden, b.positions, b.labels), [hidden, ...head.params.values(), words]),
    ),
    [`cross-entropy [${M}, ${V}] forward + backward (fused listwise)`]: time(() =>
      grads(() => listwiseSoftmaxCE(logits, labels), [logits]),
    ),
  };
  console.log(
    `pretrain step, native, ${PRECISION}, batch ${b.batch} x ${b.length} tokens, ${M} masked, model ${JSON.stringify(SIZES)}, median of ${STEPS}`,
  );
  for (const [k, v] of Object.entries(rows)) console.log(`${v.toFixed(0).padStart(7)} ms  ${k}`);
})();
