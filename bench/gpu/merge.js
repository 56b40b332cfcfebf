#!/usr/bin/env node
// Merges $OUT/gpu_check.json (fused addon) and $OUT/torch_gpu.json (PyTorch) into one table:
// prints Markdown and writes $OUT/gpu.md and $OUT/gpu.json. Node built-ins only (runs on the GPU
// machine without node_modules): node bench/gpu/merge.js OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const dir = process.argv[2] || process.env.OUT || '/tmp/fd-gpu-out';
const read = (f) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  } catch (e) {
    return { error: `${f}: ${e.code === 'ENOENT' ? 'missing' : e.message}` };
  }
};
const fused = read('gpu_check.json');
const torch = read('torch_gpu.json');

const us = (ms) => (ms == null || !Number.isFinite(ms) ? 'n/a' : ms < 1 ? `${(ms * 1e3).toPrecision(3)} µs` : `${ms.toPrecision(3)} ms`);
const x = (v) => (v == null || !Number.isFinite(v) ? 'n/a' : `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)}x`);
// An error shows as its first word ("failed", "skipped", ...); the text is listed under Errors.
const t = (r, key = 'device_ms') => (!r ? 'n/a' : r.error ? (key === 'device_ms' ? r.error.split(/[:\s]/)[0] + ' †' : '') : us(r[key]));

const L = [];
L.push('# fused-distill GPU check', '');
L.push(`${fused.date || torch.date || new Date().toISOString()} · device: ${fused.device || torch.device || 'n/a'} · torch ${torch.torch || 'n/a'} (CUDA ${torch.cuda || 'n/a'}) · node ${fused.node || 'n/a'}`, '');
const readText = (f) => {
  try {
    return fs.readFileSync(path.join(dir, f), 'utf8');
  } catch (e) {
    return null;
  }
};
const steps = readText('steps.txt');
if (steps) {
  const rows = steps.trim().split('\n').map((l) => l.split(' '));
  L.push('Steps: ' + rows.map(([n, rc]) => `${n} ${rc === '0' ? 'ok' : `**exit ${rc}**`}`).join(' · '), '');
}
if (fused.error) L.push(`**gpu_check: ${fused.error}**`, '');
if (torch.error) L.push(`**torch_gpu: ${torch.error}**`, '');

const checks = fused.checks || [];
const failed = checks.filter((c) => !c.pass);
L.push(`## Correctness: CUDA vs the addon's CPU kernels: ${checks.length - failed.length}/${checks.length} PASS`, '');
if (checks.length) {
  L.push('| check | result | loss cpu | loss gpu | grad rel err |', '|---|---|---:|---:|---:|');
  for (const c of checks) {
    const f = (v) => (v == null ? '' : Number(v).toPrecision(7));
    L.push(`| ${c.name} | ${c.pass ? 'PASS' : '**FAIL**'}${c.error ? ' ' + c.error : ''} | ${f(c.loss_cpu)} | ${f(c.loss_gpu)} | ${c.grad_rel_err == null ? '' : Number(c.grad_rel_err).toExponential(1)} |`);
  }
  L.push('');
}

const bw = fused.bandwidth;
const lf = fused.launch_floor;
L.push('## Forward + gradient, data on the device', '');
L.push('Device time: CUDA events around N calls, median over batches, per call. Wall: N calls from Node (fused) / Python (PyTorch) + synchronize, per call. ' +
  'floor = bytes (inputs read once + gradient written once) / device bandwidth' +
  (bw ? ` (${bw.gbs.toFixed(0)} GB/s, measured with the addon's scale kernel: read + write of 256 MB)` : '') +
  (lf ? `; launch floor (one-float scale call): device ${us(lf.device_ms)}, wall ${us(lf.wall_ms)}` : '') + '.', '');
L.push('| case | fused device | fused wall | PyTorch eager | eager wall | torch.compile | compile wall | floor | fused vs eager | fused vs compile | fused / floor |');
L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const merged = {};
const ids = new Set([...Object.keys(fused.cases || {}), ...Object.keys(torch.cases || {})]);
for (const id of ids) {
  const f = (fused.cases || {})[id] || {};
  const p = (torch.cases || {})[id] || {};
  const fd = f.error ? NaN : f.device_ms;
  const ed = p.eager && !p.eager.error ? p.eager.device_ms : NaN;
  const cd = p.compile && !p.compile.error ? p.compile.device_ms : NaN;
  const row = {
    label: f.label || p.label || id,
    fused_device_ms: fd, fused_wall_ms: f.wall_ms, eager_device_ms: ed, eager_wall_ms: p.eager && p.eager.wall_ms,
    compile_device_ms: cd, compile_wall_ms: p.compile && p.compile.wall_ms, compile_s: p.compile && p.compile.compile_s,
    bw_floor_ms: f.bw_floor_ms, bytes: f.bytes,
    fused_vs_eager: ed / fd, fused_vs_compile: cd / fd, fused_over_floor: fd / f.bw_floor_ms,
    loss_torch: p.loss, errors: [f.error, p.eager && p.eager.error, p.compile && p.compile.error].filter(Boolean),
  };
  merged[id] = row;
  L.push(`| ${row.label} | ${f.error ? 'error' : us(fd)} | ${f.error ? '' : us(f.wall_ms)} | ${t(p.eager)} | ${t(p.eager, 'wall_ms')} | ${t(p.compile)} | ${t(p.compile, 'wall_ms')} | ` +
    `${us(f.bw_floor_ms)} | ${x(row.fused_vs_eager)} | ${x(row.fused_vs_compile)} | ${x(row.fused_over_floor)} |`);
}
L.push('');
const errs = [];
for (const [id, r] of Object.entries(merged)) for (const e of r.errors) errs.push(`- ${id}: ${e}`);
if (errs.length) L.push('## Errors (†)', '', ...errs, '');
const selfcheck = readText('selfcheck.txt');
if (selfcheck != null) {
  const lines = selfcheck.trimEnd().split('\n');
  L.push('## bench/gpu/cuda_selfcheck.cu output' + (lines.length > 150 ? ' (last 150 lines)' : ''), '', '```', ...lines.slice(-150), '```', '');
}
const md = L.join('\n') + '\n';

const write = (f, text) => {
  const p = path.join(dir, f);
  fs.writeFileSync(`${p}.tmp`, text);
  fs.renameSync(`${p}.tmp`, p);
};
write('gpu.md', md);
write('gpu.json', JSON.stringify({ fused, torch, merged }, null, 1) + '\n');
process.stdout.write(md);
process.exit(fused.error || failed.length ? 1 : 0);
