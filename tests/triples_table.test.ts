// MS MARCO's training triples as a per-query table in the passage store (src/data/triples_table.ts):
// qidpidtriples rows laid out as MS MARCO publishes them (plain and .gz) round trip through the
// table, and a run reads from it the same keys, lists and sampler draws as from the rows; a changed
// triples file (or collection/queries) makes the table stale (rebuilt, or refused naming the file);
// a malformed row names the file and line, or is skipped and counted at every open.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import { BadRows } from '../src/data/bad_rows';
import { DataFormatError } from '../src/data/lines';
import { loadMsMarco, msMarcoFiles, openMsMarcoStore, type MsMarcoCollection } from '../src/data/msmarco';
import { BertTokenizer } from '../src/data/tokenizer';
import { MapView, TriplesTable } from '../src/data/triples_table';
import { applyNegatives, GroupSampler } from '../src/distill';
import { queryPass } from '../src/distill/batches';
import type { TaskEvent } from '../src/eval/rerank';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-triples-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const tokenizer = new BertTokenizer();
const TRIPLES = 'qidpidtriples.train.full.2.tsv';

const writeLines = (file: string, lines: string[]) => {
  const text = lines.map((l) => `${l}\n`).join('');
  fs.writeFileSync(file, file.endsWith('.gz') ? zlib.gzipSync(text) : text);
  return file;
};

// Sparse pids (a sorted id table) and qids; seeded rows with repeats, queries interleaved, a query
// with two positives, a triple positive the qrels grade 0, a query the qrels lack.
function dataset(name: string, gz: boolean): { dir: string; rows: Array<[number, number, number]> } {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const words = ['river', 'bank', 'money', 'stone', 'light', 'north', 'garden', 'paper', 'music', 'storm'];
  const pids = Array.from({ length: 40 }, (_, i) => 500 + 3 * i);
  writeLines(
    path.join(dir, `collection.tsv${gz ? '.gz' : ''}`),
    pids.map((p, i) => `${p}\t${words[i % 10]} ${words[(i * 7) % 10]} ${words[(i * 3 + 1) % 10]} passage ${i}`),
  );
  const qids = [1002, 1007, 1011, 1019, 1020, 1031];
  writeLines(
    path.join(dir, 'queries.train.tsv'),
    qids.map((q, i) => `${q}\t${words[i]} ${words[(i + 4) % 10]}?`),
  );
  // 1031 has no qrels row; 1007's triple positive 521 is graded 0 there (the triples make it 1).
  writeLines(path.join(dir, 'qrels.train.tsv'), [
    '1002\t0\t500\t1',
    '1007\t0\t503\t2',
    '1007\t0\t521\t0',
    '1011\t0\t506\t1',
    '1019\t0\t509\t1',
    '1020\t0\t512\t1',
  ]);
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % n;
  };
  const positives: Record<number, number[]> = {
    1002: [500],
    1007: [503, 521],
    1011: [506],
    1019: [509],
    1020: [512],
    1031: [515],
  };
  const rows: Array<[number, number, number]> = [[1007, 521, 530]];
  for (let i = 0; i < 90; i++) {
    const q = qids[rand(qids.length)];
    const pos = positives[q][rand(positives[q].length)];
    let neg = pids[rand(pids.length)];
    if (neg === pos) neg = pids[(pids.indexOf(neg) + 1) % pids.length];
    rows.push([q, pos, neg]);
  }
  writeLines(
    path.join(dir, `${TRIPLES}${gz ? '.gz' : ''}`),
    rows.map((r) => r.join('\t')),
  );
  return { dir, rows };
}

const quiet = { notice: () => undefined };
const storeOf = (dir: string, notice: (m: string) => void = () => undefined) => ({
  tokenizer,
  dir: path.join(dir, 'store'),
  notice,
});
// A Map of lists or of Maps as plain arrays, in its iteration order.
const plain = (m: Map<string, unknown>) =>
  [...m].map(([k, v]) => [k, v instanceof Map ? [...(v as Map<string, number>)] : v]);

function draws(coll: MsMarcoCollection, steps: number): string[] {
  const sampler = new GroupSampler(coll, { negatives: 3, batch: 4, seed: 11 });
  const out: string[] = [];
  for (let s = 0; s < steps; s++)
    for (const g of sampler.next()) out.push(`${g.qid}:${g.pids.join(',')}:${g.grades.join(',')}`);
  return out;
}

describe('the triples table', () => {
  for (const gz of [false, true])
    it(`round trips qidpidtriples${gz ? '.gz' : ''}: the row reader's lists, keys and draws, not held as strings`, async () => {
      const { dir, rows } = dataset(`round-trip-${gz}`, gz);
      const fromRows = await loadMsMarco(dir);
      const fromTable = await loadMsMarco(dir, { store: storeOf(dir) });
      const table = (fromTable.store as { triples?: TriplesTable }).triples!;
      expect(table).toBeInstanceOf(TriplesTable);
      expect(table.manifest.rows).toBe(rows.length);
      // Each query's positives and negatives: first appearances, in file order.
      const want = new Map<number, { pos: number[]; neg: number[] }>();
      for (const [q, p, n] of rows) {
        const e = want.get(q) ?? { pos: [], neg: [] };
        if (!e.pos.includes(p)) e.pos.push(p);
        if (!e.neg.includes(n)) e.neg.push(n);
        want.set(q, e);
      }
      expect(Array.from(table.qids)).toEqual([...want.keys()]);
      for (const [q, e] of want) {
        expect(table.positives(table.index(String(q)))).toEqual(e.pos.map(String));
        expect(table.negatives(table.index(String(q)))).toEqual(e.neg.map(String));
      }
      expect(table.index('999')).toBe(-1);
      expect(table.index('01002')).toBe(-1);

      expect(fromTable.qrels.train).toBeInstanceOf(MapView);
      expect(fromTable.candidates.train).toBeInstanceOf(MapView);
      expect(fromTable.qrels.train.size).toBe(fromRows.qrels.train.size);
      expect(plain(fromTable.qrels.train)).toEqual(plain(fromRows.qrels.train));
      expect(fromTable.qrels.train.get('1007')!.get('521')).toBe(1);
      expect(plain(fromTable.candidates.train)).toEqual(plain(fromRows.candidates.train));
      expect(plain(fromTable.msmarcoTrain.triples)).toEqual(plain(fromRows.msmarcoTrain.triples));
      expect(fromTable.candidates.train.get('nope')).toBeUndefined();
      expect(() => fromTable.candidates.train.set('1', [])).toThrow(/read-only/);

      // The sampler draws the same groups, with data.negatives from the triples (windowed too) or a count.
      for (const negatives of [
        3,
        { from: 'triples' as const, count: 3 },
        { from: 'triples' as const, count: 3, depth: [2, 6] as [number, number] },
      ]) {
        const a = (await applyNegatives(fromRows, negatives, new BadRows(false))) as MsMarcoCollection;
        const b = (await applyNegatives(fromTable, negatives, new BadRows(false))) as MsMarcoCollection;
        expect(draws(b, 12)).toEqual(draws(a, 12));
      }
      expect(fromTable.fingerprint).toBe((await loadMsMarco(dir, { store: storeOf(dir) })).fingerprint);
    });

  it('is rebuilt when the triples, the collection or the queries change, or refused naming the file', async () => {
    const { dir } = dataset('stale', false);
    const notices: string[] = [];
    const first = await loadMsMarco(dir, { store: storeOf(dir, (m) => notices.push(m)) });
    expect(notices.some((m) => /building the triples.train table/.test(m))).toBe(true);
    expect(first.qrels.train.get('1031')!.get('518')).toBeUndefined();
    notices.length = 0;
    await loadMsMarco(dir, { store: storeOf(dir, (m) => notices.push(m)) });
    expect(notices).toEqual([]); // fresh: opened as it is

    const file = path.join(dir, TRIPLES);
    fs.appendFileSync(file, '1031\t518\t617\n');
    // What a build killed midway left (its process gone) is removed by the next build.
    const leftover = path.join(dir, 'store', '.triples.train.tmp-4194303');
    fs.mkdirSync(leftover);
    const files = msMarcoFiles(dir);
    await expect(openMsMarcoStore(dir, files, { ...storeOf(dir), stale: 'error' })).rejects.toThrow(
      /triples.train table is stale: .*qidpidtriples.train.full.2.tsv changed since it was built: its size changed/,
    );
    const second = await loadMsMarco(dir, { store: storeOf(dir, (m) => notices.push(m)) });
    expect(notices.some((m) => /rebuilding the triples.train table .*its size changed/.test(m))).toBe(true);
    expect(second.qrels.train.get('1031')!.get('518')).toBe(1);
    expect(fs.existsSync(leftover)).toBe(false);
    expect(second.fingerprint).not.toBe(first.fingerprint);

    // The rows were checked against the queries: a changed queries file makes the table stale too.
    notices.length = 0;
    fs.appendFileSync(path.join(dir, 'queries.train.tsv'), '1040\tlate query\n');
    await loadMsMarco(dir, { store: storeOf(dir, (m) => notices.push(m)) });
    expect(
      notices.some((m) => /rebuilding the triples.train table .*collection or the training queries changed/.test(m)),
    ).toBe(true);
  });

  it('names the file and line of a malformed row, leaves no table, and skips and counts it at every open', async () => {
    const { dir } = dataset('bad', false);
    const file = path.join(dir, TRIPLES);
    const good = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const cases: Array<[string, RegExp]> = [
      ['1002\t500', /expected 3 tab-separated integer ids \(qid pid_pos pid_neg\), got 2 fields/],
      ['1002\t500\tbank', /pid_neg 'bank' is not an integer id/],
      ['1002\t500\t501', /passage 501 is not in collection.tsv/],
      ['1003\t500\t503', /query 1003 has no text in queries.train.tsv/],
    ];
    for (const [row, why] of cases) {
      writeLines(file, [...good.slice(0, 4), row, ...good.slice(4)]);
      const err = await loadMsMarco(dir, { store: storeOf(dir) }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(DataFormatError);
      expect((err as DataFormatError).message).toMatch(new RegExp(`${TRIPLES}:5: ${why.source}`));
      expect(fs.existsSync(path.join(dir, 'store', 'triples.train'))).toBe(false);
      expect(fs.readdirSync(path.join(dir, 'store')).filter((n) => n.includes('triples'))).toEqual([]);
    }
    // --skip-bad-rows: built without the row, counted when built and at every later open.
    for (let open = 0; open < 2; open++) {
      const bad = new BadRows(true);
      const coll = await loadMsMarco(dir, { store: storeOf(dir), badRows: bad });
      expect(bad.counts.get(file)).toBe(1);
      expect(bad.first.get(file)).toMatch(/:5: query 1003 has no text/);
      expect([...coll.msmarcoTrain.triples.keys()].length).toBeGreaterThan(0);
    }
    // Opened strictly, the table built skipping a row is rebuilt: its first bad row is the error.
    await expect(loadMsMarco(dir, { store: { ...storeOf(dir), ...quiet } })).rejects.toThrow(
      /:5: query 1003 has no text/,
    );
  });

  it('its build shows progress by MB; a pass over the training queries past a second does too', async () => {
    const { dir } = dataset('progress', true);
    const events: TaskEvent[] = [];
    await openMsMarcoStore(dir, msMarcoFiles(dir), { ...storeOf(dir), onProgress: (e) => events.push(e as TaskEvent) });
    const mine = events.filter((e) => e.label === `index ${TRIPLES}.gz`);
    expect(mine.at(-1)).toMatchObject({ type: 'task', unit: 'MB', done: 1, total: 1 });

    let now = 1000;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => now);
    try {
      const seen: TaskEvent[] = [];
      const tick = queryPass('training queries', 10, (e) => seen.push(e));
      tick(1);
      now += 900; // under a second: silent
      tick(2);
      expect(seen).toEqual([]);
      now += 200;
      tick(3);
      now += 100; // within 250 ms of the last event
      tick(4);
      now += 300;
      tick(5);
      tick(10); // the end is always shown
      expect(seen.map((e) => e.done)).toEqual([3, 5, 10]);
      expect(seen[0]).toEqual({ type: 'task', label: 'training queries', done: 3, total: 10, unit: 'queries' });
    } finally {
      clock.mockRestore();
    }
  });

  it('text triples (triples.train.small.tsv) keep the row reader: no table', async () => {
    const { dir, rows } = dataset('text', false);
    const text = (f: string) =>
      new Map(
        fs
          .readFileSync(path.join(dir, f), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t') as [string, string]),
      );
    const passages = text('collection.tsv');
    const queries = text('queries.train.tsv');
    fs.rmSync(path.join(dir, TRIPLES));
    writeLines(
      path.join(dir, 'triples.train.small.tsv'),
      rows.map(([q, p, n]) => `${queries.get(String(q))}\t${passages.get(String(p))}\t${passages.get(String(n))}`),
    );
    const coll = await loadMsMarco(dir, { store: storeOf(dir) });
    expect((coll.store as { triples?: TriplesTable }).triples).toBeUndefined();
    expect(coll.msmarcoTrain.triples).not.toBeInstanceOf(MapView);
    expect(coll.msmarcoTrain.triples.get('1002')!.length).toBeGreaterThan(0);
  });
});
