// Training groups from a ranking collection: for each training query, one positive (a judged passage
// of grade >= 1) and n negatives sampled from its BM25 candidates that are not relevant, tokenized
// into the model's inputs with labels and a group mask. Sampling is seeded and its whole state (the
// PRNG's one integer, the epoch's query order, the cursor) can be saved and restored, so a resumed
// run draws exactly the groups an uninterrupted one would.
import * as tf from '@tensorflow/tfjs';

import type { RankingCollection } from '../data/ranking_collection';
import type { TaskEvent } from '../eval/rerank';
import { Mulberry32 } from '../data/random';
import { disposeEncoderInputs, type EncoderInputs } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';

/** One query's candidates: pids[0] is the positive; grades are the qrels' (0 when unjudged). */
export interface Group {
  qid: string;
  pids: string[];
  grades: number[];
}

export interface SamplerOptions {
  negatives: number;
  /** groups per step */
  batch: number;
  seed: number;
  /** use the first n training queries only */
  trainQueries?: number;
  /** hears the pass over the training queries (a task event when it takes over a second) */
  onProgress?: (e: TaskEvent) => void;
}

export interface SamplerState {
  rng: number;
  order: number[];
  cursor: number;
  epoch: number;
}

interface QueryPool {
  qid: string;
  positives: string[];
  negatives: string[];
}

/**
 * The training queries a sampler draws from, in file order: those with a relevant passage and at
 * least one non-relevant BM25 candidate, each with its positives and its negative pool.
 */
export function trainingPools(coll: RankingCollection, trainQueries?: number): QueryPool[] {
  return trainingQids(coll, trainQueries).map((qid) => poolOf(coll, qid)!);
}

// The query's positives and negative pool, or null when it has no relevant passage or no negative.
function poolOf(coll: RankingCollection, qid: string): QueryPool | null {
  const judged = coll.qrels.train.get(qid) ?? new Map<string, number>();
  const positives = [...judged]
    .filter(([, g]) => g >= 1)
    .map(([pid]) => pid)
    .sort();
  const negatives = (coll.candidates.train.get(qid) ?? []).filter((pid) => (judged.get(pid) ?? 0) < 1);
  return positives.length > 0 && negatives.length > 0 ? { qid, positives, negatives } : null;
}

/**
 * Progress over a pass through the training queries: silent for a pass under a second (small
 * collections), then a task event every 250 ms and at the end (MS MARCO's 500k queries take seconds).
 */
export function queryPass(
  label: string,
  total: number,
  onProgress?: (e: TaskEvent) => void,
  unit = 'queries',
): (done: number) => void {
  if (!onProgress) return () => undefined;
  const t0 = Date.now();
  let last = 0;
  return (done) => {
    const now = Date.now();
    if (now - t0 < 1000 || (done < total && now - last < 250)) return;
    last = now;
    onProgress({ type: 'task', label, done, total, unit });
  };
}

/** The training queries a sampler draws from (trainingPools' qids), without holding their pools. */
function trainingQids(coll: RankingCollection, trainQueries?: number, onProgress?: (e: TaskEvent) => void): string[] {
  const all = [...coll.queries.train.keys()].slice(0, trainQueries);
  const tick = queryPass('training queries', all.length, onProgress);
  const qids = all.filter((qid, i) => (tick(i + 1), poolOf(coll, qid) != null));
  if (qids.length === 0)
    throw new Error(`${coll.dir}: no training query has both a relevant passage and a non-relevant candidate`);
  return qids;
}

/** Every (qid, pid) a sampler can put in a group: what the teacher scores once. */
export function trainingPairs(coll: RankingCollection, trainQueries?: number): Array<[string, string]> {
  return trainingPools(coll, trainQueries).flatMap((p) =>
    [...p.positives, ...p.negatives].map((pid): [string, string] => [p.qid, pid]),
  );
}

export class GroupSampler {
  // Only the qids: a query's pool is made when drawn (MS MARCO's are 40M passages in all).
  private readonly qids: string[];
  private readonly random: Mulberry32;
  private order: number[] = [];
  private cursor = 0;
  private epoch = 0;

  constructor(
    private readonly coll: RankingCollection,
    private readonly options: SamplerOptions,
  ) {
    this.qids = trainingQids(coll, options.trainQueries, options.onProgress);
    this.random = new Mulberry32(options.seed);
  }

  get queries(): number {
    return this.qids.length;
  }

  /** The next step's groups. Each epoch visits every query once in a fresh shuffled order. */
  next(): Group[] {
    const groups: Group[] = [];
    while (groups.length < this.options.batch) {
      if (this.cursor >= this.order.length) this.newEpoch();
      groups.push(this.sample(poolOf(this.coll, this.qids[this.order[this.cursor++]])!));
    }
    return groups;
  }

  private newEpoch(): void {
    this.order = this.qids.map((_, i) => i);
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = Math.floor(this.random.next() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
    this.cursor = 0;
    this.epoch += 1;
  }

  private sample(pool: QueryPool): Group {
    const judged = this.coll.qrels.train.get(pool.qid)!;
    const positive = pool.positives[Math.floor(this.random.next() * pool.positives.length)];
    // n negatives without replacement: a partial Fisher-Yates over a copy of the pool.
    const negs = pool.negatives.slice();
    const n = Math.min(this.options.negatives, negs.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.random.next() * (negs.length - i));
      [negs[i], negs[j]] = [negs[j], negs[i]];
    }
    const pids = [positive, ...negs.slice(0, n)];
    return { qid: pool.qid, pids, grades: pids.map((pid) => judged.get(pid) ?? 0) };
  }

  state(): SamplerState {
    return { rng: this.random.state, order: this.order.slice(), cursor: this.cursor, epoch: this.epoch };
  }

  restore(s: SamplerState): void {
    if (s.order.some((i) => i >= this.qids.length))
      throw new Error('GroupSampler.restore: the state is from another set of training queries');
    this.random.state = s.rng >>> 0;
    this.order = s.order.slice();
    this.cursor = s.cursor;
    this.epoch = s.epoch;
  }
}

/** Graded: y = grade / the highest grade in the training qrels; binary: y = 1 for grade >= 1. */
export function labelFunction(coll: RankingCollection, mode: 'graded' | 'binary'): (grade: number) => number {
  if (mode === 'binary') return (g) => (g >= 1 ? 1 : 0);
  let max = 0;
  for (const judged of coll.qrels.train.values()) for (const g of judged.values()) max = Math.max(max, g);
  return (g) => (max > 0 ? Math.max(0, g) / max : 0);
}

export interface TrainBatch {
  groups: Group[];
  /** B groups x G slots, row-major; null = a padding slot */
  pairs: Array<[string, string] | null>;
  /** [B * G, L] */
  inputs: EncoderInputs;
  /** [B * G, L] float32: real tokens of real pairs (the feature losses' tokenMask) */
  tokenMask: tf.Tensor2D;
  /** [B, G] the objective's y */
  labels: tf.Tensor2D;
  /** [B, G] 1 = a real candidate */
  mask: tf.Tensor2D;
  B: number;
  G: number;
  /** the trained model's dropout in this micro-batch's forward pass (train.dropout); absent = none */
  dropout?: { rate: number; seed: number };
}

/** Tensors for a step's groups, each padded to G = 1 + negatives slots. */
export function makeBatch(
  groups: Group[],
  encoder: PairEncoder,
  label: (grade: number) => number,
  G: number,
): TrainBatch {
  const B = groups.length;
  const pairs: Array<[string, string] | null> = [];
  const y = new Float32Array(B * G);
  const mask = new Float32Array(B * G);
  groups.forEach((g, b) => {
    for (let j = 0; j < G; j++) {
      if (j < g.pids.length) {
        pairs.push([g.qid, g.pids[j]]);
        y[b * G + j] = label(g.grades[j]);
        mask[b * G + j] = 1;
      } else pairs.push(null);
    }
  });
  const { inputs, tokenMask } = encoder.encode(pairs);
  return { groups, pairs, inputs, tokenMask, labels: tf.tensor2d(y, [B, G]), mask: tf.tensor2d(mask, [B, G]), B, G };
}

export function disposeBatch(b: TrainBatch): void {
  disposeEncoderInputs(b.inputs);
  tf.dispose([b.tokenMask, b.labels, b.mask]);
}

/**
 * The sampler of a run: data.negatives per group, train.batch groups a step, seeded by train.seed + 1
 * (the model's init takes train.seed). `teacher score --out` and a run reading its file enumerate the
 * same draws.
 */
export function runSampler(
  coll: RankingCollection,
  data: { negatives: number; trainQueries?: number },
  train: { batch: number; seed: number },
  onProgress?: (e: TaskEvent) => void,
): GroupSampler {
  return new GroupSampler(coll, {
    negatives: data.negatives,
    batch: train.batch,
    seed: train.seed + 1,
    trainQueries: data.trainQueries,
    onProgress,
  });
}

/**
 * Every (qid, pid) the run's sampler puts in a group over `steps` steps, in the order first drawn,
 * each once, as a generator: a long run draws tens of millions of pairs, which are not held. A pair
 * is known as drawn by one bit per passage of its query's pool (positives, then negatives), the
 * query's bits placed in one byte column when the query is first drawn.
 */
export function* drawnPairStream(
  coll: RankingCollection,
  data: { negatives: number; trainQueries?: number },
  train: { batch: number; seed: number },
  steps: number,
  /** hears the pass over the training queries and the steps drawn (task events past a second) */
  onProgress?: (e: TaskEvent) => void,
): Generator<[string, string]> {
  const sampler = runSampler(coll, data, train, onProgress);
  const tick = queryPass("the run's pairs", steps, onProgress, 'steps');
  const bitsAt = new Map<string, number>();
  let bits = new Uint8Array(1 << 16);
  let used = 0;
  for (let step = 0; step < steps; step++) {
    for (const g of sampler.next()) {
      const pool = poolOf(coll, g.qid)!;
      let at = bitsAt.get(g.qid);
      if (at === undefined) {
        const bytes = Math.ceil((pool.positives.length + pool.negatives.length) / 8);
        if (used + bytes > bits.length) {
          const grown = new Uint8Array(Math.max(bits.length * 2, used + bytes));
          grown.set(bits);
          bits = grown;
        }
        bitsAt.set(g.qid, (at = used));
        used += bytes;
      }
      for (const pid of g.pids) {
        // The first place of the pid in the pool (a candidate list may repeat one).
        const p = pool.positives.indexOf(pid);
        const slot = p >= 0 ? p : pool.positives.length + pool.negatives.indexOf(pid);
        const byte = at + (slot >> 3);
        const bit = 1 << (slot & 7);
        if (bits[byte] & bit) continue;
        bits[byte] |= bit;
        yield [g.qid, pid];
      }
    }
    tick(step + 1);
  }
}

/** drawnPairStream's pairs as one list (for runs small enough to hold them). */
export function drawnPairs(
  coll: RankingCollection,
  data: { negatives: number; trainQueries?: number },
  train: { batch: number; seed: number },
  steps: number,
): Array<[string, string]> {
  return [...drawnPairStream(coll, data, train, steps)];
}
