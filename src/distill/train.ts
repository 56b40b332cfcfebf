// Teacher training on hard labels, and student distillation with any mix of the objective grid
// (objective.ts): the public runs and the loop they share. A run writes its output dir (run_dir.ts),
// holding the dir's lock (data/lock.ts) from its first check of the dir to its last write.
// With `resume`, a run continues from its latest checkpoint and reaches the same weights, bit for
// bit, as an uninterrupted run: batches, dropout-free forward passes, fused kernels and the
// optimizer are deterministic, and a checkpoint holds all of their state.
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { codeFingerprint } from '../distributed/code_version';
import {
  broadcastVariables,
  decideOnRankZero,
  requireAgreement,
  requireEqualVariables,
  withWriterLock,
} from '../distributed/sync';
import { getWorld, type World } from '../distributed/world';
import { MATMUL_PRECISION_FLAG, setMatmulPrecision } from '../backend/precision';
import type { CrossEncoder } from '../models/cross_encoder';
import type { RankingCollection } from '../data/ranking_collection';
import { PairEncoder, inputFormOf } from '../models/pair_encoder';
import type { TaskEvent } from '../eval/rerank';
import {
  GroupSampler,
  disposeBatch,
  drawnPairStream,
  labelFunction,
  makeBatch,
  runSampler,
  trainingPairs,
} from './batches';
import { BadRows } from '../data/bad_rows';
import { negativeCount, negativesNotice, negativesReport } from './negatives';
import { ConfigError, type StudentRunConfig, type TeacherRunConfig, type TrainConfig } from './config';
import { StudentObjective, TeacherObjective, type Objective } from './objective';
import {
  finishRun,
  hashConfig,
  unwrittenResult,
  outputState,
  restoreRun,
  writeRunCheckpoint,
  writeRunConfig,
  type EvalLog,
  type OutputState,
  type RunKind,
  type RunLog,
  type RunResult,
  type RunState,
  type StepLog,
  type Trained,
} from './run_dir';
import { CheckpointError, listCheckpoints, verifyCheckpoint } from './checkpoint';
import { validateRunState } from './run_state';
import { streamTeacherScores, type StreamResult } from './score_stream';
import { fitFusion, fusionNotice, withFusion } from './fusion';
import { evaluateModelSharded } from './scoring';
import {
  checkFits,
  defaultTokenizer,
  initStudent,
  initTeacher,
  loadTeacher,
  openData,
  checkInputs,
  resolveLayerMap,
  teacherDir,
} from './setup';
import { runOptimizer, trainStepAcross, type MicroBatch } from './step';
import { requireScores, scoresFromFile, teacherScores, type ScoreTable } from './teacher_cache';

/** A step's log line; skipped: the step's loss or gradient was not finite and made no update (train.nonFinite 'skip'). */
type SkippableStep = StepLog & { skipped?: boolean };

// The run's records, where the CLI imports them from.
export type { EvalLog, RunKind, RunLog, RunResult, StepLog } from './run_dir';

export type ProgressEvent =
  | {
      type: 'start';
      run: RunKind;
      step: number;
      steps: number;
      resumedFrom: string | null;
      trainQueries: number;
      parameters: number;
      backend: string;
      /** the ranks taking the steps together (1: one process) */
      worldSize: number;
    }
  | { type: 'teacherScores'; done: number; total: number }
  | { type: 'teacherScoresReady'; file: string; computed: boolean; pairs: number }
  | ({ type: 'step'; run: RunKind; steps: number; stepsPerSecond: number; etaSeconds: number } & StepLog)
  | ({ type: 'eval'; run: RunKind } & EvalLog)
  | { type: 'checkpoint'; run: RunKind; step: number; dir: string }
  /** something the run worked around: a corrupt checkpoint skipped, a teacher-score cache recomputed, a step skipped */
  | { type: 'notice'; message: string }
  | { type: 'done'; run: RunKind; step: number; modelDir: string; skippedSteps: number }
  /** a phase before training: building the passage store */
  | TaskEvent;

export interface RunOptions {
  /** continue from the output dir's latest checkpoint (a fresh start if there is none) */
  resume?: boolean;
  /** called on every step, evaluation and checkpoint (a CLI prints steps/s, ETA and the loss parts) */
  onProgress?: (event: ProgressEvent) => void;
  /** the ranks that take this run's steps together (default: getWorld(), one process unless the CLI joined ranks) */
  world?: World;
}

/** What differs between a teacher run and a student run; the loop does the rest. */
interface Job {
  kind: RunKind;
  config: { output: string; data: TeacherRunConfig['data']; train: TrainConfig };
  coll: RankingCollection;
  encoder: PairEncoder;
  /** the trained model (disposed by the loop) */
  model: CrossEncoder;
  /** the loss, with its own trained variables (disposed by the loop) */
  objective: Objective;
  /** malformed rows skipped (data.skipBadRows), reported and written into result.json */
  badRows: BadRows;
}

/** Trains a teacher cross-encoder on hard labels (config.loss: bce, ranknet, hinge, listwiseCE). */
export async function trainTeacher(config: TeacherRunConfig, options: RunOptions = {}): Promise<RunResult> {
  const world = options.world ?? getWorld();
  return withWriterLock(world, config.output, async () => {
    const out = await decideOnRankZero(world, () => outputState(config, options.resume ?? false));
    if (out.kind === 'done') return out.result;
    const { coll, encoder, badRows } = await openData(config, undefined, {
      bm25Text: config.model.bm25Text,
      bm25Score: config.model.bm25Score,
      onProgress: options.onProgress,
    });
    const model = initTeacher(config);
    try {
      checkInputs(model, encoder, 'model');
    } catch (e) {
      model.dispose();
      throw e;
    }
    const job: Job = {
      kind: 'teacher',
      config,
      coll,
      encoder,
      badRows,
      model,
      objective: new TeacherObjective(model, config.loss),
    };
    return runJob(job, config, options, out);
  });
}

/**
 * The teacher's cached scores of every training pair a student run can draw (computed and written
 * on first use; a CLI can call this on its own to fill the cache before the student runs).
 */
export async function prepareTeacherScores(
  config: StudentRunConfig,
  options: RunOptions = {},
  opened?: { coll: RankingCollection; encoder: PairEncoder; teacher: CrossEncoder },
): Promise<{ scores: ScoreTable; file: string; computed: boolean }> {
  if (config.teacher.scores != null) {
    const o = opened ?? (await openData(config, undefined, { onProgress: options.onProgress }));
    const badRows = 'badRows' in o ? (o.badRows as BadRows) : new BadRows(config.data.skipBadRows ?? false);
    return readScoreFile(config, options, o.coll, badRows);
  }
  let o: { coll: RankingCollection; encoder: PairEncoder; teacher: CrossEncoder };
  if (opened) o = opened;
  else {
    const own = await openWithTeacher(config, options);
    // A run passing `opened` reports its skipped rows itself.
    for (const message of own.badRows.describe()) notify(options, message);
    o = own;
  }
  try {
    const pairs = trainingPairs(o.coll, config.data.trainQueries);
    const world = options.world ?? getWorld();
    // One writer per cache dir (rank 0 of a run's ranks, which score their shares together); a
    // second run over the same teacher waits, then reads what the first wrote.
    const result = await withWriterLock(
      world,
      config.teacher.cacheDir ?? teacherDir(config),
      () =>
        teacherScores(o.teacher, teacherDir(config), o.coll, o.encoder, pairs, {
          cacheDir: config.teacher.cacheDir,
          scoreBatch: config.train.scoreBatch,
          onProgress: (done, total) => options.onProgress?.({ type: 'teacherScores', done, total }),
          onNotice: (message) => notify(options, message),
          world,
        }),
      { wait: true },
    );
    options.onProgress?.({
      type: 'teacherScoresReady',
      file: result.file,
      computed: result.computed,
      pairs: result.scores.size,
    });
    return result;
  } finally {
    if (!opened) o.teacher.dispose();
  }
}

/**
 * `teacher score --out`: the teacher's scores of the pairs the run draws in its train.steps steps
 * (or `steps`), streamed to `out` in `qid pid score` rows and resumable after a kill
 * (score_stream.ts); a run with teacher.scores: `out` and the same data and train settings reads them.
 */
export async function streamRunTeacherScores(
  config: StudentRunConfig,
  out: string,
  options: RunOptions & { steps?: number } = {},
): Promise<StreamResult & { badRows?: Record<string, number> }> {
  const o = await openWithTeacher(config, options);
  try {
    for (const message of o.badRows.describe()) notify(options, message);
    const world = options.world ?? getWorld();
    const r = await withWriterLock(world, path.dirname(path.resolve(out)), () =>
      streamTeacherScores(config, { ...o, teacherDir: teacherDir(config) }, path.resolve(out), {
        steps: options.steps,
        onProgress: (done, total) => options.onProgress?.({ type: 'teacherScores', done, total }),
        onNotice: (message) => notify(options, message),
        onTask: options.onProgress,
        world,
      }),
    );
    return o.badRows.total > 0 ? { ...r, badRows: o.badRows.summary() } : r;
  } finally {
    o.teacher.dispose();
  }
}

// teacher.scores: the file's scores, checked to cover every pair the student trains on, and the
// collection the student trains on (a triples file's queries and passages: scoresFromFile). A
// `qid pid score` file must score the pairs the run's sampler draws in its train.steps steps (what
// `teacher score --out` writes); a triples file scores every pair of its groups by construction.
async function readScoreFile(
  config: StudentRunConfig,
  options: RunOptions,
  coll: RankingCollection,
  badRows: BadRows,
): Promise<{ scores: ScoreTable; file: string; computed: boolean; coll: RankingCollection }> {
  const file = config.teacher.scores!;
  const read = await scoresFromFile(file, coll, badRows, {
    onProgress: options.onProgress,
    notice: (message) => notify(options, message),
  });
  // A triples file's groups hold only its own pairs; a pairs file must score every pair drawn.
  if (read.format === 'pairs')
    requireScores(
      read.scores,
      drawnPairStream(
        read.coll,
        { ...config.data, negatives: negativeCount(config.data.negatives) },
        config.train,
        config.train.steps,
        options.onProgress,
      ),
      file,
    );
  options.onProgress?.({ type: 'teacherScoresReady', file, computed: false, pairs: read.scores.size });
  return { scores: read.scores, file, computed: false, coll: read.coll };
}

// A distillation from teacher.scores: no teacher model; the run tokenizes with bert-base-uncased's tokenizer.
async function distillFromScores(config: StudentRunConfig, options: RunOptions, out: OutputState): Promise<RunResult> {
  const tokenizer = defaultTokenizer();
  const student = initStudent(config, null, tokenizer);
  let opened: { coll: RankingCollection; encoder: PairEncoder; badRows: BadRows };
  let scores: ScoreTable;
  try {
    checkFits(student, config.data.maxLength, 'student', tokenizer.vocabSize);
    const data = await openData(config, tokenizer, {
      bm25Text: student.config.bm25Text,
      bm25Score: student.config.bm25Score,
      onProgress: options.onProgress,
    });
    const read = await readScoreFile(config, options, data.coll, data.badRows);
    opened = { coll: read.coll, encoder: data.encoder, badRows: data.badRows };
    scores = read.scores;
  } catch (e) {
    student.dispose();
    throw e;
  }
  const objective = new StudentObjective(student, null, config.loss, scores, [], config.train.seed);
  return runJob({ kind: 'student', config, ...opened, model: student, objective }, config, options, out);
}

// The teacher and the data encoded with the run's tokenizer (the teacher's, when from a Hugging Face dir).
async function openWithTeacher(
  config: StudentRunConfig,
  options: RunOptions,
): Promise<{ coll: RankingCollection; encoder: PairEncoder; badRows: BadRows; teacher: CrossEncoder }> {
  const loaded = loadTeacher(config, (message) => notify(options, message));
  try {
    const data = await openData(config, loaded.tokenizer, {
      ...inputFormOf(loaded.model.config),
      onProgress: options.onProgress,
    });
    return { ...data, teacher: loaded.model };
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
}

/** Distils the teacher at config.teacher.checkpoint (or .huggingface) into a student with config.loss's objective. */
export async function distill(config: StudentRunConfig, options: RunOptions = {}): Promise<RunResult> {
  const world = options.world ?? getWorld();
  return withWriterLock(world, config.output, () => distillLocked(config, options, world));
}

async function distillLocked(config: StudentRunConfig, options: RunOptions, world: World): Promise<RunResult> {
  const out = await decideOnRankZero(world, () => outputState(config, options.resume ?? false));
  if (out.kind === 'done') return out.result;
  if (config.teacher.scores != null) return distillFromScores(config, options, out);
  const loss = config.loss;
  const { model: teacher, tokenizer } = loadTeacher(config, (message) => notify(options, message));
  const wantScores = loss.kl > 0 || loss.marginMSE > 0 || loss.scoreMSE > 0;
  const wantHidden = loss.hiddenMSE > 0;
  const wantAttention = loss.attentionMSE > 0;
  const wantFeatures = wantHidden || loss.embeddingMSE > 0 || wantAttention;
  let scores: ScoreTable | null = null;
  let layerMap: number[] = [];
  let student: CrossEncoder | null = null;
  let opened: Awaited<ReturnType<typeof openData>>;
  try {
    // Models and their fit first: a config that cannot run fails before the data is read.
    checkFits(teacher, config.data.maxLength, 'teacher', tokenizer.vocabSize);
    student = initStudent(config, teacher, tokenizer);
    checkFits(student, config.data.maxLength, 'student', tokenizer.vocabSize);
    if (wantHidden || wantAttention) layerMap = resolveLayerMap(loss, student.config.layers, teacher.config.layers);
    if (wantAttention && student.config.heads !== teacher.config.heads)
      throw new Error(
        `loss.attentionMSE: the student has ${student.config.heads} attention heads, the teacher ${teacher.config.heads}; attention scores compare head by head`,
      );
    opened = await openData(config, tokenizer, {
      bm25Text: teacher.config.bm25Text,
      bm25Score: teacher.config.bm25Score || student.config.bm25Score,
      wordVectorScore: teacher.config.wordVectorScore || student.config.wordVectorScore,
      onProgress: options.onProgress,
    });
    checkInputs(student, opened.encoder, 'student');
    if (wantScores) scores = (await prepareTeacherScores(config, options, { ...opened, teacher })).scores;
  } catch (e) {
    teacher.dispose();
    student?.dispose();
    throw e;
  }
  if (!wantFeatures) teacher.dispose(); // its scores are cached; the weights are not needed any more
  const objective = new StudentObjective(
    student,
    wantFeatures ? teacher : null,
    loss,
    scores,
    layerMap,
    config.train.seed,
  );
  return runJob({ kind: 'student', config, ...opened, model: student, objective }, config, options, out);
}

// ---------------------------------------------------------------------------------------------
// The loop (the output dir is locked by the caller)

// Notices go to the run's progress handler, or to stderr when it has none: never dropped.
export function notify(options: RunOptions, message: string): void {
  if (options.onProgress) options.onProgress({ type: 'notice', message });
  else console.warn(`fused-distill: ${message}`);
}

/**
 * A run's step bookkeeping, shared by the training loops (train, pretrain): each step goes into the
 * log and out as progress (steps/s and ETA since the loop began). A step that made no update (a NaN
 * or Inf loss or gradient) stops the run, naming `what()` went non-finite (train.nonFinite 'stop', the
 * default), or is marked skipped and counted ('skip').
 */
export class StepRecorder {
  /** skipped steps so far, those of a resumed log included */
  skipped: number;
  private readonly began = Date.now();

  constructor(
    private readonly run: {
      output: string;
      kind: RunKind;
      train: { steps: number; nonFinite?: 'stop' | 'skip' };
      log: RunLog;
      start: number;
      options: RunOptions;
    },
  ) {
    this.skipped = run.log.steps.filter((s) => (s as SkippableStep).skipped).length;
  }

  record(entry: StepLog, applied: boolean, what: () => string): void {
    const { output, kind, train, log, start, options } = this.run;
    const logged: SkippableStep = entry;
    if (!applied) {
      const message = `${output}: step ${entry.step}: ${what()}`;
      if ((train.nonFinite ?? 'stop') === 'stop')
        throw new Error(`${message}; stopped (train.nonFinite 'skip' skips such steps)`);
      logged.skipped = true;
      this.skipped += 1;
      notify(options, `${message}; step skipped (${this.skipped} so far)`);
    }
    log.steps.push(logged);
    const rate = (entry.step - start) / Math.max(1e-3, (Date.now() - this.began) / 1000);
    options.onProgress?.({
      type: 'step',
      run: kind,
      steps: train.steps,
      stepsPerSecond: rate,
      etaSeconds: (train.steps - entry.step) / rate,
      ...logged,
    });
  }
}

/**
 * Restores the newest intact checkpoint under output/checkpoints: one that fails its checksums,
 * cannot be read, or holds an invalid run state is skipped with a notice naming it and why, and the
 * next older one is tried. None intact is an error naming each. A checkpoint of another config is
 * an error at once (an older one of the same run would be too).
 */
export function restoreNewestIntact(
  output: string,
  trained: Trained,
  configHash: string,
  totalSteps: number,
  sampler: Pick<GroupSampler, 'restore'>,
  options: RunOptions,
): { dir: string; state: RunState } {
  const problems: string[] = [];
  for (const dir of listCheckpoints(path.join(output, 'checkpoints')).reverse()) {
    try {
      if (!verifyCheckpoint(dir))
        notify(
          options,
          `${dir}: has no checksums (written before checkpoints had them); read without an integrity check`,
        );
      const raw = restoreRun(dir, trained, configHash);
      const state = validateRunState(raw, dir, totalSteps);
      try {
        sampler.restore(state.sampler);
      } catch (e) {
        throw new CheckpointError(dir, `${dir}/state.json: ${(e as Error).message}`);
      }
      return { dir, state };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      problems.push((e as Error).message);
      notify(options, `skipping checkpoint ${dir}: ${(e as Error).message}`);
    }
  }
  throw new Error(`${output}: no intact checkpoint to resume from:\n  ${problems.join('\n  ')}`);
}

/**
 * The dropout seed of micro-batch `leaf` of step `step` (1-based) in a run seeded `seed`: a 32-bit
 * mix of the three, so the masks depend on where the micro-batch is in the run, not on which rank
 * or process computes it (a resumed or data-parallel run draws the same masks).
 */
export function dropoutSeed(seed: number, step: number, leaf: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ step, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ leaf, 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * The micro-batches of a step that this rank takes: a step's `batch` groups make
 * M = ceil(batch / microBatch) micro-batches, and rank r of N takes the M / N from first = r·M/N.
 * M must be a multiple of N (a config error naming both numbers otherwise): each rank then holds a
 * whole share, and the sum over the ranks is the one-process sum (tree_sum.ts).
 */
export function rankShare(
  train: Pick<TrainConfig, 'batch' | 'microBatch'>,
  world: Pick<World, 'rank' | 'size'>,
): { micro: number; first: number; count: number } {
  const micro = Math.min(train.microBatch ?? train.batch, train.batch);
  const m = Math.ceil(train.batch / micro);
  if (m % world.size !== 0)
    throw new ConfigError(`the run config (${world.size} ranks)`, [
      `train.batch ${train.batch} in micro-batches of train.microBatch ${micro} makes ${m} micro-batch${m === 1 ? '' : 'es'} a step, which ${world.size} ranks cannot share equally: make the count a multiple of ${world.size} (e.g. train.microBatch ${Math.max(1, Math.floor(train.batch / world.size))})`,
    ]);
  const count = m / world.size;
  return { micro, first: world.rank * count, count };
}

async function runJob(
  job: Job,
  fullConfig: TeacherRunConfig | StudentRunConfig,
  options: RunOptions,
  out: OutputState,
): Promise<RunResult> {
  const { output, data, train } = job.config;
  const { model, objective } = job;
  const emit = options.onProgress ?? (() => undefined);
  const world = options.world ?? getWorld();
  const configHash = hashConfig(fullConfig);
  const params = new Map<string, tf.Variable>([...model.params, ...objective.extra]);
  const optimizer = runOptimizer(params, train);
  const trained = { model, extra: objective.extra, optimizer };
  // train.precision: the run's matrix products in that precision, the flag's value restored after.
  const savedPrecision = tf.env().get(MATMUL_PRECISION_FLAG);
  try {
    if (train.precision) {
      const note = setMatmulPrecision(train.precision, tf.getBackend());
      if (note) emit({ type: 'notice', message: note });
    }
    const previous = out.kind === 'resume' ? out.checkpoint : null;
    const negatives = negativeCount(data.negatives);
    const G = 1 + negatives;
    const sampler = runSampler(job.coll, { negatives, trainQueries: data.trainQueries }, train, emit);
    const label = labelFunction(job.coll, data.labels);
    let log: RunLog = { steps: [], evals: [] };
    let start = 0;
    let resumedFrom = previous;
    if (previous) {
      const restored = restoreNewestIntact(output, trained, configHash, train.steps, sampler, options);
      log = restored.state.log;
      start = restored.state.step;
      resumedFrom = restored.dir;
    }
    // Every rank: the same config, data, code and starting point, and rank 0's parameters.
    const share = rankShare(train, world);
    // (only with several ranks: one process has nobody to disagree with, nor a reason to hash its code)
    if (world.size > 1)
      await requireAgreement(world, {
        config: configHash,
        data: job.coll.fingerprint,
        code: codeFingerprint(),
        backend: tf.getBackend(),
        precision: String(tf.env().get(MATMUL_PRECISION_FLAG)),
        resumedAt: start,
        resumedFrom: start > 0 ? path.resolve(resumedFrom!) : null,
      });
    await broadcastVariables(world, params);
    for (const message of job.badRows.describe()) notify(options, message);
    const short = negativesNotice(negativesReport(job.coll, negatives, data.trainQueries, emit), negatives);
    if (short) notify(options, short);
    if (world.rank === 0) await writeRunConfig(output, fullConfig);
    emit({
      type: 'start',
      worldSize: world.size,
      run: job.kind,
      step: start,
      steps: train.steps,
      resumedFrom: start > 0 ? resumedFrom : null,
      trainQueries: sampler.queries,
      parameters: [...params.values()].reduce((n, v) => n + v.size, 0),
      backend: tf.getBackend(),
    });

    const evalQueries = data.evalQueries;
    // Each rank scores its share of the queries; every rank gets the same metrics.
    const evaluate = async (step: number) => {
      if (evalQueries === 0) return;
      const m = await evaluateModelSharded(model, job.encoder, job.coll, data.evalSplit, {
        queries: evalQueries,
        scoreBatch: train.scoreBatch,
        source: `${output}: evaluation at step ${step} on ${data.evalSplit}`,
        world,
      });
      const entry: EvalLog = { step, split: data.evalSplit, ...m };
      log.evals.push(entry);
      emit({ type: 'eval', run: job.kind, ...entry });
    };

    const recorder = new StepRecorder({ output, kind: job.kind, train, log, start, options });
    const { micro, first, count } = share;
    for (let step = start + 1; step <= train.steps; step++) {
      const groups = sampler.next();
      // This rank's micro-batches of `micro` groups (all of them in one process), built one at a time
      // as the step reaches them.
      const microBatches = function* (): Generator<MicroBatch> {
        for (let i = first; i < first + count; i++) {
          const chunk = groups.slice(i * micro, (i + 1) * micro);
          const batch = makeBatch(chunk, job.encoder, label, G);
          if (train.dropout) batch.dropout = { rate: train.dropout, seed: dropoutSeed(train.seed, step, i) };
          const signals = objective.signals(batch);
          yield {
            share: chunk.length / groups.length,
            loss: () => objective.loss(batch, signals),
            dispose: () => {
              tf.dispose(Object.values(signals));
              disposeBatch(batch);
            },
          };
        }
      };
      // One turn of the event loop a step: without it a run with no checkpoint or evaluation to await
      // never lets a SIGINT / SIGTERM handler run (the process would go on to its last step).
      await new Promise((resolve) => setImmediate(resolve));
      const { loss, parts, lr, gradNorm, applied } = await trainStepAcross(
        world,
        microBatches(),
        params,
        optimizer,
        first,
      );
      // A non-finite step names what went non-finite and on which queries.
      recorder.record({ step, lr, gradNorm, loss, parts }, applied, () => {
        const bad = Object.entries(parts)
          .filter(([, v]) => !Number.isFinite(v))
          .map(([k, v]) => `${k} ${v}`);
        const what = !Number.isFinite(loss)
          ? `loss ${loss}${bad.length ? ` (${bad.join(', ')})` : ''}`
          : `gradient norm ${gradNorm} (loss ${loss})`;
        return `${what} on queries ${groups.map((g) => g.qid).join(', ')}`;
      });

      if ((train.evalEvery > 0 && step % train.evalEvery === 0) || step === train.steps) await evaluate(step);
      if (train.checkpointEvery > 0 && step % train.checkpointEvery === 0 && step < train.steps) {
        // Rank 0 writes; the others wait for it (a rank that went its own way is found here).
        await requireEqualVariables(world, params, `${output}: step ${step}`);
        if (world.rank === 0) {
          const dir = await writeRunCheckpoint(
            output,
            trained,
            configHash,
            { step, sampler: sampler.state(), log },
            train.keepCheckpoints,
          );
          emit({ type: 'checkpoint', run: job.kind, step, dir });
        }
        await world.barrier();
      }
    }

    await requireEqualVariables(world, params, `${output}: the last step`);
    // A teacher's fusion (config.fusion): its weights chosen on the evaluation split, the saved model fused.
    const features = job.kind === 'teacher' ? (fullConfig as TeacherRunConfig).fusion : undefined;
    const fusion = features
      ? await fitFusion(model, job.encoder, job.coll, data.evalSplit, features, { scoreBatch: train.scoreBatch, world })
      : undefined;
    if (fusion) emit({ type: 'notice', message: fusionNotice(fusion) });
    const saved = fusion ? withFusion(model, fusion) : model;
    const summary = {
      steps: train.steps,
      configHash,
      run: job.kind,
      badRows: job.badRows.total > 0 ? job.badRows.summary() : undefined,
      worldSize: world.size,
      fusion,
    };
    let result: RunResult;
    try {
      result = world.rank === 0 ? await finishRun(output, saved, log, summary) : unwrittenResult(output, log, summary);
    } finally {
      if (saved !== model) saved.dispose();
    }
    await world.barrier();
    emit({ type: 'done', run: job.kind, step: train.steps, modelDir: result.modelDir, skippedSteps: recorder.skipped });
    return result;
  } finally {
    tf.env().set(MATMUL_PRECISION_FLAG, savedPrecision);
    optimizer.dispose();
    objective.dispose();
    model.dispose();
  }
}
