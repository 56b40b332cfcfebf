// The first stage's BM25 score as a model input. As text (CrossEncoderConfig.bm25Text): the
// one-document BM25 score equals the first stage's, PairEncoder puts its integer text at the start of
// the query segment, a model that reads it trains and evaluates with it, and a model and a run's
// encoding that disagree are refused. As a score term (bm25Score): PairEncoder passes each pair's
// score, the model adds a learned weight times it, the weight trains and is saved. And
// data.positives 'candidates': the training positives a re-ranker sees are the ones it will re-rank.
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Bm25Index } from '../src/data/bm25';
import {
  distill,
  parseStudentConfig,
  parseTeacherConfig,
  positivesAmongCandidates,
  trainTeacher,
  trainingPools,
  type RankingCollection,
} from '../src/distill';
import { BertTokenizer } from '../src/data';
import { CrossEncoder, PairEncoder, loadCrossEncoder } from '../src/models';
import { BM25_WEIGHT_INIT } from '../src/models/cross_encoder';
import { saveHuggingFace } from '../src/models/hf_export';
import { tinyCollection } from './helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-bm25text-'));
const collDir = path.join(tmp, 'coll');
let coll: RankingCollection;
let tokenizer: BertTokenizer;

beforeAll(async () => {
  ({ coll, tokenizer } = await tinyCollection(collDir));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('BM25 score as text', () => {
  it('scores one document as search() ranks it, bit for bit, and 0 without a shared term', () => {
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    for (const query of [...coll.queries.test.values()].slice(0, 5)) {
      const hits = index.search(query, 1000);
      expect(hits.length).toBeGreaterThan(0);
      for (const [id, score] of hits) expect(index.score(query, id)).toBe(score);
      const missing = [...coll.passages.keys()].find((id) => !hits.some(([h]) => h === id));
      if (missing) expect(index.score(query, missing)).toBe(0);
    }
    expect(() => index.score('x', 'nope')).toThrow(/unknown document nope/);
  });

  it('puts the rounded score at the start of the query segment; without the option nothing changes', () => {
    const plain = new PairEncoder(tokenizer, coll, 64);
    const withScore = new PairEncoder(tokenizer, coll, 64, { bm25Text: true });
    const [qid, cands] = [...coll.candidates.test][0];
    const pid = cands[0];
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    const score = Math.round(index.score(coll.queries.test.get(qid)!, pid));
    const scoreIds = tokenizer.ids(String(score));
    expect(withScore.bm25Ids(qid, pid)).toEqual(scoreIds);
    const a = plain.encode([[qid, pid]]);
    const b = withScore.encode([[qid, pid]]);
    const ids = (x: typeof a) => Array.from(x.inputs.inputIds.dataSync());
    // [CLS] score q... [SEP] p... [SEP]: the score's ids right after [CLS], the rest shifted
    expect(ids(b).slice(1, 1 + scoreIds.length)).toEqual(scoreIds);
    const plainLen = plain.pairLength(qid, pid);
    expect(withScore.pairLength(qid, pid)).toBe(Math.min(64, plainLen + scoreIds.length));
    expect(ids(b)[0]).toBe(ids(a)[0]);
    expect(ids(b).slice(1 + scoreIds.length, 1 + scoreIds.length + 5)).toEqual(ids(a).slice(1, 6));
  });

  it('trains a bm25Text teacher, keeps the flag with the model, and refuses a student that reads other inputs', async () => {
    const sizes = { layers: 2, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };
    const data = { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 };
    const train = { batch: 2, microBatch: 2, steps: 2, lr: 1e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 };
    const teacher = await trainTeacher(
      parseTeacherConfig({
        output: path.join(tmp, 't'),
        model: { ...sizes, bm25Text: true },
        data,
        train,
        loss: { ranknet: 1 },
      }),
    );
    const model = loadCrossEncoder(teacher.modelDir);
    expect(model.config.bm25Text).toBe(true);
    await expect(saveHuggingFace(model, path.join(tmp, 'hf'))).rejects.toThrow(/bm25Text/);
    model.dispose();
    // teacherLayers inherits the flag; a random student without it is refused, naming the field
    const student = (name: string, init: 'teacherLayers' | 'random') =>
      parseStudentConfig({
        output: path.join(tmp, name),
        teacher: { checkpoint: teacher.modelDir },
        student: { init, model: { ...sizes, layers: 1 } },
        data,
        train,
        loss: { ranknet: 1, kl: 1 },
      });
    const ok = await distill(student('s1', 'teacherLayers'));
    expect(loadCrossEncoder(ok.modelDir).config.bm25Text).toBe(true);
    await expect(distill(student('s2', 'random'))).rejects.toThrow(
      /student: model\.bm25Text is false but the run's pairs are encoded with the BM25 score as text/,
    );
  });
});

describe('BM25 score as a score term (bm25Score)', () => {
  const sizes = { layers: 2, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };

  it("passes each pair's first-stage score, 0 for a padding slot, and nothing without the option", () => {
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    const [qid, cands] = [...coll.candidates.test][0];
    const pairs: Array<[string, string] | null> = [...cands.slice(0, 3).map((p): [string, string] => [qid, p]), null];
    const e = new PairEncoder(tokenizer, coll, 64, { bm25Score: true }).encode(pairs);
    const want = cands.slice(0, 3).map((p) => Math.fround(index.score(coll.queries.test.get(qid)!, p)));
    expect(Array.from(e.inputs.bm25Scores!.dataSync())).toEqual([...want, 0]);
    expect(want.some((v) => v > 0)).toBe(true);
    expect(new PairEncoder(tokenizer, coll, 64).encode(pairs).inputs.bm25Scores).toBeUndefined();
  });

  it('adds w * score to the same network, w starting at BM25_WEIGHT_INIT, and names a missing or misshapen input', () => {
    const cfg = { ...sizes, vocabSize: 30522, typeVocab: 2, layerNormEps: 1e-12, initStd: 0.02 };
    const withScore = new CrossEncoder({ ...cfg, bm25Score: true }, 3);
    const plain = new CrossEncoder(cfg, 3);
    expect(Array.from(withScore.params.get('classifier.bm25_weight')!.dataSync())).toEqual([
      Math.fround(BM25_WEIGHT_INIT),
    ]);
    withScore.params.get('classifier.bm25_weight')!.assign(tf.tensor1d([0.25]));
    const [qid, cands] = [...coll.candidates.test][0];
    const { inputs } = new PairEncoder(tokenizer, coll, 64, { bm25Score: true }).encode(
      cands.slice(0, 4).map((p) => [qid, p]),
    );
    const a = withScore.forward(inputs).scores.dataSync();
    const b = plain.forward(inputs).scores.dataSync();
    const s = inputs.bm25Scores!.dataSync();
    for (let i = 0; i < 4; i++) expect(a[i]).toBeCloseTo(b[i] + 0.25 * s[i], 5);
    expect(() => withScore.forward({ ...inputs, bm25Scores: undefined })).toThrow(/inputs\.bm25Scores is required/);
    expect(() => withScore.forward({ ...inputs, bm25Scores: tf.zeros([3]) as tf.Tensor1D })).toThrow(
      /bm25Scores has shape \[3\], expected \[4\]/,
    );
    withScore.dispose();
    plain.dispose();
  });

  it('trains the weight with the network, saves it, and refuses an export transformers could not run', async () => {
    const data = { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 };
    const train = { batch: 2, microBatch: 2, steps: 3, lr: 1e-2, warmup: 0, evalEvery: 0, checkpointEvery: 0 };
    const teacher = await trainTeacher(
      parseTeacherConfig({
        output: path.join(tmp, 'ts'),
        model: { ...sizes, bm25Score: true },
        data,
        train,
        loss: { ranknet: 1 },
      }),
    );
    const model = loadCrossEncoder(teacher.modelDir);
    expect(model.config.bm25Score).toBe(true);
    const w = model.params.get('classifier.bm25_weight')!.dataSync()[0];
    expect(Number.isFinite(w) && w !== Math.fround(BM25_WEIGHT_INIT)).toBe(true);
    await expect(saveHuggingFace(model, path.join(tmp, 'hf-score'))).rejects.toThrow(/bm25Score/);
    model.dispose();
    // A student without the term reads the same pairs (the scores are an extra input it ignores);
    // one from the teacher's layers inherits the term and its trained weight.
    const student = (name: string, init: 'teacherLayers' | 'random') =>
      distill(
        parseStudentConfig({
          output: path.join(tmp, name),
          teacher: { checkpoint: teacher.modelDir },
          student: { init, model: { ...sizes, layers: 1 } },
          data,
          train: { ...train, steps: 1, lr: 1e-9 },
          loss: { ranknet: 1, kl: 1 },
        }),
      );
    expect(loadCrossEncoder((await student('sr', 'random')).modelDir).config.bm25Score).toBeUndefined();
    const inherited = loadCrossEncoder((await student('sl', 'teacherLayers')).modelDir);
    expect(inherited.config.bm25Score).toBe(true);
    expect(inherited.params.get('classifier.bm25_weight')!.dataSync()[0]).toBeCloseTo(w, 5);
  });
});

describe("data.positives 'candidates'", () => {
  it("keeps only training positives among their query's candidates and trains only queries that have one", () => {
    const kept = positivesAmongCandidates(coll);
    let dropped = 0;
    for (const [qid, judged] of coll.qrels.train) {
      const cands = new Set(coll.candidates.train.get(qid) ?? []);
      for (const [pid, grade] of judged) {
        const inKept = kept.qrels.train.get(qid)!.has(pid);
        expect(inKept).toBe(grade < 1 || cands.has(pid));
        if (!inKept) dropped++;
      }
    }
    expect(dropped).toBeGreaterThan(0); // the tiny collection has positives BM25 missed
    expect(kept.qrels.test).toBe(coll.qrels.test); // evaluation untouched
    const pools = trainingPools(kept);
    expect(pools.length).toBeLessThan(trainingPools(coll).length);
    for (const p of pools) {
      const cands = coll.candidates.train.get(p.qid)!;
      for (const pid of [...p.positives, ...p.negatives]) expect(cands).toContain(pid);
    }
  });

  it('is read from the run config, and another value is refused naming the field', () => {
    const base = { output: path.join(tmp, 'p') };
    expect(parseTeacherConfig({ ...base, data: { positives: 'candidates' } }).data.positives).toBe('candidates');
    expect(parseTeacherConfig(base).data.positives).toBeUndefined();
    expect(() => parseTeacherConfig({ ...base, data: { positives: 'top' } })).toThrow(/data\.positives/);
  });
});
