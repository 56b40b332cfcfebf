export { rankDocs, evaluateQuery, evaluateRun } from './metrics';
export type { Qrels, Run, QueryMetrics, RunMetrics } from './metrics';
export { pairedTTest } from './ttest';
export type { TTestResult } from './ttest';
export { evalQueries, evalQrels, rerankTimed, evaluateCrossEncoder, evaluateBm25, tableRows } from './rerank';
export type { EvalTarget, ModelEvaluation, ResultRow, TaskEvent } from './rerank';
export {
  evaluateTrec,
  rankedRun,
  readTrecQrels,
  readTrecRun,
  trecQueryMeasures,
  trecTable,
  writeTrecRun,
} from './trec';
export type { RankedRun, RunEntry, TrecEvaluation, TrecMeasures, TrecOptions } from './trec';
