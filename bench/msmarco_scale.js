#!/usr/bin/env node
// The passage store at MS MARCO scale, on a dataset bench/msmarco_synth.js wrote:
// 1. index build: `fused-distill data index` into a fresh store dir (wall time, peak RSS), the
//    training triples' table included (its own seconds from its manifest);
// 2. a warm start: the same command on the built store (what every later run pays to check it);
// 3. time to the first training step of a tiny teacher run with data.msmarco (the store built),
//    and its peak RSS while loading and stepping.
// Each phase runs the built CLI (npm run build first) as a child process; peak RSS is the child's
// VmHWM (/proc/<pid>/status, polled), which counts the tokenizer worker threads too.
//
//   node bench/msmarco_scale.js <dataset dir> [--workers n] [--backend native] [--out results.json]
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
    'usage: node bench/msmarco_scale.js <dataset dir> [--workers n] [--backend native] [--out file]\n',
  );
  process.exit(2);
}
const CLI = path.join(__dirname, '..', 'dist', 'cli', 'index.js');
const backend = opt('backend', 'native');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-scale-'));
const store = path.join(work, 'store');

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
  process.stderr.write(`index build (${os.availableParallelism()} cores) ...\n`);
  const build = await run(index);
  const manifest = JSON.parse(fs.readFileSync(path.join(store, 'collection', 'manifest.json'), 'utf8'));
  // The training triples' table (qidpidtriples), built by the same command.
  const triplesManifest = path.join(store, 'triples.train', 'manifest.json');
  const triples = fs.existsSync(triplesManifest) ? JSON.parse(fs.readFileSync(triplesManifest, 'utf8')) : null;
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
