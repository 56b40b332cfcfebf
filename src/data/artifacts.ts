// Checks that a ranking collection's labels cannot be read off a surface feature of its passages:
// the medians of a feature (length in words or WordPieces, ...) over the relevant passages vs the
// non-relevant BM25 candidates, and the MRR@10 of a "ranker" that orders each query's candidates by
// that feature alone, against the MRR@10 a random order has in expectation. A construction artifact
// (e.g. the inverse-cloze source passage being one sentence shorter than every other passage) shows
// as a median ratio far from 1 and a feature ranker far above the random baseline.
import { evaluateRun, type Qrels, type Run } from '../eval/metrics';

/** What the checks read: passage texts, judgments, and each query's candidates (best first). */
export interface JudgedCandidates {
  passages: Map<string, string>;
  qrels: Qrels;
  candidates: Map<string, readonly string[]>;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface FeatureMedians {
  /** over the judged passages of grade >= 1 (each query's, as training samples its positives) */
  relevant: number;
  /** over the candidates judged non-relevant (the negatives training samples) */
  other: number;
  /** relevant / other */
  ratio: number;
}

/** Medians of feature(text) over relevant passages and over non-relevant candidates, per (query, passage). */
export function featureMedians(c: JudgedCandidates, feature: (text: string) => number): FeatureMedians {
  const relevant: number[] = [];
  const other: number[] = [];
  for (const [qid, judged] of c.qrels) {
    for (const [pid, g] of judged) if (g >= 1) relevant.push(feature(passageText(c, pid)));
    for (const pid of c.candidates.get(qid) ?? []) if ((judged.get(pid) ?? 0) < 1) other.push(feature(passageText(c, pid)));
  }
  const r = median(relevant);
  const o = median(other);
  return { relevant: r, other: o, ratio: r / o };
}

function passageText(c: JudgedCandidates, pid: string): string {
  const text = c.passages.get(pid);
  if (text === undefined) throw new Error(`featureMedians: passage ${pid} is judged or a candidate but not in the collection`);
  return text;
}

/** Mean MRR@10 of ranking each query's candidates by feature(text), highest first (trec_eval ties). */
export function featureRankerMrr10(c: JudgedCandidates, feature: (text: string) => number): number {
  const run: Run = new Map();
  for (const [qid, pids] of c.candidates) run.set(qid, new Map(pids.map((pid) => [pid, feature(passageText(c, pid))])));
  return evaluateRun(run, c.qrels).mean.rr10;
}

/**
 * Expected MRR@10 of a uniformly random order of each query's candidates, exactly: with n
 * candidates of which r are relevant, P(first relevant at rank k) = prod_{i<k-1} (n-r-i)/(n-i) * r/(n-k+1).
 * Averaged over every qrels query (one with no relevant passage scores 0), as evaluateRun averages.
 */
export function randomMrr10(c: JudgedCandidates): number {
  let sum = 0;
  let queries = 0;
  for (const [qid, judged] of c.qrels) {
    queries += 1;
    const pids = c.candidates.get(qid) ?? [];
    const n = pids.length;
    const r = pids.filter((pid) => (judged.get(pid) ?? 0) >= 1).length;
    if (r === 0) continue;
    let noneBefore = 1; // P(ranks 1..k-1 all non-relevant)
    for (let k = 1; k <= Math.min(10, n - r + 1); k++) {
      sum += (noneBefore * r) / (n - k + 1) / k;
      noneBefore *= (n - r - (k - 1)) / (n - (k - 1));
    }
  }
  return queries > 0 ? sum / queries : 0;
}
