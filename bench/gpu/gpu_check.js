#!/usr/bin/env node
// GPU check of the fused-distill addon: `node gpu_check.js <fused_distill.node> [--json FILE] [--quick]`.
// Bundled by bench/gpu/prepare.sh into .gpu/gpu_check.js (esbuild; no node_modules needed) and run by
// bench/gpu/run.sh on the GPU machine.
//
// 1. Correctness: every op on random data on the device (addon.cuda.*, device buffers) against the
//    CPU kernels of the same addon (addon.rankingObjective, hiddenMSE, attentionMSE, scale): loss,
//    each weighted part and the gradient. Prints PASS/FAIL per check.
// 2. Timing, data resident on the device, forward + gradient per call: device time from CUDA events
//    (cuda.timerStart/timerStop around N calls; median over batches, per call) and wall time per call
//    from Node (N calls + synchronize, / N). Cases: bench/gpu/cases.json.
// 3. Floors: bytes that must move / device bandwidth, the bandwidth measured with the addon's scale
//    kernel (cuda.scale: read n floats, write n floats) over 256 MB; and a launch floor (the scale
//    kernel on one float: what any call costs).
// Prints JSON (last line of stdout; also to --json FILE). Exit: 0 all checks pass, 1 a check failed,
// 2 usage/load error, 3 addon built without CUDA, 4 no usable CUDA device.
'use strict';

const fs = require('fs');
const path = require('path');
const os = require('os');
const SPEC = require('./cases.json');

const TERMS = [
  'pointwiseBCE',
  'pairwiseRankNet',
  'pairwiseHinge',
  'listwiseSoftmaxCE',
  'distillKL',
  'marginMSE',
  'scoreMSE',
];
const args = process.argv.slice(2);
const addonArg = args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--json');
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
const QUICK = args.includes('--quick');
const log = (...a) => process.stderr.write(a.join(' ') + '\n');

function emit(result, code) {
  const text = JSON.stringify(result);
  if (jsonOut) {
    fs.writeFileSync(`${jsonOut}.tmp`, text + '\n');
    fs.renameSync(`${jsonOut}.tmp`, jsonOut);
  }
  process.stdout.write(text + '\n');
  process.exit(code);
}

if (!addonArg) {
  log('usage: node gpu_check.js <path/to/fused_distill.node> [--json FILE] [--quick]');
  process.exit(2);
}
const result = {
  date: new Date().toISOString(),
  addon: addonArg,
  host: os.hostname(),
  node: process.version,
  checks: [],
  cases: {},
};
let addon;
try {
  // A runtime require of a path given on the command line (left alone by the bundler).
  addon = require(path.resolve(addonArg));
} catch (e) {
  log(`gpu_check: cannot load ${addonArg}: ${e.message}`);
  result.error = `cannot load addon: ${e.message}`;
  emit(result, 2);
}
const cuda = addon.cuda;
if (typeof addon.builtWithCuda !== 'function' || !addon.builtWithCuda() || !cuda) {
  const why = cuda && typeof cuda.lastError === 'function' ? cuda.lastError() : 'no cuda API';
  log(
    `gpu_check: no CUDA: ${addonArg} was built without CUDA (${why}). Build it with -DWITH_CUDA=ON (bench/gpu/run.sh does).`,
  );
  result.error = `no CUDA: addon built without CUDA (${why})`;
  emit(result, 3);
}
if (!cuda.isAvailable()) {
  log(`gpu_check: no CUDA device: ${cuda.lastError()}`);
  result.error = `no CUDA device: ${cuda.lastError()}`;
  emit(result, 4);
}
result.device = cuda.deviceName();
log(`gpu_check: device ${result.device}`);

// ---------------------------------------------------------------- data
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(7);
const numel = (shape) => shape.reduce((a, b) => a * b, 1);
function normal(n, scale = 1) {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand())) * scale;
    const th = 2 * Math.PI * rand();
    x[i] = r * Math.cos(th);
    if (i + 1 < n) x[i + 1] = r * Math.sin(th);
  }
  return x;
}
const uniform = (n) => Float32Array.from({ length: n }, () => rand());
const grades = (n, k = 4) => Float32Array.from({ length: n }, () => Math.floor(rand() * k));
const binary = (n, p = 0.8) => Float32Array.from({ length: n }, () => (rand() < p ? 1 : 0));
function tokenMask(B, L) {
  const m = new Float32Array(B * L);
  for (let b = 0; b < B; ++b) {
    const len = Math.max(1, Math.floor(L / 2) + Math.floor(rand() * (L - Math.floor(L / 2) + 1)));
    for (let l = 0; l < len; ++l) m[b * L + l] = 1;
  }
  return m;
}
function generate(gen, shape) {
  const n = numel(shape);
  if (gen === 'normal') return normal(n);
  if (gen === 'uniform') return uniform(n);
  if (gen === 'grades4') return grades(n);
  if (gen === 'tokenmask') return tokenMask(shape[0], shape[1]);
  throw new Error(`unknown gen ${gen}`);
}

// Device buffers, freed at the end of each check/case.
let live = [];
function dev(host) {
  const h = cuda.alloc(host.length);
  cuda.upload(h, host);
  live.push(h);
  return h;
}
function devEmpty(n) {
  const h = cuda.alloc(n);
  live.push(h);
  return h;
}
function freeAll() {
  for (const h of live) cuda.free(h);
  live = [];
}
function down(h, n) {
  const x = new Float32Array(n);
  cuda.download(h, x);
  return x;
}
function weightsOf(w) {
  const v = new Float32Array(7);
  for (const [k, x] of Object.entries(w)) {
    const i = TERMS.indexOf(k);
    if (i < 0) throw new Error(`unknown term ${k}`);
    v[i] = x;
  }
  return v;
}

// ---------------------------------------------------------------- correctness
const RTOL = 2e-4; // loss: |gpu - cpu| <= RTOL * max(1e-3, |cpu|) + ATOL
const ATOL = 1e-6;
const GTOL = 2e-4; // gradient: max |gpu - cpu| <= GTOL * max |cpu| + 1e-9

function compareGrad(g, c) {
  let maxDiff = 0;
  let maxAbs = 0;
  let at = -1;
  for (let i = 0; i < c.length; ++i) {
    let d = Math.abs(g[i] - c[i]);
    if (Number.isNaN(d)) d = Number.isNaN(g[i]) && Number.isNaN(c[i]) ? 0 : Infinity; // NaN must match NaN
    if (d > maxDiff) {
      maxDiff = d;
      at = i;
    }
    if (Number.isFinite(c[i])) maxAbs = Math.max(maxAbs, Math.abs(c[i]));
  }
  const rel = maxDiff / Math.max(maxAbs, 1e-30);
  return { max_abs_diff: maxDiff, max_abs: maxAbs, rel, at, ok: maxDiff <= GTOL * maxAbs + 1e-9 };
}
const lossOk = (g, c) => Math.abs(g - c) <= RTOL * Math.max(1e-3, Math.abs(c)) + ATOL;

function record(name, pass, detail) {
  result.checks.push({ name, pass, ...detail });
  log(`${pass ? 'PASS' : 'FAIL'} ${name}${detail.note ? ' ' + detail.note : ''}`);
}

function checkObjective(
  name,
  { rows, cols, weights, temperature = 1, sigma = 1, margin = 1, masked = false, labels = 'grades', y: yIn },
) {
  try {
    const n = rows * cols;
    const s = normal(n, 2);
    const t = normal(n, 2);
    const y = yIn || (labels === 'grades' ? grades(n) : uniform(n));
    const mask = masked ? binary(n) : null;
    const w = weightsOf(weights);
    const gradC = new Float32Array(n);
    const resC = new Float32Array(8); // the total, then the 7 parts
    addon.rankingObjective(s, t, y, mask, rows, cols, w, temperature, sigma, margin, gradC, resC);
    const totalC = resC[0];
    const partsC = resC.subarray(1);
    const gradH = devEmpty(n);
    const resH = devEmpty(8);
    const args = [dev(s), dev(t), dev(y), mask ? dev(mask) : null, rows, cols, w, temperature, sigma, margin];
    cuda.rankingObjective(...args, gradH, resH);
    cuda.synchronize();
    const res = down(resH, 8);
    const gradG = down(gradH, n);
    // The loss alone (no gradient buffer) must give the same total.
    const res2H = devEmpty(8);
    cuda.rankingObjective(...args, null, res2H);
    cuda.synchronize();
    const total2 = down(res2H, 1)[0];
    const gc = compareGrad(gradG, gradC);
    const partErr = [];
    let partsOk = true;
    for (let k = 0; k < 7; ++k) {
      const ok = lossOk(res[1 + k], partsC[k]);
      partsOk = partsOk && ok;
      if (!ok) partErr.push(`${TERMS[k]} gpu ${res[1 + k]} cpu ${partsC[k]}`);
    }
    const pass = lossOk(res[0], totalC) && lossOk(total2, totalC) && partsOk && gc.ok;
    record(name, pass, {
      loss_cpu: totalC,
      loss_gpu: res[0],
      loss_gpu_no_grad: total2,
      grad_rel_err: gc.rel,
      note: `(loss cpu ${totalC.toPrecision(7)} gpu ${res[0].toPrecision(7)}${total2 !== res[0] ? ' / no-grad ' + total2.toPrecision(7) : ''}, grad rel err ${gc.rel.toExponential(1)}${partErr.length ? '; parts: ' + partErr.join(', ') : ''})`,
    });
  } catch (e) {
    record(name, false, { error: e.message, note: `(error: ${e.message})` });
  } finally {
    freeAll();
  }
}

function checkFeature(name, kind, { layers = 1, batch, heads = 1, len, hidden = 0, masked }) {
  try {
    const n = kind === 'hidden' ? layers * batch * len * hidden : batch * heads * len * len;
    const a = normal(n);
    const b = normal(n);
    const tm = masked ? tokenMask(batch, len) : null;
    const gradC = new Float32Array(n);
    const gradH = devEmpty(n);
    const lossH = devEmpty(1);
    const lossCBuf = new Float32Array(1);
    if (kind === 'hidden') {
      addon.hiddenMSE(a, b, tm, layers, batch, len, hidden, gradC, lossCBuf);
      cuda.hiddenMSE(dev(a), dev(b), tm ? dev(tm) : null, layers, batch, len, hidden, gradH, lossH);
    } else {
      addon.attentionMSE(a, b, tm, batch, heads, len, gradC, lossCBuf);
      cuda.attentionMSE(dev(a), dev(b), tm ? dev(tm) : null, batch, heads, len, gradH, lossH);
    }
    cuda.synchronize();
    const lossC = lossCBuf[0];
    const lossG = down(lossH, 1)[0];
    const gc = compareGrad(down(gradH, n), gradC);
    record(name, lossOk(lossG, lossC) && gc.ok, {
      loss_cpu: lossC,
      loss_gpu: lossG,
      grad_rel_err: gc.rel,
      note: `(loss cpu ${lossC.toPrecision(7)} gpu ${lossG.toPrecision(7)}, grad rel err ${gc.rel.toExponential(1)})`,
    });
  } catch (e) {
    record(name, false, { error: e.message, note: `(error: ${e.message})` });
  } finally {
    freeAll();
  }
}

function checkScale(n, c) {
  try {
    const x = normal(n);
    const outC = new Float32Array(n);
    addon.scale(x, c, outC);
    const xh = dev(x);
    const oh = devEmpty(n);
    cuda.scale(xh, c, oh);
    cuda.scale(xh, c, xh); // in place
    cuda.synchronize();
    const g1 = compareGrad(down(oh, n), outC);
    const g2 = compareGrad(down(xh, n), outC);
    record(`scale n=${n}`, g1.max_abs_diff === 0 && g2.max_abs_diff === 0, {
      note: `(max diff ${g1.max_abs_diff}, in place ${g2.max_abs_diff})`,
    });
  } catch (e) {
    record(`scale n=${n}`, false, { error: e.message, note: `(error: ${e.message})` });
  } finally {
    freeAll();
  }
}

function correctness() {
  log("gpu_check: correctness (CUDA vs the addon's CPU kernels)");
  for (const term of TERMS) {
    const opts = { temperature: 2, sigma: 1.5, margin: 0.7, labels: term === 'pointwiseBCE' ? 'uniform' : 'grades' };
    checkObjective(`${term} 64x32`, { rows: 64, cols: 32, weights: { [term]: 1 }, ...opts });
    checkObjective(`${term} 100x45 masked`, { rows: 100, cols: 45, weights: { [term]: 1 }, masked: true, ...opts });
  }
  const all = Object.fromEntries(TERMS.map((t, i) => [t, 0.3 + 0.2 * i]));
  checkObjective('all 7 terms 257x33 masked', {
    rows: 257,
    cols: 33,
    weights: all,
    temperature: 3,
    sigma: 0.8,
    margin: 1.2,
    masked: true,
  });
  for (const cols of [1, 7, 33, 64, 128, 512, 1000]) {
    checkObjective(`RankNet + KL cols=${cols}`, {
      rows: cols >= 512 ? 97 : 300,
      cols,
      weights: { pairwiseRankNet: 1, distillKL: 1 },
      temperature: 2,
    });
  }
  checkObjective('distillKL 2000x512 T=1 (attention rows)', { rows: 2000, cols: 512, weights: { distillKL: 1 } });
  checkObjective('distillKL 4096x64 T=2', { rows: 4096, cols: 64, weights: { distillKL: 1 }, temperature: 2 });
  checkObjective('pairwiseRankNet 4096x64', { rows: 4096, cols: 64, weights: { pairwiseRankNet: 1 } });
  checkObjective('pairwiseRankNet no pair (all labels equal)', {
    rows: 16,
    cols: 8,
    weights: { pairwiseRankNet: 1 },
    y: new Float32Array(128).fill(2),
  });
  checkObjective('listwiseSoftmaxCE no positive row', {
    rows: 16,
    cols: 8,
    weights: { listwiseSoftmaxCE: 1 },
    y: new Float32Array(128),
  });
  checkFeature('hiddenMSE 4x33x96', 'hidden', { batch: 4, len: 33, hidden: 96, masked: false });
  checkFeature('hiddenMSE 4x33x96 tokenMask', 'hidden', { batch: 4, len: 33, hidden: 96, masked: true });
  checkFeature('hiddenMSE 2 layers x 3x17x768 tokenMask', 'hidden', {
    layers: 2,
    batch: 3,
    len: 17,
    hidden: 768,
    masked: true,
  });
  checkFeature('attentionMSE 3x4x37x37', 'attention', { batch: 3, heads: 4, len: 37, masked: false });
  checkFeature('attentionMSE 3x4x37x37 tokenMask', 'attention', { batch: 3, heads: 4, len: 37, masked: true });
  checkFeature('attentionMSE 2x12x128x128 tokenMask', 'attention', { batch: 2, heads: 12, len: 128, masked: true });
  checkScale(1000003, 0.37);
}

// ---------------------------------------------------------------- timing
const median = (a) => {
  const s = a.slice().sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const BATCHES = QUICK ? 3 : 7;

// Device ms per call (CUDA events around N calls) and wall ms per call (N calls + synchronize).
function timeCalls(call) {
  for (let i = 0; i < 5; ++i) call();
  cuda.synchronize();
  cuda.timerStart();
  call();
  const one = Math.max(cuda.timerStop(), 1e-3);
  const N = Math.max(3, Math.min(2000, Math.round(20 / one)));
  const device = [];
  const wall = [];
  for (let b = 0; b < BATCHES; ++b) {
    cuda.synchronize();
    cuda.timerStart();
    for (let i = 0; i < N; ++i) call();
    device.push(cuda.timerStop() / N);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; ++i) call();
    cuda.synchronize();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6 / N);
  }
  return {
    device_ms: median(device),
    device_min_ms: Math.min(...device),
    wall_ms: median(wall),
    wall_min_ms: Math.min(...wall),
    calls_per_batch: N,
    batches: BATCHES,
  };
}

function bandwidth() {
  const n = (256 * 1024 * 1024) / 4;
  const x = dev(new Float32Array(n));
  const out = devEmpty(n);
  const r = timeCalls(() => cuda.scale(x, 1.0001, out));
  freeAll();
  return {
    method:
      'cuda.scale(x, c, out) on 256 MB: reads n floats and writes n floats (2 x 256 MB per call); device time from CUDA events',
    gbs: (2 * n * 4) / (r.device_ms * 1e6),
    ...r,
  };
}

function launchFloor() {
  const x = dev(new Float32Array(1));
  const r = timeCalls(() => cuda.scale(x, 1, x));
  freeAll();
  return { method: 'cuda.scale on one float: the cost of any call (launch + N-API)', ...r };
}

function timing(bw) {
  for (const c of SPEC.cases) {
    const rc = { label: c.label, op: c.op };
    result.cases[c.id] = rc;
    try {
      log(`gpu_check: timing ${c.label} ...`);
      const host = {};
      for (const inp of c.inputs) host[inp.name] = generate(inp.gen, inp.shape);
      const d = {};
      for (const [k, v] of Object.entries(host)) d[k] = dev(v);
      const sn = numel(c.inputs.find((i) => i.name === c.student).shape);
      const grad = devEmpty(sn);
      let bytes = sn * 4;
      for (const inp of c.inputs) bytes += numel(inp.shape) * 4;
      rc.bytes = bytes;
      let call;
      const o = c.options || {};
      if (c.op === 'hiddenMSE') {
        const [B, L, H] = c.inputs[0].shape;
        const loss = devEmpty(1);
        call = () => cuda.hiddenMSE(d.hs, d.ht, d.tokenMask || null, 1, B, L, H, grad, loss);
      } else if (c.op === 'attentionMSE') {
        const [B, A, L] = c.inputs[0].shape;
        const loss = devEmpty(1);
        call = () => cuda.attentionMSE(d.as, d.at, d.tokenMask || null, B, A, L, grad, loss);
      } else {
        const shape = c.inputs[0].shape;
        const cols = shape[shape.length - 1];
        const rows = sn / cols;
        const weights = weightsOf(c.op === 'rankingObjective' ? o.weights : { [c.op]: 1 });
        const res = devEmpty(8);
        call = () =>
          cuda.rankingObjective(
            d.s,
            d.t || null,
            d.y || null,
            null,
            rows,
            cols,
            weights,
            o.temperature || 1,
            o.sigma || 1,
            o.margin || 1,
            grad,
            res,
          );
      }
      Object.assign(rc, timeCalls(call));
      rc.bw_floor_ms = (bytes / (bw.gbs * 1e9)) * 1e3;
      rc.device_over_floor = rc.device_ms / rc.bw_floor_ms;
      log(
        `gpu_check: ${c.label}: device ${(rc.device_ms * 1e3).toFixed(1)} µs, wall ${(rc.wall_ms * 1e3).toFixed(1)} µs, floor ${(rc.bw_floor_ms * 1e3).toFixed(1)} µs`,
      );
    } catch (e) {
      rc.error = e.message;
      log(`gpu_check: ${c.label}: error ${e.message}`);
    } finally {
      freeAll();
    }
  }
}

correctness();
try {
  result.bandwidth = bandwidth();
  log(`gpu_check: device bandwidth ${result.bandwidth.gbs.toFixed(0)} GB/s (scale kernel, 256 MB)`);
  result.launch_floor = launchFloor();
  log(
    `gpu_check: launch floor device ${(result.launch_floor.device_ms * 1e3).toFixed(2)} µs, wall ${(result.launch_floor.wall_ms * 1e3).toFixed(2)} µs`,
  );
  timing(result.bandwidth);
} catch (e) {
  result.timing_error = e.message;
  log(`gpu_check: timing failed: ${e.message}`);
}
try {
  result.memory = cuda.memoryStats();
} catch {
  /* informational only */
}
const failed = result.checks.filter((c) => !c.pass).length;
result.summary = { checks: result.checks.length, failed };
log(`gpu_check: ${result.checks.length - failed}/${result.checks.length} checks passed`);
emit(result, failed ? 1 : 0);
