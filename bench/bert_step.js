// The BERT-mini cross-encoder training step on each tfjs backend, beside PyTorch CPU eager
// in the same run: 4 layers, hidden 256, 4 heads, FFN 1024, vocab 30522, batch 16 x 128 tokens;
// forward + MSE on the scores + backward + Adam. Uses the package's own CrossEncoder (dist/).
//
//   npm run build && node bench/bert_step.js [--backends=native,wasm,cpu] [--steps=10] [--cpu-steps=2]
//       [--no-torch] [--threads=2] [--precisions=fp32,bf16] [--rounds=1] [--profile] [--write]
//
// --precisions: the native rows' matrix products (FUSED_DISTILL_MATMUL_PRECISION), each beside PyTorch
// in the same precision: fp32 eager, and bf16 as torch.autocast('cpu', dtype=torch.bfloat16).
// --rounds=N runs every engine N times in turn (ours, then PyTorch's, N times), each figure the median
// of its rounds' medians: on a shared host the slow minutes then hit every engine alike.
// --optimizers=tfjs,adamw picks the optimizers timed on native; --profile prints the native backend's
// per-kernel table for one step; --write stores the table and
// JSON in bench/results/bert_step.{md,json} (atomically).
'use strict';
const path = require('path');
const fs = require('fs');
const { execFileSync } = require('child_process');
const { cpuName, torchEnv, torchBlasNote } = require('./machine');

const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const fd = require('../dist');
const { CrossEncoder, BERT_MINI } = fd.models;

const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const flag = (name) => process.argv.includes(`--${name}`);
const BACKENDS = arg('backends', 'native,wasm,cpu').split(',');
const STEPS = Number(arg('steps', '10'));
const SLOW_STEPS = Number(arg('cpu-steps', '2')); // tfjs 'cpu' takes about a minute per step
const THREADS = Number(arg('threads', '2'));
const SHAPE = { batch: 16, len: 128 };
// 'tfjs': tf.train.adam (a dozen tensor ops per variable); 'adamw': the pipeline's AdamW
// (src/distill/optimizer.ts, one kernel pass per variable; weight decay 0 = Adam).
const OPTIMIZERS = arg('optimizers', 'tfjs,adamw').split(',');
const PRECISIONS = arg('precisions', 'fp32').split(',');
const ROUNDS = Math.max(1, Number(arg('rounds', '1')));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function inputs() {
  // Same construction as the PyTorch peer: random ids, segment B from a quarter of the way, no padding.
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const { batch: B, len: L } = SHAPE;
  const ids = new Int32Array(B * L).map(() => Math.floor(rand() * BERT_MINI.vocabSize));
  const types = new Int32Array(B * L).map((_, i) => (i % L >= L / 4 ? 1 : 0));
  return {
    inputIds: tf.tensor2d(ids, [B, L], 'int32'),
    tokenTypeIds: tf.tensor2d(types, [B, L], 'int32'),
    attentionMask: tf.ones([B, L], 'int32'),
    target: tf.tensor1d(new Float32Array(B).map(() => rand())),
  };
}

async function runBackend(name, steps, optimizerName, precision = 'fp32', withProfile = true) {
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not initialise`);
  fd.setMatmulPrecision(precision, name);
  const model = new CrossEncoder(BERT_MINI, 0);
  const x = inputs();
  const lossFn = () => tf.mean(tf.squaredDifference(model.forward(x).scores, x.target));
  let optimizer;
  let step;
  if (optimizerName === 'adamw') {
    optimizer = new fd.distill.AdamW(model.params, { lr: 1e-4, warmup: 0, totalSteps: 1e9 });
    const names = [...model.params.keys()];
    const vars = [...model.params.values()];
    step = () => {
      const { value, grads } = tf.variableGrads(lossFn, vars);
      optimizer.apply(new Map(names.map((n, i) => [n, grads[vars[i].name]])));
      const v = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return v;
    };
  } else {
    optimizer = tf.train.adam(1e-4);
    const vars = [...model.params.values()];
    step = () => {
      const loss = optimizer.minimize(lossFn, true, vars);
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
  }
  step(); // warm-up: optimizer slots, kernel set-up
  const tensorsBefore = tf.memory().numTensors;
  const times = [];
  let loss = NaN;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    loss = step();
    times.push(performance.now() - t0);
  }
  let profile = null;
  if (name === 'native' && withProfile && flag('profile')) {
    fd.nativeProfile.start();
    step();
    fd.nativeProfile.stop();
    profile = fd.nativeProfile.report();
  }
  const leaked = tf.memory().numTensors - tensorsBefore - (profile ? 0 : 0);
  model.dispose();
  if (optimizer.dispose) optimizer.dispose();
  for (const t of Object.values(x)) t.dispose();
  fd.setMatmulPrecision('fp32', name);
  return {
    backend: name,
    optimizer: optimizerName,
    precision,
    median_ms: median(times),
    min_ms: Math.min(...times),
    steps,
    loss,
    leaked_tensors: leaked,
    profile,
  };
}

function torchPeer(precision) {
  const out = execFileSync(
    '/usr/bin/python3',
    [
      path.join(__dirname, 'torch_bert_step.py'),
      `--threads=${THREADS}`,
      `--steps=${STEPS}`,
      `--precision=${precision}`,
    ],
    { encoding: 'utf8', env: torchEnv() },
  );
  return JSON.parse(out.trim().split('\n').pop());
}

// Rounds: every engine's run repeated, in turn, so that a shared host's slow minutes hit every
// engine alike; each figure is the median of its rounds' medians (and the least min).
function combine(runs) {
  const r = { ...runs[0] };
  r.median_ms = median(runs.map((x) => x.median_ms));
  r.min_ms = Math.min(...runs.map((x) => x.min_ms));
  r.steps = runs.reduce((n, x) => n + x.steps, 0);
  r.round_medians_ms = runs.map((x) => x.median_ms);
  r.leaked_tensors = Math.max(...runs.map((x) => x.leaked_tensors ?? 0));
  r.profile = runs.map((x) => x.profile).find(Boolean) ?? null;
  return r;
}

async function main() {
  fd.setNumThreads(THREADS);
  const configs = [];
  for (const b of BACKENDS)
    for (const o of b === 'native' ? OPTIMIZERS : ['tfjs'])
      for (const p of b === 'native' ? PRECISIONS : ['fp32']) configs.push({ b, o, p });
  // PyTorch in each precision timed (fp32 eager is the reference column).
  const torchPrecisions = flag('no-torch') ? [] : ['fp32', ...PRECISIONS.filter((x) => x !== 'fp32')];
  const ours = configs.map(() => []);
  const theirs = Object.fromEntries(torchPrecisions.map((p) => [p, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const tag = ROUNDS > 1 ? ` [round ${round + 1}/${ROUNDS}]` : '';
    for (const [i, { b, o, p }] of configs.entries()) {
      const r = await runBackend(b, b === 'native' ? STEPS : SLOW_STEPS, o, p, round === 0);
      console.error(
        `${b} (${o}, ${p})${tag}: median ${r.median_ms.toFixed(0)} ms/step over ${r.steps} steps (loss ${r.loss.toFixed(4)}, tensors leaked ${r.leaked_tensors})`,
      );
      ours[i].push(r);
    }
    for (const p of torchPrecisions) {
      try {
        const t = torchPeer(p);
        theirs[p].push(t);
        console.error(
          `pytorch eager ${p}${tag}: median ${t.median_ms.toFixed(0)} ms/step (torch.mm 1024^3: ${t.mm1024_gflops.toFixed(0)} GFLOP/s)`,
        );
      } catch (e) {
        console.error(`PyTorch peer (${p}) skipped: ${e.message.split('\n')[0]}`);
      }
    }
  }
  const rows = ours.map(combine);
  const torchRuns = {};
  for (const [p, runs] of Object.entries(theirs))
    if (runs.length > 0) torchRuns[p] = { ...combine(runs), mm1024_gflops: median(runs.map((x) => x.mm1024_gflops)) };
  const torch = torchRuns.fp32 ?? null;
  const when = new Date().toISOString().replace(/\..*/, 'Z');
  const cpu = cpuName();
  const L = [];
  L.push(
    `BERT-mini training step (4L/256/4h/FFN 1024, vocab 30522, batch 16 x 128; forward + MSE + backward + Adam), ${when}, ${cpu}, ${THREADS} threads. Median ms per step${ROUNDS > 1 ? ` (median of ${ROUNDS} rounds' medians, engines in turn)` : ''}.`,
  );
  L.push('');
  const vs = (ms, peer) => (peer ? `${(peer.median_ms / ms).toFixed(2)}x` : '-');
  L.push(
    '| engine, optimizer | matrix products | ms/step (median) | min | steps timed | vs PyTorch eager fp32 | vs PyTorch bf16 autocast |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows)
    L.push(
      `| tfjs ${r.backend}, ${r.optimizer === 'adamw' ? 'AdamW (addon)' : 'tf.train.adam'} | ${r.precision} | ${r.median_ms.toFixed(0)} | ${r.min_ms.toFixed(0)} | ${r.steps} | ${vs(r.median_ms, torch)} | ${vs(r.median_ms, torchRuns.bf16)} |`,
    );
  for (const [p, t] of Object.entries(torchRuns))
    L.push(
      `| PyTorch ${t.torch} eager${p === 'bf16' ? ' + autocast(cpu, bfloat16)' : ''}, torch.optim.Adam (torch.mm 1024^3 ${t.mm1024_gflops.toFixed(0)} GFLOP/s, ${torchBlasNote()}) | ${p} | ${t.median_ms.toFixed(0)} | ${t.min_ms.toFixed(0)} | ${t.steps} | ${vs(t.median_ms, torch)} | ${vs(t.median_ms, torchRuns.bf16)} |`,
    );
  const table = L.join('\n');
  console.log(table);
  for (const r of rows)
    if (r.profile)
      console.log(`\nnative backend (${r.optimizer}, ${r.precision}), one step, per kernel:\n${r.profile}`);
  if (flag('write')) {
    const dir = path.join(__dirname, 'results');
    const write = (file, text) => {
      const tmp = path.join(dir, `.${file}.${process.pid}.tmp`);
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, path.join(dir, file));
    };
    write(
      'bert_step.md',
      table +
        '\n' +
        rows
          .filter((r) => r.profile)
          .map((r) => `\nnative backend (${r.optimizer}, ${r.precision}), one step, per kernel:\n\n${r.profile}\n`)
          .join(''),
    );
    write(
      'bert_step.json',
      JSON.stringify({ when, cpu, threads: THREADS, rounds: ROUNDS, rows, torch: torchRuns }, null, 2) + '\n',
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
