#!/usr/bin/env node
// The passage store at MS MARCO scale, on a dataset bench/msmarco_synth.js wrote:
// 1. index build: `fused-distill data index` into a fresh store dir (wall time, peak RSS), the
//    training triples' table included (its own seconds from its manifest);
// 2. a warm start: the same command on the built store (what every later run pays to check it);
// 3. time to the first training step of a tiny teacher run with data.msmarco (the store built),
//    and its peak RSS while loading and stepping;
// 4. where the dataset holds Hofstätter-format teacher scores (bench/msmarco_synth.js
//    --teacher-scores or --scores-only), a student run with teacher.scores to its first step,
//    twice: first building the scores table beside the store, then reading it back.
// Each phase runs the built CLI (npm run build first) as a child process; peak RSS is the child's
// VmHWM (/proc/<pid>/status, polled), which counts the tokenizer worker threads too.
//
//   node bench/msmarco_scale.js <dataset dir> [--workers n] [--backend native] [--out results.json]
//        [--store <dir>]   (build the store there and keep it, e.g. for bench/msmarco_throughput.js;
//                           default: a temporary dir, removed at the end)
//        [--reuse-store]   (with --store: a store built there before; its build is not timed again,
//                           phases 2-4 run on it)
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const args = process.argv.slice(2);
const dataset = args[0] && !args[0].startsWith('--') ? path.resolve(args[0]) : null;
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? def : args[i + 1];
};
if (!dataset || !fs.existsSync(dataset)) {
  process.stderr.write(
    'usage: node bench/msmarco_scale.js <dataset dir> [--workers n] [--backend native] [--out file] [--store dir]\n',
  );
  process.exit(2);
}
const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js');
const backend = opt('backend', 'native');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-scale-'));
const keptStore = opt('store', null);
const reuse = args.includes('--reuse-store');
if (reuse && !keptStore) {
  process.stderr.write('--reuse-store: give the built store with --store\n');
  process.exit(2);
}
if (!reuse && keptStore && fs.existsSync(keptStore) && fs.readdirSync(keptStore).length > 0) {
  process.stderr.write(`--store ${keptStore}: not empty; the build is timed from scratch, give a new dir\n`);
  process.exit(2);
}
const store = keptStore ? path.resolve(keptStore) : path.join(work, 'store');

const hwmKb = (pid) => {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
};

/** Runs the CLI; `until(line)` true on a stderr line ends it there (SIGKILL). Wall seconds, peak RSS MB, lines. */
function run(cliArgs, until = () => false) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, '--backend', backend, '--progress', 'json', ...cliArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, hwmKb(child.pid))), 100);
    const lines = [];
    let stopped = null;
    let rest = '';
    child.stderr.on('data', (d) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (stopped == null && until(line)) {
          stopped = Number(process.hrtime.bigint() - t0) / 1e9;
          peak = Math.max(peak, hwmKb(child.pid));
          child.kill('SIGKILL'); // measured: the rest of the run is not
        }
      }
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d.toString()));
    child.on('close', (code, signal) => {
      clearInterval(poll);
      const seconds = stopped ?? Number(process.hrtime.bigint() - t0) / 1e9;
      if (stopped == null && code !== 0)
        return reject(new Error(`${cliArgs.join(' ')}: exit ${code ?? signal}\n${lines.slice(-20).join('\n')}`));
      resolve({ seconds, peakMb: peak / 1024, lines, stdout });
    });
  });
}

(async () => {
  const size = (f) => (fs.existsSync(path.join(dataset, f)) ? fs.statSync(path.join(dataset, f)).size : 0);
  const workers = opt('workers', null);
  const index = ['data', 'index', dataset, '--store', store, ...(workers != null ? ['--workers', workers] : [])];
  if (!reuse) process.stderr.write(`index build (${os.availableParallelism()} cores) ...\n`);
  const build = reuse ? { seconds: null, peakMb: null, stdout: '(reused: built before)\n' } : await run(index);
  const manifest = JSON.parse(fs.readFileSync(path.join(store, 'collection', 'manifest.json'), 'utf8'));
  // The training triples' table (qidpidtriples), built by the same command.
  const triplesManifest = path.join(store, 'triples.train', 'manifest.json');
  const triples = fs.existsSync(triplesManifest) ? JSON.parse(fs.readFileSync(triplesManifest, 'utf8')) : null;
  if (!reuse)
    process.stderr.write(`  ${build.seconds.toFixed(1)} s, peak RSS ${build.peakMb.toFixed(0)} MB: ${build.stdout}`);
  const warm = await run(index);
  process.stderr.write(
    `warm start (store checked, opened): ${warm.seconds.toFixed(2)} s, peak RSS ${warm.peakMb.toFixed(0)} MB\n`,
  );

  const config = path.join(work, 'teacher.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      output: path.join(work, 'run'),
      model: { layers: 1, hidden: 32, heads: 2, intermediate: 64, maxPosition: 128 },
      data: { msmarco: dataset, store, negatives: 3, maxLength: 128, evalQueries: 0 },
      train: { batch: 4, steps: 1000, lr: 1e-4, warmup: 1, evalEvery: 0, checkpointEvery: 0 },
      loss: { ranknet: 1 },
    }),
  );
  process.stderr.write('teacher run to its first step ...\n');
  const first = await run(['teacher', 'train', config], (line) => line.includes('"type":"step"'));
  process.stderr.write(`  first step after ${first.seconds.toFixed(1)} s, peak RSS ${first.peakMb.toFixed(0)} MB\n`);

  const scoresFile = path.join(dataset, 'bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv');
  const student = [];
  if (fs.existsSync(scoresFile)) {
    const studentConfig = path.join(work, 'student.json');
    for (const pass of ['scores table built', 'scores table read back']) {
      fs.writeFileSync(
        studentConfig,
        JSON.stringify({
          output: path.join(work, `student-${student.length}`),
          teacher: { scores: scoresFile },
          student: { model: { layers: 1, hidden: 32, heads: 2, intermediate: 64, maxPosition: 128 } },
          data: { msmarco: dataset, store, negatives: 3, maxLength: 128, evalQueries: 0 },
          train: { batch: 4, steps: 1000, lr: 1e-4, warmup: 1, evalEvery: 0, checkpointEvery: 0 },
          loss: { marginMSE: 1 },
        }),
      );
      process.stderr.write(`student run on teacher.scores to its first step (${pass}) ...\n`);
      const r = await run(['distill', studentConfig], (line) => line.includes('"type":"step"'));
      process.stderr.write(`  first step after ${r.seconds.toFixed(1)} s, peak RSS ${r.peakMb.toFixed(0)} MB\n`);
      student.push({ pass, firstStepSeconds: r.seconds, peakRssMb: r.peakMb });
    }
  }

  const result = {
    dataset,
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model,
    passages: manifest.rows,
    tokens: manifest.tokens,
    collectionBytes: size('collection.tsv') || size('collection.tsv.gz'),
    triplesBytes: size('qidpidtriples.train.full.2.tsv'),
    indexSeconds: build.seconds,
    indexPeakRssMb: build.peakMb,
    passagesPerSecond: manifest.rows / manifest.seconds,
    triplesRows: triples?.rows ?? 0,
    triplesQueries: triples?.queries ?? 0,
    triplesIndexSeconds: triples?.seconds ?? 0,
    warmStartSeconds: warm.seconds,
    warmStartPeakRssMb: warm.peakMb,
    firstStepSeconds: first.seconds,
    firstStepPeakRssMb: first.peakMb,
    scoresBytes: size('bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv'),
    studentFromScores: student,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const out = opt('out', null);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  fs.rmSync(work, { recursive: true, force: true });
})().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  fs.rmSync(work, { recursive: true, force: true });
  process.exit(1);
});
