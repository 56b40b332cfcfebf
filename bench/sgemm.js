#!/usr/bin/env node
// SGEMM benchmark: addon.sgemm beside PyTorch CPU in the same run, GFLOP/s for 1024^3 and
// the matrix products of a BERT-mini training step (16 x 128 tokens, hidden 256, FFN 1024, 4 heads
// of 64): forward, backward (dX = dY W^T, dW = X^T dY) and batched attention, on 1 and 2 threads;
// in fp32 and in bf16 (ours: precision 'bf16', bf16 operands with fp32 accumulation; PyTorch:
// torch.mm under torch.autocast('cpu', dtype=torch.bfloat16)).
//
//   node bench/sgemm.js [--threads=1,2] [--time=0.4] [--only=substring] [--no-torch] [--tries=3]
//                       [--no-bf16]
//
// Needs the built addon (npm run build:native). PyTorch: FD_TORCH_PYTHON, else the first of python3
// and /usr/bin/python3 that imports torch (bench/sgemm_torch.py, a server asked shape by shape, so
// each row's figures are taken within seconds of each other). Figures are GFLOP/s, "median (best)"
// over repeated calls into preallocated outputs. The machine is shared: every figure records the
// cores other processes used meanwhile; one taken under load (more foreign cores than it leaves idle,
// plus 0.3) is measured again (up to --tries), the least loaded try is kept, one still loaded is §.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { spawn, spawnSync } = require('child_process');
const { cpuName, torchEnv, torchBlasNote } = require('./machine');

const ROOT = path.resolve(__dirname, '..');
const addon = require('node-gyp-build')(ROOT);

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const flag = (name) => argv.includes(`--${name}`);
const THREADS = opt('threads', '1,2').split(',').map(Number);
const TIME = Number(opt('time', '0.4'));
const ONLY = opt('only', '');
const TRIES = Number(opt('tries', '3'));
const BF16 = !flag('no-bf16');
// A figure counts as taken under load when other processes used more than the cores it leaves idle
// plus 0.3: a 1-thread figure on 2 cores tolerates a neighbour on the other core.
const CORES = os.cpus().length;
const loadedAbove = (threads) => Math.max(0, CORES - threads) + 0.3;

// m x k times k x n; T: the operand is stored transposed.
const T = 2048,
  H = 256,
  F = 1024,
  S = 128,
  D = 64,
  HEADS_X_BATCH = 64;
const SHAPES = [
  { name: '1024^3', m: 1024, k: 1024, n: 1024 },
  { name: 'QKV/out proj fwd', m: T, k: H, n: H },
  { name: 'FFN1 fwd', m: T, k: H, n: F },
  { name: 'FFN2 fwd', m: T, k: F, n: H },
  { name: 'proj dX = dY W^T', m: T, k: H, n: H, transB: true },
  { name: 'FFN1 dX = dY W^T', m: T, k: F, n: H, transB: true },
  { name: 'FFN2 dX = dY W^T', m: T, k: H, n: F, transB: true },
  { name: 'proj dW = X^T dY', m: H, k: T, n: H, transA: true },
  { name: 'FFN1 dW = X^T dY', m: H, k: T, n: F, transA: true },
  { name: 'FFN2 dW = X^T dY', m: F, k: T, n: H, transA: true },
  { name: 'attn Q K^T (and dP)', batch: HEADS_X_BATCH, m: S, k: D, n: S, transB: true },
  { name: 'attn P V (and dQ)', batch: HEADS_X_BATCH, m: S, k: S, n: D },
  { name: 'attn dV = P^T dC (and dK)', batch: HEADS_X_BATCH, m: S, k: S, n: D, transA: true },
].map((s) => ({ batch: 1, transA: false, transB: false, ...s }));

// ---------------------------------------------------------------- load accounting
function busyTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]; // user nice system irq softirq steal
}
const HZ = 100;
function procTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime stime
  } catch {
    return 0;
  }
}
// Runs fn and returns [result, foreign cores]: machine busy time minus ours (and `pid`'s), per second.
async function monitored(fn, pid) {
  const b0 = busyTicks(),
    own0 = procTicks(process.pid),
    c0 = pid ? procTicks(pid) : 0,
    t0 = Date.now();
  const result = await fn();
  const wall = (Date.now() - t0) / 1000;
  const foreign = (busyTicks() - b0 - (procTicks(process.pid) - own0) - (pid ? procTicks(pid) - c0 : 0)) / HZ / wall;
  return [result, Math.max(0, foreign)];
}
async function leastLoaded(fn, pid, threads) {
  let best = null;
  for (let i = 0; i < TRIES; ++i) {
    const [r, foreign] = await monitored(fn, pid);
    if (!best || foreign < best.foreign) best = { r, foreign, loaded: foreign > loadedAbove(threads) };
    if (!best.loaded) break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  return best;
}

// ---------------------------------------------------------------- ours
function randomArray(n, seed) {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 2 ** 31 - 1;
  }
  return x;
}
function timeOurs(sh, threads, precision = 'fp32') {
  const a = randomArray(sh.batch * sh.m * sh.k, 1);
  const b = randomArray(sh.batch * sh.k * sh.n, 2);
  const c = new Float32Array(sh.batch * sh.m * sh.n);
  addon.setNumThreads(threads);
  const call = () => addon.sgemm(a, b, c, sh.batch, sh.m, sh.n, sh.k, sh.transA, sh.transB, null, null, precision);
  for (let i = 0; i < 3; ++i) call();
  const times = [];
  const start = process.hrtime.bigint();
  while (times.length < 5 || Number(process.hrtime.bigint() - start) / 1e9 < TIME) {
    const t0 = process.hrtime.bigint();
    call();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((x, y) => x - y);
  const flops = 2 * sh.batch * sh.m * sh.n * sh.k;
  return [flops / times[Math.floor(times.length / 2)] / 1e9, flops / times[0] / 1e9];
}

// ---------------------------------------------------------------- PyTorch server
function findPython() {
  for (const py of [process.env.FD_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}
function startTorch() {
  const py = findPython();
  if (!py) return null;
  const child = spawn(py, [path.join(__dirname, 'sgemm_torch.py')], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: torchEnv(),
  });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the PyTorch server exited');
    return JSON.parse(value);
  };
  return {
    py,
    pid: child.pid,
    hello: next(),
    ask: (c) => {
      child.stdin.write(JSON.stringify(c) + '\n');
      return next();
    },
    close: () => child.stdin.end(),
  };
}

// ---------------------------------------------------------------- run
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fig = (pair, loaded) => (pair ? `${fmt(pair[0])} (${fmt(pair[1])})${loaded ? ' §' : ''}` : '—');
const ratio = (ours, peer) => (peer ? `${(ours[0] / peer[0]).toFixed(2)}x` : '—');
function dims(sh) {
  const a = sh.transA ? `(${sh.k}×${sh.m})ᵀ` : `${sh.m}×${sh.k}`; // stored shape, then the transpose
  const b = sh.transB ? `(${sh.n}×${sh.k})ᵀ` : `${sh.k}×${sh.n}`;
  return `${sh.batch > 1 ? `${sh.batch} × ` : ''}${a} · ${b}`;
}

async function main() {
  const torch = flag('no-torch') ? null : startTorch();
  const hello = torch ? await torch.hello : null;
  const load0 = os.loadavg()[0];
  const header = [
    `Date: ${new Date().toISOString()}. ${cpuName()}, Node ${process.version}, ` +
      `sgemm path ${addon.gemmIsa()}` +
      (hello ? `, PyTorch ${hello.torch} (BLAS ${hello.blas}, ${torchBlasNote()}; ${torch.py})` : ', no PyTorch') +
      '.',
    `Load average at the start ${load0.toFixed(2)}.`,
  ];
  const rows = [];
  for (const threads of THREADS)
    for (const sh of SHAPES) {
      if (ONLY && !sh.name.includes(ONLY)) continue;
      const ours = await leastLoaded(async () => timeOurs(sh, threads), 0, threads);
      const ours16 = BF16 ? await leastLoaded(async () => timeOurs(sh, threads, 'bf16'), 0, threads) : null;
      let peer = null;
      if (torch) peer = await leastLoaded(() => torch.ask({ ...sh, threads, time: TIME }), torch.pid, threads);
      const row = { sh, threads, ours, ours16, peer };
      rows.push(row);
      process.stderr.write(
        `${sh.name} ${threads}thr: ours ${fig(ours.r, ours.loaded)}` +
          (ours16 ? `, ours bf16 ${fig(ours16.r, ours16.loaded)}` : '') +
          (peer
            ? `, torch.mm ${fig(peer.r.mm, peer.loaded)}, oneDNN ${fig(peer.r.onednn, peer.loaded)}` +
              `, torch bf16 autocast ${fig(peer.r.bf16, peer.loaded)}`
            : '') +
          '\n',
      );
    }
  if (torch) torch.close();
  header.push(`Load average at the end ${os.loadavg()[0].toFixed(2)}.`);
  const out = [
    ...header,
    '',
    '| product | op(A) · op(B) | threads | ours GFLOP/s | torch.mm/bmm | oneDNN (mkldnn_linear) | ours / torch.mm | ours / oneDNN |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const { sh, threads, ours, peer } of rows) {
    const p = peer ? peer.r : {};
    const pl = peer ? peer.loaded : false;
    out.push(
      `| ${sh.name} | ${dims(sh)} | ${threads} | ${fig(ours.r, ours.loaded)} | ` +
        `${fig(p.mm, pl)} | ${fig(p.onednn, pl)} | ${ratio(ours.r, p.mm)} | ${ratio(ours.r, p.onednn)} |`,
    );
  }
  if (BF16) {
    out.push(
      '',
      '| product | op(A) · op(B) | threads | ours fp32 | ours bf16 | ours bf16 / fp32 | torch.mm fp32 | torch bf16 (autocast) | ours bf16 / torch bf16 |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const { sh, threads, ours, ours16, peer } of rows) {
      const p = peer ? peer.r : {};
      const pl = peer ? peer.loaded : false;
      out.push(
        `| ${sh.name} | ${dims(sh)} | ${threads} | ${fig(ours.r, ours.loaded)} | ${fig(ours16.r, ours16.loaded)} | ` +
          `${ratio(ours16.r, ours.r)} | ${fig(p.mm, pl)} | ${fig(p.bf16, pl)} | ${ratio(ours16.r, p.bf16)} |`,
      );
    }
  }
  out.push(
    '',
    'GFLOP/s as median (best) of repeated calls. § = taken under load: other processes used more ' +
      'than the cores the figure leaves idle plus 0.3 (1 thread: > 1.3 cores; 2 threads: > 0.3).',
  );
  console.log(out.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
