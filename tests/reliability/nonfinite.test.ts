// Non-finite values stop work where they appear. A NaN loss or an Inf gradient norm stops a run at
// that step, naming the step, the term and the queries (or, with train.nonFinite 'skip', the step
// makes no update and is counted); weights holding NaN are refused when loaded; a teacher or a
// model scoring NaN is an error naming the query and passage; evaluation ranks ±Inf ties by docid
// and refuses recall@0. The runs are tiny real teacher runs on a 12-document collection; NaN is
// injected into the model's scores at one step.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { BertTokenizer } from '../../src/data';
import {
  AdamW,
  PairEncoder,
  parseTeacherConfig,
  teacherScores,
  trainTeacher,
  trainingPairs,
  type ProgressEvent,
  type RankingCollection,
  type TeacherRunInput,
} from '../../src/distill';
import { evaluateQuery, evaluateRun, rankDocs } from '../../src/eval';
import { evaluateBm25, evaluateCrossEncoder } from '../../src/eval/rerank';
import { CrossEncoder, loadCrossEncoder, saveCrossEncoder } from '../../src/models';
import { tinyCollection } from '../helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-nonfinite-'));
const collDir = path.join(tmp, 'coll');
const sizes = { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };
let coll: RankingCollection;
let tokenizer: BertTokenizer;

beforeAll(async () => {
  ({ coll, tokenizer } = await tinyCollection(collDir));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const teacherInput = (name: string, train: Record<string, unknown> = {}): TeacherRunInput => ({
  output: path.join(tmp, name),
  model: sizes,
  data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 0 },
  train: { batch: 2, steps: 6, lr: 3e-3, warmup: 1, seed: 5, evalEvery: 0, checkpointEvery: 0, ...train },
  loss: { ranknet: 1, bce: 0.5 },
});

/** A model whose every score is NaN (its classifier bias is). */
function nanModel(seed = 1): CrossEncoder {
  const model = new CrossEncoder(
    { ...sizes, vocabSize: 30522, typeVocab: 2, layerNormEps: 1e-12, initStd: 0.02 },
    seed,
  );
  const bias = model.params.get('classifier.bias')!;
  bias.assign(tf.fill(bias.shape, NaN));
  return model;
}

describe('training', () => {
  // NaN in the model's scores during one step's forward passes (steps count from the progress events).
  let done = 0;
  let poisonStep = -1;
  const onProgress = (events: ProgressEvent[]) => (e: ProgressEvent) => {
    events.push(e);
    if (e.type === 'step') done = e.step;
  };
  beforeEach(() => {
    done = 0;
    poisonStep = -1;
    const forward = CrossEncoder.prototype.forward;
    jest.spyOn(CrossEncoder.prototype, 'forward').mockImplementation(function (this: CrossEncoder, inputs, want) {
      const out = forward.call(this, inputs, want);
      return done + 1 === poisonStep ? { ...out, scores: tf.mul(out.scores, NaN) as tf.Tensor1D } : out;
    });
  });
  afterEach(() => jest.restoreAllMocks());

  it('a NaN loss stops the run at its step, naming the terms and the queries; nothing is finished', async () => {
    poisonStep = 3;
    const events: ProgressEvent[] = [];
    const config = parseTeacherConfig(teacherInput('nan-stop'));
    await expect(trainTeacher(config, { onProgress: onProgress(events) })).rejects.toThrow(
      /nan-stop: step 3: loss NaN \((ranknet NaN, bce NaN|bce NaN, ranknet NaN)\) on queries \S+(, \S+)*; stopped \(train\.nonFinite 'skip' skips such steps\)/,
    );
    expect(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([1, 2]);
    expect(fs.existsSync(path.join(config.output, 'result.json'))).toBe(false);
    expect(fs.existsSync(path.join(config.output, 'model'))).toBe(false);
  });

  it("train.nonFinite 'skip': the step makes no update, is logged as skipped and counted", async () => {
    poisonStep = 3;
    const events: ProgressEvent[] = [];
    const result = await trainTeacher(parseTeacherConfig(teacherInput('nan-skip', { nonFinite: 'skip' })), {
      onProgress: onProgress(events),
    });
    expect(result.log.steps).toHaveLength(6);
    expect(result.log.steps.map((s) => (s as { skipped?: boolean }).skipped ?? false)).toEqual([
      false,
      false,
      true,
      false,
      false,
      false,
    ]);
    expect(result.log.steps[2].loss).toBeNaN();
    for (const s of [0, 1, 3, 4, 5]) expect(Number.isFinite(result.log.steps[s].loss)).toBe(true);
    expect(events.find((e) => e.type === 'done')).toMatchObject({ skippedSteps: 1 });
    expect(events.filter((e) => e.type === 'notice').map((e) => (e as { message: string }).message)).toEqual([
      expect.stringMatching(/nan-skip: step 3: loss NaN .* on queries .*; step skipped \(1 so far\)$/),
    ]);
    const line = fs
      .readFileSync(path.join(result.output, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))[2];
    expect(line).toMatchObject({ step: 3, skipped: true, loss: null });
    loadCrossEncoder(result.modelDir).dispose(); // finite weights, or this throws
  });

  it('an Inf gradient norm with a finite loss stops the run, naming it', async () => {
    const apply = AdamW.prototype.apply;
    jest.spyOn(AdamW.prototype, 'apply').mockImplementation(function (this: AdamW, grads) {
      if (done + 1 !== 2) return apply.call(this, grads);
      return { step: this.step, lr: 0, gradNorm: Infinity, applied: false };
    });
    await expect(
      trainTeacher(parseTeacherConfig(teacherInput('inf-grad')), { onProgress: onProgress([]) }),
    ).rejects.toThrow(/inf-grad: step 2: gradient norm Infinity \(loss \d[\d.e+-]*\) on queries /);
  });

  it('AdamW makes no update from a non-finite gradient', () => {
    const p = tf.variable(tf.tensor1d([1, 2, 3]));
    const opt = new AdamW(new Map([['w', p]]), { lr: 0.1, warmup: 0, totalSteps: 10, clipNorm: 1 });
    const info = opt.apply(new Map([['w', tf.tensor1d([0.1, Infinity, 0.2])]]));
    expect(info).toMatchObject({ applied: false, gradNorm: Infinity, step: 0 });
    expect(opt.step).toBe(0);
    expect([...p.dataSync()]).toEqual([1, 2, 3]);
    expect(opt.moments('w')).toEqual({ m: new Float32Array(3), v: new Float32Array(3) });
    expect(opt.apply(new Map([['w', tf.tensor1d([0.1, 0.1, 0.2])]]))).toMatchObject({ applied: true, step: 1 });
    opt.dispose();
    p.dispose();
  });

  it('a teacher initialised from a checkpoint with NaN weights is refused, naming the file and tensor', async () => {
    const dir = path.join(tmp, 'nan-init');
    const model = nanModel();
    await saveCrossEncoder(model, dir);
    model.dispose();
    const config = parseTeacherConfig({ ...teacherInput('from-nan'), init: { checkpoint: dir } });
    await expect(trainTeacher(config)).rejects.toThrow(
      `${path.join(dir, 'weights.bin')}: classifier.bias: value 0 is NaN; weights must be finite`,
    );
  });
});

describe('scores', () => {
  it('a teacher scoring NaN is an error naming the query, the passage and the teacher', async () => {
    const teacher = nanModel();
    const dir = path.join(tmp, 'nan-teacher');
    // the checkpoint's files key the cache; the weights scored are the NaN ones in memory
    await saveCrossEncoder(new CrossEncoder(teacher.config, 2), dir);
    const encoder = new PairEncoder(tokenizer, coll, 48);
    const pairs = trainingPairs(coll, 2);
    await expect(
      teacherScores(teacher, dir, coll, encoder, pairs, { scoreBatch: 8, cacheDir: path.join(tmp, 'nan-scores') }),
    ).rejects.toThrow(
      `teacher ${dir}: scored query ${pairs[0][0]}, passage ${pairs[0][1]} as NaN; scores must be finite`,
    );
    expect(fs.existsSync(path.join(tmp, 'nan-scores'))).toBe(false);
    teacher.dispose();
  });

  it("a model scoring NaN is an evaluation error, not the BM25 row's metrics", async () => {
    const model = nanModel();
    const encoder = new PairEncoder(tokenizer, coll, 48);
    const target = { split: 'dev' as const, queries: 3 };
    expect(evaluateBm25(coll, target).mean.mrr10).toBeGreaterThan(0);
    await expect(
      evaluateCrossEncoder(model, encoder, coll, target, { name: 'nan-student', kind: 'student' }),
    ).rejects.toThrow(/^eval nan-student: the model scored query \S+, passage \S+ as NaN; scores must be finite$/);
    model.dispose();
  });
});

describe('metrics', () => {
  const qrels = new Map([['q1', new Map([['d1', 1]])]]);

  it('a NaN score is an error naming the query and passage, whatever the map order', () => {
    for (const entries of [
      [
        ['d1', NaN],
        ['d2', 1],
      ],
      [
        ['d2', 1],
        ['d1', NaN],
      ],
    ] as Array<Array<[string, number]>>) {
      const run = new Map([['q1', new Map(entries)]]);
      expect(() => evaluateRun(run, qrels, [10], 'probe')).toThrow(
        'probe: query q1: passage d1 has score NaN; scores must be numbers',
      );
    }
    // a query outside the qrels is checked too
    expect(() =>
      evaluateRun(
        new Map([
          ['q1', new Map([['d1', 1]])],
          ['q9', new Map([['x', NaN]])],
        ]),
        qrels,
        [10],
      ),
    ).toThrow(/query q9: passage x has score NaN/);
  });

  it('±Inf ties break by docid (descending), as any equal scores do', () => {
    const scores = new Map([
      ['a', Infinity],
      ['c', Infinity],
      ['b', 1],
      ['e', -Infinity],
      ['d', -Infinity],
      ['f', 1],
    ]);
    expect(rankDocs(scores)).toEqual(['c', 'a', 'f', 'b', 'e', 'd']);
    const reversed = new Map([...scores].reverse());
    expect(rankDocs(reversed)).toEqual(['c', 'a', 'f', 'b', 'e', 'd']);
    // the same run scores the same whichever way its map was filled
    const rr = (m: Map<string, number>) =>
      evaluateRun(new Map([['q1', m]]), new Map([['q1', new Map([['a', 1]])]]), [10]).mean.rr10;
    expect(rr(scores)).toBe(0.5);
    expect(rr(reversed)).toBe(0.5);
  });

  it('recall@0 (or any k < 1) is rejected', () => {
    expect(() => evaluateQuery(['d1'], new Map([['d1', 1]]), [0])).toThrow(
      'recall@0: the cut-off must be an integer >= 1',
    );
    expect(() => evaluateRun(new Map(), qrels, [10, -1])).toThrow(/recall@-1/);
    expect(() => evaluateRun(new Map(), qrels, [2.5])).toThrow(/recall@2\.5/);
    expect(evaluateQuery(['d1'], new Map([['d1', 1]]), [1]).recall[1]).toBe(1);
  });
});
