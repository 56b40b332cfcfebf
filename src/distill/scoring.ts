// Scoring pairs with a cross-encoder, outside training: filling the teacher-score cache, and
// re-ranking each evaluation query's BM25 candidates for MRR@10 / nDCG@10 (the queries, candidates
// and metrics of src/eval; batched by length here, where evaluating during training needs no timing).
// Under several ranks (src/distributed) each rank scores a contiguous share of the queries, never
// splitting a query, and the float32 scores are gathered in rank order: every rank ends with the
// scores one process computes, bit for bit where a pair's score depends neither on the other pairs
// of its batch nor on the batch's padded length (the CPU backends; docs/distributed.md).
import * as tf from '@tensorflow/tfjs';

import type { Split } from '../data/collection';
import type { RankingCollection } from '../data/ranking_collection';
import { allgatherFloat32, getWorld, shardRange, type World } from '../distributed/world';
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

/**
 * This rank's contiguous share [start, end) of groups weighing `weights` (a query's pair count):
 * rank r starts at the first group whose preceding weight reaches r/size of the total, so shares
 * balance the weight to within one group, concatenate in rank order to every group, and a rank may
 * get none (more ranks than groups).
 */
export function shardByWeight(weights: readonly number[], world: Pick<World, 'rank' | 'size'>): [number, number] {
  const total = weights.reduce((a, b) => a + b, 0);
  const startOf = (r: number) => {
    if (r >= world.size) return weights.length;
    let before = 0;
    for (let g = 0; g < weights.length; g++) {
      if (before * world.size >= total * r) return g;
      before += weights[g];
    }
    return weights.length;
  };
  return [startOf(world.rank), startOf(world.rank + 1)];
}

/**
 * scorePairs across the world's ranks: the pairs are grouped by query (queries in the order they
 * first appear, each query's pairs in their order), each rank scores a contiguous share of the
 * queries (balanced by pairs; a query is never split) and the scores are gathered: every rank
 * returns the scores of all the pairs, in the pairs' order, equal bit for bit to scorePairs in one
 * process. `onBatch` hears this rank's own batches. A rank with no pairs still joins the gather.
 */
export async function scorePairsSharded(
  model: CrossEncoder,
  encoder: PairEncoder,
  pairs: ReadonlyArray<readonly [string, string]>,
  scoreBatch: number,
  options: { world?: World; onBatch?: (done: number, total: number) => void } = {},
): Promise<Float32Array> {
  const world = options.world ?? getWorld();
  if (world.size === 1) return scorePairs(model, encoder, pairs, scoreBatch, options.onBatch);
  const groups = new Map<string, number[]>();
  pairs.forEach(([q], i) => {
    const g = groups.get(q);
    if (g) g.push(i);
    else groups.set(q, [i]);
  });
  const byQuery = [...groups.values()];
  const [g0, g1] = shardByWeight(
    byQuery.map((g) => g.length),
    world,
  );
  const mine = byQuery.slice(g0, g1).flat();
  const local = scorePairs(
    model,
    encoder,
    mine.map((i) => pairs[i]),
    scoreBatch,
    options.onBatch,
  );
  const gathered = await allgatherFloat32(world, local);
  if (gathered.length !== pairs.length)
    throw new Error(
      `rank ${world.rank}: the ranks returned ${gathered.length} scores for ${pairs.length} pairs (do all ranks score the same pairs?)`,
    );
  // The shares concatenate, in rank order, to every query's pairs in query order.
  const out = new Float32Array(pairs.length);
  let at = 0;
  for (const g of byQuery) for (const i of g) out[i] = gathered[at++];
  return out;
}

// qid -> passage -> score for the queries, from their candidates' scores in order.
function runOf(queries: ReadonlyArray<{ qid: string; pids: string[] }>, scores: Float32Array): Run {
  const run: Run = new Map();
  let at = 0;
  for (const { qid, pids } of queries) {
    const m = new Map<string, number>();
    for (const p of pids) m.set(p, scores[at++]);
    run.set(qid, m);
  }
  return run;
}

/**
 * The model's scores of each query's BM25 candidates (first `queries` queries of the split), in one
 * process (rerankSharded is the same under several ranks).
 */
export function rerank(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number },
): Run {
  const queries = evalQueries(coll, { split, queries: options.queries });
  const pairs = queries.flatMap(({ qid, pids }) => pids.map((pid): [string, string] => [qid, pid]));
  return runOf(queries, scorePairs(model, encoder, pairs, options.scoreBatch));
}

/**
 * rerank across the world's ranks: each rank scores a contiguous share of the queries (shardRange
 * over the query list), the float32 scores are gathered in rank order, and every rank returns the
 * Run one process computes, bit for bit.
 */
export async function rerankSharded(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number; world?: World },
): Promise<Run> {
  const world = options.world ?? getWorld();
  const queries = evalQueries(coll, { split, queries: options.queries });
  const [start, end] = shardRange(queries.length, world);
  const pairs = queries.slice(start, end).flatMap(({ qid, pids }) => pids.map((pid): [string, string] => [qid, pid]));
  const scores = await allgatherFloat32(world, scorePairs(model, encoder, pairs, options.scoreBatch));
  const expected = queries.reduce((n, q) => n + q.pids.length, 0);
  if (scores.length !== expected)
    throw new Error(
      `rank ${world.rank}: the ranks returned ${scores.length} scores for ${expected} candidates (do all ranks evaluate the same queries?)`,
    );
  return runOf(queries, scores);
}

export interface EvalMetrics {
  /** MRR@10 */
  mrr10: number;
  ndcg10: number;
  /** queries averaged over */
  queries: number;
}

/**
 * MRR@10 and nDCG@10 of re-ranking the split's BM25 candidates, against the split's qrels, in one
 * process (evaluateModelSharded is the same under several ranks).
 */
export function evaluateModel(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number; source?: string },
): EvalMetrics {
  return metricsOf(rerank(model, encoder, coll, split, options), coll, split, options.source);
}

/**
 * evaluateModel across the world's ranks (rerankSharded): every rank returns the same metrics, those
 * of one process, so nothing needs broadcasting.
 */
export async function evaluateModelSharded(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  options: { queries?: number; scoreBatch: number; source?: string; world?: World },
): Promise<EvalMetrics> {
  return metricsOf(await rerankSharded(model, encoder, coll, split, options), coll, split, options.source);
}

function metricsOf(run: Run, coll: RankingCollection, split: Split, source = `evaluation on ${split}`): EvalMetrics {
  checkFiniteRun(run, source);
  const { mean, queries } = evaluateRun(run, evalQrels(coll, split, run), [10], source);
  return { mrr10: mean.rr10, ndcg10: mean.ndcg10, queries };
}
