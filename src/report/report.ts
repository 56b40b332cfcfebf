// A run report in three forms, written atomically side by side: report.json (everything: the table,
// every run's step log and evaluations, the environment), report.md (the table and a summary of each
// run) and report.html (one self-contained page: the metrics table and inline-SVG loss curves — no
// scripts, stylesheets, fonts or images from anywhere else, so it opens offline and can be mailed).
import * as os from 'os';
import * as path from 'path';

import { writeAtomic } from '../data/atomic';
import type { EvalLog, StepLog } from '../distill';
import { FUSION_FEATURE_TEXT, type FusionFeature } from '../distill/fusion';
import type { Comparison, ResultRow } from '../eval/rerank';

export interface ReportRun {
  name: string;
  kind: 'teacher' | 'student';
  output: string;
  objective: string;
  /** false: a finished run with the same config was reused */
  trained: boolean;
  seconds: number | null;
  steps: StepLog[];
  evals: EvalLog[];
  /** a student trained over several seeds: the student's name (its table row), and this run's seed */
  group?: string;
  seed?: number;
}

export interface RunReport {
  title: string;
  /** ISO time the report was written */
  created: string;
  environment: {
    cpu: string;
    cpus: number;
    memoryGiB: number;
    node: string;
    platform: string;
    backend: string;
    /** the matrix products' precision (FUSED_DISTILL_MATMUL_PRECISION) of the runs and the evaluation */
    precision?: string;
    /** the ranks that took a run's steps together (absent: one process) */
    worldSize?: number;
  };
  /** wall time of the whole command */
  wallSeconds: number | null;
  evaluation: {
    split: string;
    queries: number;
    /** candidates re-ranked per query (BM25 top-k) */
    candidates: number;
    baseline: string | null;
    significance: string;
    timing: string;
    /** pairs compared beside the baseline column: the teacher against BM25 */
    comparisons?: Comparison[];
    /** the teacher's score fusion (a teacher run's result.json `fusion`), when it has one */
    teacherFusion?: {
      weights: Record<string, number>;
      split: string;
      queries: number;
      mrr10: { network: number; fused: number };
    };
  } | null;
  rows: ResultRow[];
  runs: ReportRun[];
  notes: string[];
}

export function environment(backend: string, precision?: string): RunReport['environment'] {
  const cpus = os.cpus();
  return {
    ...(precision ? { precision } : {}),
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    backend,
  };
}

/** "ranknet 1 + kl 1 (T 2)": a run config's loss terms that are on, for the reports' objective column. */
export function objectiveText(loss: Record<string, unknown>): string {
  const terms = [
    'bce',
    'ranknet',
    'hinge',
    'listwiseCE',
    'kl',
    'marginMSE',
    'scoreMSE',
    'hiddenMSE',
    'attentionMSE',
    'embeddingMSE',
  ];
  const on = terms.filter((t) => ((loss[t] as number) ?? 0) > 0).map((t) => `${t} ${loss[t]}`);
  const extra = ((loss.kl as number) ?? 0) > 0 && loss.temperature !== 1 ? ` (T ${loss.temperature})` : '';
  return on.join(' + ') + extra;
}

// ------------------------------------------------------------------------------------------------
// Formatting

export const fmtMetric = (x: number) => x.toFixed(4);
export const fmtP = (p: number | null) => (p == null ? '—' : p < 0.001 ? '<0.001' : p.toFixed(3));
export const fmtParams = (n: number | null) =>
  n == null ? '—' : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
export const fmtMs = (ms: number | null) => (ms == null ? '—' : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

export const TABLE_HEADER = ['model', 'MRR@10', 'nDCG@10', 'p (MRR@10)', 'p (nDCG@10)', 'parameters', 'ms/query'];

/** "0.2012" or, over seeds, "0.2012 ± 0.0043" (sample sd of the seeds' means). */
export const fmtMean = (mean: number, sd: number | undefined) =>
  sd == null ? fmtMetric(mean) : `${fmtMetric(mean)} ± ${fmtMetric(sd)}`;

export function tableCells(rows: ResultRow[], baseline: string | null): string[][] {
  return rows.map((r) => [
    r.name === baseline ? `${r.name} (baseline)` : r.name,
    fmtMean(r.mrr10, r.sd?.mrr10),
    fmtMean(r.ndcg10, r.sd?.ndcg10),
    fmtP(r.pMrr10),
    fmtP(r.pNdcg10),
    fmtParams(r.parameters),
    fmtMs(r.msPerQuery),
  ]);
}

/** A Markdown table with padded columns (readable as plain text too); numbers right-aligned. */
export function markdownTable(header: string[], cells: string[][], numericFrom = 1): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = [header, ...cells].map((r) => r.map(esc));
  const width = header.map((_, i) => Math.max(3, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (i >= numericFrom ? c.padStart(width[i]) : c.padEnd(width[i]))).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (i >= numericFrom ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join('\n');
}

export function resultsTable(report: RunReport): string {
  return markdownTable(TABLE_HEADER, tableCells(report.rows, report.evaluation?.baseline ?? null));
}

const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(4)}`;

/** One line per comparison: "teacher − BM25 (first stage): MRR@10 +0.0312 (p 0.004), nDCG@10 ...". */
export function comparisonLines(report: RunReport): string[] {
  const lines = (report.evaluation?.comparisons ?? []).map(
    (c) =>
      `${c.name} − ${c.against}: MRR@10 ${signed(c.mrr10)} (p ${fmtP(c.pMrr10)}), ` +
      `nDCG@10 ${signed(c.ndcg10)} (p ${fmtP(c.pNdcg10)}); two-sided paired t-test over the queries`,
  );
  const f = report.evaluation?.teacherFusion;
  if (f) lines.push(fusionLine(f));
  return lines;
}

/** "teacher = its network + 0.5 × BM25 + 15 × word-vector similarity (weights chosen on ...)". */
export function fusionLine(f: NonNullable<NonNullable<RunReport['evaluation']>['teacherFusion']>): string {
  const terms = Object.entries(f.weights).map(([k, w]) => ` + ${w} × ${FUSION_FEATURE_TEXT[k as FusionFeature] ?? k}`);
  return (
    `teacher = its network${terms.join('')}; weights chosen on the ${f.queries} ${f.split} queries by MRR@10 ` +
    `(${fmtMetric(f.mrr10.network)} network alone → ${fmtMetric(f.mrr10.fused)} fused)`
  );
}

function runSummary(run: ReportRun): string {
  const last = run.steps.at(-1);
  const first = run.steps[0];
  const bits = [`${run.kind}, ${run.objective}`, `${run.steps.length} steps`];
  if (first && last) bits.push(`loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}`);
  if (last && Object.keys(last.parts).length > 1)
    bits.push(
      `last parts: ${Object.entries(last.parts)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(', ')}`,
    );
  const ev = run.evals.at(-1);
  if (ev) bits.push(`${ev.split} MRR@10 ${ev.mrr10.toFixed(4)} (${ev.queries} queries, step ${ev.step})`);
  bits.push(
    run.trained
      ? `trained in ${run.seconds == null ? '?' : `${run.seconds.toFixed(0)} s`}`
      : 'reused (finished run with the same config)',
  );
  return `- **${run.name}**: ${bits.join('; ')} — \`${run.output}\``;
}

export function renderMarkdown(report: RunReport): string {
  const e = report.environment;
  const out = [`# ${report.title}`, ''];
  out.push(
    `${report.created} · ${e.cpu} × ${e.cpus} · ${e.memoryGiB} GiB · Node ${e.node} · backend \`${e.backend}\`` +
      (e.precision ? ` · matrix products ${e.precision}` : '') +
      (e.worldSize && e.worldSize > 1 ? ` · ${e.worldSize} ranks` : '') +
      (report.wallSeconds != null ? ` · wall time ${report.wallSeconds.toFixed(0)} s` : ''),
  );
  out.push('');
  if (report.evaluation) {
    const v = report.evaluation;
    out.push(
      `Re-ranking the BM25 ${v.candidates ? `top-${v.candidates}` : 'candidates'} of ${v.queries} ${v.split} queries. ${v.significance} ${v.timing}`,
      '',
    );
  }
  if (report.rows.length) out.push(resultsTable(report), '');
  const comparisons = comparisonLines(report);
  if (comparisons.length) out.push(...comparisons, '');
  if (report.runs.length) out.push('## Runs', '', ...report.runs.map(runSummary), '');
  if (report.notes.length) out.push('## Notes', '', ...report.notes.map((n) => `- ${n}`), '');
  return `${out.join('\n')}\n`;
}

// ------------------------------------------------------------------------------------------------
// HTML with inline SVG charts

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** the series' colour (default: the palette's, by position) */
  color?: string;
  /** drawn thin and pale, without a legend entry: the raw values behind a smoothed curve */
  faint?: boolean;
  /** a shaded band (x, low, high) drawn under the line: the spread over seeds */
  band?: Array<[number, number, number]>;
}

/**
 * TensorBoard's smoothing: an exponential moving average, debiased at the start (so the first points
 * are not pulled toward 0), with the weight set so that about `points.length / 25` steps count.
 */
export function smooth(points: Array<[number, number]>, weight?: number): Array<[number, number]> {
  const w = weight ?? Math.max(0, 1 - 25 / Math.max(25, points.length));
  let ema = 0;
  return points.map(([x, y], i) => {
    ema = ema * w + (1 - w) * y;
    const debias = 1 - w ** (i + 1);
    return [x, w === 0 ? y : ema / debias];
  });
}

/** Per x present in every series: the mean, min and max over the series (seeds of one model). */
export function spread(series: Array<Array<[number, number]>>): {
  mean: Array<[number, number]>;
  band: Array<[number, number, number]>;
} {
  const maps = series.map((pts) => new Map(pts));
  const xs = series.length ? series[0].map(([x]) => x).filter((x) => maps.every((m) => m.has(x))) : [];
  const mean: Array<[number, number]> = [];
  const band: Array<[number, number, number]> = [];
  for (const x of xs) {
    const ys = maps.map((m) => m.get(x)!);
    mean.push([x, ys.reduce((a, b) => a + b, 0) / ys.length]);
    band.push([x, Math.min(...ys), Math.max(...ys)]);
  }
  return { mean, band };
}

/** At most `max` points: bucket means (keeps a noisy curve's trend), always the last point. */
export function downsample(points: Array<[number, number]>, max = 300): Array<[number, number]> {
  if (points.length <= max) return points;
  const out: Array<[number, number]> = [];
  const size = points.length / max;
  for (let b = 0; b < max; b++) {
    const chunk = points.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    if (!chunk.length) continue;
    out.push([chunk.reduce((s, p) => s + p[0], 0) / chunk.length, chunk.reduce((s, p) => s + p[1], 0) / chunk.length]);
  }
  return out;
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(10)));
  return ticks;
}

const tickText = (t: number) =>
  Math.abs(t) >= 1e4 || (t !== 0 && Math.abs(t) < 1e-3) ? t.toExponential(1) : String(Number(t.toPrecision(4)));

/** A line chart as an inline <svg> (no external references). */
export function svgLineChart(
  series: Series[],
  opts: { title: string; xLabel: string; yLabel: string; width?: number; height?: number },
): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 300;
  const m = { l: 58, r: 12, t: 28, b: 40 };
  const legendRows = Math.ceil(series.filter((s) => !s.faint).length / 3);
  const plotH = H - m.t - m.b - legendRows * 16;
  const plotW = W - m.l - m.r;
  const all = series
    .flatMap((s) => [
      ...s.points,
      ...(s.band ?? []).flatMap(([x, lo, hi]): Array<[number, number]> => [
        [x, lo],
        [x, hi],
      ]),
    ])
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const parts: string[] = [];
  parts.push(
    `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(opts.title)}">`,
  );
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" class="title">${escapeHtml(opts.title)}</text>`);
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('');
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(0, ...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const yt = niceTicks(y0, y1);
  y1 = Math.max(y1, yt.at(-1)!);
  y0 = Math.min(y0, yt[0]);
  const xt = niceTicks(x0, x1);
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) => m.t + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const f = (v: number) => v.toFixed(1);
  for (const t of yt) {
    parts.push(`<line x1="${m.l}" x2="${m.l + plotW}" y1="${f(sy(t))}" y2="${f(sy(t))}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${f(sy(t) + 4)}" text-anchor="end" class="tick">${tickText(t)}</text>`);
  }
  for (const t of xt) {
    if (t < x0 || t > x1) continue;
    parts.push(
      `<text x="${f(sx(t))}" y="${f(m.t + plotH + 16)}" text-anchor="middle" class="tick">${tickText(t)}</text>`,
    );
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${plotW}" height="${plotH}" class="frame"/>`);
  parts.push(
    `<text x="${m.l + plotW / 2}" y="${f(m.t + plotH + 32)}" text-anchor="middle" class="axis">${escapeHtml(opts.xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${m.t + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${m.t + plotH / 2})" class="axis">${escapeHtml(opts.yLabel)}</text>`,
  );
  let legendIndex = 0;
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const band = (s.band ?? []).filter(([x, lo, hi]) => [x, lo, hi].every(Number.isFinite));
    if (band.length > 1) {
      const outline = [...band.map(([x, , hi]) => [x, hi]), ...[...band].reverse().map(([x, lo]) => [x, lo])];
      parts.push(
        `<polygon fill="${color}" fill-opacity="0.15" stroke="none" points="${outline.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ')}"/>`,
      );
    }
    const pts = downsample(s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
    const stroke = s.faint
      ? `stroke="${color}" stroke-opacity="0.3" stroke-width="1"`
      : `stroke="${color}" stroke-width="1.75"`;
    if (pts.length === 1)
      parts.push(`<circle cx="${f(sx(pts[0][0]))}" cy="${f(sy(pts[0][1]))}" r="3" fill="${color}"/>`);
    else if (pts.length > 1)
      parts.push(
        `<polyline fill="none" ${stroke} points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ')}"/>`,
      );
    if (s.faint) return;
    const li = legendIndex++;
    const lx = m.l + (li % 3) * (plotW / 3);
    const ly = m.t + plotH + 46 + Math.floor(li / 3) * 16;
    parts.push(`<rect x="${f(lx)}" y="${ly - 9}" width="14" height="3" fill="${color}"/>`);
    parts.push(`<text x="${f(lx + 18)}" y="${ly - 4}" class="legend">${escapeHtml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** A run's total loss and (with several terms) each weighted term: raw values faint, smoothed bold. */
export function runSeries(run: ReportRun): Series[] {
  const curves: Series[] = [{ name: 'total loss', points: run.steps.map((s) => [s.step, s.loss]) }];
  const names = [...new Set(run.steps.flatMap((s) => Object.keys(s.parts)))];
  if (names.length > 1)
    for (const n of names)
      curves.push({ name: n, points: run.steps.filter((s) => n in s.parts).map((s) => [s.step, s.parts[n]]) });
  return curves.flatMap((c, i) => withRaw(c, PALETTE[i % PALETTE.length]));
}

/** The smoothed curve and, faint behind it, the raw one (when smoothing changes anything). */
function withRaw(c: Series, color: string): Series[] {
  const smoothed = smooth(c.points);
  if (smoothed.every(([, y], i) => y === c.points[i][1])) return [{ ...c, color }];
  return [
    { ...c, color, faint: true },
    { ...c, name: `${c.name} (smoothed)`, points: smoothed, color },
  ];
}

/** Runs by model: a student trained over several seeds is one group; any other run is its own. */
export function runGroups(runs: ReportRun[]): Array<{ name: string; runs: ReportRun[] }> {
  const groups = new Map<string, ReportRun[]>();
  for (const r of runs) {
    const key = r.group ?? r.name;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups].map(([name, rs]) => ({ name, runs: rs }));
}

/** One curve per group: its runs' mean (of each run's smoothed values when `smoothed`) and their min-max band. */
export function groupSeries(
  groups: Array<{ name: string; runs: ReportRun[] }>,
  points: (r: ReportRun) => Array<[number, number]>,
  smoothed: boolean,
): Series[] {
  return groups.flatMap((g, i) => {
    const color = PALETTE[i % PALETTE.length];
    if (g.runs.length === 1)
      return smoothed
        ? withRaw({ name: g.name, points: points(g.runs[0]) }, color)
        : [{ name: g.name, points: points(g.runs[0]), color }];
    const { mean, band } = spread(g.runs.map((r) => (smoothed ? smooth(points(r)) : points(r))));
    return [{ name: `${g.name} (${g.runs.length} seeds)`, points: mean, band, color }];
  });
}

const CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1360px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}table{border-collapse:collapse;margin:1em 0}
th,td{padding:4px 10px;border-bottom:1px solid #ddd}th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{font-weight:600}.meta{color:#555}.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #e4e4e4}svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .title{font-size:13px;font-weight:600}svg .axis{fill:#555}code{background:#f4f4f4;padding:0 3px}`;

export function renderHtml(report: RunReport): string {
  const e = report.environment;
  const baseline = report.evaluation?.baseline ?? null;
  const h: string[] = [];
  h.push(
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(report.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
  );
  h.push(`<h1>${escapeHtml(report.title)}</h1>`);
  h.push(
    `<p class="meta">${escapeHtml(report.created)} · ${escapeHtml(e.cpu)} × ${e.cpus} · ${e.memoryGiB} GiB · Node ${escapeHtml(e.node)} · backend <code>${escapeHtml(e.backend)}</code>` +
      (e.precision ? ` · matrix products ${escapeHtml(e.precision)}` : '') +
      (e.worldSize && e.worldSize > 1 ? ` · ${e.worldSize} ranks` : '') +
      (report.wallSeconds != null ? ` · wall time ${report.wallSeconds.toFixed(0)} s` : '') +
      '</p>',
  );
  if (report.evaluation) {
    const v = report.evaluation;
    h.push(
      `<p>Re-ranking the BM25 ${v.candidates ? `top-${v.candidates}` : 'candidates'} of ${v.queries} <b>${escapeHtml(v.split)}</b> queries. ${escapeHtml(v.significance)} ${escapeHtml(v.timing)}</p>`,
    );
  }
  if (report.rows.length) {
    h.push(
      '<table><thead><tr>',
      ...TABLE_HEADER.map((c) => `<th>${escapeHtml(c)}</th>`),
      '<th>objective</th></tr></thead><tbody>',
    );
    const cells = tableCells(report.rows, baseline);
    report.rows.forEach((r, i) => {
      h.push(`<tr${r.name === baseline ? ' class="baseline"' : ''}>`);
      cells[i].forEach((c, j) => h.push(`<td${j > 0 ? ' class="n"' : ''}>${escapeHtml(c)}</td>`));
      h.push(`<td>${escapeHtml(r.objective ?? '')}</td></tr>`);
    });
    h.push('</tbody></table>');
  }
  const trainedRuns = report.runs.filter((r) => r.steps.length > 0);
  if (trainedRuns.length) {
    h.push('<h2>Loss curves</h2>');
    const studentGroups = runGroups(trainedRuns.filter((r) => r.kind === 'student'));
    const seeded = studentGroups.some((g) => g.runs.length > 1);
    h.push(
      '<p class="meta">Smoothed curves (an exponential moving average, as TensorBoard draws them) with the raw values faint behind them' +
        (seeded
          ? "; a model trained over several seeds: the mean of its seeds' smoothed curves, the band spanning their min to max."
          : '.') +
        '</p>',
    );
    h.push('<div class="charts">');
    if (studentGroups.length > 1 || seeded)
      h.push(
        svgLineChart(
          groupSeries(studentGroups, (r) => r.steps.map((s) => [s.step, s.loss]), true),
          { title: 'students: total loss', xLabel: 'step', yLabel: 'loss' },
        ),
      );
    for (const run of trainedRuns)
      h.push(
        svgLineChart(runSeries(run), {
          title: `${run.name}: ${run.objective}`,
          xLabel: 'step',
          yLabel: 'weighted loss',
        }),
      );
    h.push('</div>');
    const withEvals = runGroups(trainedRuns.filter((r) => r.evals.length > 1));
    if (withEvals.length) {
      const split = withEvals[0].runs[0].evals[0].split;
      h.push(`<h2>Evaluations during training (${escapeHtml(split)} queries)</h2><div class="charts">`);
      for (const [key, label] of [
        ['mrr10', 'MRR@10'],
        ['ndcg10', 'nDCG@10'],
      ] as const)
        h.push(
          svgLineChart(
            groupSeries(withEvals, (r) => r.evals.map((v) => [v.step, v[key]]), false),
            { title: `${label} during training`, xLabel: 'step', yLabel: label },
          ),
        );
      h.push('</div>');
    }
  }
  if (report.runs.length) {
    h.push('<h2>Runs</h2><ul>');
    for (const run of report.runs)
      h.push(
        `<li>${escapeHtml(
          runSummary(run)
            .replace(/^- /, '')
            .replace(/\*\*|`/g, ''),
        )}</li>`,
      );
    h.push('</ul>');
  }
  if (report.notes.length)
    h.push('<h2>Notes</h2><ul>', ...report.notes.map((n) => `<li>${escapeHtml(n)}</li>`), '</ul>');
  h.push('</body></html>');
  return `${h.join('\n')}\n`;
}

export interface ReportFiles {
  json: string;
  md: string;
  html: string;
}

/** Writes <dir>/<name>.json, .md and .html, each atomically. */
export async function writeReport(dir: string, report: RunReport, name = 'report'): Promise<ReportFiles> {
  const files = {
    json: path.join(dir, `${name}.json`),
    md: path.join(dir, `${name}.md`),
    html: path.join(dir, `${name}.html`),
  };
  // Everything rendered before anything is written: a rendering error leaves the old report whole.
  const text = { json: `${JSON.stringify(report, null, 1)}\n`, md: renderMarkdown(report), html: renderHtml(report) };
  for (const k of ['json', 'md', 'html'] as const) await writeAtomic(files[k], (w) => w.write(text[k]));
  return files;
}

/** The report of one training run (teacher train, distill): its loss curves and its last evaluation. */
export function singleRunReport(
  run: ReportRun,
  info: { backend: string; wallSeconds: number; parameters: number | null; configFile: string; worldSize?: number },
): RunReport {
  const last = run.evals.at(-1);
  return {
    title: `fused-distill ${run.kind} run: ${run.name}`,
    created: new Date().toISOString(),
    environment: { ...environment(info.backend), worldSize: info.worldSize ?? 1 },
    wallSeconds: info.wallSeconds,
    evaluation: last
      ? {
          split: last.split,
          queries: last.queries,
          candidates: 0,
          baseline: null,
          significance:
            "Evaluated during training (the run's last evaluation); `fused-distill eval` compares models with a t-test and timing.",
          timing: '',
        }
      : null,
    rows: last
      ? [
          {
            name: run.name,
            kind: run.kind,
            objective: run.objective,
            mrr10: last.mrr10,
            ndcg10: last.ndcg10,
            pMrr10: null,
            pNdcg10: null,
            parameters: info.parameters,
            msPerQuery: null,
          },
        ]
      : [],
    runs: [run],
    notes: [`config: ${info.configFile}`],
  };
}
