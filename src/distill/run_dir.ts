// A run's output dir: config.json, checkpoints/step-<n>/ (every checkpointEvery steps: the weights,
// the optimizer and the run state), and at the end model/ (the trained weights), log.jsonl (one line
// per step and per evaluation) and result.json (written last: its presence means the run is
// complete). The config's hash ties checkpoints and results to the config that wrote them.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { renameDirInto, writeAtomic } from '../data/atomic';
import { saveCrossEncoder } from '../models/checkpoint';
import type { CrossEncoder } from '../models/cross_encoder';
import type { SamplerState } from './batches';
import { latestCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoint';
import type { PretrainRunConfig, StudentRunConfig, TeacherRunConfig } from './config';
import type { AdamW } from './optimizer';
import type { EvalMetrics } from './scoring';
import type { Fusion } from './fusion';
import { canonical } from '../data/canonical';

export type RunKind = 'teacher' | 'student' | 'pretrain';

export interface StepLog {
  step: number;
  lr: number;
  /** global gradient norm before clipping */
  gradNorm: number;
  loss: number;
  /** each weighted term (w_k * L_k) by its config name; only terms with a weight > 0 */
  parts: Record<string, number>;
}

export interface EvalLog extends EvalMetrics {
  step: number;
  split: string;
}

export interface RunLog {
  steps: StepLog[];
  evals: EvalLog[];
}

export interface RunResult {
  output: string;
  /** the trained model (saveCrossEncoder's layout) */
  modelDir: string;
  steps: number;
  log: RunLog;
  /** the last evaluation (null when evaluation is off) */
  final: EvalLog | null;
  /** file -> malformed rows skipped (data.skipBadRows); absent when none were */
  badRows?: Record<string, number>;
  /** the teacher's fusion (config.fusion): the saved model adds its features with these weights */
  fusion?: Fusion;
}

type RunConfig = TeacherRunConfig | StudentRunConfig | PretrainRunConfig;

/** What a checkpoint holds besides the run state: the trained variables and the optimizer. */
export interface Trained {
  model: CrossEncoder;
  /** other trained variables (projections) */
  extra: Map<string, tf.Variable>;
  optimizer: AdamW;
}

/** The loop's state at a checkpoint (with the weights and the optimizer, all a resume needs). */
export interface RunState {
  step: number;
  sampler: SamplerState;
  log: RunLog;
}

const STATE_FORMAT = 'fused-distill-train-state';

export const hashConfig = (config: object) =>
  createHash('sha256')
    .update(JSON.stringify(canonical(config)))
    .digest('hex');

function readLog(file: string): RunLog {
  const log: RunLog = { steps: [], evals: [] };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const { type, ...rest } = JSON.parse(line);
    if (type === 'step') log.steps.push(rest);
    else log.evals.push(rest);
  }
  return log;
}

async function writeLog(file: string, log: RunLog): Promise<void> {
  const lines: string[] = [];
  let e = 0;
  for (const s of log.steps) {
    lines.push(JSON.stringify({ type: 'step', ...s }));
    while (e < log.evals.length && log.evals[e].step === s.step)
      lines.push(JSON.stringify({ type: 'eval', ...log.evals[e++] }));
  }
  for (; e < log.evals.length; e++) lines.push(JSON.stringify({ type: 'eval', ...log.evals[e] }));
  await writeAtomic(file, (w) => w.write(lines.map((l) => `${l}\n`).join('')));
}

export type OutputState =
  { kind: 'fresh' } | { kind: 'resume'; checkpoint: string } | { kind: 'done'; result: RunResult };

/**
 * What the output dir holds, checked before anything is loaded: a finished run (returned again
 * when resuming with the same config), checkpoints (resumed, or an error without `resume`), or
 * nothing of a run.
 */
export function outputState(config: RunConfig, resume: boolean): OutputState {
  const resultFile = path.join(config.output, 'result.json');
  if (fs.existsSync(resultFile)) {
    const done = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as RunResult & { configHash: string };
    if (resume && done.configHash === hashConfig(config))
      return { kind: 'done', result: { ...done, log: readLog(path.join(config.output, 'log.jsonl')) } };
    throw new Error(
      `${config.output}: holds a finished run${resume ? ' of another config' : ''}; choose another output dir`,
    );
  }
  const previous = latestCheckpoint(path.join(config.output, 'checkpoints'));
  if (previous && !resume)
    throw new Error(`${config.output}: has checkpoints of an earlier run; resume it or choose another output dir`);
  return previous ? { kind: 'resume', checkpoint: previous } : { kind: 'fresh' };
}

/** Restores the trained variables and the optimizer from a checkpoint of the run with `configHash`; returns its run state. */
export function restoreRun(checkpoint: string, trained: Trained, configHash: string): RunState {
  const state = readCheckpoint<RunState & { format: string; configHash: string }>(checkpoint, trained);
  if (state.format !== STATE_FORMAT || state.configHash !== configHash)
    throw new Error(`${checkpoint}: was written by a run with another config; resume with the same config`);
  return { step: state.step, sampler: state.sampler, log: state.log };
}

/** Writes output/config.json (creating the dir). */
export async function writeRunConfig(output: string, config: RunConfig): Promise<void> {
  fs.mkdirSync(output, { recursive: true });
  await writeAtomic(path.join(output, 'config.json'), (w) => w.write(`${JSON.stringify(config, null, 2)}\n`));
}

/** Writes a checkpoint (keeping the newest `keep`) and the log so far; returns the checkpoint's dir. */
export async function writeRunCheckpoint(
  output: string,
  trained: Trained,
  configHash: string,
  run: RunState,
  keep: number,
): Promise<string> {
  const state = { format: STATE_FORMAT, configHash, step: run.step, sampler: run.sampler, log: run.log };
  const root = path.join(output, 'checkpoints');
  let dir: string;
  try {
    dir = await writeCheckpoint(root, { ...trained, state }, keep);
  } catch (e) {
    // A failed write (a full disk) leaves no half checkpoint behind.
    const temp = `.tmp-step-${String(run.step).padStart(8, '0')}-${process.pid}`;
    fs.rmSync(path.join(root, temp), { recursive: true, force: true });
    throw e;
  }
  await writeLog(path.join(output, 'log.jsonl'), run.log);
  return dir;
}

/** The final outputs: model/, log.jsonl, and result.json last. */
export interface RunSummary {
  steps: number;
  configHash: string;
  run: RunKind;
  badRows?: Record<string, number>;
  /** the ranks that took the steps (result.json's worldSize; 1 when absent) */
  worldSize?: number;
  fusion?: Fusion;
}

export async function finishRun(
  output: string,
  model: CrossEncoder,
  log: RunLog,
  summary: RunSummary,
): Promise<RunResult> {
  const result = unwrittenResult(output, log, summary);
  const temp = path.join(output, `.tmp-model-${process.pid}`);
  removeTempModels(output);
  try {
    await saveCrossEncoder(model, temp);
    renameDirInto(temp, result.modelDir);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
  await writeLog(path.join(output, 'log.jsonl'), log);
  const { log: _log, ...written } = result;
  const { configHash, run, worldSize } = summary;
  await writeAtomic(path.join(output, 'result.json'), (w) =>
    w.write(
      `${JSON.stringify({ ...written, configHash, run, backend: tf.getBackend(), worldSize: worldSize ?? 1 }, null, 2)}\n`,
    ),
  );
  return result;
}

/**
 * The run's result without writing anything: what finishRun writes and returns, and what a rank that
 * does not write (rank 0 does) returns. badRows only when rows were skipped: a run without it keeps
 * result.json byte-identical.
 */
export function unwrittenResult(output: string, log: RunLog, summary: RunSummary): RunResult {
  const result: RunResult = {
    output,
    modelDir: path.join(output, 'model'),
    steps: summary.steps,
    log,
    final: log.evals.at(-1) ?? null,
  };
  if (summary.badRows) result.badRows = summary.badRows;
  if (summary.fusion) result.fusion = summary.fusion;
  return result;
}

// The model dirs an earlier process was writing when it was killed (its .tmp-model-<pid>, or
// model.old-<pid> between renameDirInto's two renames). The output dir is locked: no other live
// process writes there.
function removeTempModels(output: string): void {
  for (const name of fs.readdirSync(output))
    if (/^(?:\.tmp-model|model\.old)-\d+$/.test(name))
      fs.rmSync(path.join(output, name), { recursive: true, force: true });
}
