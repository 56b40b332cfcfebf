// Masked-language-model pre-training of a cross-encoder's encoder (BERT's MLM objective, Devlin et
// al., 2019) on a collection's own passages, so a teacher (and students drawn from its layers) starts
// from pre-trained weights instead of a random init: pre-training on the downstream corpus alone
// already helps models trained from scratch (Krishna et al., 2022).
//
// - Data: every passage of data.collection and data.texts tokenized once as `[CLS] passage [SEP]`
//   (token type 0), cut to data.maxLength; a step's train.batch sequences padded to the longest;
//   the passages visited in a seeded shuffled order per epoch (PassageSampler: the same state as the
//   ranking runs' GroupSampler, so checkpoints and their validation are shared).
// - Masking: BERT's. mlmProbability of the non-special tokens are predicted; of those 80% become
//   [MASK], 10% a random id, 10% stay. The draws of step n come from a PRNG seeded with (seed, n),
//   so a resumed run masks exactly as an uninterrupted one.
// - Head: transformers' BertLMPredictionHead. transform = dense(H, H) + GELU + LayerNorm, the
//   decoder tied to the word embeddings plus a vocabulary bias. Only the masked positions are
//   gathered and decoded ([M, V] logits, not [B·L, V]), and the loss, mean cross-entropy over them,
//   is the fused listwise softmax cross-entropy (one native pass for the loss and its gradient) with
//   each masked position a row and the vocabulary its candidates, the label one-hot.
// - Output: the run dir of the ranking runs (run_dir.ts): model/ is a plain cross-encoder of
//   `model`'s sizes that a teacher run loads with init.checkpoint; the head's own parameters are in
//   mlm_head.safetensors beside it (transformers' names; the decoder weight is the word embeddings).
//   Parameters MLM does not reach (the score head, the term-match table: there is no query) are not
//   trained and keep their seeded init.
//
// The loop is runJob's (train.ts) for a different batch source: the same trainStep, AdamW,
// checkpoints, resume, precision and non-finite handling, without the ranking runs' groups,
// negatives and evaluation, which is why it is a loop of its own here and not a runJob Job.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { writeAtomic } from '../data/atomic';
import { withDirLock } from '../data/lock';
import { getWorld } from '../distributed/world';
import { Mulberry32, normalArray, rng } from '../data/random';
import { loadRankingCollection } from '../data/ranking_collection';
import type { PairTokenizer } from '../data/tokenizer';
import { hostFloatOutput } from '../backend/native/backend';
import { MATMUL_PRECISION_FLAG, setMatmulPrecision } from '../backend/precision';
import { listwiseSoftmaxCE } from '../losses/listwise';
import { CrossEncoder, embeddingLookup, type EncoderInputs } from '../models/cross_encoder';
import { encodeSafetensors } from '../models/hf_export';
import { biasGelu, layerNorm } from '../nn';
import type { SamplerState } from './batches';
import type { PretrainRunConfig } from './config';
import {
  finishRun,
  hashConfig,
  outputState,
  writeRunCheckpoint,
  writeRunConfig,
  type RunLog,
  type RunResult,
} from './run_dir';
import { checkFits, defaultTokenizer } from './setup';
import { runOptimizer, trainStep, type MicroBatch } from './step';
import { StepRecorder, restoreNewestIntact, type RunOptions } from './train';

// ---------------------------------------------------------------------------------------------
// The corpus

/** Each passage's WordPiece ids as `[CLS] ids [SEP]`, cut to maxLength; passages without a token are dropped. */
export async function pretrainCorpus(
  config: Pick<PretrainRunConfig, 'data'>,
  tokenizer: PairTokenizer = defaultTokenizer(),
): Promise<Int32Array[]> {
  const { maxLength } = config.data;
  const texts: string[] = [];
  const coll = await loadRankingCollection(config.data.collection);
  texts.push(...coll.passages.values());
  for (const file of config.data.texts ?? []) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`data.texts: ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    for (const line of text.split(/\r?\n/)) if (line.trim()) texts.push(line);
  }
  const out: Int32Array[] = [];
  for (const t of texts) {
    const ids = tokenizer.ids(t);
    if (ids.length === 0) continue;
    const n = Math.min(ids.length, maxLength - 2);
    const seq = new Int32Array(n + 2);
    seq[0] = tokenizer.clsId;
    seq.set(ids.slice(0, n), 1);
    seq[n + 1] = tokenizer.sepId;
    out.push(seq);
  }
  if (out.length === 0) throw new Error('data: the collection and data.texts hold no passage with a token');
  return out;
}

/** The passages of each step: every epoch visits each once, in a fresh seeded order. */
export class PassageSampler {
  private readonly random: Mulberry32;
  private order: number[] = [];
  private cursor = 0;
  private epoch = 0;

  constructor(
    private readonly count: number,
    private readonly batch: number,
    seed: number,
  ) {
    this.random = new Mulberry32(seed);
  }

  next(): number[] {
    const out: number[] = [];
    while (out.length < this.batch) {
      if (this.cursor >= this.order.length) {
        this.order = Array.from({ length: this.count }, (_, i) => i);
        for (let i = this.order.length - 1; i > 0; i--) {
          const j = Math.floor(this.random.next() * (i + 1));
          [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
        }
        this.cursor = 0;
        this.epoch += 1;
      }
      out.push(this.order[this.cursor++]);
    }
    return out;
  }

  state(): SamplerState {
    return { rng: this.random.state, order: this.order.slice(), cursor: this.cursor, epoch: this.epoch };
  }

  restore(s: SamplerState): void {
    if (s.order.length !== (s.epoch === 0 ? 0 : this.count) || s.order.some((i) => i >= this.count))
      throw new Error('PassageSampler.restore: the state is from another set of passages');
    this.random.state = s.rng >>> 0;
    this.order = s.order.slice();
    this.cursor = s.cursor;
    this.epoch = s.epoch;
  }
}

// ---------------------------------------------------------------------------------------------
// Masking

/** A padded batch of masked sequences: what the model reads and what it must predict. */
export interface MlmBatch {
  batch: number;
  length: number;
  /** [batch * length]: the masked inputs, padded with padId */
  inputIds: Int32Array;
  /** [batch * length]: 1 at real tokens */
  attentionMask: Int32Array;
  /** the predicted positions as flat indices b * length + l, in order */
  positions: Int32Array;
  /** the original id at each predicted position */
  labels: Int32Array;
}

export interface MaskOptions {
  probability: number;
  maskId: number;
  padId: number;
  vocabSize: number;
  /** ids never predicted nor replaced ([CLS], [SEP], [PAD]) */
  special: ReadonlySet<number>;
}

// A 32-bit mix of (seed, step): the masks of step n depend on nothing else.
function stepSeed(seed: number, step: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 0x632be5ab, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * BERT's masking of `seqs` (transformers' DataCollatorForLanguageModeling): each non-special token is
 * predicted with `probability`; a predicted token becomes [MASK] (80%), a uniformly random id of the
 * vocabulary (10%) or stays (10%). Seeded by (seed, step). A batch where no token was drawn predicts
 * its first non-special token (a step needs at least one).
 */
export function maskBatch(seqs: readonly Int32Array[], o: MaskOptions, seed: number, step: number): MlmBatch {
  const random = new Mulberry32(stepSeed(seed, step));
  const B = seqs.length;
  const L = Math.max(...seqs.map((s) => s.length));
  const inputIds = new Int32Array(B * L).fill(o.padId);
  const attentionMask = new Int32Array(B * L);
  const positions: number[] = [];
  const labels: number[] = [];
  let first = -1;
  seqs.forEach((s, b) => {
    for (let l = 0; l < s.length; l++) {
      const at = b * L + l;
      const id = s[l];
      inputIds[at] = id;
      attentionMask[at] = 1;
      if (o.special.has(id)) continue;
      if (first < 0) first = at;
      if (random.next() >= o.probability) continue;
      positions.push(at);
      labels.push(id);
      const r = random.next();
      if (r < 0.8) inputIds[at] = o.maskId;
      else if (r < 0.9) inputIds[at] = Math.floor(random.next() * o.vocabSize);
    }
  });
  if (positions.length === 0) {
    if (first < 0) throw new Error('maskBatch: the batch has no token to predict (only special tokens)');
    positions.push(first);
    labels.push(inputIds[first]);
    inputIds[first] = o.maskId;
  }
  return {
    batch: B,
    length: L,
    inputIds,
    attentionMask,
    positions: Int32Array.from(positions),
    labels: Int32Array.from(labels),
  };
}

// ---------------------------------------------------------------------------------------------
// The head

/** The head's parameters by transformers' BertForMaskedLM names (the decoder weight is the word embeddings). */
export const MLM_HEAD_PARAMS = [
  'cls.predictions.transform.dense.weight',
  'cls.predictions.transform.dense.bias',
  'cls.predictions.transform.LayerNorm.weight',
  'cls.predictions.transform.LayerNorm.bias',
  'cls.predictions.bias',
] as const;

/** BertLMPredictionHead on a cross-encoder: its trained variables and the loss of a batch. */
export class MlmHead {
  private static instances = 0;
  readonly params = new Map<string, tf.Variable>();

  constructor(
    readonly model: CrossEncoder,
    seed = 0,
  ) {
    const { hidden: H, vocabSize: V, initStd } = model.config;
    const E = model.config.embeddingSize ?? H;
    if (E !== H)
      throw new Error(
        `MlmHead: the decoder is tied to the word embeddings, which are ${E} wide, the encoder ${H}: pre-training needs embeddingSize = hidden`,
      );
    const scope = `mlm_head_${MlmHead.instances++}`;
    const add = (name: string, value: tf.Tensor) => {
      this.params.set(name, tf.variable(value, true, `${scope}/${name}`));
      value.dispose();
    };
    add('cls.predictions.transform.dense.weight', tf.tensor(normalArray(H * H, initStd, rng(seed ^ 0x6d6c6d)), [H, H]));
    add('cls.predictions.transform.dense.bias', tf.zeros([H]));
    add('cls.predictions.transform.LayerNorm.weight', tf.ones([H]));
    add('cls.predictions.transform.LayerNorm.bias', tf.zeros([H]));
    add('cls.predictions.bias', tf.zeros([V]));
  }

  private p(name: (typeof MLM_HEAD_PARAMS)[number]): tf.Variable {
    return this.params.get(name)!;
  }

  /**
   * Mean cross-entropy of the vocabulary logits at `positions` (flat indices into hidden's [N, H]
   * rows) against `labels`.
   */
  loss(hidden: tf.Tensor2D, positions: Int32Array, labels: Int32Array): tf.Scalar {
    const V = this.model.config.vocabSize;
    for (const id of labels)
      if (!(id >= 0 && id < V)) throw new Error(`MlmHead.loss: label ${id} is outside the vocabulary [0, ${V})`);
    // [M, H]: gathered before the decoder, so the logits are [M, V], not [B·L, V].
    const h = embeddingLookup(hidden, tf.tensor1d(positions, 'int32')) as tf.Tensor2D;
    return listwiseSoftmaxCE(this.logits(h), oneHotRows(labels, V));
  }

  /** [M, V] vocabulary logits of gathered hidden states [M, H]. */
  logits(h: tf.Tensor2D): tf.Tensor2D {
    const { layerNormEps } = this.model.config;
    const dense = tf.matMul(h, this.p('cls.predictions.transform.dense.weight'), false, true);
    const t = layerNorm(
      biasGelu(dense, this.p('cls.predictions.transform.dense.bias')),
      this.p('cls.predictions.transform.LayerNorm.weight'),
      this.p('cls.predictions.transform.LayerNorm.bias'),
      layerNormEps,
    );
    const words = this.model.params.get('bert.embeddings.word_embeddings.weight')!;
    return tf.add(tf.matMul(t, words, false, true), this.p('cls.predictions.bias')) as tf.Tensor2D;
  }

  /** The encoder's last hidden states [B·L, H] of a masked batch (the score head's output is dropped). */
  encode(b: MlmBatch): tf.Tensor2D {
    const { hidden: H } = this.model.config;
    const shape: [number, number] = [b.batch, b.length];
    const inputs: EncoderInputs = {
      inputIds: tf.tensor2d(b.inputIds, shape, 'int32'),
      tokenTypeIds: tf.zeros(shape, 'int32'),
      attentionMask: tf.tensor2d(b.attentionMask, shape, 'int32'),
    };
    // No query, no match: a term-match model reads row 0 everywhere; a BM25-score model a score of 0.
    if (this.model.config.termMatch) inputs.termMatchIds = tf.zeros(shape, 'int32');
    if (this.model.config.bm25Score) inputs.bm25Scores = tf.zeros([b.batch]);
    if (this.model.config.wordVectorScore) inputs.wordVectorScores = tf.zeros([b.batch]);
    // Nothing is disposed here: under a tape the backward pass reads these; the caller's tidy frees them.
    const out = this.model.forward(inputs, { hidden: true });
    return tf.reshape(out.hidden![out.hidden!.length - 1], [b.batch * b.length, H]);
  }

  /** The loss of a masked batch: encoder, head, cross-entropy (inside a tape for training). */
  batchLoss(b: MlmBatch): tf.Scalar {
    return tf.tidy(() => this.loss(this.encode(b), b.positions, b.labels));
  }

  /** mlm_head.safetensors: the head's parameters (float32) by transformers' names. */
  safetensors(): Buffer {
    return encodeSafetensors(
      [...this.params].map(([name, v]) => ({ name, shape: v.shape, values: v.dataSync() as Float32Array })),
    );
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/**
 * [M, V] float32 rows, row m one-hot at labels[m]: written in place in the backend's memory on
 * 'native' (tf.scatterND would treat each of the M·V entries as a segment of its own, ~20x slower),
 * tf.oneHot elsewhere.
 */
export function oneHotRows(labels: Int32Array, V: number): tf.Tensor2D {
  const M = labels.length;
  const out = hostFloatOutput([M, V]);
  // int32 then cast: tfjs-backend-wasm's OneHot with dtype float32 writes the int32 bits of 1.
  if (!out) return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), V), 'float32')) as tf.Tensor2D;
  out.values.fill(0);
  for (let m = 0; m < M; m++) out.values[m * V + labels[m]] = 1;
  return out.tensor as tf.Tensor2D;
}

/** The model parameters MLM trains: all but the score head and the term-match table (no query to match). */
export function mlmTrained(name: string): boolean {
  return !/^(?:bert\.pooler\.|classifier\b|bert\.embeddings\.match_embeddings\.)/.test(name);
}

// ---------------------------------------------------------------------------------------------
// The run

/**
 * Pre-trains `config.model` with MLM on the run's passages; the run dir holds model/ (a plain
 * cross-encoder: a teacher run's init.checkpoint), mlm_head.safetensors, log.jsonl, result.json.
 * Resumable (`resume`) to the same weights, bit for bit, as an uninterrupted run.
 */
export async function pretrain(config: PretrainRunConfig, options: RunOptions = {}): Promise<RunResult> {
  if (config.train.dropout)
    throw new Error(`${config.output}: train.dropout is not applied by pretrain (only by teacher and student runs)`);
  const world = options.world ?? getWorld();
  if (world.size > 1)
    throw new Error(
      `pretrain runs in one process; this one is rank ${world.rank} of ${world.size} (run it without mpirun or launch)`,
    );
  return withDirLock(config.output, async () => {
    const out = outputState(config, options.resume ?? false);
    if (out.kind === 'done') return out.result;
    const { output, train } = config;
    const emit = options.onProgress ?? (() => undefined);
    const tokenizer = defaultTokenizer();
    const corpus = await pretrainCorpus(config, tokenizer);
    const model = new CrossEncoder({ ...config.model }, train.seed);
    let head: MlmHead;
    try {
      checkFits(model, config.data.maxLength, 'model', tokenizer.vocabSize);
      head = new MlmHead(model, train.seed);
    } catch (e) {
      model.dispose();
      throw e;
    }
    const params = new Map<string, tf.Variable>([...[...model.params].filter(([n]) => mlmTrained(n)), ...head.params]);
    const optimizer = runOptimizer(params, train);
    const trained = { model, extra: head.params, optimizer };
    const configHash = hashConfig(config);
    const maskId = tokenizer.ids('[MASK]')[0];
    const masking: MaskOptions = {
      probability: config.mlmProbability,
      maskId,
      padId: tokenizer.padId,
      vocabSize: tokenizer.vocabSize,
      special: new Set([tokenizer.clsId, tokenizer.sepId, tokenizer.padId]),
    };
    const savedPrecision = tf.env().get(MATMUL_PRECISION_FLAG);
    try {
      if (train.precision) {
        const note = setMatmulPrecision(train.precision, tf.getBackend());
        if (note) emit({ type: 'notice', message: note });
      }
      const sampler = new PassageSampler(corpus.length, train.batch, train.seed);
      let log: RunLog = { steps: [], evals: [] };
      let start = 0;
      let resumedFrom: string | null = null;
      if (out.kind === 'resume') {
        const restored = restoreNewestIntact(output, trained, configHash, train.steps, sampler, options);
        log = restored.state.log;
        start = restored.state.step;
        resumedFrom = restored.dir;
      }
      await writeRunConfig(output, config);
      emit({
        type: 'start',
        run: 'pretrain',
        worldSize: 1,
        step: start,
        steps: train.steps,
        resumedFrom: start > 0 ? resumedFrom : null,
        trainQueries: corpus.length,
        parameters: [...params.values()].reduce((n, v) => n + v.size, 0),
        backend: tf.getBackend(),
      });
      const recorder = new StepRecorder({ output, kind: 'pretrain', train, log, start, options });
      const micro = Math.min(train.microBatch, train.batch);
      for (let step = start + 1; step <= train.steps; step++) {
        const picked = sampler.next();
        const batches = function* (): Generator<MicroBatch> {
          for (let at = 0; at < picked.length; at += micro) {
            const chunk = picked.slice(at, at + micro);
            // Each micro-batch its own masks: seeded by (seed, step) and its place in the step.
            const b = maskBatch(
              chunk.map((i) => corpus[i]),
              masking,
              train.seed,
              step * Math.ceil(train.batch / micro) + at / micro,
            );
            yield {
              share: chunk.length / picked.length,
              loss: () => {
                const total = head.batchLoss(b);
                return { total, parts: { mlm: tf.clone(total) } };
              },
              dispose: () => undefined,
            };
          }
        };
        await new Promise((resolve) => setImmediate(resolve)); // lets a SIGINT / SIGTERM handler run
        const { loss, parts, lr, gradNorm, applied } = trainStep(batches(), params, optimizer);
        recorder.record({ step, lr, gradNorm, loss, parts }, applied, () =>
          Number.isFinite(loss) ? `gradient norm ${gradNorm}` : `loss ${loss}`,
        );
        if (train.checkpointEvery > 0 && step % train.checkpointEvery === 0 && step < train.steps) {
          const dir = await writeRunCheckpoint(
            output,
            trained,
            configHash,
            { step, sampler: sampler.state(), log },
            train.keepCheckpoints,
          );
          emit({ type: 'checkpoint', run: 'pretrain', step, dir });
        }
      }
      // The head beside the model (result.json, written by finishRun, stays the last file).
      const headFile = path.join(output, 'mlm_head.safetensors');
      await writeAtomic(headFile, (w) => w.write(head.safetensors()));
      const result = await finishRun(output, model, log, { steps: train.steps, configHash, run: 'pretrain' });
      emit({
        type: 'done',
        run: 'pretrain',
        step: train.steps,
        modelDir: result.modelDir,
        skippedSteps: recorder.skipped,
      });
      return result;
    } finally {
      tf.env().set(MATMUL_PRECISION_FLAG, savedPrecision);
      optimizer.dispose();
      head.dispose();
      model.dispose();
    }
  });
}
