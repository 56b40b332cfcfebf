#!/usr/bin/env node
// Evaluation and teacher-scoring throughput on a store-backed MS MARCO dataset (bench/msmarco_synth.js
// wrote it, bench/msmarco_scale.js --store built its store): is a scoring pass limited by the model
// or by reading data? Each pass runs its pairs twice:
//   data:  what scorePairs does without the model (token ids read from the store by pid, pairs
//          truncated, padded batch tensors made and freed);
//   score: scorePairs itself (the same, plus the model's forward pass and reading the scores back).
// The data share is data / score, with the store's pages cached (the data pass runs before the
// scoring, and each pass's pairs are read once before any model: that first read, from disk when
// the page cache is cold, e.g. after `echo 3 > /proc/sys/vm/drop_caches`, is reported apart).
// Passes: evaluation (the dev queries' top1000 candidates) and `teacher score` (the pairs a run's
// sampler draws in --steps steps, enumerated by drawnPairs).
// Models: the default teacher (4 layers, hidden 256, 4 heads, FFN 1024: BERT-mini) and the main
// job's student (2 layers, hidden 128), the smallest model and so the largest data share.
//
//   npm run build && node bench/msmarco_throughput.js <dataset dir> --store <dir>
//        [--queries 100] [--steps 200] [--batch 32] [--negatives 7] [--score-batch 64]
//        [--precision bf16|fp32] [--threads n] [--out results.json]
'use strict';
const fs = require('fs');
const os = require('os');
const tf = require('@tensorflow/tfjs');
const fd = require('../dist');
const { useBackend } = require('../dist/cli/common');
const { openData } = require('../dist/distill/setup');
const { drawnPairs } = require('../dist/distill/batches');
const { scorePairs } = require('../dist/distill/scoring');
const { evalQueries } = require('../dist/eval/rerank');
const { disposeEncoderInputs } = require('../dist/models/cross_encoder');

const args = process.argv.slice(2);
const dataset = args[0] && !args[0].startsWith('--') ? args[0] : null;
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? def : args[i + 1];
};
const store = opt('store', null);
if (!dataset || !store) {
  process.stderr.write('usage: node bench/msmarco_throughput.js <dataset dir> --store <dir> [options]\n');
  process.exit(2);
}
const QUERIES = Number(opt('queries', 100));
const STEPS = Number(opt('steps', 200));
const BATCH = Number(opt('batch', 32));
const NEGATIVES = Number(opt('negatives', 7));
const SCORE_BATCH = Number(opt('score-batch', 64));
const PRECISION = opt('precision', 'bf16');
const THREADS = opt('threads', null);
const MODELS = {
  'teacher (4L/256)': { layers: 4, hidden: 256, heads: 4, intermediate: 1024, maxPosition: 512 },
  'student (2L/128)': { layers: 2, hidden: 128, heads: 2, intermediate: 512, maxPosition: 512 },
};

const seconds = (f) => {
  const t0 = process.hrtime.bigint();
  const r = f();
  return [Number(process.hrtime.bigint() - t0) / 1e9, r];
};

/** scorePairs' work without the model: the same lengths, order, batches and tensors. */
function readOnly(encoder, pairs) {
  const lengths = pairs.map(([q, p]) => encoder.pairLength(q, p));
  const order = pairs.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  for (let start = 0; start < order.length; start += SCORE_BATCH) {
    const idx = order.slice(start, start + SCORE_BATCH);
    const { inputs, tokenMask } = encoder.encode(idx.map((i) => pairs[i]));
    disposeEncoderInputs(inputs);
    tf.dispose(tokenMask);
  }
}

(async () => {
  await useBackend('native', THREADS == null ? undefined : Number(THREADS), PRECISION);
  const config = fd.distill.parseTeacherConfig({
    output: 'unused',
    data: { msmarco: dataset, store, negatives: NEGATIVES, maxLength: 128, evalSplit: 'dev', evalQueries: QUERIES },
    train: { batch: BATCH, steps: STEPS, seed: 1 },
  });
  const [openS, { coll, encoder }] = await (async () => {
    const t0 = process.hrtime.bigint();
    const r = await openData(config);
    return [Number(process.hrtime.bigint() - t0) / 1e9, r];
  })();
  process.stderr.write(`opened ${dataset} with its store in ${openS.toFixed(1)} s\n`);
  const evalPairs = evalQueries(coll, { split: 'dev', queries: QUERIES }).flatMap(({ qid, pids }) =>
    pids.map((pid) => [qid, pid]),
  );
  const [drawS, drawn] = seconds(() => drawnPairs(coll, { negatives: NEGATIVES }, { batch: BATCH, seed: 1 }, STEPS));
  process.stderr.write(`drawnPairs: ${drawn.length} pairs of ${STEPS} steps in ${drawS.toFixed(2)} s\n`);
  encoder.matchLevels(); // the store's document frequencies, read once (not part of a pass)
  const passes = [
    ['evaluation', evalPairs],
    ['teacher score', drawn],
  ];
  const firstRead = {};
  for (const [pass, pairs] of passes) {
    [firstRead[pass]] = seconds(() => readOnly(encoder, pairs));
    process.stderr.write(`${pass}: first read of ${pairs.length} pairs ${firstRead[pass].toFixed(2)} s\n`);
  }

  const rows = [];
  for (const [name, sizes] of Object.entries(MODELS)) {
    const model = new fd.models.CrossEncoder(
      { ...fd.distill.parseTeacherConfig({ output: 'x', model: sizes }).model },
      1,
    );
    scorePairs(model, encoder, evalPairs.slice(0, SCORE_BATCH), SCORE_BATCH); // warm-up
    for (const [pass, pairs] of passes) {
      const [dataS] = seconds(() => readOnly(encoder, pairs));
      const [scoreS] = seconds(() => scorePairs(model, encoder, pairs, SCORE_BATCH));
      const row = {
        model: name,
        pass,
        pairs: pairs.length,
        firstReadSeconds: firstRead[pass],
        dataSeconds: dataS,
        scoreSeconds: scoreS,
        pairsPerSecond: pairs.length / scoreS,
        dataShare: dataS / scoreS,
      };
      rows.push(row);
      process.stderr.write(
        `${name} ${pass}: ${pairs.length} pairs, data ${dataS.toFixed(2)} s, scored ${scoreS.toFixed(2)} s ` +
          `(${row.pairsPerSecond.toFixed(0)} pairs/s), data share ${(100 * row.dataShare).toFixed(1)}%\n`,
      );
    }
    model.dispose();
  }
  const result = {
    dataset,
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model,
    precision: PRECISION,
    openSeconds: openS,
    drawnPairsSeconds: drawS,
    rows,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const out = opt('out', null);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
})().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(1);
});
