// Masked-language-model pre-training (src/distill/pretrain.ts): config validation, BERT's masking
// (its statistics, never a special token, reproducible by (seed, step)), the MLM head's loss against
// a float64 reference and its gradients against the plain-tfjs composite (odd sizes, repeated
// positions), a run on the tiny collection whose loss goes down and that resumes to the same bits,
// and its model dir as a teacher run's init.checkpoint.
//
// Backend: TEST_BACKEND (wasm unless FUSED_DISTILL_TEST_BACKEND says otherwise), as tests/distill.test.ts.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import {
  AdamW,
  ConfigError,
  MLM_HEAD_PARAMS,
  MlmHead,
  PassageSampler,
  loadPretrainConfig,
  maskBatch,
  mlmTrained,
  parsePretrainConfig,
  parseTeacherConfig,
  pretrain,
  pretrainCorpus,
  trainTeacher,
  type MaskOptions,
  type ProgressEvent,
  type RunResult,
} from '../src/distill';
import { biasGeluReference } from '../src/nn/gelu';
import { layerNormReference } from '../src/nn/layer_norm';
import { CrossEncoder, loadCrossEncoder, readSafetensors } from '../src/models';
import { erf64, expectGradClose, expectLossClose, mulberry32 } from './helpers/reference64';
import { tinyCollection } from './helpers/tiny_collection';
import type { BertTokenizer } from '../src/data';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-pretrain-'));
const collDir = path.join(tmp, 'coll');
let tokenizer: BertTokenizer;

const sizes = {
  layers: 1,
  hidden: 16,
  heads: 2,
  intermediate: 32,
  maxPosition: 64,
  termMatch: true,
  termMatchLevels: 4,
};

beforeAll(async () => {
  ({ tokenizer } = await tinyCollection(collDir));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('config', () => {
  it("fills the defaults (the teacher's sizes, 64 sequences of 128 tokens a step, 15% predicted)", () => {
    const c = parsePretrainConfig({ output: 'o' });
    expect(c.model).toMatchObject({ layers: 4, hidden: 256, heads: 4, intermediate: 1024, vocabSize: 30522 });
    expect(c.data.maxLength).toBe(128);
    expect(c.train).toMatchObject({ batch: 64, microBatch: 64, steps: 2000 });
    expect(c.mlmProbability).toBe(0.15);
  });

  it('names every bad field', () => {
    const issues = (v: unknown) => {
      try {
        parsePretrainConfig(v, 'p.json');
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as ConfigError).message;
      }
      throw new Error('no error');
    };
    expect(issues({})).toMatch(/p\.json: invalid config:\n {2}output: Required/);
    expect(issues({ output: 'o', mlmProbability: 0 })).toMatch(/mlmProbability: Number must be greater than 0/);
    expect(issues({ output: 'o', mlmProbability: 1.5 })).toMatch(
      /mlmProbability: Number must be less than or equal to 1/,
    );
    expect(issues({ output: 'o', data: { maxLength: 2 } })).toMatch(
      /data\.maxLength: Number must be greater than or equal to 3/,
    );
    expect(issues({ output: 'o', data: { negatives: 3 } })).toMatch(/data\.negatives: unknown field/);
    expect(issues({ output: 'o', data: { texts: 'a.txt' } })).toMatch(/data\.texts: Expected array, received string/);
    expect(issues({ output: 'o', train: { batch: 0 } })).toMatch(/train\.batch: Number must be greater than 0/);
    expect(issues({ output: 'o', loss: { bce: 1 } })).toMatch(/loss: unknown field/);
  });

  it('reads a JSON file, with paths (data.texts included) relative to it', () => {
    const dir = path.join(tmp, 'cfg');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'p.json');
    fs.writeFileSync(file, JSON.stringify({ output: 'run', data: { collection: '../coll', texts: ['more.txt'] } }));
    const c = loadPretrainConfig(file);
    expect(c.output).toBe(path.join(dir, 'run'));
    expect(c.data.collection).toBe(collDir);
    expect(c.data.texts).toEqual([path.join(dir, 'more.txt')]);
  });
});

describe('command line', () => {
  it('`pretrain <config>`: a bad config exits 2 naming the field; a missing data.texts file too', async () => {
    const { run: cli } = await import('../src/cli');
    const file = path.join(tmp, 'bad.json');
    const err: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    try {
      fs.writeFileSync(file, JSON.stringify({ output: 'o', mlmProbability: -1 }));
      expect(await cli(['node', 'fused-distill', 'pretrain', file])).toBe(2);
      fs.writeFileSync(file, JSON.stringify({ output: 'o', data: { texts: ['missing.txt'] } }));
      expect(await cli(['node', 'fused-distill', 'pretrain', file])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(err.join('')).toMatch(/bad\.json: invalid config:\n {2}mlmProbability: Number must be greater than 0/);
    expect(err.join('')).toMatch(/bad\.json: data\.texts\.0: file not found: .*missing\.txt/);
  });
});

describe('data and masking', () => {
  const opts = (): MaskOptions => ({
    probability: 0.15,
    maskId: tokenizer.ids('[MASK]')[0],
    padId: tokenizer.padId,
    vocabSize: tokenizer.vocabSize,
    special: new Set([tokenizer.clsId, tokenizer.sepId, tokenizer.padId]),
  });

  it('tokenizes each passage once as [CLS] passage [SEP], cut to maxLength, plus data.texts lines', async () => {
    const texts = path.join(tmp, 'more.txt');
    fs.writeFileSync(texts, 'the first extra passage\n\n  \nanother one here\n');
    const plain = await pretrainCorpus({ data: { collection: collDir, maxLength: 20 } }, tokenizer);
    const more = await pretrainCorpus({ data: { collection: collDir, maxLength: 20, texts: [texts] } }, tokenizer);
    expect(plain.length).toBeGreaterThan(12); // 12 documents, each cut into passages
    expect(more).toHaveLength(plain.length + 2);
    for (const s of more) {
      expect(s.length).toBeLessThanOrEqual(20);
      expect(s[0]).toBe(tokenizer.clsId);
      expect(s[s.length - 1]).toBe(tokenizer.sepId);
    }
    expect(Array.from(more[plain.length])).toEqual([
      tokenizer.clsId,
      ...tokenizer.ids('the first extra passage'),
      tokenizer.sepId,
    ]);
    await expect(
      pretrainCorpus({ data: { collection: collDir, maxLength: 20, texts: [path.join(tmp, 'nope.txt')] } }, tokenizer),
    ).rejects.toThrow(/data\.texts: .*nope\.txt cannot be read/);
  });

  it('masks as BERT: 15% of the non-special tokens, 80% [MASK] / 10% random / 10% kept, never [CLS], [SEP] or padding', () => {
    const o = opts();
    const next = mulberry32(3);
    // Rows of different lengths: padding in the batch.
    const seqs = Array.from({ length: 64 }, (_, i) => {
      const n = 20 + (i % 37);
      return Int32Array.from([
        tokenizer.clsId,
        ...Array.from({ length: n }, () => 1000 + Math.floor(next() * 20000)),
        tokenizer.sepId,
      ]);
    });
    let tokens = 0;
    let chosen = 0;
    let masked = 0;
    let kept = 0;
    // Problems are collected and compared once (an expect per token would take seconds).
    const wrong: string[] = [];
    for (let step = 1; step <= 20; step++) {
      const b = maskBatch(seqs, o, 5, step);
      expect(b.length).toBe(Math.max(...seqs.map((s) => s.length)));
      expect(b.labels.length).toBe(b.positions.length);
      for (let i = 1; i < b.positions.length; i++)
        if (!(b.positions[i] > b.positions[i - 1])) wrong.push(`step ${step}: positions out of order at ${i}`);
      b.positions.forEach((at, k) => {
        const row = Math.floor(at / b.length);
        const col = at % b.length;
        const original = seqs[row][col];
        // never [CLS] (col 0), [SEP] (the row's last token) or padding
        if (col === 0 || col >= seqs[row].length - 1) wrong.push(`step ${step}: predicted ${row},${col}`);
        if (b.labels[k] !== original) wrong.push(`step ${step}: label ${k} is ${b.labels[k]}, not ${original}`);
        if (b.inputIds[at] === o.maskId) masked++;
        else if (b.inputIds[at] === original) kept++;
      });
      // Every position not predicted is its original token (or padding, with attention mask 0).
      const predicted = new Set(b.positions);
      seqs.forEach((s, r) => {
        for (let l = 0; l < b.length; l++) {
          const at = r * b.length + l;
          const real = l < s.length;
          if (b.attentionMask[at] !== (real ? 1 : 0)) wrong.push(`step ${step}: attention mask at ${r},${l}`);
          if (!predicted.has(at) && b.inputIds[at] !== (real ? s[l] : o.padId))
            wrong.push(`step ${step}: input at ${r},${l} changed`);
        }
      });
      tokens += seqs.reduce((n, s) => n + s.length - 2, 0);
      chosen += b.positions.length;
    }
    expect(wrong).toEqual([]);
    // ~47k tokens, ~7k chosen: binomial standard deviations are ~0.2% and ~0.4% here.
    expect(chosen / tokens).toBeCloseTo(0.15, 2);
    expect(Math.abs(masked / chosen - 0.8)).toBeLessThan(0.02);
    expect(Math.abs(kept / chosen - 0.1)).toBeLessThan(0.015);
    expect(Math.abs((chosen - masked - kept) / chosen - 0.1)).toBeLessThan(0.015);
  });

  it('gives the same masks for the same (seed, step), others for another step or seed', () => {
    const o = opts();
    const seqs = [
      Int32Array.from([
        tokenizer.clsId,
        ...tokenizer.ids('a rather short passage about the sea and ships'),
        tokenizer.sepId,
      ]),
    ];
    const a = maskBatch(seqs, { ...o, probability: 0.5 }, 9, 4);
    expect(maskBatch(seqs, { ...o, probability: 0.5 }, 9, 4)).toEqual(a);
    expect(maskBatch(seqs, { ...o, probability: 0.5 }, 9, 5)).not.toEqual(a);
    expect(maskBatch(seqs, { ...o, probability: 0.5 }, 10, 4)).not.toEqual(a);
    // A batch where no token was drawn still predicts one (its first non-special token).
    const none = maskBatch(seqs, { ...o, probability: 1e-9 }, 9, 4);
    expect(Array.from(none.positions)).toEqual([1]);
    expect(none.inputIds[1]).toBe(o.maskId);
    expect(() => maskBatch([Int32Array.from([tokenizer.clsId, tokenizer.sepId])], o, 1, 1)).toThrow(
      /no token to predict/,
    );
  });

  it('visits every passage once an epoch and continues identically from a saved state', () => {
    const s = new PassageSampler(10, 4, 3);
    const first = [...s.next(), ...s.next(), ...s.next()]; // 12 = an epoch and 2
    expect([...first.slice(0, 10)].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    const saved = s.state();
    const rest = [s.next(), s.next()];
    const t = new PassageSampler(10, 4, 99);
    t.restore(JSON.parse(JSON.stringify(saved)));
    expect([t.next(), t.next()]).toEqual(rest);
    expect(() => new PassageSampler(9, 4, 3).restore(saved)).toThrow(/another set of passages/);
  });
});

describe('MLM head', () => {
  // A model with a small odd vocabulary, its head's parameters set to random values (zero biases
  // and unit LayerNorm scales would hide mistakes).
  function setup(V: number, H: number, N: number, positions: number[], labels: number[], seed: number) {
    const model = new CrossEncoder(
      {
        vocabSize: V,
        hidden: H,
        layers: 1,
        heads: 1,
        intermediate: 4,
        maxPosition: 8,
        typeVocab: 2,
        layerNormEps: 1e-12,
        initStd: 0.5,
      },
      seed,
    );
    const head = new MlmHead(model, seed);
    const next = mulberry32(seed);
    const rand = (shape: number[], scale: number, offset = 0) =>
      tf.tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + scale * (2 * next() - 1)),
        shape,
      );
    for (const [name, v] of head.params) {
      const r = rand(v.shape, name.endsWith('LayerNorm.weight') ? 0.5 : 1, name.endsWith('LayerNorm.weight') ? 1 : 0);
      v.assign(r);
      r.dispose();
    }
    const hidden = tf.variable(rand([N, H], 2), true) as tf.Variable<tf.Rank.R2>;
    return { model, head, hidden, pos: Int32Array.from(positions), lab: Int32Array.from(labels) };
  }

  // The loss in float64 from the float32 values: gather, dense + erf-GELU, LayerNorm, tied decoder + bias, mean CE.
  function loss64(s: ReturnType<typeof setup>): number {
    const get = (t: tf.Tensor) => Float64Array.from(t.dataSync());
    const [V, H] = s.model.params.get('bert.embeddings.word_embeddings.weight')!.shape;
    const E = get(s.model.params.get('bert.embeddings.word_embeddings.weight')!);
    const p = (n: string) => get(s.head.params.get(n)!);
    const W = p('cls.predictions.transform.dense.weight');
    const b = p('cls.predictions.transform.dense.bias');
    const g = p('cls.predictions.transform.LayerNorm.weight');
    const beta = p('cls.predictions.transform.LayerNorm.bias');
    const vb = p('cls.predictions.bias');
    const x = get(s.hidden);
    let total = 0;
    s.pos.forEach((at, m) => {
      const d = Array.from({ length: H }, (_, o) => {
        let acc = b[o];
        for (let i = 0; i < H; i++) acc += x[at * H + i] * W[o * H + i];
        return 0.5 * acc * (1 + erf64(acc / Math.SQRT2));
      });
      const mean = d.reduce((a, c) => a + c, 0) / H;
      const variance = d.reduce((a, c) => a + (c - mean) ** 2, 0) / H;
      const t = d.map((c, o) => ((c - mean) / Math.sqrt(variance + 1e-12)) * g[o] + beta[o]);
      const logits = Array.from({ length: V }, (_, v) => t.reduce((a, c, o) => a + c * E[v * H + o], vb[v]));
      const mx = Math.max(...logits);
      const lse = mx + Math.log(logits.reduce((a, l) => a + Math.exp(l - mx), 0));
      total += lse - logits[s.lab[m]];
    });
    return total / s.pos.length;
  }

  // The same head as plain tfjs composites (gather, GELU, LayerNorm, log-softmax).
  function composite(s: ReturnType<typeof setup>, hidden: tf.Tensor2D): tf.Scalar {
    const p = (n: string) => s.head.params.get(n)!;
    const E = s.model.params.get('bert.embeddings.word_embeddings.weight')!;
    // The gather as a one-hot product (an implementation of its own, differentiable on every backend).
    const h = tf.matMul(tf.cast(tf.oneHot(tf.tensor1d(s.pos, 'int32'), hidden.shape[0]), 'float32'), hidden);
    const d = biasGeluReference(
      tf.matMul(h, p('cls.predictions.transform.dense.weight'), false, true),
      p('cls.predictions.transform.dense.bias'),
    );
    const t = layerNormReference(
      d,
      p('cls.predictions.transform.LayerNorm.weight'),
      p('cls.predictions.transform.LayerNorm.bias'),
      1e-12,
    );
    const logp = tf.logSoftmax(tf.add(tf.matMul(t, E, false, true), p('cls.predictions.bias')));
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(s.lab, 'int32'), E.shape[0])), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  }

  const cases: Array<[string, number, number, number, number[], number[]]> = [
    ['odd sizes, a repeated position', 37, 6, 7, [0, 3, 3, 6, 5], [36, 0, 17, 5, 17]],
    ['one position, V 3', 3, 5, 2, [1], [2]],
    ['wider', 101, 12, 9, [8, 1, 2, 4, 0, 7, 3], [1, 100, 50, 50, 0, 99, 3]],
  ];
  it.each(cases)('%s: loss = float64 reference, gradients = the composite', (_name, V, H, N, positions, labels) => {
    const s = setup(V, H, N, positions, labels, V + H);
    try {
      const fused = tf.tidy(() => s.head.loss(s.hidden, s.pos, s.lab).dataSync()[0]);
      expectLossClose(fused, loss64(s), 2e-5, 'mlm');
      const vars = [s.hidden, ...s.head.params.values(), s.model.params.get('bert.embeddings.word_embeddings.weight')!];
      const got = tf.variableGrads(() => s.head.loss(s.hidden, s.pos, s.lab), vars);
      const want = tf.variableGrads(() => composite(s, s.hidden), vars);
      expectLossClose(got.value.dataSync()[0], want.value.dataSync()[0], 2e-5, 'composite');
      for (const v of vars) {
        expect(got.grads[v.name]).toBeDefined();
        expectGradClose(got.grads[v.name].dataSync(), want.grads[v.name].dataSync(), 2e-4, v.name);
      }
      tf.dispose([got.value, want.value, ...Object.values(got.grads), ...Object.values(want.grads)]);
    } finally {
      s.head.dispose();
      s.model.dispose();
      s.hidden.dispose();
    }
  });

  it('refuses a label outside the vocabulary, and a model whose embeddings are narrower than its encoder', () => {
    const s = setup(11, 4, 3, [0], [11], 1);
    try {
      expect(() => tf.tidy(() => s.head.loss(s.hidden, s.pos, s.lab))).toThrow(
        /label 11 is outside the vocabulary \[0, 11\)/,
      );
    } finally {
      s.head.dispose();
      s.model.dispose();
      s.hidden.dispose();
    }
    const electra = new CrossEncoder({
      ...sizes,
      vocabSize: 50,
      typeVocab: 2,
      layerNormEps: 1e-12,
      initStd: 0.02,
      embeddingSize: 8,
    });
    expect(() => new MlmHead(electra)).toThrow(/embeddingSize = hidden/);
    electra.dispose();
  });

  it('trains the encoder and embeddings; not the score head nor the term-match table', () => {
    expect(mlmTrained('bert.embeddings.word_embeddings.weight')).toBe(true);
    expect(mlmTrained('bert.encoder.layer.0.output.dense.weight')).toBe(true);
    expect(mlmTrained('bert.pooler.dense.weight')).toBe(false);
    expect(mlmTrained('classifier.weight')).toBe(false);
    expect(mlmTrained('classifier.bm25_weight')).toBe(false);
    expect(mlmTrained('bert.embeddings.match_embeddings.weight')).toBe(false);
  });
});

describe('run', () => {
  const config = (output: string, train: object = {}) =>
    parsePretrainConfig({
      output,
      model: sizes,
      data: { collection: collDir, maxLength: 48 },
      train: { batch: 6, microBatch: 3, steps: 12, lr: 3e-2, warmup: 2, seed: 3, checkpointEvery: 0, ...train },
    });
  let run: RunResult;
  const out = path.join(tmp, 'run');

  beforeAll(async () => {
    const before = tf.memory().numTensors;
    run = await pretrain(config(out));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lowers the MLM loss from about ln(vocabulary) on the tiny collection', () => {
    const losses = run.log.steps.map((s) => s.loss);
    expect(losses).toHaveLength(12);
    expect(losses[0]).toBeGreaterThan(Math.log(30522) - 0.5);
    expect(losses[0]).toBeLessThan(Math.log(30522) + 0.5);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-3))).toBeLessThan(mean(losses.slice(0, 3)) - 0.5);
    expect(run.log.steps[0].parts).toEqual({ mlm: expect.any(Number) });
    expect(run.log.steps[0].parts.mlm).toBeCloseTo(run.log.steps[0].loss, 5);
  });

  it('writes a plain cross-encoder of the configured sizes (untrained parameters at their seeded init) and the head beside it', () => {
    const model = loadCrossEncoder(run.modelDir);
    const fresh = new CrossEncoder(model.config, 3);
    try {
      expect(model.config).toMatchObject(sizes);
      const differs = (n: string) =>
        tf.tidy(() => tf.max(tf.abs(tf.sub(model.params.get(n)!, fresh.params.get(n)!))).dataSync()[0]);
      expect(differs('bert.embeddings.word_embeddings.weight')).toBeGreaterThan(0);
      expect(differs('bert.encoder.layer.0.output.dense.weight')).toBeGreaterThan(0);
      expect(differs('bert.pooler.dense.weight')).toBe(0);
      expect(differs('classifier.weight')).toBe(0);
      expect(differs('bert.embeddings.match_embeddings.weight')).toBe(0);
    } finally {
      model.dispose();
      fresh.dispose();
    }
    const head = readSafetensors(path.join(out, 'mlm_head.safetensors'));
    expect(Object.keys(head).sort()).toEqual([...MLM_HEAD_PARAMS].sort());
    expect(head['cls.predictions.bias'].shape).toEqual([30522]);
    tf.dispose(Object.values(head));
    expect(JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')).run).toBe('pretrain');
  });

  it('resumes after an interruption to the same weights and log, bit for bit', async () => {
    const again = path.join(tmp, 'resumed');
    const c = config(again, { checkpointEvery: 4 });
    // Stopped at step 6: the checkpoint of step 4 is the one resumed from.
    await expect(
      pretrain(c, {
        onProgress: (e) => {
          if (e.type === 'step' && e.step === 6) throw new Error('stop');
        },
      }),
    ).rejects.toThrow('stop');
    const r = await pretrain(c, { resume: true });
    const straight = await pretrain(config(path.join(tmp, 'straight'), { checkpointEvery: 4 }));
    expect(r.log.steps).toEqual(straight.log.steps);
    expect(
      fs
        .readFileSync(path.join(r.modelDir, 'weights.bin'))
        .equals(fs.readFileSync(path.join(straight.modelDir, 'weights.bin'))),
    ).toBe(true);
    expect(
      fs
        .readFileSync(path.join(again, 'mlm_head.safetensors'))
        .equals(fs.readFileSync(path.join(tmp, 'straight', 'mlm_head.safetensors'))),
    ).toBe(true);
  });

  it("a non-finite gradient stops the run naming the step, or with train.nonFinite 'skip' is logged and counted", async () => {
    // The optimizer reports an Inf gradient norm (no update) at step 2; the run's own step bookkeeping does the rest.
    const apply = AdamW.prototype.apply;
    let calls = 0;
    jest.spyOn(AdamW.prototype, 'apply').mockImplementation(function (this: AdamW, grads) {
      calls += 1;
      if (calls !== 2) return apply.call(this, grads);
      return { step: this.step, lr: 0, gradNorm: Infinity, applied: false };
    });
    try {
      await expect(pretrain(config(path.join(tmp, 'inf-stop'), { steps: 3 }))).rejects.toThrow(
        /inf-stop: step 2: gradient norm Infinity; stopped \(train\.nonFinite 'skip' skips such steps\)/,
      );
      expect(fs.existsSync(path.join(tmp, 'inf-stop', 'result.json'))).toBe(false);
      calls = 0;
      const events: ProgressEvent[] = [];
      const r = await pretrain(config(path.join(tmp, 'inf-skip'), { steps: 3, nonFinite: 'skip' }), {
        onProgress: (e) => events.push(e),
      });
      expect(r.log.steps.map((x) => (x as { skipped?: boolean }).skipped ?? false)).toEqual([false, true, false]);
      expect(events.find((e) => e.type === 'done')).toMatchObject({ skippedSteps: 1 });
      expect(events.filter((e) => e.type === 'notice').map((e) => (e as { message: string }).message)).toContainEqual(
        expect.stringMatching(/inf-skip: step 2: gradient norm Infinity; step skipped \(1 so far\)$/),
      );
      expect(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([1, 2, 3]);
    } finally {
      jest.restoreAllMocks();
    }
  });

  it("refuses a model field the init.checkpoint's model contradicts, naming it (it was ignored)", () => {
    const config = (model: object) =>
      parseTeacherConfig({ output: path.join(tmp, 'conflict'), model, init: { checkpoint: run.modelDir } });
    expect(() => config({ ...sizes, bm25Score: true })).toThrow(
      `model.bm25Score: true here, but the init.checkpoint model (${run.modelDir}) has false: a checkpoint brings its own architecture; remove model.bm25Score or make it agree`,
    );
    expect(() => config({ ...sizes, hidden: 32, termMatchLevels: 2 })).toThrow(
      /model\.hidden: 32 here, .* has 16: .*\n {2}model\.termMatchLevels: 2 here, .* has 4:/,
    );
    // The same fields, or none (the checkpoint's own architecture), or a field set off as the checkpoint has it.
    expect(() => config(sizes)).not.toThrow();
    expect(() => config({})).not.toThrow();
    expect(() => config({ bm25Text: false })).not.toThrow();
  });

  it('initialises a teacher run (init.checkpoint) that trains', async () => {
    const teacher = await trainTeacher(
      parseTeacherConfig({
        output: path.join(tmp, 'teacher'),
        model: sizes,
        init: { checkpoint: run.modelDir },
        data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 },
        train: { batch: 2, steps: 4, lr: 1e-4, seed: 1, evalEvery: 0, checkpointEvery: 0 },
        loss: { ranknet: 1 },
      }),
    );
    expect(teacher.log.steps).toHaveLength(4);
    for (const s of teacher.log.steps) expect(Number.isFinite(s.loss)).toBe(true);
    // It started from the pre-trained weights: 4 steps at lr 1e-4 move a weight by at most ~4e-4.
    const pre = loadCrossEncoder(run.modelDir);
    const tuned = loadCrossEncoder(teacher.modelDir);
    const fresh = new CrossEncoder(pre.config, 1);
    try {
      const gap = (a: CrossEncoder, b: CrossEncoder) =>
        tf.tidy(() => {
          const n = 'bert.encoder.layer.0.attention.self.query.weight';
          return tf.max(tf.abs(tf.sub(a.params.get(n)!, b.params.get(n)!))).dataSync()[0];
        });
      expect(gap(pre, tuned)).toBeLessThan(1e-3);
      expect(gap(fresh, tuned)).toBeGreaterThan(5e-3);
    } finally {
      pre.dispose();
      tuned.dispose();
      fresh.dispose();
    }
  });
});
