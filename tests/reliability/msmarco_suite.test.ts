// MS MARCO's files where a collection dir went before: `eval --msmarco` re-ranks the dev split's
// top1000, a suite with "msmarco" trains its teacher and students on the triples and evaluates on
// dev, and a suite asking for MS MARCO's absent test split is refused before anything trains.
import * as fs from 'fs';
import * as path from 'path';

import { loadRankingCollection } from '../../src/data/ranking_collection';
import { buildTinyCollection, cli, teacherConfig, tempDir, writeJson, type Result } from './helpers';

const work = tempDir('fd-msmarco-suite-');
const msmarco = path.join(work, 'msmarco');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function expectOk(r: Result, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
}

// The tiny Brown collection written with MS MARCO's names and integer ids.
beforeAll(async () => {
  const brownDir = path.join(work, 'brown');
  await buildTinyCollection(brownDir);
  const brown = await loadRankingCollection(brownDir);
  const pid = new Map([...brown.passages.keys()].map((p, i) => [p, String(7000 + i)]));
  const qid = new Map<string, string>();
  for (const s of ['train', 'dev'] as const)
    for (const q of brown.queries[s].keys()) qid.set(q, String(100 + qid.size));
  fs.mkdirSync(msmarco);
  const write = (name: string, lines: string[]) =>
    fs.writeFileSync(path.join(msmarco, name), lines.map((l) => `${l}\n`).join(''));
  write(
    'collection.tsv',
    [...brown.passages].map(([p, t]) => `${pid.get(p)}\t${t}`),
  );
  write(
    'queries.train.tsv',
    [...brown.queries.train].map(([q, t]) => `${qid.get(q)}\t${t}`),
  );
  write(
    'queries.dev.small.tsv',
    [...brown.queries.dev].map(([q, t]) => `${qid.get(q)}\t${t}`),
  );
  for (const [s, name] of [
    ['train', 'qrels.train.tsv'],
    ['dev', 'qrels.dev.small.tsv'],
  ] as const)
    write(
      name,
      [...brown.qrels[s]].flatMap(([q, judged]) =>
        [...judged].filter(([, g]) => g >= 1).map(([p]) => `${qid.get(q)}\t0\t${pid.get(p)}\t1`),
      ),
    );
  write(
    'top1000.dev',
    [...brown.candidates.dev].flatMap(([q, ps]) =>
      ps.map((p) => `${qid.get(q)}\t${pid.get(p)}\t${brown.queries.dev.get(q)}\t${brown.passages.get(p)}`),
    ),
  );
  write(
    'qidpidtriples.train.full.2.tsv',
    [...brown.qrels.train].flatMap(([q, judged]) =>
      [...judged]
        .filter(([, g]) => g >= 1)
        .flatMap(([pos]) =>
          (brown.candidates.train.get(q) ?? [])
            .filter((n) => (judged.get(n) ?? 0) < 1)
            .map((n) => `${qid.get(q)}\t${pid.get(pos)}\t${pid.get(n)}`),
        ),
    ),
  );
}, 120000);

const sizes = { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };

describe('MS MARCO in suites and eval', () => {
  it('a suite with "msmarco" trains on the triples and evaluates on dev', async () => {
    const base = teacherConfig('unused', 'unused', { steps: 2, evalEvery: 0, checkpointEvery: 0 });
    const suite = writeJson(path.join(work, 'suite.json'), {
      title: 'MS MARCO suite',
      output: 'out',
      teacherCache: 'teachers',
      msmarco: 'msmarco',
      teacher: {
        model: base.model,
        data: { negatives: { from: 'triples', count: 2 }, maxLength: 48, evalQueries: 0 },
        train: base.train,
        loss: base.loss,
      },
      studentDefaults: {
        student: { model: sizes },
        data: { negatives: 2, maxLength: 48, trainQueries: 6, evalQueries: 0 },
        train: { batch: 2, steps: 2, lr: 3e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
      },
      students: [{ name: 'soft KL', loss: { kl: 1 } }],
      eval: { split: 'dev', candidates: 10, queries: 5 },
    });
    const r = await cli(['grid', suite]);
    expectOk(r, 'grid');
    const report = JSON.parse(fs.readFileSync(path.join(work, 'out', 'report.json'), 'utf8'));
    expect(report.evaluation).toMatchObject({ split: 'dev', queries: 5 });
    expect(report.rows.map((row: { name: string }) => row.name)).toEqual(['BM25 (first stage)', 'teacher', 'soft KL']);
    const student = JSON.parse(fs.readFileSync(path.join(work, 'out', 'students', 'soft-kl', 'config.json'), 'utf8'));
    expect(student.data.msmarco).toBe(msmarco);

    // MS MARCO has no test split: refused before a teacher trains
    const test = writeJson(path.join(work, 'suite-test.json'), {
      ...JSON.parse(fs.readFileSync(suite, 'utf8')),
      output: 'out-test',
      eval: { split: 'test' },
    });
    const t = await cli(['grid', test]);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/eval\.split: .*msmarco has no test split/);
    expect(fs.existsSync(path.join(work, 'out-test'))).toBe(false);
  }, 180000);

  it('--skip-bad-rows: a bad row is skipped, counted, printed and written into result.json; without it, an error naming file and line', async () => {
    const bad = path.join(work, 'msmarco-bad');
    fs.cpSync(msmarco, bad, { recursive: true });
    const qrels = path.join(bad, 'qrels.train.tsv');
    const n = fs.readFileSync(qrels, 'utf8').split('\n').filter(Boolean).length;
    fs.appendFileSync(qrels, '100\t0\t99999\t1\n');
    const base = teacherConfig('unused', path.join(work, 'bad-run'), { steps: 2, evalEvery: 0, checkpointEvery: 0 });
    const { collection: _c, ...data } = base.data;
    const config = writeJson(path.join(work, 'bad-teacher.json'), {
      ...base,
      data: { ...data, msmarco: bad, evalSplit: 'dev', evalQueries: 2 },
    });
    const strict = await cli(['teacher', 'train', config]);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain(`${qrels}:${n + 1}: passage 99999 is not in collection.tsv`);
    const r = await cli(['teacher', 'train', '--skip-bad-rows', config]);
    expectOk(r, 'teacher train --skip-bad-rows');
    expect(r.stdout).toContain(`skipped 1 bad row of ${qrels} (--skip-bad-rows)`);
    const result = JSON.parse(fs.readFileSync(path.join(work, 'bad-run', 'result.json'), 'utf8'));
    expect(result.badRows).toEqual({ [qrels]: 1 });
  }, 120000);

  it('eval --msmarco re-ranks the dev top1000; --collection and --msmarco together are refused', async () => {
    const model = fs
      .readdirSync(path.join(work, 'teachers'))
      .map((d) => path.join(work, 'teachers', d, 'model'))
      .find((d) => fs.existsSync(path.join(d, 'model.json')))!;
    const r = await cli([
      'eval',
      `teacher=${model}`,
      '--msmarco',
      msmarco,
      '--split',
      'dev',
      '--queries',
      '5',
      '--max-length',
      '48',
    ]);
    expectOk(r, 'eval --msmarco');
    expect(r.stdout).toMatch(/teacher/);
    expect(r.stdout).toMatch(/BM25/);
    const noTest = await cli(['eval', model, '--msmarco', msmarco]);
    expect(noTest.code).toBe(1);
    expect(noTest.stderr).toMatch(/has no test split .*--split test/);
    const both = await cli(['eval', model, '--msmarco', msmarco, '--collection', work]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --collection or --msmarco, not both/);
  }, 120000);
});
