// A seeded kill -9 soak: teacher train, teacher score and distill (each with its report) on the tiny
// collection, killed (SIGKILL, no cleanup) at seeded write points (FUSED_DISTILL_CRASH_AT: every
// chunk written, flush and rename counts), then rerun (--resume for the runs). Each interrupted
// pipeline, run in the same directory as the uninterrupted one, must end with the same files bit
// for bit (the reports, which hold wall times, need only be complete), with no temporaries or locks left.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { rng } from '../../src/data/random';
import {
  buildTinyCollection,
  cli,
  leftovers,
  listTree,
  studentConfig,
  teacherConfig,
  tempDir,
  writeJson,
  type Result,
} from './helpers';

const SEED = 20261206;
const TRIALS = 6;
const work = tempDir('fd-soak-');
const coll = path.join(work, 'coll');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

type Stage = 'teacher train' | 'teacher score' | 'distill';
const STAGES: Stage[] = ['teacher train', 'teacher score', 'distill'];

/** The pipeline's configs in root: teacher/, cache/, student/. */
function configs(root: string): Record<Stage, string[]> {
  const teacher = writeJson(
    path.join(root, 'teacher.json'),
    teacherConfig(coll, path.join(root, 'teacher'), { steps: 6, checkpointEvery: 2, evalEvery: 3 }),
  );
  const student = writeJson(
    path.join(root, 'student.json'),
    studentConfig(coll, path.join(root, 'student'), path.join(root, 'teacher', 'model'), {
      cacheDir: path.join(root, 'cache'),
      train: { steps: 4, checkpointEvery: 2 },
    }),
  );
  return {
    'teacher train': ['teacher', 'train', '--resume', teacher],
    'teacher score': ['teacher', 'score', student],
    distill: ['distill', '--resume', student],
  };
}

function expectOk(r: Result, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
}

/** Every file's content (reports: their presence and that they parse), by path relative to root. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of listTree(root)) {
    const file = path.join(root, rel);
    if (fs.statSync(file).isDirectory() || /^(teacher|student)\.json$/.test(rel)) continue;
    if (/report\.(json|md|html)$/.test(rel)) {
      const text = fs.readFileSync(file, 'utf8');
      if (rel.endsWith('.json')) JSON.parse(text);
      out[rel] = rel.endsWith('.html') ? String(text.trimEnd().endsWith('</html>')) : 'complete';
    } else if (rel.endsWith('.bin')) out[rel] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    else out[rel] = fs.readFileSync(file, 'utf8');
  }
  return out;
}

const points: Record<Stage, number> = { 'teacher train': 0, 'teacher score': 0, distill: 0 };
let reference: Record<string, string>;
// Every pipeline runs here: files that record paths (configs, states, checksums of them) then agree.
const root = path.join(work, 'pipeline');

beforeAll(async () => {
  await buildTinyCollection(coll);
  const commands = configs(root);
  for (const stage of STAGES) {
    const r = await cli(commands[stage], { env: { FUSED_DISTILL_CRASH_AT: 'count' } });
    expectOk(r, stage);
    points[stage] = Number(/write points: (\d+)/.exec(r.stderr)![1]);
  }
  reference = snapshot(root);
  fs.rmSync(root, { recursive: true, force: true });
}, 120000);

// Kill points: one in each stage, one in the last report writes of a run, then seeded picks.
function plan(): Array<{ stage: Stage; at: number }> {
  const random = rng(SEED);
  const pick = (n: number) => 1 + Math.floor(random() * n);
  const trials: Array<{ stage: Stage; at: number }> = STAGES.map((stage) => ({ stage, at: pick(points[stage]) }));
  trials.push({ stage: 'distill', at: points.distill - pick(9) + 1 }); // report.json / .md / .html
  while (trials.length < TRIALS) {
    const stage = STAGES[Math.floor(random() * STAGES.length)];
    trials.push({ stage, at: pick(points[stage]) });
  }
  return trials;
}

describe('kill -9 at seeded write points, then resume', () => {
  it('counts the write points of each stage', () => {
    // each stage writes at least one file: a chunk, its flush and its rename
    for (const stage of STAGES) expect(points[stage]).toBeGreaterThanOrEqual(3);
    expect(Object.keys(reference)).toEqual(
      expect.arrayContaining([
        'teacher/model/weights.bin',
        'student/model/weights.bin',
        'student/result.json',
        'teacher/report.html',
      ]),
    );
  });

  it(`${TRIALS} interrupted pipelines end with the files of an uninterrupted one`, async () => {
    const done: string[] = [];
    for (const [i, { stage, at }] of plan().entries()) {
      const commands = configs(root);
      for (const s of STAGES) {
        if (s === stage) {
          const killed = await cli(commands[s], { env: { FUSED_DISTILL_CRASH_AT: String(at) } });
          expect({ trial: i, stage, at, signal: killed.signal }).toEqual({ trial: i, stage, at, signal: 'SIGKILL' });
        }
        expectOk(await cli(commands[s]), `trial ${i}: ${s} after a kill in ${stage} at write point ${at}`);
      }
      expect(leftovers(root)).toEqual([]);
      const got = snapshot(root);
      expect(Object.keys(got).sort()).toEqual(Object.keys(reference).sort());
      const differ = Object.keys(reference).filter((rel) => got[rel] !== reference[rel]);
      if (process.env.SOAK_DEBUG)
        for (const rel of differ)
          console.log(rel, '\n', reference[rel].slice(0, 3000), '\n---\n', got[rel].slice(0, 3000));
      expect({ trial: i, stage, at, differ }).toEqual({ trial: i, stage, at, differ: [] });
      done.push(`${stage}@${at}`);
      fs.rmSync(root, { recursive: true, force: true });
    }
    expect(done).toHaveLength(TRIALS);
  }, 300000);
});
