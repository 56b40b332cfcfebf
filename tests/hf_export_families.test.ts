// Export of ELECTRA- and XLM-RoBERTa/RoBERTa-shaped models (src/models/hf_export.ts): hub dirs built
// here as the hub lays them out (random weights, the int64 position_ids buffer, the family's
// tokenizer files) are loaded, exported again with saveHuggingFace, and checked: config.json's
// model_type / architectures and the fields transformers reads, tensor names as transformers' state
// dict (written out here from its module tree), the tokenizer copied from the source dir, a round
// trip through loadHuggingFace with the same scores bit for bit, F16/BF16 within their rounding,
// refusals naming the fields, and the scores of the independent float64 PyTorch references
// (tests/reference/electra_reference.py, xlmr_reference.py) on the exported dirs.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import type { PairTokenizer } from '../src/data';
import {
  CrossEncoder,
  huggingFaceSource,
  loadHuggingFace,
  readSafetensors,
  saveHuggingFace,
  type CrossEncoderConfig,
} from '../src/models';
import {
  HAS_TORCH,
  TORCH_PYTHON,
  f32Tensor,
  maxDiff,
  positionIdsTensor,
  safetensorsBytes,
  xlmrUnigramTokenizerJson,
  robertaBpeTokenizerJson,
  XLMR_PIECES,
  ROBERTA_BPE_VOCAB,
} from './helpers/hub_files';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-hf-export-families-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ELECTRA_VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'the',
  'a',
  'cafe',
  'hello',
  'world',
  'un',
  '##aff',
  '##able',
  'cat',
  '##s',
];
const base = { layers: 2, heads: 2, intermediate: 16, layerNormEps: 1e-12, initStd: 0.5 };
const FAMILIES: Record<string, { config: CrossEncoderConfig; modelType: string; architecture: string }> = {
  // ELECTRA-small's shape in miniature: embeddings narrower than the encoder, projected
  'electra narrow': {
    config: {
      ...base,
      vocabSize: ELECTRA_VOCAB.length,
      hidden: 8,
      embeddingSize: 4,
      maxPosition: 16,
      typeVocab: 2,
      head: 'electra',
    },
    modelType: 'electra',
    architecture: 'ElectraForSequenceClassification',
  },
  // ELECTRA-base's: embedding_size = hidden_size, no embeddings_project
  'electra square': {
    config: {
      ...base,
      vocabSize: ELECTRA_VOCAB.length,
      hidden: 8,
      embeddingSize: 8,
      maxPosition: 16,
      typeVocab: 2,
      head: 'electra',
    },
    modelType: 'electra',
    architecture: 'ElectraForSequenceClassification',
  },
  'xlm-roberta': {
    config: {
      ...base,
      vocabSize: XLMR_PIECES.length,
      hidden: 8,
      maxPosition: 20,
      typeVocab: 1,
      layerNormEps: 1e-5,
      head: 'roberta',
      positionPaddingIdx: 1,
    },
    modelType: 'xlm-roberta',
    architecture: 'XLMRobertaForSequenceClassification',
  },
  roberta: {
    config: {
      ...base,
      vocabSize: ROBERTA_BPE_VOCAB.length,
      hidden: 8,
      maxPosition: 20,
      typeVocab: 1,
      layerNormEps: 1e-5,
      head: 'roberta',
      positionPaddingIdx: 1,
    },
    modelType: 'roberta',
    architecture: 'RobertaForSequenceClassification',
  },
};
type Family = keyof typeof FAMILIES;

const prefixOf = (family: Family) => (family.startsWith('electra') ? 'electra' : 'roberta');

/** The tokenizer files of a family as the hub stores them. */
function tokenizerFiles(family: Family): Record<string, string> {
  if (family.startsWith('electra'))
    return {
      'vocab.txt': `${ELECTRA_VOCAB.join('\n')}\n`,
      'tokenizer_config.json': JSON.stringify({ do_lower_case: true, tokenizer_class: 'ElectraTokenizer' }),
    };
  const json = family === 'roberta' ? robertaBpeTokenizerJson() : xlmrUnigramTokenizerJson();
  return {
    'tokenizer.json': JSON.stringify(json),
    'special_tokens_map.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>' }),
  };
}

/** A hub dir of `family` written by hand: config.json as transformers writes it, tensors under its names. */
function hubDir(family: Family, seed: number): string {
  const { config: c, modelType, architecture } = FAMILIES[family];
  const dir = path.join(tmp, `hub-${family.replace(' ', '-')}-${seed}`);
  fs.mkdirSync(dir, { recursive: true });
  const roberta = modelType !== 'electra';
  const json = {
    architectures: [architecture],
    model_type: modelType,
    hidden_act: 'gelu',
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    layer_norm_eps: c.layerNormEps,
    max_position_embeddings: c.maxPosition,
    num_attention_heads: c.heads,
    num_hidden_layers: c.layers,
    type_vocab_size: c.typeVocab,
    vocab_size: c.vocabSize,
    num_labels: 1,
    ...(roberta ? { pad_token_id: 1, bos_token_id: 0, eos_token_id: 2 } : { embedding_size: c.embeddingSize }),
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
  const source = new CrossEncoder(c, seed);
  const prefix = prefixOf(family);
  const tensors = [positionIdsTensor(prefix, c.maxPosition)];
  for (const [name, v] of source.params)
    tensors.push(f32Tensor(name.replace(/^bert\./, `${prefix}.`), v.dataSync(), v.shape));
  source.dispose();
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  for (const [name, content] of Object.entries(tokenizerFiles(family))) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

/** The keys of the family's *ForSequenceClassification state_dict, written out from transformers' module tree. */
function transformersNames(family: Family): string[] {
  const { config } = FAMILIES[family];
  const p = prefixOf(family);
  const names = ['word_embeddings', 'position_embeddings', 'token_type_embeddings'].map(
    (e) => `${p}.embeddings.${e}.weight`,
  );
  names.push(`${p}.embeddings.LayerNorm.weight`, `${p}.embeddings.LayerNorm.bias`);
  if (family === 'electra narrow') names.push('electra.embeddings_project.weight', 'electra.embeddings_project.bias');
  for (let l = 0; l < config.layers; l++)
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
      names.push(`${p}.encoder.layer.${l}.${m}.weight`, `${p}.encoder.layer.${l}.${m}.bias`);
  names.push(
    'classifier.dense.weight',
    'classifier.dense.bias',
    'classifier.out_proj.weight',
    'classifier.out_proj.bias',
  );
  return names;
}

const TEXTS: Array<[string, string]> = [
  ['hello world', 'the cats are unaffable'],
  ['cafe', 'a cat'],
  ['the world', 'hello hello the world of cats and a cafe that is unaffable to all'],
];
const MAX = 16;

/** Padded pairs as the tokenizer builds them, in the references' JSON shape. */
function pairsOf(tokenizer: PairTokenizer) {
  const e = TEXTS.map(([q, p]) => tokenizer.encodePair(q, p, MAX));
  return {
    input_ids: e.map((x) => Array.from(x.inputIds)),
    token_type_ids: e.map((x) => Array.from(x.tokenTypeIds)),
    attention_mask: e.map((x) => Array.from(x.attentionMask)),
  };
}
type Pairs = ReturnType<typeof pairsOf>;

const scoresOf = (m: CrossEncoder, b: Pairs) =>
  tf.tidy(() =>
    Array.from(
      m
        .forward({
          inputIds: tf.tensor2d(b.input_ids, undefined, 'int32'),
          tokenTypeIds: tf.tensor2d(b.token_type_ids, undefined, 'int32'),
          attentionMask: tf.tensor2d(b.attention_mask, undefined, 'int32'),
        })
        .scores.dataSync(),
    ),
  );

function header(file: string): Record<string, { dtype: string; shape: number[] }> {
  const buf = fs.readFileSync(file);
  const json = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8'));
  delete json.__metadata__;
  return json;
}

describe.each(Object.keys(FAMILIES) as Family[])('saveHuggingFace: %s', (family) => {
  const { config, modelType, architecture } = FAMILIES[family];
  const source = hubDir(family, 5);
  const out = path.join(tmp, `export-${family.replace(' ', '-')}`);
  let loaded: ReturnType<typeof loadHuggingFace>;
  let pairs: Pairs;
  beforeAll(async () => {
    loaded = loadHuggingFace(source);
    pairs = pairsOf(loaded.tokenizer);
    // no tokenizer given: the model remembers the hub dir it came from
    expect(huggingFaceSource(loaded.model)).toBe(path.resolve(source));
    expect(await saveHuggingFace(loaded.model, out)).toEqual({ modelType, architecture });
  });
  afterAll(() => loaded.model.dispose());

  it("writes config.json with the family's model_type, architectures and sizes, and copies the tokenizer files", () => {
    const want = ['config.json', 'model.safetensors', ...Object.keys(tokenizerFiles(family))].sort();
    expect(fs.readdirSync(out).sort()).toEqual(want);
    for (const [name, content] of Object.entries(tokenizerFiles(family)))
      expect(fs.readFileSync(path.join(out, name), 'utf8')).toBe(content);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(json).toMatchObject({
      model_type: modelType,
      architectures: [architecture],
      hidden_size: config.hidden,
      num_hidden_layers: config.layers,
      num_attention_heads: config.heads,
      intermediate_size: config.intermediate,
      max_position_embeddings: config.maxPosition,
      type_vocab_size: config.typeVocab,
      vocab_size: config.vocabSize,
      layer_norm_eps: config.layerNormEps,
      hidden_act: 'gelu',
      position_embedding_type: 'absolute',
      num_labels: 1,
      torch_dtype: 'float32',
      sentence_transformers: { activation_fn: 'torch.nn.modules.linear.Identity' },
    });
    if (modelType === 'electra') expect(json).toMatchObject({ embedding_size: config.embeddingSize, pad_token_id: 0 });
    else expect(json).toMatchObject({ pad_token_id: 1, bos_token_id: 0, eos_token_id: 2, type_vocab_size: 1 });
  });

  it("names the tensors as transformers' state_dict, with the shapes of the model", () => {
    const h = header(path.join(out, 'model.safetensors'));
    expect(Object.keys(h).sort()).toEqual(transformersNames(family).sort());
    const prefix = prefixOf(family);
    for (const [name, v] of loaded.model.params)
      expect(h[name.replace(/^bert\./, `${prefix}.`)]).toEqual(
        expect.objectContaining({ dtype: 'F32', shape: v.shape }),
      );
  });

  it('round-trips through loadHuggingFace: the same weights and scores, bit for bit', () => {
    const back = loadHuggingFace(out);
    try {
      expect(back.report).toMatchObject({ modelType, architecture, head: 'classifier', missing: [] });
      expect(back.tokenizer.signature).toBe(loaded.tokenizer.signature);
      for (const [name, v] of loaded.model.params)
        expect(back.model.params.get(name)!.dataSync()).toEqual(v.dataSync());
      const [a, b] = [scoresOf(loaded.model, pairs), scoresOf(back.model, pairs)];
      expect(b).toEqual(a);
      expect(Math.max(...a) - Math.min(...a)).toBeGreaterThan(1e-3); // scores that depend on the input
    } finally {
      back.model.dispose();
    }
  });

  it.each([
    ['F16', 2 ** -11],
    ['BF16', 2 ** -8],
  ] as const)('writes %s weights within half an ulp', async (dtype, relative) => {
    const dir = `${out}-${dtype}`;
    await saveHuggingFace(loaded.model, dir, { dtype });
    const tensors = readSafetensors(path.join(dir, 'model.safetensors'));
    const prefix = prefixOf(family);
    for (const [name, v] of loaded.model.params) {
      const a = v.dataSync();
      const b = tensors[name.replace(/^bert\./, `${prefix}.`)].dataSync();
      for (let i = 0; i < a.length; i++)
        expect(Math.abs(b[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * relative + 1e-7);
    }
    tf.dispose(Object.values(tensors));
    const back = loadHuggingFace(dir);
    expect(back.report.architecture).toBe(architecture);
    back.model.dispose();
  });
});

describe('saveHuggingFace refusals', () => {
  it('an ELECTRA- or RoBERTa-shaped model without its tokenizer, saying what to pass', async () => {
    for (const family of ['electra narrow', 'xlm-roberta'] as Family[]) {
      const m = new CrossEncoder(FAMILIES[family].config, 1);
      const dir = path.join(tmp, `no-tokenizer-${family.replace(' ', '-')}`);
      await expect(saveHuggingFace(m, dir)).rejects.toThrow(
        /-shaped and has no default tokenizer \(bert-base-uncased's is BERT's\): pass the tokenizer it was trained with/,
      );
      m.dispose();
      expect(fs.existsSync(dir)).toBe(false);
    }
  });

  it("a tokenizer that is not the model's: too many ids, RoBERTa without tokenizer.json, another <pad>", async () => {
    const electra = new CrossEncoder({ ...FAMILIES['electra narrow'].config, vocabSize: 10 }, 1);
    await expect(
      saveHuggingFace(electra, path.join(tmp, 'r1'), { tokenizer: hubDir('electra narrow', 6) }),
    ).rejects.toThrow(/the tokenizer has 15 ids, the model's vocabulary 10 rows/);
    electra.dispose();
    const xlmr = new CrossEncoder(FAMILIES['xlm-roberta'].config, 1);
    await expect(
      saveHuggingFace(xlmr, path.join(tmp, 'r2'), { tokenizer: hubDir('electra narrow', 7) }),
    ).rejects.toThrow(/a RoBERTa \/ XLM-RoBERTa tokenizer is written and read back from tokenizer.json/);
    const shifted = new CrossEncoder({ ...FAMILIES['xlm-roberta'].config, positionPaddingIdx: 0 }, 1);
    await expect(
      saveHuggingFace(shifted, path.join(tmp, 'r3'), { tokenizer: hubDir('xlm-roberta', 8) }),
    ).rejects.toThrow(/the tokenizer's <pad> is id 1, the model counts positions from positionPaddingIdx 0/);
    shifted.dispose();
    xlmr.dispose();
    // a BERT-shaped student of an XLM-R teacher: trained on RoBERTa's pairs, which BERT's class does not build
    const bert = new CrossEncoder(
      { ...FAMILIES['xlm-roberta'].config, head: undefined, positionPaddingIdx: undefined },
      1,
    );
    await expect(saveHuggingFace(bert, path.join(tmp, 'r4'), { tokenizer: hubDir('xlm-roberta', 10) })).rejects.toThrow(
      /the model is BERT-shaped but its tokenizer.json pairs as RoBERTa/,
    );
    bert.dispose();
    for (const d of ['r1', 'r2', 'r3', 'r4']) expect(fs.existsSync(path.join(tmp, d))).toBe(false);
  });

  it('a shape no transformers class computes, naming the fields', async () => {
    const odd: CrossEncoderConfig[] = [
      { ...FAMILIES['xlm-roberta'].config, head: 'pooler' }, // RoBERTa's positions, BERT's head
      { ...FAMILIES['xlm-roberta'].config, positionPaddingIdx: undefined }, // RoBERTa's head, BERT's positions
      { ...FAMILIES['electra narrow'].config, head: 'pooler' }, // a projection under BERT's head
    ];
    for (const c of odd) {
      const m = new CrossEncoder(c, 1);
      await expect(saveHuggingFace(m, path.join(tmp, 'odd'), { tokenizer: hubDir('xlm-roberta', 9) })).rejects.toThrow(
        /no transformers class computes head/,
      );
      m.dispose();
    }
  });
});

// The independent references: PyTorch in float64, run when /usr/bin/python3 has torch.
const why = HAS_TORCH ? '' : ' [SKIPPED: torch is not installed for /usr/bin/python3]';
function reference(script: string, dir: string, pairs: Pairs): number[] {
  const r = spawnSync(TORCH_PYTHON, [path.join(__dirname, 'reference', script), dir], {
    input: JSON.stringify(pairs),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`);
  return JSON.parse(r.stdout).scores;
}

describe('PyTorch float64 references on the exported dirs', () => {
  (HAS_TORCH ? it.each : it.skip.each)(Object.keys(FAMILIES) as Family[])(
    `scores the exported F32 dir as ours, within 1e-4, on padded pairs: %s${why}`,
    async (family) => {
      const { model, tokenizer } = loadHuggingFace(hubDir(family, 21));
      const dir = path.join(tmp, `reference-${family.replace(' ', '-')}`);
      await saveHuggingFace(model, dir);
      const pairs = pairsOf(tokenizer);
      const ours = scoresOf(model, pairs);
      model.dispose();
      const script = family.startsWith('electra') ? 'electra_reference.py' : 'xlmr_reference.py';
      const theirs = reference(script, dir, pairs);
      expect(theirs).toHaveLength(ours.length);
      const diff = maxDiff(ours, theirs);
      console.log(`${script} on the ${family} export: max |ours - reference| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);
      expect(Math.max(...ours) - Math.min(...ours)).toBeGreaterThan(1e-3);
      expect(pairs.attention_mask.some((r) => r[r.length - 1] === 0)).toBe(true); // padded rows
    },
  );
});
