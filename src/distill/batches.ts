// Training groups from a ranking collection: for each training query, one positive (a judged passage
// of grade >= 1) and n negatives sampled from its BM25 candidates that are not relevant, tokenized
// into the model's inputs with labels and a group mask. Sampling is seeded and its whole state (the
// PRNG's one integer, the epoch's query order, the cursor) can be saved and restored, so a resumed
// run draws exactly the groups an uninterrupted one would.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import type { Qrels } from '../eval/metrics';
import { ensureDefaultCollection } from '../data/build_collection';
import { SPLITS, type Split } from '../data/collection';
import { loadQrels, readCandidates, readTextTsv } from '../data/formats';
import { Mulberry32 } from '../data/random';
import type { BertTokenizer } from '../data/tokenizer';
import { disposeEncoderInputs, type EncoderInputs } from '../models/cross_encoder';

export interface RankingCollection {
  dir: string;
  /** pid -> text */
  passages: Map<string, string>;
  /** qid -> text per split, in file order */
  queries: Record<Split, Map<string, string>>;
  qrels: Record<Split, Qrels>;
  /** qid -> BM25 candidates, best first */
  candidates: Record<Split, Map<string, string[]>>;
  /** sha256 of every file read: what cached teacher scores depend on */
  fingerprint: string;
}

/** Reads a collection directory (writeCollection's layout); none given: the bundled Brown collection. */
export async function loadRankingCollection(dir?: string): Promise<RankingCollection> {
  const root = dir ?? (await ensureDefaultCollection());
  const hash = createHash('sha256');
  const file = (name: string) => {
    const f = path.join(root, name);
    if (!fs.existsSync(f)) throw new Error(`${root}: no ${name} (a collection dir holds collection.tsv and queries/qrels/candidates per split)`);
    hash.update(`${name}\0`).update(fs.readFileSync(f));
    return f;
  };
  const passages = new Map<string, string>();
  for await (const r of readTextTsv(file('collection.tsv'))) passages.set(r.id, r.text);
  const coll: RankingCollection = {
    dir: root,
    passages,
    queries: { train: new Map(), dev: new Map(), test: new Map() },
    qrels: { train: new Map(), dev: new Map(), test: new Map() },
    candidates: { train: new Map(), dev: new Map(), test: new Map() },
    fingerprint: '',
  };
  for (const split of SPLITS) {
    for await (const r of readTextTsv(file(`queries.${split}.tsv`))) coll.queries[split].set(r.id, r.text);
    coll.qrels[split] = await loadQrels(file(`qrels.${split}.txt`));
    for await (const r of readCandidates(file(`candidates.${split}.tsv`))) {
      if (!passages.has(r.docid)) throw new Error(`${root}/candidates.${split}.tsv: passage ${r.docid} is not in collection.tsv`);
      const list = coll.candidates[split].get(r.qid) ?? [];
      list.push(r.docid);
      coll.candidates[split].set(r.qid, list);
    }
  }
  coll.fingerprint = hash.digest('hex');
  return coll;
}

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
  const pools: QueryPool[] = [];
  for (const qid of [...coll.queries.train.keys()].slice(0, trainQueries)) {
    const judged = coll.qrels.train.get(qid) ?? new Map<string, number>();
    const positives = [...judged].filter(([, g]) => g >= 1).map(([pid]) => pid).sort();
    const negatives = (coll.candidates.train.get(qid) ?? []).filter((pid) => (judged.get(pid) ?? 0) < 1);
    if (positives.length > 0 && negatives.length > 0) pools.push({ qid, positives, negatives });
  }
  if (pools.length === 0) throw new Error(`${coll.dir}: no training query has both a relevant passage and a non-relevant candidate`);
  return pools;
}

/** Every (qid, pid) a sampler can put in a group: what the teacher scores once. */
export function trainingPairs(coll: RankingCollection, trainQueries?: number): Array<[string, string]> {
  return trainingPools(coll, trainQueries).flatMap((p) => [...p.positives, ...p.negatives].map((pid): [string, string] => [p.qid, pid]));
}

export class GroupSampler {
  private readonly pools: QueryPool[];
  private readonly random: Mulberry32;
  private order: number[] = [];
  private cursor = 0;
  private epoch = 0;

  constructor(
    private readonly coll: RankingCollection,
    private readonly options: SamplerOptions,
  ) {
    this.pools = trainingPools(coll, options.trainQueries);
    this.random = new Mulberry32(options.seed);
  }

  get queries(): number {
    return this.pools.length;
  }

  /** The next step's groups. Each epoch visits every query once in a fresh shuffled order. */
  next(): Group[] {
    const groups: Group[] = [];
    while (groups.length < this.options.batch) {
      if (this.cursor >= this.order.length) this.newEpoch();
      groups.push(this.sample(this.pools[this.order[this.cursor++]]));
    }
    return groups;
  }

  private newEpoch(): void {
    this.order = this.pools.map((_, i) => i);
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
    if (s.order.some((i) => i >= this.pools.length)) throw new Error('GroupSampler.restore: the state is from another set of training queries');
    this.random.state = s.rng >>> 0;
    this.order = s.order.slice();
    this.cursor = s.cursor;
    this.epoch = s.epoch;
  }
}

/** Rarity levels of a term match (PairEncoder.matchLevels): 1 (most common) .. 4 (rarest). */
export const TERM_MATCH_LEVELS = 4;

/**
 * Tokenizes each query and passage once and assembles [CLS] q [SEP] p [SEP] pairs from the ids.
 * Term matches are graded by the WordPiece's rarity in the collection's passages: BM25's idf,
 * ln(1 + (N - df + 0.5) / (df + 0.5)), in TERM_MATCH_LEVELS equal bins up to the idf of df = 1
 * (with ~10k passages: df above ~1000, 110-1000, 13-110, below 13). A model with fewer levels
 * (the binary [2, H] table) clamps them (CrossEncoder.forward).
 */
export class PairEncoder {
  private readonly queryIds = new Map<string, number[]>();
  private readonly passageIds = new Map<string, number[]>();
  private readonly queryText = new Map<string, string>();
  private levels: Uint8Array | null = null;

  constructor(
    readonly tokenizer: BertTokenizer,
    private readonly coll: RankingCollection,
    readonly maxLength: number,
  ) {
    for (const split of SPLITS) for (const [qid, text] of coll.queries[split]) this.queryText.set(qid, text);
  }

  private ids(cache: Map<string, number[]>, id: string, text: string | undefined, what: string): number[] {
    let ids = cache.get(id);
    if (!ids) {
      if (text == null) throw new Error(`${this.coll.dir}: unknown ${what} ${id}`);
      ids = this.tokenizer.ids(text);
      cache.set(id, ids);
    }
    return ids;
  }

  private encodeOne(qid: string, pid: string) {
    const levels = this.matchLevels();
    return this.tokenizer.encodeIdsPair(
      this.ids(this.queryIds, qid, this.queryText.get(qid), 'query'),
      this.ids(this.passageIds, pid, this.coll.passages.get(pid), 'passage'),
      this.maxLength,
      (id) => levels[id],
    );
  }

  /**
   * The match level of every WordPiece id, from its document frequency over the collection's
   * passages (tokenized once here; the ids are kept for encoding). Ids in no passage get the top level.
   */
  matchLevels(): Uint8Array {
    if (this.levels) return this.levels;
    const df = new Int32Array(this.tokenizer.vocabSize);
    let n = 0;
    for (const [pid, text] of this.coll.passages) {
      n++;
      for (const id of new Set(this.ids(this.passageIds, pid, text, 'passage'))) df[id]++;
    }
    const idf = (d: number) => Math.log(1 + (n - d + 0.5) / (d + 0.5));
    const top = idf(1);
    const levels = new Uint8Array(df.length);
    for (let id = 0; id < df.length; id++)
      levels[id] = df[id] === 0 ? TERM_MATCH_LEVELS : Math.max(1, Math.min(TERM_MATCH_LEVELS, 1 + Math.floor((TERM_MATCH_LEVELS * idf(df[id])) / top)));
    this.levels = levels;
    return levels;
  }

  /** Tokens of the pair's sequence after truncation (special tokens included). */
  pairLength(qid: string, pid: string): number {
    const e = this.encodeOne(qid, pid);
    return 3 + e.queryTokens + e.passageTokens;
  }

  /**
   * Model inputs for the pairs, padded to the longest (not to maxLength: shorter batches run
   * faster and padding takes no part). A null pair is a padding slot: a minimal [CLS] [SEP] [SEP]
   * sequence whose tokens are all 0 in tokenMask. padTo: pad to at least this length (timed
   * evaluation pads every pass to maxLength: one shape for all queries).
   */
  encode(pairs: ReadonlyArray<readonly [string, string] | null>, padTo = 0): { inputs: EncoderInputs; tokenMask: tf.Tensor2D } {
    const encoded = pairs.map((p) => (p == null ? null : this.encodeOne(p[0], p[1])));
    const len = Math.min(this.maxLength, Math.max(3, padTo, ...encoded.map((e) => (e ? 3 + e.queryTokens + e.passageTokens : 3))));
    const n = pairs.length;
    const ids = new Int32Array(n * len).fill(this.tokenizer.padId);
    const types = new Int32Array(n * len);
    const attention = new Int32Array(n * len);
    const match = new Int32Array(n * len);
    const tokenMask = new Float32Array(n * len);
    encoded.forEach((e, i) => {
      if (e == null) {
        ids.set([this.tokenizer.clsId, this.tokenizer.sepId, this.tokenizer.sepId], i * len);
        attention.fill(1, i * len, i * len + 3);
        return;
      }
      ids.set(e.inputIds.subarray(0, len), i * len);
      types.set(e.tokenTypeIds.subarray(0, len), i * len);
      attention.set(e.attentionMask.subarray(0, len), i * len);
      match.set(e.termMatchIds.subarray(0, len), i * len);
      for (let k = 0; k < len; k++) tokenMask[i * len + k] = e.attentionMask[k];
    });
    return {
      inputs: {
        inputIds: tf.tensor2d(ids, [n, len], 'int32'),
        tokenTypeIds: tf.tensor2d(types, [n, len], 'int32'),
        attentionMask: tf.tensor2d(attention, [n, len], 'int32'),
        termMatchIds: tf.tensor2d(match, [n, len], 'int32'),
      },
      tokenMask: tf.tensor2d(tokenMask, [n, len], 'float32'),
    };
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
}

/** Tensors for a step's groups, each padded to G = 1 + negatives slots. */
export function makeBatch(groups: Group[], encoder: PairEncoder, label: (grade: number) => number, G: number): TrainBatch {
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
