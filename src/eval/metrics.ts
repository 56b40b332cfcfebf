// Re-ranking metrics by the trec_eval definitions: RR@10 (recip_rank with -M 10), nDCG@10 (ndcg_cut_10,
// linear gains), AP (map), Recall@k (recall_k). Written here rather than taken from a package: the
// npm ones differ from trec_eval on ties, cut-offs or graded gains, and these few lines are checked
// against hand-computed cases in tests/eval.test.ts and, per query, against trec_eval's own numbers
// in tests/trec_eval.test.ts.
//
// Conventions (trec_eval's): a document is relevant when its grade is >= 1 (relevance_level 1);
// ranking is by score descending, ties broken by docid in DESCENDING string order (trec_eval's
// comp_sim_docno); unjudged documents count as non-relevant.
//
// The means are trec_eval -c's: over every query of the qrels, a query missing from the run and a
// query with no relevant document scoring 0 (so the training, suite and eval tables agree with
// trec_eval -c on the same run and qrels); trec.ts's evaluateTrec adds trec_eval's means without -c,
// relevance levels and MS MARCO's MRR@10.

/** qid -> docid -> graded relevance. */
export type Qrels = Map<string, Map<string, number>>;
/** qid -> docid -> score. */
export type Run = Map<string, Map<string, number>>;

export interface QueryMetrics {
  rr10: number;
  ndcg10: number;
  ap: number;
  /** recall@k for each k asked for */
  recall: Record<number, number>;
}

/**
 * Docids in trec_eval order: score descending, then docid descending. Equal scores tie, ±Infinity
 * included (compared, not subtracted: Inf - Inf is NaN). A NaN score has no place in a ranking: an
 * error naming the passage (and `where`, e.g. the query and the run's source).
 */
export function rankDocs(scores: Map<string, number>, where = 'run'): string[] {
  for (const [doc, s] of scores)
    if (typeof s !== 'number' || Number.isNaN(s))
      throw new Error(`${where}: passage ${doc} has score ${s}; scores must be numbers`);
  return [...scores.keys()].sort((a, b) => {
    const sa = scores.get(a)!;
    const sb = scores.get(b)!;
    if (sa !== sb) return sa < sb ? 1 : -1;
    return a < b ? 1 : a > b ? -1 : 0;
  });
}

/** Throws unless every k is an integer >= 1 (recall@0 has no meaning). */
export function checkCutoffs(recallAt: readonly number[]): void {
  for (const k of recallAt)
    if (!Number.isInteger(k) || k < 1) throw new Error(`recall@${k}: the cut-off must be an integer >= 1`);
}

const log2 = Math.log2;

/** All metrics of one query's ranking against its judgments. */
export function evaluateQuery(
  ranking: readonly string[],
  judged: Map<string, number>,
  recallAt: readonly number[] = [10, 100, 1000],
): QueryMetrics {
  checkCutoffs(recallAt);
  const grade = (d: string) => judged.get(d) ?? 0;
  const numRel = [...judged.values()].filter((g) => g >= 1).length;
  let rr10 = 0;
  let dcg10 = 0;
  let hits = 0;
  let precisionSum = 0;
  const hitsAt: number[] = [];
  ranking.forEach((doc, i) => {
    const g = grade(doc);
    const rank = i + 1;
    if (g >= 1) {
      hits += 1;
      precisionSum += hits / rank;
      if (rank <= 10 && rr10 === 0) rr10 = 1 / rank;
    }
    if (rank <= 10 && g > 0) dcg10 += g / log2(rank + 1);
    hitsAt.push(hits);
  });
  const ideal = [...judged.values()]
    .filter((g) => g > 0)
    .sort((a, b) => b - a)
    .slice(0, 10);
  const idcg10 = ideal.reduce((sum, g, i) => sum + g / log2(i + 2), 0);
  const recall: Record<number, number> = {};
  for (const k of recallAt) {
    const retrieved = ranking.length === 0 ? 0 : hitsAt[Math.min(k, ranking.length) - 1];
    recall[k] = numRel > 0 ? retrieved / numRel : 0;
  }
  return { rr10, ndcg10: idcg10 > 0 ? dcg10 / idcg10 : 0, ap: numRel > 0 ? precisionSum / numRel : 0, recall };
}

export interface RunMetrics {
  perQuery: Map<string, QueryMetrics>;
  mean: QueryMetrics;
  /** queries averaged over (every qrels query, as trec_eval -c) */
  queries: number;
}

/**
 * Per-query metrics and their means over every query of the qrels, as trec_eval -c averages: one
 * missing from the run or with no relevant document scores 0. A NaN score is an error naming the
 * query, the passage and `source` (what produced the run).
 */
export function evaluateRun(
  run: Run,
  qrels: Qrels,
  recallAt: readonly number[] = [10, 100, 1000],
  source = 'run',
): RunMetrics {
  checkCutoffs(recallAt);
  const perQuery = new Map<string, QueryMetrics>();
  for (const [qid, judged] of qrels) {
    const scores = run.get(qid);
    perQuery.set(qid, evaluateQuery(scores ? rankDocs(scores, `${source}: query ${qid}`) : [], judged, recallAt));
  }
  // Queries outside the qrels are not averaged, but a NaN there is as wrong as anywhere.
  for (const [qid, scores] of run) if (!perQuery.has(qid)) rankDocs(scores, `${source}: query ${qid}`);
  const n = perQuery.size;
  const mean: QueryMetrics = { rr10: 0, ndcg10: 0, ap: 0, recall: Object.fromEntries(recallAt.map((k) => [k, 0])) };
  for (const m of perQuery.values()) {
    mean.rr10 += m.rr10 / n;
    mean.ndcg10 += m.ndcg10 / n;
    mean.ap += m.ap / n;
    for (const k of recallAt) mean.recall[k] += m.recall[k] / n;
  }
  return { perQuery, mean, queries: n };
}
