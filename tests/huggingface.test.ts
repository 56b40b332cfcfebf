// Hugging Face model directories as the hub stores them, built here with random weights: config.json,
// model.safetensors (with the int64 position_ids buffer of checkpoints converted from
// pytorch_model.bin) or shards under model.safetensors.index.json, and tokenizer.json or vocab.txt +
// tokenizer_config.json. Checked: the scores equal the importSafetensors path's, strict errors list
// the missing and unexpected names, each bad input names its file and field, the two tokenizer
// sources agree on tricky text, and a distillation runs with such a dir as its teacher.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { parseModelSpec } from '../src/cli/common';
import { BertTokenizer, bertBaseUncasedVocab } from '../src/data';
import { distill, parseStudentConfig, scorePairs, trainingPairs, type RankingCollection } from '../src/distill';
import { hashConfig } from '../src/distill/run_dir';
import { initStudent, loadTeacher } from '../src/distill/setup';
import {
  CrossEncoder,
  PairEncoder,
  importSafetensors,
  loadHuggingFace,
  loadHuggingFaceTokenizer,
  type CrossEncoderConfig,
} from '../src/models';
import { tinyCollection } from './helpers/tiny_collection';
import { HubTensor, f32Tensor, positionIdsTensor, safetensorsBytes } from './helpers/hub_files';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-hf-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => {
  const d = path.join(tmp, `m${dirCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
};

// A small WordPiece vocabulary with cased and accented words, CJK, and continuation pieces.
const VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'the',
  'a',
  'cafe',
  'café',
  'Café',
  'The',
  'hello',
  'Hello',
  'world',
  'un',
  '##aff',
  '##able',
  '##s',
  '##e',
  'x',
  '##x',
  '中',
  '国',
  ',',
  '.',
  '!',
  "'",
  'naive',
  'naïve',
  '[',
  ']',
  'sep',
  'cls',
];

const tiny: CrossEncoderConfig = {
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

const hubConfig = (c: CrossEncoderConfig, extra: Record<string, unknown> = {}) => ({
  architectures: ['BertForSequenceClassification'],
  attention_probs_dropout_prob: 0.1,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: c.hidden,
  id2label: { '0': 'LABEL_0' },
  initializer_range: 0.02,
  intermediate_size: c.intermediate,
  label2id: { LABEL_0: 0 },
  layer_norm_eps: c.layerNormEps,
  max_position_embeddings: c.maxPosition,
  model_type: 'bert',
  num_attention_heads: c.heads,
  num_hidden_layers: c.layers,
  pad_token_id: 0,
  position_embedding_type: 'absolute',
  transformers_version: '4.40.0',
  type_vocab_size: c.typeVocab,
  vocab_size: c.vocabSize,
  ...extra,
});

type Tensor = HubTensor;

const f32 = (name: string, v: tf.Tensor): Tensor => f32Tensor(name, v.dataSync(), v.shape);

const positionIds = (n: number) => positionIdsTensor('bert', n);

/** The model's tensors as a hub file names them: BertForSequenceClassification, or BertModel's names without the head. */
function hubTensors(model: CrossEncoder, opts: { bertModel?: boolean; gammaBeta?: boolean } = {}): Tensor[] {
  const out: Tensor[] = [];
  for (const [name, v] of model.params) {
    if (opts.bertModel && name.startsWith('classifier')) continue;
    let n = opts.bertModel ? name.replace(/^bert\./, '') : name;
    if (opts.gammaBeta)
      n = n.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
    out.push(f32(n, v));
  }
  return out;
}

function writeVocab(dir: string, vocab: string[], tokenizerConfig?: object): void {
  fs.writeFileSync(path.join(dir, 'vocab.txt'), `${vocab.join('\n')}\n`);
  if (tokenizerConfig) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
}

/** tokenizer.json as transformers' BertTokenizerFast saves it. */
function tokenizerJson(vocab: string[], lowercase: boolean): object {
  const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content) => ({
      id: vocab.indexOf(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab.indexOf('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab.indexOf('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
}

/** A hub dir of `model`: config.json, model.safetensors with position_ids, vocab.txt. */
function hubDir(model: CrossEncoder, opts: { extraConfig?: Record<string, unknown>; tensors?: Tensor[] } = {}): string {
  const dir = newDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hubConfig(model.config, opts.extraConfig)));
  const tensors = opts.tensors ?? [positionIds(model.config.maxPosition), ...hubTensors(model)];
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  writeVocab(dir, VOCAB, { do_lower_case: true });
  return dir;
}

const inputs = () => ({
  inputIds: tf.tensor2d(
    [
      [2, 11, 13, 3, 5, 7, 3, 0],
      [2, 21, 3, 8, 14, 15, 16, 3],
    ],
    undefined,
    'int32',
  ),
  tokenTypeIds: tf.tensor2d(
    [
      [0, 0, 0, 0, 1, 1, 1, 0],
      [0, 0, 0, 1, 1, 1, 1, 1],
    ],
    undefined,
    'int32',
  ),
  attentionMask: tf.tensor2d(
    [
      [1, 1, 1, 1, 1, 1, 1, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ],
    undefined,
    'int32',
  ),
});
const scores = (m: CrossEncoder) => tf.tidy(() => Array.from(m.forward(inputs()).scores.dataSync()));

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loadHuggingFace', () => {
  let source: CrossEncoder;
  beforeAll(() => {
    source = new CrossEncoder(tiny, 5);
  });
  afterAll(() => source.dispose());

  it('reads a BertForSequenceClassification dir with the int64 position_ids buffer: the importSafetensors scores', () => {
    const dir = hubDir(source);
    const before = tf.memory().numTensors;
    const { model, tokenizer, report } = loadHuggingFace(dir);
    expect(report).toMatchObject({
      modelType: 'bert',
      architecture: 'BertForSequenceClassification',
      config: { ...tiny, initStd: 0.02 },
      skipped: ['bert.embeddings.position_ids'],
      missing: [],
      head: 'classifier',
      tokenizer: 'vocab.txt + tokenizer_config.json',
    });
    // The same weights through the existing importer (which cannot read the int64 buffer).
    const plain = path.join(newDir(), 'model.safetensors');
    fs.writeFileSync(plain, safetensorsBytes(hubTensors(source)));
    const imported = importSafetensors(plain, tiny).model;
    expect(scores(model)).toEqual(scores(imported));
    expect(scores(model)).toEqual(scores(source));
    expect(tokenizer.ids('Hello the world')).toEqual([11, 5, 13]);
    model.dispose();
    imported.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("skips BertEmbeddings' buffers whatever their dtype, and reports them", () => {
    const tokenTypes = { ...f32('embeddings.token_type_ids', tf.zeros([1, tiny.maxPosition])) };
    const dir = hubDir(source, {
      extraConfig: { architectures: ['BertModel'] },
      tensors: [
        { ...positionIds(tiny.maxPosition), name: 'embeddings.position_ids' },
        tokenTypes,
        ...hubTensors(source, { bertModel: true }),
      ],
    });
    const { model, report } = loadHuggingFace(dir, { strict: false });
    expect(report.skipped).toEqual(['embeddings.position_ids', 'embeddings.token_type_ids']);
    expect(report.missing).toEqual(['classifier.weight', 'classifier.bias']);
    model.dispose();
  });

  it('reads sharded weights (model.safetensors.index.json), F16 and BF16 too', () => {
    const dir = newDir();
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hubConfig(tiny)));
    writeVocab(dir, VOCAB);
    const all = [positionIds(tiny.maxPosition), ...hubTensors(source)];
    const half = all.length >> 1;
    const shards = [all.slice(0, half), all.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ts, i) => {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      fs.writeFileSync(path.join(dir, name), safetensorsBytes(ts));
      for (const t of ts) weightMap[t.name] = name;
    });
    fs.writeFileSync(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const { model, report } = loadHuggingFace(dir);
    expect(report.weightFiles).toHaveLength(2);
    expect(report.tokenizer).toBe('vocab.txt');
    expect(scores(model)).toEqual(scores(source));
    model.dispose();

    // BF16 of a value with an exact BF16 form reads back exactly.
    const bf = newDir();
    fs.writeFileSync(path.join(bf, 'config.json'), JSON.stringify(hubConfig(tiny)));
    writeVocab(bf, VOCAB);
    const exact = hubTensors(source).map((t) => {
      const v = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.length / 4);
      const data = Buffer.alloc(v.length * 2);
      v.forEach((x, i) => data.writeUInt16LE(new Uint32Array(new Float32Array([x]).buffer)[0] >>> 16, 2 * i));
      return { ...t, dtype: 'BF16', data };
    });
    fs.writeFileSync(path.join(bf, 'model.safetensors'), safetensorsBytes(exact));
    const m = loadHuggingFace(bf).model;
    const w = m.params.get('bert.pooler.dense.weight')!.dataSync();
    const want = source.params.get('bert.pooler.dense.weight')!.dataSync();
    want.forEach((x, i) => expect(Math.abs(w[i] - x)).toBeLessThanOrEqual(Math.abs(x) / 128));
    m.dispose();
  });

  it('strict: a BertModel (no head, LayerNorm gamma/beta) is one error listing the missing; strict false loads it', () => {
    const dir = hubDir(source, {
      extraConfig: { architectures: ['BertModel'] },
      tensors: hubTensors(source, { bertModel: true, gammaBeta: true }),
    });
    expect(() => loadHuggingFace(dir)).toThrow(
      /missing \(2\): classifier\.weight, classifier\.bias \(strict: false lets a missing score head keep its seeded init\)/,
    );
    const { model, report } = loadHuggingFace(dir, { strict: false, seed: 3 });
    expect(report.head).toBe('missing');
    expect(report.missing).toEqual(['classifier.weight', 'classifier.bias']);
    expect(Array.from(model.params.get('bert.encoder.layer.1.output.LayerNorm.weight')!.dataSync())).toEqual(
      Array.from(source.params.get('bert.encoder.layer.1.output.LayerNorm.weight')!.dataSync()),
    );
    model.dispose();
  });

  it('lists every missing and unexpected name in one error, strict or not', () => {
    const tensors = hubTensors(source).filter((t) => !t.name.includes('layer.1.attention.self.key'));
    tensors.push(f32('cls.predictions.bias', tf.zeros([tiny.vocabSize])));
    const dir = hubDir(source, { tensors });
    for (const strict of [true, false]) {
      const before = tf.memory().numTensors;
      expect(() => loadHuggingFace(dir, { strict })).toThrow(
        new RegExp(
          `${dir}: the weights do not match BertForSequenceClassification of config.json; ` +
            'missing \\(2\\): bert.encoder.layer.1.attention.self.key.weight, bert.encoder.layer.1.attention.self.key.bias; ' +
            'unexpected \\(1\\): cls.predictions.bias',
        ),
      );
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('a two-label head scores logit 1 - logit 0', () => {
    const two = [...hubTensors(source).filter((t) => !t.name.startsWith('classifier'))];
    const w = tf.randomNormal([2, tiny.hidden], 0, 1, 'float32', 9);
    const b = tf.tensor1d([0.25, -0.5]);
    two.push(f32('classifier.weight', w), f32('classifier.bias', b));
    const dir = hubDir(source, { tensors: two, extraConfig: { id2label: { 0: 'no', 1: 'yes' }, label2id: undefined } });
    const { model, report } = loadHuggingFace(dir);
    expect(report.head).toBe('two-label');
    const want = new CrossEncoder(tiny, 5);
    want.params.get('classifier.weight')!.assign(tf.sub(tf.slice(w, [1, 0], [1, -1]), tf.slice(w, [0, 0], [1, -1])));
    want.params.get('classifier.bias')!.assign(tf.tensor1d([-0.75]));
    scores(model).forEach((s, i) => expect(s).toBeCloseTo(scores(want)[i], 5));
    tf.dispose([w, b]);
    model.dispose();
    want.dispose();
  });

  describe('bad input: one error naming the file and the field', () => {
    const cases: Array<[string, (dir: string) => void, (dir: string) => RegExp]> = [
      ['no config.json', (d) => fs.rmSync(path.join(d, 'config.json')), (d) => new RegExp(`${d}: no config.json`)],
      [
        'no weights',
        (d) => fs.rmSync(path.join(d, 'model.safetensors')),
        (d) => new RegExp(`${d}: no model.safetensors or model.safetensors.index.json`),
      ],
      [
        'an unknown model_type',
        (d) => patchConfig(d, { model_type: 'deberta-v2' }),
        (d) => new RegExp(`${d}/config.json: model_type "deberta-v2" is not read`),
      ],
      [
        'an unknown architecture',
        (d) => patchConfig(d, { architectures: ['BertForMaskedLM'] }),
        (d) => new RegExp(`${d}/config.json: architectures \\["BertForMaskedLM"\\] is not read`),
      ],
      [
        'another activation',
        (d) => patchConfig(d, { hidden_act: 'relu' }),
        (d) => new RegExp(`${d}/config.json: hidden_act is "relu"`),
      ],
      [
        'a missing size',
        (d) => patchConfig(d, { vocab_size: undefined }),
        (d) => new RegExp(`${d}/config.json: vocab_size is undefined; required`),
      ],
      [
        'a shape that disagrees with config.json',
        (d) => patchConfig(d, { intermediate_size: 32 }),
        (d) =>
          new RegExp(
            `${d}/model.safetensors: bert.encoder.layer.0.intermediate.dense.weight has shape \\[16,8\\], config.json's intermediate_size implies \\[32,8\\]`,
          ),
      ],
      [
        'a truncated safetensors file',
        (d) => {
          const f = path.join(d, 'model.safetensors');
          truncate(f, 8 + Number(fs.readFileSync(f).readBigUInt64LE(0)) + 10);
        },
        (d) => new RegExp(`${d}/model.safetensors: .*'s data_offsets end at byte \\d+, past the end of the file`),
      ],
      [
        'a header past the end',
        (d) => truncate(path.join(d, 'model.safetensors'), 50),
        (d) => new RegExp(`${d}/model.safetensors: header length \\d+ runs past the end of the file`),
      ],
      [
        'a NaN weight',
        (d) => {
          const f = path.join(d, 'model.safetensors');
          const buf = fs.readFileSync(f);
          buf.writeFloatLE(NaN, buf.length - 4);
          fs.writeFileSync(f, buf);
        },
        (d) => new RegExp(`${d}/model.safetensors: classifier.bias: value 0 is NaN`),
      ],
      [
        'a tokenizer without [SEP]',
        (d) =>
          writeVocab(
            d,
            VOCAB.map((t) => (t === '[SEP]' ? '[unused1]' : t)),
          ),
        (d) => new RegExp(`${d}/vocab.txt: lacks the special token \\[SEP\\]`),
      ],
      [
        'a tokenizer.json without [CLS]',
        (d) => {
          const json = tokenizerJson(
            VOCAB.map((t) => (t === '[CLS]' ? 'cls2' : t)),
            true,
          ) as Record<string, unknown>;
          json.added_tokens = (json.added_tokens as Array<{ id: number }>).filter((t) => t.id >= 0);
          json.post_processor = null;
          fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(json));
        },
        (d) => new RegExp(`${d}/tokenizer.json: model.vocab lacks the special token \\[CLS\\] \\(cls\\)`),
      ],
      [
        'no tokenizer',
        (d) => {
          fs.rmSync(path.join(d, 'vocab.txt'));
          fs.rmSync(path.join(d, 'tokenizer_config.json'));
        },
        (d) => new RegExp(`${d}: no tokenizer.json or vocab.txt`),
      ],
      [
        'a bad tokenizer_config field',
        (d) => fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: 'yes' })),
        (d) => new RegExp(`${d}/tokenizer_config.json: do_lower_case is "yes"`),
      ],
      [
        'a tokenizer larger than vocab_size',
        (d) => writeVocab(d, [...VOCAB, 'extra1', 'extra2']),
        (d) =>
          new RegExp(
            `${d}/config.json: vocab_size ${VOCAB.length} does not cover the tokenizer's ${VOCAB.length + 2} ids`,
          ),
      ],
    ];
    function patchConfig(dir: string, patch: Record<string, unknown>) {
      const f = path.join(dir, 'config.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), ...patch }));
    }
    function truncate(file: string, bytes: number) {
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, bytes));
    }
    it.each(cases)('%s', (_, spoil, message) => {
      const dir = hubDir(source);
      spoil(dir);
      const before = tf.memory().numTensors;
      expect(() => loadHuggingFace(dir)).toThrow(message(dir));
      expect(tf.memory().numTensors).toBe(before);
    });

    it('a shard missing from the index, or a tensor missing from its shard', () => {
      const dir = hubDir(source);
      fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'a.safetensors'));
      const names = [positionIds(tiny.maxPosition), ...hubTensors(source)].map((t) => t.name);
      const index = path.join(dir, 'model.safetensors.index.json');
      const weightMap = Object.fromEntries(names.map((n, i) => [n, i < 3 ? 'a.safetensors' : 'b.safetensors']));
      fs.writeFileSync(index, JSON.stringify({ weight_map: weightMap }));
      expect(() => loadHuggingFace(dir)).toThrow(
        new RegExp(`${index}: weight_map.${names[3].replace(/\./g, '\\.')}: shard b.safetensors is not in ${dir}`),
      );
      for (const n of names) weightMap[n] = 'a.safetensors';
      fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, extra: 'a.safetensors' } }));
      expect(() => loadHuggingFace(dir)).toThrow(
        new RegExp(`${index}: weight_map.extra: shard a.safetensors has no tensor extra`),
      );
    });
  });
});

describe('tokenizer: tokenizer.json and vocab.txt agree', () => {
  const tricky = [
    'Hello, the World!',
    'Café CAFÉ café naïve',
    '中国 the中国x',
    'the\u0000x\u0007 world\u200b hello\u00ad a\u200dthe', // control, zero-width and soft-hyphen characters
    'the 😀 world 👍🏽 x',
    `${'x'.repeat(150)} the ${'x'.repeat(100)} hello`, // words over max_input_chars_per_word are [UNK]
    'the [SEP] hello [CLS] world [MASK]', // special tokens inside text
    'unaffable unaffables thes',
    "don't\ttab\nnewline\r\n  spaces",
  ];
  const variants: Array<[string, object]> = [
    ['uncased', { do_lower_case: true }],
    ['cased', { do_lower_case: false }],
    ['cased, accents stripped', { do_lower_case: false, strip_accents: true }],
  ];
  it.each(variants)('%s', (_, config) => {
    const viaVocab = newDir();
    writeVocab(viaVocab, VOCAB, config);
    const viaJson = newDir();
    const lower = (config as { do_lower_case: boolean }).do_lower_case;
    const json = tokenizerJson(VOCAB, lower) as { normalizer: { strip_accents: boolean | null } };
    json.normalizer.strip_accents = (config as { strip_accents?: boolean }).strip_accents ?? null;
    fs.writeFileSync(path.join(viaJson, 'tokenizer.json'), JSON.stringify(json));
    const a = loadHuggingFaceTokenizer(viaVocab);
    const b = loadHuggingFaceTokenizer(viaJson);
    expect(a.source).toBe('vocab.txt + tokenizer_config.json');
    expect(b.source).toBe('tokenizer.json');
    expect(a.tokenizer.signature).toBe(b.tokenizer.signature);
    for (const text of tricky) {
      expect(b.tokenizer.tokens(text)).toEqual(a.tokenizer.tokens(text));
      expect(b.tokenizer.ids(text)).toEqual(a.tokenizer.ids(text));
    }
    for (const max of [3, 5, 8, 40])
      expect(b.tokenizer.encodePair(tricky[5], tricky[1], max)).toEqual(
        a.tokenizer.encodePair(tricky[5], tricky[1], max),
      );
  });

  it('normalises as BertTokenizer: lowercase strips accents, cased keeps them, CJK split, long words [UNK]', () => {
    const dir = (config: object) => {
      const d = newDir();
      writeVocab(d, VOCAB, config);
      return loadHuggingFaceTokenizer(d).tokenizer;
    };
    const uncased = dir({ do_lower_case: true });
    const cased = dir({ do_lower_case: false });
    expect(uncased.tokens('Café naïve The')).toEqual(['cafe', 'naive', 'the']);
    expect(cased.tokens('Café naïve The')).toEqual(['Café', 'naïve', 'The']);
    expect(cased.tokens('the中国x')).toEqual(['the', '中', '国', 'x']);
    expect(cased.tokens(`${'x'.repeat(101)} ${'x'.repeat(100)}`)).toEqual(['[UNK]', 'x', ...Array(99).fill('##x')]);
    expect(uncased.tokens('the [SEP] a')).toEqual(['the', '[SEP]', 'a']);
    // Pairs: [CLS] q [SEP] p [SEP], token types, longest-first truncation.
    const e = cased.encodePair('hello world', 'the the the the', 8);
    expect(Array.from(e.inputIds)).toEqual([2, 11, 13, 3, 5, 5, 5, 3]);
    expect(Array.from(e.tokenTypeIds)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect([e.queryTokens, e.passageTokens]).toEqual([2, 3]);
  });

  it("bert-base-uncased's vocab.txt gives the default tokenizer's ids and signature", () => {
    const d = newDir();
    const vocab = bertBaseUncasedVocab();
    const tokens: string[] = [];
    for (const [t, i] of vocab) tokens[i] = t;
    writeVocab(d, tokens, { do_lower_case: true });
    const { tokenizer } = loadHuggingFaceTokenizer(d);
    const base = new BertTokenizer();
    expect(tokenizer.signature).toBe(base.signature);
    expect(tokenizer.ids('Unaffable café, the [SEP] 中国')).toEqual(base.ids('Unaffable café, the [SEP] 中国'));
  });
});

describe('pipeline', () => {
  let coll: RankingCollection;
  let teacherDir: string;
  const collDir = path.join(tmp, 'coll');
  // A tiny teacher with bert-base-uncased's vocabulary, as a hub dir.
  beforeAll(async () => {
    ({ coll } = await tinyCollection(collDir));
    const config: CrossEncoderConfig = { ...tiny, vocabSize: 30522, maxPosition: 64, initStd: 0.02 };
    const teacher = new CrossEncoder(config, 17);
    teacherDir = newDir();
    fs.writeFileSync(path.join(teacherDir, 'config.json'), JSON.stringify(hubConfig(config)));
    fs.writeFileSync(
      path.join(teacherDir, 'model.safetensors'),
      safetensorsBytes([positionIds(64), ...hubTensors(teacher)]),
    );
    const tokens: string[] = [];
    for (const [t, i] of bertBaseUncasedVocab()) tokens[i] = t;
    writeVocab(teacherDir, tokens, { do_lower_case: true });
    teacher.dispose();
  });

  it('config: teacher.huggingface and student.init huggingface are optional; existing configs hash as before', () => {
    const plain = parseStudentConfig({ output: 'o', teacher: { checkpoint: 't' } }, 'x', '/base');
    expect(JSON.stringify(plain)).not.toMatch(/huggingface|strict/);
    // the hash this config had before these fields existed
    expect(hashConfig(plain)).toBe('34fbea1e0b2ba00e63cd1b2094bf4dc8ce3d2a742ee09e040ce5468988109d5d');
    const hf = parseStudentConfig(
      { output: 'o', teacher: { huggingface: 'hub' }, student: { init: 'huggingface', path: 'hub2', strict: false } },
      'x',
      '/base',
    );
    expect(hf.teacher.huggingface).toBe('/base/hub');
    expect(hf.student.path).toBe('/base/hub2');
    expect(() => parseStudentConfig({ output: 'o', teacher: {} })).toThrow(
      /teacher.checkpoint: give checkpoint or huggingface/,
    );
    expect(() => parseStudentConfig({ output: 'o', teacher: { checkpoint: 'a', huggingface: 'b' } })).toThrow(
      /give checkpoint or huggingface/,
    );
    expect(() =>
      parseStudentConfig({ output: 'o', teacher: { checkpoint: 'a' }, student: { init: 'huggingface' } }),
    ).toThrow(/student.path: path is required/);
  });

  it('a teacher without the score head loads only with teacher.strict false, with a notice', () => {
    const dir = newDir();
    for (const f of ['config.json', 'vocab.txt', 'tokenizer_config.json'])
      fs.copyFileSync(path.join(teacherDir, f), path.join(dir, f));
    const file = path.join(teacherDir, 'model.safetensors');
    const headerLength = Number(fs.readFileSync(file).readBigUInt64LE(0));
    const header = JSON.parse(
      fs
        .readFileSync(file)
        .subarray(8, 8 + headerLength)
        .toString('utf8'),
    );
    delete header['classifier.weight'];
    delete header['classifier.bias'];
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(
      path.join(dir, 'model.safetensors'),
      Buffer.concat([len, json, fs.readFileSync(file).subarray(8 + headerLength)]),
    );
    const config = (strict?: boolean) =>
      parseStudentConfig({ output: 'o', teacher: { huggingface: dir, ...(strict == null ? {} : { strict }) } });
    expect(() => loadTeacher(config())).toThrow(/missing \(2\): classifier.weight, classifier.bias/);
    const notices: string[] = [];
    const { model, tokenizer } = loadTeacher(config(false), (m) => notices.push(m));
    expect(notices).toEqual([
      `teacher.huggingface: ${dir} has no classifier.weight, classifier.bias; the teacher scores with a seeded random head`,
    ]);
    expect(tokenizer.vocabSize).toBe(30522);
    model.dispose();
  });

  it("a Hugging Face student must share the run's tokenizer", () => {
    const small = new CrossEncoder(tiny, 1);
    const dir = hubDir(small);
    small.dispose();
    const config = parseStudentConfig({
      output: 'o',
      teacher: { checkpoint: 't' },
      student: { init: 'huggingface', path: dir },
    });
    const before = tf.memory().numTensors;
    expect(() => initStudent(config, null as unknown as CrossEncoder)).toThrow(
      new RegExp(
        `student.path: ${dir}'s tokenizer \\(vocab.txt \\+ tokenizer_config.json\\) is not the run's \\(bert-base-uncased\\)`,
      ),
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('eval takes a Hugging Face dir as a model spec', () => {
    expect(parseModelSpec(`hub=${teacherDir}`)).toEqual({ name: 'hub', dir: teacherDir, kind: 'huggingface' });
  });

  it("distils from a Hugging Face teacher; its cached scores are the loaded model's", async () => {
    const out = path.join(tmp, 'student');
    const cacheDir = path.join(tmp, 'scores');
    const config = parseStudentConfig({
      output: out,
      teacher: { huggingface: teacherDir, cacheDir },
      student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
      data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 },
      train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
      loss: { ranknet: 1, kl: 1 },
    });
    const result = await distill(config);
    expect(result.log.steps).toHaveLength(3);
    const files = fs.readdirSync(cacheDir).filter((f) => f.startsWith('teacher-scores-'));
    expect(files).toHaveLength(1);
    const lines = fs
      .readFileSync(path.join(cacheDir, files[0]), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l));
    const { model, tokenizer } = loadHuggingFace(teacherDir);
    const pairs = trainingPairs(coll, 4);
    const want = scorePairs(model, new PairEncoder(tokenizer, coll, 48), pairs, 64);
    const got = new Map(lines.map((l: { qid: string; pid: string; score: number }) => [`${l.qid}\t${l.pid}`, l.score]));
    pairs.forEach(([q, p], i) => expect(got.get(`${q}\t${p}`)).toBeCloseTo(want[i], 5));
    model.dispose();

    // a student that starts as the Hugging Face model itself
    const copy = await distill(
      parseStudentConfig({
        ...JSON.parse(JSON.stringify(config)),
        output: path.join(tmp, 'student-hf'),
        student: { init: 'huggingface', path: teacherDir },
      }),
    );
    expect(copy.log.steps).toHaveLength(3);
  });
});
