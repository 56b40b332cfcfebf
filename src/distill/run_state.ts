// The run state a checkpoint's state.json holds, validated before a resume trusts it: a state that
// parses but says something impossible ("step": "abc", a step the log does not reach) would resume
// a run that silently skips or repeats steps.
import { z } from 'zod';

import { CheckpointError } from './checkpoint';
import type { RunState } from './run_dir';

const nonNegInt = z.number().int().nonnegative();
// Skipped steps (train.nonFinite 'skip') log a NaN loss or gradient norm, which JSON writes as null.
const logNumber = z.number().nullable();

const StepLogSchema = z
  .object({
    step: z.number().int().positive(),
    lr: logNumber,
    gradNorm: logNumber,
    loss: logNumber,
    parts: z.record(logNumber),
    skipped: z.boolean().optional(),
  })
  .strict();
const EvalLogSchema = z
  .object({ step: nonNegInt, split: z.string(), mrr10: z.number(), ndcg10: z.number(), queries: nonNegInt })
  .strict();
const SamplerStateSchema = z
  .object({ rng: z.number().int(), order: z.array(nonNegInt), cursor: nonNegInt, epoch: nonNegInt })
  .strict();

const RunStateSchema = z.object({
  step: z.number().int().positive(),
  sampler: SamplerStateSchema,
  log: z.object({ steps: z.array(StepLogSchema), evals: z.array(EvalLogSchema) }).strict(),
});

/**
 * Checks a restored state against the schema and against itself: one log line per step 1..step, no
 * evaluation after the step, the sampler's cursor inside its order, the step inside the run's
 * `totalSteps`. Throws a CheckpointError naming the checkpoint's state.json and the first problem.
 */
export function validateRunState(state: unknown, dir: string, totalSteps: number): RunState {
  const file = `${dir}/state.json`;
  const parsed = RunStateSchema.safeParse(state);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CheckpointError(
      dir,
      `${file}: invalid run state: ${issue.path.join('.') || '(top level)'}: ${issue.message}`,
    );
  }
  const { step, sampler, log } = parsed.data;
  const bad = (what: string) => new CheckpointError(dir, `${file}: invalid run state: ${what}`);
  if (step > totalSteps) throw bad(`step ${step} is past the run's ${totalSteps} steps`);
  if (log.steps.length !== step) throw bad(`step ${step} but the log holds ${log.steps.length} steps`);
  log.steps.forEach((s, i) => {
    if (s.step !== i + 1) throw bad(`log.steps.${i}: step ${s.step}, expected ${i + 1}`);
  });
  if (log.evals.some((e) => e.step > step)) throw bad(`the log has an evaluation after step ${step}`);
  if (sampler.cursor > sampler.order.length)
    throw bad(`sampler.cursor ${sampler.cursor} is past its order of ${sampler.order.length}`);
  return { step, sampler, log: log as RunState['log'] };
}
