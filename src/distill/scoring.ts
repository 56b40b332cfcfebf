// Scoring pairs with a cross-encoder, outside training: filling the teacher-score cache, and
// re-ranking each evaluation query's BM25 candidates for MRR@10 / nDCG@10 (the queries, candidates
// and metrics of src/eval; batched by length here, where evaluating during training needs no timing).
import * as tf from '@tensorflow/tfjs';

import type { Split } from '../data/collection';
import type { RankingCollection } from '../data/ranking_collection';
import { evaluateRun, type Run } from '../eval/metrics';
import { checkFiniteRun, evalQrels, evalQueries } from '../eval/rerank';
import { disposeEncoderInputs, type CrossEncoder } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';

/**
 * Scores pairs, scoreBatch pairs per forward pass, shortest pairs batched together (less padding;
 * the scores do not depend on it). Returns the float32 scores in the pairs' order.
 */
export function scorePairs(
  model: CrossEncoder,
  encoder: PairEncoder,
  pairs: ReadonlyArray<readonly [string, string]>,
  scoreBatch: number,
  onBatch?: (done: number, total: number) => void,
): Float32Array {
  const lengths = pairs.map(([q, p]) => encoder.pairLength(q, p));
  const order = pairs.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const out = new Float32Array(pairs.length);
  for (let start = 0; start < order.length; start += scoreBatch) {
    const idx = order.slice(start, start + scoreBatch);
    const { inputs, tokenMask } = encoder.encode(idx.map((i) => pairs[i]));
    const scores = model.forward(inputs).scores;
    const values = scores.dataSync();
    idx.forEach((i, k) => (out[i] = values[k]));
    disposeEncoderInputs(inputs);
    tf.dispose([scores, tokenMask]);
    onBatch?.(Math.min(start + scoreBatch, order.length), order.length);
  }
  return out;
}

/** The model's scores of each query's BM25 candidates (first `queries` queries of the split). */
export function rerank(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number },
): Run {
  const queries = evalQueries(coll, { split, queries: options.queries });
  const pairs = queries.flatMap(({ qid, pids }) => pids.map((pid): [string, string] => [qid, pid]));
  const scores = scorePairs(model, encoder, pairs, options.scoreBatch);
  const run: Run = new Map(queries.map(({ qid }) => [qid, new Map()]));
  pairs.forEach(([q, p], i) => run.get(q)!.set(p, scores[i]));
  return run;
}

export interface EvalMetrics {
  /** MRR@10 */
  mrr10: number;
  ndcg10: number;
  /** queries averaged over */
  queries: number;
}

/** MRR@10 and nDCG@10 of re-ranking the split's BM25 candidates, against the split's qrels. */
export function evaluateModel(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number; source?: string },
): EvalMetrics {
  const run = rerank(model, encoder, coll, split, options);
  const source = options.source ?? `evaluation on ${split}`;
  checkFiniteRun(run, source);
  const { mean, queries } = evaluateRun(run, evalQrels(coll, split, run), [10], source);
  return { mrr10: mean.rr10, ndcg10: mean.ndcg10, queries };
}
