// The tfjs BERT cross-encoder: shapes, padding masks, seeds, gradients, student initialisation, and a
// few distillation steps through the fused losses.
import * as tf from '@tensorflow/tfjs';

import { losses } from '../src';
import { CrossEncoder, CrossEncoderConfig } from '../src/models';
import { embeddingLookup } from '../src/models/cross_encoder';
import { loadCrossEncoder, saveCrossEncoder } from '../src/models/checkpoint';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const tiny: CrossEncoderConfig = {
  vocabSize: 50,
  hidden: 16,
  layers: 2,
  heads: 2,
  intermediate: 32,
  maxPosition: 16,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.02,
};

function batch(ids: number[][], types: number[][], mask: number[][]) {
  return {
    inputIds: tf.tensor2d(ids, undefined, 'int32'),
    tokenTypeIds: tf.tensor2d(types, undefined, 'int32'),
    attentionMask: tf.tensor2d(mask, undefined, 'int32'),
  };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('CrossEncoder', () => {
  const model = new CrossEncoder(tiny, 1);
  afterAll(() => model.dispose());
  const inputs = batch(
    [
      [2, 5, 6, 3, 7, 8, 3, 0],
      [2, 9, 3, 10, 11, 12, 13, 3],
    ],
    [
      [0, 0, 0, 0, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1],
    ],
    [
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ],
  );

  it("returns a score per pair, and every layer's hidden states and attention scores on request", () => {
    const out = model.forward(inputs, { hidden: true, attention: true });
    expect(out.scores.shape).toEqual([2]);
    expect(out.hidden!.map((h) => h.shape)).toEqual([
      [2, 8, 16],
      [2, 8, 16],
      [2, 8, 16],
    ]);
    expect(out.attention!.map((a) => a.shape)).toEqual([
      [2, 2, 8, 8],
      [2, 2, 8, 8],
    ]);
    expect(model.forward(inputs).hidden).toBeUndefined();
    tf.dispose(out as unknown as tf.TensorContainer);
    const before = tf.memory().numTensors;
    tf.dispose(model.forward(inputs, { hidden: true }) as unknown as tf.TensorContainer);
    expect(tf.memory().numTensors).toBe(before);
    expect(model.parameterCount()).toBe([...model.params.values()].reduce((n, v) => n + v.size, 0));
  });

  it('padding takes no part: changing padded token ids leaves the scores unchanged', () => {
    const a = model.forward(inputs).scores.arraySync();
    const other = batch(
      [
        [2, 5, 6, 3, 7, 8, 3, 44],
        [2, 9, 3, 10, 11, 12, 13, 3],
      ],
      [
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1],
      ],
      [
        [1, 1, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1, 1],
      ],
    );
    const b = model.forward(other).scores.arraySync();
    expect(b[0]).toBeCloseTo(a[0], 5);
    // ... while a real token does change it
    const changed = batch([[2, 5, 6, 3, 7, 9, 3, 0]], [[0, 0, 0, 0, 1, 1, 1, 0]], [[1, 1, 1, 1, 1, 1, 1, 0]]);
    expect(Math.abs(model.forward(changed).scores.arraySync()[0] - a[0])).toBeGreaterThan(1e-7);
  });

  it('a model disposed leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    new CrossEncoder(tiny, 9).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the same seed gives the same model; another seed another', () => {
    const same = new CrossEncoder(tiny, 1);
    const other = new CrossEncoder(tiny, 2);
    expect(same.forward(inputs).scores.arraySync()).toEqual(model.forward(inputs).scores.arraySync());
    expect(other.forward(inputs).scores.arraySync()).not.toEqual(model.forward(inputs).scores.arraySync());
    same.dispose();
    other.dispose();
  });

  it('every parameter gets a finite gradient', () => {
    const { grads } = tf.variableGrads(() => tf.sum(model.forward(inputs).scores) as tf.Scalar);
    for (const name of model.params.keys()) {
      const g = grads[model.params.get(name)!.name];
      expect(g).toBeDefined();
      expect(tf.all(tf.isFinite(g)).arraySync()).toBe(1);
    }
    expect(
      tf.max(tf.abs(grads[model.params.get('bert.encoder.layer.0.attention.self.query.weight')!.name])).arraySync(),
    ).toBeGreaterThan(0);
    tf.dispose(grads);
  });

  it("the embedding lookup has tf.gather's value and gradient (scatter-add, repeated ids summed)", () => {
    const table = tf.randomNormal([7, 3], 0, 1, 'float32', 4);
    const ids = tf.tensor2d(
      [
        [1, 3, 1],
        [6, 1, 0],
      ],
      undefined,
      'int32',
    );
    const dy = tf.randomNormal([2, 3, 3], 0, 1, 'float32', 5);
    const mine = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(embeddingLookup(t, ids), dy)))(table);
    const theirs = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), dy)))(table);
    expect(embeddingLookup(table, ids).arraySync()).toEqual(tf.gather(table, ids).arraySync());
    const [a, b] = [mine.dataSync(), theirs.dataSync()];
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 6);
    tf.dispose([table, ids, dy, mine, theirs]);
  });

  it('a student from every 2nd layer copies layers 1, 3, ... and the shared parts', () => {
    const teacher = new CrossEncoder({ ...tiny, layers: 4 }, 3);
    const student = teacher.studentFromLayers(2);
    expect(student.config.layers).toBe(2);
    const same = (a: string, b: string) =>
      expect(student.params.get(a)!.arraySync()).toEqual(teacher.params.get(b)!.arraySync());
    same('bert.encoder.layer.0.attention.self.key.weight', 'bert.encoder.layer.1.attention.self.key.weight');
    same('bert.encoder.layer.1.output.dense.bias', 'bert.encoder.layer.3.output.dense.bias');
    same('bert.embeddings.word_embeddings.weight', 'bert.embeddings.word_embeddings.weight');
    same('classifier.weight', 'classifier.weight');
    expect(() => teacher.studentFromLayers(3)).toThrow(/divide/);
    teacher.dispose();
    student.dispose();
  });

  it('learns to rank with the fused objective and hidden-state distillation', () => {
    // 4 queries x 2 candidates; the first candidate (token 7 at position 5) is the relevant one.
    const ids: number[][] = [];
    for (let q = 0; q < 4; q++) {
      ids.push([2, 10 + q, 3, 4, 5, 7, 3, 0]);
      ids.push([2, 10 + q, 3, 4, 5, 8, 3, 0]);
    }
    const types = ids.map(() => [0, 0, 0, 1, 1, 1, 1, 0]);
    const mask = ids.map(() => [1, 1, 1, 1, 1, 1, 1, 0]);
    const x = batch(ids, types, mask);
    const labels = tf.tensor2d([
      [1, 0],
      [1, 0],
      [1, 0],
      [1, 0],
    ]);
    const teacherScores = tf.tensor2d([
      [3, -3],
      [3, -3],
      [3, -3],
      [3, -3],
    ]);
    const student = new CrossEncoder(tiny, 5);
    const teacherHidden = tf.zeros([8, 8, 16]);
    const opt = tf.train.adam(1e-2);
    const step = () =>
      opt.minimize(() => {
        const out = student.forward(x, { hidden: true });
        const s = tf.reshape(out.scores, [4, 2]);
        const ranking = losses.rankingObjective(s, teacherScores, labels, {
          weights: { pairwiseRankNet: 1, distillKL: 1 },
          temperature: 2,
        });
        return tf.add(ranking, tf.mul(losses.hiddenMSE(out.hidden![1], teacherHidden), 1e-3)) as tf.Scalar;
      }, true) as tf.Scalar;
    const first = step().arraySync();
    let last = first;
    for (let i = 0; i < 30; i++) last = step().arraySync();
    expect(last).toBeLessThan(first * 0.5);
    const s = (tf.reshape(student.forward(x).scores, [4, 2]) as tf.Tensor2D).arraySync();
    for (const [pos, neg] of s) expect(pos).toBeGreaterThan(neg);
    student.dispose();
  });
});

describe('CrossEncoder with termMatch', () => {
  const ids = [[2, 5, 6, 3, 5, 8, 3, 0]];
  const types = [[0, 0, 0, 0, 1, 1, 1, 0]];
  const mask = [[1, 1, 1, 1, 1, 1, 1, 0]];
  const match = (m: number[][]) => ({ ...batch(ids, types, mask), termMatchIds: tf.tensor2d(m, undefined, 'int32') });

  it('has the match table only when asked for, and then needs and uses the match ids', () => {
    const off = new CrossEncoder(tiny, 1);
    const on = new CrossEncoder({ ...tiny, termMatch: true }, 1);
    expect(off.params.has('bert.embeddings.match_embeddings.weight')).toBe(false);
    expect(on.params.get('bert.embeddings.match_embeddings.weight')!.shape).toEqual([2, 16]);
    expect(on.parameterCount()).toBe(off.parameterCount() + 2 * 16);
    // without termMatch the ids are ignored
    const a = off.forward(match([[0, 0, 0, 0, 1, 0, 0, 0]])).scores.arraySync();
    expect(off.forward(match([[0, 0, 0, 0, 0, 0, 0, 0]])).scores.arraySync()).toEqual(a);
    // with it they change the score, and a missing or misshapen input is a clear error
    const b = on.forward(match([[0, 0, 0, 0, 1, 0, 0, 0]])).scores.arraySync();
    expect(Math.abs(on.forward(match([[0, 0, 0, 0, 0, 0, 0, 0]])).scores.arraySync()[0] - b[0])).toBeGreaterThan(1e-7);
    expect(() => on.forward(batch(ids, types, mask))).toThrow(/termMatchIds is required/);
    expect(() =>
      on.forward({ ...batch(ids, types, mask), termMatchIds: tf.zeros([1, 7], 'int32') as tf.Tensor2D }),
    ).toThrow(/termMatchIds has shape/);
    // the table gets a gradient
    const g = tf.variableGrads(
      () => tf.sum(on.forward(match([[0, 0, 0, 0, 1, 0, 0, 0]])).scores) as tf.Scalar,
      [on.params.get('bert.embeddings.match_embeddings.weight')!],
    );
    expect(Object.values(g.grads)[0].abs().sum().arraySync()).toBeGreaterThan(0);
    tf.dispose([g.value, ...Object.values(g.grads)]);
    // a student from its layers keeps the option and copies the table
    const student = on.studentFromLayers(2);
    expect(student.config.termMatch).toBe(true);
    expect(student.params.get('bert.embeddings.match_embeddings.weight')!.arraySync()).toEqual(
      on.params.get('bert.embeddings.match_embeddings.weight')!.arraySync(),
    );
    [off, on, student].forEach((m) => m.dispose());
  });

  it('termMatchLevels: a table row per rarity level; a binary table clamps levels to 1', () => {
    const binary = new CrossEncoder({ ...tiny, termMatch: true }, 5);
    const graded = new CrossEncoder({ ...tiny, termMatch: true, termMatchLevels: 4 }, 5);
    expect(graded.params.get('bert.embeddings.match_embeddings.weight')!.shape).toEqual([5, 16]);
    // the binary model reads level 3 as a match (row 1)
    expect(binary.forward(match([[0, 0, 0, 0, 3, 0, 1, 0]])).scores.arraySync()).toEqual(
      binary.forward(match([[0, 0, 0, 0, 1, 0, 1, 0]])).scores.arraySync(),
    );
    // the graded one tells the levels apart, and levels past its table read as its last row
    const l3 = graded.forward(match([[0, 0, 0, 0, 3, 0, 1, 0]])).scores.arraySync()[0];
    expect(Math.abs(l3 - graded.forward(match([[0, 0, 0, 0, 1, 0, 1, 0]])).scores.arraySync()[0])).toBeGreaterThan(
      1e-7,
    );
    expect(graded.forward(match([[0, 0, 0, 0, 9, 0, 1, 0]])).scores.arraySync()).toEqual(
      graded.forward(match([[0, 0, 0, 0, 4, 0, 1, 0]])).scores.arraySync(),
    );
    expect(graded.studentFromLayers(2).config.termMatchLevels).toBe(4);
    expect(() => new CrossEncoder({ ...tiny, termMatch: true, termMatchLevels: 0 })).toThrow(
      /termMatchLevels must be an integer >= 1, got 0/,
    );
    [binary, graded].forEach((m) => m.dispose());
  });

  it('saves and loads with the option and the table (a model without it still loads as before)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-termmatch-'));
    try {
      const on = new CrossEncoder({ ...tiny, termMatch: true }, 3);
      await saveCrossEncoder(on, path.join(dir, 'on'));
      const back = loadCrossEncoder(path.join(dir, 'on'));
      expect(back.config.termMatch).toBe(true);
      const inp = match([[0, 0, 0, 0, 1, 0, 0, 0]]);
      expect(back.forward(inp).scores.arraySync()).toEqual(on.forward(inp).scores.arraySync());
      const off = new CrossEncoder(tiny, 3);
      await saveCrossEncoder(off, path.join(dir, 'off'));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'off', 'model.json'), 'utf8')).config.termMatch).toBeUndefined();
      const offBack = loadCrossEncoder(path.join(dir, 'off'));
      expect(offBack.params.has('bert.embeddings.match_embeddings.weight')).toBe(false);
      [on, back, off, offBack].forEach((m) => m.dispose());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
