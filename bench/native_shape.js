#!/usr/bin/env node
// Micro-benchmark of the 'native' backend's reduction, softmax and layout kernels against tfjs's
// 'cpu' and 'wasm' backends, on the shapes a BERT cross-encoder step uses (batch 16, 128 tokens,
// hidden 256, 4 heads of 64, a 30522-token vocabulary). `npm run build` first, then
// `node bench/native_shape.js [--quick] [--threads=N]`.
//
// Each figure is the median per-call time of the public tfjs op (kernel dispatch, output allocation
// and the kernel; inputs created beforehand on that backend, outputs disposed), repeated for at
// least --time seconds (default 0.5) after warm-up. GB/s is the bytes the op must move (inputs read
// + output written) over that time; the floor is those bytes at the memcpy bandwidth measured in
// this run (a 64 MB TypedArray.set, 1 thread, counting read + write), so "x floor" is how far from
// bandwidth-bound an op is. tfjs's cpu UnsortedSegmentSum makes one full masked pass per segment:
// it is timed on 32 segments and scaled to 30522 (marked ~). The machine is shared: the load
// average is printed with the table.
'use strict';

const os = require('os');
const path = require('path');

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const QUICK = argv.includes('--quick');
const MIN_SECONDS = Number(opt('time', QUICK ? 0.15 : 0.5));

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
  api = require(path.join(__dirname, '..', 'dist'));
} catch (e) {
  console.error(`bench: cannot load dist/ (run \`npm run build\` first): ${e.message}`);
  process.exit(2);
}
const { addon } = api;
if (opt('threads')) addon.setNumThreads(Number(opt('threads')));

// ---------------------------------------------------------------- data
let seed = 0x1234567;
function floats(n, lo = -4, span = 8) {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = lo + (span * (s >>> 8)) / 16777216;
  }
  seed = s;
  return a;
}
function ints(n, hi) {
  const a = new Int32Array(n);
  for (let i = 0; i < n; ++i) a[i] = Math.floor(Math.random() * hi);
  return a;
}

const B = 16,
  L = 128,
  H = 4,
  D = 64,
  HID = H * D,
  VOCAB = 30522;
const logits = floats(B * H * L * L, -10, 20);
const wide = floats(2048 * 1024);
const heads = floats(B * L * H * D);
const table = floats(VOCAB * HID);
const tokenIds = ints(B * L, VOCAB);
const grads = floats(B * L * HID);
const left = floats(2048 * 256),
  right = floats(2048 * 256);

// Each case: make(backend) -> inputs (tensors on that backend); run(inputs) -> output; bytes moved.
const CASES = [
  {
    id: 'softmax',
    label: `Softmax [${B * H * L}, ${L}]`,
    make: () => [tf.tensor2d(logits, [B * H * L, L])],
    run: ([x]) => tf.softmax(x),
    bytes: 2 * logits.length * 4,
  },
  {
    id: 'sum_last',
    label: 'Sum [2048, 1024] over the last axis',
    make: () => [tf.tensor2d(wide, [2048, 1024])],
    run: ([x]) => tf.sum(x, -1),
    bytes: wide.length * 4 + 2048 * 4,
  },
  {
    id: 'sum_first',
    label: 'Sum [2048, 1024] over axis 0 (bias gradient)',
    make: () => [tf.tensor2d(wide, [2048, 1024])],
    run: ([x]) => tf.sum(x, 0),
    bytes: wide.length * 4 + 1024 * 4,
  },
  {
    id: 'mean_last',
    label: 'Mean [2048, 1024] over the last axis, keepDims',
    make: () => [tf.tensor2d(wide, [2048, 1024])],
    run: ([x]) => tf.mean(x, -1, true),
    bytes: wide.length * 4 + 2048 * 4,
  },
  {
    id: 'max_last',
    label: 'Max [2048, 1024] over the last axis',
    make: () => [tf.tensor2d(wide, [2048, 1024])],
    run: ([x]) => tf.max(x, -1),
    bytes: wide.length * 4 + 2048 * 4,
  },
  {
    id: 'transpose_heads',
    label: `Transpose [${B}, ${L}, ${H}, ${D}] -> [${B}, ${H}, ${L}, ${D}]`,
    make: () => [tf.tensor4d(heads, [B, L, H, D])],
    run: ([x]) => tf.transpose(x, [0, 2, 1, 3]),
    bytes: 2 * heads.length * 4,
  },
  {
    id: 'transpose_kt',
    label: `Transpose [${B}, ${H}, ${L}, ${D}] -> [${B}, ${H}, ${D}, ${L}]`,
    make: () => [tf.tensor4d(heads, [B, H, L, D])],
    run: ([x]) => tf.transpose(x, [0, 1, 3, 2]),
    bytes: 2 * heads.length * 4,
  },
  {
    id: 'gather',
    label: `GatherV2 ${B * L} rows of [${VOCAB}, ${HID}]`,
    make: () => [tf.tensor2d(table, [VOCAB, HID]), tf.tensor2d(tokenIds, [B, L], 'int32')],
    run: ([t, i]) => tf.gather(t, i),
    bytes: 2 * B * L * HID * 4 + B * L * 4,
  },
  {
    id: 'segment_sum',
    label: `UnsortedSegmentSum [${B * L}, ${HID}] into ${VOCAB} rows`,
    make: () => [tf.tensor2d(grads, [B * L, HID]), tf.tensor1d(tokenIds, 'int32')],
    run: ([g, i]) => tf.unsortedSegmentSum(g, i, VOCAB),
    bytes: grads.length * 4 + tokenIds.length * 4 + VOCAB * HID * 4,
    // tfjs's cpu kernel: one pass per segment; timed on fewer segments and scaled
    scaled: { cpu: 32 },
  },
  {
    id: 'concat',
    label: 'Concat 2 x [2048, 256] on axis 1',
    make: () => [tf.tensor2d(left, [2048, 256]), tf.tensor2d(right, [2048, 256])],
    run: ([a, b]) => tf.concat([a, b], 1),
    bytes: 2 * 2 * 2048 * 256 * 4,
  },
  {
    id: 'slice',
    label: 'Slice [2048, 256] -> [2048, 128] (columns 64..191)',
    make: () => [tf.tensor2d(left, [2048, 256])],
    run: ([a]) => tf.slice(a, [0, 64], [-1, 128]),
    bytes: 2 * 2048 * 128 * 4,
  },
];

// ---------------------------------------------------------------- timing
function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median ms per call of f, after warm-up, over at least MIN_SECONDS and 5 calls (3 calls when one
 * takes over 200 ms: tfjs's cpu kernels on the larger cases).
 */
function timeIt(f) {
  const t0 = performance.now();
  f();
  const slow = performance.now() - t0 > 200;
  for (let i = 0; i < (slow ? 0 : 2); ++i) f();
  const times = [];
  const start = performance.now();
  while (times.length < (slow ? 3 : 5) || performance.now() - start < MIN_SECONDS * 1000) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
    if (times.length >= 2000) break;
  }
  return median(times);
}

function memcpyGBs() {
  const n = 16 << 20; // 64 MB
  const src = new Float32Array(n).fill(1),
    dst = new Float32Array(n);
  dst.set(src);
  const times = [];
  for (let r = 0; r < (QUICK ? 5 : 11); ++r) {
    const t0 = performance.now();
    dst.set(src);
    times.push(performance.now() - t0);
  }
  return (2 * n * 4) / (median(times) * 1e6); // read + write bytes per second, in GB/s
}

async function main() {
  const usable = [];
  for (const b of ['native', 'cpu', 'wasm']) {
    try {
      if (await tf.setBackend(b)) usable.push(b);
    } catch (e) {
      process.stderr.write(`bench: backend ${b} unavailable: ${e.message}\n`);
    }
  }
  const gbs = memcpyGBs();
  const rows = [];
  for (const c of CASES) {
    const row = { case: c, ms: {} };
    for (const b of usable) {
      await tf.setBackend(b);
      if (!tf.getKernel(tf.UnsortedSegmentSum, b) && c.id === 'segment_sum') {
        row.ms[b] = null; // no such kernel on this backend
        continue;
      }
      const inputs = c.make();
      let run = c.run;
      let scale = 1;
      if (c.scaled && c.scaled[b]) {
        const n = c.scaled[b];
        run = ([g, i]) => tf.unsortedSegmentSum(g, i, n);
        scale = VOCAB / n;
      }
      try {
        const ms = timeIt(() => tf.dispose(tf.tidy(() => run(inputs)))) * scale;
        row.ms[b] = { ms, scaled: scale !== 1 };
      } catch (e) {
        row.ms[b] = null;
        process.stderr.write(`bench: ${c.id} on ${b}: ${e.message}\n`);
      }
      tf.dispose(inputs);
    }
    rows.push(row);
    process.stderr.write(`bench: ${c.id} done\n`);
  }

  const fmt = (r) =>
    r
      ? `${r.scaled ? '~' : ''}${r.ms < 1 ? r.ms.toFixed(3) : r.ms < 100 ? r.ms.toFixed(2) : r.ms.toFixed(0)} ms`
      : 'n/a';
  const x = (a, b) => (a && b ? `${(b.ms / a.ms).toFixed(b.ms / a.ms < 10 ? 1 : 0)}x` : 'n/a');
  const out = [];
  out.push(
    `native backend shape ops: ${os.cpus()[0].model}, ${os.cpus().length} vCPUs, addon threads ${addon.getNumThreads()}, ` +
      `load average ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}; memcpy ${gbs.toFixed(1)} GB/s (read + write, 1 thread); ` +
      `wasm simd ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`,
  );
  out.push('');
  out.push(
    '| case | native | cpu | wasm | native vs cpu | native vs wasm | native GB/s | memcpy floor | native / floor |',
  );
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const n = r.ms.native;
    const floor = (r.case.bytes / (gbs * 1e9)) * 1e3;
    out.push(
      `| ${r.case.label} | ${fmt(n)} | ${fmt(r.ms.cpu)} | ${fmt(r.ms.wasm)} | ${x(n, r.ms.cpu)} | ${x(n, r.ms.wasm)} | ` +
        `${n ? (r.case.bytes / (n.ms * 1e6)).toFixed(1) : 'n/a'} | ${floor.toFixed(3)} ms | ${n ? (n.ms / floor).toFixed(1) + 'x' : 'n/a'} |`,
    );
  }
  console.log(out.join('\n'));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
