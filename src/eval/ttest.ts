// Paired two-sided Student t-test between two runs' per-query scores, the test IR papers report for
// "significantly better than". The t distribution's CDF comes from @stdlib (a maintained numerics
// library); the statistic is a few lines.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tCdf: (x: number, v: number) => number = require('@stdlib/stats-base-dists-t-cdf');

export interface TTestResult {
  /** mean of a - b */
  meanDiff: number;
  t: number;
  df: number;
  /** two-sided p-value */
  p: number;
  n: number;
}

/** Paired t-test over the queries both maps score. Needs at least 2 such queries. */
export function pairedTTest(a: Map<string, number>, b: Map<string, number>): TTestResult {
  const diffs = [...a.keys()].filter((q) => b.has(q)).map((q) => a.get(q)! - b.get(q)!);
  const n = diffs.length;
  if (n < 2) throw new Error(`pairedTTest: needs at least 2 queries scored by both runs, got ${n}`);
  const meanDiff = diffs.reduce((s, d) => s + d, 0) / n;
  const variance = diffs.reduce((s, d) => s + (d - meanDiff) ** 2, 0) / (n - 1);
  const df = n - 1;
  if (variance === 0) {
    // Every query moved by the same amount: no spread to test against.
    return { meanDiff, t: meanDiff === 0 ? 0 : Math.sign(meanDiff) * Infinity, df, p: meanDiff === 0 ? 1 : 0, n };
  }
  const t = meanDiff / Math.sqrt(variance / n);
  const p = Math.min(1, 2 * (1 - tCdf(Math.abs(t), df)));
  return { meanDiff, t, df, p, n };
}
