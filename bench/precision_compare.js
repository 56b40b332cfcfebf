// The main job in fp32 and in bf16 matrix products, compared: each row's means (mean ± sd over seeds
// for students), a paired two-sided t-test of bf16 against fp32 over the per-query values (report.json's
// perQuery; students' values averaged over their seeds), and the loss curves overlaid (smoothed; a
// student objective as the mean of its seeds' curves).
//
//   node dist/cli/index.js main suite-fp32.json; node dist/cli/index.js main suite-bf16.json
//   node bench/precision_compare.js <fp32 report.json> <bf16 report.json> [--write]
//
// --write: bench/results/precision_main.html (atomically; the table goes into precision_main.md by
// hand, with the runs' context). Needs `npm run build` (dist/).
'use strict';
const fs = require('fs');
const path = require('path');
const { pairedTTest } = require('../dist/eval/ttest');
const { svgLineChart, smooth, spread } = require('../dist/report');

const [fp32, bf16] = process.argv.slice(2, 4).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));

const fmtP = (p) => (p < 0.001 ? '<0.001' : p.toFixed(3));
const lines = [
  '| model | MRR@10 fp32 | MRR@10 bf16 | p (MRR@10) | nDCG@10 fp32 | nDCG@10 bf16 | p (nDCG@10) |',
  '|---|---:|---:|---:|---:|---:|---:|',
];
for (const rb of bf16.rows) {
  const ra = fp32.rows.find((r) => r.name === rb.name);
  if (!ra || !ra.perQuery || !rb.perQuery) continue;
  const values = (r, k) => new Map(Object.entries(r.perQuery).map(([q, v]) => [q, v[k]]));
  const p = (k) => (rb.kind === 'bm25' ? '—' : fmtP(pairedTTest(values(rb, k), values(ra, k)).p));
  const f = (r, k) => r[k].toFixed(4) + (r.sd ? ` ± ${r.sd[k].toFixed(4)}` : '');
  lines.push(
    `| ${rb.name} | ${f(ra, 'mrr10')} | ${f(rb, 'mrr10')} | ${p('mrr10')} | ${f(ra, 'ndcg10')} | ${f(rb, 'ndcg10')} | ${p('ndcg10')} |`,
  );
}
const table = lines.join('\n');
console.log(table);

const curve = (runs) => spread(runs.map((r) => smooth(r.steps.map((s) => [s.step, s.loss])))).mean;
const charts = [...new Set(fp32.runs.map((r) => r.group ?? r.name))].map((g) => {
  const pick = (rep) => rep.runs.filter((r) => (r.group ?? r.name) === g);
  const seeds = pick(fp32).length > 1 ? ` (mean of ${pick(fp32).length} seeds)` : '';
  return svgLineChart(
    [
      { name: `fp32${seeds}`, points: curve(pick(fp32)), color: '#1f77b4' },
      { name: `bf16${seeds}`, points: curve(pick(bf16)), color: '#d62728' },
    ],
    { title: `${g}: training loss, smoothed`, xLabel: 'step', yLabel: 'loss' },
  );
});

if (process.argv.includes('--write')) {
  const esc = (s) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);
  const html =
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>main job: fp32 vs bf16</title>' +
    '<style>body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1360px;padding:0 1em}' +
    '.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #e4e4e4}svg .grid{stroke:#eee}' +
    'svg .frame{fill:none;stroke:#999}svg text{font:11px system-ui,sans-serif}svg .title{font-size:13px;font-weight:600}</style>' +
    `</head><body>\n<h1>main job: fp32 vs bf16 matrix products</h1>\n<pre>${esc(table)}</pre>\n<div class="charts">${charts.join('\n')}</div>\n</body></html>\n`;
  const dir = path.join(__dirname, 'results');
  const tmp = path.join(dir, `.precision_main.html.${process.pid}.tmp`);
  fs.writeFileSync(tmp, html);
  fs.renameSync(tmp, path.join(dir, 'precision_main.html'));
}
