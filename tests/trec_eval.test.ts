// evaluateTrec against numbers NIST's trec_eval (10.0 with -c, 9.0.8 without, as 10.0 exits there) and
// MS MARCO's ms_marco_eval.py printed for the files of tests/fixtures/trec; expected.json records the
// exact command lines and versions (see the folder's README.md). The fixtures cover ties, a qrels query
// missing from the run, a qrels query with no relevant document, graded relevance with -l 2, a run
// query absent from the qrels, rank gaps in an MS MARCO run, a duplicate docno, and 30 seeded random
// queries (rounded scores: many ties). No trec_eval binary is needed here.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import {
  evaluateTrec,
  rankedRun,
  readTrecQrels,
  readTrecRun,
  trecTable,
  writeTrecRun,
  type TrecMeasures,
} from '../src/eval/trec';

const dir = path.join(__dirname, 'fixtures', 'trec');
const fixture = (name: string) => path.join(dir, name);

interface Case {
  qrels: string;
  run: string;
  relevanceLevel: number;
  complete: boolean;
  commands: string[];
  values: Record<string, Record<string, number>>;
}
const expected = JSON.parse(fs.readFileSync(fixture('expected.json'), 'utf8')) as {
  cases: Case[];
  msmarco: { 'MRR@10': number };
};

// trec_eval's name of each measure (recip_rank_10: recip_rank of the -M 10 command).
const TREC_NAMES: Array<[keyof TrecMeasures, string]> = [
  ['recipRank10', 'recip_rank_10'],
  ['recipRank', 'recip_rank'],
  ['ndcg10', 'ndcg_cut_10'],
  ['map', 'map'],
  ['recall10', 'recall_10'],
  ['recall100', 'recall_100'],
];

// trec_eval prints 4 decimals.
const close = (actual: number, printed: number) => expect(Math.abs(actual - printed)).toBeLessThanOrEqual(5e-5 + 1e-12);

describe('evaluateTrec matches trec_eval', () => {
  for (const c of expected.cases) {
    // The MS MARCO run is evaluated from its 3-column file; trec_eval read its TREC conversion.
    const runFile = c.run === 'run.msmarco.trec.txt' ? 'run.msmarco.tsv' : c.run;
    it(`${c.commands[0]} (${runFile})`, async () => {
      const e = evaluateTrec(await readTrecRun(fixture(runFile)), await readTrecQrels(fixture(c.qrels)), {
        relevanceLevel: c.relevanceLevel,
        complete: c.complete,
      });
      const { all, ...queries } = c.values;
      expect(e.queries).toBe(all.num_q);
      expect([...e.perQuery.keys()].sort()).toEqual(Object.keys(queries).sort());
      for (const [qid, values] of Object.entries(queries))
        for (const [ours, theirs] of TREC_NAMES) close(e.perQuery.get(qid)![ours], values[theirs]);
      for (const [ours, theirs] of TREC_NAMES) close(e.mean[ours], all[theirs]);
    });
  }

  it('a duplicate docno in a query of the run is an error naming file and line (trec_eval: "duplicate docs")', async () => {
    await expect(readTrecRun(fixture('run_duplicate.txt'))).rejects.toThrow(
      /run_duplicate\.txt:3: query q1 retrieves docno d1 twice/,
    );
  });
});

describe("msmarcoMRR10 matches MS MARCO's ms_marco_eval.py", () => {
  it('ranks by the rank column and averages over every qrels query', async () => {
    const qrels = await readTrecQrels(fixture('qrels.msmarco.tsv'));
    const run = await readTrecRun(fixture('run.msmarco.tsv'));
    for (const complete of [true, false]) {
      const e = evaluateTrec(run, qrels, { complete });
      expect(e.mean.msmarcoMRR10).toBeCloseTo(expected.msmarco['MRR@10'], 12);
      expect(e.qrelsQueries).toBe(5);
    }
    // Query 104 has ranks 1 and 4 only: the script's 1/4, trec_eval's 1/2 (it re-ranks by score).
    const q104 = evaluateTrec(run, qrels).perQuery.get('104')!;
    expect(q104.msmarcoMRR10).toBe(1 / 4);
    expect(q104.recipRank10).toBe(1 / 2);
  });

  it('keeps tied scores in their given ranks, where trec_eval orders them by docno descending', async () => {
    const run = await readTrecRun(fixture('run.txt'));
    const qrels = await readTrecQrels(fixture('qrels.txt'));
    const q2 = evaluateTrec(run, qrels).perQuery.get('q2')!; // t1 t2 t3 tx all at 1.5
    expect(q2.msmarcoMRR10).toBe(1); // t1 at rank 1
    expect(q2.recipRank10).toBe(1 / 2); // tx, t3, ...
  });
});

describe('TREC files', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'trec-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads .gz qrels and runs', async () => {
    for (const name of ['qrels.txt', 'run.txt'])
      fs.writeFileSync(path.join(tmp, `${name}.gz`), zlib.gzipSync(fs.readFileSync(fixture(name))));
    expect(await readTrecQrels(path.join(tmp, 'qrels.txt.gz'))).toEqual(await readTrecQrels(fixture('qrels.txt')));
    expect(await readTrecRun(path.join(tmp, 'run.txt.gz'))).toEqual(await readTrecRun(fixture('run.txt')));
  });

  it('names the file and line of a malformed line', async () => {
    const f = path.join(tmp, 'bad.txt');
    fs.writeFileSync(f, 'q1 Q0 d1 1 2.5 tag\nq1 Q0 d2 2 tag\n');
    await expect(readTrecRun(f)).rejects.toThrow(/bad\.txt:2: expected 6 fields as on the first line, got 5/);
    fs.writeFileSync(f, 'q1 d1 1 2\n');
    await expect(readTrecRun(f)).rejects.toThrow(/bad\.txt:1: expected a TREC run .* got 4 fields/);
    fs.writeFileSync(f, 'q1 Q0 d1 1 high tag\n');
    await expect(readTrecRun(f)).rejects.toThrow(/bad\.txt:1: score must be a number, got 'high'/);
    fs.writeFileSync(f, 'q1 0 d1\n');
    await expect(readTrecQrels(f)).rejects.toThrow(/bad\.txt:1: expected 4 fields/);
    fs.writeFileSync(f, 'q1 0 d1 1\nq1 0 d1 0\n');
    await expect(readTrecQrels(f)).rejects.toThrow(/bad\.txt:2: query q1 judges docno d1 twice/);
    fs.writeFileSync(f, 'q1 0 d1 1.5\n');
    await expect(readTrecQrels(f)).rejects.toThrow(/bad\.txt:1: grade must be an integer, got '1\.5'/);
  });

  it('writes a run that reads back to the same measures', async () => {
    const run = new Map([
      [
        'q1',
        new Map([
          ['d1', 0.5],
          ['d3', 0.5],
          ['d2', 2],
        ]),
      ],
      ['q2', new Map([['t1', -1]])],
    ]);
    const f = path.join(tmp, 'out', 'run.txt');
    fs.mkdirSync(path.dirname(f));
    await writeTrecRun(f, run, 'model');
    expect(fs.readFileSync(f, 'utf8')).toBe(
      'q1 Q0 d2 1 2 model\nq1 Q0 d3 2 0.5 model\nq1 Q0 d1 3 0.5 model\nq2 Q0 t1 1 -1 model\n',
    );
    const qrels = await readTrecQrels(fixture('qrels.txt'));
    expect(evaluateTrec(await readTrecRun(f), qrels)).toEqual(evaluateTrec(rankedRun(run), qrels));
    await expect(writeTrecRun(f, run, 'two words')).rejects.toThrow(/tag 'two words'/);
  });

  it('prints a table with num_q and 4 decimals', async () => {
    const e = evaluateTrec(await readTrecRun(fixture('run.txt')), await readTrecQrels(fixture('qrels.txt')));
    expect(trecTable(e)).toMatch(/^num_q\s+6$/m);
    expect(trecTable(e)).toMatch(/^map\s+0\.2498$/m);
  });

  it('no common query is an error', () => {
    for (const complete of [true, false])
      expect(() => evaluateTrec(new Map([['x', []]]), new Map([['y', new Map([['d', 1]])]]), { complete })).toThrow(
        /no query of the run is in the qrels/,
      );
  });
});
