// What every command shares: the global options (backend, threads, progress mode), picking the tfjs
// backend, reading config files with clear errors, where the package's bundled configs live, and
// running one training run with progress and its report (teacher train, distill).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from 'commander';

import type { ProgressEvent, RunResult } from '../distill';
import { withDirLock } from '../data/lock';
import { getWorld } from '../distributed/world';
import { isHuggingFaceDir } from '../models/huggingface';
import { ConfigError } from '../distill/config';
import { singleRunReport, writeReport, type ReportRun } from '../report/report';
import { Progress, type ProgressMode } from './progress';

export const BACKENDS = ['native', 'cuda', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** The package root (dist/cli/.. /..): bundled configs, data/, runs/. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const MAIN_SUITE = path.join(PACKAGE_ROOT, 'configs', 'main', 'main.json');
export const GRID_SUITE = path.join(PACKAGE_ROOT, 'configs', 'grid', 'grid.json');

export interface GlobalOptions {
  backend: BackendName;
  threads?: number;
  precision?: string;
  progress?: ProgressMode;
}

/** An error the user caused (bad argument, missing file): printed without a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Makes `name` tfjs's current backend ('native', 'cuda': this package's addon; 'wasm', 'cpu': tfjs's
 * own), with matrix products in `precision` when given (fp32, bf16; tf32 on cuda). A bf16 request on
 * a CPU without AVX512-BF16 prints one line saying which path runs instead.
 */
export async function useBackend(name: BackendName, threads?: number, precision?: string): Promise<void> {
  // Ranks sharing a machine share its cores: each takes its part unless told otherwise.
  const { localSize } = getWorld();
  if (threads == null && localSize > 1 && !process.env.FUSED_DISTILL_NUM_THREADS)
    threads = Math.max(1, Math.floor(os.availableParallelism() / localSize));
  if (threads != null) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { addon } = require('../native') as typeof import('../native');
    addon.setNumThreads(threads);
  }
  if (name === 'native') {
    const { registerNativeBackend } =
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('../backend/native/register') as typeof import('../backend/native/register');
    registerNativeBackend();
  } else if (name === 'cuda') {
    // One GPU per rank on a machine: the local rank's (read when the device is first used).
    if (localSize > 1 && process.env.FUSED_DISTILL_CUDA_DEVICE == null)
      process.env.FUSED_DISTILL_CUDA_DEVICE = String(getWorld().localRank);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { registerCudaBackend } = require('../backend/cuda/register') as typeof import('../backend/cuda/register');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { addon } = require('../native') as typeof import('../native');
    if (!registerCudaBackend())
      throw new UsageError(
        `backend 'cuda' is not available here: ${addon.cuda.lastError() || 'the addon has no device surface'}`,
      );
  } else if (name === 'wasm') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-backend-wasm');
  } else if (name !== 'cpu') {
    throw new UsageError(`unknown backend '${name}': choose one of ${BACKENDS.join(', ')}`);
  }
  // The fused loss ops register their kernels for cpu, wasm, native and cuda when first imported.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../losses');
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name)
    throw new Error(`backend '${name}' could not be initialised (tfjs is on '${tf.getBackend()}')`);
  if (precision != null) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { setMatmulPrecision } = require('../backend/precision') as typeof import('../backend/precision');
    let note: string | null;
    try {
      note = setMatmulPrecision(precision, name);
    } catch (e) {
      throw new UsageError(`--precision: ${(e as Error).message}`);
    }
    if (note) process.stderr.write(`fused-distill: ${note}\n`);
  }
}

export function progressFor(opts: GlobalOptions): Progress {
  // Rank 0 shows the progress of a run that several ranks take together; the others stay quiet.
  if (getWorld().rank !== 0) return new Progress('none');
  return new Progress(opts.progress ?? Progress.defaultMode());
}

/** The path of a config file that must exist. */
export function existingFile(file: string, what = 'config file'): string {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new UsageError(`${what} not found: ${file}`);
  if (!fs.statSync(abs).isFile()) throw new UsageError(`${what} is not a file: ${file}`);
  return abs;
}

/**
 * Checks that the models and data a run config names exist before anything runs (paths already
 * resolved against the config file's dir): a missing one is a usage error naming the config field
 * (exit 2), not a raw ENOENT from deep inside the run.
 */
export function checkConfigPaths(
  file: string,
  config: {
    teacher?: { checkpoint?: string; huggingface?: string; scores?: string };
    student?: { init: string; path?: string };
    init?: { checkpoint?: string; safetensors?: string };
    data?: { collection?: string; msmarco?: string; negatives?: unknown };
  },
): void {
  const model = (field: string, dir: string | undefined) => {
    if (dir != null && !fs.existsSync(path.join(dir, 'model.json')))
      throw new UsageError(
        `${file}: ${field}: no saved model at ${dir} (a model dir holds model.json and weights.bin; train or export it first)`,
      );
  };
  const exists = (field: string, f: string | undefined) => {
    if (f != null && !fs.existsSync(f)) throw new UsageError(`${file}: ${field}: file not found: ${f}`);
  };
  const hub = (field: string, dir: string | undefined) => {
    if (dir != null && !fs.existsSync(path.join(dir, 'config.json')))
      throw new UsageError(
        `${file}: ${field}: no Hugging Face model at ${dir} (such a dir holds config.json and model.safetensors)`,
      );
  };
  model('teacher.checkpoint', config.teacher?.checkpoint);
  hub('teacher.huggingface', config.teacher?.huggingface);
  if (config.student?.init === 'huggingface') hub('student.path', config.student.path);
  if (config.student?.init === 'checkpoint') model('student.path', config.student.path);
  if (config.student?.init === 'safetensors') exists('student.path', config.student.path);
  model('init.checkpoint', config.init?.checkpoint);
  exists('init.safetensors', config.init?.safetensors);
  exists('teacher.scores', config.teacher?.scores);
  exists('data.msmarco', config.data?.msmarco);
  if (config.data?.collection != null && !fs.existsSync(path.join(config.data.collection, 'collection.tsv')))
    throw new UsageError(
      `${file}: data.collection: no collection at ${config.data.collection} (a collection dir holds collection.tsv; see \`fused-distill data build\`)`,
    );
  const negatives = config.data?.negatives as { from?: string; path?: string } | undefined;
  if (negatives?.from === 'file') exists('data.negatives.path', negatives.path);
}

/** The config with data.skipBadRows set when --skip-bad-rows was given (left as the file has it otherwise). */
export function withSkipBadRows<C extends { data: { skipBadRows?: boolean } }>(
  config: C,
  flag: boolean | undefined,
): C {
  return flag ? { ...config, data: { ...config.data, skipBadRows: true } } : config;
}

/** Prints the rows --skip-bad-rows skipped, per file (whatever the progress mode: never dropped silently). */
export function printBadRows(badRows: Record<string, number> | undefined): void {
  for (const [file, n] of Object.entries(badRows ?? {}))
    process.stdout.write(`skipped ${n} bad row${n === 1 ? '' : 's'} of ${file} (--skip-bad-rows)\n`);
}

/** A finished run's lines on stdout: its model dir, skipped rows, final evaluation and report. */
export function printRunEnd(kind: 'teacher' | 'student', result: RunResult, report: string): void {
  const f = result.final;
  process.stdout.write(`${kind} model: ${result.modelDir}\n`);
  printBadRows(result.badRows);
  if (f)
    process.stdout.write(
      `${f.split} (${f.queries} queries): MRR@10 ${f.mrr10.toFixed(4)}  nDCG@10 ${f.ndcg10.toFixed(4)}\n`,
    );
  process.stdout.write(`report: ${report}\n`);
}

/** commander argParser: a non-negative integer. */
export function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}

/** commander argParser: a positive integer, or commander's "argument 'x' is invalid" error. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

/** Runs a training function with progress; returns its result, the parameter count and the wall time. */
export async function withRunProgress(
  progress: Progress,
  label: string,
  run: (onProgress: (e: ProgressEvent) => void) => Promise<RunResult>,
): Promise<{ result: RunResult; parameters: number | null; seconds: number }> {
  let parameters: number | null = null;
  progress.setLabel(label);
  const t0 = Date.now();
  const result = await run((e) => {
    if (e.type === 'start') parameters = e.parameters;
    progress.onProgress(e);
  });
  return { result, parameters, seconds: (Date.now() - t0) / 1000 };
}

/** Writes a training run's report (report.json / .md / .html) in its output dir; returns the HTML file. */
export async function reportRun(
  kind: 'teacher' | 'student',
  name: string,
  objective: string,
  configFile: string,
  backend: string,
  r: { result: RunResult; parameters: number | null; seconds: number },
): Promise<string> {
  const run: ReportRun = {
    name,
    kind,
    output: r.result.output,
    objective,
    trained: true,
    seconds: r.seconds,
    steps: r.result.log.steps,
    evals: r.result.log.evals,
  };
  const world = getWorld();
  const report = singleRunReport(run, {
    backend,
    wallSeconds: r.seconds,
    parameters: r.parameters,
    configFile,
    worldSize: world.size,
  });
  const html = path.join(r.result.output, 'report.html');
  // rank 0 writes the run's files; the others wait until the report is there
  if (world.rank === 0) await withDirLock(r.result.output, () => writeReport(r.result.output, report));
  await world.barrier();
  return html;
}

export { ConfigError };

export interface ModelSpec {
  name: string;
  /** a saveCrossEncoder dir (model.json + weights.bin), or a Hugging Face dir (config.json + model.safetensors) */
  dir: string;
  /** 'huggingface': read with its own tokenizer (models.loadHuggingFace) */
  kind?: 'huggingface';
}

/** "name=path" or "path"; path is a model dir, a run dir holding model/, or a Hugging Face model dir. */
export function parseModelSpec(spec: string): ModelSpec {
  const eq = spec.indexOf('=');
  const [name, p] = eq > 0 ? [spec.slice(0, eq), spec.slice(eq + 1)] : [null, spec];
  const abs = path.resolve(p);
  let dir: string;
  if (fs.existsSync(path.join(abs, 'model.json'))) dir = abs;
  else if (fs.existsSync(path.join(abs, 'model', 'model.json'))) dir = path.join(abs, 'model');
  else if (isHuggingFaceDir(abs)) return { name: name ?? path.basename(abs), dir: abs, kind: 'huggingface' };
  else
    throw new UsageError(
      `model not found: ${p} (give a model dir with model.json, a run dir with model/, or a Hugging Face dir with config.json)`,
    );
  const fallback = path.basename(dir) === 'model' ? path.basename(path.dirname(dir)) : path.basename(dir);
  return { name: name ?? fallback, dir };
}
