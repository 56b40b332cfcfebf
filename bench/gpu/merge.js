#!/usr/bin/env node
// One Markdown report of a GPU run (bench/gpu/run.sh) from what its steps left in OUT_DIR: the card,
// each step's exit status, each correctness check's pass/fail/skipped counts (a jest suite's with
// where it ran, the real CUDA addon or the host emulation, and its skipped tests), the BERT benchmark ('cuda'
// backend vs PyTorch eager, fp32 and TF32, ratio against the <= 1.2x target), the profile of one
// step, the failures' first lines, and the old fused-loss table when it ran. Writes OUT_DIR/gpu.md
// and OUT_DIR/gpu.json and prints the Markdown. Node built-ins only (runs without node_modules):
//   node bench/gpu/merge.js OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');

const dir = process.argv[2] || process.env.OUT || '/tmp/fd-gpu-out';
const TARGET = 1.2; // target: the cuda backend's step within 1.2x of PyTorch eager
const text = (f) => {
  try {
    return fs.readFileSync(path.join(dir, f), 'utf8');
  } catch {
    return null;
  }
};
const json = (f) => {
  const t = text(f);
  if (t == null) return null;
  try {
    return JSON.parse(t);
  } catch (e) {
    return { error: `${f}: ${e.message}` };
  }
};
const ms = (v) =>
  v == null || !Number.isFinite(v) ? 'n/a' : v < 1 ? `${(v * 1e3).toPrecision(3)} µs` : `${v.toPrecision(3)} ms`;
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

const steps = (text('steps.txt') || '')
  .trim()
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [name, rc, s] = l.split(' ');
    return { name, rc: Number(rc), seconds: Number(s) };
  });
const stepOf = (name) => steps.find((s) => s.name === name);
const status = (name) => {
  const s = stepOf(name);
  if (!s) return 'not run';
  if (s.rc === 0) return 'ok';
  if (s.rc === 99) return 'not run (prerequisite missing)';
  if (s.rc === 124 || s.rc === 137) return `TIMED OUT (${s.seconds} s)`;
  return `exit ${s.rc}`;
};

const L = [];
const cudaBert = json('cuda_bert.json');
const torchBert = json('torch_bert.json');
const card = (text('device.txt') || '').trim().split('\n')[0] || (torchBert && torchBert.device) || 'n/a';
L.push('# fused-distill GPU run (the cuda backend)', '');
L.push(
  `${new Date().toISOString()} · card: **${cell(card)}** · torch ${torchBert?.torch ?? 'n/a'} (CUDA ${torchBert?.cuda ?? 'n/a'}) · node ${cudaBert?.node ?? 'n/a'} · addon device: ${cudaBert?.device ?? 'n/a'}`,
  '',
);
L.push(
  'Steps: ' +
    (steps.map((s) => `${s.name} ${s.rc === 0 ? 'ok' : `**${status(s.name)}**`} (${s.seconds} s)`).join(' · ') ||
      'none recorded'),
  '',
);

// ---- correctness
const checks = [];
const failures = [];
const lines = (name) => (text(`${name}.log`) || '').split('\n');
// the end of a step's output without stack frames: what a failure said
const said = (name) =>
  lines(name)
    .filter((l) => l.trim() && !/^\s+at /.test(l))
    .slice(-5);
// skipped tests: "SKIP name [how]" lines (tests/gpu/runner.js), each listed with why in the report
const skips = [];
function kernelCheck(name, label) {
  if (!stepOf(name)) return;
  const out = lines(name);
  const pass = out.filter((l) => l.startsWith('PASS ')).length;
  const fail = out.filter((l) => l.startsWith('FAIL '));
  checks.push({
    check: label,
    passed: pass,
    failed: fail.length,
    skipped: out.filter((l) => l.startsWith('SKIP ')).length,
    result: status(name),
  });
  if (fail.length || stepOf(name).rc !== 0)
    failures.push({ check: label, lines: (fail.length ? fail : said(name)).slice(0, 15) });
}
// a build that failed: its last lines (the checks it feeds say "prerequisite missing")
for (const name of ['addon-build', 'checks-build']) {
  if (!stepOf(name) || stepOf(name).rc === 0) continue;
  const errors = lines(name).filter((l) => /error|undefined reference/i.test(l));
  failures.push({ check: name, lines: errors.length ? errors.slice(0, 8) : said(name) });
}
// the standalone nvcc-built checks (bench/gpu/*check*.cu): lines "PASS ..." / "FAIL ..."
for (const s of steps.filter((x) => x.name.startsWith('check-')))
  kernelCheck(s.name, `bench/gpu/${s.name.slice(6)}.cu${s.name === 'check-cuda_selfcheck' ? ' --no-bench' : ''}`);
for (const s of steps.filter((x) => x.name.startsWith('suite-'))) {
  const out = lines(s.name);
  const sum = out.map((l) => /^== (\S+): (\d+) passed, (\d+) failed(?:, (\d+) skipped)?/.exec(l)).find(Boolean);
  // where it ran, as the runner says: the real CUDA addon on the GPU, or the host emulation (a dry run)
  const device = out.map((l) => /^== \S+ device: (.*)$/.exec(l)).find(Boolean)?.[1] ?? 'device not reported';
  const label = `jest tests/${s.name.slice(6)}.test.ts (bundled, ${device})`;
  const skipped = out.filter((l) => l.startsWith('SKIP '));
  for (const l of skipped) skips.push({ check: label, test: l.slice(5) });
  checks.push({
    check: label,
    device,
    passed: sum ? Number(sum[2]) : 'n/a',
    failed: sum ? Number(sum[3]) : 'n/a',
    skipped: sum?.[4] != null ? Number(sum[4]) : skipped.length,
    result: sum || s.rc === 99 ? status(s.name) : `${status(s.name)}, no summary (crashed?)`,
  });
  const fails = [];
  out.forEach((l, i) => l.startsWith('FAIL ') && fails.push(`${l} — ${(out[i + 1] || '').trim()}`));
  if (fails.length || s.rc !== 0)
    failures.push({ check: label, lines: (fails.length ? fails : said(s.name)).slice(0, 15) });
}
const core = json('tfjs_core.json');
if (stepOf('tfjs_core')) {
  const label = "tfjs-core op suite on 'cuda'";
  if (core && core.totals) {
    const t = core.totals;
    // not run: excluded by run.js's lists (their reasons are in tfjs_core.json) or pending
    const notRun =
      Number.isFinite(t.excluded) || Number.isFinite(t.pending)
        ? (t.excluded || 0) + (t.pending || 0)
        : t.specs - t.run;
    checks.push({
      check: label,
      passed: t.passed,
      failed: t.failed,
      skipped: notRun,
      result: `${status('tfjs_core')}; ran ${t.run} of ${t.specs} specs, known failures ${t.knownFailures}, ${core.seconds} s`,
    });
    if (core.unexpectedFailures.length || core.knownFailuresNowPassing.length)
      failures.push({
        check: label,
        lines: [
          ...core.unexpectedFailures.slice(0, 25),
          ...core.knownFailuresNowPassing.map((n) => `now passing (listed as known): ${n}`),
        ],
      });
  } else {
    checks.push({ check: label, passed: 'n/a', failed: 'n/a', result: status('tfjs_core') });
    failures.push({ check: label, lines: said('tfjs_core') });
  }
}
const cvn = json('cuda_vs_native.json');
if (stepOf('cuda_vs_native')) {
  const label = 'distillation steps: cuda vs native (losses within fp32 tolerance)';
  const cs = cvn?.checks || [];
  checks.push({
    check: label,
    passed: cs.length ? cs.filter((c) => c.pass).length : 'n/a',
    failed: cs.length ? cs.filter((c) => !c.pass).length : 'n/a',
    result: `${status('cuda_vs_native')}${cvn?.loss_max_rel_diff != null ? `; ${cvn.steps} steps, loss max rel diff ${cvn.loss_max_rel_diff.toExponential(1)}, params max abs diff ${cvn.param_max_abs_diff.toExponential(1)}` : ''}`,
  });
  if (!cvn?.pass)
    failures.push({
      check: label,
      lines: cvn?.error
        ? [cvn.error]
        : cs.length
          ? cs.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`)
          : said('cuda_vs_native'),
    });
}
const ncclJson = json('nccl.json');
if (stepOf('nccl')) {
  // bench/gpu/nccl_check.js: NCCL on one rank, the timeout, two ranks on the one GPU (refused is expected)
  const label = 'NCCL collectives (addon.cuda.nccl)';
  const cs = ncclJson?.checks || [];
  checks.push({
    check: label,
    passed: cs.length ? cs.filter((c) => c.pass).length : 'n/a',
    failed: cs.length ? cs.filter((c) => !c.pass).length : 'n/a',
    result: `${status('nccl')}${ncclJson?.version != null ? `; NCCL ${ncclJson.version}` : ''}${ncclJson?.two_ranks_outcome ? `; two ranks on one GPU: ${ncclJson.two_ranks_outcome}` : ''}`,
  });
  if (!ncclJson?.pass)
    failures.push({
      check: label,
      lines: cs.length ? cs.filter((c) => !c.pass).map((c) => `${c.name}: ${c.detail}`) : said('nccl'),
    });
}
const fusedOld = json('gpu_check.json');
if (stepOf('fused_losses')) {
  const cs = fusedOld?.checks || [];
  checks.push({
    check: 'fused losses: gpu_check.js --quick (addon CUDA vs CPU)',
    passed: cs.length ? cs.filter((c) => c.pass).length : 'n/a',
    failed: cs.length ? cs.filter((c) => !c.pass).length : 'n/a',
    result: status('fused_losses') + (fusedOld?.error ? `: ${fusedOld.error}` : ''),
  });
}
L.push('## Correctness', '');
if (checks.length) {
  L.push('| check | passed | failed | skipped | result |', '|---|---:|---:|---:|---|');
  for (const c of checks)
    L.push(`| ${cell(c.check)} | ${c.passed} | ${c.failed} | ${c.skipped ?? '—'} | ${cell(c.result)} |`);
  const emulated = checks.filter((c) => c.device && !c.device.startsWith('real CUDA addon'));
  if (emulated.length) L.push('', `**Not on the GPU's CUDA addon: ${emulated.map((c) => cell(c.check)).join('; ')}.**`);
} else L.push('No correctness step ran.');
L.push('');
if (skips.length) {
  L.push(
    '### Skipped tests (counted, not run; [how]: test.skip, todo, or inside describe.skip, whose name says why)',
    '',
  );
  for (const x of skips) L.push(`- ${cell(x.check)}: ${cell(x.test)}`);
  L.push('');
}

// ---- the BERT benchmark
L.push('## BERT benchmark: the cuda backend vs PyTorch eager', '');
const shape = cudaBert?.shape || torchBert?.shape;
if (shape)
  L.push(
    `${shape.pairs} query-passage pairs (${shape.queries} queries x ${shape.group}) x ${shape.tokens} tokens. Median per step over ${cudaBert?.steps ?? torchBert?.steps} steps after warm-up; device time from CUDA events around each step (ending in a read of the loss / scores), wall time from Node / Python. Student step = forward + backward + AdamW on distillKL against the teacher's scores (the pipeline's trainStep). ratio = cuda device / PyTorch device; target <= ${TARGET}x.${cudaBert?.tiny || torchBert?.tiny ? ' **--tiny: a dry run, not a measurement.**' : ''}`,
    '',
  );
for (const [name, r] of [
  ['cuda_bert', cudaBert],
  ['torch_bert', torchBert],
])
  if (!r || r.error) L.push(`**${name}: ${r ? cell(r.error.split('\n')[0]) : `no results (${status(name)})`}**`, '');
const rows = [];
const keyOf = (r) => `${r.id}/${r.precision}`;
const ids = [];
for (const r of [...(cudaBert?.rows || []), ...(torchBert?.rows || [])])
  if (!ids.includes(keyOf(r))) ids.push(keyOf(r));
if (ids.length) {
  L.push(
    "| case | precision | cuda device | cuda wall | PyTorch device | PyTorch wall | ratio | <= 1.2x | target's PyTorch figure |",
    '|---|---|---:|---:|---:|---:|---:|---|---:|',
  );
  for (const k of ids) {
    const c = (cudaBert?.rows || []).find((r) => keyOf(r) === k) || {};
    const p = (torchBert?.rows || []).find((r) => keyOf(r) === k) || {};
    const cd = c.error ? NaN : c.device_ms;
    const pd = p.error ? NaN : p.device_ms;
    const ratio = cd / pd;
    const row = {
      id: c.id || p.id,
      precision: c.precision || p.precision,
      label: c.label || p.label,
      cuda_device_ms: cd,
      cuda_wall_ms: c.wall_ms,
      torch_device_ms: pd,
      torch_wall_ms: p.wall_ms,
      ratio,
      meets_target: Number.isFinite(ratio) ? ratio <= TARGET : null,
      reference_ms: p.reference_ms,
      errors: [c.error, p.error].filter(Boolean),
    };
    rows.push(row);
    L.push(
      `| ${cell(row.label)} | ${row.precision} | ${c.error ? 'error †' : ms(cd)} | ${c.error ? '' : ms(c.wall_ms)} | ${p.error ? 'error †' : ms(pd)} | ${p.error ? '' : ms(p.wall_ms)} | ${Number.isFinite(ratio) ? ratio.toFixed(2) + 'x' : 'n/a'} | ${row.meets_target == null ? 'n/a' : row.meets_target ? 'yes' : '**no**'} | ${ms(p.reference_ms)} |`,
    );
    for (const e of row.errors) failures.push({ check: `benchmark ${row.id} ${row.precision}`, lines: [e] });
  }
  L.push('');
}
const profiles = cudaBert?.profiles || {};
if (Object.keys(profiles).length) {
  L.push(
    `### The cuda backend's profile of one step (${cudaBert.rows?.[0]?.precision ?? 'fp32'}; each kernel synchronised, so its time includes its device work)`,
    '',
  );
  L.push(
    '| case | kernels | calls | fallbacks (kernels not on the device) | top kernels by time (calls, ms) |',
    '|---|---:|---:|---|---|',
  );
  for (const [id, p] of Object.entries(profiles)) {
    if (p.error) L.push(`| ${id} | | | ${cell(p.error)} | |`);
    else
      L.push(
        `| ${id} | ${p.kernels} | ${p.calls} | ${cell(p.fallbacks.join(', ') || 'none')} | ${cell(
          p.top
            .slice(0, 8)
            .map((s) => `${s.kernel} (${s.calls}, ${s.ms.toFixed(1)})`)
            .join(', '),
        )} |`,
      );
  }
  L.push('');
}

// ---- variants of the student step (A/B runs of one case each)
const variants = [
  ['cuda_bert.json', 'as benchmarked above'],
  [
    'cuda_bert_sync_uploads.json',
    'uploads wait for the stream (FUSED_DISTILL_CUDA_SYNC_UPLOADS=1: before the staging ring)',
  ],
  ['cuda_bert_composite.json', 'LayerNorm / GELU as tfjs composites (profiled: each kernel synchronised)'],
  ['cuda_bert_composite_sync_uploads.json', 'composites, uploads wait for the stream (profiled)'],
];
const variantRows = [];
for (const [file, what] of variants) {
  const r = (json(file)?.rows || []).find((x) => x.id === 'student4' && x.precision === 'fp32');
  if (r)
    variantRows.push({
      file,
      what,
      device_ms: r.error ? NaN : r.device_ms,
      wall_ms: r.error ? NaN : r.wall_ms,
      steps: r.steps,
      error: r.error,
    });
}
if (variantRows.length > 1) {
  L.push('### Student 4L/256 fp32 step, variants', '');
  L.push('| variant | file | cuda device | cuda wall | steps |', '|---|---|---:|---:|---:|');
  for (const v of variantRows)
    L.push(
      `| ${cell(v.what)} | ${v.file} | ${v.error ? 'error' : ms(v.device_ms)} | ${v.error ? '' : ms(v.wall_ms)} | ${v.steps ?? ''} |`,
    );
  L.push('');
}

// ---- the old fused-loss table
const torchOld = json('torch_gpu.json');
if (fusedOld?.cases && Object.keys(fusedOld.cases).length) {
  L.push('## Fused losses (the old check, --quick): forward + gradient, data on the device', '');
  L.push('| case | fused device | fused wall | PyTorch eager device | eager / fused |', '|---|---:|---:|---:|---:|');
  for (const [id, f] of Object.entries(fusedOld.cases)) {
    const e = torchOld?.cases?.[id]?.eager;
    const ed = e && !e.error ? e.device_ms : NaN;
    L.push(
      `| ${cell(f.label || id)} | ${f.error ? 'error' : ms(f.device_ms)} | ${f.error ? '' : ms(f.wall_ms)} | ${ms(ed)} | ${Number.isFinite(ed / f.device_ms) ? (ed / f.device_ms).toFixed(2) + 'x' : 'n/a'} |`,
    );
  }
  L.push('');
}

if (failures.length) {
  L.push("## Failures (first lines; each step's whole output is OUT/<step>.log)", '');
  for (const f of failures)
    L.push(`- **${cell(f.check)}**`, ...f.lines.map((l) => `  - ${cell(String(l).slice(0, 300))}`));
  L.push('');
}
const md = L.join('\n') + '\n';
const write = (f, content) => {
  const p = path.join(dir, f);
  fs.writeFileSync(`${p}.tmp`, content);
  fs.renameSync(`${p}.tmp`, p);
};
write('gpu.md', md);
write(
  'gpu.json',
  JSON.stringify(
    {
      card,
      steps,
      checks,
      skipped: skips,
      benchmark: rows,
      variants: variantRows,
      profiles,
      failures,
      cuda_bert: cudaBert,
      torch_bert: torchBert,
      cuda_vs_native: cvn,
      tfjs_core: core && core.totals,
    },
    null,
    1,
  ) + '\n',
);
process.stdout.write(md);
