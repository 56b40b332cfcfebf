// Scoring and evaluation sharded by query across ranks (memoryWorlds: every rank's part runs as a
// concurrent async function in this process): evaluation, the teacher-score cache and the streamed
// `teacher score --out` file must equal one process's bit for bit (float32 scores compared with
// Object.is, files byte for byte), on every rank, with rank 0 alone writing; 3 ranks over 2 queries
// leave a rank with nothing to score that still joins every collective. Backend: as the training
// tests' (FUSED_DISTILL_TEST_BACKEND: wasm by default, cpu or native).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { registerNativeBackend } from '../src/backend/native/register';
import * as atomic from '../src/data/atomic';
import {
  PairEncoder,
  evaluateModel,
  evaluateModelSharded,
  parseStudentConfig,
  rerank,
  rerankSharded,
  scorePairs,
  scorePairsSharded,
  shardByWeight,
  streamTeacherScores,
  teacherScores,
  trainingPairs,
  type RankingCollection,
} from '../src/distill';
import { memoryWorlds, singleWorld, type World } from '../src/distributed/world';
import type { Run } from '../src/eval/metrics';
import { evalQueries, evaluateCrossEncoder } from '../src/eval/rerank';
import { BertTokenizer } from '../src/data';
import { CrossEncoder, saveCrossEncoder, type CrossEncoderConfig } from '../src/models';
import { tinyCollection } from './helpers/tiny_collection';
import { tinyEncoderConfig } from './helpers/tiny_encoder';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-sharded-'));
const collDir = path.join(tmp, 'coll');
const teacherDir = path.join(tmp, 'teacher');
let coll: RankingCollection;
let tokenizer: BertTokenizer;
let model: CrossEncoder;
let encoder: PairEncoder;

const config: CrossEncoderConfig = tinyEncoderConfig();

beforeAll(async () => {
  registerNativeBackend();
  ({ coll, tokenizer } = await tinyCollection(collDir));
  model = new CrossEncoder(config, 5);
  await saveCrossEncoder(model, teacherDir);
  encoder = new PairEncoder(tokenizer, coll, 48);
});

afterAll(() => {
  model.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => jest.restoreAllMocks());

/** Every rank's part, run concurrently; the results in rank order. */
const onRanks = <T>(n: number, part: (world: World) => Promise<T>): Promise<T[]> =>
  Promise.all(memoryWorlds(n).map(part));

// The same queries, passages and float32 scores, in the same order, bit for bit.
function expectSameRun(got: Run, want: Run): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [qid, scores] of want) {
    const g = got.get(qid)!;
    expect([...g.keys()]).toEqual([...scores.keys()]);
    for (const [pid, s] of scores) expect(Object.is(g.get(pid), s)).toBe(true);
  }
}

describe('shares', () => {
  it('shardByWeight: contiguous, in rank order, covering every group, balanced to one group', () => {
    for (const weights of [[], [5], [5, 5], [1, 9, 1, 1], [3, 3, 3, 3, 3, 3, 3], [0, 0, 4]])
      for (const size of [1, 2, 3, 5]) {
        const shares = Array.from({ length: size }, (_, rank) => shardByWeight(weights, { rank, size }));
        expect(shares[0][0]).toBe(0);
        expect(shares[size - 1][1]).toBe(weights.length);
        for (let r = 1; r < size; r++) expect(shares[r][0]).toBe(shares[r - 1][1]);
        const total = weights.reduce((a, b) => a + b, 0);
        const biggest = Math.max(0, ...weights);
        for (const [a, b] of shares) {
          const w = weights.slice(a, b).reduce((x, y) => x + y, 0);
          expect(w).toBeLessThanOrEqual(total / size + biggest);
        }
      }
  });

  it('scorePairsSharded: pairs of a query spread through the list come back in their places', async () => {
    const pairs = trainingPairs(coll, 4);
    // interleave the queries so a query's pairs are not adjacent
    const mixed = pairs.map((_, i) => pairs[(i * 5) % pairs.length]); // 5: prime to the count (checked below)
    expect(new Set(mixed.map(([q, p]) => `${q}\t${p}`)).size).toBe(pairs.length);
    const want = scorePairs(model, encoder, mixed, 3);
    for (const n of [2, 3]) {
      const got = await onRanks(n, (world) => scorePairsSharded(model, encoder, mixed, 3, { world }));
      for (const g of got) expect(Buffer.from(g.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    }
  });
});

describe('evaluation', () => {
  const split = 'dev' as const;

  it.each([2, 3])('evaluateModel on %i ranks: the metrics and the Run of one process', async (n) => {
    for (const queries of [5, 2, 1]) {
      const options = { queries, scoreBatch: 3 };
      const run = rerank(model, encoder, coll, split, options);
      expect(run.size).toBe(queries);
      const metrics = evaluateModel(model, encoder, coll, split, options);
      const runs = await onRanks(n, (world) => rerankSharded(model, encoder, coll, split, { ...options, world }));
      for (const r of runs) expectSameRun(r, run);
      const all = await onRanks(n, (world) => evaluateModelSharded(model, encoder, coll, split, { ...options, world }));
      for (const m of all) expect(m).toEqual(metrics);
    }
  });

  it.each([2, 3])('evaluateCrossEncoder on %i ranks: the same evaluation on every rank', async (n) => {
    for (const queries of [5, 2]) {
      const target = { split, queries, candidates: 6 };
      const info = { name: 'm', kind: 'model' as const };
      const one = await evaluateCrossEncoder(model, encoder, coll, target, info, undefined, { world: singleWorld });
      const progress: Array<Array<[number, number]>> = Array.from({ length: n }, () => []);
      const all = await onRanks(n, (world) =>
        evaluateCrossEncoder(model, encoder, coll, target, info, (e) => progress[world.rank].push([e.done, e.total]), {
          world,
        }),
      );
      for (const e of all) {
        expectSameRun(e.run, one.run);
        expect(e.mean).toEqual(one.mean);
        expect([...e.perQuery]).toEqual([...one.perQuery]);
        expect(e.msPerQuery).toBeGreaterThan(0);
        expect(e.msPerQuery).toBe(all[0].msPerQuery); // one timing, gathered
      }
      // each rank counts its own queries; together every query once
      expect(progress.reduce((a, p) => a + (p.at(-1)?.[1] ?? 0), 0)).toBe(evalQueries(coll, target).length);
    }
  });
});

describe('teacher score cache', () => {
  it.each([2, 3])(
    'on %i ranks: written once by rank 0, byte-identical to one process, the same table everywhere',
    async (n) => {
      const pairs = trainingPairs(coll, 4);
      const oneDir = path.join(tmp, `cache-one-${n}`);
      const one = await teacherScores(model, teacherDir, coll, encoder, pairs, {
        scoreBatch: 3,
        cacheDir: oneDir,
        world: singleWorld,
      });
      expect(one.computed).toBe(true);

      const dir = path.join(tmp, `cache-${n}`);
      const writes = jest.spyOn(atomic, 'writeAtomic');
      const notices: Array<[number, string]> = [];
      const options = (world: World) => ({
        scoreBatch: 3,
        cacheDir: dir,
        world,
        onNotice: (m: string) => notices.push([world.rank, m]),
      });
      const all = await onRanks(n, (world) => teacherScores(model, teacherDir, coll, encoder, pairs, options(world)));
      expect(writes).toHaveBeenCalledTimes(1);
      for (const r of all) {
        expect(r.computed).toBe(true);
        expect(path.basename(r.file)).toBe(path.basename(one.file));
        expect([...r.scores]).toEqual([...one.scores]);
        for (const [k, v] of one.scores) expect(Object.is(r.scores.get(k), v)).toBe(true);
      }
      expect(fs.readFileSync(all[0].file).equals(fs.readFileSync(one.file))).toBe(true);
      expect(fs.readdirSync(dir)).toEqual([path.basename(one.file)]);

      // read back: rank 0 reads, every rank gets the table, nothing written
      writes.mockClear();
      const again = await onRanks(n, (world) => teacherScores(model, teacherDir, coll, encoder, pairs, options(world)));
      expect(writes).not.toHaveBeenCalled();
      for (const r of again) {
        expect(r.computed).toBe(false);
        expect([...r.scores]).toEqual([...one.scores]);
      }

      // a damaged cache: one notice (rank 0's), recomputed by all, rewritten once, the same bytes
      fs.writeFileSync(all[0].file, fs.readFileSync(all[0].file, 'utf8').split('\n').slice(0, 3).join('\n'));
      const fixed = await onRanks(n, (world) => teacherScores(model, teacherDir, coll, encoder, pairs, options(world)));
      expect(notices).toEqual([[0, expect.stringMatching(/truncated.*recomputing the teacher's scores$/)]]);
      expect(fixed.every((r) => r.computed)).toBe(true);
      expect(writes).toHaveBeenCalledTimes(1);
      expect(fs.readFileSync(all[0].file).equals(fs.readFileSync(one.file))).toBe(true);
    },
  );

  it('3 ranks over 2 queries: the rank with none joins the gather and returns the table', async () => {
    const all = trainingPairs(coll, 4);
    const two = new Set([...new Set(all.map(([q]) => q))].slice(0, 2));
    const pairs = all.filter(([q]) => two.has(q));
    const one = await teacherScores(model, teacherDir, coll, encoder, pairs, {
      scoreBatch: 4,
      cacheDir: path.join(tmp, 'two-one'),
      world: singleWorld,
    });
    const got = await onRanks(3, (world) =>
      teacherScores(model, teacherDir, coll, encoder, pairs, {
        scoreBatch: 4,
        cacheDir: path.join(tmp, 'two-3'),
        world,
      }),
    );
    for (const r of got) expect([...r.scores]).toEqual([...one.scores]);
    expect(fs.readFileSync(got[0].file).equals(fs.readFileSync(one.file))).toBe(true);
  });

  it("an error reading the cache on rank 0 is every rank's error", async () => {
    const pairs = trainingPairs(coll, 2);
    const dir = path.join(tmp, 'cache-unreadable');
    const one = await teacherScores(model, teacherDir, coll, encoder, pairs, { scoreBatch: 4, cacheDir: dir });
    fs.rmSync(one.file);
    fs.mkdirSync(one.file); // a directory where the file should be: reading it fails
    const got = await Promise.allSettled(
      memoryWorlds(2).map((world) =>
        teacherScores(model, teacherDir, coll, encoder, pairs, { scoreBatch: 4, cacheDir: dir, world }),
      ),
    );
    for (const r of got) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason)).toContain(one.file);
    }
  });
});

describe('teacher score --out', () => {
  // 2 train queries (3 ranks over at most 2 queries per chunk), chunk = scoreBatch * 8 = 8 pairs
  const runConfig = (output: string) =>
    parseStudentConfig({
      output,
      teacher: { checkpoint: teacherDir },
      student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
      data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 2 },
      train: { batch: 2, steps: 5, seed: 3, scoreBatch: 1, evalEvery: 0, checkpointEvery: 0 },
    });
  const opened = () => ({ coll, encoder, teacher: model, teacherDir });
  let oneOut: string;

  beforeAll(async () => {
    oneOut = path.join(tmp, 'stream-one', 'scores.tsv');
    fs.mkdirSync(path.dirname(oneOut), { recursive: true });
    const r = await streamTeacherScores(runConfig(tmp), opened(), oneOut, { world: singleWorld });
    expect(r.computed).toBe(true);
    expect(r.pairs).toBeGreaterThan(8); // more than one chunk
  });

  it.each([2, 3])('on %i ranks: the file of one process, byte for byte; every rank returns alike', async (n) => {
    const out = path.join(tmp, `stream-${n}`, 'scores.tsv');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const all = await onRanks(n, (world) => streamTeacherScores(runConfig(tmp), opened(), out, { world }));
    expect(fs.readFileSync(out).equals(fs.readFileSync(oneOut))).toBe(true);
    expect(fs.readFileSync(`${out}.manifest.json`).equals(fs.readFileSync(`${oneOut}.manifest.json`))).toBe(true);
    expect(fs.existsSync(`${out}.partial`)).toBe(false);
    for (const r of all) expect(r).toEqual({ ...all[0], computed: true, resumedAt: 0 });
    // run again: finished, on every rank
    const again = await onRanks(n, (world) => streamTeacherScores(runConfig(tmp), opened(), out, { world }));
    for (const r of again) expect(r.computed).toBe(false);
  });

  it('3 ranks resume where rank 0 finds the partial file ends, torn chunk cut off', async () => {
    const out = path.join(tmp, 'stream-resume', 'scores.tsv');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.copyFileSync(`${oneOut}.manifest.json`, `${out}.manifest.json`);
    const lines = fs.readFileSync(oneOut, 'utf8').split('\n');
    // 12 whole lines and half a line: the chunk of 8 is kept, the rest scored again
    fs.writeFileSync(`${out}.partial`, `${lines.slice(0, 12).join('\n')}\n${lines[12].slice(0, 5)}`);
    const notices: Array<[number, string]> = [];
    const all = await onRanks(3, (world) =>
      streamTeacherScores(runConfig(tmp), opened(), out, {
        world,
        onNotice: (m) => notices.push([world.rank, m]),
      }),
    );
    expect(all.map((r) => r.resumedAt)).toEqual([8, 8, 8]);
    expect(notices.map(([rank]) => rank)).toEqual([0, 0]);
    expect(notices[1][1]).toMatch(/resuming after 8 of \d+ pairs/);
    expect(fs.readFileSync(out).equals(fs.readFileSync(oneOut))).toBe(true);
  });

  it("rank 0's refusal (an --out it did not write) is every rank's error", async () => {
    const out = path.join(tmp, 'stream-foreign', 'scores.tsv');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, 'not ours\n');
    const got = await Promise.allSettled(
      memoryWorlds(2).map((world) => streamTeacherScores(runConfig(tmp), opened(), out, { world })),
    );
    for (const r of got) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/exists, without scores\.tsv\.manifest\.json/);
    }
    expect(fs.readFileSync(out, 'utf8')).toBe('not ours\n');
  });
});
