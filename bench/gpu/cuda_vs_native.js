#!/usr/bin/env node
// The distillation pipeline's training on 'cuda' against 'native': the same seeded teacher and
// student (small BERTs), the same synthetic batch, the pipeline's default student objective
// (RankNet + KL, T = 1) and optimizer, --steps steps of trainStep (src/distill/step.ts) on each
// backend in turn. PASS when the teacher's scores and every step's loss agree within float32
// tolerance (|a - b| <= rtol * max(|a|, |b|) + atol); the gradient norms and the final parameters'
// largest difference are reported beside. TF32 is off (fp32 on both sides).
//
//   node bench/gpu/cuda_vs_native.js [--backends native,cuda] [--steps 20] [--rtol 1e-4] [--atol 1e-6] [--json FILE] [--tiny]
//
// Dry runs here: --backends native,native (must agree exactly), or FUSED_DISTILL_EMULATE_DEVICE=1
// (the cuda backend on the host emulation of the device). Exit: 0 PASS, 1 FAIL, 2 a backend is missing.
'use strict';
const C = require('./bert_common');

const { fd } = C;
const args = C.argParser(process.argv.slice(2));
const BACKENDS = args.get('backends', 'native,cuda').split(',');
const STEPS = Number(args.get('steps', '20'));
const RTOL = Number(args.get('rtol', '1e-4'));
const ATOL = Number(args.get('atol', '1e-6'));
const JSON_OUT = args.get('json', null);
const log = (s) => process.stderr.write(s + '\n');
if (BACKENDS.length !== 2) throw new Error(`--backends: two backends, got ${BACKENDS.join(',')}`);

// --tiny: the same code paths in a second (dry runs, tests), not the GPU check's sizes
const SHAPE = args.flag('tiny') ? { B: 2, G: 4, len: 16 } : { B: 4, G: 8, len: 64 };
const TEACHER = args.flag('tiny')
  ? C.SIZES.tiny.teacher
  : { ...C.SIZES.full.teacher, hidden: 128, layers: 4, heads: 2, intermediate: 512 };
const STUDENT = { ...TEACHER, layers: TEACHER.layers / 2 };

async function runOn(backend) {
  await C.useBackend(backend);
  if (backend === 'cuda') C.setTF32(false);
  const teacher = new fd.models.CrossEncoder(TEACHER, 0);
  const student = new fd.models.CrossEncoder(STUDENT, 1);
  const batch = C.syntheticBatch(SHAPE, TEACHER.vocabSize);
  const teacherScores = C.teacherScores(teacher, batch);
  const s = C.studentStep(student, batch, teacherScores, C.studentConfig(undefined, SHAPE));
  const losses = [];
  const gradNorms = [];
  const t0 = performance.now();
  for (let i = 0; i < STEPS; i++) {
    const r = s.step();
    losses.push(r.loss);
    gradNorms.push(r.gradNorm);
  }
  const ms = (performance.now() - t0) / STEPS;
  const params = new Map([...student.params].map(([k, v]) => [k, v.dataSync().slice()]));
  s.dispose();
  teacher.dispose();
  student.dispose();
  fd.distill.disposeBatch(batch);
  log(
    `  ${backend}: ${STEPS} steps, ${ms.toFixed(1)} ms/step, loss ${losses[0].toFixed(6)} -> ${losses[STEPS - 1].toFixed(6)}`,
  );
  return { teacherScores: Array.from(teacherScores), losses, gradNorms, params, ms_per_step: ms };
}

const close = (a, b) => Math.abs(a - b) <= RTOL * Math.max(Math.abs(a), Math.abs(b)) + ATOL;
const maxDiff = (xs, ys) => xs.reduce((m, x, i) => Math.max(m, Math.abs(x - ys[i])), 0);

async function main() {
  const out = {
    backends: BACKENDS,
    steps: STEPS,
    rtol: RTOL,
    atol: ATOL,
    shape: SHAPE,
    teacher: C.sizeLabel(TEACHER),
    student: C.sizeLabel(STUDENT),
  };
  const save = () => JSON_OUT && C.writeJson(JSON_OUT, out);
  log(
    `cuda_vs_native: ${BACKENDS.join(' vs ')}, student ${out.student} distilled from teacher ${out.teacher}, ${STEPS} steps`,
  );
  const runs = [];
  // both backends first: a missing one is found before the other's steps run
  for (const b of BACKENDS) {
    try {
      await C.useBackend(b);
    } catch (e) {
      out.error = `${b}: ${e.message}`;
      log(`cuda_vs_native: ${out.error}`);
      save();
      return 2;
    }
  }
  for (const b of BACKENDS) {
    try {
      runs.push(await runOn(b));
    } catch (e) {
      out.error = `${b}: ${e.message}`;
      log(`cuda_vs_native: ${out.error}`);
      save();
      return 2;
    }
  }
  const [a, b] = runs;
  out.teacher_scores_max_abs_diff = maxDiff(a.teacherScores, b.teacherScores);
  const badScores = a.teacherScores.filter((x, i) => !close(x, b.teacherScores[i])).length;
  out.losses = { [BACKENDS[0]]: a.losses, [BACKENDS[1]]: b.losses };
  out.grad_norms = { [BACKENDS[0]]: a.gradNorms, [BACKENDS[1]]: b.gradNorms };
  out.loss_max_rel_diff = Math.max(
    ...a.losses.map((x, i) => Math.abs(x - b.losses[i]) / Math.max(Math.abs(x), Math.abs(b.losses[i]), 1e-30)),
  );
  out.grad_norm_max_rel_diff = Math.max(
    ...a.gradNorms.map((x, i) => Math.abs(x - b.gradNorms[i]) / Math.max(Math.abs(x), 1e-30)),
  );
  out.param_max_abs_diff = Math.max(...[...a.params].map(([k, v]) => maxDiff(v, b.params.get(k))));
  out.ms_per_step = { [BACKENDS[0]]: a.ms_per_step, [BACKENDS[1]]: b.ms_per_step };
  const badSteps = a.losses.map((x, i) => (close(x, b.losses[i]) ? -1 : i + 1)).filter((i) => i > 0);
  out.checks = [
    {
      name: 'teacher scores',
      pass: badScores === 0,
      detail: `${a.teacherScores.length - badScores}/${a.teacherScores.length} within tolerance, max abs diff ${out.teacher_scores_max_abs_diff.toExponential(2)}`,
    },
    {
      name: `loss, ${STEPS} steps`,
      pass: badSteps.length === 0,
      detail: `max rel diff ${out.loss_max_rel_diff.toExponential(2)}${badSteps.length ? `; steps off: ${badSteps.join(', ')}` : ''}`,
    },
  ];
  out.pass = out.checks.every((c) => c.pass);
  for (const c of out.checks) log(`  ${c.pass ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
  log(
    `  (gradient norm max rel diff ${out.grad_norm_max_rel_diff.toExponential(2)}, final parameters max abs diff ${out.param_max_abs_diff.toExponential(2)})`,
  );
  save();
  return out.pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log(`cuda_vs_native: ${e.stack || e.message}`);
    process.exit(1);
  },
);
