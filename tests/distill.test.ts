// The training code (src/distill): config validation, seeded batches, AdamW against a float64 hand
// reference, the teacher-score cache, a tiny teacher run whose loss goes down, a student run with
// every objective term on, and kill -9 + resume reaching the same weights bit for bit as an
// uninterrupted run. Models are tiny (hidden 16-32, 1-2 layers) on a 12-document collection.
//
// Backend: wasm by default (about 4x faster than 'cpu' for these models on this 2-core machine);
// FUSED_DISTILL_TEST_BACKEND=cpu runs the same tests on 'cpu'.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { BertTokenizer } from '../src/data';
import {
  AdamW,
  ConfigError,
  GroupSampler,
  PairEncoder,
  distill,
  labelFunction,
  learningRate,
  loadStudentConfig,
  makeBatch,
  disposeBatch,
  parseStudentConfig,
  parseTeacherConfig,
  scorePairs,
  teacherScores,
  trainTeacher,
  trainingPairs,
  type RankingCollection,
  type RunResult,
  type StudentRunInput,
} from '../src/distill';
import * as objective from '../src/losses/objective';
import { CrossEncoder, loadCrossEncoder, saveCrossEncoder, type CrossEncoderConfig } from '../src/models';
import { TEST_BACKEND, tinyCollection } from './helpers/tiny_collection';
import { registerNativeBackend } from '../src/backend/native/register';
import { MATMUL_PRECISION_FLAG } from '../src/backend/precision';
import { tinyEncoderConfig } from './helpers/tiny_encoder';

const BACKEND = TEST_BACKEND;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-distill-'));
const collDir = path.join(tmp, 'coll');
let coll: RankingCollection;
let tokenizer: BertTokenizer;

const teacherSizes = { layers: 2, hidden: 32, heads: 2, intermediate: 64, maxPosition: 64 };
const studentSizes = { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };
const tinyData = { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 };

beforeAll(async () => {
  ({ coll, tokenizer } = await tinyCollection(collDir));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('config', () => {
  it('fills the defaults (teacher BERT-mini on BCE, student BERT-tiny on RankNet + KL, warmup 10%)', () => {
    const t = parseTeacherConfig({ output: 'out' }, 'x', '/base');
    expect(t.output).toBe('/base/out');
    expect(t.model).toMatchObject({ layers: 4, hidden: 256, heads: 4, intermediate: 1024, vocabSize: 30522 });
    expect(t.loss).toMatchObject({ bce: 1, ranknet: 0 });
    expect(t.train).toMatchObject({
      batch: 8,
      microBatch: 2,
      steps: 2000,
      warmup: 200,
      lr: 1e-4,
      clipNorm: 1,
      weightDecay: 0.01,
    });
    expect(t.data).toMatchObject({ negatives: 7, maxLength: 128, labels: 'graded', evalSplit: 'dev' });
    const s = parseStudentConfig({ output: 'o', teacher: { checkpoint: 't' } }, 'x', '/base');
    expect(s.student.model).toMatchObject({ layers: 2, hidden: 128, heads: 2, intermediate: 512 });
    expect(s.loss).toMatchObject({ ranknet: 1, kl: 1, temperature: 1, hiddenMSE: 0, attentionMSE: 0 });
    expect(s.teacher.checkpoint).toBe('/base/t');
  });

  it('names every bad field, and the file', () => {
    const bad = () =>
      parseStudentConfig(
        {
          output: 'o',
          teacher: { checkpoint: 't' },
          train: { lr: -1, batch: 2.5 },
          loss: { ranknet: 0, kl: 0, bogus: 1, temperature: 0 },
          student: { init: 'checkpoint', model: { hidden: 30, heads: 4 } },
        },
        'run.json',
      );
    expect(bad).toThrow(ConfigError);
    let message = '';
    try {
      bad();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^run\.json: invalid config/);
    for (const field of [
      'train.lr',
      'train.batch',
      'loss.bogus: unknown field',
      'loss.temperature',
      'student.path',
      'student.model.heads: hidden must be a multiple of heads',
    ])
      expect(message).toContain(field);
    expect(() =>
      parseStudentConfig({ output: 'o', teacher: { checkpoint: 't' }, loss: { ranknet: 0, kl: 0 } }),
    ).toThrow(/loss: set a weight > 0/);
    expect(() => parseTeacherConfig({ output: 'o', loss: { kl: 1 } })).toThrow(
      /loss\.kl: unknown field \(a teacher trains on hard labels only/,
    );
    expect(() => parseTeacherConfig({ output: 'o', train: { steps: 10, warmup: 11 } })).toThrow(
      /train\.warmup: must not exceed train\.steps/,
    );
    expect(() => parseTeacherConfig({})).toThrow(/output: Required/);
    expect(() => parseTeacherConfig({ output: 'o', train: { precision: 'fp16' } })).toThrow(
      /train\.precision: Invalid enum value\. Expected 'fp32' \| 'bf16' \| 'tf32'/,
    );
  });

  it('reads a JSON file, with paths relative to it', () => {
    const dir = path.join(tmp, 'cfg');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'student.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ output: 'runs/s1', teacher: { checkpoint: '../teacher/model' }, data: { collection: 'coll' } }),
    );
    const c = loadStudentConfig(file);
    expect(c.output).toBe(path.join(dir, 'runs/s1'));
    expect(c.teacher.checkpoint).toBe(path.join(tmp, 'teacher/model'));
    expect(c.data.collection).toBe(path.join(dir, 'coll'));
    fs.writeFileSync(file, '{ "output": ');
    expect(() => loadStudentConfig(file)).toThrow(new RegExp(`${file}: invalid config:\\n  not valid JSON`));
  });
});

describe('batches', () => {
  const options = { negatives: 3, batch: 3, seed: 5 };

  it('groups a positive with BM25 negatives, the same for the same seed', () => {
    const a = new GroupSampler(coll, options);
    const b = new GroupSampler(coll, options);
    const steps = Array.from({ length: 12 }, () => a.next()); // > one epoch (28 queries / 3 a step)
    expect(Array.from({ length: 12 }, () => b.next())).toEqual(steps);
    expect(new GroupSampler(coll, { ...options, seed: 6 }).next()).not.toEqual(steps[0]);
    for (const g of steps.flat()) {
      expect(g.pids).toHaveLength(4);
      expect(new Set(g.pids).size).toBe(4);
      expect(g.grades[0]).toBeGreaterThanOrEqual(1);
      const cands = coll.candidates.train.get(g.qid)!;
      for (let j = 1; j < 4; j++) {
        expect(g.grades[j]).toBe(0);
        expect(cands).toContain(g.pids[j]);
      }
    }
    // every query once per epoch
    const firstEpoch = steps
      .flat()
      .slice(0, a.queries)
      .map((g) => g.qid);
    expect(new Set(firstEpoch).size).toBe(a.queries);
  });

  it('continues identically from a saved state', () => {
    const a = new GroupSampler(coll, options);
    for (let i = 0; i < 5; i++) a.next();
    const state = JSON.parse(JSON.stringify(a.state()));
    const b = new GroupSampler(coll, options);
    b.restore(state);
    for (let i = 0; i < 15; i++) expect(b.next()).toEqual(a.next());
  });

  it("grades term matches by the WordPiece's idf over the passages (levels 1..4), in the encoded inputs", () => {
    const encoder = new PairEncoder(tokenizer, coll, 512); // no truncation: every query token counts
    const levels = encoder.matchLevels();
    const df = new Map<number, number>();
    for (const text of coll.passages.values())
      for (const id of new Set(tokenizer.ids(text))) df.set(id, (df.get(id) ?? 0) + 1);
    const n = coll.passages.size;
    const idf = (d: number) => Math.log(1 + (n - d + 0.5) / (d + 0.5));
    for (const [id, d] of df) expect(levels[id]).toBe(Math.min(4, 1 + Math.floor((4 * idf(d)) / idf(1))));
    const the = tokenizer.ids('the')[0];
    expect(df.get(the)).toBeGreaterThan(n / 2); // in most passages: the commonest level
    expect(levels[the]).toBe(1);
    const once = [...df].find(([, d]) => d === 1)![0];
    expect(levels[once]).toBe(4);
    // a pair's match ids carry the levels
    const [qid] = coll.queries.train.keys();
    const pid = coll.candidates.train.get(qid)![0];
    const { inputs } = encoder.encode([[qid, pid]]);
    const ids = inputs.inputIds.arraySync()[0];
    const m = inputs.termMatchIds!.arraySync()[0];
    const q = new Set(tokenizer.ids(coll.queries.train.get(qid)!));
    const sep = ids.indexOf(tokenizer.sepId);
    ids.forEach((id, k) => expect(m[k]).toBe(k > sep && id !== tokenizer.sepId && q.has(id) ? levels[id] : 0));
    expect(m.filter((v) => v > 0).length).toBeGreaterThan(0);
    tf.dispose(Object.values(inputs));
  });

  it('tokenizes groups into [B*G, L] inputs with graded labels, padding slots masked', () => {
    const encoder = new PairEncoder(tokenizer, coll, 48);
    const groups = new GroupSampler(coll, { negatives: 12, batch: 2, seed: 1 }).next(); // only <= 9 negatives exist
    const G = 13;
    const before = tf.memory().numTensors;
    const batch = makeBatch(groups, encoder, labelFunction(coll, 'graded'), G);
    expect(batch.inputs.inputIds.shape[0]).toBe(2 * G);
    expect(batch.inputs.inputIds.shape[1]).toBeLessThanOrEqual(48);
    const mask = batch.mask.arraySync();
    const y = batch.labels.arraySync();
    groups.forEach((g, b) => {
      expect(mask[b].reduce((s, v) => s + v, 0)).toBe(g.pids.length);
      expect(mask[b].slice(g.pids.length).every((v) => v === 0)).toBe(true);
      expect(y[b][0]).toBe(g.grades[0] / 2);
    });
    // a padding slot has no valid token for the feature losses; a real pair starts with [CLS]
    const tokenMask = batch.tokenMask.arraySync();
    const ids = batch.inputs.inputIds.arraySync();
    expect(tokenMask[G - 1].every((v) => v === 0)).toBe(true);
    expect(ids[0][0]).toBe(tokenizer.clsId);
    expect(tokenMask[0][0]).toBe(1);
    const again = makeBatch(groups, encoder, labelFunction(coll, 'graded'), G);
    expect(again.inputs.inputIds.arraySync()).toEqual(ids);
    disposeBatch(batch);
    disposeBatch(again);
    expect(tf.memory().numTensors).toBe(before);
    expect(labelFunction(coll, 'binary')(1)).toBe(1);
  });
});

describe('AdamW', () => {
  const o = { lr: 0.1, warmup: 2, totalSteps: 4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 };
  const init = { w: [0.5, -1, 2, 0.25, -0.75, 1.5], 'b.bias': [0.1, -0.2, 0.3] };
  // step 2's gradient has norm > 1: clipped
  const grads = [
    { w: [0.1, -0.2, 0.3, 0.05, 0.0, -0.1], 'b.bias': [0.2, 0.1, -0.1] },
    { w: [2, -1, 0.5, 3, -2, 1], 'b.bias': [-1, 2, 0.5] },
    { w: [-0.3, 0.1, 0.2, -0.1, 0.4, 0.05], 'b.bias': [0.05, -0.05, 0.1] },
  ];

  it('has a linear warmup and a linear decay with no zero-lr step', () => {
    expect([1, 2, 3, 4].map((n) => learningRate(o, n))).toEqual([0.05, 0.1, 0.1, 0.05]);
    expect(learningRate({ lr: 1, warmup: 0, totalSteps: 4 }, 1)).toBe(1);
  });

  it('matches a float64 hand reference over 3 steps (warmup, decay, clipping, decay of non-bias weights only)', () => {
    const params = new Map(Object.entries(init).map(([k, v]) => [k, tf.variable(tf.tensor1d(v))]));
    const opt = new AdamW(params, o);
    // reference, float64
    const p: Record<string, number[]> = { w: [...init.w], 'b.bias': [...init['b.bias']] };
    const m: Record<string, number[]> = { w: Array(6).fill(0), 'b.bias': Array(3).fill(0) };
    const v: Record<string, number[]> = { w: Array(6).fill(0), 'b.bias': Array(3).fill(0) };
    grads.forEach((g, k) => {
      const n = k + 1;
      const g32 = Object.fromEntries(Object.entries(g).map(([name, a]) => [name, Array.from(Float32Array.from(a))]));
      const norm = Math.sqrt(
        Object.values(g32)
          .flat()
          .reduce((s, x) => s + x * x, 0),
      );
      const scale = norm > 1 ? 1 / (norm + 1e-6) : 1;
      const lr = n <= 2 ? (0.1 * n) / 2 : (0.1 * (4 - n + 1)) / 2;
      for (const name of ['w', 'b.bias']) {
        for (let i = 0; i < p[name].length; i++) {
          const gi = g32[name][i] * scale;
          m[name][i] = 0.9 * m[name][i] + 0.1 * gi;
          v[name][i] = 0.999 * v[name][i] + 0.001 * gi * gi;
          const mhat = m[name][i] / (1 - 0.9 ** n);
          const denom = Math.sqrt(v[name][i]) / Math.sqrt(1 - 0.999 ** n) + 1e-8;
          if (name === 'w') p[name][i] *= 1 - lr * 0.1;
          p[name][i] -= (lr * mhat) / denom;
        }
      }
      const gt = new Map(Object.entries(g).map(([name, a]) => [name, tf.tensor1d(a)]));
      const info = opt.apply(gt);
      tf.dispose([...gt.values()]);
      expect(info.step).toBe(n);
      expect(info.lr).toBeCloseTo(lr, 15);
      expect(info.gradNorm).toBeCloseTo(norm, 6);
      for (const name of ['w', 'b.bias']) {
        const got = params.get(name)!.dataSync();
        p[name].forEach((x, i) => expect(Math.abs(got[i] - x)).toBeLessThan(1e-6 * Math.max(1, Math.abs(x))));
      }
    });
    opt.dispose();
    tf.dispose([...params.values()]);
  });

  it('saves and restores its state exactly: the next update is bit for bit the same', async () => {
    const make = () => new Map(Object.entries(init).map(([k, v]) => [k, tf.variable(tf.tensor1d(v))]));
    const a = make();
    const optA = new AdamW(a, o);
    for (const g of grads.slice(0, 2)) {
      const gt = new Map(Object.entries(g).map(([name, x]) => [name, tf.tensor1d(x)]));
      optA.apply(gt);
      tf.dispose([...gt.values()]);
    }
    const dir = path.join(tmp, 'adam');
    await optA.save(dir);
    const b = make();
    for (const [k, t] of a) b.get(k)!.assign(t);
    const optB = new AdamW(b, o);
    optB.load(dir);
    expect(optB.step).toBe(2);
    const g3 = new Map(Object.entries(grads[2]).map(([name, x]) => [name, tf.tensor1d(x)]));
    optA.apply(g3);
    optB.apply(g3);
    for (const k of a.keys())
      expect(Buffer.from(b.get(k)!.dataSync().buffer)).toEqual(Buffer.from(a.get(k)!.dataSync().buffer));
    expect(() => new AdamW(new Map([['other', tf.variable(tf.zeros([3]))]]), o).load(dir)).toThrow(/other parameters/);
    tf.dispose([...g3.values(), ...a.values(), ...b.values()]);
  });
});

describe('teacher score cache', () => {
  const config: CrossEncoderConfig = tinyEncoderConfig();

  it('scores once, reloads the same float32 values, and recomputes when the teacher or the pairs change', async () => {
    const dir = path.join(tmp, 'cache-teacher');
    const model = new CrossEncoder(config, 1);
    await saveCrossEncoder(model, dir);
    const encoder = new PairEncoder(tokenizer, coll, 48);
    const pairs = trainingPairs(coll, 3);
    const first = await teacherScores(model, dir, coll, encoder, pairs, { scoreBatch: 16 });
    expect(first.computed).toBe(true);
    expect(first.scores.size).toBe(pairs.length);
    const direct = scorePairs(model, encoder, pairs, 7);
    pairs.forEach(([q, p], i) => expect(first.scores.get(`${q}\t${p}`)).toBeCloseTo(direct[i], 5));
    const second = await teacherScores(model, dir, coll, encoder, pairs, { scoreBatch: 16 });
    expect(second.computed).toBe(false);
    expect(second.file).toBe(first.file);
    expect([...second.scores]).toEqual([...first.scores]);
    for (const v of second.scores.values()) expect(Math.fround(v)).toBe(v);

    // other pairs: another key, another file
    const fewer = await teacherScores(model, dir, coll, encoder, pairs.slice(1), { scoreBatch: 16 });
    expect(fewer.computed).toBe(true);
    expect(fewer.file).not.toBe(first.file);
    // a damaged file is recomputed, not trusted
    fs.writeFileSync(first.file, fs.readFileSync(first.file, 'utf8').split('\n').slice(0, 3).join('\n'));
    expect((await teacherScores(model, dir, coll, encoder, pairs, { scoreBatch: 16 })).computed).toBe(true);
    // another teacher checkpoint in the same dir: new key, new scores
    const other = new CrossEncoder(config, 2);
    await saveCrossEncoder(other, dir);
    const third = await teacherScores(other, dir, coll, encoder, pairs, { scoreBatch: 16 });
    expect(third.computed).toBe(true);
    expect(third.file).not.toBe(first.file);
    expect([...third.scores.values()]).not.toEqual([...first.scores.values()]);
    model.dispose();
    other.dispose();
  });
});

describe('training', () => {
  const teacherOut = path.join(tmp, 'teacher');
  let teacher: RunResult;
  const events: string[] = [];

  beforeAll(async () => {
    const config = parseTeacherConfig({
      output: teacherOut,
      model: teacherSizes,
      // evaluated on every dev query: the first two have no relevant passage among their candidates
      data: { ...tinyData, evalQueries: undefined },
      train: {
        batch: 4,
        steps: 30,
        lr: 3e-3,
        warmup: 3,
        seed: 1,
        evalEvery: 15,
        checkpointEvery: 10,
        keepCheckpoints: 2,
      },
      loss: { ranknet: 1 },
    });
    const before = tf.memory().numTensors;
    teacher = await trainTeacher(config, { onProgress: (e) => events.push(e.type) });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains a teacher on hard labels: the loss goes down', () => {
    const losses = teacher.log.steps.map((s) => s.loss);
    expect(losses).toHaveLength(30);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.5 * mean(losses.slice(0, 5)));
    expect(teacher.log.steps[0].parts).toEqual({ ranknet: teacher.log.steps[0].loss });
    expect(teacher.log.evals.map((e) => e.step)).toEqual([15, 30]);
    // A query whose relevant passage is among its 10 BM25 candidates has a reciprocal rank in
    // [1/10, 1] whatever the model; the others 0 (most of this tiny collection's dev queries).
    const qids = [...coll.queries.dev.keys()];
    const reachable = qids.filter((q) =>
      coll.candidates.dev.get(q)!.some((p) => (coll.qrels.dev.get(q)!.get(p) ?? 0) >= 1),
    ).length;
    expect(reachable).toBeGreaterThan(0);
    for (const e of teacher.log.evals) {
      expect(e.queries).toBe(qids.length);
      expect(e.mrr10).toBeGreaterThanOrEqual(reachable / 10 / qids.length);
      expect(e.mrr10).toBeLessThanOrEqual(reachable / qids.length);
      expect(e.ndcg10).toBeGreaterThan(0);
      expect(e.ndcg10).toBeLessThanOrEqual(1);
    }
    expect(events.filter((e) => e === 'checkpoint')).toHaveLength(2); // steps 10 and 20, none at the end
    expect(fs.readdirSync(path.join(teacherOut, 'checkpoints')).sort()).toEqual(['step-00000010', 'step-00000020']);
    for (const f of ['model/model.json', 'model/weights.bin', 'log.jsonl', 'result.json', 'config.json'])
      expect(fs.existsSync(path.join(teacherOut, f))).toBe(true);
    expect(fs.readFileSync(path.join(teacherOut, 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(32);
  });

  it("the last evaluation's MRR@10 is the saved model's, recomputed here from its scores", () => {
    const model = loadCrossEncoder(teacher.modelDir);
    const encoder = new PairEncoder(tokenizer, coll, tinyData.maxLength);
    const qids = [...coll.queries.dev.keys()];
    const rr = qids.map((q) => {
      const candidates = coll.candidates.dev.get(q)!;
      const scores = scorePairs(
        model,
        encoder,
        candidates.map((p): [string, string] => [q, p]),
        64,
      );
      // score descending, ties by docid descending (trec_eval's order); the first passage of grade >= 1
      const ranked = candidates
        .map((p, i) => ({ p, s: scores[i] }))
        .sort((a, b) => b.s - a.s || (a.p < b.p ? 1 : a.p > b.p ? -1 : 0));
      const first = ranked.findIndex(({ p }) => (coll.qrels.dev.get(q)!.get(p) ?? 0) >= 1);
      return first >= 0 && first < 10 ? 1 / (first + 1) : 0;
    });
    model.dispose();
    expect(teacher.final!.queries).toBe(qids.length);
    expect(teacher.final!.mrr10).toBeCloseTo(rr.reduce((a, b) => a + b, 0) / rr.length, 6);
  });

  it('refuses to overwrite a run; resuming a finished run returns its result', async () => {
    const config = parseTeacherConfig(JSON.parse(fs.readFileSync(path.join(teacherOut, 'config.json'), 'utf8')));
    await expect(trainTeacher(config)).rejects.toThrow(/holds a finished run/);
    const again = await trainTeacher(config, { resume: true });
    expect(again.log).toEqual(teacher.log);
  });

  it("train.precision: the run's matrix products in bf16 on native (the flag restored after); refused on wasm", async () => {
    const run = (name: string, precision?: 'fp32' | 'bf16') =>
      trainTeacher(
        parseTeacherConfig({
          output: path.join(tmp, name),
          model: teacherSizes,
          data: { ...tinyData, evalQueries: 0 },
          train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 5, checkpointEvery: 0, precision },
          loss: { ranknet: 1 },
        }),
      );
    const saved = tf.getBackend();
    registerNativeBackend();
    await tf.setBackend('native');
    try {
      const fp32 = (await run('prec-fp32')).log.steps.map((s) => s.loss);
      const bf16 = (await run('prec-bf16', 'bf16')).log.steps.map((s) => s.loss);
      expect(tf.env().get(MATMUL_PRECISION_FLAG)).toBe('fp32');
      // bf16 operands change the losses by about their rounding (2^-8), not more
      expect(bf16).not.toEqual(fp32);
      bf16.forEach((l, i) => expect(Math.abs(l - fp32[i])).toBeLessThan(0.05 * Math.abs(fp32[i])));
      await tf.setBackend('wasm');
      await expect(run('prec-wasm', 'bf16')).rejects.toThrow(
        /precision must be 'fp32' on the wasm backend, got "bf16" \(only this package's native and cuda backends/,
      );
      expect(tf.env().get(MATMUL_PRECISION_FLAG)).toBe('fp32');
    } finally {
      await tf.setBackend(saved);
    }
  });

  const studentConfig = (name: string, extra: Partial<StudentRunInput> = {}): StudentRunInput => ({
    output: path.join(tmp, name),
    teacher: { checkpoint: path.join(teacherOut, 'model'), cacheDir: path.join(tmp, 'scores') },
    student: { model: studentSizes },
    data: tinyData,
    train: { batch: 2, steps: 6, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
    ...extra,
  });

  it('distils with every objective term at once: one fused objective call a step, every part logged', async () => {
    const spy = jest.spyOn(objective, 'rankingObjectiveParts');
    const all = {
      bce: 0.5,
      ranknet: 1,
      hinge: 0.5,
      listwiseCE: 0.5,
      kl: 1,
      temperature: 2,
      marginMSE: 0.1,
      scoreMSE: 0.1,
      hiddenMSE: 0.2,
      attentionMSE: 0.01,
      embeddingMSE: 0.2,
    };
    const before = tf.memory().numTensors;
    const result = await distill(parseStudentConfig(studentConfig('all-terms', { loss: all })));
    expect(tf.memory().numTensors).toBe(before);
    expect(spy).toHaveBeenCalledTimes(6);
    spy.mockRestore();
    const names = [
      'bce',
      'ranknet',
      'hinge',
      'listwiseCE',
      'kl',
      'marginMSE',
      'scoreMSE',
      'hiddenMSE',
      'embeddingMSE',
      'attentionMSE',
    ];
    for (const s of result.log.steps) {
      expect(Object.keys(s.parts).sort()).toEqual([...names].sort());
      for (const v of Object.values(s.parts)) expect(Number.isFinite(v) && v >= 0).toBe(true);
      const sum = Object.values(s.parts).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - s.loss)).toBeLessThan(1e-5 * Math.max(1, s.loss));
      expect(s.parts.hiddenMSE).toBeGreaterThan(0);
    }
    expect(result.log.evals).toHaveLength(1); // evaluation at the end only
  });

  it('starts a student from every k-th teacher layer', async () => {
    const result = await distill(
      parseStudentConfig(
        studentConfig('from-layers', {
          student: { init: 'teacherLayers', model: { layers: 1 } },
          loss: { ranknet: 1, scoreMSE: 1 },
          train: { steps: 2, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
        }),
      ),
    );
    const model = JSON.parse(fs.readFileSync(path.join(result.modelDir, 'model.json'), 'utf8'));
    expect(model.config).toMatchObject({ layers: 1, hidden: 32, heads: 2 });
    expect(Object.keys(result.log.steps[1].parts).sort()).toEqual(['ranknet', 'scoreMSE']);
  });

  it("micro-batches give the whole batch's loss and gradient (up to rounding)", async () => {
    const run = (name: string, microBatch: number) =>
      distill(
        parseStudentConfig(
          studentConfig(name, {
            loss: { listwiseCE: 1, kl: 1, marginMSE: 1, hiddenMSE: 1 },
            train: { batch: 4, microBatch, steps: 1, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
          }),
        ),
      );
    const [whole, parts] = [(await run('micro-4', 4)).log.steps[0], (await run('micro-1', 1)).log.steps[0]];
    expect(parts.loss).toBeCloseTo(whole.loss, 5);
    for (const k of Object.keys(whole.parts)) expect(parts.parts[k]).toBeCloseTo(whole.parts[k], 5);
    expect(Math.abs(parts.gradNorm - whole.gradNorm)).toBeLessThan(1e-5 * whole.gradNorm);
  });

  it('says why a feature term cannot run', async () => {
    await expect(
      distill(parseStudentConfig(studentConfig('bad-map', { loss: { ranknet: 1, hiddenMSE: 1, layerMap: [1, 2] } }))),
    ).rejects.toThrow(/loss\.layerMap: has 2 entries, the student has 1 layers/);
    await expect(
      distill(
        parseStudentConfig(
          studentConfig('bad-heads', {
            student: { model: { ...studentSizes, heads: 4 } },
            loss: { ranknet: 1, attentionMSE: 1 },
          }),
        ),
      ),
    ).rejects.toThrow(/loss\.attentionMSE: the student has 4 attention heads, the teacher 2/);
  });

  it('resumes after kill -9 to the same final weights and log as an uninterrupted run', async () => {
    const input = (name: string) =>
      studentConfig(name, {
        loss: { ranknet: 1, kl: 1, temperature: 2, hiddenMSE: 0.5 },
        data: { ...tinyData, trainQueries: 6 },
        train: {
          batch: 2,
          steps: 12,
          lr: 3e-3,
          warmup: 2,
          seed: 9,
          evalEvery: 4,
          checkpointEvery: 4,
          keepCheckpoints: 2,
        },
      });
    const file = path.join(tmp, 'resume.json');
    fs.writeFileSync(file, JSON.stringify(input('resumed')));
    const child = (resume: boolean, killAtCheckpoint: number | null) =>
      new Promise<{
        code: number | null;
        signal: string | null;
        events: Array<{ type: string; step: number; resumedFrom?: string | null }>;
        stderr: string;
      }>((resolve) => {
        const args = [
          '-r',
          path.join(__dirname, 'helpers', 'ts_register.js'),
          path.join(__dirname, 'helpers', 'distill_child.ts'),
          file,
          ...(resume ? ['--resume'] : []),
        ];
        const proc = spawn(process.execPath, args, {
          env: { ...process.env, FUSED_DISTILL_TEST_BACKEND: BACKEND },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const events: Array<{ type: string; step: number }> = [];
        let out = '';
        let stderr = '';
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          let nl: number;
          while ((nl = out.indexOf('\n')) >= 0) {
            const e = JSON.parse(out.slice(0, nl));
            out = out.slice(nl + 1);
            events.push(e);
            if (killAtCheckpoint != null && e.type === 'checkpoint' && e.step === killAtCheckpoint)
              proc.kill('SIGKILL');
          }
        });
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        proc.on('close', (code, signal) => resolve({ code, signal, events, stderr }));
      });

    const killed = await child(false, 4);
    expect(killed.signal).toBe('SIGKILL');
    const doneSteps = killed.events.filter((e) => e.type === 'step').map((e) => e.step);
    expect(Math.max(...doneSteps)).toBeLessThan(12);
    expect(fs.existsSync(path.join(tmp, 'resumed', 'result.json'))).toBe(false);

    const resumed = await child(true, null);
    expect(resumed.stderr).not.toMatch(/Error/);
    expect(resumed.code).toBe(0);
    const start = resumed.events.find((e) => e.type === 'start')!;
    expect(start.step).toBeGreaterThanOrEqual(4);
    expect(start.resumedFrom).toMatch(/step-0000000[48]$/);
    expect(resumed.events.filter((e) => e.type === 'step')[0].step).toBe(start.step + 1);

    const straight = await distill(parseStudentConfig(input('straight')));
    const bytes = (name: string, f: string) => fs.readFileSync(path.join(tmp, name, f));
    expect(bytes('resumed', 'model/weights.bin').equals(bytes('straight', 'model/weights.bin'))).toBe(true);
    expect(bytes('resumed', 'log.jsonl').toString()).toBe(bytes('straight', 'log.jsonl').toString());
    expect(straight.log.evals.map((e) => e.step)).toEqual([4, 8, 12]);
    // the checkpoints hold the learned projection (student hidden 16 -> teacher 32) with the model
    const ck = path.join(tmp, 'straight', 'checkpoints');
    expect(fs.readdirSync(ck).sort()).toEqual(['step-00000004', 'step-00000008']);
    const extra = JSON.parse(fs.readFileSync(path.join(ck, 'step-00000008', 'extra.json'), 'utf8'));
    expect(extra.weights.map((w: { name: string; shape: number[] }) => [w.name, w.shape])).toEqual([
      ['projection.hidden.weight', [16, 32]],
    ]);
  });
});
