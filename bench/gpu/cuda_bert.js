#!/usr/bin/env node
// The cuda backend's BERT benchmark on a tfjs backend ('cuda' by default): 64 query-passage pairs x 256
// tokens; the teacher (12L/768/12h/3072) scoring without gradient, and the students (6L/768/12h/3072
// and 4L/256/4h/1024) each taking the distillation pipeline's training step (forward + backward +
// AdamW, distillKL against the teacher's scores: trainStep/predictionLoss of src/distill/{step,objective}.ts,
// see bert_common.js). fp32 and TF32 (tfjs flag FUSED_DISTILL_CUDA_TF32). Per case: median over
// --steps timed steps after --warmup, device time from CUDA events (cuda.timerStart/timerStop
// around each step; the step ends with a read of its loss/scores) and wall time from Node; then
// one step under the backend's profile (kernel calls/time, fallbacks) when it has one.
//
//   node bench/gpu/cuda_bert.js [--backend cuda] [--tiny] [--steps 10] [--warmup 3]
//       [--precisions fp32,tf32] [--only teacher,student6,student4] [--budget-s 150] [--json FILE] [--no-profile]
//
// Dry runs without a GPU: `--backend native --tiny` (fp32 only: the TF32 flag is the cuda backend's),
// or FUSED_DISTILL_EMULATE_DEVICE=1 with `--tiny` (the cuda backend on the host emulation of the
// device). Prints a table to stderr and the JSON to stdout (and --json FILE, rewritten after every
// case so a timeout keeps what was measured). Exit: 0 every case ran, 1 a case failed, 2 no backend.
'use strict';
const os = require('os');
const C = require('./bert_common');

const { tf, fd } = C;
const args = C.argParser(process.argv.slice(2));
const BACKEND = args.get('backend', 'cuda');
const TINY = args.flag('tiny');
const STEPS = Number(args.get('steps', TINY ? '3' : '10'));
const WARMUP = Number(args.get('warmup', TINY ? '1' : '3'));
const PRECISIONS = args
  .get('precisions', BACKEND === 'cuda' ? 'fp32,tf32' : 'fp32')
  .split(',')
  .filter(Boolean);
const ONLY = args.get('only', 'teacher,student6,student4').split(',').filter(Boolean);
const BUDGET_S = Number(args.get('budget-s', '150'));
const JSON_OUT = args.get('json', null);
const PROFILE = !args.flag('no-profile');
// --composite-layers: the models' LayerNorm and GELU as plain tfjs ops (the fused kernels
// unregistered on this backend), to see what the fused layers save and where the composites spend.
const COMPOSITE_LAYERS = args.flag('composite-layers');
const SIZE = TINY ? C.SIZES.tiny : C.SIZES.full;
const log = (s) => process.stderr.write(s + '\n');
const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;

for (const p of PRECISIONS)
  if (p !== 'fp32' && p !== 'tf32') throw new Error(`--precisions: fp32 and/or tf32, got ${p}`);
for (const c of ONLY)
  if (c !== 'teacher' && !SIZE.students[c]) throw new Error(`--only: teacher, student6, student4; got ${c}`);

const result = {
  date: new Date().toISOString(),
  backend: BACKEND,
  tiny: TINY,
  node: process.version,
  host: os.hostname(),
  tf32_flag: C.TF32_FLAG,
  shape: { pairs: SIZE.B * SIZE.G, queries: SIZE.B, group: SIZE.G, tokens: SIZE.len },
  models: {
    teacher: C.sizeLabel(SIZE.teacher),
    ...Object.fromEntries(Object.entries(SIZE.students).map(([k, v]) => [k, C.sizeLabel(v)])),
  },
  steps: STEPS,
  warmup: WARMUP,
  rows: [],
  profiles: {},
};
const save = () => JSON_OUT && C.writeJson(JSON_OUT, result);
result.layers = COMPOSITE_LAYERS ? 'composite' : 'fused';

/** Device timers when the addon has a device; null (wall time only) otherwise. */
function deviceTimer() {
  const dev = C.device();
  result.device = dev.name ?? `none (${dev.why})`;
  if (!dev.available) return null;
  try {
    fd.cuda.timerStart();
    fd.cuda.timerStop();
    return { start: () => fd.cuda.timerStart(), stop: () => fd.cuda.timerStop() };
  } catch (e) {
    result.timer_error = e.message;
    return null;
  }
}

/** Warm-up, then timed steps (fewer when the case's share of the budget runs out; at least 3). */
function time(fn, timer, budgetS) {
  for (let i = 0; i < WARMUP; i++) fn();
  const before = tf.memory().numTensors;
  const device = [];
  const wall = [];
  const t0 = performance.now();
  let last;
  for (let i = 0; i < STEPS; i++) {
    if (i >= 3 && (performance.now() - t0) / 1000 > budgetS) break;
    if (timer) timer.start();
    const w0 = performance.now();
    last = fn();
    if (timer) device.push(timer.stop()); // records an event and waits for it: after the step's last kernel
    wall.push(performance.now() - w0);
  }
  return {
    device_ms: timer ? C.median(device) : null,
    min_device_ms: timer ? Math.min(...device) : null,
    wall_ms: C.median(wall),
    min_wall_ms: Math.min(...wall),
    steps: wall.length,
    last,
    tensors_leaked: tf.memory().numTensors - before,
  };
}

/** The backend's profile of one call: '<backend>Profile' if the package exports one, else nativeProfile. */
function profileOnce(fn) {
  const prof = fd[`${BACKEND}Profile`] ?? fd.nativeProfile;
  if (!prof || typeof prof.start !== 'function') return { error: 'no profile API' };
  // sync: each kernel waits for the device, so its time is its device time (the 'cuda' backend).
  prof.start({ sync: true });
  const t0 = performance.now();
  try {
    fn();
  } finally {
    prof.stop();
  }
  const stepMs = performance.now() - t0;
  const stats = prof.stats();
  if (stats.length === 0) return { error: `the profile recorded no kernel on '${BACKEND}'` };
  return {
    source: fd[`${BACKEND}Profile`] ? `${BACKEND}Profile` : 'nativeProfile',
    kernels: stats.length,
    calls: stats.reduce((a, s) => a + s.calls, 0),
    ms: stats.reduce((a, s) => a + s.ms, 0),
    // the profiled step's wall time: what is not in `ms` ran outside tfjs kernels (optimizer, JS)
    step_ms: stepMs,
    fallbacks: prof.fallbacks(),
    top: stats.slice(0, 25),
    report: prof.report(),
  };
}

async function main() {
  try {
    await C.useBackend(BACKEND);
  } catch (e) {
    result.error = e.message;
    log(`cuda_bert: ${e.message}`);
    save();
    process.stdout.write(JSON.stringify(result) + '\n');
    return 2;
  }
  if (COMPOSITE_LAYERS) {
    const tf = require('@tensorflow/tfjs');
    for (const k of ['FusedDistillLayerNorm', 'FusedDistillLayerNormGrad', 'FusedDistillGelu', 'FusedDistillGeluGrad'])
      if (tf.getKernel(k, BACKEND)) tf.unregisterKernel(k, BACKEND);
  }
  const timer = deviceTimer();
  log(
    `cuda_bert: backend ${BACKEND}, device ${result.device}${timer ? '' : ' (wall time only)'}; ${result.shape.pairs} pairs x ${SIZE.len} tokens`,
  );

  const t0 = performance.now();
  const teacher = new fd.models.CrossEncoder(SIZE.teacher, 0);
  const students = Object.fromEntries(
    ONLY.filter((c) => c !== 'teacher').map((c, i) => [c, new fd.models.CrossEncoder(SIZE.students[c], 1 + i)]),
  );
  const batch = C.syntheticBatch(SIZE, SIZE.teacher.vocabSize);
  // fp32 (the default) for the teacher scores the students learn from
  if (BACKEND === 'cuda') {
    try {
      C.setTF32(false);
    } catch (e) {
      result.tf32_flag_error = e.message;
    }
  }
  const tScores = C.teacherScores(teacher, batch);
  result.setup_s = (performance.now() - t0) / 1000;
  const config = C.studentConfig({ kl: 1 }, SIZE);
  const steps = Object.fromEntries(
    Object.entries(students).map(([c, m]) => [c, C.studentStep(m, batch, tScores, config)]),
  );
  const cases = ONLY.map((c) =>
    c === 'teacher'
      ? {
          id: c,
          label: `teacher ${C.sizeLabel(SIZE.teacher)} scoring (forward, no gradient)`,
          fn: () => C.teacherScores(teacher, batch)[0],
        }
      : {
          id: c,
          label: `student ${C.sizeLabel(SIZE.students[c])} step (fwd + bwd + AdamW, KL)`,
          fn: () => steps[c].step().loss,
        },
  );
  let failed = 0;
  const total = PRECISIONS.length * cases.length;
  let done = 0;
  for (const precision of PRECISIONS) {
    let precisionError = null;
    if (BACKEND === 'cuda' || precision === 'tf32') {
      try {
        C.setTF32(precision === 'tf32');
      } catch (e) {
        // fp32 is the default: measured anyway; TF32 cannot be without its switch
        if (precision === 'tf32') precisionError = e.message;
      }
    }
    for (const c of cases) {
      const row = { id: c.id, label: c.label, precision };
      const budget = Math.max(5, (BUDGET_S - elapsedS()) / Math.max(1, total - done) - 2);
      done++;
      if (precisionError) {
        row.error = precisionError;
        failed++;
      } else {
        try {
          const r = time(c.fn, timer, budget);
          const { last, ...rest } = r;
          Object.assign(row, rest, { value: last });
          log(
            `  ${precision} ${c.label}: device ${r.device_ms == null ? 'n/a' : r.device_ms.toFixed(2) + ' ms'}, wall ${r.wall_ms.toFixed(2)} ms (median of ${r.steps}; leaked tensors ${r.tensors_leaked})`,
          );
          if (PROFILE && precision === PRECISIONS[0]) {
            result.profiles[c.id] = profileOnce(c.fn);
            const pr = result.profiles[c.id];
            if (pr.top) {
              log(
                `    profile (each kernel synchronised): step ${pr.step_ms.toFixed(1)} ms, in kernels ${pr.ms.toFixed(1)} ms, ${pr.calls} calls`,
              );
              for (const k of pr.top.slice(0, 14))
                log(`      ${k.kernel} ${k.impl}: ${k.calls} calls, ${k.ms.toFixed(2)} ms`);
            }
            if (result.profiles[c.id].fallbacks?.length)
              log(`    fallbacks: ${result.profiles[c.id].fallbacks.join(', ')}`);
          }
        } catch (e) {
          row.error = e.message.split('\n')[0];
          failed++;
          log(`  ${precision} ${c.label}: FAILED: ${e.stack || e.message}`);
        }
      }
      result.rows.push(row);
      save();
    }
  }
  if (BACKEND === 'cuda' && C.device().available) result.memory = fd.cuda.memoryStats();
  result.seconds = elapsedS();
  for (const s of Object.values(steps)) s.dispose();
  for (const m of [teacher, ...Object.values(students)]) m.dispose();
  fd.distill.disposeBatch(batch);
  save();
  process.stdout.write(JSON.stringify(result) + '\n');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    result.error = e.stack || e.message;
    log(`cuda_bert: ${result.error}`);
    save();
    process.exit(1);
  },
);
