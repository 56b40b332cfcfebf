#!/usr/bin/env node
// CPU benchmark of the fused losses (docs/performance.md, "Method"). `npm run bench` (after a build)
// or `node bench/benchmark.js [options]` (below).
//
// Per case of bench/cases.json: forward + gradient w.r.t. the student input through the public op,
// `tf.grad(s => losses.X(s, ...))(s)` then dispose, timed with benchmark.js (synchronous mode; each
// figure is the median of its per-cycle means after warm-up) for these peers, all in this run:
//   fused op on tfjs 'cpu' and 'wasm'; losses.reference.X (plain tfjs) on 'cpu' and 'wasm';
//   PyTorch CPU eager (bench/torch_cpu.py, 2 threads, same input data).
// Floors, measured in this run: bandwidth (bytes that must move / memory bandwidth from a 256 MB
// TypedArray.set copy, 1 thread and 2 worker threads, the faster counts) and engine
// (tf.grad(x => tf.sum(x)) over a one-element tensor on 'cpu').
// The machine is shared (2 vCPUs): a compute probe says how many cores this run really had, every
// figure records the CPU other processes used meanwhile, and a figure taken under load is measured
// again at the end, once the machine is quiet (see monitored, better). Cases run one at a time with all their peers
// (PyTorch is a server process asked case by case), so each row is measured within seconds.
// Writes bench/results/cpu.md and cpu.json (atomically) and prints the Markdown to stdout.
// Options: --quick (short, for a smoke test), --only=ids (nothing written unless --write),
// --no-torch, --no-wasm, --no-reference, --time=SCALE, --out=DIR, --wait-quiet=S (default 30: wait
// up to S seconds at the start for both cores), --data-dir=DIR (keep the generated inputs).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { Worker } = require('worker_threads');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results');
const PYTHON = '/usr/bin/python3';

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
if (flag('help')) {
  console.log(
    'node bench/benchmark.js [--quick] [--only=id,id] [--no-torch] [--no-wasm] [--no-reference] [--time=SCALE] [--out=DIR] [--wait-quiet=SECONDS] [--write] [--data-dir=DIR]',
  );
  process.exit(0);
}
const QUICK = flag('quick');
const TIME_SCALE = Number(opt('time', QUICK ? 0.25 : 1));
const ONLY = new Set(opt('only', '').split(',').filter(Boolean));
const WITH_TORCH = !flag('no-torch');
const WITH_WASM = !flag('no-wasm');
const WITH_REFERENCE = !flag('no-reference');
const OUT_DIR = path.resolve(opt('out', RESULTS));
const THREADS = 2; // the main table's thread count (this is a 2-core machine; PyTorch gets the same)

// The tfjs banner about tfjs-node is noise here.
const origWarn = console.warn;
const origLog = console.log;
const quiet =
  (orig) =>
  (...a) => {
    if (typeof a[0] === 'string' && /tfjs-node|=====|Hi, looks like/.test(a[0])) return;
    orig(...a);
  };
console.warn = quiet(origWarn);
console.log = quiet(origLog);

const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
let api;
try {
  api = require(path.join(ROOT, 'dist'));
} catch (e) {
  console.error(`bench: cannot load ${path.join(ROOT, 'dist')} (run \`npm run build\` first): ${e.message}`);
  process.exit(2);
}
const Benchmark = require('benchmark');
const { losses, setNumThreads, getNumThreads } = api;

const spec = JSON.parse(fs.readFileSync(path.join(__dirname, 'cases.json'), 'utf8'));
const CASES = spec.cases.filter((c) => ONLY.size === 0 || ONLY.has(c.id));

const log = (...a) => process.stderr.write(a.join(' ') + '\n');

// ---------------------------------------------------------------- data (seeded, same for every peer)
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const numel = (shape) => shape.reduce((a, b) => a * b, 1);

function generate(gen, shape, rand) {
  const n = numel(shape);
  const x = new Float32Array(n);
  if (gen === 'normal') {
    for (let i = 0; i < n; i += 2) {
      const u = 1 - rand();
      const v = rand();
      const r = Math.sqrt(-2 * Math.log(u));
      x[i] = r * Math.cos(2 * Math.PI * v);
      if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * v);
    }
  } else if (gen === 'uniform') {
    for (let i = 0; i < n; ++i) x[i] = rand();
  } else if (gen === 'grades4') {
    for (let i = 0; i < n; ++i) x[i] = Math.floor(rand() * 4);
  } else if (gen === 'tokenmask') {
    const [B, L] = shape;
    for (let b = 0; b < B; ++b) {
      const len = Math.floor(L / 2) + Math.floor(rand() * (L - Math.floor(L / 2) + 1));
      for (let l = 0; l < L; ++l) x[b * L + l] = l < len ? 1 : 0;
    }
  } else {
    throw new Error(`unknown gen ${gen}`);
  }
  return x;
}

const MASK_NAMES = new Set(['mask', 'tokenMask']);
const SCORE_OPS = new Set([
  'pointwiseBCE',
  'pairwiseRankNet',
  'pairwiseHinge',
  'listwiseSoftmaxCE',
  'distillKL',
  'marginMSE',
  'scoreMSE',
  'rankingObjective',
]);

// Bytes that must move: every input read once, the gradient (student-sized) written once.
function bytesOf(c) {
  let n = 0;
  for (const inp of c.inputs) n += numel(inp.shape);
  n += numel(c.inputs.find((i) => i.name === c.student).shape);
  return n * 4;
}

// A function student -> scalar loss through `table` (losses or losses.reference), with the case's
// other inputs as tensors.
function lossFn(table, c, tensors, extraOptions = {}) {
  const fn = table[c.op];
  if (typeof fn !== 'function') throw new Error(`${c.op} is not exported`);
  const positional = c.inputs.filter((i) => !MASK_NAMES.has(i.name)).map((i) => i.name);
  const options = { ...c.options, ...extraOptions };
  for (const i of c.inputs) if (MASK_NAMES.has(i.name)) options[i.name] = tensors[i.name];
  return (student) => fn(...positional.map((n) => (n === c.student ? student : tensors[n])), options);
}

// ---------------------------------------------------------------- timing
// benchmark.js in synchronous mode: fn is called directly (no decompilation since there is no
// setup/teardown), cycles grow until each takes >= minTime, and sampling stops after maxTime with at
// least minSamples cycles. The figure is the median of the per-cycle means (stats.sample).
function measure(label, fn, { budget = 1.0 } = {}) {
  // Warm-up: at least 3 calls and 0.15 s (JIT, allocator, tfjs kernel caches).
  const t0 = process.hrtime.bigint();
  let calls = 0;
  let first = NaN;
  const warmEnd = 0.15 * TIME_SCALE;
  while (calls < 3 || Number(process.hrtime.bigint() - t0) / 1e9 < warmEnd) {
    const a = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - a) / 1e9;
    if (calls === 0) first = dt;
    calls++;
    if (dt > 1.0 && calls >= 1) break; // a slow composite: one warm-up call is enough
  }
  const single = Number(process.hrtime.bigint() - t0) / 1e9 / calls;
  const slow = single > 0.3;
  const b = new Benchmark(label, fn, {
    async: false,
    delay: 0,
    initCount: 1,
    minSamples: slow ? 3 : 5,
    minTime: slow ? 0 : 0.05 * Math.min(1, TIME_SCALE * 2),
    maxTime: slow ? 0 : budget * TIME_SCALE,
  });
  b.run({ async: false });
  if (b.error) throw b.error;
  const sample = b.stats.sample.slice().sort((x, y) => x - y);
  const median =
    sample.length % 2
      ? sample[(sample.length - 1) >> 1]
      : (sample[sample.length / 2 - 1] + sample[sample.length / 2]) / 2;
  return {
    median_ms: median * 1e3,
    min_ms: sample[0] * 1e3,
    mean_ms: b.stats.mean * 1e3,
    rme_pct: b.stats.rme,
    cycles: sample.length,
    calls: b.count * sample.length,
    first_call_ms: first * 1e3,
  };
}

// ---------------------------------------------------------------- other processes' CPU use
// This is a shared 2-core machine: when another process is busy, 2-thread code (OpenMP barriers,
// ours and PyTorch's) can slow down 10x or more. Every figure records how many cores *other*
// processes used while it was measured (machine busy time from /proc/stat minus this process's and
// the PyTorch child's CPU time). Cases with a figure taken under load are measured again at the end
// of the run, after waiting for a quiet machine, and the less loaded try of each figure is kept
// (never simply the faster one).
const CLK_TCK = 100;
const FOREIGN_LIMIT = Number(process.env.FD_BENCH_FOREIGN_LIMIT || 0.3); // cores (env override for testing)
function machineBusySeconds() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / CLK_TCK; // user nice system irq softirq
  } catch {
    return NaN;
  }
}
function procCpuSeconds(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime stime
  } catch {
    return 0;
  }
}
function loadMonitor(pids = []) {
  const t0 = process.hrtime.bigint();
  const m0 = machineBusySeconds();
  const c0 = process.cpuUsage();
  const p0 = pids.map(procCpuSeconds);
  return () => {
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const own = (c.user + c.system) / 1e6 + pids.reduce((a, pid, i) => a + procCpuSeconds(pid) - p0[i], 0);
    const foreign = (machineBusySeconds() - m0 - own) / wall;
    return Number.isFinite(foreign) ? Math.max(0, foreign) : null;
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitQuiet(maxSeconds, pids = []) {
  const end = Date.now() + maxSeconds * 1e3;
  for (;;) {
    const mon = loadMonitor(pids);
    await sleep(1000);
    const f = mon();
    if (f == null || f < FOREIGN_LIMIT / 2 || Date.now() >= end) return f;
  }
}
// run() -> a figure, with the cores other processes used meanwhile (foreign_cores).
async function monitored(run, pids = []) {
  const mon = loadMonitor(pids);
  const r = await run();
  if (r && !r.error) r.foreign_cores = mon();
  return r;
}
const contended = (r) => !!r && !r.error && r.foreign_cores != null && r.foreign_cores > FOREIGN_LIMIT;
// Keeps the less loaded of two tries of a figure (never simply the faster one).
function better(old, r) {
  if (!old || old.error) return r;
  if (!r || r.error) return old;
  const keep = (r.foreign_cores ?? Infinity) < (old.foreign_cores ?? Infinity) ? r : old;
  const tries = [
    ...(old.tries || [{ median_ms: old.median_ms, min_ms: old.min_ms, foreign_cores: old.foreign_cores }]),
    { median_ms: r.median_ms, min_ms: r.min_ms, foreign_cores: r.foreign_cores },
  ];
  return { ...keep, tries };
}

// tf.grad over the student, then dispose: one timed call.
function gradCall(f, student) {
  const g = tf.grad(f);
  return () => g(student).dispose();
}

// ---------------------------------------------------------------- memory bandwidth
function bandwidthOneThread(mb, reps) {
  const n = (mb * 1024 * 1024) / 4;
  const src = new Float32Array(n);
  const dst = new Float32Array(n);
  for (let i = 0; i < n; i += 1024) src[i] = i; // touch every page
  dst.set(src);
  let best = Infinity;
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    dst.set(src);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (2 * n * 4) / best / 1e9; // read + write
}

// nThreads workers each copy their share of a SharedArrayBuffer with TypedArray.set; a round is timed
// from the start signal until the last worker is done (Atomics, no message latency).
function bandwidthWorkers(mb, reps, nThreads) {
  const n = (mb * 1024 * 1024) / 4;
  const src = new SharedArrayBuffer(n * 4);
  const dst = new SharedArrayBuffer(n * 4);
  const ctl = new Int32Array(new SharedArrayBuffer(8)); // [round, done]
  const code = `
    const { workerData } = require('worker_threads');
    const { src, dst, ctl, begin, end } = workerData;
    const s = new Float32Array(src, begin * 4, end - begin), d = new Float32Array(dst, begin * 4, end - begin);
    const c = new Int32Array(ctl);
    for (let i = 0; i < s.length; i += 1024) s[i] = i;
    d.set(s);
    let round = 0;
    Atomics.add(c, 1, 1); Atomics.notify(c, 1);
    for (;;) {
      Atomics.wait(c, 0, round);
      round = Atomics.load(c, 0);
      if (round < 0) break;
      d.set(s);
      Atomics.add(c, 1, 1); Atomics.notify(c, 1);
    }`;
  const workers = [];
  for (let w = 0; w < nThreads; ++w) {
    const begin = Math.floor((n * w) / nThreads);
    const end = Math.floor((n * (w + 1)) / nThreads);
    workers.push(new Worker(code, { eval: true, workerData: { src, dst, ctl: ctl.buffer, begin, end } }));
  }
  const waitDone = (target) => {
    for (;;) {
      const d = Atomics.load(ctl, 1);
      if (d >= target) return;
      Atomics.wait(ctl, 1, d, 10000);
    }
  };
  waitDone(nThreads); // all ready and warm
  let best = Infinity;
  for (let r = 1; r <= reps; ++r) {
    Atomics.store(ctl, 1, 0);
    const t0 = process.hrtime.bigint();
    Atomics.store(ctl, 0, r);
    Atomics.notify(ctl, 0);
    waitDone(nThreads);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  Atomics.store(ctl, 0, -1);
  Atomics.notify(ctl, 0);
  for (const w of workers) w.unref();
  return (2 * n * 4) / best / 1e9;
}

// How many cores this process really gets (a VM's second vCPU may be shared with other guests):
// a fixed pure-JS compute loop in 1 worker, then in `n` workers at once; effective cores =
// n * t(1 worker) / t(n workers). Median of several rounds.
function coreProbe(n = 2, rounds = 5) {
  const ctl = new Int32Array(new SharedArrayBuffer(8)); // [round, done]
  const code = `
    const { workerData } = require('worker_threads');
    const c = new Int32Array(workerData.ctl);
    const work = () => { let x = 0; for (let i = 0; i < 4e6; ++i) x += Math.sqrt(i + x * 1e-9); return x; };
    work();
    let round = 0;
    Atomics.add(c, 1, 1); Atomics.notify(c, 1);
    for (;;) {
      Atomics.wait(c, 0, round);
      round = Atomics.load(c, 0);
      if (round < 0) break;
      if ((round & 1) === 1 && workerData.id > 0) { Atomics.add(c, 1, 1); Atomics.notify(c, 1); continue; } // odd rounds: worker 0 alone
      work();
      Atomics.add(c, 1, 1); Atomics.notify(c, 1);
    }`;
  const workers = [];
  for (let w = 0; w < n; ++w) workers.push(new Worker(code, { eval: true, workerData: { ctl: ctl.buffer, id: w } }));
  const waitDone = (target) => {
    for (;;) {
      const d = Atomics.load(ctl, 1);
      if (d >= target) return;
      Atomics.wait(ctl, 1, d, 10000);
    }
  };
  waitDone(n);
  const one = [];
  const all = [];
  for (let r = 1; r <= 2 * rounds; ++r) {
    Atomics.store(ctl, 1, 0);
    const t0 = process.hrtime.bigint();
    Atomics.store(ctl, 0, r);
    Atomics.notify(ctl, 0);
    waitDone(n);
    (r & 1 ? one : all).push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  Atomics.store(ctl, 0, -1);
  Atomics.notify(ctl, 0);
  for (const w of workers) w.unref();
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  return { one_worker_ms: med(one), workers: n, all_workers_ms: med(all), effective_cores: (n * med(one)) / med(all) };
}

// ---------------------------------------------------------------- formatting
function fmtTime(ms) {
  if (ms == null || !Number.isFinite(ms)) return 'n/a';
  if (ms < 1) return `${(ms * 1e3).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1e3).toPrecision(3)} s`;
}
const fmtX = (x) => (x == null || !Number.isFinite(x) ? 'n/a' : `${x >= 100 ? x.toFixed(0) : x.toPrecision(3)}x`);
// A median more than 1.5x the fastest sample is flagged: on this VM such spreads come from the host
// descheduling a vCPU (times quantised to its 4 ms tick), not from the code.
const NOISY = 1.5;
const cell = (r) =>
  r == null
    ? 'n/a'
    : r.error
      ? 'error'
      : fmtTime(r.median_ms) +
        (r.median_ms > NOISY * r.min_ms ? ' †' : '') +
        (r.workaround ? ' ‡' : '') +
        (r.foreign_cores > FOREIGN_LIMIT ? ' §' : '');

function writeAtomic(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function relDiff(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return NaN;
  return Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
}

// ---------------------------------------------------------------- PyTorch peer
// bench/torch_cpu.py --serve: reads case ids on stdin, answers one JSON line each.
async function startTorch(dataDir, result) {
  const { spawn } = require('child_process');
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
    timeout: 60000,
  });
  if (probe.status !== 0) {
    const why = String(probe.stderr || probe.error || 'failed')
      .trim()
      .split('\n')
      .pop();
    result.notes.push(`PyTorch skipped: \`${PYTHON} -c "import torch"\` failed (${why})`);
    log(`bench: PyTorch skipped: ${why}`);
    return null;
  }
  const py = spawn(
    PYTHON,
    [
      path.join(__dirname, 'torch_cpu.py'),
      '--serve',
      '--data',
      dataDir,
      '--threads',
      String(THREADS),
      '--time',
      String(1.0 * TIME_SCALE),
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let buf = '';
  let stderr = '';
  const waiting = [];
  const lines = [];
  py.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (waiting.length) waiting.shift()(line);
      else lines.push(line);
    }
  });
  py.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let exited = false;
  py.on('exit', () => {
    exited = true;
    while (waiting.length) waiting.shift()(null);
  });
  const next = (timeoutMs) =>
    new Promise((resolve) => {
      if (lines.length) return resolve(lines.shift());
      if (exited) return resolve(null);
      const timer = setTimeout(() => resolve(null), timeoutMs);
      waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  const hello = await next(60000);
  let info = null;
  try {
    info = JSON.parse(hello);
  } catch {
    /* handled below */
  }
  if (!info || !info.ready) {
    result.notes.push(`PyTorch peer failed to start: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
    py.kill();
    return null;
  }
  result.machine.torch = info.torch;
  result.machine.torch_threads = info.threads;
  return {
    pid: py.pid,
    async run(id) {
      if (exited) return { error: 'torch_cpu.py exited' };
      py.stdin.write(id + '\n');
      const line = await next(120000);
      if (line == null) return { error: `no answer from torch_cpu.py (${stderr.trim().split('\n').pop()})` };
      try {
        return JSON.parse(line).result;
      } catch {
        return { error: `bad answer from torch_cpu.py: ${line.slice(0, 200)}` };
      }
    },
    close() {
      py.stdin.end();
    },
  };
}

// ---------------------------------------------------------------- main
async function main() {
  const started = Date.now();
  const backends = WITH_WASM ? ['cpu', 'wasm'] : ['cpu'];
  const result = {
    date: new Date().toISOString(),
    machine: {
      cpu: os.cpus()[0].model,
      cores: os.cpus().length,
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      memory_gb: +(os.totalmem() / 2 ** 30).toFixed(1),
      tfjs: tf.version.tfjs,
      torch: null,
    },
    method:
      'forward + gradient w.r.t. the student through the public op (tf.grad(...)(s).dispose()); benchmark.js sync mode; ' +
      'median of per-cycle means after warm-up; PyTorch: median of single runs (torch.autograd.grad), 2 threads',
    options: { quick: QUICK, time_scale: TIME_SCALE, threads: THREADS, only: [...ONLY] },
    floors: {},
    cases: {},
    threads: {},
    targets: [],
    notes: [],
  };

  // Data, shared with torch_cpu.py through a temp dir.
  const rand = mulberry32(20240611);
  const data = {};
  const keepData = opt('data-dir', null); // --data-dir=DIR: write the inputs there and keep them
  const dataDir = keepData ? path.resolve(keepData) : fs.mkdtempSync(path.join(os.tmpdir(), 'fd-bench-'));
  fs.mkdirSync(dataDir, { recursive: true });
  for (const c of CASES) {
    data[c.id] = {};
    for (const inp of c.inputs) {
      const x = generate(inp.gen, inp.shape, rand);
      data[c.id][inp.name] = x;
      fs.writeFileSync(
        path.join(dataDir, `${c.id}.${inp.name}.f32`),
        Buffer.from(x.buffer, x.byteOffset, x.byteLength),
      );
    }
  }

  // Is the second core really there? (On a shared VM it comes and goes; see NOTES.md.)
  // --wait-quiet=S re-probes for up to S seconds until both cores answer.
  result.cores_probe = { start: coreProbe(THREADS) };
  const waitQuietS = Number(opt('wait-quiet', QUICK ? 0 : 30));
  const waitEnd = Date.now() + waitQuietS * 1e3;
  while (result.cores_probe.start.effective_cores < 0.85 * THREADS && Date.now() < waitEnd) {
    log(
      `bench: effective cores ${result.cores_probe.start.effective_cores.toFixed(2)}: waiting for a quiet machine ...`,
    );
    await new Promise((r) => setTimeout(r, 5000));
    result.cores_probe.start = coreProbe(THREADS);
  }
  if (result.cores_probe.start.effective_cores < 0.85 * THREADS) {
    result.notes.push(
      `only ${result.cores_probe.start.effective_cores.toFixed(2)} of ${THREADS} cores were available at the start (another process was busy): 2-thread figures are pessimistic`,
    );
  }
  log(`bench: effective cores ${result.cores_probe.start.effective_cores.toFixed(2)} of ${THREADS} (compute probe)`);

  // Bandwidth floor probe.
  log('bench: memory bandwidth (256 MB TypedArray.set) ...');
  const bw1 = bandwidthOneThread(256, QUICK ? 3 : 5);
  let bw2 = NaN;
  try {
    bw2 = bandwidthWorkers(256, QUICK ? 3 : 5, THREADS);
  } catch (e) {
    result.notes.push(`2-thread bandwidth probe failed: ${e.message}`);
  }
  const bw = Math.max(bw1, Number.isFinite(bw2) ? bw2 : 0);
  result.floors.bandwidth = {
    method: '256 MB Float32Array copy with TypedArray.set, best of several; GB/s counts read + write (2 x 256 MB)',
    one_thread_gbs: bw1,
    two_threads_gbs: bw2,
    used_gbs: bw,
  };
  log(`bench: bandwidth ${bw1.toFixed(1)} GB/s (1 thread), ${bw2.toFixed(1)} GB/s (${THREADS} threads)`);

  setNumThreads(THREADS);
  result.machine.fused_threads = getNumThreads();

  for (const c of CASES) {
    const bytes = bytesOf(c);
    result.cases[c.id] = {
      label: c.label,
      op: c.op,
      main: !!c.main,
      shapes: Object.fromEntries(c.inputs.map((i) => [i.name, i.shape])),
      options: c.options,
      bytes,
      bw_floor_ms: (bytes / (bw * 1e9)) * 1e3,
      peers: {},
      check: {},
    };
  }

  // Engine floor: tfjs's own gradient call (measured at the start and at the end; the lower counts).
  const engineFloor = async () => {
    await tf.setBackend('cpu');
    await tf.ready();
    const x = tf.tensor1d([1]);
    const r = measure(
      'engine floor',
      gradCall((v) => tf.sum(v), x),
      { budget: 0.5 },
    );
    x.dispose();
    return r;
  };
  result.floors.engine = {
    method: "tf.grad(x => tf.sum(x)) over a one-element tensor on 'cpu', then dispose; lower of start and end",
    start: await engineFloor(),
  };
  log(`bench: engine floor ${fmtTime(result.floors.engine.start.median_ms)}`);

  // PyTorch eager on the same data: one server process, asked case by case (so each row's peers are
  // measured within seconds of each other on this shared machine).
  const torch = WITH_TORCH ? await startTorch(dataDir, result) : null;

  // Case by case: fused and reference on each backend, the thread line, PyTorch.
  const usable = new Set();
  for (const backend of backends) {
    try {
      await tf.setBackend(backend);
      await tf.ready();
      if (tf.getBackend() === backend) usable.add(backend);
      else result.notes.push(`backend ${backend} unavailable (got ${tf.getBackend()})`);
    } catch (e) {
      result.notes.push(`backend ${backend} unavailable: ${e.message}`);
    }
    if (backend === 'wasm' && usable.has('wasm')) {
      result.machine.wasm = {
        simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
        threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
      };
    }
  }
  // One case with all its peers; want(key) picks the figures to (re)measure. Keys: fused_cpu,
  // reference_cpu, fused_wasm, reference_wasm, threads, torch_cpu.
  const runCase = async (c, want) => {
    const rc = result.cases[c.id];
    const grads = {};
    for (const backend of backends.filter((b) => usable.has(b))) {
      await tf.setBackend(backend);
      const tensors = {};
      for (const inp of c.inputs) tensors[inp.name] = tf.tensor(data[c.id][inp.name], inp.shape, 'float32');
      const student = tensors[c.student];
      const peers = [['fused', losses]];
      if (WITH_REFERENCE) peers.push(['reference', losses.reference]);
      for (const [kind, table] of peers) {
        const key = `${kind}_${backend}`;
        if (!want(key)) continue;
        let ones = null;
        try {
          let f = lossFn(table, c, tensors);
          let workaround = null;
          // One checked call: loss value and gradient.
          let vg;
          try {
            vg = tf.valueAndGrad(f)(student);
          } catch (e) {
            // A reference composite that routes its all-valid mask through tf.onesLike(s) reaches ops
            // without a registered gradient (Any, LogicalAnd, Greater): measure it with an explicit
            // all-ones mask instead (the same computation, the mask no longer depends on s), and say so.
            const msg = String(e && e.message ? e.message : e);
            if (kind !== 'reference' || !/gradient function not found/.test(msg) || !SCORE_OPS.has(c.op)) throw e;
            ones = tf.onesLike(student);
            f = lossFn(table, c, tensors, { mask: ones });
            vg = tf.valueAndGrad(f)(student);
            workaround = { with: 'an explicit all-ones mask', unmasked_error: msg.split('\n')[0] };
            result.notes.push(
              `${c.id} ${key}: the unmasked reference is not differentiable (${workaround.unmasked_error}); measured with an all-ones mask (‡)`,
            );
          }
          const { value, grad: g } = vg;
          const loss = value.dataSync()[0];
          const gv = g.dataSync();
          value.dispose();
          if (backend === 'cpu') grads[kind] = Float32Array.from(gv);
          let gabs = 0;
          for (let i = 0; i < gv.length; ++i) gabs += Math.abs(gv[i]);
          g.dispose();
          // Leaks are counted over the timed calls only (a failed first try leaves its tape's tensors).
          const before = tf.memory().numTensors;
          const r = await monitored(() =>
            measure(`${c.id} ${key}`, gradCall(f, student), { budget: kind === 'fused' ? 1.0 : 0.8 }),
          );
          const leaked = tf.memory().numTensors - before;
          rc.peers[key] = better(rc.peers[key], {
            ...r,
            loss,
            grad_abs_sum: gabs,
            leaked_tensors: leaked,
            ...(workaround ? { workaround } : {}),
          });
          if (leaked > 0) result.notes.push(`${c.id} ${key}: ${leaked} tensors leaked over ~${r.calls} timed calls`);
          log(
            `bench: ${c.id.padEnd(18)} ${key.padEnd(15)} ${cell(r).padStart(12)}  (loss ${loss.toPrecision(7)}, ${r.cycles} cycles, min ${fmtTime(r.min_ms)})`,
          );
        } catch (e) {
          rc.peers[key] = better(rc.peers[key], { error: String(e && e.message ? e.message : e).split('\n')[0] });
          log(`bench: ${c.id.padEnd(18)} ${key.padEnd(15)} ERROR ${rc.peers[key].error}`);
        } finally {
          if (ones) ones.dispose();
        }
      }
      // 1 vs 2 threads, fused on cpu (main cases).
      if (backend === 'cpu' && c.main && want('threads')) {
        const line = result.threads[c.id] || {};
        for (const n of [1, 2]) {
          try {
            setNumThreads(n);
            line[`t${n}`] = better(
              line[`t${n}`],
              await monitored(() =>
                measure(`${c.id} threads=${n}`, gradCall(lossFn(losses, c, tensors), student), { budget: 0.6 }),
              ),
            );
          } catch (e) {
            line[`t${n}`] = { error: String(e.message || e) };
          }
        }
        setNumThreads(THREADS);
        result.threads[c.id] = line;
        log(`bench: ${c.id.padEnd(18)} threads 1: ${cell(line.t1)}, 2: ${cell(line.t2)}`);
      }
      for (const x of Object.values(tensors)) x.dispose();
    }
    // Fused vs reference gradient on cpu.
    if (grads.fused && grads.reference) {
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < grads.fused.length; ++i) {
        maxDiff = Math.max(maxDiff, Math.abs(grads.fused[i] - grads.reference[i]));
        maxAbs = Math.max(maxAbs, Math.abs(grads.reference[i]));
      }
      rc.check.grad_fused_vs_reference_cpu = maxDiff / Math.max(1e-30, maxAbs);
    }
    if (torch && want('torch_cpu')) {
      const r = await monitored(() => torch.run(c.id), [torch.pid]);
      if (r) {
        rc.peers.torch_cpu = better(rc.peers.torch_cpu, r);
        log(
          `bench: ${c.id.padEnd(18)} ${'torch_cpu'.padEnd(15)} ${r.error ? 'ERROR ' + r.error : cell(r).padStart(12) + `  (loss ${Number(r.loss).toPrecision(7)}, ${r.runs} runs, min ${fmtTime(r.min_ms)})`}`,
        );
      }
    }
  };

  for (const c of CASES) await runCase(c, () => true);
  // Second pass: figures measured while other processes were busy, again once the machine is quiet
  // (as long as the whole run stays near 5 minutes).
  const redo = (c) => {
    const rc = result.cases[c.id];
    const keys = Object.keys(rc.peers).filter((k) => contended(rc.peers[k]));
    const t = result.threads[c.id];
    if (t && (contended(t.t1) || contended(t.t2))) keys.push('threads');
    return keys;
  };
  const deadline = started + 250e3;
  for (const c of CASES) {
    const keys = redo(c);
    if (!keys.length) continue;
    if (Date.now() > deadline) {
      result.notes.push(`no time left to measure again under less load: ${c.id} (${keys.join(', ')})`);
      continue;
    }
    log(`bench: ${c.id}: measuring again under less load: ${keys.join(', ')}`);
    await waitQuiet(Math.min(20, Math.max(0, (deadline - Date.now()) / 1e3)), torch ? [torch.pid] : []);
    await runCase(c, (k) => keys.includes(k));
  }
  if (torch) torch.close();
  if (!keepData) fs.rmSync(dataDir, { recursive: true, force: true });
  result.floors.engine.end = await engineFloor();
  Object.assign(
    result.floors.engine,
    result.floors.engine.start.median_ms <= result.floors.engine.end.median_ms
      ? result.floors.engine.start
      : result.floors.engine.end,
  );
  result.cores_probe.end = coreProbe(THREADS);
  log(
    `bench: engine floor at the end ${fmtTime(result.floors.engine.end.median_ms)}; effective cores ${result.cores_probe.end.effective_cores.toFixed(2)} of ${THREADS}`,
  );

  // Derived figures.
  const engine = result.floors.engine.median_ms;
  for (const c of CASES) {
    const rc = result.cases[c.id];
    const fused = rc.peers.fused_cpu && !rc.peers.fused_cpu.error ? rc.peers.fused_cpu.median_ms : NaN;
    const ok = (k) => rc.peers[k] && !rc.peers[k].error && Number.isFinite(rc.peers[k].median_ms);
    rc.engine_floor_ms = engine;
    rc.floor_ms = Math.max(rc.bw_floor_ms, engine);
    rc.floor_kind = rc.bw_floor_ms >= engine ? 'bandwidth' : 'engine';
    rc.fused_vs_torch = ok('torch_cpu') ? rc.peers.torch_cpu.median_ms / fused : null;
    rc.fused_vs_reference_cpu = ok('reference_cpu') ? rc.peers.reference_cpu.median_ms / fused : null;
    rc.fused_over_floor = fused / rc.floor_ms;
    rc.fused_over_bw_floor = fused / rc.bw_floor_ms;
    rc.fused_over_engine_floor = fused / engine;
    // Loss agreement between peers (same data everywhere).
    const base = ok('fused_cpu') ? rc.peers.fused_cpu.loss : NaN;
    for (const k of ['fused_wasm', 'reference_cpu', 'reference_wasm', 'torch_cpu']) {
      if (rc.peers[k] && !rc.peers[k].error) rc.check[`loss_rel_diff_${k}`] = relDiff(rc.peers[k].loss, base);
    }
  }

  // Targets.
  for (const t of spec.targets) {
    for (const id of t.cases) {
      const rc = result.cases[id];
      if (!rc) continue;
      let value = null;
      let shown = '';
      if (t.kind === 'vs_bw_floor') {
        value = rc.fused_over_bw_floor;
        shown = `${fmtX(value)} the bandwidth floor`;
      } else if (t.kind === 'vs_torch') {
        value = rc.fused_vs_torch;
        shown = `${fmtX(value)} faster`;
      } else if (t.kind === 'vs_ref_cpu') {
        value = rc.fused_vs_reference_cpu;
        shown = `${fmtX(value)} faster`;
      } else if (t.kind === 'vs_engine_floor') {
        value = rc.fused_over_engine_floor;
        shown = `${fmtX(value)} the engine floor`;
      }
      const measured = value != null && Number.isFinite(value);
      const met = !measured ? null : t.max != null ? value <= t.max : value >= t.min;
      result.targets.push({
        target: t.id,
        text: t.text,
        case: id,
        value,
        threshold: t.max != null ? `<= ${t.max}x` : `>= ${t.min}x`,
        met,
        shown,
      });
    }
  }
  result.elapsed_s = (Date.now() - started) / 1e3;

  const md = renderMarkdown(result);
  console.log = origLog;
  process.stdout.write(md);
  if (!ONLY.size || flag('write')) {
    writeAtomic(path.join(OUT_DIR, 'cpu.json'), JSON.stringify(result, null, 2) + '\n');
    writeAtomic(path.join(OUT_DIR, 'cpu.md'), md);
    log(
      `bench: wrote ${path.relative(process.cwd(), path.join(OUT_DIR, 'cpu.md'))} and cpu.json (${result.elapsed_s.toFixed(0)} s)`,
    );
  } else {
    log('bench: --only given: results not written (add --write to write them)');
  }
}

function renderMarkdown(r) {
  const L = [];
  const m = r.machine;
  L.push('# fused-distill CPU benchmark', '');
  L.push(
    `${r.date} · ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB · Node ${m.node} · tfjs ${m.tfjs}` +
      (m.wasm ? ` (wasm simd ${m.wasm.simd}, threads ${m.wasm.threads})` : '') +
      ` · PyTorch ${m.torch || 'not run'}${m.torch ? ` (${m.torch_threads} threads)` : ''} · fused kernels ${m.fused_threads} threads` +
      (r.options.quick ? ' · **--quick run**' : ''),
    '',
  );
  const cp = r.cores_probe || {};
  if (cp.start) {
    L.push(
      `Effective cores (${cp.start.workers} workers on a fixed compute loop vs 1): ${cp.start.effective_cores.toFixed(2)} at the start, ` +
        `${cp.end ? cp.end.effective_cores.toFixed(2) : 'n/a'} at the end of the run. Below ~1.8 the second core was not really available ` +
        '(shared VM), and every 2-thread figure (fused, PyTorch) is affected.',
      '',
    );
  }
  L.push(
    'Forward + gradient w.r.t. the student through the public op (`tf.grad(s => losses.X(s, ...))(s)`, then dispose); ' +
      'median after warm-up. floor = max(bandwidth floor, engine floor); (bw) or (eng) says which.',
    '',
  );
  L.push(
    '| case | fused cpu | fused wasm | reference cpu | reference wasm | PyTorch eager | floor | fused vs PyTorch (x faster) | fused vs tfjs cpu composite (x faster) | fused / floor |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [id, c] of Object.entries(r.cases)) {
    const p = c.peers;
    L.push(
      `| ${c.main ? '**' + c.label + '**' : c.label} | ${cell(p.fused_cpu)} | ${cell(p.fused_wasm)} | ${cell(p.reference_cpu)} | ${cell(p.reference_wasm)} | ${cell(p.torch_cpu)} | ` +
        `${fmtTime(c.floor_ms)} (${c.floor_kind === 'bandwidth' ? 'bw' : 'eng'}) | ${fmtX(c.fused_vs_torch)} | ${fmtX(c.fused_vs_reference_cpu)} | ${fmtX(c.fused_over_floor)} |`,
    );
    void id;
  }
  L.push('');
  const bwf = r.floors.bandwidth;
  L.push(
    `Floors (this run): memory bandwidth ${bwf.one_thread_gbs.toFixed(1)} GB/s (1 thread), ${Number.isFinite(bwf.two_threads_gbs) ? bwf.two_threads_gbs.toFixed(1) : 'n/a'} GB/s ` +
      `(2 worker threads); the floor uses ${bwf.used_gbs.toFixed(1)} GB/s (256 MB TypedArray.set copy, read + write counted). ` +
      `Engine floor (tf.grad(x => tf.sum(x)), one element, 'cpu'): ${fmtTime(r.floors.engine.median_ms)}.`,
    '',
  );
  L.push(
    `† median > ${NOISY}x the fastest sample (noisy; cpu.json has min_ms for every figure). ` +
      '‡ reference composite measured with an explicit all-ones mask: without one it is not differentiable (see Errors and notes). ' +
      `§ other processes used more than ${FOREIGN_LIMIT} cores while it was measured, even after a second pass at the end of the run (cpu.json: foreign_cores).`,
    '',
  );

  L.push('## Targets', '');
  L.push('| target | case | measured | threshold | status |');
  L.push('|---|---|---:|---:|---|');
  for (const t of r.targets) {
    L.push(
      `| ${t.text} | ${r.cases[t.case].label} | ${t.value == null || !Number.isFinite(t.value) ? 'not measured' : t.shown} | ${t.threshold} | ${t.met == null ? 'not measured' : t.met ? 'met' : '**not met**'} |`,
    );
  }
  L.push('');

  if (Object.keys(r.threads).length) {
    L.push('## Fused op on tfjs cpu, 1 vs 2 threads (setNumThreads)', '');
    L.push('| case | 1 thread | 2 threads | speed-up |');
    L.push('|---|---:|---:|---:|');
    for (const [id, t] of Object.entries(r.threads)) {
      const s = t.t1 && t.t2 && !t.t1.error && !t.t2.error ? t.t1.median_ms / t.t2.median_ms : null;
      L.push(`| ${r.cases[id].label} | ${cell(t.t1)} | ${cell(t.t2)} | ${fmtX(s)} |`);
    }
    L.push('');
  }

  L.push('## Agreement (same inputs everywhere)', '');
  L.push('Loss relative to the fused cpu loss; gradient: max |fused − reference| / max |reference| on cpu.', '');
  L.push('| case | fused cpu loss | fused wasm | reference cpu | reference wasm | PyTorch | grad fused vs reference |');
  L.push('|---|---:|---:|---:|---:|---:|---:|');
  const rd = (v) => (v == null ? 'n/a' : Number.isFinite(v) ? v.toExponential(1) : String(v));
  for (const c of Object.values(r.cases)) {
    const k = c.check;
    const fl = c.peers.fused_cpu && !c.peers.fused_cpu.error ? c.peers.fused_cpu.loss.toPrecision(7) : 'n/a';
    L.push(
      `| ${c.label} | ${fl} | ${rd(k.loss_rel_diff_fused_wasm)} | ${rd(k.loss_rel_diff_reference_cpu)} | ${rd(k.loss_rel_diff_reference_wasm)} | ${rd(k.loss_rel_diff_torch_cpu)} | ${rd(k.grad_fused_vs_reference_cpu)} |`,
    );
  }
  L.push('');
  const errors = [];
  for (const c of Object.values(r.cases))
    for (const [k, p] of Object.entries(c.peers)) if (p.error) errors.push(`- ${c.label}, ${k}: ${p.error}`);
  const notes = [...new Set(r.notes)];
  if (errors.length || notes.length) {
    L.push('## Errors and notes', '', ...errors, ...notes.map((n) => `- ${n}`), '');
  }
  L.push(`Total run time ${r.elapsed_s.toFixed(0)} s.`, '');
  return L.join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
