// Teacher scores files as per-query tables (src/data/score_table.ts): Hofstätter-format scores of an
// MS MARCO-laid-out dataset read once into columns, written beside its passage store and read back
// by later opens; the scores and the training groups are what the file's rows say (read here
// independently, row by row); a changed file is rebuilt; a pair scored twice with different scores
// names both lines, or with --skip-bad-rows its row is skipped and counted (again at every open);
// ids that are not integers give a table in memory. And the pairs a run draws (drawnPairStream):
// the pairs of its groups, each once, in the order first drawn, without holding them.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { BadRows } from '../src/data/bad_rows';
import { loadMsMarco, readTeacherScoreFile } from '../src/data/msmarco';
import type { RankingCollection } from '../src/data/ranking_collection';
import { readScoresManifest, scoreTableDir } from '../src/data/score_table';
import type { BertTokenizer } from '../src/data/tokenizer';
import { drawnPairStream, runSampler } from '../src/distill/batches';
import { pairKey, scoresFromFile } from '../src/distill/teacher_cache';
import { tinyCollection } from './helpers/tiny_collection';
import { writeLines, writeTinyMsMarco, type TinyMsMarco } from './helpers/tiny_msmarco';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-scores-'));
let brown: RankingCollection;
let tokenizer: BertTokenizer;
let tiny: TinyMsMarco;

beforeAll(async () => {
  ({ coll: brown, tokenizer } = await tinyCollection(path.join(tmp, 'brown')));
  tiny = writeTinyMsMarco(brown, path.join(tmp, 'msmarco'));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The dataset with a store in `store` (built on first use), and the notices it gave. */
async function open(store: string): Promise<{ coll: RankingCollection; notices: string[] }> {
  const notices: string[] = [];
  const coll = await loadMsMarco(tiny.dir, { store: { tokenizer, dir: store, notice: (m) => notices.push(m) } });
  return { coll, notices };
}

/** What the rows of a Hofstätter file say, read row by row: scores, and each query's positives and negatives in file order. */
async function rowsOf(file: string) {
  const scores = new Map<string, number>();
  const positives = new Map<string, string[]>();
  const negatives = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, q: string, p: string) => {
    const l = m.get(q) ?? [];
    if (!l.includes(p)) l.push(p);
    m.set(q, l);
  };
  for await (const r of readTeacherScoreFile(file)) {
    scores.set(pairKey(r.qid, r.pos!.pid), r.pos!.score);
    scores.set(pairKey(r.qid, r.neg!.pid), r.neg!.score);
    add(positives, r.qid, r.pos!.pid);
    add(negatives, r.qid, r.neg!.pid);
  }
  return { scores, positives, negatives };
}

describe('teacher scores table', () => {
  it("holds every pair's score and the triples' groups as the rows say, written beside the store", async () => {
    const { coll } = await open(path.join(tmp, 'store-a'));
    const notices: string[] = [];
    const read = await scoresFromFile(tiny.scores, coll, new BadRows(false), { notice: (m) => notices.push(m) });
    const want = await rowsOf(tiny.scores);
    expect(read.format).toBe('triples');
    expect(want.scores.size).toBeGreaterThan(20);
    expect(read.scores.size).toBe(want.scores.size);
    for (const [k, v] of want.scores) expect(read.scores.get(k)).toBe(Math.fround(v));
    const [q, p] = [...want.scores.keys()][0].split('\t');
    expect(read.scores.get(pairKey(q, '999999'))).toBeUndefined();
    expect(read.scores.get(pairKey('999999', p))).toBeUndefined();
    expect(read.scores.has(pairKey('not-an-id', p))).toBe(false);
    // The groups: positives judged relevant, negatives the candidates; other queries absent.
    expect([...read.coll.qrels.train.keys()]).toEqual([...want.positives.keys()]);
    for (const [qid, pos] of want.positives) {
      const judged = read.coll.qrels.train.get(qid)!;
      expect([...judged].filter(([, g]) => g >= 1).map(([pid]) => pid)).toEqual(pos);
      expect(read.coll.candidates.train.get(qid)).toEqual(want.negatives.get(qid));
    }
    // Written beside the store, with the counts of the file.
    expect(notices.join('\n')).toMatch(/building the table of .*msmarco\.scores\.tsv/);
    const m = readScoresManifest(scoreTableDir(coll.store!, tiny.scores))!;
    expect(m).toMatchObject({ rows: 'triples', queries: want.positives.size, skipped: 0 });
    expect(m.rowCount).toBe(fs.readFileSync(tiny.scores, 'utf8').trim().split('\n').length);
  });

  it('is read back by a later open, not rebuilt; a changed file is rebuilt', async () => {
    const store = path.join(tmp, 'store-b');
    const file = path.join(tmp, 'copy.scores.tsv');
    fs.copyFileSync(tiny.scores, file);
    const { coll } = await open(store);
    const first: string[] = [];
    const a = await scoresFromFile(file, coll, new BadRows(false), { notice: (m) => first.push(m) });
    const again: string[] = [];
    const b = await scoresFromFile(file, coll, new BadRows(false), { notice: (m) => again.push(m) });
    expect(first).toHaveLength(1);
    expect(again).toEqual([]);
    expect(b.scores.size).toBe(a.scores.size);
    const key = [...(await rowsOf(file)).scores.keys()][3];
    expect(b.scores.get(key)).toBe(a.scores.get(key));
    // One more row (a new negative of the first query): rebuilt, and the new pair is there.
    const row = fs.readFileSync(file, 'utf8').split('\n')[0].split('\t');
    const unused = [...tiny.pidOf.values()].find((pid) => !a.scores.has(pairKey(row[2], pid)))!;
    fs.appendFileSync(file, `${row[0]}\t-3.25\t${row[2]}\t${row[3]}\t${unused}\n`);
    const changed: string[] = [];
    const c = await scoresFromFile(file, coll, new BadRows(false), { notice: (m) => changed.push(m) });
    expect(changed.join('\n')).toMatch(/rebuilding the table of .*copy\.scores\.tsv \(.*changed since it was built/);
    expect(c.scores.get(pairKey(row[2], unused))).toBe(-3.25);
    expect(c.scores.size).toBe(a.scores.size + 1);
  });

  it('names both lines of a pair scored twice differently; --skip-bad-rows skips that row and counts it at every open', async () => {
    const { coll } = await open(path.join(tmp, 'store-c'));
    const [q, pos] = [tiny.qidOf.values().next().value!, tiny.pidOf.values().next().value!];
    const negs = [...tiny.pidOf.values()].filter((p) => p !== pos).slice(0, 3);
    const file = writeLines(path.join(tmp, 'conflict.tsv'), [
      `5\t1\t${q}\t${pos}\t${negs[0]}`,
      `5.000001\t2\t${q}\t${pos}\t${negs[1]}`, // agrees up to printing
      `9\t3\t${q}\t${pos}\t${negs[2]}`,
    ]);
    await expect(scoresFromFile(file, coll)).rejects.toThrow(
      `${file}:3: query ${q}, passage ${pos} scored 9, on line 1 5`,
    );
    const bad = new BadRows(true);
    const read = await scoresFromFile(file, coll, bad, { notice: () => undefined });
    expect(bad.counts.get(file)).toBe(1);
    expect(bad.first.get(file)).toMatch(/:3: query .* scored 9, on line 1 5/);
    expect(read.scores.get(pairKey(q, pos))).toBe(5);
    expect(read.scores.get(pairKey(q, negs[1]))).toBe(2);
    expect(read.scores.has(pairKey(q, negs[2]))).toBe(false);
    expect(read.coll.candidates.train.get(q)).toEqual(negs.slice(0, 2));
    const later = new BadRows(true);
    await scoresFromFile(file, coll, later, { notice: () => undefined });
    expect(later.counts.get(file)).toBe(1);
    // Read without skipping, the table built with skips is rebuilt: the bad row is the error again.
    await expect(scoresFromFile(file, coll, new BadRows(false), { notice: () => undefined })).rejects.toThrow(
      `${file}:3:`,
    );
  });

  it('keeps a table of ids that are not integers in memory (the bundled collection)', async () => {
    const [q, judged] = [...brown.qrels.train].find(([qid]) => (brown.candidates.train.get(qid) ?? []).length > 1)!;
    const pos = [...judged].find(([, g]) => g >= 1)![0];
    const negs = brown.candidates.train
      .get(q)!
      .filter((p) => (judged.get(p) ?? 0) < 1)
      .slice(0, 2);
    const file = writeLines(path.join(tmp, 'brown-scores.tsv'), [
      `2\t-1\t${q}\t${pos}\t${negs[0]}`,
      `2\t0.5\t${q}\t${pos}\t${negs[1]}`,
    ]);
    const read = await scoresFromFile(file, brown);
    expect(read.scores.size).toBe(3);
    expect(read.scores.get(pairKey(q, negs[1]))).toBe(0.5);
    expect(read.scores.get(pairKey(q, 'ca99-9'))).toBeUndefined();
    expect([...read.coll.qrels.train.keys()]).toEqual([q]);
    expect(read.coll.candidates.train.get(q)).toEqual(negs);
    await expect(
      scoresFromFile(writeLines(path.join(tmp, 'unknown.tsv'), [`2\t-1\t${q}\t${pos}\tzz-1`]), brown),
    ).rejects.toThrow(/unknown\.tsv:1: passage zz-1 is not in the collection/);
  });
});

describe('drawnPairStream', () => {
  // The pairs as a Set of keys would list them: the groups' pairs, first drawn first, each once.
  function byKeys(coll: RankingCollection, steps: number, seed: number): Array<[string, string]> {
    const sampler = runSampler(coll, { negatives: 3 }, { batch: 3, seed });
    const seen = new Set<string>();
    const out: Array<[string, string]> = [];
    for (let s = 0; s < steps; s++)
      for (const g of sampler.next())
        for (const pid of g.pids)
          if (!seen.has(pairKey(g.qid, pid))) {
            seen.add(pairKey(g.qid, pid));
            out.push([g.qid, pid]);
          }
    return out;
  }

  it('lists the pairs of the groups drawn, each once, in the order first drawn', () => {
    for (const [steps, seed] of [
      [1, 1],
      [7, 2],
      [60, 3], // several epochs: most pairs drawn before
    ]) {
      const got = [...drawnPairStream(brown, { negatives: 3 }, { batch: 3, seed }, steps)];
      expect(got).toEqual(byKeys(brown, steps, seed));
      expect(got.length).toBeGreaterThan(0);
    }
  });

  it('lists a passage a candidate list repeats once', () => {
    const repeated: RankingCollection = {
      ...brown,
      candidates: {
        ...brown.candidates,
        train: new Map([...brown.candidates.train].map(([q, pids]) => [q, [...pids, ...pids]])),
      },
    };
    const got = [...drawnPairStream(repeated, { negatives: 3 }, { batch: 3, seed: 5 }, 40)];
    expect(got).toEqual(byKeys(repeated, 40, 5));
    expect(new Set(got.map(([q, p]) => pairKey(q, p))).size).toBe(got.length);
  });
});
