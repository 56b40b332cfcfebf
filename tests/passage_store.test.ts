// The pre-tokenized passage store (src/data/passage_store.ts): its ids are the tokenizer's, read
// back by id from memory or by offset, from plain and gzipped sources, in uint16 and uint32, through
// every id table; a changed source is rebuilt or refused naming it; a build killed at any write
// leaves no table that reads as complete; and pairs encoded from the store are the text path's,
// on the bundled collection and on MS MARCO-laid-out files, for BERT's and RoBERTa's pair templates.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import * as tf from '@tensorflow/tfjs';

import {
  buildTokenTable,
  NotInStoreError,
  openPassageStore,
  TokenTable,
  type PassageStore,
} from '../src/data/passage_store';
import {
  BertTokenizer,
  bertBaseUncasedVocab,
  HfTokenizer,
  ROBERTA_PAIR_TOKENS,
  wordPieceTokenizerJson,
  type PairTokenizer,
} from '../src/data/tokenizer';
import { DataFormatError } from '../src/data/lines';
import { loadMsMarco } from '../src/data/msmarco';
import type { RankingCollection } from '../src/data/ranking_collection';
import { distill, parseStudentConfig } from '../src/distill';
import { PairEncoder } from '../src/models/pair_encoder';
import { tinyCollection } from './helpers/tiny_collection';
import { writeLines, writeTinyMsMarco } from './helpers/tiny_msmarco';
import { cli, mountTmpfs, unmount } from './reliability/helpers';

const ROOT = path.join(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-store-'));
let brown: RankingCollection;
let tokenizer: BertTokenizer;
const msmarco = path.join(tmp, 'msmarco');

beforeAll(async () => {
  ({ coll: brown, tokenizer } = await tinyCollection(path.join(tmp, 'brown')));
  writeTinyMsMarco(brown, msmarco);
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const quiet = { notice: () => undefined };

/** Every row of an id<TAB>text file. */
const rows = (file: string): Array<[string, string]> => {
  const raw = fs.readFileSync(file);
  const text = file.endsWith('.gz') ? zlib.gunzipSync(raw).toString('utf8') : raw.toString('utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t') as [string, string]);
};

/** A table holds exactly the tokenizer's ids of every row, read from memory and by offset alike. */
function expectRoundTrip(dir: string, source: string, tok: PairTokenizer): void {
  const inMemory = TokenTable.open(dir, 'passage');
  const byOffset = TokenTable.open(dir, 'passage', 0);
  expect(inMemory.inMemory).toBe(true);
  expect(byOffset.inMemory).toBe(false);
  const all = rows(source);
  expect(inMemory.size).toBe(all.length);
  for (const [id, text] of all) {
    const want = tok.ids(text);
    expect(inMemory.tokens(id)).toEqual(want);
    expect(byOffset.tokens(id)).toEqual(want);
  }
  byOffset.close();
}

describe('token tables', () => {
  it('hold the tokenizer ids of every row: string ids, gzipped integer ids, workers or not', async () => {
    const brownFile = path.join(brown.dir, 'collection.tsv');
    const m = await buildTokenTable(brownFile, path.join(tmp, 't-brown', 'collection'), 'collection', {
      tokenizer,
      df: true,
    });
    expect(m).toMatchObject({ rows: brown.passages.size, dtype: 'uint16', ids: 'strings', df: true });
    expectRoundTrip(path.join(tmp, 't-brown', 'collection'), brownFile, tokenizer);

    const gz = path.join(msmarco, 'collection.tsv.gz');
    for (const workers of [0, 2]) {
      const dir = path.join(tmp, `t-gz-${workers}`, 'collection');
      const mg = await buildTokenTable(gz, dir, 'collection', { tokenizer, df: true, workers });
      expect(mg).toMatchObject({ ids: 'sorted', dtype: 'uint16' });
      expectRoundTrip(dir, gz, tokenizer);
    }
    // Threads or not, the same bytes (document frequencies included).
    for (const f of ['tokens.bin', 'offsets.bin', 'ids.bin', 'df.bin'])
      expect(fs.readFileSync(path.join(tmp, 't-gz-2', 'collection', f))).toEqual(
        fs.readFileSync(path.join(tmp, 't-gz-0', 'collection', f)),
      );
    // df: each id once per passage.
    const df = TokenTable.open(path.join(tmp, 't-gz-0', 'collection')).df()!;
    const want = new Int32Array(tokenizer.vocabSize);
    for (const [, text] of rows(gz)) for (const id of new Set(tokenizer.ids(text))) want[id]++;
    expect(df).toEqual(want);
  });

  it('index ids directly when they are 0..N-1 (in order or not), and name an id it lacks', async () => {
    const texts = ['the cat sat on the mat', 'a dog barked', 'Ünïcödé accents and CJK 中文', 'x'];
    const inOrder = writeLines(
      path.join(tmp, 'dense', 'in-order.tsv'),
      texts.map((t, i) => `${i}\t${t}`),
    );
    const shuffled = writeLines(
      path.join(tmp, 'dense', 'shuffled.tsv'),
      [2, 0, 3, 1].map((i) => `${i}\t${texts[i]}`),
    );
    const a = await buildTokenTable(inOrder, path.join(tmp, 'dense', 'a'), 'collection', { tokenizer });
    const b = await buildTokenTable(shuffled, path.join(tmp, 'dense', 'b'), 'collection', { tokenizer });
    expect([a.ids, b.ids]).toEqual(['identity', 'dense']);
    expect(fs.existsSync(path.join(tmp, 'dense', 'a', 'ids.bin'))).toBe(false);
    expectRoundTrip(path.join(tmp, 'dense', 'a'), inOrder, tokenizer);
    expectRoundTrip(path.join(tmp, 'dense', 'b'), shuffled, tokenizer);
    const t = TokenTable.open(path.join(tmp, 'dense', 'b'), 'passage');
    for (const missing of ['4', '-1', '01', '1.0', 'abc', '4294967296'])
      expect(() => t.tokens(missing)).toThrow(
        new RegExp(`^passage ${missing.replace('.', '\\.')} is not in shuffled.tsv`),
      );
    expect(() => t.tokens('7')).toThrow(NotInStoreError);
    expect(t.has('3')).toBe(true);
    expect(t.has('4')).toBe(false);
  });

  it('store ids as uint32 when the vocabulary has more than 65536 ids', async () => {
    // bert-base-uncased's vocabulary and 40000 more words, the last of them used in the texts.
    const vocab = bertBaseUncasedVocab();
    for (let i = 0; i < 40000; i++) vocab.set(`zzfill${i}`, vocab.size);
    const big = new BertTokenizer(vocab);
    expect(big.vocabSize).toBeGreaterThan(65536);
    const file = writeLines(path.join(tmp, 'u32', 'c.tsv'), ['5\tzzfill39999 and zzfill0', '9\tthe zzfill65000 end']);
    const m = await buildTokenTable(file, path.join(tmp, 'u32', 't'), 'collection', { tokenizer: big, df: true });
    expect(m.dtype).toBe('uint32');
    expect(big.ids('zzfill39999')).toEqual([vocab.get('zzfill39999')]);
    expect(vocab.get('zzfill39999')).toBeGreaterThan(65535);
    expectRoundTrip(path.join(tmp, 'u32', 't'), file, big);
  });

  it('name the file and line of a malformed or repeated row, and leave no table behind', async () => {
    const target = path.join(tmp, 'bad', 't');
    const cases: Array<[string[], RegExp, number]> = [
      [['1\tok', '2\tok', '1\tagain'], /:3: duplicate id '1' \(first on line 1\)/, 3],
      [['a\tok', 'b\tok', 'a\tagain'], /:3: duplicate id 'a' \(first on line 1\)/, 3],
      // Ids above the early check's range are caught when the table is sorted.
      [['300000000\tok', '5\tok', '300000000\tagain'], /:3: duplicate id '300000000' \(first on line 1\)/, 3],
      [['1\tok', '2\tno\ttabs'], /:2: expected 2 tab-separated fields \(id, text\), got 3 fields/, 2],
      [['1\tok', '2\t  '], /:2: id 2 has no text/, 2],
    ];
    for (const [lines, message, line] of cases) {
      const file = writeLines(path.join(tmp, 'bad', 'c.tsv'), lines);
      const err = await buildTokenTable(file, target, 'collection', { tokenizer }).catch((e) => e);
      expect(err).toBeInstanceOf(DataFormatError);
      expect(err.file).toBe(file);
      expect(err.line).toBe(line);
      expect(err.message).toMatch(message);
      expect(fs.readdirSync(path.join(tmp, 'bad')).sort()).toEqual(['c.tsv']);
    }
  });
});

describe('a store', () => {
  const src = path.join(tmp, 'stale', 'collection.tsv');
  const dir = path.join(tmp, 'stale', 'store');

  it('rebuilds a table whose source changed (content, size or only mtime), or refuses naming the file', async () => {
    writeLines(src, ['0\tfirst passage', '1\tsecond passage']);
    const notices: string[] = [];
    const open = (extra: object = {}) =>
      openPassageStore({ collection: src }, { tokenizer, dir, notice: (m) => notices.push(m), ...extra });
    let store = await open();
    expect(notices.splice(0)).toEqual([expect.stringMatching(/building the collection table from .*collection.tsv/)]);
    store = await open();
    expect(notices).toEqual([]); // fresh: opened as it is
    const before = store.fingerprint;

    // The same size, another text: caught by the hash of the first and last MB.
    writeLines(src, ['0\tfirst passage', '1\tsecund passage']);
    await expect(open({ stale: 'error' })).rejects.toThrow(
      new RegExp(
        `the collection table is stale: ${src.replace(/[.]/g, '\\.')} changed since it was built: its content changed`,
      ),
    );
    store = await open();
    expect(notices.splice(0)).toEqual([expect.stringMatching(/rebuilding the collection table .*its content changed/)]);
    expect(store.passages.tokens('1')).toEqual(tokenizer.ids('secund passage'));
    expect(store.fingerprint).not.toBe(before);

    // Touched only: the mtime says it may have changed anywhere.
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(src, t, t);
    await expect(open({ stale: 'error' })).rejects.toThrow(
      /collection.tsv changed since it was built: it was modified/,
    );
    fs.appendFileSync(src, '2\ta new row\n');
    await expect(open({ stale: 'error' })).rejects.toThrow(/its size changed from \d+ to \d+ bytes/);
    store = await open();
    expect(store.passages.size).toBe(3);

    // Another tokenizer: another store dir by default; the same explicit dir is rebuilt.
    const roberta = robertaTokenizer();
    expect((await openPassageStore({ collection: src }, { tokenizer: roberta, ...quiet })).dir).not.toBe(
      (await openPassageStore({ collection: src }, { tokenizer, ...quiet })).dir,
    );
    await expect(open({ tokenizer: roberta, stale: 'error' })).rejects.toThrow(/built with another tokenizer/);
  });

  it('concurrent opens build once: in one process they take turns, across processes the lock waits', async () => {
    const collection = path.join(brown.dir, 'collection.tsv');
    const notices: string[] = [];
    const dir = path.join(tmp, 'concurrent', 'same-process');
    const [a, b] = await Promise.all(
      [0, 1].map(() => openPassageStore({ collection }, { tokenizer, dir, notice: (m) => notices.push(m) })),
    );
    expect(notices.filter((m) => m.includes('building'))).toHaveLength(1);
    expect(a.passages.tokens([...brown.passages.keys()][3])).toEqual(b.passages.tokens([...brown.passages.keys()][3]));

    const shared = path.join(tmp, 'concurrent', 'processes');
    const start = () =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const p = spawn(
          process.execPath,
          [
            '-r',
            path.join(ROOT, 'tests/helpers/ts_register.js'),
            path.join(ROOT, 'tests/helpers/store_child.ts'),
            collection,
            shared,
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let stdout = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.on('close', (code) => resolve({ code, stdout }));
      });
    const both = await Promise.all([start(), start()]);
    for (const r of both) expect(r).toEqual({ code: 0, stdout: `${brown.passages.size}\n` });
    expect(fs.readFileSync(path.join(shared, 'collection', 'tokens.bin'))).toEqual(
      fs.readFileSync(path.join(dir, 'collection', 'tokens.bin')),
    );
    expect(fs.readdirSync(shared)).toEqual(['collection']);
  });

  it('on a read-only dataset mount, says where else the store can go; on a full disk, leaves nothing', async () => {
    const mnt = path.join(tmp, 'mnt');
    const notMounted = mountTmpfs(mnt, '1m');
    if (notMounted) {
      console.warn(`skipped: ${notMounted}`);
      return;
    }
    try {
      const collection = path.join(mnt, 'collection.tsv');
      fs.copyFileSync(path.join(brown.dir, 'collection.tsv'), collection);
      expect(spawnSync('mount', ['-o', 'remount,ro', mnt]).status).toBe(0);
      await expect(openPassageStore({ collection }, { tokenizer, ...quiet })).rejects.toThrow(
        new RegExp(
          `^cannot write the passage store in ${mnt}/\\.fused-distill-store/[0-9a-f]{16} \\(.*(EROFS|ENOENT).*\\); give it another dir \\(data.store`,
        ),
      );
      expect(spawnSync('mount', ['-o', 'remount,rw', mnt]).status).toBe(0);
      // Full: a collection of ~1 MB of ids does not fit beside itself.
      fs.rmSync(collection);
      const big = writeLines(
        path.join(tmp, 'big.tsv'),
        Array.from({ length: 6000 }, (_, i) => `${i}\t${'the cat sat on the mat and looked around '.repeat(12)}`),
      );
      const err = await openPassageStore(
        { collection: big },
        { tokenizer, dir: path.join(mnt, 'store'), ...quiet },
      ).catch((e) => e);
      expect(err).toMatchObject({
        code: 'ENOSPC',
        message: expect.stringContaining(`cannot write ${path.join(mnt, 'store', 'collection')}: ENOSPC`),
      });
      expect(fs.readdirSync(mnt)).toEqual([]);
    } finally {
      unmount(mnt);
    }
  });

  it('a build killed at any write leaves no table that reads as complete; the next open builds it', () => {
    const collection = path.join(brown.dir, 'collection.tsv');
    const child = (store: string, crashAt: string) =>
      spawnSync(
        process.execPath,
        [
          '-r',
          path.join(ROOT, 'tests/helpers/ts_register.js'),
          path.join(ROOT, 'tests/helpers/store_child.ts'),
          collection,
          store,
        ],
        { env: { ...process.env, FUSED_DISTILL_CRASH_AT: crashAt }, encoding: 'utf8' },
      );
    const counted = child(path.join(tmp, 'kill', 'count'), 'count');
    expect(counted.status).toBe(0);
    const points = Number(/write points: (\d+)/.exec(counted.stderr)![1]);
    expect(points).toBeGreaterThanOrEqual(3);
    const want = fs.readFileSync(path.join(tmp, 'kill', 'count', 'collection', 'tokens.bin'));
    for (let n = 1; n <= points; n++) {
      const store = path.join(tmp, 'kill', `at-${n}`);
      const killed = child(store, String(n));
      expect(killed.signal).toBe('SIGKILL');
      const table = path.join(store, 'collection');
      // Either complete (killed after the rename) or absent: never a partial table with a manifest.
      if (fs.existsSync(path.join(table, 'manifest.json')))
        expect(fs.readFileSync(path.join(table, 'tokens.bin'))).toEqual(want);
      else expect(fs.existsSync(table)).toBe(false);
      const again = child(store, '');
      expect(again.status).toBe(0);
      expect(Number(again.stdout.trim())).toBe(brown.passages.size);
      expect(fs.readFileSync(path.join(table, 'tokens.bin'))).toEqual(want);
      // No temporary table dirs left behind; a lock only where the kill left a complete table (no
      // build was needed since, and the next builder takes the dead process's lock over).
      const complete = killed.status == null && fs.existsSync(table) && n === points;
      expect(fs.readdirSync(store).filter((f) => f !== 'collection' && !(complete && f === '.lock'))).toEqual([]);
    }
  });
});

function robertaTokenizer(): HfTokenizer {
  const vocab = bertBaseUncasedVocab();
  for (const t of ['<s>', '</s>', '<pad>']) vocab.set(t, vocab.size);
  return new HfTokenizer(wordPieceTokenizerJson(vocab), ROBERTA_PAIR_TOKENS, 'roberta-style');
}

/** Every pair's model inputs, as plain arrays. */
function encodeAll(encoder: PairEncoder, pairs: Array<[string, string]>) {
  const { inputs, tokenMask } = encoder.encode(pairs, encoder.maxLength);
  const out = {
    ids: inputs.inputIds.arraySync(),
    types: inputs.tokenTypeIds.arraySync(),
    attention: inputs.attentionMask.arraySync(),
    match: inputs.termMatchIds!.arraySync(),
    mask: tokenMask.arraySync(),
  };
  tf.dispose([...Object.values(inputs), tokenMask]);
  return out;
}

const allPairs = (coll: RankingCollection): Array<[string, string]> =>
  (['train', 'dev', 'test'] as const).flatMap((s) =>
    [...coll.candidates[s]].flatMap(([q, pids]) => pids.map((p): [string, string] => [q, p])),
  );

describe('pairs from the store', () => {
  for (const [name, make] of [
    ['BERT', () => tokenizer],
    ['RoBERTa', robertaTokenizer],
  ] as const)
    it(`are the text path's inputs (${name} template), on the bundled collection and on MS MARCO files`, async () => {
      const tok = make();
      // The bundled collection's layout: its collection and queries files.
      const store: PassageStore = await openPassageStore(
        {
          collection: path.join(brown.dir, 'collection.tsv'),
          queries: Object.fromEntries(
            (['train', 'dev', 'test'] as const).map((s) => [s, path.join(brown.dir, `queries.${s}.tsv`)]),
          ),
        },
        { tokenizer: tok, ...quiet },
      );
      // Short enough that long pairs are truncated (longest first).
      for (const maxLength of [24, 128]) {
        const text = new PairEncoder(tok, brown, maxLength);
        const stored = new PairEncoder(tok, { ...brown, store }, maxLength);
        expect(stored.matchLevels()).toEqual(text.matchLevels());
        const pairs = allPairs(brown);
        expect(encodeAll(stored, pairs)).toEqual(encodeAll(text, pairs));
      }

      const plain = await loadMsMarco(msmarco);
      const viaStore = await loadMsMarco(msmarco, { store: { tokenizer: tok, ...quiet } });
      expect(viaStore.passages.size).toBe(0); // no texts kept
      expect(viaStore.store!.passages.size).toBe(plain.passages.size);
      expect(viaStore.candidates).toEqual(plain.candidates);
      expect(viaStore.qrels).toEqual(plain.qrels);
      const pairs = allPairs(plain);
      expect(encodeAll(new PairEncoder(tok, viaStore, 48), pairs)).toEqual(
        encodeAll(new PairEncoder(tok, plain, 48), pairs),
      );
      expect(() => new PairEncoder(tok, viaStore, 48).encode([[pairs[0][0], '99999']])).toThrow(
        /passage 99999 is not in collection.tsv.gz/,
      );
    });

  it('the fingerprint (teacher-score cache key) changes with any source, without hashing files whole', async () => {
    const copy = path.join(tmp, 'msmarco-fp');
    fs.cpSync(msmarco, copy, { recursive: true });
    const fp = async () => (await loadMsMarco(copy, { store: { tokenizer, ...quiet } })).fingerprint;
    const first = await fp();
    expect(await fp()).toBe(first);
    fs.appendFileSync(path.join(copy, 'qrels.dev.small.tsv'), '');
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(copy, 'qrels.dev.small.tsv'), t, t);
    const second = await fp();
    expect(second).not.toBe(first);
    fs.utimesSync(path.join(copy, 'queries.train.tsv'), t, t);
    expect(await fp()).not.toBe(second);
  });

  it('a tiny distillation from data.msmarco reads its passages from the store it builds', async () => {
    const storeDir = path.join(tmp, 'run-store');
    const events: Array<{ type: string; label?: string }> = [];
    const result = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'run'),
        teacher: { scores: `${msmarco}.scores.tsv` },
        student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
        data: { msmarco, store: storeDir, negatives: 2, maxLength: 48, trainQueries: 4, evalQueries: 2 },
        train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
        loss: { marginMSE: 1, kl: 1 },
      }),
      { onProgress: (e) => events.push(e as { type: string; label?: string }) },
    );
    expect(result.steps).toBe(3);
    expect(result.log.steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    // The tables: the store's, the triples', and the teacher scores file's (score_table.ts).
    const tables = fs.readdirSync(storeDir).sort();
    expect(tables.filter((t) => !t.startsWith('scores-'))).toEqual([
      'collection',
      'queries.dev',
      'queries.train',
      'triples.train',
    ]);
    expect(tables.filter((t) => /^scores-[0-9a-f]{12}$/.test(t))).toHaveLength(1);
    expect(events.some((e) => e.type === 'task' && e.label === 'index collection.tsv.gz')).toBe(true);
    // The files read row by row show progress too (MS MARCO's 500k training queries take seconds).
    for (const file of ['queries.train.tsv', 'qrels.train.tsv', 'top1000.dev'])
      expect(events).toContainEqual(expect.objectContaining({ type: 'task', label: `read ${file}`, unit: 'MB' }));
    expect(events.some((e) => e.type === 'notice')).toBe(true);
    expect(() => parseStudentConfig({ output: 'o', teacher: { scores: 'f' }, data: { store: storeDir } })).toThrow(
      /data.store: a passage store is for data.msmarco/,
    );
  });
});

describe('fused-distill data index', () => {
  it('builds the store of an MS MARCO dir, keeps a fresh one, and with --check names a changed source', async () => {
    const copy = path.join(tmp, 'msmarco-cli');
    fs.cpSync(msmarco, copy, { recursive: true });
    const store = path.join(tmp, 'cli-store');
    const built = await cli(['data', 'index', copy, '--store', store, '--workers', '0']);
    expect(built.code).toBe(0);
    expect(built.stdout).toMatch(new RegExp(`passage store ready in ${store}.*collection ${brown.passages.size} rows`));
    const manifest = JSON.parse(fs.readFileSync(path.join(store, 'collection', 'manifest.json'), 'utf8'));
    expect((await cli(['data', 'index', copy, '--store', store, '--check'])).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(store, 'collection', 'manifest.json'), 'utf8'))).toEqual(manifest);
    fs.appendFileSync(path.join(copy, 'queries.train.tsv'), '999999\ta new query\n');
    const refused = await cli(['data', 'index', copy, '--store', store, '--check']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /the queries.train table is stale: .*queries.train.tsv changed since it was built: its size changed/,
    );
    const rebuilt = await cli(['data', 'index', copy, '--store', store]);
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.stdout).toMatch(new RegExp(`queries.train ${brown.queries.train.size + 1} rows`));
  });
});
