// Teacher training on hard labels, and student distillation with any mix of the objective grid:
// hard labels (BCE, RankNet, hinge, listwise CE), soft labels (KL with temperature, Margin-MSE,
// score MSE) and intermediate layers (hidden-state, attention and embedding MSE). All
// prediction-layer terms go through ONE rankingObjectiveParts call per step (per micro-batch): one
// fused pass gives the weighted sum, its gradient, and each term for the log. Feature terms go
// through hiddenMSE / attentionMSE, one call each over all mapped layers.
//
// A run writes into its output dir: config.json, checkpoints/step-<n>/ (every checkpointEvery
// steps), and at the end model/ (the trained weights), log.jsonl (one line per step and per
// evaluation) and result.json (written last: its presence means the run is complete). With
// `resume`, a run continues from its latest checkpoint and reaches the same weights, bit for bit, as
// an uninterrupted run: batches, dropout-free forward passes, fused kernels and the optimizer are
// deterministic, and a checkpoint holds all of their state.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { writeAtomic } from '../data/atomic';
import { Mulberry32, normalArray } from '../data/random';
import { loadRankingCollection, type RankingCollection } from '../data/ranking_collection';
import { BertTokenizer } from '../data/tokenizer';
import { hiddenMSE, attentionMSE } from '../losses/features';
import { rankingObjectiveParts } from '../losses/objective';
import type { Weights } from '../losses/score_kernel';
import { importSafetensors, loadCrossEncoder, saveCrossEncoder } from '../models/checkpoint';
import { CrossEncoder, type CrossEncoderConfig } from '../models/cross_encoder';
import { PairEncoder } from '../models/pair_encoder';
import type { TermName } from '../native';
import {
  GroupSampler, disposeBatch, labelFunction, makeBatch, trainingPairs, type SamplerState, type TrainBatch,
} from './batches';
import { latestCheckpoint, readCheckpoint, renameDirInto, writeCheckpoint } from './checkpoint';
import type { ModelSizes, StudentLoss, StudentRunConfig, TeacherLoss, TeacherRunConfig, TrainConfig } from './config';
import { AdamW } from './optimizer';
import { evaluateModel, type EvalMetrics } from './scoring';
import { pairKey, teacherScores, type ScoreTable } from './teacher_cache';

export type RunKind = 'teacher' | 'student';

/** Config names of the prediction-layer terms -> the fused objective's term names. */
export const PREDICTION_TERMS = {
  bce: 'pointwiseBCE',
  ranknet: 'pairwiseRankNet',
  hinge: 'pairwiseHinge',
  listwiseCE: 'listwiseSoftmaxCE',
  kl: 'distillKL',
  marginMSE: 'marginMSE',
  scoreMSE: 'scoreMSE',
} as const satisfies Record<string, TermName>;
type PredictionTerm = keyof typeof PREDICTION_TERMS;

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

export type ProgressEvent =
  | { type: 'start'; run: RunKind; step: number; steps: number; resumedFrom: string | null; trainQueries: number; parameters: number; backend: string }
  | { type: 'teacherScores'; done: number; total: number }
  | { type: 'teacherScoresReady'; file: string; computed: boolean; pairs: number }
  | ({ type: 'step'; run: RunKind; steps: number; stepsPerSecond: number; etaSeconds: number } & StepLog)
  | ({ type: 'eval'; run: RunKind } & EvalLog)
  | { type: 'checkpoint'; run: RunKind; step: number; dir: string }
  | { type: 'done'; run: RunKind; step: number; modelDir: string };

export interface RunOptions {
  /** continue from the output dir's latest checkpoint (a fresh start if there is none) */
  resume?: boolean;
  /** called on every step, evaluation and checkpoint (a CLI prints steps/s, ETA and the loss parts) */
  onProgress?: (event: ProgressEvent) => void;
}

export interface RunResult {
  output: string;
  /** the trained model (saveCrossEncoder's layout) */
  modelDir: string;
  steps: number;
  log: RunLog;
  /** the last evaluation (null when evaluation is off) */
  final: EvalLog | null;
}

interface RunState {
  format: string;
  configHash: string;
  step: number;
  sampler: SamplerState;
  log: RunLog;
}

/** What differs between a teacher run and a student run; the loop does the rest. */
interface Job {
  kind: RunKind;
  config: { output: string; data: TeacherRunConfig['data']; train: TrainConfig };
  coll: RankingCollection;
  encoder: PairEncoder;
  model: CrossEncoder;
  /** other trained variables (projections), checkpointed with the model */
  extra: Map<string, tf.Variable>;
  /** outside the gradient tape: this step's teacher signals (disposed after the step) */
  signals(batch: TrainBatch): Signals;
  /** inside the tape: the total loss and each weighted term */
  loss(batch: TrainBatch, signals: Signals): { total: tf.Scalar; parts: Record<string, tf.Scalar> };
  dispose(): void;
}

interface Signals {
  scores?: tf.Tensor2D;
  hidden?: tf.Tensor;
  embedding?: tf.Tensor;
  attention?: tf.Tensor;
}

const STATE_FORMAT = 'fused-distill-train-state';
// tfjs variable names are global: number the projections.
let projections = 0;

// Keys sorted: the same config hashes the same however it was written or re-parsed.
const canonical = (x: unknown): unknown =>
  Array.isArray(x) ? x.map(canonical) : x && typeof x === 'object' ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, canonical((x as Record<string, unknown>)[k])])) : x;
const hashConfig = (config: object) => createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex');

function modelConfig(sizes: ModelSizes): CrossEncoderConfig {
  return { ...sizes };
}

/** Weights for the fused objective from a loss config (config names -> term names). */
export function objectiveWeights(loss: Partial<Record<PredictionTerm, number>>): Weights {
  const w: Weights = {};
  for (const [name, term] of Object.entries(PREDICTION_TERMS)) {
    const v = loss[name as PredictionTerm] ?? 0;
    if (v > 0) w[term] = v;
  }
  return w;
}

/** The prediction-layer terms: ONE fused call; parts keyed by config name (weight > 0 only). */
export function predictionLoss(
  s: tf.Tensor2D, t: tf.Tensor2D | null, batch: TrainBatch, weights: Weights, loss: { temperature?: number; sigma: number; margin: number },
): { total: tf.Scalar; parts: Record<string, tf.Scalar> } {
  const r = rankingObjectiveParts(s, t, batch.labels, { weights, temperature: loss.temperature ?? 1, sigma: loss.sigma, margin: loss.margin, mask: batch.mask });
  const parts: Record<string, tf.Scalar> = {};
  for (const [name, term] of Object.entries(PREDICTION_TERMS)) if (weights[term] != null) parts[name] = r.parts[term];
  return { total: r.total, parts };
}

function seededNormal(shape: [number, number], std: number, seed: number): tf.Tensor {
  const random = new Mulberry32(seed);
  return tf.tensor2d(normalArray(shape[0] * shape[1], std, () => random.next()), shape);
}

// ---------------------------------------------------------------------------------------------
// Teacher training

// The tokenizer is built once per process (its 30k-entry vocabulary takes a while), then shared.
let tokenizer: BertTokenizer | null = null;

async function openCommon(config: { data: TeacherRunConfig['data'] }) {
  const coll = await loadRankingCollection(config.data.collection);
  tokenizer ??= new BertTokenizer();
  const encoder = new PairEncoder(tokenizer, coll, config.data.maxLength);
  return { coll, encoder };
}

function checkFits(model: CrossEncoder, maxLength: number, what: string): void {
  if (model.config.maxPosition < maxLength) throw new Error(`${what}: maxPosition ${model.config.maxPosition} < data.maxLength ${maxLength}`);
  if (model.config.vocabSize < 30522) throw new Error(`${what}: vocabSize ${model.config.vocabSize} does not cover the tokenizer's 30522 ids`);
}

/** Trains a teacher cross-encoder on hard labels (config.loss: bce, ranknet, hinge, listwiseCE). */
export async function trainTeacher(config: TeacherRunConfig, options: RunOptions = {}): Promise<RunResult> {
  const out = outputState(config, options);
  if (out.kind === 'done') return out.result;
  const { coll, encoder } = await openCommon(config);
  let model: CrossEncoder;
  if (config.init?.checkpoint) model = loadCrossEncoder(config.init.checkpoint);
  else if (config.init?.safetensors) model = importSafetensors(config.init.safetensors, modelConfig(config.model), config.train.seed).model;
  else model = new CrossEncoder(modelConfig(config.model), config.train.seed);
  try {
    checkFits(model, config.data.maxLength, 'model');
  } catch (e) {
    model.dispose();
    throw e;
  }
  const weights = objectiveWeights(config.loss as TeacherLoss);
  const job: Job = {
    kind: 'teacher',
    config,
    coll,
    encoder,
    model,
    extra: new Map(),
    signals: () => ({}),
    loss: (batch) => {
      const s = tf.reshape(model.forward(batch.inputs).scores, [batch.B, batch.G]) as tf.Tensor2D;
      return predictionLoss(s, null, batch, weights, config.loss);
    },
    dispose: () => model.dispose(),
  };
  return runJob(job, config, options, out);
}

// ---------------------------------------------------------------------------------------------
// Student distillation

/** student layer (1-based) -> teacher layer (1-based) */
export function resolveLayerMap(loss: Pick<StudentLoss, 'layerMap'>, studentLayers: number, teacherLayers: number): number[] {
  const map = loss.layerMap ?? Array.from({ length: studentLayers }, (_, i) => Math.round(((i + 1) * teacherLayers) / studentLayers));
  if (map.length !== studentLayers)
    throw new Error(`loss.layerMap: has ${map.length} entries, the student has ${studentLayers} layers (entry i is the teacher layer student layer i+1 learns from)`);
  map.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 1 || t > teacherLayers) throw new Error(`loss.layerMap[${i}]: teacher layer ${t} is not in 1..${teacherLayers}`);
  });
  return map;
}

function initStudent(config: StudentRunConfig, teacher: CrossEncoder): CrossEncoder {
  const s = config.student;
  switch (s.init) {
    case 'random':
      return new CrossEncoder(modelConfig(s.model), config.train.seed);
    case 'teacherLayers': {
      const k = teacher.config.layers / s.model.layers;
      if (!Number.isInteger(k)) throw new Error(`student.model.layers: ${s.model.layers} must divide the teacher's ${teacher.config.layers} layers for init teacherLayers`);
      return teacher.studentFromLayers(k);
    }
    case 'checkpoint':
      return loadCrossEncoder(s.path!);
    case 'safetensors':
      return importSafetensors(s.path!, modelConfig(s.model), config.train.seed).model;
  }
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
  const o = opened ?? { ...(await openCommon(config)), teacher: loadCrossEncoder(config.teacher.checkpoint) };
  try {
    const pairs = trainingPairs(o.coll, config.data.trainQueries);
    const result = await teacherScores(o.teacher, config.teacher.checkpoint, o.coll, o.encoder, pairs, {
      cacheDir: config.teacher.cacheDir,
      scoreBatch: config.train.scoreBatch,
      onProgress: (done, total) => options.onProgress?.({ type: 'teacherScores', done, total }),
    });
    options.onProgress?.({ type: 'teacherScoresReady', file: result.file, computed: result.computed, pairs: result.scores.size });
    return result;
  } finally {
    if (!opened) o.teacher.dispose();
  }
}

/** Distils the teacher at config.teacher.checkpoint into a student with config.loss's objective. */
export async function distill(config: StudentRunConfig, options: RunOptions = {}): Promise<RunResult> {
  const out = outputState(config, options);
  if (out.kind === 'done') return out.result;
  const loss = config.loss;
  const teacher = loadCrossEncoder(config.teacher.checkpoint);
  const wantScores = loss.kl > 0 || loss.marginMSE > 0 || loss.scoreMSE > 0;
  const wantHidden = loss.hiddenMSE > 0;
  const wantEmbedding = loss.embeddingMSE > 0;
  const wantAttention = loss.attentionMSE > 0;
  const wantFeatures = wantHidden || wantEmbedding || wantAttention;
  let scores: ScoreTable | null = null;
  let layerMap: number[] = [];
  let student: CrossEncoder | null = null;
  let opened: Awaited<ReturnType<typeof openCommon>>;
  try {
    // Models and their fit first: a config that cannot run fails before the data is read.
    checkFits(teacher, config.data.maxLength, 'teacher');
    student = initStudent(config, teacher);
    checkFits(student, config.data.maxLength, 'student');
    if (wantHidden || wantAttention) layerMap = resolveLayerMap(loss, student.config.layers, teacher.config.layers);
    if (wantAttention && student.config.heads !== teacher.config.heads)
      throw new Error(`loss.attentionMSE: the student has ${student.config.heads} attention heads, the teacher ${teacher.config.heads}; attention scores compare head by head`);
    opened = await openCommon(config);
    if (wantScores) scores = (await prepareTeacherScores(config, options, { ...opened, teacher })).scores;
  } catch (e) {
    teacher.dispose();
    student?.dispose();
    throw e;
  }
  if (!wantFeatures) teacher.dispose(); // its scores are cached; the weights are not needed any more
  return runStudent(config, options, out, { ...opened, teacher, student, scores, layerMap });
}

function runStudent(
  config: StudentRunConfig,
  options: RunOptions,
  out: OutputState,
  o: { coll: RankingCollection; encoder: PairEncoder; teacher: CrossEncoder; student: CrossEncoder; scores: ScoreTable | null; layerMap: number[] },
): Promise<RunResult> {
  const { coll, encoder, teacher, student, scores, layerMap } = o;
  const loss = config.loss;
  const weights = objectiveWeights(loss);
  const wantHidden = loss.hiddenMSE > 0;
  const wantEmbedding = loss.embeddingMSE > 0;
  const wantAttention = loss.attentionMSE > 0;
  const wantFeatures = wantHidden || wantEmbedding || wantAttention;

  // Learned projections student width -> teacher width (TinyBERT's W_h, W_e), when the widths differ:
  // one shared by the mapped layers, one for the embeddings. Seeded normal(0, 1/sqrt(Hs)) keeps the
  // projected states at the scale of LayerNorm outputs.
  const Hs = student.config.hidden;
  const Ht = teacher.config.hidden;
  const extra = new Map<string, tf.Variable>();
  const projection = (name: string, seed: number) => {
    const init = seededNormal([Hs, Ht], 1 / Math.sqrt(Hs), seed);
    const v = tf.variable(init, true, `distill_${projections++}/${name}`);
    init.dispose();
    extra.set(name, v);
    return v;
  };
  const hiddenProj = Hs !== Ht && wantHidden ? projection('projection.hidden.weight', config.train.seed + 2) : null;
  const embeddingProj = Hs !== Ht && wantEmbedding ? projection('projection.embedding.weight', config.train.seed + 3) : null;
  const project = (x: tf.Tensor, w: tf.Variable | null) => {
    if (!w) return x;
    const [n, l] = x.shape;
    return tf.reshape(tf.matMul(tf.reshape(x, [n * l, Hs]), w), [n, l, Ht]);
  };

  const job: Job = {
    kind: 'student',
    config,
    coll,
    encoder,
    model: student,
    extra,
    signals: (batch) => {
      const sig: Signals = {};
      if (scores) {
        const t = new Float32Array(batch.B * batch.G);
        batch.pairs.forEach((p, i) => {
          if (!p) return;
          const v = scores!.get(pairKey(p[0], p[1]));
          if (v == null) throw new Error(`teacher scores: no score for query ${p[0]}, passage ${p[1]}`);
          t[i] = v;
        });
        sig.scores = tf.tensor2d(t, [batch.B, batch.G]);
      }
      if (wantFeatures) {
        // The teacher runs outside the gradient tape: it gets no gradient and costs no backward pass.
        const out = teacher.forward(batch.inputs, { hidden: wantHidden || wantEmbedding, attention: wantAttention });
        if (wantHidden) sig.hidden = tf.stack(layerMap.map((t) => out.hidden![t]));
        if (wantEmbedding) sig.embedding = tf.clone(out.hidden![0]);
        if (wantAttention) sig.attention = tf.concat(layerMap.map((t) => out.attention![t - 1]), 0);
        tf.dispose([out.scores, ...(out.hidden ?? []), ...(out.attention ?? [])]);
      }
      return sig;
    },
    loss: (batch, sig) => {
      const out = student.forward(batch.inputs, { hidden: wantHidden || wantEmbedding, attention: wantAttention });
      const parts: Record<string, tf.Scalar> = {};
      let total: tf.Scalar | null = null;
      const add = (name: string, term: tf.Scalar) => {
        parts[name] = term;
        total = total ? (tf.add(total, term) as tf.Scalar) : term;
      };
      if (Object.keys(weights).length > 0) {
        const s = tf.reshape(out.scores, [batch.B, batch.G]) as tf.Tensor2D;
        const r = predictionLoss(s, sig.scores ?? null, batch, weights, loss);
        total = r.total;
        Object.assign(parts, r.parts);
      }
      if (wantHidden) {
        const hs = tf.stack(layerMap.map((_, i) => project(out.hidden![i + 1], hiddenProj)));
        add('hiddenMSE', tf.mul(hiddenMSE(hs, sig.hidden!, { tokenMask: batch.tokenMask }), loss.hiddenMSE));
      }
      if (wantEmbedding) add('embeddingMSE', tf.mul(hiddenMSE(project(out.hidden![0], embeddingProj), sig.embedding!, { tokenMask: batch.tokenMask }), loss.embeddingMSE));
      if (wantAttention) {
        // All mapped layers in one call: stacked along the batch axis (each layer has as many valid
        // entries, so the mean over all is the mean of the layers' means).
        const as = tf.concat(layerMap.map((_, i) => out.attention![i]), 0);
        const tokenMask = tf.tile(batch.tokenMask, [layerMap.length, 1]);
        add('attentionMSE', tf.mul(attentionMSE(as, sig.attention!, { tokenMask }), loss.attentionMSE));
      }
      return { total: total!, parts };
    },
    dispose: () => {
      student.dispose();
      if (wantFeatures) teacher.dispose();
      for (const v of extra.values()) v.dispose();
    },
  };
  return runJob(job, config, options, out);
}

// ---------------------------------------------------------------------------------------------
// The loop

/** The AdamW of a run's train config (learning-rate schedule over train.steps). */
export function runOptimizer(params: Map<string, tf.Variable>, train: TrainConfig): AdamW {
  return new AdamW(params, {
    lr: train.lr, warmup: train.warmup, totalSteps: train.steps, beta1: train.beta1, beta2: train.beta2, eps: train.eps,
    weightDecay: train.weightDecay, clipNorm: train.clipNorm,
  });
}

/** One micro-batch of a step: its share of the step's groups, its loss (called inside the tape) and its clean-up. */
export interface MicroBatch {
  share: number;
  loss(): { total: tf.Scalar; parts: Record<string, tf.Scalar> };
  dispose(): void;
}

export interface StepResult {
  loss: number;
  /** each weighted term by its config name */
  parts: Record<string, number>;
  lr: number;
  gradNorm: number;
}

/**
 * One optimizer step, as every run takes it: forward + backward of each micro-batch in turn (the
 * tape's memory scales with the groups in one pass), gradients and loss parts summed with weight
 * `share` (the step's loss is the mean of the micro-batches' losses by group count), then one AdamW
 * update of `params`. Reading each micro-batch's loss (dataSync) is a sync point with the device.
 * Exported for the benchmarks (bench/gpu/), which time exactly this.
 */
export function trainStep(microBatches: Iterable<MicroBatch>, params: Map<string, tf.Variable>, optimizer: AdamW): StepResult {
  const varList = [...params.values()];
  const paramOf = new Map([...params].map(([name, v]) => [v.name, name]));
  let grads: Map<string, tf.Tensor> | null = null;
  let loss = 0;
  const parts: Record<string, number> = {};
  for (const mb of microBatches) {
    try {
      const { share } = mb;
      let kept: Record<string, tf.Scalar> = {};
      const { value, grads: g } = tf.variableGrads(() => {
        const { total, parts: p } = mb.loss();
        kept = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.keep(v)]));
        return total;
      }, varList);
      loss += share * value.dataSync()[0];
      for (const [k, v] of Object.entries(kept)) parts[k] = (parts[k] ?? 0) + share * v.dataSync()[0];
      const named = new Map(Object.entries(g).map(([k, t]) => [paramOf.get(k)!, share === 1 ? t : tf.tidy(() => tf.mul(t, share))]));
      if (share !== 1) tf.dispose(Object.values(g));
      if (!grads) grads = named;
      else {
        for (const [k, t] of named) {
          const prev = grads.get(k);
          grads.set(k, prev ? tf.tidy(() => tf.add(prev, t)) : tf.clone(t));
          tf.dispose(prev ? [prev, t] : [t]);
        }
      }
      tf.dispose([value, ...Object.values(kept)]);
    } finally {
      mb.dispose();
    }
  }
  if (!grads) throw new Error('trainStep: no micro-batches');
  try {
    const info = optimizer.apply(grads);
    return { loss, parts, lr: info.lr, gradNorm: info.gradNorm };
  } finally {
    tf.dispose([...grads.values()]);
  }
}

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
    while (e < log.evals.length && log.evals[e].step === s.step) lines.push(JSON.stringify({ type: 'eval', ...log.evals[e++] }));
  }
  for (; e < log.evals.length; e++) lines.push(JSON.stringify({ type: 'eval', ...log.evals[e] }));
  await writeAtomic(file, (w) => w.write(lines.map((l) => `${l}\n`).join('')));
}

type OutputState = { kind: 'fresh' } | { kind: 'resume'; checkpoint: string } | { kind: 'done'; result: RunResult };

/**
 * What the output dir holds, checked before anything is loaded: a finished run (returned again
 * when resuming with the same config), checkpoints (resumed, or an error without `resume`), or
 * nothing of a run.
 */
function outputState(config: TeacherRunConfig | StudentRunConfig, options: RunOptions): OutputState {
  const resultFile = path.join(config.output, 'result.json');
  if (fs.existsSync(resultFile)) {
    const done = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as RunResult & { configHash: string };
    if (options.resume && done.configHash === hashConfig(config)) return { kind: 'done', result: { ...done, log: readLog(path.join(config.output, 'log.jsonl')) } };
    throw new Error(`${config.output}: holds a finished run${options.resume ? ' of another config' : ''}; choose another output dir`);
  }
  const previous = latestCheckpoint(path.join(config.output, 'checkpoints'));
  if (previous && !options.resume) throw new Error(`${config.output}: has checkpoints of an earlier run; resume it or choose another output dir`);
  return previous ? { kind: 'resume', checkpoint: previous } : { kind: 'fresh' };
}

async function runJob(job: Job, fullConfig: TeacherRunConfig | StudentRunConfig, options: RunOptions, out: OutputState): Promise<RunResult> {
  const { output, data, train } = job.config;
  const emit = options.onProgress ?? (() => undefined);
  const configHash = hashConfig(fullConfig);
  const checkpoints = path.join(output, 'checkpoints');
  const modelDir = path.join(output, 'model');
  const resultFile = path.join(output, 'result.json');
  const params = new Map<string, tf.Variable>([...job.model.params, ...job.extra]);
  const optimizer = runOptimizer(params, train);
  try {
    const previous = out.kind === 'resume' ? out.checkpoint : null;
    const G = 1 + data.negatives;
    const sampler = new GroupSampler(job.coll, { negatives: data.negatives, batch: train.batch, seed: train.seed + 1, trainQueries: data.trainQueries });
    const label = labelFunction(job.coll, data.labels);
    let log: RunLog = { steps: [], evals: [] };
    let start = 0;
    if (previous) {
      const state = readCheckpoint<RunState>(previous, { model: job.model, extra: job.extra, optimizer });
      if (state.format !== STATE_FORMAT || state.configHash !== configHash)
        throw new Error(`${previous}: was written by a run with another config; resume with the same config`);
      sampler.restore(state.sampler);
      log = state.log;
      start = state.step;
    }
    fs.mkdirSync(output, { recursive: true });
    await writeAtomic(path.join(output, 'config.json'), (w) => w.write(`${JSON.stringify(fullConfig, null, 2)}\n`));
    emit({
      type: 'start', run: job.kind, step: start, steps: train.steps, resumedFrom: start > 0 ? previous : null, trainQueries: sampler.queries,
      parameters: [...params.values()].reduce((n, v) => n + v.size, 0), backend: tf.getBackend(),
    });

    const evalQueries = data.evalQueries;
    const evaluate = (step: number) => {
      if (evalQueries === 0) return;
      const m = evaluateModel(job.model, job.encoder, job.coll, data.evalSplit, { queries: evalQueries, scoreBatch: train.scoreBatch });
      const entry: EvalLog = { step, split: data.evalSplit, ...m };
      log.evals.push(entry);
      emit({ type: 'eval', run: job.kind, ...entry });
    };

    const began = Date.now();
    const micro = Math.min(train.microBatch ?? train.batch, train.batch);
    for (let step = start + 1; step <= train.steps; step++) {
      const groups = sampler.next();
      // Micro-batches of `micro` groups, built one at a time as trainStep reaches them.
      const microBatches = function* (): Generator<MicroBatch> {
        for (let at = 0; at < groups.length; at += micro) {
          const chunk = groups.slice(at, at + micro);
          const batch = makeBatch(chunk, job.encoder, label, G);
          const signals = job.signals(batch);
          yield {
            share: chunk.length / groups.length,
            loss: () => job.loss(batch, signals),
            dispose: () => {
              tf.dispose(Object.values(signals));
              disposeBatch(batch);
            },
          };
        }
      };
      const { loss, parts, lr, gradNorm } = trainStep(microBatches(), params, optimizer);
      const entry: StepLog = { step, lr, gradNorm, loss, parts };
      log.steps.push(entry);
      const rate = (step - start) / Math.max(1e-3, (Date.now() - began) / 1000);
      emit({ type: 'step', run: job.kind, steps: train.steps, stepsPerSecond: rate, etaSeconds: (train.steps - step) / rate, ...entry });

      if ((train.evalEvery > 0 && step % train.evalEvery === 0) || step === train.steps) evaluate(step);
      if (train.checkpointEvery > 0 && step % train.checkpointEvery === 0 && step < train.steps) {
        const state: RunState = { format: STATE_FORMAT, configHash, step, sampler: sampler.state(), log };
        const dir = await writeCheckpoint(checkpoints, { model: job.model, extra: job.extra, optimizer, state }, train.keepCheckpoints);
        await writeLog(path.join(output, 'log.jsonl'), log);
        emit({ type: 'checkpoint', run: job.kind, step, dir });
      }
    }

    // Final outputs; result.json last.
    const temp = path.join(output, `.tmp-model-${process.pid}`);
    fs.rmSync(temp, { recursive: true, force: true });
    await saveCrossEncoder(job.model, temp);
    renameDirInto(temp, modelDir);
    await writeLog(path.join(output, 'log.jsonl'), log);
    const result: RunResult = { output, modelDir, steps: train.steps, log, final: log.evals.at(-1) ?? null };
    const { log: _log, ...summary } = result;
    await writeAtomic(resultFile, (w) => w.write(`${JSON.stringify({ ...summary, configHash, run: job.kind, backend: tf.getBackend() }, null, 2)}\n`));
    emit({ type: 'done', run: job.kind, step: train.steps, modelDir });
    return result;
  } finally {
    optimizer.dispose();
    job.dispose();
  }
}
