export { rankDocs, evaluateQuery, evaluateRun } from './metrics';
export type { Qrels, Run, QueryMetrics, RunMetrics } from './metrics';
export { pairedTTest } from './ttest';
export type { TTestResult } from './ttest';
