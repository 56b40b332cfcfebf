// Re-ranking metrics and the paired t-test against hand-computed values (trec_eval conventions).
import * as path from 'path';

import {
  evaluateQuery,
  evaluateRun,
  evaluateTrec,
  pairedTTest,
  rankDocs,
  readTrecQrels,
  readTrecRun,
} from '../src/eval';

const m = (o: Record<string, number>) => new Map(Object.entries(o));

describe('rankDocs', () => {
  it('orders by score descending, ties by docid descending (trec_eval)', () => {
    expect(rankDocs(m({ a: 1, b: 1, c: 1, d: 2, e: 0.5 }))).toEqual(['d', 'c', 'b', 'a', 'e']);
  });
});

describe('evaluateQuery', () => {
  // ranking d2 d5 d1 d3 d4; relevant (grade >= 1): d1 (1), d3 (2), d4 (1)
  const run = m({ d1: 0.5, d2: 0.9, d3: 0.3, d5: 0.7, d4: 0.1 });
  const judged = m({ d1: 1, d2: 0, d3: 2, d4: 1 });
  const q = evaluateQuery(rankDocs(run), judged, [2, 4, 10]);

  it('RR@10 is 1 / rank of the first relevant document', () => expect(q.rr10).toBeCloseTo(1 / 3, 12));
  it('AP averages precision at each relevant document over all relevant ones', () =>
    expect(q.ap).toBeCloseTo((1 / 3 + 2 / 4 + 3 / 5) / 3, 12));
  it('nDCG@10 uses linear gains and log2(rank + 1) discounts', () => {
    const dcg = 1 / Math.log2(4) + 2 / Math.log2(5) + 1 / Math.log2(6);
    const idcg = 2 + 1 / Math.log2(3) + 1 / Math.log2(4);
    expect(q.ndcg10).toBeCloseTo(dcg / idcg, 12);
  });
  it('recall@k counts relevant documents in the top k', () => expect(q.recall).toEqual({ 2: 0, 4: 2 / 3, 10: 1 }));

  it('a relevant document below rank 10 gives RR@10 = 0 but counts for AP', () => {
    const scores = m(
      Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`d${String(i).padStart(2, '0')}`, 12 - i])),
    );
    const r = evaluateQuery(rankDocs(scores), m({ d10: 1 }));
    expect(r.rr10).toBe(0);
    expect(r.ap).toBeCloseTo(1 / 11, 12);
    expect(r.ndcg10).toBe(0);
  });

  it('ties are resolved before the metric: docid order decides the rank', () => {
    expect(evaluateQuery(rankDocs(m({ a: 1, b: 1, c: 1 })), m({ a: 1 })).rr10).toBeCloseTo(1 / 3, 12);
    expect(evaluateQuery(rankDocs(m({ a: 1, b: 1, c: 1 })), m({ c: 1 })).rr10).toBe(1);
  });
});

describe('evaluateRun', () => {
  const qrels = new Map([
    ['q1', m({ a: 1 })],
    ['q2', m({ x: 2, y: 0 })],
    ['q3', m({ z: 0 })], // no relevant document: left out of the means
  ]);
  const run = new Map([
    ['q1', m({ a: 0.1, b: 0.9 })], // a at rank 2
    ['q3', m({ z: 1 })],
    ['q9', m({ a: 1 })], // not in the qrels: ignored
  ]);
  const r = evaluateRun(run, qrels, [1]);

  it('averages over the qrels queries with a relevant document; missing ones score 0', () => {
    expect(r.queries).toBe(2);
    expect(r.perQuery.get('q2')).toEqual({ rr10: 0, ndcg10: 0, ap: 0, recall: { 1: 0 } });
    expect(r.mean.rr10).toBeCloseTo((1 / 2 + 0) / 2, 12);
    expect(r.mean.ap).toBeCloseTo((1 / 2 + 0) / 2, 12);
    expect(r.mean.ndcg10).toBeCloseTo(1 / Math.log2(3) / 2, 12);
    expect(r.mean.recall[1]).toBe(0);
  });
});

describe('evaluateRun and evaluateTrec', () => {
  it("agree per query; evaluateRun's means leave out the qrels queries with no relevant document", async () => {
    const dir = path.join(__dirname, 'fixtures', 'trec');
    const qrels = await readTrecQrels(path.join(dir, 'qrels.txt'));
    const ranked = await readTrecRun(path.join(dir, 'run.txt'));
    const run = new Map([...ranked].map(([q, es]) => [q, new Map(es.map((e) => [e.docno, e.score]))]));
    const ours = evaluateRun(run, qrels, [10, 100]);
    const trec = evaluateTrec(ranked, qrels);
    expect([...ours.perQuery.keys()].sort()).toEqual(['q1', 'q2', 'q4', 'q5', 'q6']); // q3: no relevant document
    for (const [qid, m] of ours.perQuery) {
      const t = trec.perQuery.get(qid)!;
      expect([m.rr10, m.ndcg10, m.ap, m.recall[10], m.recall[100]]).toEqual([
        t.recipRank10,
        t.ndcg10,
        t.map,
        t.recall10,
        t.recall100,
      ]);
    }
    expect(trec.queries).toBe(6);
    expect(ours.mean.ap * 5).toBeCloseTo(trec.mean.map * 6, 12); // q3 adds 0 to trec_eval's sum
  });
});

describe('pairedTTest', () => {
  // Student's t CDF for 3 degrees of freedom in closed form, independent of the library.
  const cdf3 = (t: number) => 0.5 + (t / Math.sqrt(3) / (1 + (t * t) / 3) + Math.atan(t / Math.sqrt(3))) / Math.PI;

  it('matches the hand-computed statistic and two-sided p-value', () => {
    const a = m({ q1: 0.5, q2: 0.7, q3: 0.2, q4: 0.9 });
    const b = m({ q1: 0.4, q2: 0.5, q3: 0.3, q4: 0.6, q5: 1 }); // q5 is not in a: not paired
    const r = pairedTTest(a, b);
    const diffs = [0.1, 0.2, -0.1, 0.3];
    const mean = 0.125;
    const sd = Math.sqrt(diffs.reduce((s, d) => s + (d - mean) ** 2, 0) / 3);
    const t = mean / (sd / 2);
    expect(r.n).toBe(4);
    expect(r.df).toBe(3);
    expect(r.meanDiff).toBeCloseTo(mean, 12);
    expect(r.t).toBeCloseTo(t, 10);
    expect(r.p).toBeCloseTo(2 * (1 - cdf3(t)), 8);
    expect(pairedTTest(b, a).p).toBeCloseTo(r.p, 12);
  });

  it('identical runs give p = 1; a constant shift gives p = 0', () => {
    const a = m({ q1: 0.1, q2: 0.5, q3: 0.9 });
    expect(pairedTTest(a, a)).toMatchObject({ meanDiff: 0, p: 1 });
    const shifted = m({ q1: 0.2, q2: 0.6, q3: 1.0 });
    expect(pairedTTest(shifted, a).p).toBe(0);
  });

  it('needs two paired queries', () => {
    expect(() => pairedTTest(m({ q1: 1 }), m({ q1: 0 }))).toThrow(/at least 2 queries/);
  });
});
