// Hugging Face export (src/models/hf_export.ts, `fused-distill export`): the files and tensor names
// transformers' BertForSequenceClassification expects, config.json's fields, the dtypes, refusals, a
// round trip through importSafetensors (bit for bit in F32), the directory's atomicity, and an
// independent float64 PyTorch reference (tests/reference/bert_reference.py) when torch is installed.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { run } from '../src/cli';
import { BertTokenizer } from '../src/data/tokenizer';
import {
  CrossEncoder,
  CrossEncoderConfig,
  importSafetensors,
  loadHuggingFace,
  readSafetensors,
  saveHuggingFace,
} from '../src/models';
import { saveCrossEncoder } from '../src/models/checkpoint';
import {
  bertBaseUncasedTokenizerFiles,
  encodeSafetensors,
  floatToBfloat16,
  floatToHalf,
  type HuggingFaceTokenizerFiles,
} from '../src/models/hf_export';
import { HAS_TORCH, TORCH_PYTHON } from './helpers/hub_files';

const tiny: CrossEncoderConfig = {
  vocabSize: 50,
  hidden: 16,
  layers: 2,
  heads: 2,
  intermediate: 32,
  maxPosition: 16,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.2, // larger than BERT's 0.02, so the scores differ clearly between inputs
};

/** A 50-token vocabulary for the tiny models: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, w5.. */
const tinyTokenizer: HuggingFaceTokenizerFiles = {
  files: () => ({
    'vocab.txt': `${['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...Array.from({ length: 45 }, (_, i) => `w${i + 5}`)].join('\n')}\n`,
    'tokenizer_config.json': '{"tokenizer_class": "BertTokenizer", "do_lower_case": true}\n',
  }),
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-hf-export-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Padded query-passage pairs: [CLS] q [SEP] p [SEP] [PAD]... */
const pairs = {
  input_ids: [
    [2, 7, 8, 3, 20, 21, 22, 3, 0, 0, 0, 0],
    [2, 9, 3, 30, 31, 32, 33, 34, 35, 36, 3, 0],
    [2, 7, 8, 3, 40, 3, 0, 0, 0, 0, 0, 0],
  ],
  token_type_ids: [
    [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
  ],
  attention_mask: [
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
  ],
};

function scores(model: CrossEncoder, batch = pairs): Float32Array {
  const inputs = {
    inputIds: tf.tensor2d(batch.input_ids, undefined, 'int32'),
    tokenTypeIds: tf.tensor2d(batch.token_type_ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(batch.attention_mask, undefined, 'int32'),
  };
  const out = model.forward(inputs);
  const values = out.scores.dataSync() as Float32Array;
  tf.dispose([out.scores, inputs.inputIds, inputs.tokenTypeIds, inputs.attentionMask]);
  return values;
}

/** BertForSequenceClassification's state_dict keys, written out here from transformers' module tree. */
function transformersNames(layers: number): string[] {
  const names = ['word_embeddings', 'position_embeddings', 'token_type_embeddings'].map(
    (e) => `bert.embeddings.${e}.weight`,
  );
  names.push('bert.embeddings.LayerNorm.weight', 'bert.embeddings.LayerNorm.bias');
  for (let l = 0; l < layers; l++)
    for (const m of [
      'attention.self.query',
      'attention.self.key',
      'attention.self.value',
      'attention.output.dense',
      'attention.output.LayerNorm',
      'intermediate.dense',
      'output.dense',
      'output.LayerNorm',
    ])
      names.push(`bert.encoder.layer.${l}.${m}.weight`, `bert.encoder.layer.${l}.${m}.bias`);
  names.push('bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias');
  return names;
}

function header(file: string): {
  length: number;
  json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
} {
  const buf = fs.readFileSync(file);
  const length = Number(buf.readBigUInt64LE(0));
  return { length, json: JSON.parse(buf.subarray(8, 8 + length).toString('utf8')) };
}

describe('saveHuggingFace', () => {
  const model = new CrossEncoder(tiny, 7);
  afterAll(() => model.dispose());
  const dir = path.join(tmp, 'tiny');
  beforeAll(async () => {
    await saveHuggingFace(model, dir, { tokenizer: tinyTokenizer });
  });

  it('writes config.json, model.safetensors and the tokenizer files, nothing else', () => {
    expect(fs.readdirSync(dir).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer_config.json',
      'vocab.txt',
    ]);
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('.'))).toEqual([]); // no temporary dirs left
  });

  it("names the tensors exactly as BertForSequenceClassification's state_dict, 8-byte aligned, no holes", () => {
    const { length, json } = header(path.join(dir, 'model.safetensors'));
    const { __metadata__: metadata, ...tensors } = json as Record<string, unknown>;
    expect(metadata).toEqual({ format: 'pt' });
    expect(Object.keys(tensors).sort()).toEqual(transformersNames(tiny.layers).sort()); // no position_ids buffer
    expect((8 + length) % 8).toBe(0);
    const ranges = Object.values(json)
      .filter((e) => e.data_offsets)
      .map((e) => e.data_offsets)
      .sort((a, b) => a[0] - b[0]);
    let end = 0;
    for (const [b, e] of ranges) {
      expect(b).toBe(end);
      end = e;
    }
    expect(8 + length + end).toBe(fs.statSync(path.join(dir, 'model.safetensors')).size);
    expect(json['classifier.weight']).toMatchObject({ dtype: 'F32', shape: [1, 16] });
    expect(json['bert.encoder.layer.1.intermediate.dense.weight'].shape).toEqual([32, 16]); // [out, in]
  });

  it("writes a BertConfig for a one-label reranker as sentence-transformers' CrossEncoder reads it", () => {
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['BertForSequenceClassification'],
      model_type: 'bert',
      vocab_size: 50,
      hidden_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      intermediate_size: 32,
      hidden_act: 'gelu',
      max_position_embeddings: 16,
      type_vocab_size: 2,
      layer_norm_eps: 1e-12,
      pad_token_id: 0,
      num_labels: 1,
      id2label: { '0': 'LABEL_0' },
      label2id: { LABEL_0: 0 },
      torch_dtype: 'float32',
      sentence_transformers: { activation_fn: 'torch.nn.modules.linear.Identity' },
    });
  });

  it('round-trips through importSafetensors with the same scores, bit for bit', () => {
    const { model: back, missing } = importSafetensors(path.join(dir, 'model.safetensors'), tiny, 99);
    try {
      expect(missing).toEqual([]);
      expect(Array.from(scores(back))).toEqual(Array.from(scores(model)));
      for (const [name, v] of model.params) expect(back.params.get(name)!.dataSync()).toEqual(v.dataSync());
    } finally {
      back.dispose();
    }
  });

  it('round-trips through loadHuggingFace (config.json, weights and tokenizer read back): the same scores, bit for bit', () => {
    const { model: back, report } = loadHuggingFace(dir);
    try {
      expect(report).toMatchObject({
        modelType: 'bert',
        architecture: 'BertForSequenceClassification',
        head: 'classifier',
        missing: [],
      });
      const { initStd: _initStd, ...sizes } = tiny; // the init scale is ours, not a transformers field
      expect(report.config).toMatchObject(sizes);
      for (const [name, v] of model.params) expect(back.params.get(name)!.dataSync()).toEqual(v.dataSync());
      expect(Array.from(scores(back))).toEqual(Array.from(scores(model)));
    } finally {
      back.dispose();
    }
  });

  it.each([
    ['F16', 'float16', 2e-3],
    ['BF16', 'bfloat16', 2e-2],
  ] as const)('writes %s weights whose scores stay within their rounding', async (dtype, torchDtype, tolerance) => {
    const out = path.join(tmp, `tiny-${dtype}`);
    await saveHuggingFace(model, out, { tokenizer: tinyTokenizer, dtype });
    const { json } = header(path.join(out, 'model.safetensors'));
    expect(json['classifier.weight'].dtype).toBe(dtype);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe(torchDtype);
    const f32 = fs.statSync(path.join(dir, 'model.safetensors')).size;
    expect(fs.statSync(path.join(out, 'model.safetensors')).size).toBeLessThan(f32 * 0.51 + 4096);
    const tensors = readSafetensors(path.join(out, 'model.safetensors'));
    const relative = dtype === 'F16' ? 2 ** -11 : 2 ** -8; // half an ulp
    for (const [name, v] of model.params) {
      const a = v.dataSync();
      const b = tensors[name].dataSync();
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(b[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * relative + 1e-7);
    }
    tf.dispose(Object.values(tensors));
    const { model: back } = importSafetensors(path.join(out, 'model.safetensors'), tiny);
    const [want, got] = [scores(model), scores(back)];
    back.dispose();
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(tolerance);
  });

  it('replaces a previous export whole, and leaves any other existing dir alone', async () => {
    const other = new CrossEncoder(tiny, 8);
    try {
      await saveHuggingFace(other, dir, { tokenizer: tinyTokenizer });
      const { model: back } = importSafetensors(path.join(dir, 'model.safetensors'), tiny);
      expect(Array.from(scores(back))).toEqual(Array.from(scores(other)));
      back.dispose();
      await saveHuggingFace(model, dir, { tokenizer: tinyTokenizer }); // as the other tests expect it
      const foreign = path.join(tmp, 'not-an-export');
      fs.mkdirSync(foreign);
      fs.writeFileSync(path.join(foreign, 'notes.txt'), 'mine');
      await expect(saveHuggingFace(model, foreign, { tokenizer: tinyTokenizer })).rejects.toThrow(
        /not an empty dir or a previous export/,
      );
      expect(fs.readdirSync(foreign)).toEqual(['notes.txt']);
    } finally {
      other.dispose();
    }
  });

  it('leaves no dir, partial or temporary, when writing fails', async () => {
    const failing: HuggingFaceTokenizerFiles = { files: () => ({ 'vocab.txt': 42 as unknown as string }) };
    const out = path.join(tmp, 'failed');
    await expect(saveHuggingFace(model, out, { tokenizer: failing })).rejects.toThrow();
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('.failed'))).toEqual([]);
  });

  it('refuses a term-match model, saying why', async () => {
    const tm = new CrossEncoder({ ...tiny, termMatch: true }, 1);
    const out = path.join(tmp, 'term-match');
    await expect(saveHuggingFace(tm, out, { tokenizer: tinyTokenizer })).rejects.toThrow(
      /term-match embedding \(termMatch\), an extra input that transformers' BertForSequenceClassification has no place for/,
    );
    tm.dispose();
    expect(fs.existsSync(out)).toBe(false);
  });

  it("refuses the default tokenizer for a vocabulary that is not bert-base-uncased's, and a tokenizer file over the model's", async () => {
    await expect(saveHuggingFace(model, path.join(tmp, 'no-tok'))).rejects.toThrow(
      /50 rows, bert-base-uncased's 30522; pass the tokenizer/,
    );
    const clash = { files: () => ({ 'config.json': '{}' }) };
    await expect(saveHuggingFace(model, path.join(tmp, 'clash'), { tokenizer: clash })).rejects.toThrow(
      /a file named 'config.json'/,
    );
    expect(fs.existsSync(path.join(tmp, 'clash'))).toBe(false);
  });
});

describe('bert-base-uncased tokenizer files', () => {
  it("writes bert-base-uncased's vocab.txt (30,522 lines, its ids), tokenizer_config.json and special_tokens_map.json", async () => {
    const model = new CrossEncoder(
      { ...tiny, vocabSize: 30522, hidden: 4, heads: 1, intermediate: 4, layers: 1, maxPosition: 512 },
      1,
    );
    const dir = path.join(tmp, 'uncased');
    await saveHuggingFace(model, dir);
    model.dispose();
    expect(fs.readdirSync(dir).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'special_tokens_map.json',
      'tokenizer_config.json',
      'vocab.txt',
    ]);
    const vocab = fs.readFileSync(path.join(dir, 'vocab.txt'), 'utf8').split('\n');
    expect(vocab.length).toBe(30523); // the last line ends with a newline
    expect([vocab[0], vocab[1], vocab[100], vocab[101], vocab[102], vocab[103], vocab[1996], vocab[2015]]).toEqual([
      '[PAD]',
      '[unused0]',
      '[UNK]',
      '[CLS]',
      '[SEP]',
      '[MASK]',
      'the',
      '##s',
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'))).toMatchObject({
      tokenizer_class: 'BertTokenizer',
      do_lower_case: true,
      model_max_length: 512,
    });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'special_tokens_map.json'), 'utf8'))).toEqual({
      unk_token: '[UNK]',
      sep_token: '[SEP]',
      pad_token: '[PAD]',
      cls_token: '[CLS]',
      mask_token: '[MASK]',
    });
    expect(Object.keys(bertBaseUncasedTokenizerFiles().files()).sort()).toEqual([
      'special_tokens_map.json',
      'tokenizer_config.json',
      'vocab.txt',
    ]);
  });
});

describe('safetensors writer', () => {
  it('rounds float32 to half and bfloat16 to nearest even', () => {
    expect([1, -2, 0.1, 65504, 1e-8, 2 ** -24, 2 ** -25 * 1.5, 0].map(floatToHalf)).toEqual([
      0x3c00, 0xc000, 0x2e66, 0x7bff, 0, 1, 1, 0,
    ]);
    expect(floatToHalf(2 ** -25)).toBe(0); // a tie rounds to even
    expect(floatToHalf(65520)).toBe(0x7c00); // overflows to Inf
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // a tie rounds to even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect([1, -2, 0.1, 3.140625].map(floatToBfloat16)).toEqual([0x3f80, 0xc000, 0x3dcd, 0x4049]);
    expect(floatToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // a tie rounds to even
  });

  it('refuses a value that does not fit the dtype', () => {
    expect(() => encodeSafetensors([{ name: 'w', shape: [1], values: new Float32Array([1e5]) }], 'F16')).toThrow(
      /w value 0 \(100000\) is not a finite F16/,
    );
  });
});

describe('fused-distill export', () => {
  it('writes a model dir as a Hugging Face dir with --dtype and --tokenizer', async () => {
    const model = new CrossEncoder(tiny, 7);
    const modelDir = path.join(tmp, 'cli-model');
    await saveCrossEncoder(model, modelDir);
    const out = path.join(tmp, 'cli-export');
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await run([
        'node',
        'fused-distill',
        '--backend',
        'cpu',
        'export',
        modelDir,
        out,
        '--dtype',
        'F16',
        '--tokenizer',
        path.join(tmp, 'tiny'),
      ]);
    } finally {
      write.mockRestore();
    }
    expect(code).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer_config.json',
      'vocab.txt',
    ]);
    expect(header(path.join(out, 'model.safetensors')).json['classifier.bias'].dtype).toBe('F16');
    model.dispose();
  });
});

// The independent reference: PyTorch in float64, run when /usr/bin/python3 has torch.
const TORCH = TORCH_PYTHON;
const hasTorch = HAS_TORCH;
const REFERENCE = path.join(__dirname, 'reference', 'bert_reference.py');

function reference(dir: string): number[] {
  const r = spawnSync(TORCH, [REFERENCE, dir], { input: JSON.stringify(pairs), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bert_reference.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout).scores;
}

describe('PyTorch float64 reference (tests/reference/bert_reference.py)', () => {
  const check = hasTorch ? it : it.skip;
  const why = hasTorch ? '' : ' [SKIPPED: torch is not installed for /usr/bin/python3]';
  check(`scores the exported F32 model as ours, within 1e-4, on padded pairs${why}`, async () => {
    const model = new CrossEncoder(tiny, 11);
    const dir = path.join(tmp, 'reference');
    await saveHuggingFace(model, dir, { tokenizer: tinyTokenizer });
    const ours = Array.from(scores(model));
    model.dispose();
    const theirs = reference(dir);
    expect(theirs).toHaveLength(ours.length);
    for (let i = 0; i < ours.length; i++) expect(Math.abs(theirs[i] - ours[i])).toBeLessThan(1e-4);
    // the scores differ between pairs, so a model that ignored its input would fail
    expect(Math.max(...ours) - Math.min(...ours)).toBeGreaterThan(1e-3);
  });
  check(`scores a BF16 export within BF16's rounding${why}`, async () => {
    const model = new CrossEncoder(tiny, 11);
    const dir = path.join(tmp, 'reference-bf16');
    await saveHuggingFace(model, dir, { tokenizer: tinyTokenizer, dtype: 'BF16' });
    const { model: back } = importSafetensors(path.join(dir, 'model.safetensors'), tiny);
    const ours = Array.from(scores(back)); // the BF16 weights, computed in float32
    back.dispose();
    model.dispose();
    const theirs = reference(dir);
    for (let i = 0; i < ours.length; i++) expect(Math.abs(theirs[i] - ours[i])).toBeLessThan(1e-4);
  });
});

// The Hugging Face libraries themselves, when FUSED_DISTILL_TRANSFORMERS_PYTHON names a python with
// torch, transformers and sentence-transformers (checked with transformers 5.18, sentence-transformers 6.0).
const HF_PYTHON = process.env.FUSED_DISTILL_TRANSFORMERS_PYTHON;

describe('transformers and sentence-transformers (tests/reference/transformers_check.py)', () => {
  const check = HF_PYTHON ? it : it.skip;
  const why = HF_PYTHON ? '' : ' [SKIPPED: set FUSED_DISTILL_TRANSFORMERS_PYTHON to a python with transformers]';
  check(`load the export with no missing or unexpected keys, tokenize as we do, and score as we do${why}`, async () => {
    const config = { ...tiny, vocabSize: 30522, hidden: 32, heads: 4, intermediate: 64, maxPosition: 64 };
    const model = new CrossEncoder(config, 3);
    const dir = path.join(tmp, 'transformers');
    await saveHuggingFace(model, dir);
    const texts = [
      ['what is a cat', 'A cat is a small domesticated carnivorous mammal.'],
      ['capital of France', 'Paris is the capital and largest city of France, with many museums and long avenues.'],
    ];
    const tokenizer = new BertTokenizer();
    const encoded = texts.map(([q, p]) => tokenizer.encodePair(q, p, 24)); // the second pair is truncated
    const ours = Array.from(
      scores(model, {
        input_ids: encoded.map((e) => Array.from(e.inputIds)),
        token_type_ids: encoded.map((e) => Array.from(e.tokenTypeIds)),
        attention_mask: encoded.map((e) => Array.from(e.attentionMask)),
      }),
    );
    model.dispose();
    const r = spawnSync(HF_PYTHON!, [path.join(__dirname, 'reference', 'transformers_check.py'), dir, '24'], {
      input: JSON.stringify(texts),
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`transformers_check.py failed: ${r.stderr}`);
    const theirs = JSON.parse(r.stdout);
    expect(theirs.loading_info).toEqual({ missing_keys: [], unexpected_keys: [], mismatched_keys: [], error_msgs: [] });
    expect(theirs.architecture).toBe('BertForSequenceClassification');
    expect(theirs.input_ids).toEqual(encoded.map((e) => Array.from(e.inputIds)));
    for (const key of ['transformers', 'cross_encoder'])
      for (let i = 0; i < ours.length; i++) expect(Math.abs(theirs[key][i] - ours[i])).toBeLessThan(1e-4);
  });
});
