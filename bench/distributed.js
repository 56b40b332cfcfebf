// Data-parallel training steps on the same cores: 1 rank × 2 threads against 2 ranks × 1 thread
// (MPI, and the built-in launcher's TCP hub), the step the pipeline takes (trainStepAcross: the
// micro-batches' gradients summed in the fixed tree, one allgather between ranks, AdamW), on a
// fixed-shape batch of the BERT-mini cross-encoder (or --model student: 2L/128). Prints steps/s,
// the median step and the median time in the collective, and checks that every configuration ends
// with the same parameters, bit for bit (their sha256).
//
//   npm run build && node bench/distributed.js [--steps=8] [--model=mini|student] [--write]
//
// --write stores the table in bench/results/distributed-<model>.{md,json} (atomically). One rank's part
// runs as `node bench/distributed.js --rank-part ...` under mpirun or the launcher.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const flag = (name) => process.argv.includes(`--${name}`);
const STEPS = Number(arg('steps', '8'));
const MODEL = arg('model', 'mini');
const SHAPE = { sequences: 16, len: 128, micro: 8 }; // 2 micro-batches of 8 sequences a step

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// One rank's part: joins the world from the environment, takes STEPS + 1 steps (the first is a
// warm-up), and rank 0 prints one JSON line.
async function rankPart() {
  const tf = require('@tensorflow/tfjs');
  const fd = require('../dist');
  const { joinWorld } = require('../dist/distributed/join');
  const { trainStepAcross } = require('../dist/distill/step');
  const { variablesHash } = require('../dist/distributed/sync');
  const world = await joinWorld();
  fd.setNumThreads(Number(arg('threads', '1')));
  require('../dist/backend');
  await tf.setBackend('native');
  const sizes =
    MODEL === 'student'
      ? { ...fd.models.BERT_MINI, layers: 2, hidden: 128, heads: 2, intermediate: 512 }
      : fd.models.BERT_MINI;
  const model = new fd.models.CrossEncoder(sizes, 0);
  const optimizer = new fd.distill.AdamW(model.params, { lr: 1e-4, warmup: 0, totalSteps: 1e9 });
  // Same construction as bench/bert_step.js: random ids, segment B from a quarter of the way.
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const { sequences: B, len: L, micro } = SHAPE;
  const ids = new Int32Array(B * L).map(() => Math.floor(rand() * sizes.vocabSize));
  const types = new Int32Array(B * L).map((_, i) => (i % L >= L / 4 ? 1 : 0));
  const target = new Float32Array(B).map(() => rand());
  const m = B / micro;
  if (m % world.size !== 0) throw new Error(`${m} micro-batches cannot be shared by ${world.size} ranks`);
  const count = m / world.size;
  const first = world.rank * count;
  const microBatch = (i) => {
    const slice = (a) => a.slice(i * micro * L, (i + 1) * micro * L);
    const x = {
      inputIds: tf.tensor2d(slice(ids), [micro, L], 'int32'),
      tokenTypeIds: tf.tensor2d(slice(types), [micro, L], 'int32'),
      attentionMask: tf.ones([micro, L], 'int32'),
    };
    const y = tf.tensor1d(target.slice(i * micro, (i + 1) * micro));
    return {
      share: 1 / m,
      loss: () => ({ total: tf.mean(tf.squaredDifference(model.forward(x).scores, y)), parts: {} }),
      dispose: () => tf.dispose([...Object.values(x), y]),
    };
  };
  const mine = () => Array.from({ length: count }, (_, k) => microBatch(first + k));
  const times = [];
  const exchange = [];
  for (let s = 0; s <= STEPS; s++) {
    const t0 = performance.now();
    const r = await trainStepAcross(world, mine(), model.params, optimizer, first);
    if (s > 0) {
      times.push(performance.now() - t0);
      exchange.push(r.exchangeMs);
    }
  }
  const gradientBytes = 4 * [...model.params.values()].reduce((n, v) => n + v.size, 0);
  const hash = variablesHash(model.params);
  if (world.rank === 0)
    process.stdout.write(
      `${JSON.stringify({
        worldSize: world.size,
        transport: world.transport,
        threads: Number(arg('threads', '1')),
        stepMs: median(times),
        exchangeMs: median(exchange),
        stepsPerSecond: 1000 / median(times),
        gradientBytes,
        paramsSha256: hash,
      })}\n`,
    );
  await world.close();
}

function lastJson(text) {
  const line = text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (!line) throw new Error(`no result line in:\n${text}`);
  return JSON.parse(line);
}

async function main() {
  const self = [__filename, '--rank-part', `--steps=${STEPS}`, `--model=${MODEL}`];
  const rows = [];
  const run = (label, command, args) => {
    process.stderr.write(`${label} ...\n`);
    const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${label} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
    rows.push({ label, ...lastJson(r.stdout) });
  };
  // The built-in launcher's library call (the CLI's `launch` runs fused-distill commands only).
  const launched = async (label, nproc, args) => {
    process.stderr.write(`${label} ...\n`);
    const { launch } = require('../dist/distributed/launch');
    let out = '';
    const code = await launch({
      nproc,
      command: [process.execPath, ...args],
      onOutput: (stream, text) => (stream === 'stdout' ? (out += text) : process.stderr.write(text)),
    });
    if (code !== 0) throw new Error(`${label} failed (${code}):\n${out}`);
    rows.push({ label, ...lastJson(out) });
  };
  run('1 rank × 2 threads', process.execPath, [...self, '--threads=2']);
  const mpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).stdout.trim();
  if (mpirun)
    run('2 ranks × 1 thread (mpirun)', mpirun, [
      '--allow-run-as-root',
      '--oversubscribe',
      '-np',
      '2',
      process.execPath,
      ...self,
      '--threads=1',
    ]);
  else process.stderr.write('mpirun not found: the MPI row is left out\n');
  await launched('2 ranks × 1 thread (launch)', 2, [...self, '--threads=1']);
  const same = rows.every((r) => r.paramsSha256 === rows[0].paramsSha256);
  const cpu = os.cpus()[0]?.model?.trim();
  const lines = [
    `Data-parallel step, ${MODEL === 'student' ? '2L/128 student' : 'BERT-mini 4L/256'} cross-encoder, ${SHAPE.sequences} × ${SHAPE.len} tokens a step in 2 micro-batches of ${SHAPE.micro}, fp32, native backend; ${cpu} × ${os.cpus().length}, Node ${process.version}; median of ${STEPS} steps after one warm-up.`,
    '',
    '| configuration | step | steps/s | in the collective | gradient bytes |',
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.stepMs.toFixed(1)} ms | ${r.stepsPerSecond.toFixed(2)} | ${r.exchangeMs.toFixed(1)} ms | ${(r.gradientBytes / 1e6).toFixed(1)} MB |`,
    ),
    '',
    `Parameters after the last step: ${same ? 'the same sha256 in every configuration' : 'DIFFERENT: ' + rows.map((r) => r.paramsSha256.slice(0, 12)).join(', ')}.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (flag('write')) {
    const dir = path.join(__dirname, 'results');
    for (const [name, text] of [
      [`distributed-${MODEL}.md`, `${lines.join('\n')}\n`],
      [`distributed-${MODEL}.json`, `${JSON.stringify({ date: new Date().toISOString(), cpu, rows }, null, 1)}\n`],
    ]) {
      const tmp = path.join(dir, `.${name}.${process.pid}`);
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, path.join(dir, name));
    }
  }
  if (!same) process.exitCode = 1;
}

if (flag('rank-part'))
  rankPart().catch((e) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
else
  main().catch((e) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
