// MS MARCO's published files as they are (src/data/msmarco.ts) and teacher scores from a file
// (teacher.scores): a tiny MS MARCO passage directory with the official names and column layouts,
// some files gzipped, top1000.dev with texts, no test split, and Hofstätter et al.'s 5-column
// teacher scores, written by the test from the tiny Brown collection the training tests share.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import { DataFormatError } from '../src/data';
import { loadMsMarco, readMsMarcoCandidates, readTeacherScoreFile } from '../src/data/msmarco';
import {
  distill,
  drawnPairs,
  loadStudentConfig,
  parseStudentConfig,
  trainingPairs,
  type RankingCollection,
} from '../src/distill';
import { scoresFromFile } from '../src/distill/teacher_cache';
import { tinyCollection } from './helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-msmarco-'));
const dir = path.join(tmp, 'msmarco');
let brown: RankingCollection;
// Brown ids (q12, ca01-3) as MS MARCO's integer ids.
const pidOf = new Map<string, string>();
const qidOf = new Map<string, string>();

const write = (name: string, lines: string[], into = dir) => {
  const text = lines.map((l) => `${l}\n`).join('');
  const file = path.join(into, name);
  fs.writeFileSync(file, name.endsWith('.gz') ? zlib.gzipSync(text) : text);
  return file;
};

beforeAll(async () => {
  ({ coll: brown } = await tinyCollection(path.join(tmp, 'brown')));
  fs.mkdirSync(dir);
  [...brown.passages.keys()].forEach((p, i) => pidOf.set(p, String(7000 + i)));
  for (const s of ['train', 'dev'] as const)
    [...brown.queries[s].keys()].forEach((q) => qidOf.set(q, String(100 + qidOf.size)));
  write(
    'collection.tsv.gz',
    [...brown.passages].map(([p, text]) => `${pidOf.get(p)}\t${text}`),
  );
  write(
    'queries.train.tsv',
    [...brown.queries.train].map(([q, text]) => `${qidOf.get(q)}\t${text}`),
  );
  write(
    'queries.dev.small.tsv',
    [...brown.queries.dev].map(([q, text]) => `${qidOf.get(q)}\t${text}`),
  );
  // qrels: train tab-separated, dev space-separated (both as MS MARCO publishes TREC qrels).
  const qrels = (s: 'train' | 'dev', sep: string) =>
    [...brown.qrels[s]].flatMap(([q, judged]) =>
      [...judged].filter(([, g]) => g >= 1).map(([p]) => [qidOf.get(q), '0', pidOf.get(p), '1'].join(sep)),
    );
  write('qrels.train.tsv', qrels('train', '\t'));
  write('qrels.dev.small.tsv', qrels('dev', ' '));
  write(
    'top1000.dev',
    [...brown.candidates.dev].flatMap(([q, pids]) =>
      pids.map((p) => `${qidOf.get(q)}\t${pidOf.get(p)}\t${brown.queries.dev.get(q)}\t${brown.passages.get(p)}`),
    ),
  );
  // qidpidtriples and Hofstätter's scores: each training positive with each non-relevant candidate.
  const triples: string[] = [];
  const scores: string[] = [];
  for (const [q, judged] of brown.qrels.train)
    for (const [pos, g] of judged) {
      if (g < 1) continue;
      for (const neg of brown.candidates.train.get(q) ?? []) {
        if ((judged.get(neg) ?? 0) >= 1) continue;
        triples.push(`${qidOf.get(q)}\t${pidOf.get(pos)}\t${pidOf.get(neg)}`);
        const negScore = (-Number(pidOf.get(neg)) % 7) / 3;
        scores.push(
          `${(4.5 + g).toFixed(4)}\t${negScore.toFixed(4)}\t${qidOf.get(q)}\t${pidOf.get(pos)}\t${pidOf.get(neg)}`,
        );
      }
    }
  write('qidpidtriples.train.full.2.tsv.gz', triples);
  write('bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv', scores, tmp);
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('MS MARCO files', () => {
  it('loads the official layout: gzipped files, top1000 with texts, triples as training candidates, no test split', async () => {
    const coll = await loadMsMarco(dir);
    expect(coll.splits).toEqual(['train', 'dev']);
    expect(coll.passages.size).toBe(brown.passages.size);
    expect(coll.queries.train.size).toBe(brown.queries.train.size);
    expect(coll.queries.test.size).toBe(0);
    const [q, pids] = [...brown.candidates.dev][0];
    expect(coll.candidates.dev.get(qidOf.get(q)!)).toEqual(pids.map((p) => pidOf.get(p)));
    const [tq, judged] = [...brown.qrels.train].find(([q2]) => (brown.candidates.train.get(q2) ?? []).length > 0)!;
    const pos = [...judged].find(([, g]) => g >= 1)![0];
    expect(coll.qrels.train.get(qidOf.get(tq)!)!.get(pidOf.get(pos)!)).toBe(1);
    expect(coll.candidates.train.get(qidOf.get(tq)!)!.length).toBeGreaterThan(0);
    expect(coll.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads a JSON descriptor naming the files', async () => {
    const desc = path.join(tmp, 'desc.json');
    fs.writeFileSync(
      desc,
      JSON.stringify({
        collection: 'msmarco/collection.tsv.gz',
        dev: {
          queries: 'msmarco/queries.dev.small.tsv',
          qrels: 'msmarco/qrels.dev.small.tsv',
          candidates: 'msmarco/top1000.dev',
        },
      }),
    );
    const coll = await loadMsMarco(desc);
    expect(coll.splits).toEqual(['dev']);
    expect(coll.queries.dev.size).toBe(brown.queries.dev.size);
  });

  it('reads the text triples (triples.train.small.tsv) by looking their texts up', async () => {
    const textDir = path.join(tmp, 'text-triples');
    fs.cpSync(dir, textDir, { recursive: true });
    fs.rmSync(path.join(textDir, 'qidpidtriples.train.full.2.tsv.gz'));
    const ids = await loadMsMarco(dir);
    const text = (q: string, pos: string, neg: string) =>
      `${ids.queries.train.get(q)}\t${ids.passages.get(pos)}\t${ids.passages.get(neg)}`;
    const rows: string[] = [];
    for (const [q, negs] of ids.candidates.train) {
      const pos = [...ids.qrels.train.get(q)!].find(([, g]) => g >= 1)![0];
      for (const neg of negs) rows.push(text(q, pos, neg));
    }
    write('triples.train.small.tsv', rows, textDir);
    const coll = await loadMsMarco(textDir);
    expect(coll.candidates.train).toEqual(ids.candidates.train);
    write(
      'triples.train.small.tsv',
      [...rows.slice(0, 2), `${rows[0].split('\t')[0]}\tno such passage\t${rows[0].split('\t')[2]}`],
      textDir,
    );
    await expect(loadMsMarco(textDir)).rejects.toThrow(
      `triples.train.small.tsv:3: the positive passage's text is not in collection.tsv.gz`,
    );
  });

  it('recognises every candidate format by its columns', async () => {
    const f = write('runs.tsv', ['1\t10\t1', '1\t11\t2\tx\ty', '1 Q0 12 3 0.5 tag', '2\t13\tq text\tp text'], tmp);
    await expect(
      (async () => {
        for await (const r of readMsMarcoCandidates(f)) void r;
      })(),
    ).rejects.toThrow(`${f}:2: expected 3 tab-separated fields`);
    const ok = write('runs2.tsv', ['1\t10\t1', '1 Q0 12 3 0.5 tag', '2\t13\tq text\tp text'], tmp);
    const rows = [];
    for await (const r of readMsMarcoCandidates(ok)) rows.push([r.qid, r.pid, r.query ?? null]);
    expect(rows).toEqual([
      ['1', '10', null],
      ['1', '12', null],
      ['2', '13', 'q text'],
    ]);
  });

  // Each malformed row: one error naming the file, the line and what was expected.
  const broken = async (name: string, lines: string[], message: RegExp) => {
    const bad = path.join(tmp, `bad-${name.replace(/\W/g, '')}`);
    fs.cpSync(dir, bad, { recursive: true });
    const file = write(name, lines, bad);
    const err = await loadMsMarco(bad).catch((e) => e);
    expect(err).toBeInstanceOf(DataFormatError);
    expect(err.file).toBe(file);
    expect(err.message).toMatch(message);
    return err;
  };

  it('names the file and line of a malformed row', async () => {
    const q = qidOf.get([...brown.queries.dev.keys()][0]);
    const e1 = await broken(
      'qrels.dev.small.tsv',
      [`${q} 0 7000 1`, `${q} 0 7001`],
      /:2: expected 4 fields \(qid 0 pid grade\), got 3/,
    );
    expect(e1.line).toBe(2);
    await broken('qrels.dev.small.tsv', ['424242 0 7000 1'], /:1: query 424242 has no text in queries.dev.small.tsv/);
    await broken('qrels.train.tsv', ['100\t0\t7000\tone'], /:1: grade must be a finite number, got 'one'/);
    await broken('qrels.train.tsv', ['100\t0\t99999\t1'], /:1: passage 99999 is not in collection.tsv.gz/);
    await broken(
      'top1000.dev',
      [`${q}\t7000\tquery\tpassage`, `${q}\t99999\tquery\tpassage`],
      /:2: passage 99999 is not in collection.tsv.gz/,
    );
    await broken('queries.dev.small.tsv', [`${q}\tsome query`, '555\t '], /:2: id 555 has no text/);
    await broken(
      'qidpidtriples.train.full.2.tsv.gz',
      ['424242\t7000\t7001'],
      /:1: query 424242 has no text in queries.train.tsv/,
    );
    await broken('top1000.dev', [`${q}\t7000`], /:1: expected 3 tab-separated fields .*got 2 fields/);
  });

  it('reads teacher scores in both formats, and names the line of a malformed one', async () => {
    const f = write('scores.tsv', ['1.5\t-0.5\t1\t10\t11', '1\t12\t0.25'], tmp);
    const rows = [];
    for await (const r of readTeacherScoreFile(f)) rows.push(r);
    expect(rows[0]).toMatchObject({ qid: '1', pos: { pid: '10', score: 1.5 }, neg: { pid: '11', score: -0.5 } });
    expect(rows[1]).toMatchObject({ qid: '1', pid: '12', score: 0.25 });
    const bad = write('bad-scores.tsv', ['1.5\tx\t1\t10\t11'], tmp);
    await expect(
      (async () => {
        for await (const r of readTeacherScoreFile(bad)) void r;
      })(),
    ).rejects.toThrow(`${bad}:1: neg_score must be a finite number, got 'x'`);
    const coll = await loadMsMarco(dir);
    const mixed = write('mixed.tsv', ['1.5\t-0.5\t100\t7000\t7001', '100\t7002\t0.25'], tmp);
    await expect(scoresFromFile(mixed, coll)).rejects.toThrow(`${mixed}:2: a 3-field row in a file of 5-field rows`);
    const missing = write('missing.tsv', ['1.5\t-0.5\t100\t7000\t99999'], tmp);
    await expect(scoresFromFile(missing, coll)).rejects.toThrow(`${missing}:1: passage 99999 is not in the collection`);
  });
});

describe('distillation from data.msmarco and teacher.scores', () => {
  const studentSizes = { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };
  const config = (name: string, scores: string, extra: object = {}) =>
    parseStudentConfig({
      output: path.join(tmp, name),
      teacher: { scores },
      student: { model: studentSizes },
      data: { msmarco: dir, negatives: 2, maxLength: 48, trainQueries: 4, evalQueries: 2 },
      train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
      loss: { marginMSE: 1, kl: 1 },
      ...extra,
    });

  it('trains on the triples of Hofstätter-format scores with Margin-MSE and KL, evaluating on dev', async () => {
    const events: string[] = [];
    const result = await distill(
      config('student', path.join(tmp, 'bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv')),
      {
        onProgress: (e) => events.push(e.type),
      },
    );
    expect(result.steps).toBe(3);
    expect(result.log.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    expect(result.final?.split).toBe('dev');
    expect(events).toContain('teacherScoresReady');
  });

  it('trains on groups drawn from the collection with a qid/pid/score file covering them', async () => {
    const coll = await loadMsMarco(dir);
    const pairs = trainingPairs(coll, 4);
    const file = write(
      'pair-scores.tsv.gz',
      pairs.map(([q, p], i) => `${q}\t${p}\t${(i % 5) - 2}`),
      tmp,
    );
    const result = await distill(config('pairs', file, { loss: { ranknet: 1, scoreMSE: 0.5 } }));
    expect(result.log.steps.every((s) => Number.isFinite(s.loss) && s.parts.scoreMSE >= 0)).toBe(true);
  });

  it('names the file and the pair a qid/pid/score file lacks', async () => {
    const partial = write('partial-scores.tsv', ['100\t7000\t0.5'], tmp);
    const coll = await loadMsMarco(dir);
    // The first pair the run draws that the file lacks.
    const [q, p] = drawnPairs(coll, { negatives: 2, trainQueries: 4 }, { batch: 2, seed: 3 }, 3).find(
      ([qid, pid]) => `${qid}\t${pid}` !== '100\t7000',
    )!;
    const err = await distill(config('partial', partial, {})).catch((e) => e);
    expect(err.message).toBe(`${partial}: has no score for query ${q}, passage ${p}, a pair the student trains on`);
  });

  it('evaluating on a split the dataset lacks is an error naming it', async () => {
    const c = config('no-test', path.join(tmp, 'bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv'));
    await expect(distill({ ...c, data: { ...c.data, evalSplit: 'test' } })).rejects.toThrow(
      /has no test split .*evaluation \(data.evalSplit 'test'\)/,
    );
  });

  it('the shipped MS MARCO student config parses, its paths resolved against its dir', () => {
    const root = path.join(__dirname, '..');
    const c = loadStudentConfig(path.join(root, 'configs', 'msmarco', 'student.json'));
    expect(c.data.msmarco).toBe(path.join(root, 'msmarco'));
    expect(c.teacher.scores).toBe(path.join(root, 'msmarco', 'bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv'));
    expect(c.loss.marginMSE).toBe(1);
    expect(c.train.precision).toBe('bf16');
  });

  it('rejects teacher-model terms with teacher.scores, and data.collection with data.msmarco', () => {
    expect(() => config('x', 'f', { loss: { hiddenMSE: 1 } })).toThrow(/loss.hiddenMSE: needs a teacher model/);
    // Configs without the new fields parse (and hash) as before: no keys added.
    const old = parseStudentConfig({ output: 'o', teacher: { checkpoint: 'c' } });
    expect('msmarco' in old.data || 'scores' in old.teacher).toBe(false);
    expect(() =>
      parseStudentConfig({ output: 'o', teacher: { scores: 'f' }, data: { collection: 'c', msmarco: 'm' } }),
    ).toThrow(/data.msmarco: give collection or msmarco, not both/);
    expect(() => parseStudentConfig({ output: 'o', teacher: { scores: 'f', checkpoint: 'c' } })).toThrow(
      /teacher.checkpoint: give checkpoint or huggingface \(or scores\), one of them/,
    );
  });
});
