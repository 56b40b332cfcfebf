#!/usr/bin/env node
// Micro-benchmark of the 'native' backend's elementwise kernels against tfjs's 'cpu' and 'wasm'
// backends (and PyTorch CPU eager when /usr/bin/python3 has torch), on the built package (dist/):
// `npm run build && node bench/native_ops.js [--reps=N] [--no-wasm] [--no-torch] [--json=FILE]`.
//
// One figure = one op call on inputs already in the backend, output disposed: `op(a, b).dispose()`,
// over repetitions after warm-up: the best (min) and the median. GB/s = bytes that must move (every
// input read once, the output written once) / best time. The floor is those bytes / the machine's
// copy bandwidth, a TypedArray.set on 1 thread and on 2 worker threads (read + write counted, the
// faster one) of the cases' own working-set size (8 MB -> 8 MB: the ops' 16-24 MB stay in L3 here);
// the DRAM copy bandwidth (256 MB) is printed too.
// The machine is shared (2 vCPUs, other jobs): a thread descheduled for a time slice stretches a
// call by milliseconds, so medians are noisy and the best time is the one to compare; the load
// average is printed with the table.
'use strict';

const os = require('os');
const path = require('path');
const fs = require('fs');
const { spawnSync } = require('child_process');
const { Worker } = require('worker_threads');

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const REPS = Number(opt('reps', 25));
const WITH_WASM = !flag('no-wasm');
const WITH_TORCH = !flag('no-torch');
const PYTHON = '/usr/bin/python3';

const quiet =
  (orig) =>
  (...a) => {
    if (typeof a[0] === 'string' && /tfjs-node|=====|Hi, looks like/.test(a[0])) return;
    orig(...a);
  };
console.warn = quiet(console.warn);
console.log = quiet(console.log);

const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-cpu');
if (WITH_WASM) require('@tensorflow/tfjs-backend-wasm');
const ROOT = path.resolve(__dirname, '..');
const { registerNativeBackend } = require(path.join(ROOT, 'dist/backend/native/register'));
const { addon } = require(path.join(ROOT, 'dist/native'));
registerNativeBackend();

const R = 2048,
  C = 1024,
  N = R * C; // 2M floats, 8 MB per tensor
const MB = 1e6;

// ---------------------------------------------------------------- copy bandwidth (the floor)
function bandwidthOneThread(mb, reps) {
  const n = (mb * 1024 * 1024) / 4;
  const src = new Float32Array(n),
    dst = new Float32Array(n);
  for (let i = 0; i < n; i += 1024) src[i] = i;
  dst.set(src);
  let best = Infinity;
  for (let r = 0; r < reps; ++r) {
    const t0 = process.hrtime.bigint();
    dst.set(src);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (2 * n * 4) / best / 1e9;
}

// nThreads workers each copy their share of a SharedArrayBuffer; a round is timed from the start
// signal until the last worker is done.
function bandwidthWorkers(mb, reps, nThreads) {
  const n = (mb * 1024 * 1024) / 4;
  const src = new SharedArrayBuffer(n * 4),
    dst = new SharedArrayBuffer(n * 4);
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
    const begin = Math.floor((n * w) / nThreads),
      end = Math.floor((n * (w + 1)) / nThreads);
    workers.push(new Worker(code, { eval: true, workerData: { src, dst, ctl: ctl.buffer, begin, end } }));
  }
  const waitDone = (target) => {
    for (;;) {
      const d = Atomics.load(ctl, 1);
      if (d >= target) return;
      Atomics.wait(ctl, 1, d, 10000);
    }
  };
  waitDone(nThreads);
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

// ---------------------------------------------------------------- cases
function gaussian(n, seed) {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  return a;
}
const A = gaussian(N, 1),
  B = gaussian(N, 2),
  BIAS = gaussian(C, 3);

// [id, label, bytes moved, inputs (data, shape), op]
const CASES = [
  [
    'add',
    'Add [2048,1024] + [2048,1024]',
    3 * N * 4,
    [
      [A, [R, C]],
      [B, [R, C]],
    ],
    (a, b) => tf.add(a, b),
  ],
  [
    'bias',
    'Add [2048,1024] + [1024] (bias)',
    2 * N * 4 + C * 4,
    [
      [A, [R, C]],
      [BIAS, [C]],
    ],
    (a, b) => tf.add(a, b),
  ],
  [
    'mul',
    'Mul 2M x 2M',
    3 * N * 4,
    [
      [A, [N]],
      [B, [N]],
    ],
    (a, b) => tf.mul(a, b),
  ],
  ['exp', 'Exp 2M', 2 * N * 4, [[A, [N]]], (a) => tf.exp(a)],
  ['erf', 'Erf 2M', 2 * N * 4, [[A, [N]]], (a) => tf.erf(a)],
  ['tanh', 'Tanh 2M', 2 * N * 4, [[A, [N]]], (a) => tf.tanh(a)],
];

function time(f, reps) {
  for (let i = 0; i < 3; i++) f();
  const ts = [];
  const deadline = Date.now() + 3000;
  for (let i = 0; i < reps && (i < 5 || Date.now() < deadline); i++) {
    const t0 = process.hrtime.bigint();
    f();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ts.sort((x, y) => x - y);
  return { median: ts[ts.length >> 1], min: ts[0], n: ts.length };
}

async function runBackend(backend, threads) {
  await tf.setBackend(backend);
  await tf.ready();
  if (tf.getBackend() !== backend) return null;
  const out = {};
  const saved = addon.getNumThreads();
  if (threads) addon.setNumThreads(threads);
  try {
    for (const [id, , , inputs, op] of CASES) {
      const ts = inputs.map(([d, s]) => tf.tensor(d, s));
      out[id] = time(() => op(...ts).dispose(), REPS);
      tf.dispose(ts);
    }
  } finally {
    addon.setNumThreads(saved);
  }
  return out;
}

// PyTorch CPU eager on the same sizes (random inputs: the ops' speed does not depend on the values).
function runTorch(threads) {
  const script = `
import json, time, torch
torch.set_num_threads(${threads})
R, C = ${R}, ${C}
a = torch.randn(R, C); b = torch.randn(R, C); bias = torch.randn(C)
a1 = a.reshape(-1); b1 = b.reshape(-1)
cases = {'add': lambda: torch.add(a, b), 'bias': lambda: torch.add(a, bias), 'mul': lambda: torch.mul(a1, b1),
         'exp': lambda: torch.exp(a1), 'erf': lambda: torch.erf(a1), 'tanh': lambda: torch.tanh(a1)}
out = {}
for k, f in cases.items():
    for _ in range(3): f()
    ts = []
    for _ in range(${REPS}):
        t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    out[k] = {'median': ts[len(ts) // 2], 'min': ts[0], 'n': len(ts)}
print(json.dumps({'version': torch.__version__, 'cases': out}))
`;
  const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) return null;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return null;
  }
}

function fmt(x, d = 2) {
  return x === undefined || x === null ? '—' : x.toFixed(d);
}

async function main() {
  const load0 = os.loadavg()[0];
  const bw1 = bandwidthOneThread(256, 5);
  const bw2 = bandwidthWorkers(256, 5, 2);
  const c1 = bandwidthOneThread(8, 40);
  const c2 = bandwidthWorkers(8, 40, 2);
  const bw = Math.max(c1, c2);
  const threads = addon.getNumThreads();
  const results = {
    native: await runBackend('native', threads),
    native1: await runBackend('native', 1),
    cpu: await runBackend('cpu'),
    wasm: WITH_WASM ? await runBackend('wasm') : null,
  };
  const torch = WITH_TORCH ? runTorch(threads) : null;
  const torch1 = WITH_TORCH && torch ? runTorch(1) : null;
  const load1 = os.loadavg()[0];

  const lines = [];
  lines.push(
    `Elementwise ops, ${os.cpus()[0].model}, ${os.cpus().length} vCPUs, load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}.`,
  );
  lines.push(
    `Copy bandwidth (read + write), 8 MB: ${c1.toFixed(1)} GB/s on 1 thread, ${c2.toFixed(1)} GB/s on 2 workers (floor = bytes / ${bw.toFixed(1)} GB/s); 256 MB (DRAM): ${bw1.toFixed(1)} / ${bw2.toFixed(1)} GB/s.`,
  );
  lines.push(
    `native: ${threads} threads (1t: one). Times in ms, best of N (median in parentheses); GB/s = bytes moved / best.${torch ? ` PyTorch ${torch.version}, ${threads} threads.` : ''} Ratios on best times.`,
  );
  lines.push('');
  const head = [
    'op',
    'MB moved',
    'floor',
    'native',
    'native GB/s',
    'native 1t',
    'tfjs cpu',
    'tfjs wasm',
    ...(torch ? ['torch', 'torch 1t'] : []),
    'cpu / native',
    'wasm / native',
    ...(torch ? ['native / torch', 'native 1t / torch 1t'] : []),
  ];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  const json = {
    machine: {
      cpu: os.cpus()[0].model,
      vcpus: os.cpus().length,
      load: [load0, load1],
      copyGBs: { l3: { oneThread: c1, twoWorkers: c2 }, dram: { oneThread: bw1, twoWorkers: bw2 } },
    },
    cases: {},
  };
  for (const [id, label, bytes] of CASES) {
    const n = results.native[id].min;
    const floor = (bytes / (bw * 1e9)) * 1e3;
    const cpu = results.cpu?.[id]?.min,
      wasm = results.wasm?.[id]?.min,
      t = torch?.cases?.[id]?.min;
    const both = (r) => (r ? `${fmt(r.min)} (${fmt(r.median)})` : '—');
    const t1 = torch1?.cases?.[id]?.min,
      n1 = results.native1[id].min;
    const row = [
      label,
      fmt(bytes / MB, 1),
      fmt(floor),
      both(results.native[id]),
      fmt(bytes / (n * 1e6), 1),
      both(results.native1[id]),
      both(results.cpu?.[id]),
      both(results.wasm?.[id]),
      ...(torch ? [both(torch?.cases?.[id]), both(torch1?.cases?.[id])] : []),
      cpu ? `${fmt(cpu / n, 1)}x` : '—',
      wasm ? `${fmt(wasm / n, 1)}x` : '—',
      ...(torch ? [t ? `${fmt(n / t, 2)}x` : '—', t1 ? `${fmt(n1 / t1, 2)}x` : '—'] : []),
    ];
    lines.push(`| ${row.join(' | ')} |`);
    json.cases[id] = {
      label,
      bytes,
      floorMs: floor,
      native: results.native[id],
      native1: results.native1[id],
      cpu: results.cpu?.[id],
      wasm: results.wasm?.[id],
      torch: torch?.cases?.[id],
      torch1: torch1?.cases?.[id],
    };
  }
  console.log(lines.join('\n'));
  const jsonPath = opt('json', '');
  if (jsonPath) fs.writeFileSync(jsonPath, JSON.stringify(json, null, 2));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
