// Where training negatives come from (data.negatives: a count, MS MARCO's triples, the candidates
// within a rank window, a hard-negatives file), relevant passages never drawn, malformed rows of the
// hard-negatives file and of MS MARCO's files named by file and line or skipped and counted
// (--skip-bad-rows), and the sampler's draws enumerated as `teacher score --out` enumerates them.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { BadRows } from '../src/data/bad_rows';
import { readHardNegatives } from '../src/data/hard_negatives';
import { DataFormatError } from '../src/data/lines';
import { loadMsMarco } from '../src/data/msmarco';
import {
  applyNegatives,
  drawnPairs,
  negativesReport,
  parseStudentConfig,
  runSampler,
  trainingPools,
  type RankingCollection,
} from '../src/distill';
import { tinyCollection } from './helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-negatives-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let brown: RankingCollection;
beforeAll(async () => {
  ({ coll: brown } = await tinyCollection(path.join(tmp, 'brown')));
});

const write = (name: string, lines: string[]) => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
  return file;
};
const strict = () => new BadRows(false);
const relevant = (coll: RankingCollection, qid: string, pid: string) => (coll.qrels.train.get(qid)?.get(pid) ?? 0) >= 1;
const parse = (negatives: unknown) =>
  parseStudentConfig({ output: 'o', teacher: { checkpoint: 'c' }, data: { negatives } }, 'cfg.json', tmp).data
    .negatives;

describe('data.negatives config', () => {
  it('takes a count as before (same value, no keys added) or a source object with defaults', () => {
    expect(parse(undefined)).toBe(7);
    expect(parse(3)).toBe(3);
    expect(parse({ from: 'candidates', depth: [1, 200] })).toEqual({ from: 'candidates', count: 7, depth: [1, 200] });
    expect(parse({ from: 'file', path: 'neg.jsonl', count: 2 })).toEqual({
      from: 'file',
      count: 2,
      path: path.join(tmp, 'neg.jsonl'), // relative to the config file's dir
    });
  });

  it('names the field of each mistake', () => {
    const err = (v: unknown) => {
      try {
        parse(v);
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err({ from: 'candidates', depth: [50, 10] })).toMatch(
      /data\.negatives\.depth: the window's first rank \(50\) must not exceed its last \(10\)/,
    );
    expect(err({ from: 'candidates', depth: [0, 10] })).toMatch(
      /data\.negatives\.depth\.0: Number must be greater than 0/,
    );
    expect(err({ from: 'file' })).toMatch(/data\.negatives\.path: is required by from 'file'/);
    expect(err({ from: 'triples', path: 'x' })).toMatch(
      /data\.negatives\.path: is required by from 'file', and only by it/,
    );
    expect(err({ from: 'bm25' })).toMatch(/data\.negatives\.from: Invalid enum value/);
    expect(err({ from: 'triples', window: 3 })).toMatch(/data\.negatives\.window: unknown field/);
    expect(err(0)).toMatch(/data\.negatives: Number must be greater than 0/);
  });
});

describe('negatives from the candidates within a rank window', () => {
  it('keeps ranks lo..hi of each BM25 list, without the relevant passages', async () => {
    const coll = await applyNegatives(brown, parse({ from: 'candidates', depth: [2, 4] }), strict());
    let someRelevantDropped = false;
    for (const [qid, list] of brown.candidates.train) {
      const window = list.slice(1, 4);
      const expected = window.filter((p) => !relevant(brown, qid, p));
      if (expected.length < window.length) someRelevantDropped = true;
      expect(coll.candidates.train.get(qid)).toEqual(expected);
    }
    expect(someRelevantDropped).toBe(true);
    // other splits and the passages are untouched
    expect(coll.candidates.dev).toBe(brown.candidates.dev);
    expect(coll.passages).toBe(brown.passages);
  });

  it('a window past the list ends at its last rank; one wholly past it leaves the query no negatives (reported)', async () => {
    const n = Math.max(...[...brown.candidates.train.values()].map((l) => l.length));
    const tail = await applyNegatives(brown, parse({ from: 'candidates', depth: [n, n + 100] }), strict());
    for (const [qid, list] of brown.candidates.train)
      expect(tail.candidates.train.get(qid)).toEqual(list.slice(n - 1).filter((p) => !relevant(brown, qid, p)));
    const none = await applyNegatives(brown, parse({ from: 'candidates', depth: [n + 1, n + 5] }), strict());
    expect([...none.candidates.train.values()].every((l) => l.length === 0)).toBe(true);
    const report = negativesReport(none, 3);
    expect(report.none).toBe(report.queries);
    expect(() => trainingPools(none)).toThrow(
      /no training query has both a relevant passage and a non-relevant candidate/,
    );
  });

  it('counts the queries with fewer negatives than a group takes and those with none', async () => {
    const coll = await applyNegatives(brown, parse({ from: 'candidates', depth: [1, 2] }), strict());
    const r = negativesReport(coll, 2);
    let short = 0;
    let none = 0;
    let queries = 0;
    for (const qid of brown.queries.train.keys()) {
      if (![...(brown.qrels.train.get(qid)?.values() ?? [])].some((g) => g >= 1)) continue;
      queries += 1;
      const k = (brown.candidates.train.get(qid) ?? []).slice(0, 2).filter((p) => !relevant(brown, qid, p)).length;
      if (k === 0) none += 1;
      else if (k < 2) short += 1;
    }
    expect(r).toEqual({ queries, short, none });
    expect(short + none).toBeGreaterThan(0);
    // a short query's groups hold what it has: 1 positive + its negatives
    const sampler = runSampler(coll, { negatives: 2 }, { batch: 8, seed: 1 });
    for (const g of sampler.next()) {
      expect(g.pids.length).toBe(1 + Math.min(2, coll.candidates.train.get(g.qid)!.length));
      expect(g.pids.slice(1).every((p) => !relevant(brown, g.qid, p))).toBe(true);
    }
  });

  it('from triples needs MS MARCO', async () => {
    await expect(applyNegatives(brown, parse({ from: 'triples' }), strict())).rejects.toThrow(
      /data\.negatives: from 'triples' needs MS MARCO's training triples \(data\.msmarco\)/,
    );
  });
});

describe('negatives from a hard-negatives file', () => {
  const train = () => [...brown.queries.train.keys()];
  const pids = () => [...brown.passages.keys()];

  it('reads qid<TAB>pid,pid lines and JSON Lines, plain lists or by system, excluding positives and relevant passages', async () => {
    const [q1, q2, q3] = train();
    const p = pids();
    const rel1 = [...brown.qrels.train.get(q1)!].find(([, g]) => g >= 1)![0];
    const file = write('hard.jsonl', [
      `${q1}\t${p[0]},${rel1},${p[1]},${p[0]}`,
      JSON.stringify({ qid: q2, pos: [p[2]], neg: [p[2], p[3], p[4]] }),
      JSON.stringify({ qid: q3, pos: [], neg: { bm25: [p[5], p[6]], 'msmarco-MiniLM-L-6-v3': [p[6], p[7]] } }),
    ]);
    const coll = await applyNegatives(brown, parse({ from: 'file', path: file }), strict());
    expect(coll.candidates.train.get(q1)).toEqual([p[0], p[1]].filter((x) => !relevant(brown, q1, x)));
    expect(coll.candidates.train.get(q2)).toEqual([p[3], p[4]].filter((x) => !relevant(brown, q2, x)));
    expect(coll.candidates.train.get(q3)).toEqual([p[5], p[6], p[7]].filter((x) => !relevant(brown, q3, x)));
    expect(coll.candidates.train.has(train()[3])).toBe(false); // not in the file: no negatives
    const sysFile = write('hard-sys.jsonl', [
      JSON.stringify({ qid: Number.isNaN(Number(q3)) ? q3 : Number(q3), neg: { bm25: [p[5]], ce: [p[7], p[8]] } }),
    ]);
    const sys = await applyNegatives(
      brown,
      parse({ from: 'file', path: sysFile, systems: ['ce'], depth: [2, 9] }),
      strict(),
    );
    expect(sys.candidates.train.get(q3)).toEqual([p[8]].filter((x) => !relevant(brown, q3, x)));
  });

  it('names the file and line of each malformed line', async () => {
    const [q1, q2] = train();
    const p = pids();
    const cases: Array<[string, RegExp]> = [
      [
        `${q1}\t${p[0]}\textra`,
        /:2: expected 2 tab-separated fields \(qid, comma-separated pids\) or a JSON object, got 3/,
      ],
      ['{"qid": 1, "neg": [', /:2: not valid JSON/],
      [JSON.stringify({ qid: q1, neg: 'p1' }), /:2: neg must be a list of ids or an object of lists by system/],
      [JSON.stringify({ qid: q1, neg: [1.5] }), /:2: neg\[0\] must be an id/],
      [JSON.stringify({ neg: [p[0]] }), /:2: qid must be an id/],
      [JSON.stringify({ qid: 'nope', neg: [p[0]] }), /:2: query nope has no text among the training queries/],
      [JSON.stringify({ qid: q2, neg: ['nope'] }), /:2: passage nope is not in the collection/],
      [`${q1}\t${p[1]}`, /:2: query \S+ is listed twice \(first on line 1\)/],
    ];
    for (const [bad, message] of cases) {
      const file = write('bad.tsv', [`${q1}\t${p[0]}`, bad]);
      const err = await applyNegatives(brown, parse({ from: 'file', path: file }), strict()).catch((e) => e);
      expect(err).toBeInstanceOf(DataFormatError);
      expect(err.file).toBe(file);
      expect(err.message).toMatch(message);
    }
  });

  it('--skip-bad-rows: malformed lines are skipped and counted per file, the rest used', async () => {
    const [q1, q2] = train();
    const p = pids();
    const file = write('some-bad.tsv', [`${q1}\t${p[0]}`, 'garbage', `${q2}\tnope`, `${q2}\t${p[3]}`]);
    const bad = new BadRows(true);
    const coll = await applyNegatives(brown, parse({ from: 'file', path: file }), bad);
    expect(bad.summary()).toEqual({ [file]: 2 });
    expect(bad.describe()[0]).toMatch(new RegExp(`skipped 2 bad rows of ${file} \\(first: ${file}:2: expected 2`));
    expect(coll.candidates.train.get(q2)).toEqual([p[3]].filter((x) => !relevant(brown, q2, x)));
    const rows = [];
    for await (const r of readHardNegatives(file, { badRows: new BadRows(true) })) rows.push(r.qid);
    expect(rows).toEqual([q1, q2, q2]); // the reader skips what it can tell; the pid check is applyNegatives'
  });
});

describe('MS MARCO: triples, a ranked candidates file, and --skip-bad-rows', () => {
  const dir = path.join(tmp, 'msmarco');
  beforeAll(() => {
    fs.mkdirSync(dir);
    const lines = (name: string, l: string[]) =>
      fs.writeFileSync(path.join(dir, name), l.map((x) => `${x}\n`).join(''));
    lines('collection.tsv', ['10\tten', '11\televen', '12\ttwelve', '13\tthirteen', '14\tfourteen', '15\tfifteen']);
    lines('queries.train.tsv', ['1\tquery one', '2\tquery two']);
    lines('qrels.train.tsv', ['1\t0\t10\t1', '2\t0\t11\t1', '1\t0\t13\t2']);
    lines('triples.tsv', ['1\t10\t12', '1\t10\t14', '2\t11\t10', '1\t10\t12']);
    // ranks out of file order; 13 is judged relevant for query 1
    lines('run.train.tsv', ['1\t15\t3', '1\t13\t2', '1\t12\t1', '1\t14\t4', '2\t12\t1']);
    fs.writeFileSync(
      path.join(dir, 'desc.json'),
      JSON.stringify({
        collection: 'collection.tsv',
        train: {
          queries: 'queries.train.tsv',
          qrels: 'qrels.train.tsv',
          triples: 'triples.tsv',
          candidates: 'run.train.tsv',
        },
      }),
    );
  });

  it('from triples draws the triples negatives; from candidates the run file by rank within the window', async () => {
    const coll = await loadMsMarco(path.join(dir, 'desc.json'));
    const triples = await applyNegatives(coll, parse({ from: 'triples' }), strict());
    expect(Object.fromEntries(triples.candidates.train)).toEqual({ '1': ['12', '14'], '2': ['10'] });
    const ranked = await applyNegatives(coll, parse({ from: 'candidates', depth: [2, 3] }), strict());
    // ranks 2..3 are 13 (relevant: dropped) and 15
    expect(Object.fromEntries(ranked.candidates.train)).toEqual({ '1': ['15'], '2': [] });
    // a count alone keeps the candidates as loaded (the run file's and the triples' passages)
    expect(await applyNegatives(coll, 7, strict())).toBe(coll);
  });

  it('--skip-bad-rows skips and counts the malformed rows of each file; without it the first is an error', async () => {
    const bad = path.join(tmp, 'msmarco-bad');
    fs.cpSync(dir, bad, { recursive: true });
    fs.appendFileSync(path.join(bad, 'queries.train.tsv'), '3\t \n4\tquery four\n');
    fs.appendFileSync(path.join(bad, 'qrels.train.tsv'), '1\t0\t99\t1\n2\t0\t12\tx\n');
    fs.appendFileSync(path.join(bad, 'triples.tsv'), '1\t10\n');
    fs.appendFileSync(path.join(bad, 'run.train.tsv'), '1\t12\tfirst\n');
    const desc = path.join(bad, 'desc.json');
    await expect(loadMsMarco(desc)).rejects.toThrow(`${path.join(bad, 'queries.train.tsv')}:3: id 3 has no text`);
    const rows = new BadRows(true);
    const coll = await loadMsMarco(desc, { badRows: rows });
    expect(rows.summary()).toEqual({
      [path.join(bad, 'queries.train.tsv')]: 1,
      [path.join(bad, 'qrels.train.tsv')]: 2,
      [path.join(bad, 'triples.tsv')]: 1,
      [path.join(bad, 'run.train.tsv')]: 1,
    });
    expect(coll.queries.train.get('4')).toBe('query four');
    expect(coll.qrels.train.get('1')!.has('99')).toBe(false);
  });
});

describe('drawnPairs', () => {
  it("is the sampler's draws over n steps, each pair once, in the order first drawn", () => {
    const data = { negatives: 3, trainQueries: 10 };
    const train = { batch: 4, seed: 5 };
    const pairs = drawnPairs(brown, data, train, 6);
    const sampler = runSampler(brown, data, train);
    const expected: string[] = [];
    for (let s = 0; s < 6; s++) for (const g of sampler.next()) for (const p of g.pids) expected.push(`${g.qid}\t${p}`);
    expect(pairs.map(([q, p]) => `${q}\t${p}`)).toEqual([...new Set(expected)]);
    expect(drawnPairs(brown, data, train, 6)).toEqual(pairs); // deterministic given the seed
    expect(drawnPairs(brown, data, { ...train, seed: 6 }, 6)).not.toEqual(pairs);
  });
});
