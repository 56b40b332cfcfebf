// ELECTRA directories as the hub stores them (ElectraForSequenceClassification: config.json,
// model.safetensors with the int64 electra.embeddings.position_ids buffer, vocab.txt), built here with
// random weights, embedding_size narrower than hidden_size and equal to it. Checked: the scores agree
// with an independent float64 PyTorch reference (tests/reference/electra_reference.py, when torch is
// installed), strict errors name the file and the field, the BERT cross-encoder is unchanged by the
// new options, our own checkpoint format round-trips an ELECTRA model, and an ELECTRA teacher distils
// into a BERT student (scores and intermediate features).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { bertBaseUncasedVocab } from '../src/data';
import { distill, parseStudentConfig } from '../src/distill';
import {
  CrossEncoder,
  ELECTRA_FAMILY,
  loadCrossEncoder,
  loadHuggingFace,
  saveCrossEncoder,
  saveHuggingFace,
  type CrossEncoderConfig,
} from '../src/models';
import { tinyCollection } from './helpers/tiny_collection';
import {
  HAS_TORCH,
  HubTensor,
  TORCH_PYTHON,
  f32Tensor,
  maxDiff,
  positionIdsTensor,
  safetensorsBytes,
} from './helpers/hub_files';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-electra-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => {
  const d = path.join(tmp, `m${dirCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
};

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'a', 'cafe', 'hello', 'world', 'un', '##aff'];

const bertTiny: CrossEncoderConfig = {
  vocabSize: VOCAB.length,
  hidden: 8,
  layers: 2,
  heads: 2,
  intermediate: 16,
  maxPosition: 16,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.5,
};
// ELECTRA-small's shape in miniature: embeddings narrower than the encoder.
const narrow: CrossEncoderConfig = { ...bertTiny, embeddingSize: 4, head: 'electra' };
// ELECTRA-base's: embedding_size = hidden_size, no embeddings_project.
const square: CrossEncoderConfig = { ...narrow, embeddingSize: 8 };

const hubConfig = (c: CrossEncoderConfig, extra: Record<string, unknown> = {}) => ({
  architectures: ['ElectraForSequenceClassification'],
  attention_probs_dropout_prob: 0.1,
  embedding_size: c.embeddingSize,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: c.hidden,
  id2label: { '0': 'LABEL_0' },
  initializer_range: 0.02,
  intermediate_size: c.intermediate,
  label2id: { LABEL_0: 0 },
  layer_norm_eps: c.layerNormEps,
  max_position_embeddings: c.maxPosition,
  model_type: 'electra',
  num_attention_heads: c.heads,
  num_hidden_layers: c.layers,
  pad_token_id: 0,
  position_embedding_type: 'absolute',
  summary_activation: 'gelu',
  summary_last_dropout: 0.1,
  summary_type: 'first',
  summary_use_proj: true,
  transformers_version: '4.40.0',
  type_vocab_size: c.typeVocab,
  vocab_size: c.vocabSize,
  ...extra,
});

type Tensor = HubTensor;

const f32 = f32Tensor;

const positionIds = (n: number) => positionIdsTensor('electra', n);

/** The model's tensors as ElectraForSequenceClassification names them (ElectraModel's without the head). */
function hubTensors(model: CrossEncoder, opts: { electraModel?: boolean } = {}): Tensor[] {
  const out: Tensor[] = [];
  for (const [name, v] of model.params) {
    if (opts.electraModel && name.startsWith('classifier.')) continue;
    const n = name.replace(/^bert\./, opts.electraModel ? '' : 'electra.');
    out.push(f32(n, v.dataSync(), v.shape));
  }
  return out;
}

function hubDir(
  model: CrossEncoder,
  opts: { extraConfig?: Record<string, unknown>; tensors?: Tensor[]; vocab?: string[] } = {},
): string {
  const dir = newDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hubConfig(model.config, opts.extraConfig)));
  const tensors = opts.tensors ?? [positionIds(model.config.maxPosition), ...hubTensors(model)];
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  fs.writeFileSync(path.join(dir, 'vocab.txt'), `${(opts.vocab ?? VOCAB).join('\n')}\n`);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: true }));
  return dir;
}

// Padded pairs of different lengths.
const pairs = {
  input_ids: [
    [2, 8, 9, 3, 5, 7, 3, 0],
    [2, 10, 3, 6, 11, 3, 0, 0],
    [2, 5, 6, 7, 3, 8, 9, 3],
  ],
  token_type_ids: [
    [0, 0, 0, 0, 1, 1, 1, 0],
    [0, 0, 0, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 1, 1, 1],
  ],
  attention_mask: [
    [1, 1, 1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1],
  ],
};
const inputs = () => ({
  inputIds: tf.tensor2d(pairs.input_ids, undefined, 'int32'),
  tokenTypeIds: tf.tensor2d(pairs.token_type_ids, undefined, 'int32'),
  attentionMask: tf.tensor2d(pairs.attention_mask, undefined, 'int32'),
});
const scores = (m: CrossEncoder) => tf.tidy(() => Array.from(m.forward(inputs()).scores.dataSync()));

// The independent reference: PyTorch in float64, run when /usr/bin/python3 has torch.
const TORCH = TORCH_PYTHON;
const hasTorch = HAS_TORCH;
const REFERENCE = path.join(__dirname, 'reference', 'electra_reference.py');
function reference(dir: string): number[] {
  const r = spawnSync(TORCH, [REFERENCE, dir], { input: JSON.stringify(pairs), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`electra_reference.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout).scores;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('CrossEncoder: ELECTRA options', () => {
  it("a BERT config builds BERT's parameters, in the same order with the same seeded values", () => {
    const a = new CrossEncoder(bertTiny, 3);
    const b = new CrossEncoder({ ...bertTiny, head: 'pooler', embeddingSize: bertTiny.hidden }, 3);
    expect([...a.params.keys()]).toEqual([...b.params.keys()]);
    expect([...a.params.keys()].slice(-4)).toEqual([
      'bert.pooler.dense.weight',
      'bert.pooler.dense.bias',
      'classifier.weight',
      'classifier.bias',
    ]);
    for (const [n, v] of a.params) expect(Array.from(v.dataSync())).toEqual(Array.from(b.params.get(n)!.dataSync()));
    expect(scores(a)).toEqual(scores(b));
    a.dispose();
    b.dispose();
  });

  it('embeddingSize adds embeddings_project; the electra head replaces pooler and classifier', () => {
    const m = new CrossEncoder(narrow, 1);
    const shapes = Object.fromEntries([...m.params].map(([n, v]) => [n, v.shape]));
    expect(shapes['bert.embeddings.word_embeddings.weight']).toEqual([VOCAB.length, 4]);
    expect(shapes['bert.embeddings.LayerNorm.weight']).toEqual([4]);
    expect(shapes['bert.embeddings_project.weight']).toEqual([8, 4]);
    expect(shapes['classifier.dense.weight']).toEqual([8, 8]);
    expect(shapes['classifier.out_proj.weight']).toEqual([1, 8]);
    expect(shapes['bert.pooler.dense.weight']).toBeUndefined();
    expect(shapes['classifier.weight']).toBeUndefined();
    // hidden states [0] are the projection's output, hidden wide; attention scores per layer
    const out = tf.tidy(() => {
      const o = m.forward(inputs(), { hidden: true, attention: true });
      return { h: o.hidden!.map((t) => t.shape), a: o.attention!.map((t) => t.shape) };
    });
    expect(out.h).toEqual([
      [3, 8, 8],
      [3, 8, 8],
      [3, 8, 8],
    ]);
    expect(out.a).toEqual([
      [3, 2, 8, 8],
      [3, 2, 8, 8],
    ]);
    const sq = new CrossEncoder(square, 1);
    expect(sq.params.has('bert.embeddings_project.weight')).toBe(false);
    sq.dispose();
    expect(() => new CrossEncoder({ ...narrow, embeddingSize: 0 })).toThrow(/embeddingSize must be a positive integer/);
    expect(() => new CrossEncoder({ ...narrow, head: 'tanh' as never })).toThrow(
      /head must be 'pooler', 'electra' or 'roberta'/,
    );
    m.dispose();
  });

  it("studentFromLayers keeps the teacher's embeddings, projection and head", () => {
    const t = new CrossEncoder({ ...narrow, layers: 4 }, 2);
    const s = t.studentFromLayers(2);
    expect(s.config).toEqual({ ...narrow, layers: 2 });
    for (const name of ['bert.embeddings_project.weight', 'classifier.dense.weight', 'classifier.out_proj.bias'])
      expect(Array.from(s.params.get(name)!.dataSync())).toEqual(Array.from(t.params.get(name)!.dataSync()));
    s.dispose();
    t.dispose();
  });

  it('saveCrossEncoder / loadCrossEncoder round-trip an ELECTRA model', async () => {
    const m = new CrossEncoder(narrow, 4);
    const dir = path.join(tmp, 'own');
    await saveCrossEncoder(m, dir);
    const back = loadCrossEncoder(dir);
    expect(back.config).toEqual(narrow);
    expect(scores(back)).toEqual(scores(m));
    back.dispose();
    m.dispose();
  });

  it('saveHuggingFace refuses an ELECTRA-shaped model without its tokenizer (tests/hf_export_families.test.ts exports it)', async () => {
    const m = new CrossEncoder(narrow, 4);
    await expect(saveHuggingFace(m, path.join(tmp, 'export'))).rejects.toThrow(
      /ELECTRA-shaped and has no default tokenizer/,
    );
    m.dispose();
  });
});

describe('loadHuggingFace: ELECTRA', () => {
  it.each([
    ['embedding_size < hidden_size', narrow],
    ['embedding_size = hidden_size', square],
  ])('reads ElectraForSequenceClassification (%s) with the int64 position_ids buffer', (_, config) => {
    const source = new CrossEncoder(config, 5);
    const dir = hubDir(source);
    const { model, tokenizer, report } = loadHuggingFace(dir);
    expect(report).toMatchObject({
      modelType: 'electra',
      architecture: 'ElectraForSequenceClassification',
      skipped: ['electra.embeddings.position_ids'],
      missing: [],
      head: 'classifier',
      tokenizer: 'vocab.txt + tokenizer_config.json',
    });
    expect(report.config).toEqual({ ...config, initStd: 0.02 }); // config.json's initializer_range
    expect(tokenizer.vocabSize).toBe(VOCAB.length);
    expect(scores(model)).toEqual(scores(source));
    model.dispose();
    source.dispose();
  });

  it('absent fields take ElectraConfig defaults; LayerNorm gamma/beta names are read', () => {
    const json = { model_type: 'electra' };
    const c = ELECTRA_FAMILY.config(json, 'config.json');
    expect(c).toMatchObject({ vocabSize: 30522, embeddingSize: 128, hidden: 256, layers: 12, heads: 4 });
    expect(c).toMatchObject({ intermediate: 1024, maxPosition: 512, typeVocab: 2, layerNormEps: 1e-12 });
    expect(ELECTRA_FAMILY.paramName('electra.embeddings.LayerNorm.gamma')).toBe('bert.embeddings.LayerNorm.weight');
    expect(ELECTRA_FAMILY.paramName('embeddings_project.bias')).toBe('bert.embeddings_project.bias');
    expect(ELECTRA_FAMILY.paramName('discriminator_predictions.dense.weight')).toBeNull();
  });

  it('a two-label head scores logit 1 - logit 0', () => {
    const source = new CrossEncoder(narrow, 6);
    const w = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1));
    const tensors = [positionIds(16), ...hubTensors(source)].map((t) =>
      t.name === 'classifier.out_proj.weight'
        ? f32(t.name, w, [2, 8])
        : t.name === 'classifier.out_proj.bias'
          ? f32(t.name, [0.25, -0.5], [2])
          : t,
    );
    const dir = hubDir(source, { tensors, extraConfig: { id2label: { 0: 'no', 1: 'yes' }, label2id: undefined } });
    const { model, report } = loadHuggingFace(dir);
    expect(report.head).toBe('two-label');
    expect(Array.from(model.params.get('classifier.out_proj.weight')!.dataSync())).toEqual(
      Array.from(w.slice(8).map((v, i) => v - w[i])),
    );
    expect(model.params.get('classifier.out_proj.bias')!.dataSync()[0]).toBeCloseTo(-0.75, 6);
    model.dispose();
    source.dispose();
  });

  it('strict: an ElectraModel (no head) is one error listing the head; strict false loads it', () => {
    const source = new CrossEncoder(narrow, 7);
    const dir = hubDir(source, {
      extraConfig: { architectures: ['ElectraModel'] },
      tensors: [positionIds(16), ...hubTensors(source, { electraModel: true })],
    });
    expect(() => loadHuggingFace(dir)).toThrow(
      /missing \(4\): classifier.dense.weight, classifier.dense.bias, classifier.out_proj.weight, classifier.out_proj.bias \(strict: false lets/,
    );
    const { model, report } = loadHuggingFace(dir, { strict: false });
    expect(report.head).toBe('missing');
    const ours = model.params.get('bert.encoder.layer.1.output.dense.weight')!.dataSync();
    expect(Array.from(ours)).toEqual(
      Array.from(source.params.get('bert.encoder.layer.1.output.dense.weight')!.dataSync()),
    );
    model.dispose();
    source.dispose();
  });

  describe('bad input: one error naming the file and the field', () => {
    let source: CrossEncoder;
    beforeAll(() => {
      source = new CrossEncoder(narrow, 8);
    });
    afterAll(() => source.dispose());
    const config = (dir: string) => path.join(dir, 'config.json');

    it('embedding_size disagreeing with the tensors names the field', () => {
      const dir = hubDir(source, { extraConfig: { embedding_size: 8 } });
      // without a projection in the config, the file's embeddings_project is unexpected
      expect(() => loadHuggingFace(dir)).toThrow(/unexpected \(2\): electra.embeddings_project.weight/);
      const dir2 = hubDir(source, { extraConfig: { embedding_size: 2 } });
      expect(() => loadHuggingFace(dir2)).toThrow(
        new RegExp(`word_embeddings.weight has shape \\[12,4\\], config.json's vocab_size implies \\[12,2\\]`),
      );
      const noProjection = [positionIds(16), ...hubTensors(source)].filter((t) => !t.name.includes('project'));
      const dir3 = hubDir(source, { tensors: noProjection });
      expect(() => loadHuggingFace(dir3)).toThrow(
        /missing \(2\): bert.embeddings_project.weight, bert.embeddings_project.bias/,
      );
    });

    it.each([
      [{ embedding_size: 0 }, /embedding_size is 0; expected a positive integer/],
      [{ hidden_act: 'relu' }, /hidden_act is "relu"; the cross-encoder computes 'gelu' \(erf\) only/],
      [{ position_embedding_type: 'relative_key' }, /position_embedding_type is "relative_key"/],
      [{ num_attention_heads: 3 }, /hidden_size 8 is not a multiple of num_attention_heads 3/],
      [{ architectures: ['ElectraForPreTraining'] }, /architectures \["ElectraForPreTraining"\] is not read/],
      [{ num_labels: 3 }, /num_labels is 3; a ranking score head has 1 label/],
    ])('config %j', (extra, message) => {
      const dir = hubDir(source, { extraConfig: extra });
      expect(() => loadHuggingFace(dir)).toThrow(new RegExp(`${config(dir)}: ${message.source}`));
    });

    it('a head of the wrong width names num_labels; a discriminator head is unexpected', () => {
      const tensors = [positionIds(16), ...hubTensors(source)].map((t) =>
        t.name === 'classifier.out_proj.bias' ? f32(t.name, [0, 0, 0], [3]) : t,
      );
      expect(() => loadHuggingFace(hubDir(source, { tensors }))).toThrow(
        /classifier.out_proj.bias has shape \[3\], config.json's num_labels implies \[1\]/,
      );
      const extra = [
        ...hubTensors(source),
        f32('discriminator_predictions.dense.weight', new Float32Array(64), [8, 8]),
      ];
      expect(() => loadHuggingFace(hubDir(source, { tensors: extra }))).toThrow(
        /unexpected \(1\): discriminator_predictions.dense.weight/,
      );
    });
  });
});

describe('PyTorch float64 reference (tests/reference/electra_reference.py)', () => {
  const check = hasTorch ? it : it.skip;
  const why = hasTorch ? '' : ' [SKIPPED: torch is not installed for /usr/bin/python3]';
  check.each([
    ['embedding_size < hidden_size', narrow, {}],
    ['embedding_size = hidden_size', square, {}],
    ['two labels', narrow, { num_labels: 2 }],
  ] as const)(`scores as loaded within 1e-4 on padded pairs: %s${why}`, (_, config, extra) => {
    const source = new CrossEncoder(config, 11);
    let tensors = [positionIds(16), ...hubTensors(source)];
    if ('num_labels' in extra)
      tensors = tensors.map((t) =>
        t.name === 'classifier.out_proj.weight'
          ? f32(
              t.name,
              Array.from({ length: 16 }, (_, i) => Math.cos(3 * i)),
              [2, 8],
            )
          : t.name === 'classifier.out_proj.bias'
            ? f32(t.name, [0.3, -0.2], [2])
            : t,
      );
    const dir = hubDir(source, { tensors, extraConfig: extra });
    source.dispose();
    const { model } = loadHuggingFace(dir);
    const ours = scores(model);
    model.dispose();
    const theirs = reference(dir);
    expect(theirs).toHaveLength(ours.length);
    const diff = maxDiff(ours, theirs);
    console.log(`electra reference (${_}): max |ours - reference| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    // the scores differ between pairs, so a model that ignored its input would fail
    expect(Math.max(...ours) - Math.min(...ours)).toBeGreaterThan(1e-3);
  });
  check(`the reference refuses a file without the head${why}`, () => {
    const source = new CrossEncoder(narrow, 12);
    const tensors = [positionIds(16), ...hubTensors(source)].filter((t) => !t.name.startsWith('classifier.dense'));
    const dir = hubDir(source, { tensors });
    source.dispose();
    expect(() => reference(dir)).toThrow(/missing \['classifier.dense.bias', 'classifier.dense.weight'\]/);
  });
});

describe('pipeline: an ELECTRA teacher distils into a BERT student', () => {
  it('scores and intermediate features (hidden states through a projection, attention)', async () => {
    const collDir = path.join(tmp, 'coll');
    await tinyCollection(collDir);
    const config: CrossEncoderConfig = { ...narrow, vocabSize: 30522, maxPosition: 64, initStd: 0.02 };
    const teacher = new CrossEncoder(config, 17);
    const tokens: string[] = [];
    for (const [t, i] of bertBaseUncasedVocab()) tokens[i] = t;
    const teacherDir = hubDir(teacher, { vocab: tokens, tensors: [positionIds(64), ...hubTensors(teacher)] });
    teacher.dispose();
    const result = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'student'),
        teacher: { huggingface: teacherDir, cacheDir: path.join(tmp, 'scores') },
        student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
        data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 },
        train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
        loss: { ranknet: 1, kl: 1, hiddenMSE: 1, attentionMSE: 1 },
      }),
    );
    expect(result.log.steps).toHaveLength(3);
    for (const s of result.log.steps) {
      expect(Number.isFinite(s.loss)).toBe(true);
      expect(Object.keys(s.parts)).toEqual(expect.arrayContaining(['hiddenMSE', 'attentionMSE']));
    }
  });
});
