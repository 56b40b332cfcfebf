// The cross-encoder's inputs for (query, passage) pairs of a ranking collection: each text tokenized
// once, pairs assembled from the ids, term matches graded by rarity.
import * as tf from '@tensorflow/tfjs';

import { Bm25Index } from '../data/bm25';
import { SPLITS } from '../data/collection';
import type { RankingCollection } from '../data/ranking_collection';
import { pairSpecialCount, type PairTokenizer } from '../data/tokenizer';
import { bundledWordVectors, centroidSimilarity } from '../data/word_vectors';
import type { CrossEncoderConfig, EncoderInputs } from './cross_encoder';

/** Rarity levels of a term match (PairEncoder.matchLevels): 1 (most common) .. 4 (rarest). */
export const TERM_MATCH_LEVELS = 4;

/**
 * Tokenizes each query and passage once and assembles pairs from the ids in the tokenizer's layout
 * ([CLS] q [SEP] p [SEP], or RoBERTa's <s> q </s></s> p </s>).
 * Term matches are graded by the WordPiece's rarity in the collection's passages: BM25's idf,
 * ln(1 + (N - df + 0.5) / (df + 0.5)), in TERM_MATCH_LEVELS equal bins up to the idf of df = 1
 * (with ~10k passages: df above ~1000, 110-1000, 13-110, below 13). A model with fewer levels
 * (the binary [2, H] table) clamps them (CrossEncoder.forward).
 */
/** What a model reads besides the tokens: the BM25 score as text, or added to its score; the word-vector similarity added to its score. */
export interface PairInputForm {
  bm25Text?: boolean;
  bm25Score?: boolean;
  wordVectorScore?: boolean;
}

/** The input form a model's config asks for. */
export function inputFormOf(config: CrossEncoderConfig): Required<PairInputForm> {
  return { bm25Text: !!config.bm25Text, bm25Score: !!config.bm25Score, wordVectorScore: !!config.wordVectorScore };
}

export class PairEncoder {
  private readonly queryIds = new Map<string, number[]>();
  private readonly passageIds = new Map<string, number[]>();
  private readonly queryText = new Map<string, string>();
  private levels: Uint8Array | null = null;
  /** the special tokens of a pair (3, or RoBERTa's 4) */
  private readonly special: number;
  /** bm25Text, bm25Score: the collection's BM25 index (built on first use) and the ids of each score's text */
  private bm25: Bm25Index | null = null;
  private readonly scoreIds = new Map<number, number[]>();
  /** the query segment starts with the pair's BM25 score as text (CrossEncoderConfig.bm25Text) */
  readonly bm25Text: boolean;
  /** encode() adds each pair's BM25 score as inputs.bm25Scores (CrossEncoderConfig.bm25Score) */
  readonly bm25Score: boolean;
  /** encode() adds each pair's word-vector similarity as inputs.wordVectorScores (CrossEncoderConfig.wordVectorScore) */
  readonly wordVectorScore: boolean;
  /** wordVectorScore: each text's centroid (data/word_vectors.ts), by query / passage id */
  private readonly centroids = new Map<string, Float32Array | null>();

  constructor(
    readonly tokenizer: PairTokenizer,
    private readonly coll: RankingCollection,
    readonly maxLength: number,
    options: PairInputForm = {},
  ) {
    this.bm25Text = options.bm25Text ?? false;
    this.bm25Score = options.bm25Score ?? false;
    this.wordVectorScore = options.wordVectorScore ?? false;
    this.special = pairSpecialCount(tokenizer.layout);
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

  /**
   * The pair's BM25 score: the first stage's (bm25.ts's defaults over the collection's passages, as
   * the candidates were ranked). The index is built on first use.
   */
  bm25ScoreOf(qid: string, pid: string): number {
    return this.bm25Index('the BM25 score input (bm25Text, bm25Score)').score(this.query(qid), pid);
  }

  /**
   * The pair's word-vector similarity: the cosine of the query's and the passage's centroids of the
   * bundled word vectors, weighted by the collection's BM25 idf (data/word_vectors.ts).
   */
  wordVectorScoreOf(qid: string, pid: string): number {
    const index = this.bm25Index('the word-vector similarity (wordVectorScore)');
    const idf = (term: string) => index.idf(term);
    const centroid = (key: string, text: () => string) => {
      if (!this.centroids.has(key)) this.centroids.set(key, bundledWordVectors().centroid(text(), idf));
      return this.centroids.get(key)!;
    };
    const passage = () => {
      const text = this.coll.passages.get(pid);
      if (text == null) throw new Error(`${this.coll.dir}: unknown passage ${pid}`);
      return text;
    };
    return centroidSimilarity(
      centroid(`q\0${qid}`, () => this.query(qid)),
      centroid(`p\0${pid}`, passage),
    );
  }

  private query(qid: string): string {
    const query = this.queryText.get(qid);
    if (query == null) throw new Error(`${this.coll.dir}: unknown query ${qid}`);
    return query;
  }

  /** The collection's BM25 index, built on first use (it needs the passages' texts). */
  private bm25Index(what: string): Bm25Index {
    if (!this.bm25) {
      if (this.coll.store)
        throw new Error(
          `${this.coll.dir}: ${what} needs the passages' texts, which a store-backed collection does not keep`,
        );
      this.bm25 = new Bm25Index();
      for (const [id, text] of this.coll.passages) this.bm25.add(id, text);
    }
    return this.bm25;
  }

  /** The pair's BM25 score rounded to an integer, as WordPiece ids: "17" is one token. */
  bm25Ids(qid: string, pid: string): number[] {
    const score = Math.round(this.bm25ScoreOf(qid, pid));
    let ids = this.scoreIds.get(score);
    if (!ids) this.scoreIds.set(score, (ids = this.tokenizer.ids(String(score))));
    return ids;
  }

  // A store's ids are read per use (not cached: over MS MARCO's 8.8M passages a cache would grow
  // to gigabytes); a query its tables lack (top1000's texts) is tokenized from its text.
  private queryTokens(qid: string): number[] {
    const store = this.coll.store;
    if (store) for (const t of Object.values(store.queries)) if (t.has(qid)) return t.tokens(qid);
    return this.ids(this.queryIds, qid, this.queryText.get(qid), 'query');
  }

  private passageTokens(pid: string): number[] {
    if (this.coll.store) return this.coll.store.passages.tokens(pid);
    return this.ids(this.passageIds, pid, this.coll.passages.get(pid), 'passage');
  }

  private encodeOne(qid: string, pid: string) {
    const levels = this.matchLevels();
    const queryIds = this.queryTokens(qid);
    return this.tokenizer.encodeIdsPair(
      this.bm25Text ? [...this.bm25Ids(qid, pid), ...queryIds] : queryIds,
      this.passageTokens(pid),
      this.maxLength,
      (id) => levels[id],
    );
  }

  /**
   * The match level of every WordPiece id, from its document frequency over the collection's
   * passages (tokenized once here and the ids kept for encoding; a store counted them when built).
   * Ids in no passage get the top level.
   */
  matchLevels(): Uint8Array {
    if (this.levels) return this.levels;
    let df: Int32Array = new Int32Array(this.tokenizer.vocabSize);
    let n = 0;
    const store = this.coll.store;
    if (store) {
      // Counted when the store was built (the same counts: each id once per passage).
      df = store.passages.df() ?? df;
      n = store.passages.size;
      if (df.length !== this.tokenizer.vocabSize)
        throw new Error(
          `${store.dir}: document frequencies of ${df.length} ids, the tokenizer has ${this.tokenizer.vocabSize}`,
        );
    } else
      for (const [pid, text] of this.coll.passages) {
        n++;
        for (const id of new Set(this.ids(this.passageIds, pid, text, 'passage'))) df[id]++;
      }
    const idf = (d: number) => Math.log(1 + (n - d + 0.5) / (d + 0.5));
    const top = idf(1);
    const levels = new Uint8Array(df.length);
    for (let id = 0; id < df.length; id++)
      levels[id] =
        df[id] === 0
          ? TERM_MATCH_LEVELS
          : Math.max(1, Math.min(TERM_MATCH_LEVELS, 1 + Math.floor((TERM_MATCH_LEVELS * idf(df[id])) / top)));
    this.levels = levels;
    return levels;
  }

  /** Tokens of the pair's sequence after truncation (special tokens included). */
  pairLength(qid: string, pid: string): number {
    const e = this.encodeOne(qid, pid);
    return this.special + e.queryTokens + e.passageTokens;
  }

  /**
   * Model inputs for the pairs, padded to the longest (not to maxLength: shorter batches run
   * faster and padding takes no part). A null pair is a padding slot: a minimal [CLS] [SEP] [SEP]
   * sequence whose tokens are all 0 in tokenMask. padTo: pad to at least this length (timed
   * evaluation pads every pass to maxLength: one shape for all queries).
   */
  encode(
    pairs: ReadonlyArray<readonly [string, string] | null>,
    padTo = 0,
  ): { inputs: EncoderInputs; tokenMask: tf.Tensor2D } {
    const encoded = pairs.map((p) => (p == null ? null : this.encodeOne(p[0], p[1])));
    const len = Math.min(
      this.maxLength,
      Math.max(
        this.special,
        padTo,
        ...encoded.map((e) => (e ? this.special + e.queryTokens + e.passageTokens : this.special)),
      ),
    );
    const n = pairs.length;
    const ids = new Int32Array(n * len).fill(this.tokenizer.padId);
    const types = new Int32Array(n * len);
    const attention = new Int32Array(n * len);
    const match = new Int32Array(n * len);
    const tokenMask = new Float32Array(n * len);
    encoded.forEach((e, i) => {
      if (e == null) {
        const empty = [this.tokenizer.clsId, ...new Array<number>(this.special - 1).fill(this.tokenizer.sepId)];
        ids.set(empty, i * len);
        attention.fill(1, i * len, i * len + this.special);
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
        // A padding slot's score is 0 (its score takes no part in any loss or ranking).
        ...(this.bm25Score
          ? {
              bm25Scores: tf.tensor1d(
                pairs.map((p) => (p == null ? 0 : this.bm25ScoreOf(p[0], p[1]))),
                'float32',
              ),
            }
          : {}),
        ...(this.wordVectorScore
          ? {
              wordVectorScores: tf.tensor1d(
                pairs.map((p) => (p == null ? 0 : this.wordVectorScoreOf(p[0], p[1]))),
                'float32',
              ),
            }
          : {}),
      },
      tokenMask: tf.tensor2d(tokenMask, [n, len], 'float32'),
    };
  }
}
