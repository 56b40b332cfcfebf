// Students over several seeds: the per-query means and the spread of the seeds' means
// (combineSeeds, tableRows), and the report's curve helpers (smoothing, the band over seeds).
import { combineSeeds, compareEvaluations, sampleSd, tableRows, type ModelEvaluation } from '../src/eval/rerank';
import { pairedTTest } from '../src/eval/ttest';
import type { QueryMetrics } from '../src/eval/metrics';
import { groupSeries, smooth, spread, svgLineChart, type ReportRun } from '../src/report';
import { comparisonLines, renderMarkdown, type RunReport } from '../src/report/report';

const q = (rr10: number, ndcg10: number): QueryMetrics => ({ rr10, ndcg10, ap: rr10, recall: { 10: ndcg10 } });

function evaluation(name: string, perQuery: Array<[string, QueryMetrics]>): ModelEvaluation {
  const m = new Map(perQuery);
  const mean = (f: (x: QueryMetrics) => number) => [...m.values()].reduce((a, x) => a + f(x), 0) / m.size;
  return {
    name,
    kind: 'student',
    parameters: 10,
    msPerQuery: 2,
    mean: { mrr10: mean((x) => x.rr10), ndcg10: mean((x) => x.ndcg10) },
    perQuery: m,
    run: new Map(),
  };
}

describe('combineSeeds', () => {
  const s1 = evaluation('s', [
    ['q1', q(1, 0.8)],
    ['q2', q(0, 0.1)],
    ['q3', q(0.5, 0.5)],
  ]);
  const s2 = evaluation('s', [
    ['q1', q(0.5, 0.6)],
    ['q2', q(0.25, 0.3)],
    ['q3', q(0.5, 0.2)],
  ]);

  it('averages each query over the seeds and keeps each seed mean', () => {
    const c = combineSeeds([
      { seed: 1, evaluation: s1 },
      { seed: 2, evaluation: s2 },
    ]);
    expect(c.perQuery.get('q1')).toEqual({ rr10: 0.75, ndcg10: 0.7, ap: 0.75, recall: { 10: 0.7 } });
    expect(c.perQuery.get('q2')!.rr10).toBeCloseTo(0.125, 15);
    expect(c.mean.mrr10).toBeCloseTo((0.75 + 0.125 + 0.5) / 3, 15);
    expect(c.mean.mrr10).toBeCloseTo((s1.mean.mrr10 + s2.mean.mrr10) / 2, 15);
    expect(c.seeds).toEqual([
      { seed: 1, ...s1.mean },
      { seed: 2, ...s2.mean },
    ]);
    const [row] = tableRows([c], null);
    expect(row.sd!.mrr10).toBeCloseTo(sampleSd([s1.mean.mrr10, s2.mean.mrr10]), 15);
    expect(row.sd!.mrr10).toBeCloseTo(Math.abs(s1.mean.mrr10 - s2.mean.mrr10) / Math.SQRT2, 15);
    expect(row.perQuery).toEqual({
      q1: { mrr10: 0.75, ndcg10: 0.7 },
      q2: { mrr10: 0.125, ndcg10: expect.closeTo(0.2, 15) },
      q3: { mrr10: 0.5, ndcg10: expect.closeTo(0.35, 15) },
    });
  });

  it('tests against the baseline on the seed-averaged per-query values', () => {
    const base = evaluation('base', [
      ['q1', q(0, 0)],
      ['q2', q(0, 0)],
      ['q3', q(0, 0)],
    ]);
    const c = combineSeeds([
      { seed: 1, evaluation: s1 },
      { seed: 2, evaluation: s2 },
    ]);
    const rows = tableRows([base, c], 'base');
    // diffs 0.75, 0.125, 0.5: mean 0.4583, sd 0.3146, t = 2.523 on 2 df -> p = 0.1276
    expect(rows[1].pMrr10).toBeCloseTo(0.1276, 3);
    expect(rows[0].sd).toBeUndefined();
  });

  it('refuses seeds evaluated on different queries, naming the seed', () => {
    const other = evaluation('s', [['q9', q(1, 1)]]);
    expect(() =>
      combineSeeds([
        { seed: 1, evaluation: s1 },
        { seed: 4, evaluation: other },
      ]),
    ).toThrow(/s seed 4 was evaluated on other queries than seed 1/);
  });

  it('sampleSd is the n - 1 standard deviation', () => {
    expect(sampleSd([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(Math.sqrt(32 / 7), 15);
    expect(sampleSd([3])).toBe(0);
  });
});

describe('the teacher against BM25 (compareEvaluations)', () => {
  const teacher = evaluation('teacher', [
    ['q1', q(1, 0.9)],
    ['q2', q(0.5, 0.4)],
    ['q3', q(1, 0.7)],
    ['q4', q(0.25, 0.3)],
  ]);
  const bm25 = evaluation('BM25 (first stage)', [
    ['q1', q(0.5, 0.6)],
    ['q2', q(0.5, 0.5)],
    ['q3', q(0.2, 0.2)],
    ['q4', q(0, 0.1)],
  ]);

  it('gives the mean differences and the paired t-test of each metric, and prints them under the table', () => {
    const c = compareEvaluations(teacher, bm25);
    expect(c.mrr10).toBeCloseTo((0.5 + 0 + 0.8 + 0.25) / 4, 12);
    expect(c.ndcg10).toBeCloseTo((0.3 - 0.1 + 0.5 + 0.2) / 4, 12);
    const p = (key: 'rr10' | 'ndcg10') =>
      pairedTTest(
        new Map([...teacher.perQuery].map(([k, m]) => [k, m[key]])),
        new Map([...bm25.perQuery].map(([k, m]) => [k, m[key]])),
      ).p;
    expect(c.pMrr10).toBe(p('rr10'));
    expect(c.pNdcg10).toBe(p('ndcg10'));
    expect(c.pMrr10).not.toBe(c.pNdcg10);
    // the other way round: negative differences, the same p
    const r = compareEvaluations(bm25, teacher);
    expect(r.mrr10).toBeCloseTo(-c.mrr10, 12);
    expect(r.pMrr10).toBeCloseTo(c.pMrr10!, 12);
    const report: RunReport = {
      title: 't',
      created: '2026-01-01T00:00:00Z',
      environment: { cpu: 'x', cpus: 1, memoryGiB: 1, node: 'v20', platform: 'linux x64', backend: 'cpu' },
      wallSeconds: 1,
      evaluation: {
        split: 'test',
        queries: 4,
        candidates: 2,
        baseline: null,
        significance: '',
        timing: '',
        comparisons: [c, r],
      },
      rows: [],
      runs: [],
      notes: [],
    };
    const lines = comparisonLines(report);
    expect(lines[0]).toBe(
      `teacher − BM25 (first stage): MRR@10 +0.3875 (p ${c.pMrr10!.toFixed(3)}), nDCG@10 +0.2250 (p ${c.pNdcg10!.toFixed(3)}); two-sided paired t-test over the queries`,
    );
    expect(lines[1]).toMatch(/^BM25 \(first stage\) − teacher: MRR@10 −0\.3875/);
    expect(renderMarkdown(report)).toContain(lines[0]);
  });
});

describe('report curves', () => {
  it("smooth is TensorBoard's debiased exponential moving average", () => {
    const pts: Array<[number, number]> = [
      [1, 4],
      [2, 2],
      [3, 8],
    ];
    const w = 0.5;
    const out = smooth(pts, w);
    expect(out[0]).toEqual([1, 4]); // debiased: the first value itself
    expect(out[1][1]).toBeCloseTo((0.5 * 0.5 * 4 + 0.5 * 2) / (1 - 0.25), 15);
    expect(out[2][1]).toBeCloseTo((0.125 * 4 + 0.25 * 2 + 0.5 * 8) / (1 - 0.125), 15);
    // Short curves are left as they are; long ones are smoothed.
    expect(smooth(pts)).toEqual(pts);
    const noisy = Array.from({ length: 500 }, (_, i): [number, number] => [i, i % 2]);
    const s = smooth(noisy);
    expect(Math.abs(s[499][1] - 0.5)).toBeLessThan(0.05);
  });

  it('spread gives the mean and min-max band over the x values every series has', () => {
    const { mean, band } = spread([
      [
        [0, 1],
        [10, 3],
        [20, 5],
      ],
      [
        [0, 3],
        [10, 1],
      ],
    ]);
    expect(mean).toEqual([
      [0, 2],
      [10, 2],
    ]);
    expect(band).toEqual([
      [0, 1, 3],
      [10, 1, 3],
    ]);
  });

  it('draws a seeded model as one curve with a band, a single run as raw faint + smoothed', () => {
    const run = (name: string, seed: number, group?: string): ReportRun => ({
      name,
      kind: 'student',
      output: '/x',
      objective: 'ranknet 1',
      trained: true,
      seconds: 1,
      steps: Array.from({ length: 100 }, (_, i) => ({
        step: i + 1,
        lr: 0,
        gradNorm: 0,
        loss: 1 + seed + (i % 3),
        parts: {},
      })),
      evals: [],
      group,
      seed,
    });
    const series = groupSeries(
      [
        { name: 'a', runs: [run('a · seed 1', 1, 'a'), run('a · seed 2', 2, 'a')] },
        { name: 'b', runs: [run('b', 0)] },
      ],
      (r) => r.steps.map((s) => [s.step, s.loss]),
      true,
    );
    expect(series.map((s) => [s.name, !!s.faint, !!s.band])).toEqual([
      ['a (2 seeds)', false, true],
      ['b', true, false],
      ['b (smoothed)', false, false],
    ]);
    expect(series[0].band![99][2] - series[0].band![99][1]).toBeCloseTo(1, 10); // seeds 1 apart
    const svg = svgLineChart(series, { title: 't', xLabel: 'x', yLabel: 'y' });
    expect(svg).toContain('<polygon fill=');
    expect(svg).toContain('stroke-opacity="0.3"');
    expect((svg.match(/class="legend"/g) ?? []).length).toBe(2); // faint raw curves have no legend entry
  });
});
