// `teacher score --out`: the teacher's scores of the pairs a run draws, streamed to a
// `qid pid score` file. Killed (SIGKILL) at every write point (FUSED_DISTILL_CRASH_AT) and run
// again, it ends with the file an uninterrupted run writes, byte for byte; a torn last line is cut
// off, never read as data; another run's manifest is refused naming the field; a distillation reads
// the file back as teacher.scores, and one that draws pairs the file lacks names the pair.
import * as fs from 'fs';
import * as path from 'path';

import {
  buildTinyCollection,
  cli,
  leftovers,
  studentConfig,
  teacherConfig,
  tempDir,
  writeJson,
  type Result,
} from './helpers';

const work = tempDir('fd-stream-');
const coll = path.join(work, 'coll');
const teacherModel = path.join(work, 'teacher', 'model');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function expectOk(r: Result, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
}

// A student run of 10 steps, 2 groups of 1 + 3 a step; scoreBatch 2: chunks of 16 pairs.
const student = (dir: string, train: Record<string, number> = {}) =>
  writeJson(
    path.join(dir, 'student.json'),
    studentConfig(coll, path.join(dir, 'student'), teacherModel, { train: { steps: 10, scoreBatch: 2, ...train } }),
  );

let points = 0;
let reference: { scores: string; manifest: string };

beforeAll(async () => {
  await buildTinyCollection(coll);
  const t = writeJson(path.join(work, 'teacher.json'), teacherConfig(coll, path.join(work, 'teacher'), { steps: 2 }));
  expectOk(await cli(['teacher', 'train', t]), 'teacher train');
  const dir = path.join(work, 'reference');
  const r = await cli(['teacher', 'score', student(dir), '--out', path.join(dir, 'scores.tsv')], {
    env: { FUSED_DISTILL_CRASH_AT: 'count' },
  });
  expectOk(r, 'teacher score --out');
  points = Number(/write points: (\d+)/.exec(r.stderr)![1]);
  reference = {
    scores: fs.readFileSync(path.join(dir, 'scores.tsv'), 'utf8'),
    manifest: fs.readFileSync(path.join(dir, 'scores.tsv.manifest.json'), 'utf8'),
  };
}, 180000);

describe('teacher score --out', () => {
  it("writes the run's drawn pairs, each once, as qid<TAB>pid<TAB>score, with a manifest", () => {
    const lines = reference.scores.trimEnd().split('\n');
    const manifest = JSON.parse(reference.manifest);
    expect(lines.length).toBe(manifest.pairs);
    expect(manifest).toMatchObject({ seed: 42, batch: 2, negatives: 3, trainQueries: 8, steps: 10, chunk: 16 });
    expect(manifest.teacherSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(lines.length).toBeGreaterThan(2 * manifest.chunk); // several chunks
    const keys = lines.map((l) => l.split('\t').slice(0, 2).join('\t'));
    expect(new Set(keys).size).toBe(keys.length);
    for (const l of lines) expect(Number.isFinite(Number(l.split('\t')[2]))).toBe(true);
    // manifest chunk, its flush and rename; one write per chunk; the final rename's two
    expect(points).toBe(3 + Math.ceil(lines.length / manifest.chunk) + 2);
  });

  it('killed at every write point and run again, ends with the same file, byte for byte', async () => {
    for (let at = 1; at <= points; at++) {
      const dir = path.join(work, `kill-${at}`);
      const args = ['teacher', 'score', student(dir), '--out', path.join(dir, 'scores.tsv')];
      const killed = await cli(args, { env: { FUSED_DISTILL_CRASH_AT: String(at) } });
      expect({ at, signal: killed.signal }).toEqual({ at, signal: 'SIGKILL' });
      expectOk(await cli(args), `rerun after a kill at write point ${at}`);
      expect({ at, same: fs.readFileSync(path.join(dir, 'scores.tsv'), 'utf8') === reference.scores }).toEqual({
        at,
        same: true,
      });
      expect(fs.readFileSync(path.join(dir, 'scores.tsv.manifest.json'), 'utf8')).toBe(reference.manifest);
      expect(fs.existsSync(path.join(dir, 'scores.tsv.partial'))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
      // a finished file is left as it is
      const again = await cli(args);
      expectOk(again, 'third run');
      expect(again.stdout).toMatch(/already in/);
    }
  }, 300000);

  it('a torn last line (or chunk) is cut off and scored again', async () => {
    const dir = path.join(work, 'torn');
    const out = path.join(dir, 'scores.tsv');
    const config = student(dir);
    fs.writeFileSync(`${out}.manifest.json`, reference.manifest);
    const lines = reference.scores.split('\n');
    fs.writeFileSync(`${out}.partial`, `${lines.slice(0, 20).join('\n')}\n${lines[20].slice(0, 7)}`);
    const r = await cli(['--progress', 'lines', 'teacher', 'score', config, '--out', out]);
    expectOk(r, 'resume from a torn file');
    expect(r.stdout + r.stderr).toMatch(/cut back to 16 scored pairs/);
    expect(r.stdout).toMatch(/\(16 from before\) written to/);
    expect(fs.readFileSync(out, 'utf8')).toBe(reference.scores);
  });

  it("refuses another run's file, naming the field that differs, and a partial line of another pair", async () => {
    const dir = path.join(work, 'other');
    const out = path.join(dir, 'scores.tsv');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(`${out}.manifest.json`, reference.manifest);
    let r = await cli(['teacher', 'score', student(dir, { seed: 9 }), '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/scores.tsv.manifest.json: the scores beside it were written for seed 42, this run has 9/);
    fs.writeFileSync(`${out}.partial`, 'q1\tnot-this\t0.5\n');
    r = await cli(['teacher', 'score', student(dir), '--out', out]);
    expect(r.stderr).toMatch(/scores.tsv.partial:1: expected query \S+, passage \S+ and a finite score/);
    fs.rmSync(`${out}.partial`);
    fs.rmSync(`${out}.manifest.json`);
    fs.writeFileSync(out, 'q\tp\t1\n');
    r = await cli(['teacher', 'score', student(dir), '--out', out]);
    expect(r.stderr).toMatch(/scores.tsv: exists, without scores.tsv.manifest.json/);
  });

  it('a distillation reads the file as teacher.scores; one drawing pairs it lacks names the pair', async () => {
    const dir = path.join(work, 'reference');
    const scores = path.join(dir, 'scores.tsv');
    const base = JSON.parse(fs.readFileSync(path.join(dir, 'student.json'), 'utf8'));
    const config = (name: string, steps: number) =>
      writeJson(path.join(dir, `${name}.json`), {
        ...base,
        output: path.join(dir, name),
        teacher: { scores },
        student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
        train: { ...base.train, steps },
      });
    expectOk(await cli(['distill', config('from-scores', 10)]), 'distill from the streamed scores');
    expect(fs.existsSync(path.join(dir, 'from-scores', 'result.json'))).toBe(true);
    const r = await cli(['distill', config('longer', 40)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/scores.tsv: has no score for query \S+, passage \S+, a pair the student trains on/);
  });

  it('a missing teacher.scores or data.msmarco is a usage error naming the field (exit 2)', async () => {
    const dir = path.join(work, 'missing');
    const base = JSON.parse(fs.readFileSync(student(dir), 'utf8'));
    const noScores = writeJson(path.join(dir, 'a.json'), {
      ...base,
      teacher: { scores: 'nowhere.tsv' },
      student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
    });
    let r = await cli(['distill', noScores]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `fused-distill: error: ${noScores}: teacher.scores: file not found: ${path.join(dir, 'nowhere.tsv')}\n`,
    );
    const { collection: _c, ...data } = base.data;
    const noMsmarco = writeJson(path.join(dir, 'b.json'), { ...base, data: { ...data, msmarco: '../no-msmarco' } });
    r = await cli(['teacher', 'score', noMsmarco]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/b\.json: data\.msmarco: file not found: .*no-msmarco/);
    const noCollection = writeJson(path.join(dir, 'c.json'), { ...base, data: { ...data, collection: 'no-coll' } });
    r = await cli(['distill', noCollection]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/c\.json: data\.collection: no collection at .*no-coll/);
  });
});
