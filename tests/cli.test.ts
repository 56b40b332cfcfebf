// The CLI (src/cli): argument and config errors, the report writers (atomic; a self-contained HTML
// page; the Markdown table), suite files, and a tiny end-to-end run of the built CLI (dist/, as `npm
// test` builds it first) in child processes: data build -> teacher train -> teacher score -> distill
// -> eval -> report, then `main` on a tiny suite twice (the second reuses the cached teacher).
// Models are tiny (1-2 layers, hidden 16-32) on a 12-document collection: seconds, on 'native'.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { loadSuite } from '../src/suite';
import { ensureDefaultCollection } from '../src/data/build_collection';
import { formatDuration, formatLoss } from '../src/cli/progress';
import {
  downsample,
  markdownTable,
  renderHtml,
  renderMarkdown,
  resultsTable,
  svgLineChart,
  writeReport,
  type RunReport,
} from '../src/report';
import { tinyEncoderConfig } from './helpers/tiny_encoder';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'index.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cliSync(args: string[]): Result {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, FUSED_DISTILL_NUM_THREADS: '2' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], {
      cwd: tmp,
      env: { ...process.env, FUSED_DISTILL_NUM_THREADS: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const json = (file: string, value: unknown) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
};

describe('arguments', () => {
  it('names a bad backend and the allowed ones', () => {
    const r = cliSync(['--backend', 'tpu', 'data', 'build']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /--backend <name>' argument 'tpu' is invalid\. Allowed choices are native, cuda, wasm, cpu/,
    );
  });

  it('says which argument is missing, and which file is not there', () => {
    let r = cliSync(['distill']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/missing required argument 'config'/);
    r = cliSync(['teacher', 'train', 'nope.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('fused-distill: error: config file not found: nope.json\n');
    r = cliSync(['main', 'nope.json']);
    expect(r.stderr).toMatch(/suite config not found: nope\.json/);
    r = cliSync(['eval', 'no-such-model']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model not found: no-such-model/);
    r = cliSync(['eval']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/missing required argument 'models' \(or --run <file> --qrels <file>\)/);
    r = cliSync(['eval', '--run', 'run.txt']);
    expect(r.stderr).toMatch(/--run and --qrels go together/);
    r = cliSync(['eval', '--run', 'nope.txt', '--qrels', 'nope.txt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/run file not found: nope\.txt/);
    r = cliSync(['--threads', '0', 'data', 'build']);
    expect(r.stderr).toMatch(/--threads <n>' argument '0' is invalid\. expected a positive integer/);
    r = cliSync(['bogus']);
    expect(r.stderr).toMatch(/unknown command 'bogus'/);
    r = cliSync(['--precision', 'fp16', 'data', 'build']);
    expect(r.stderr).toMatch(/--precision <p>' argument 'fp16' is invalid\. Allowed choices are fp32, bf16, tf32/);
  });

  it('eval --run --qrels prints the measures of trec_eval (-c by default, -l as --relevance-level)', () => {
    // The numbers are trec_eval's on these files (tests/fixtures/trec/expected.json).
    const fixture = (name: string) => path.join(__dirname, 'fixtures', 'trec', name);
    const args = ['eval', '--run', fixture('run.txt'), '--qrels', fixture('qrels.txt')];
    let r = cliSync([...args, '--relevance-level', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^num_q +6$/m);
    expect(r.stdout).toMatch(/^map +0\.0639$/m);
    expect(r.stdout).toMatch(/^ndcg_cut_10 +0\.3059$/m);
    r = cliSync([...args, '--no-complete']);
    expect(r.stdout).toMatch(/^num_q +5$/m);
    expect(r.stdout).toMatch(/^recip_rank@10 \(-M 10\) +0\.3000$/m);
    r = cliSync(['eval', '--run', fixture('run.msmarco.tsv'), '--qrels', fixture('qrels.msmarco.tsv')]);
    expect(r.stdout).toMatch(/^MS MARCO MRR@10 +0\.3500$/m);
    r = cliSync(['eval', '--run', fixture('qrels.txt'), '--qrels', fixture('qrels.txt')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/qrels\.txt:1: expected a TREC run .* got 4 fields/);
  });

  it('reports every bad field of a config, without a stack trace', () => {
    const file = json(path.join(tmp, 'bad-teacher.json'), { output: 'x', train: { lr: -1 }, loss: { kl: 1 } });
    const r = cliSync(['teacher', 'train', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid config');
    expect(r.stderr).toContain('train.lr: Number must be greater than 0');
    expect(r.stderr).toContain('loss.kl: unknown field');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('suite files', () => {
  it('validates the suite and each student, naming the student', async () => {
    const base = { output: 'out', students: [{ name: 'a', loss: { ranknet: 1 } }] };
    await expect(loadSuite(json(path.join(tmp, 's1.json'), { ...base, eval: { baseline: 'zzz' } }))).rejects.toThrow(
      /eval\.baseline: must name one of the students/,
    );
    await expect(
      loadSuite(json(path.join(tmp, 's2.json'), { ...base, students: [{ name: 'a', loss: { ranknet: 0 } }] })),
    ).rejects.toThrow(/students\[0\] \(a\)\.loss: set a weight > 0/);
    await expect(
      loadSuite(json(path.join(tmp, 's3.json'), { ...base, teacher: { train: { lr: 0 } } })),
    ).rejects.toThrow(/teacher\.train\.lr/);
    await expect(loadSuite(json(path.join(tmp, 's4.json'), { ...base, bogus: 1 }))).rejects.toThrow(
      /Unrecognized key\(s\) in object: 'bogus'/,
    );
    const s = await loadSuite(
      json(path.join(tmp, 's5.json'), {
        ...base,
        studentDefaults: { train: { steps: 5 } },
        students: [{ name: 'A b', train: { lr: 0.01 }, loss: { kl: 1 } }],
      }),
    );
    expect(s.students[0].config.train).toMatchObject({ steps: 5, lr: 0.01 });
    expect(s.students[0].config.output).toBe(path.join(tmp, 'out', 'students', 'a-b'));
    expect(s.students[0].config.teacher.checkpoint).toBe(path.join(s.teacher.output, 'model'));
    expect(path.basename(s.teacher.output)).toMatch(/^teacher-[0-9a-f]{16}$/);
    expect(s.seeds).toBeNull();
    expect(s.students[0].runs).toEqual([{ seed: s.students[0].config.train.seed, config: s.students[0].config }]);
    // seeds: one run per seed, in its own dir, with that train.seed
    const seeded = await loadSuite(json(path.join(tmp, 's7.json'), { ...base, seeds: [3, 1] }));
    expect(seeded.students[0].runs.map((r) => [r.seed, r.config.train.seed, path.basename(r.config.output)])).toEqual([
      [3, 3, 'seed-3'],
      [1, 1, 'seed-1'],
    ]);
    // precision: every run's train.precision unless the run sets its own; 'auto' = bf16 where this CPU's bf16
    // products are faster: AMX, or AVX512-BF16 on AMD (not on an Intel CPU without AMX)
    const { addon } = await import('../src/native');
    const { autoPrecision } = await import('../src/suite/suite');
    expect(autoPrecision('amxbf16', 'Intel(R) Xeon(R) Processor')).toBe('bf16');
    expect(autoPrecision('avx512bf16', 'AMD EPYC')).toBe('bf16');
    expect(autoPrecision('avx512bf16', 'AMD EPYC 9654 96-Core Processor')).toBe('bf16');
    expect(autoPrecision('avx512bf16', 'Intel(R) Xeon(R) Processor')).toBe('fp32');
    expect(autoPrecision('avx512', 'AMD EPYC')).toBe('fp32');
    expect(autoPrecision('scalar', 'AMD EPYC')).toBe('fp32');
    const auto = await loadSuite(
      json(path.join(tmp, 's10.json'), {
        ...base,
        precision: 'auto',
        students: [{ name: 'a' }, { name: 'b', train: { precision: 'fp32' } }],
      }),
    );
    const isa = addon.gemmIsa();
    const want = isa === 'amxbf16' || (isa === 'avx512bf16' && /AMD/.test(os.cpus()[0].model)) ? 'bf16' : 'fp32';
    expect(auto.precision).toBe(want);
    expect(auto.teacher.train.precision).toBe(want);
    expect(auto.students.map((x) => x.config.train.precision)).toEqual([want, 'fp32']);
    expect((await loadSuite(json(path.join(tmp, 's11.json'), base))).teacher.train.precision).toBeUndefined();
    await expect(loadSuite(json(path.join(tmp, 's12.json'), { ...base, precision: 'fp16' }))).rejects.toThrow(
      /precision: Invalid enum value. Expected 'fp32' \| 'bf16' \| 'auto'/,
    );
    await expect(loadSuite(json(path.join(tmp, 's8.json'), { ...base, seeds: [1, 1] }))).rejects.toThrow(
      /seeds: seeds must be unique/,
    );
    await expect(loadSuite(json(path.join(tmp, 's9.json'), { ...base, seeds: [] }))).rejects.toThrow(
      /seeds: Array must contain at least 1/,
    );
    // the teacher's run dir (and so its checkpoint and the score cache keyed by it) follows the model config
    const tm = await loadSuite(json(path.join(tmp, 's6.json'), { ...base, teacher: { model: { termMatch: true } } }));
    expect(tm.teacher.model.termMatch).toBe(true);
    expect(path.basename(tm.teacher.output)).toMatch(/^teacher-[0-9a-f]{16}$/);
    expect(tm.teacher.output).not.toBe(s.teacher.output);
    const graded = await loadSuite(
      json(path.join(tmp, 's7.json'), { ...base, teacher: { model: { termMatch: true, termMatchLevels: 4 } } }),
    );
    expect(graded.teacher.model.termMatchLevels).toBe(4);
    expect(graded.teacher.output).not.toBe(tm.teacher.output);
    await expect(
      loadSuite(
        json(path.join(tmp, 's8.json'), { ...base, teacher: { model: { termMatch: true, termMatchLevels: 5 } } }),
      ),
    ).rejects.toThrow(/termMatchLevels/);
  });

  it('the bundled main and grid suites are valid: the five key objectives, baseline hard pairwise + soft KL', async () => {
    // loadSuite reads the suites' collections: build the bundled one and CI's tiny one (as .ci/run
    // does) where a fresh clone has neither yet.
    await ensureDefaultCollection();
    const tiny = path.join(ROOT, 'data', 'ci-tiny', 'collection');
    if (!fs.existsSync(path.join(tiny, 'collection.tsv'))) {
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          'data',
          'build',
          tiny,
          '--documents',
          '12',
          '--queries',
          '40',
          '--candidates',
          '10',
          '--passage-words',
          '60',
          '--seed',
          '7',
        ],
        { encoding: 'utf8' },
      );
      expect(r.status).toBe(0);
    }
    const main = await loadSuite(path.join(ROOT, 'configs', 'main', 'main.json'));
    expect(main.students.map((s) => s.name)).toEqual([
      'hard pairwise',
      'soft KL',
      'hard pairwise + soft KL',
      '+ hidden MSE',
      '+ attention MSE',
    ]);
    expect(main.eval.baseline).toBe('hard pairwise + soft KL');
    const loss = (i: number) => main.students[i].config.loss;
    expect([loss(0).ranknet, loss(0).kl]).toEqual([1, 0]);
    expect([loss(1).ranknet, loss(1).kl]).toEqual([0, 1]);
    expect([loss(4).ranknet, loss(4).kl, loss(4).hiddenMSE, loss(4).attentionMSE > 0]).toEqual([1, 1, 1, true]);
    for (const s of main.students) expect(s.config.student.init).toBe('teacherLayers');
    expect((await loadSuite(path.join(ROOT, 'configs', 'ci', 'tiny.json'))).students.map((s) => s.name)).toEqual(
      main.students.map((s) => s.name),
    );
    const grid = await loadSuite(path.join(ROOT, 'configs', 'grid', 'grid.json'));
    expect(grid.students.length).toBeGreaterThan(main.students.length);
    expect(grid.teacher.output).not.toBe(main.teacher.output);
  });
});

const sampleReport = (): RunReport => ({
  title: 'test <report> & "quotes"',
  created: '2026-11-26T00:00:00.000Z',
  environment: { cpu: 'cpu', cpus: 2, memoryGiB: 4, node: 'v20', platform: 'linux x64', backend: 'native' },
  wallSeconds: 12.3,
  evaluation: {
    split: 'test',
    queries: 3,
    candidates: 10,
    baseline: 'b',
    significance: 'p: paired t-test.',
    timing: 'ms/query.',
  },
  rows: [
    {
      name: 'BM25 (first stage)',
      kind: 'bm25',
      mrr10: 0.3,
      ndcg10: 0.25,
      pMrr10: 0.0004,
      pNdcg10: 0.5,
      parameters: null,
      msPerQuery: null,
    },
    {
      name: 'teacher',
      kind: 'teacher',
      objective: 'ranknet 1',
      mrr10: 0.5,
      ndcg10: 0.45678,
      pMrr10: 0.04,
      pNdcg10: 0.2,
      parameters: 4782593,
      msPerQuery: 12.34,
    },
    {
      name: 'b',
      kind: 'student',
      objective: 'ranknet 1 + kl 1',
      mrr10: 0.4,
      ndcg10: 0.35,
      pMrr10: null,
      pNdcg10: null,
      parameters: 4385000,
      msPerQuery: 6.1,
    },
    {
      name: 'a|<x>',
      kind: 'student',
      objective: 'kl 1',
      mrr10: 0.35,
      ndcg10: 0.3,
      pMrr10: 0.9,
      pNdcg10: 1,
      parameters: 900,
      msPerQuery: 150,
    },
  ],
  runs: [
    {
      name: 'b',
      kind: 'student',
      output: '/runs/b',
      objective: 'ranknet 1 + kl 1',
      trained: true,
      seconds: 3,
      steps: Array.from({ length: 500 }, (_, i) => ({
        step: i + 1,
        lr: 1e-3,
        gradNorm: 1,
        loss: 2 / (i + 1) + 0.5,
        parts: { ranknet: 1 / (i + 1) + 0.25, kl: 1 / (i + 1) + 0.25 },
      })),
      evals: [
        { step: 250, split: 'dev', mrr10: 0.3, ndcg10: 0.3, queries: 3 },
        { step: 500, split: 'dev', mrr10: 0.4, ndcg10: 0.3, queries: 3 },
      ],
    },
    {
      name: 'a|<x>',
      kind: 'student',
      output: '/runs/a',
      objective: 'kl 1',
      trained: false,
      seconds: null,
      steps: [{ step: 1, lr: 1, gradNorm: 1, loss: 1, parts: { kl: 1 } }],
      evals: [],
    },
  ],
  notes: ['a note with <b>markup</b>'],
});

describe('report writers', () => {
  it('writes a Markdown table: padded columns, numbers right-aligned, p-values, the baseline marked', () => {
    const table = resultsTable(sampleReport());
    const lines = table.split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(
      /^\| model +\| +MRR@10 \| +nDCG@10 \| p \(MRR@10\) \| p \(nDCG@10\) \| parameters \| ms\/query \|$/,
    );
    expect(lines[1]).toMatch(/^\|-+\|-+:\|/);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1); // aligned
    expect(lines[2]).toContain('<0.001');
    expect(lines[3]).toMatch(/\| teacher +\| +0\.5000 \| +0\.4568 \| +0\.040 \| +0\.200 \| +4\.78M \| +12\.3 \|/);
    expect(lines[4]).toMatch(/\| b \(baseline\) +\| .*\| +— \| +— \| +4\.38M \| +6\.1 \|/);
    expect(lines[5]).toContain('a\\|<x>'); // a pipe in a name does not break the table
    expect(lines[5]).toMatch(/\| +900 \| +150 \|$/);
    expect(markdownTable(['a', 'b'], [['x', '1']])).toBe('| a   |   b |\n|-----|----:|\n| x   |   1 |');
    const md = renderMarkdown(sampleReport());
    expect(md).toContain(table);
    expect(md).toMatch(/loss 2\.5000 → 0\.5040/);
    expect(md).toContain('reused (finished run with the same config)');
  });

  it('writes a self-contained HTML page: the table, inline SVG loss curves, nothing loaded from elsewhere, text escaped', () => {
    const html = renderHtml(sampleReport());
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    for (const external of [/<script/i, /\ssrc=/i, /\shref=/i, /<link/i, /@import/i, /url\(/i, /<img/i, /<iframe/i])
      expect(html).not.toMatch(external);
    expect((html.match(/<svg /g) ?? []).length).toBe(5); // all students' totals, b, a, b's evals (MRR@10, nDCG@10)
    expect(html).toMatch(/<polyline [^>]*points="[\d.,\s]+"/);
    expect(html).toContain('test &lt;report&gt; &amp; &quot;quotes&quot;');
    expect(html).toContain('a|&lt;x&gt;');
    expect(html).not.toContain('<b>markup</b>');
    expect(html).toContain('<tr class="baseline">');
    for (const part of ['total loss', 'ranknet', 'kl']) expect(html).toContain(`>${part} (smoothed)</text>`);
    expect(html).toContain('stroke-opacity="0.3"'); // the raw values, faint behind the smoothed curves
    // at most 300 points a curve
    const longest = Math.max(...[...html.matchAll(/points="([^"]+)"/g)].map((m) => m[1].split(' ').length));
    expect(longest).toBeLessThanOrEqual(300);
    expect(
      downsample(
        Array.from({ length: 1000 }, (_, i): [number, number] => [i, i]),
        100,
      ),
    ).toHaveLength(100);
    expect(svgLineChart([], { title: 't', xLabel: 'x', yLabel: 'y' })).toContain('no data');
  });

  it('writes JSON, Markdown and HTML atomically: complete files, no temporaries, old files kept when rendering fails', async () => {
    const dir = path.join(tmp, 'report');
    const files = await writeReport(dir, sampleReport());
    expect(JSON.parse(fs.readFileSync(files.json, 'utf8'))).toEqual(sampleReport());
    expect(fs.readFileSync(files.md, 'utf8')).toBe(renderMarkdown(sampleReport()));
    expect(fs.readFileSync(files.html, 'utf8')).toBe(renderHtml(sampleReport()));
    expect(fs.readdirSync(dir).sort()).toEqual(['report.html', 'report.json', 'report.md']);
    const before = Object.values(files).map((f) => fs.readFileSync(f, 'utf8'));
    const broken = sampleReport();
    (broken.rows[1] as unknown as { mrr10: unknown }).mrr10 = undefined; // rendering throws
    await expect(writeReport(dir, broken)).rejects.toThrow();
    expect(Object.values(files).map((f) => fs.readFileSync(f, 'utf8'))).toEqual(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['report.html', 'report.json', 'report.md']);
  });

  it('formats progress: durations and each loss part', () => {
    expect([formatDuration(5), formatDuration(125), formatDuration(7300), formatDuration(Infinity)]).toEqual([
      '5s',
      '2m05s',
      '2h01m',
      '?',
    ]);
    expect(formatLoss(0.75, { ranknet: 0.5, kl: 0.25 })).toBe('0.7500 = ranknet 0.5000 + kl 0.2500');
    expect(formatLoss(0.5, { ranknet: 0.5 })).toBe('0.5000 (ranknet)');
  });
});

describe('evaluation', () => {
  it("pads each query's pass to maxLength without changing the scores, and tables p-values against the baseline", async () => {
    const tf = await import('@tensorflow/tfjs');
    const { BertTokenizer, buildCollection, writeCollection } = await import('../src/data');
    const { PairEncoder, loadRankingCollection, scorePairs } = await import('../src/distill');
    const { CrossEncoder } = await import('../src/models');
    const { evalQueries, rerankTimed, evaluateCrossEncoder, tableRows } = await import('../src/eval');
    await tf.setBackend('cpu');
    const dir = path.join(tmp, 'eval-coll');
    await writeCollection(
      dir,
      buildCollection({ seed: 7, passageWords: 60, queries: 40, candidates: 10, documents: 12 }),
    );
    const coll = await loadRankingCollection(dir);
    const encoder = new PairEncoder(new BertTokenizer(), coll, 64);
    const model = new CrossEncoder(tinyEncoderConfig(), 3);
    const queries = evalQueries(coll, { split: 'test', queries: 3, candidates: 5 });
    expect(queries.map((q) => q.pids.length)).toEqual([5, 5, 5]);
    const { run, msPerQuery } = await rerankTimed(model, encoder, queries);
    expect(msPerQuery).toBeGreaterThan(0);
    for (const { qid, pids } of queries) {
      const direct = scorePairs(
        model,
        encoder,
        pids.map((p): [string, string] => [qid, p]),
        64,
      );
      pids.forEach((p, i) => expect(Math.abs(run.get(qid)!.get(p)! - direct[i])).toBeLessThan(1e-5));
    }
    const a = await evaluateCrossEncoder(
      model,
      encoder,
      coll,
      { split: 'test', candidates: 5 },
      { name: 'a', kind: 'model' },
    );
    const b = { ...a, name: 'b', perQuery: new Map([...a.perQuery].map(([q, m]) => [q, { ...m, rr10: m.rr10 / 2 }])) };
    const rows = tableRows([a, b], 'a');
    expect(rows[0]).toMatchObject({ name: 'a', pMrr10: null, pNdcg10: null, parameters: model.parameterCount() });
    expect(rows[1].pNdcg10).toBe(1); // same nDCG on every query
    expect(tableRows([a, b], null)[1].pMrr10).toBeNull();
    model.dispose();
  });
});

describe('end to end (built CLI, child processes, tiny models)', () => {
  const coll = path.join(tmp, 'coll');
  const tiny = { collection: coll, negatives: 3, maxLength: 48, trainQueries: 6, evalQueries: 4 };
  const teacherFile = path.join(tmp, 'e2e', 'teacher.json');
  const studentFile = path.join(tmp, 'e2e', 'student.json');
  const teacherSizes = { layers: 2, hidden: 32, heads: 2, intermediate: 64, maxPosition: 64 };

  it('data build -> teacher train -> teacher score -> distill -> eval, with progress, reports and a table', async () => {
    let r = await cli([
      'data',
      'build',
      coll,
      '--documents',
      '12',
      '--queries',
      '40',
      '--candidates',
      '10',
      '--passage-words',
      '60',
      '--seed',
      '7',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^collection ready in .*coll .*passages, queries train \d+ \/ dev \d+ \/ test \d+/);

    json(teacherFile, {
      output: 'teacher',
      model: teacherSizes,
      data: tiny,
      train: { batch: 4, steps: 8, lr: 3e-3, warmup: 1, evalEvery: 4, checkpointEvery: 4 },
      loss: { ranknet: 1, bce: 0.5 },
    });
    r = await cli(['--progress', 'lines', 'teacher', 'train', teacherFile]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /\[teacher\] teacher run: 8 steps, \d+ training queries, [\d,]+ parameters, backend native/,
    );
    // each step line: steps/s, ETA, the loss and each of its parts, lr, gradient norm
    expect(r.stderr).toMatch(
      /\[teacher\] step 8\/8 +[\d.]+ steps\/s +ETA 0s +loss [\d.]+ = bce [\d.]+ \+ ranknet [\d.]+ +lr [\d.e+-]+ +\|g\| [\d.]+/,
    );
    expect(r.stderr).toMatch(/\[teacher\] eval at step 8 on \d+ dev queries: MRR@10 [\d.]+ +nDCG@10 [\d.]+/);
    expect(r.stdout).toMatch(/teacher model: .*teacher[\\/]model/);
    const teacherDir = path.join(tmp, 'e2e', 'teacher');
    for (const f of ['model/model.json', 'log.jsonl', 'result.json', 'report.json', 'report.md', 'report.html'])
      expect(fs.existsSync(path.join(teacherDir, f))).toBe(true);
    expect(fs.readFileSync(path.join(teacherDir, 'report.html'), 'utf8')).toContain('<svg');

    json(studentFile, {
      output: 'student',
      teacher: { checkpoint: 'teacher/model' },
      data: tiny,
      student: { init: 'teacherLayers', model: { ...teacherSizes, layers: 1 } },
      train: { batch: 2, steps: 4, lr: 3e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
      loss: { ranknet: 1, kl: 1, hiddenMSE: 1, attentionMSE: 1 },
    });
    r = await cli(['--progress', 'json', 'teacher', 'score', studentFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^teacher scores: \d+ pairs computed into .*teacher-scores-[0-9a-f]{16}\.jsonl\n$/);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.some((e) => e.type === 'teacherScores')).toBe(true);
    r = await cli(['teacher', 'score', studentFile]);
    expect(r.stdout).toMatch(/already cached in/);

    r = await cli(['--progress', 'json', 'distill', studentFile]);
    expect(r.code).toBe(0);
    const steps = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'step');
    expect(steps).toHaveLength(4);
    expect(Object.keys(steps[0].parts).sort()).toEqual(['attentionMSE', 'hiddenMSE', 'kl', 'ranknet']);
    for (const s of steps) expect(s.stepsPerSecond).toBeGreaterThan(0);
    expect(steps[3].etaSeconds).toBe(0);
    expect(fs.existsSync(path.join(tmp, 'e2e', 'student', 'report.html'))).toBe(true);

    const out = path.join(tmp, 'e2e', 'eval');
    r = await cli([
      '--progress',
      'none',
      'eval',
      `teacher=${teacherDir}`,
      `student=${path.join(tmp, 'e2e', 'student')}`,
      '--collection',
      coll,
      '--max-length',
      '48',
      '--baseline',
      'teacher',
      '--out',
      out,
      '--run-out',
      path.join(out, '{name}.trec'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^\| model +\| +MRR@10 \| +nDCG@10 \| p \(MRR@10\) \| p \(nDCG@10\) \| parameters \| ms\/query \|$/,
    );
    expect(lines[2]).toMatch(
      /^\| BM25 \(first stage\) +\| +[\d.]+ \| +[\d.]+ \| +[\d.<—]+ \| +[\d.<—]+ \| +— \| +— \|$/,
    );
    expect(lines[3]).toMatch(
      /^\| teacher \(baseline\) +\| +[\d.]+ \| +[\d.]+ \| +— \| +— \| +\d+\.\d+[kM] \| +[\d.]+ \|$/,
    );
    expect(lines[4]).toMatch(
      /^\| student +\| +[\d.]+ \| +[\d.]+ \| +([\d.]+|<0\.001) \| +([\d.]+|<0\.001) \| +\d+\.\d+[kM] \| +[\d.]+ \|$/,
    );
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as RunReport;
    expect(report.rows.map((x) => x.name)).toEqual(['BM25 (first stage)', 'teacher', 'student']);
    expect(report.rows[2].parameters).toBeLessThan(report.rows[1].parameters!);
    expect(report.evaluation).toMatchObject({ split: 'test', candidates: 10, baseline: 'teacher' });
    // --run-out: each model's ranking as a TREC run, which eval --run scores as the table did.
    const trec = cliSync([
      'eval',
      '--run',
      path.join(out, 'student.trec'),
      '--qrels',
      path.join(coll, 'qrels.test.txt'),
    ]);
    expect(trec.code).toBe(0);
    const rr10 = Number(/^recip_rank@10 \(-M 10\) +([\d.]+)$/m.exec(trec.stdout)![1]);
    expect(rr10).toBeCloseTo(report.rows[2].mrr10, 3);
    expect(fs.readFileSync(path.join(out, 'teacher.trec'), 'utf8')).toMatch(/^\S+ Q0 \S+ 1 \S+ teacher$/m);
    // --baseline bm25: the models t-tested against the first stage
    const evalArgs = ['eval', `teacher=${teacherDir}`, '--collection', coll, '--max-length', '48'];
    r = await cli(['--progress', 'none', ...evalArgs, '--baseline', 'bm25']);
    expect(r.code).toBe(0);
    const vsBm25 = r.stdout.trim().split('\n');
    expect(vsBm25[2]).toMatch(/^\| BM25 \(first stage\) \(baseline\) +\| +[\d.]+ \| +[\d.]+ \| +— \| +— \|/);
    expect(vsBm25[3]).toMatch(/^\| teacher +\| +[\d.]+ \| +[\d.]+ \| +([\d.]+|<0\.001) \| +([\d.]+|<0\.001) \|/);
    r = await cli(['--progress', 'none', ...evalArgs, '--baseline', 'bm25', '--no-bm25']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--baseline bm25 needs the BM25 row/);
  });

  it('main on a tiny suite: teacher, students, table; a second run reuses the cached teacher and the finished students', async () => {
    const suite = json(path.join(tmp, 'suite', 'tiny.json'), {
      title: 'tiny suite',
      output: 'runs',
      teacherCache: 'teachers',
      collection: '../coll',
      teacher: {
        model: teacherSizes,
        data: { negatives: 3, maxLength: 48, evalQueries: 0 },
        train: { batch: 4, steps: 6, lr: 3e-3, warmup: 1, evalEvery: 0, checkpointEvery: 0 },
        loss: { ranknet: 1 },
      },
      studentDefaults: {
        student: { init: 'teacherLayers', model: { ...teacherSizes, layers: 1 } },
        data: { negatives: 3, maxLength: 48, trainQueries: 6, evalQueries: 0 },
        train: { batch: 2, steps: 3, lr: 3e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
      },
      students: [
        { name: 'hard pairwise', loss: { ranknet: 1 } },
        { name: 'hard pairwise + soft KL', loss: { ranknet: 1, kl: 1 } },
        { name: '+ attention MSE', loss: { ranknet: 1, kl: 1, hiddenMSE: 1, attentionMSE: 1 } },
      ],
      eval: { split: 'test', candidates: 10, baseline: 'hard pairwise + soft KL' },
    });
    let r = await cli(['--progress', 'lines', 'main', suite]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/teacher: training into .*teacher-[0-9a-f]{16}/);
    expect(r.stderr).toMatch(/teacher scores: \d+ pairs computed and cached/);
    const table = r.stdout.split('\n').filter((l) => l.startsWith('|'));
    expect(table.map((l) => l.split('|')[1].trim())).toEqual([
      'model',
      expect.stringMatching(/^-+$/),
      'BM25 (first stage)',
      'teacher',
      'hard pairwise',
      'hard pairwise + soft KL (baseline)',
      '+ attention MSE',
    ]);
    expect(r.stdout).toMatch(/report: .*report\.md, .*report\.html/);
    // the teacher against the first stage it re-ranks, under the table and in report.json
    const cmp = JSON.parse(fs.readFileSync(path.join(tmp, 'suite', 'runs', 'report.json'), 'utf8')).evaluation
      .comparisons[0];
    expect(cmp).toMatchObject({ name: 'teacher', against: 'BM25 (first stage)' });
    expect(r.stdout).toContain(
      `teacher − BM25 (first stage): MRR@10 ${cmp.mrr10 >= 0 ? '+' : '−'}${Math.abs(cmp.mrr10).toFixed(4)}`,
    );
    const html = fs.readFileSync(path.join(tmp, 'suite', 'runs', 'report.html'), 'utf8');
    expect((html.match(/<svg /g) ?? []).length).toBe(5); // students together + teacher + 3 students

    r = await cli(['--progress', 'lines', 'main', suite]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/teacher: reusing the cached run/);
    expect(r.stderr).not.toMatch(/\[teacher\] step/);
    expect(r.stderr).toMatch(/\[hard pairwise\] reusing the finished run/);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'suite', 'runs', 'report.json'), 'utf8')) as RunReport;
    expect(report.runs.map((x) => x.trained)).toEqual([false, false, false, false]);
    expect(report.runs[0].steps).toHaveLength(6); // the cached teacher's log is in the report
    expect(Object.keys(report.rows[1].perQuery!).length).toBe(report.evaluation!.queries);

    // The same students over two seeds: one dir per seed (the single-run dirs are replaced), the
    // table's means ± sd over the seeds, per-query metrics averaged over them in report.json.
    const seeded = JSON.parse(fs.readFileSync(suite, 'utf8'));
    json(suite, { ...seeded, seeds: [5, 6] });
    r = await cli(['--progress', 'lines', 'main', suite]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[hard pairwise · seed 6\] MRR@10/);
    const students = path.join(tmp, 'suite', 'runs', 'students');
    expect(fs.readdirSync(path.join(students, 'hard-pairwise')).sort()).toEqual(['seed-5', 'seed-6']);
    expect(
      JSON.parse(fs.readFileSync(path.join(students, 'hard-pairwise', 'seed-6', 'config.json'), 'utf8')).train.seed,
    ).toBe(6);
    const seededReport = JSON.parse(
      fs.readFileSync(path.join(tmp, 'suite', 'runs', 'report.json'), 'utf8'),
    ) as RunReport;
    const row = seededReport.rows.find((x) => x.name === 'hard pairwise')!;
    expect(row.seeds!.map((x) => x.seed)).toEqual([5, 6]);
    expect(row.mrr10).toBeCloseTo((row.seeds![0].mrr10 + row.seeds![1].mrr10) / 2, 12);
    expect(row.sd!.mrr10).toBeCloseTo(Math.abs(row.seeds![0].mrr10 - row.seeds![1].mrr10) / Math.SQRT2, 12);
    const perQuery = Object.values(row.perQuery!);
    expect(perQuery.reduce((a, q) => a + q.mrr10, 0) / perQuery.length).toBeCloseTo(row.mrr10, 12);
    expect(seededReport.rows.find((x) => x.name === 'teacher')!.sd).toBeUndefined();
    expect(seededReport.runs.filter((x) => x.group === 'hard pairwise').map((x) => x.seed)).toEqual([5, 6]);
    expect(r.stdout).toMatch(/\| hard pairwise +\| +\d\.\d{4} ± \d\.\d{4} \|/);
    expect(seededReport.evaluation!.significance).toMatch(/mean ± sample sd over 2 seeds/);
  });
});
