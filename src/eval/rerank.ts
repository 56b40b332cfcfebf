// Re-ranking evaluation: each model re-ranks every evaluation query's BM25 candidates, one forward
// pass per query (that pass is timed: "re-ranking ms per query" is what a search engine would wait
// for one query's top-k), then MRR@10 and nDCG@10 per query (metrics.ts, trec_eval's definitions) and
// a paired two-sided t-test of each model against a baseline on the per-query values (ttest.ts).
import * as tf from '@tensorflow/tfjs';

import type { Split } from '../data/collection';
import type { RankingCollection } from '../data/ranking_collection';
import { allgatherFloat32, allgatherJson, getWorld, shardRange, type World } from '../distributed/world';
import { disposeEncoderInputs, type CrossEncoder } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';
import { evaluateRun, type QueryMetrics, type Qrels, type Run } from './metrics';
import { pairedTTest } from './ttest';

/** A model's row of the results table. */
export interface ResultRow {
  name: string;
  kind: 'bm25' | 'teacher' | 'student' | 'model';
  /** the objective in words, e.g. "ranknet 1 + kl 1" */
  objective?: string;
  mrr10: number;
  ndcg10: number;
  /** two-sided paired t-test vs the baseline row on per-query MRR@10 / nDCG@10 (null: the baseline itself, or no baseline) */
  pMrr10: number | null;
  pNdcg10: number | null;
  parameters: number | null;
  /** mean wall time to score one query's candidates (one forward pass per query) */
  msPerQuery: number | null;
  /** a model trained over several seeds: the sample standard deviation of the seeds' means */
  sd?: { mrr10: number; ndcg10: number };
  /** each seed's means (a model trained over several seeds) */
  seeds?: SeedMeans[];
  /** qid -> the query's metrics (averaged over the seeds), for anyone's own tests; absent in a
   * training run's report, whose row is its last in-training evaluation */
  perQuery?: Record<string, { mrr10: number; ndcg10: number }>;
}

export interface SeedMeans {
  seed: number;
  mrr10: number;
  ndcg10: number;
}

/** A phase that is not a training run: scoring pairs, evaluating, ... */
export interface TaskEvent {
  type: 'task';
  /** what is being done, e.g. "teacher scores", "eval student-1" */
  label: string;
  done: number;
  total: number;
  /** unit of done/total, e.g. "pairs", "queries" */
  unit: string;
}

export interface EvalTarget {
  split: Split;
  /** the first n queries of the split (all when undefined) */
  queries?: number;
  /** re-rank the BM25 top-k (all candidates when undefined) */
  candidates?: number;
}

export interface ModelEvaluation {
  name: string;
  kind: ResultRow['kind'];
  objective?: string;
  parameters: number | null;
  msPerQuery: number | null;
  mean: { mrr10: number; ndcg10: number };
  perQuery: Map<string, QueryMetrics>;
  /** the ranking evaluated: qid -> passage -> score (written with trec.ts's writeTrecRun); a model
   * trained over several seeds: the first seed's */
  run: Run;
  /** a model trained over several seeds (combineSeeds): each seed's means */
  seeds?: SeedMeans[];
}

/**
 * One row for a model trained over several seeds: per query, each metric averaged over the seeds
 * (so the t-test against the baseline compares per-query means over seeds, the way the seed-averaged
 * score of a query is the quantity of interest), the means over queries of those, and each seed's
 * own means for the spread. Every seed must have evaluated the same queries.
 */
export function combineSeeds(evals: Array<{ seed: number; evaluation: ModelEvaluation }>): ModelEvaluation {
  if (evals.length === 0) throw new Error('combineSeeds: no evaluations');
  const first = evals[0].evaluation;
  const qids = [...first.perQuery.keys()];
  for (const { seed, evaluation } of evals)
    if (evaluation.perQuery.size !== qids.length || qids.some((q) => !evaluation.perQuery.has(q)))
      throw new Error(
        `combineSeeds: ${first.name} seed ${seed} was evaluated on other queries than seed ${evals[0].seed}`,
      );
  const n = evals.length;
  const perQuery = new Map<string, QueryMetrics>();
  for (const q of qids) {
    const ms = evals.map((e) => e.evaluation.perQuery.get(q)!);
    const avg = (f: (m: QueryMetrics) => number) => ms.reduce((acc, m) => acc + f(m), 0) / n;
    const recall: Record<number, number> = {};
    for (const k of Object.keys(ms[0].recall)) recall[Number(k)] = avg((m) => m.recall[Number(k)]);
    perQuery.set(q, { rr10: avg((m) => m.rr10), ndcg10: avg((m) => m.ndcg10), ap: avg((m) => m.ap), recall });
  }
  const mean = (f: (m: QueryMetrics) => number) =>
    qids.length ? qids.reduce((acc, q) => acc + f(perQuery.get(q)!), 0) / qids.length : 0;
  const timed = evals.map((e) => e.evaluation.msPerQuery).filter((x): x is number => x != null);
  return {
    ...first,
    msPerQuery: timed.length ? timed.reduce((a, b) => a + b, 0) / timed.length : null,
    mean: { mrr10: mean((m) => m.rr10), ndcg10: mean((m) => m.ndcg10) },
    perQuery,
    seeds: evals.map(({ seed, evaluation }) => ({ seed, ...evaluation.mean })),
  };
}

/** Sample standard deviation (n - 1); 0 for one value. */
export function sampleSd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** The split's evaluation queries (first n) and their top-k candidates, in file order. */
export function evalQueries(coll: RankingCollection, target: EvalTarget): Array<{ qid: string; pids: string[] }> {
  const qids = [...coll.queries[target.split].keys()].slice(0, target.queries);
  return qids.map((qid) => ({ qid, pids: (coll.candidates[target.split].get(qid) ?? []).slice(0, target.candidates) }));
}

/** The split's judgments of the queries in `run`. */
export function evalQrels(coll: RankingCollection, split: Split, run: Run): Qrels {
  return new Map([...coll.qrels[split]].filter(([q]) => run.has(q)));
}

/**
 * Scores each query's candidates with one forward pass per query, timing each pass: building the
 * input tensors from token ids, the forward pass, reading the scores back. Texts are tokenized
 * before the timing starts (the encoder caches token ids, so otherwise the first model timed would
 * pay for everyone's tokenization). Every pass is padded to the encoder's maxLength: one shape for
 * all queries (padding is masked out and does not change the scores), as a serving system would
 * batch, and the same work for every model.
 *
 * Under several ranks (`world`, default the process's) each rank scores a contiguous share of the
 * queries (shardRange) and the float32 scores are gathered in rank order: every rank returns the Run
 * of one process, bit for bit (a query's pass has one shape whichever rank runs it). msPerQuery is
 * then the mean over all queries of their pass's time on the rank that ran it (each rank warms up
 * on its own first query): the per-query latency, not the wall time of the whole evaluation, and
 * comparable to one process's only when the ranks do not share a device or cores. `onQuery` counts
 * this rank's own queries.
 */
export async function rerankTimed(
  model: CrossEncoder,
  encoder: PairEncoder,
  queries: Array<{ qid: string; pids: string[] }>,
  onQuery?: (done: number, total: number) => void,
  options: { world?: World } = {},
): Promise<{ run: Run; msPerQuery: number }> {
  const world = options.world ?? getWorld();
  const [start, end] = shardRange(queries.length, world);
  const mine = queries.slice(start, end);
  for (const { qid, pids } of mine) for (const p of pids) encoder.pairLength(qid, p);
  const score = (qid: string, pids: string[]) => {
    const { inputs, tokenMask } = encoder.encode(
      pids.map((p): [string, string] => [qid, p]),
      encoder.maxLength,
    );
    const scores = model.forward(inputs).scores;
    const values = scores.dataSync();
    disposeEncoderInputs(inputs);
    tf.dispose([scores, tokenMask]);
    return values;
  };
  // Warm-up (first-call allocations, kernel set-up) outside the timing.
  const first = mine.find((q) => q.pids.length > 0);
  if (first) score(first.qid, first.pids);
  let ms = 0;
  let timed = 0;
  const local = new Float32Array(mine.reduce((n, q) => n + q.pids.length, 0));
  let at = 0;
  mine.forEach(({ qid, pids }, i) => {
    if (pids.length > 0) {
      const t0 = process.hrtime.bigint();
      const values = score(qid, pids);
      ms += Number(process.hrtime.bigint() - t0) / 1e6;
      timed += 1;
      local.set(values, at);
      at += pids.length;
    }
    onQuery?.(i + 1, mine.length);
  });
  const scores = await allgatherFloat32(world, local);
  const expected = queries.reduce((n, q) => n + q.pids.length, 0);
  if (scores.length !== expected)
    throw new Error(
      `rank ${world.rank}: the ranks returned ${scores.length} scores for ${expected} candidates (do all ranks evaluate the same queries?)`,
    );
  const times = world.size === 1 ? [{ ms, timed }] : await allgatherJson(world, { ms, timed });
  const allMs = times.reduce((a, t) => a + t.ms, 0);
  const allTimed = times.reduce((a, t) => a + t.timed, 0);
  const run: Run = new Map();
  at = 0;
  for (const { qid, pids } of queries) {
    const m = new Map<string, number>();
    for (const p of pids) m.set(p, scores[at++]);
    run.set(qid, m);
  }
  return { run, msPerQuery: allTimed ? allMs / allTimed : 0 };
}

/** A model's evaluation on `target`; under several ranks, sharded by query as rerankTimed is. */
export async function evaluateCrossEncoder(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  target: EvalTarget,
  info: { name: string; kind: ResultRow['kind']; objective?: string },
  onTask?: (e: TaskEvent) => void,
  options: { world?: World } = {},
): Promise<ModelEvaluation> {
  const queries = evalQueries(coll, target);
  const { run, msPerQuery } = await rerankTimed(
    model,
    encoder,
    queries,
    (done, total) => onTask?.({ type: 'task', label: `eval ${info.name}`, done, total, unit: 'queries' }),
    options,
  );
  const source = `eval ${info.name}`;
  checkFiniteRun(run, source);
  const { perQuery, mean } = evaluateRun(run, evalQrels(coll, target.split, run), [10], source);
  return {
    ...info,
    parameters: model.parameterCount(),
    msPerQuery,
    mean: { mrr10: mean.rr10, ndcg10: mean.ndcg10 },
    perQuery,
    run,
  };
}

/**
 * Throws at a model's first non-finite score, naming the query, the passage and `source`: a NaN
 * would rank by insertion order and an Inf hides every other score's order, so either gives metrics
 * that look plausible and mean nothing.
 */
export function checkFiniteRun(run: Run, source: string): void {
  for (const [qid, scores] of run)
    for (const [pid, s] of scores)
      if (!Number.isFinite(s))
        throw new Error(`${source}: the model scored query ${qid}, passage ${pid} as ${s}; scores must be finite`);
}

/** BM25's own ranking of the same candidates (the first stage), for reference. */
/** The name of BM25's own row in the tables. */
export const BM25_ROW_NAME = 'BM25 (first stage)';

export function evaluateBm25(coll: RankingCollection, target: EvalTarget): ModelEvaluation {
  const run: Run = new Map(
    evalQueries(coll, target).map(({ qid, pids }) => [qid, new Map(pids.map((p, i) => [p, pids.length - i]))]),
  );
  const { perQuery, mean } = evaluateRun(run, evalQrels(coll, target.split, run), [10]);
  return {
    name: BM25_ROW_NAME,
    kind: 'bm25',
    parameters: null,
    msPerQuery: null,
    mean: { mrr10: mean.rr10, ndcg10: mean.ndcg10 },
    perQuery,
    run,
  };
}

/** Table rows; p-values against the row named `baseline` (none when null or absent). */
// Two-sided paired t-test of one metric over the queries both evaluations have.
function pairedP(a: ModelEvaluation, b: ModelEvaluation, key: 'rr10' | 'ndcg10'): number | null {
  try {
    return pairedTTest(
      new Map([...a.perQuery].map(([q, m]) => [q, m[key]])),
      new Map([...b.perQuery].map(([q, m]) => [q, m[key]])),
    ).p;
  } catch {
    return null; // fewer than 2 common queries
  }
}

/** One model against another beside the table's baseline column (the teacher against BM25). */
export interface Comparison {
  name: string;
  against: string;
  /** name's mean minus against's */
  mrr10: number;
  ndcg10: number;
  /** two-sided paired t-test over the per-query values */
  pMrr10: number | null;
  pNdcg10: number | null;
}

export function compareEvaluations(a: ModelEvaluation, b: ModelEvaluation): Comparison {
  return {
    name: a.name,
    against: b.name,
    mrr10: a.mean.mrr10 - b.mean.mrr10,
    ndcg10: a.mean.ndcg10 - b.mean.ndcg10,
    pMrr10: pairedP(a, b, 'rr10'),
    pNdcg10: pairedP(a, b, 'ndcg10'),
  };
}

export function tableRows(evals: ModelEvaluation[], baseline: string | null): ResultRow[] {
  const base = evals.find((e) => e.name === baseline) ?? null;
  const pOf = (e: ModelEvaluation, key: 'rr10' | 'ndcg10') => (!base || e === base ? null : pairedP(e, base, key));
  return evals.map((e) => ({
    name: e.name,
    kind: e.kind,
    objective: e.objective,
    mrr10: e.mean.mrr10,
    ndcg10: e.mean.ndcg10,
    pMrr10: pOf(e, 'rr10'),
    pNdcg10: pOf(e, 'ndcg10'),
    parameters: e.parameters,
    msPerQuery: e.msPerQuery,
    ...(e.seeds && e.seeds.length > 1
      ? {
          sd: { mrr10: sampleSd(e.seeds.map((x) => x.mrr10)), ndcg10: sampleSd(e.seeds.map((x) => x.ndcg10)) },
          seeds: e.seeds,
        }
      : {}),
    perQuery: Object.fromEntries([...e.perQuery].map(([q, m]) => [q, { mrr10: m.rr10, ndcg10: m.ndcg10 }])),
  }));
}
