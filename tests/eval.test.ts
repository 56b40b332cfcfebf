// Re-ranking metrics and the paired t-test against hand-computed values (trec_eval conventions).
import * as fs from 'fs';
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
    ['q3', m({ z: 0 })], // no relevant document: scores 0 and counts in the means (trec_eval -c)
  ]);
  const run = new Map([
    ['q1', m({ a: 0.1, b: 0.9 })], // a at rank 2
    ['q3', m({ z: 1 })],
    ['q9', m({ a: 1 })], // not in the qrels: ignored
  ]);
  const r = evaluateRun(run, qrels, [1]);

  it('averages over every qrels query as trec_eval -c: missing ones and ones with nothing relevant score 0', () => {
    expect(r.queries).toBe(3);
    expect(r.perQuery.get('q2')).toEqual({ rr10: 0, ndcg10: 0, ap: 0, recall: { 1: 0 } });
    expect(r.perQuery.get('q3')).toEqual({ rr10: 0, ndcg10: 0, ap: 0, recall: { 1: 0 } });
    // by hand: q1 RR 1/2, AP 1/2, nDCG 1/log2(3); q2 and q3 0
    expect(r.mean.rr10).toBeCloseTo(1 / 2 / 3, 12);
    expect(r.mean.ap).toBeCloseTo(1 / 2 / 3, 12);
    expect(r.mean.ndcg10).toBeCloseTo(1 / Math.log2(3) / 3, 12);
    expect(r.mean.recall[1]).toBe(0);
  });

  it('a run of only queries with nothing relevant averages to 0, not NaN', () => {
    const e = evaluateRun(new Map([['q3', m({ z: 1 })]]), new Map([['q3', m({ z: 0 })]]), [10]);
    expect(e).toMatchObject({ queries: 1, mean: { rr10: 0, ndcg10: 0, ap: 0, recall: { 10: 0 } } });
  });
});

describe('evaluateRun and evaluateTrec', () => {
  const dir = path.join(__dirname, 'fixtures', 'trec');
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as {
    cases: Array<{
      qrels: string;
      run: string;
      relevanceLevel: number;
      complete: boolean;
      values: Record<string, Record<string, number>>;
    }>;
  };
  // trec_eval -c at relevance level 1 (evaluateRun's level), with queries that have nothing relevant
  // (qrels.txt's q3; four in qrels.random.txt) and qrels queries missing from the run.
  const cases = expected.cases.filter((c) => c.relevanceLevel === 1 && c.complete);

  it.each(cases.map((c) => [c.qrels, c]))("%s: means equal trec_eval -c's printed ones", async (_, c) => {
    const qrels = await readTrecQrels(path.join(dir, c.qrels));
    const ranked = await readTrecRun(path.join(dir, c.run));
    const run = new Map([...ranked].map(([q, es]) => [q, new Map(es.map((e) => [e.docno, e.score]))]));
    const ours = evaluateRun(run, qrels, [10, 100]);
    const all = c.values.all;
    expect(ours.queries).toBe(all.num_q);
    // trec_eval prints 4 decimals
    expect(ours.mean.rr10).toBeCloseTo(all.recip_rank_10, 4);
    expect(ours.mean.ap).toBeCloseTo(all.map, 4);
    expect(ours.mean.ndcg10).toBeCloseTo(all.ndcg_cut_10, 4);
    expect(ours.mean.recall[10]).toBeCloseTo(all.recall_10, 4);
    expect(ours.mean.recall[100]).toBeCloseTo(all.recall_100, 4);
    const trec = evaluateTrec(ranked, qrels);
    expect(ours.mean.ap).toBeCloseTo(trec.mean.map, 12);
    expect(ours.mean.ndcg10).toBeCloseTo(trec.mean.ndcg10, 12);
    for (const [qid, mq] of ours.perQuery) {
      const t = trec.perQuery.get(qid)!;
      expect([mq.rr10, mq.ndcg10, mq.ap, mq.recall[10], mq.recall[100]]).toEqual([
        t.recipRank10,
        t.ndcg10,
        t.map,
        t.recall10,
        t.recall100,
      ]);
    }
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
