// XLM-RoBERTa and RoBERTa rerankers (BGE rerankers' shape) as the hub stores them:
// XLMRobertaForSequenceClassification / RobertaForSequenceClassification directories built here with
// random weights (config.json with max_position_embeddings = positions + pad_token_id + 1 and one
// token type, model.safetensors with the int64 roberta.embeddings.position_ids buffer, tokenizer.json
// with a SentencePiece Unigram model as XLM-R's file has it). Checked: the pair template
// <s> q </s></s> p </s> against @huggingface/tokenizers' own post-processor, RoBERTa's positions,
// the scores against an independent float64 PyTorch reference (tests/reference/xlmr_reference.py,
// when torch is installed), strict errors naming the file and the field, BERT unchanged.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { BertTokenizer, HfTokenizer, ROBERTA_PAIR_TOKENS, type PairEncoding } from '../src/data';
import { distill, parseStudentConfig } from '../src/distill';
import {
  CrossEncoder,
  loadHuggingFace,
  saveHuggingFace,
  XLM_ROBERTA_FAMILY,
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
  XLMR_PIECES,
  robertaBpeTokenizerJson,
  xlmrUnigramTokenizerJson,
} from './helpers/hub_files';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as {
  Tokenizer: new (
    json: object,
    config: object,
  ) => {
    encode(
      text: string,
      options: { text_pair?: string; add_special_tokens?: boolean },
    ): { ids: number[]; token_type_ids: number[]; attention_mask: number[] };
  };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-xlmr-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => {
  const d = path.join(tmp, `m${dirCount++}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
};

// The hub helpers' XLM-RoBERTa-shaped tokenizer.json (its Precompiled normalizer left out: binary).
const PIECES = XLMR_PIECES;
const unigramJson = () =>
  xlmrUnigramTokenizerJson() as Record<string, unknown> & {
    model: { vocab: Array<[string, number]> };
    added_tokens: Array<{ content: string }>;
  };

const tiny: CrossEncoderConfig = {
  vocabSize: PIECES.length,
  hidden: 8,
  layers: 2,
  heads: 2,
  intermediate: 16,
  maxPosition: 20, // 18 tokens + pad_token_id 1 + 1, as 514 = 512 + 2
  typeVocab: 1,
  layerNormEps: 1e-5,
  initStd: 0.5,
  head: 'roberta',
  positionPaddingIdx: 1,
};

const hubConfig = (c: CrossEncoderConfig, extra: Record<string, unknown> = {}) => ({
  architectures: ['XLMRobertaForSequenceClassification'],
  attention_probs_dropout_prob: 0.1,
  bos_token_id: 0,
  classifier_dropout: null,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: c.hidden,
  id2label: { '0': 'LABEL_0' },
  initializer_range: 0.02,
  intermediate_size: c.intermediate,
  label2id: { LABEL_0: 0 },
  layer_norm_eps: c.layerNormEps,
  max_position_embeddings: c.maxPosition,
  model_type: 'xlm-roberta',
  num_attention_heads: c.heads,
  num_hidden_layers: c.layers,
  output_past: true,
  pad_token_id: 1,
  position_embedding_type: 'absolute',
  transformers_version: '4.40.0',
  type_vocab_size: c.typeVocab,
  use_cache: true,
  vocab_size: c.vocabSize,
  ...extra,
});

type Tensor = HubTensor;

const f32 = f32Tensor;

const positionIds = (n: number) => positionIdsTensor('roberta', n);

/** The model's tensors as XLMRobertaForSequenceClassification names them (XLMRobertaModel's without the head). */
function hubTensors(model: CrossEncoder, opts: { bare?: boolean } = {}): Tensor[] {
  const out: Tensor[] = [];
  for (const [name, v] of model.params) {
    if (opts.bare && name.startsWith('classifier.')) continue;
    out.push(f32(name.replace(/^bert\./, opts.bare ? '' : 'roberta.'), v.dataSync(), v.shape));
  }
  return out;
}

function hubDir(
  model: CrossEncoder,
  opts: { extraConfig?: Record<string, unknown>; tensors?: Tensor[]; tokenizer?: object | null } = {},
): string {
  const dir = newDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hubConfig(model.config, opts.extraConfig)));
  const tensors = opts.tensors ?? [positionIds(model.config.maxPosition), ...hubTensors(model)];
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  if (opts.tokenizer !== null)
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(opts.tokenizer ?? unigramJson()));
  return dir;
}

const TEXTS: Array<[string, string]> = [
  ['hello world', 'the cats are unaffable'],
  ['café', 'a cat'],
  ['the world', 'hello hello the world of cats and a café that is unaffable to all'],
];
const MAX = 16;

function batch(encodings: PairEncoding[]) {
  return {
    input_ids: encodings.map((e) => Array.from(e.inputIds)),
    attention_mask: encodings.map((e) => Array.from(e.attentionMask)),
  };
}
const inputsOf = (b: { input_ids: number[][]; attention_mask: number[][] }) => ({
  inputIds: tf.tensor2d(b.input_ids, undefined, 'int32'),
  tokenTypeIds: tf.zeros([b.input_ids.length, b.input_ids[0].length], 'int32') as tf.Tensor2D,
  attentionMask: tf.tensor2d(b.attention_mask, undefined, 'int32'),
});
const scoresOf = (m: CrossEncoder, b: ReturnType<typeof batch>) =>
  tf.tidy(() => Array.from(m.forward(inputsOf(b)).scores.dataSync()));

const TORCH = TORCH_PYTHON;
const hasTorch = HAS_TORCH;
const REFERENCE = path.join(__dirname, 'reference', 'xlmr_reference.py');
function reference(dir: string, b: ReturnType<typeof batch>): number[] {
  const r = spawnSync(TORCH, [REFERENCE, dir], { input: JSON.stringify(b), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xlmr_reference.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout).scores;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('HfTokenizer: a SentencePiece Unigram tokenizer.json with RoBERTa pairs', () => {
  const ours = new HfTokenizer(unigramJson(), ROBERTA_PAIR_TOKENS, 'tokenizer.json');
  const lib = new Tokenizer(unigramJson(), {});

  it('special ids and pieces as XLM-R lays them out', () => {
    expect([ours.clsId, ours.padId, ours.sepId, ours.vocabSize, ours.layout]).toEqual([0, 1, 2, 29, 'roberta']);
    expect(ours.tokens('hello   world')).toEqual(['▁hello', '▁world']);
    expect(ours.tokens('unaffable café')).toEqual(['▁un', 'aff', 'able', '▁caf', 'é']);
    expect(ours.decode(ours.ids('hello world'))).toBe('hello world');
  });

  it.each(TEXTS)('pairs equal the library post-processor: %s / %s', (q, p) => {
    const e = ours.encodePair(q, p, 64);
    const want = lib.encode(q, { text_pair: p, add_special_tokens: true });
    const n = e.queryTokens + e.passageTokens + 4;
    expect(Array.from(e.inputIds.subarray(0, n))).toEqual(want.ids);
    expect(Array.from(e.tokenTypeIds)).toEqual(new Array(64).fill(0));
    expect(Array.from(e.attentionMask.subarray(0, n + 1))).toEqual([...want.attention_mask, 0]);
    expect(Array.from(e.inputIds.subarray(n))).toEqual(new Array(64 - n).fill(1));
  });

  it("a byte-level BPE tokenizer.json as RoBERTa's (RobertaProcessing) pairs the same way", () => {
    const vocab = [
      '<s>',
      '<pad>',
      '</s>',
      '<unk>',
      'h',
      'e',
      'l',
      'o',
      'w',
      'r',
      'd',
      'Ġ',
      'he',
      'll',
      'hell',
      'hello',
    ];
    vocab.push('Ġw', 'or', 'Ġwor', 'Ġworl', 'Ġworld', '<mask>');
    const bpe = robertaBpeTokenizerJson(vocab, [
      'h e',
      'l l',
      'he ll',
      'hell o',
      'Ġ w',
      'o r',
      'Ġw or',
      'Ġwor l',
      'Ġworl d',
    ]);
    const ours = new HfTokenizer(bpe, ROBERTA_PAIR_TOKENS);
    expect(ours.tokens('hello world')).toEqual(['hello', 'Ġworld']);
    const e = ours.encodePair('hello world', 'world hello', 16);
    const want = new Tokenizer(bpe, {}).encode('hello world', { text_pair: 'world hello', add_special_tokens: true });
    expect(Array.from(e.inputIds.subarray(0, want.ids.length))).toEqual(want.ids);
    expect(want.ids).toEqual([0, 15, 20, 2, 2, 8, 17, 6, 10, 11, 15, 2]);
  });

  it('truncates longest first within maxLength - 4; term matches sit after </s></s>', () => {
    const e = ours.encodeIdsPair([7, 8], [5, 7, 8, 8, 8, 8, 8], 8);
    expect([e.queryTokens, e.passageTokens]).toEqual([2, 2]);
    expect(Array.from(e.inputIds)).toEqual([0, 7, 8, 2, 2, 5, 7, 2]);
    expect(Array.from(e.termMatchIds)).toEqual([0, 0, 0, 0, 0, 0, 1, 0]);
    expect(() => ours.encodeIdsPair([], [], 3)).toThrow(/maxLength must be an integer >= 4/);
  });

  it("BERT's pairs are unchanged", () => {
    const bert = new BertTokenizer();
    const e = bert.encodeIdsPair([2000, 2001, 2002], [3000, 2001, 3001, 3002], 8);
    expect(Array.from(e.inputIds)).toEqual([101, 2000, 2001, 2002, 102, 3000, 2001, 102]);
    expect(Array.from(e.tokenTypeIds)).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(e.termMatchIds)).toEqual([0, 0, 0, 0, 0, 0, 1, 0]);
    expect(bert.layout).toBe('bert');
  });
});

describe("CrossEncoder: RoBERTa's positions and head", () => {
  it('positions count non-padding tokens from positionPaddingIdx + 1; padding takes positionPaddingIdx', () => {
    const m = new CrossEncoder(tiny, 1);
    // Move one row's padding around: what matters is which tokens are padding, not where the row ends.
    const table = m.params.get('bert.embeddings.position_embeddings.weight')!;
    const hidden0 = (ids: number[]) =>
      tf.tidy(() => {
        const out = m.forward(inputsOf({ input_ids: [ids], attention_mask: [ids.map((i) => (i === 1 ? 0 : 1))] }), {
          hidden: true,
        });
        return out.hidden![0].arraySync()[0];
      });
    // with a single token type and word id, the embedding's differences come from the positions alone
    const a = hidden0([0, 5, 2, 1, 1]);
    const rows = table.arraySync() as number[][];
    const word = m.params.get('bert.embeddings.word_embeddings.weight')!.arraySync() as number[][];
    const type0 = (m.params.get('bert.embeddings.token_type_embeddings.weight')!.arraySync() as number[][])[0];
    const ln = (v: number[]) => {
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
      return v.map((x) => (x - mean) / Math.sqrt(variance + 1e-5));
    };
    const expected = (id: number, pos: number) => ln(word[id].map((w, k) => w + rows[pos][k] + type0[k]));
    [0, 5, 2, 1, 1].forEach((id, i) => {
      const pos = [2, 3, 4, 1, 1][i];
      a[i].forEach((v, k) => expect(v).toBeCloseTo(expected(id, pos)[k], 4));
    });
    expect(() =>
      tf.tidy(
        () =>
          m.forward(inputsOf({ input_ids: [new Array(19).fill(5)], attention_mask: [new Array(19).fill(1)] })).scores,
      ),
    ).toThrow(/sequence length 19 > 18 \(maxPosition 20 less positionPaddingIdx 1 \+ 1\)/);
    expect(() => new CrossEncoder({ ...tiny, positionPaddingIdx: 19 })).toThrow(
      /positionPaddingIdx must be an integer/,
    );
    m.dispose();
  });

  it('the roberta head is classifier.out_proj(tanh(classifier.dense(<s>)))', () => {
    const m = new CrossEncoder(tiny, 2);
    expect([...m.params.keys()].slice(-4)).toEqual([
      'classifier.dense.weight',
      'classifier.dense.bias',
      'classifier.out_proj.weight',
      'classifier.out_proj.bias',
    ]);
    const b = { input_ids: [[0, 7, 2, 2, 8, 2]], attention_mask: [[1, 1, 1, 1, 1, 1]] };
    const [score, want] = tf.tidy(() => {
      const out = m.forward(inputsOf(b), { hidden: true });
      const cls = tf.slice(out.hidden![out.hidden!.length - 1], [0, 0, 0], [1, 1, 8]).reshape([1, 8]);
      const dense = (x: tf.Tensor, n: string) =>
        tf.add(
          tf.matMul(x as tf.Tensor2D, m.params.get(`${n}.weight`)! as tf.Tensor2D, false, true),
          m.params.get(`${n}.bias`)!,
        );
      return [
        out.scores.dataSync()[0],
        dense(tf.tanh(dense(cls, 'classifier.dense')), 'classifier.out_proj').dataSync()[0],
      ];
    });
    expect(score).toBeCloseTo(want, 6);
    m.dispose();
  });

  it('saveHuggingFace refuses a RoBERTa-shaped model without its tokenizer (tests/hf_export_families.test.ts exports it)', async () => {
    const m = new CrossEncoder(tiny, 3);
    await expect(saveHuggingFace(m, path.join(tmp, 'export'))).rejects.toThrow(
      /RoBERTa \/ XLM-RoBERTa-shaped and has no default tokenizer/,
    );
    m.dispose();
  });
});

describe('loadHuggingFace: XLM-RoBERTa and RoBERTa', () => {
  const tok = new HfTokenizer(unigramJson(), ROBERTA_PAIR_TOKENS);
  const pairs = batch(TEXTS.map(([q, p]) => tok.encodePair(q, p, MAX)));

  it.each([
    ['xlm-roberta', 'XLMRobertaForSequenceClassification'],
    ['roberta', 'RobertaForSequenceClassification'],
  ])('reads %s (%s) with the position_ids buffer; a pooler in the file is skipped', (modelType, arch) => {
    const source = new CrossEncoder(tiny, 5);
    const pooler = [
      f32('roberta.pooler.dense.weight', new Float32Array(64), [8, 8]),
      f32('roberta.pooler.dense.bias', new Float32Array(8), [8]),
    ];
    const dir = hubDir(source, {
      extraConfig: { model_type: modelType, architectures: [arch] },
      tensors: [positionIds(20), ...hubTensors(source), ...pooler],
    });
    const { model, tokenizer, report } = loadHuggingFace(dir);
    expect(report).toMatchObject({
      modelType,
      architecture: arch,
      skipped: ['roberta.embeddings.position_ids', 'roberta.pooler.dense.weight', 'roberta.pooler.dense.bias'],
      missing: [],
      head: 'classifier',
      tokenizer: 'tokenizer.json',
    });
    expect(report.config).toEqual({ ...tiny, initStd: 0.02 });
    expect(tokenizer.layout).toBe('roberta');
    expect(tokenizer.encodePair('hello world', 'a cat', MAX).inputIds).toEqual(
      tok.encodePair('hello world', 'a cat', MAX).inputIds,
    );
    expect(scoresOf(model, pairs)).toEqual(scoresOf(source, pairs));
    model.dispose();
    source.dispose();
  });

  it('absent fields take the config class defaults: pad_token_id 1, two token types', () => {
    const c = XLM_ROBERTA_FAMILY.config(
      {
        vocab_size: 10,
        hidden_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 4,
        max_position_embeddings: 514,
      },
      'config.json',
    );
    expect(c).toMatchObject({ positionPaddingIdx: 1, typeVocab: 2, layerNormEps: 1e-12, head: 'roberta' });
    expect(XLM_ROBERTA_FAMILY.paramName('roberta.embeddings.LayerNorm.gamma')).toBe('bert.embeddings.LayerNorm.weight');
    expect(XLM_ROBERTA_FAMILY.paramName('encoder.layer.0.output.dense.bias')).toBe(
      'bert.encoder.layer.0.output.dense.bias',
    );
    expect(XLM_ROBERTA_FAMILY.paramName('lm_head.dense.weight')).toBeNull();
  });

  it('strict: an XLMRobertaModel (no head) is one error listing the head; strict false loads it', () => {
    const source = new CrossEncoder(tiny, 7);
    const dir = hubDir(source, {
      extraConfig: { architectures: ['XLMRobertaModel'] },
      tensors: [positionIds(20), ...hubTensors(source, { bare: true })],
    });
    expect(() => loadHuggingFace(dir)).toThrow(
      /missing \(4\): classifier.dense.weight, classifier.dense.bias, classifier.out_proj.weight, classifier.out_proj.bias \(strict: false lets/,
    );
    const { model, report } = loadHuggingFace(dir, { strict: false });
    expect(report.head).toBe('missing');
    model.dispose();
    source.dispose();
  });

  describe('bad input: one error naming the file and the field', () => {
    let source: CrossEncoder;
    beforeAll(() => {
      source = new CrossEncoder(tiny, 8);
    });
    afterAll(() => source.dispose());
    const config = (dir: string) => path.join(dir, 'config.json');

    it.each([
      [{ pad_token_id: -1 }, /pad_token_id is -1; expected an integer >= 0/],
      [{ pad_token_id: 0 }, /pad_token_id is 0, the tokenizer's <pad> is id 1 \(tokenizer.json\)/],
      [{ max_position_embeddings: 2 }, /max_position_embeddings 2 leaves no position after pad_token_id 1/],
      [{ hidden_act: 'gelu_new' }, /hidden_act is "gelu_new"; the cross-encoder computes 'gelu' \(erf\) only/],
      [{ vocab_size: 20 }, /vocab_size 20 does not cover the tokenizer's 29 ids \(tokenizer.json\)/],
      [{ architectures: ['XLMRobertaForMaskedLM'] }, /architectures \["XLMRobertaForMaskedLM"\] is not read/],
      [{ num_labels: 3 }, /num_labels is 3; a ranking score head has 1 label/],
      [
        { type_vocab_size: 2 },
        /token_type_embeddings.weight has shape \[1,8\], config.json's type_vocab_size implies \[2,8\]/,
      ],
    ])('config %j', (extra, message) => {
      const dir = hubDir(source, { extraConfig: extra });
      const where = message.source.includes('has shape') ? path.join(dir, 'model.safetensors') : config(dir);
      expect(() => loadHuggingFace(dir)).toThrow(new RegExp(`${where}: .*${message.source}`));
    });

    it('no tokenizer.json; a tokenizer.json without <pad>; an lm_head is unexpected', () => {
      const dir = hubDir(source, { tokenizer: null });
      expect(() => loadHuggingFace(dir)).toThrow(new RegExp(`${dir}: no tokenizer.json \\(a RoBERTa`));
      const noPad = unigramJson();
      noPad.model.vocab = noPad.model.vocab.map(([p, s]) => [p === '<pad>' ? '<pod>' : p, s] as [string, number]);
      noPad.added_tokens = noPad.added_tokens.filter((t) => t.content !== '<pad>');
      const dir2 = hubDir(source, { tokenizer: noPad });
      expect(() => loadHuggingFace(dir2)).toThrow(/tokenizer.json: model.vocab lacks the special token <pad> \(pad\)/);
      const extra = [...hubTensors(source), f32('lm_head.bias', new Float32Array(29), [29])];
      expect(() => loadHuggingFace(hubDir(source, { tensors: extra }))).toThrow(/unexpected \(1\): lm_head.bias/);
    });
  });
});

describe('PyTorch float64 reference (tests/reference/xlmr_reference.py)', () => {
  const check = hasTorch ? it : it.skip;
  const why = hasTorch ? '' : ' [SKIPPED: torch is not installed for /usr/bin/python3]';
  const tok = new HfTokenizer(unigramJson(), ROBERTA_PAIR_TOKENS);
  const pairs = batch(TEXTS.map(([q, p]) => tok.encodePair(q, p, MAX)));

  check.each([
    ['xlm-roberta, one label', {}],
    [
      'roberta, two labels',
      { model_type: 'roberta', architectures: ['RobertaForSequenceClassification'], num_labels: 2 },
    ],
  ] as const)(`scores as loaded within 1e-4 on padded pairs: %s${why}`, (name, extra) => {
    const source = new CrossEncoder(tiny, 11);
    let tensors = [positionIds(20), ...hubTensors(source)];
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
    const ours = scoresOf(model, pairs);
    model.dispose();
    const theirs = reference(dir, pairs);
    expect(theirs).toHaveLength(ours.length);
    const diff = maxDiff(ours, theirs);
    console.log(`xlmr reference (${name}): max |ours - reference| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    expect(Math.max(...ours) - Math.min(...ours)).toBeGreaterThan(1e-3);
    // padding ids at the end of a row: the pairs really are padded
    expect(pairs.input_ids.some((r) => r[r.length - 1] === 1)).toBe(true);
  });

  check(`the reference refuses a file without the head${why}`, () => {
    const source = new CrossEncoder(tiny, 12);
    const tensors = [positionIds(20), ...hubTensors(source)].filter((t) => !t.name.startsWith('classifier.dense'));
    const dir = hubDir(source, { tensors });
    source.dispose();
    expect(() => reference(dir, pairs)).toThrow(/missing \['classifier.dense.bias', 'classifier.dense.weight'\]/);
  });
});

describe('pipeline: an XLM-RoBERTa teacher distils into a student sharing its tokenizer', () => {
  // the collection's words become pieces of the tiny vocabulary (single letters, or <unk>)
  const config: CrossEncoderConfig = { ...tiny, maxPosition: 50, initStd: 0.02 };
  const data = (collDir: string) => ({
    collection: collDir,
    negatives: 3,
    maxLength: 48,
    trainQueries: 4,
    evalQueries: 2,
  });
  const train = { batch: 2, steps: 2, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 };

  it('a random BERT-shaped student: scores and intermediate features', async () => {
    const collDir = path.join(tmp, 'coll');
    await tinyCollection(collDir);
    const teacher = new CrossEncoder(config, 17);
    const teacherDir = hubDir(teacher, { tensors: [positionIds(50), ...hubTensors(teacher)] });
    teacher.dispose();
    const result = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'student'),
        teacher: { huggingface: teacherDir, cacheDir: path.join(tmp, 'scores') },
        student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
        data: data(collDir),
        train,
        loss: { ranknet: 1, kl: 1, hiddenMSE: 1, attentionMSE: 1 },
      }),
    );
    expect(result.log.steps).toHaveLength(2);
    for (const s of result.log.steps) {
      expect(Number.isFinite(s.loss)).toBe(true);
      expect(Object.keys(s.parts)).toEqual(expect.arrayContaining(['hiddenMSE', 'attentionMSE']));
    }
  });

  it('an XLM-RoBERTa student (init huggingface) with the same tokenizer.json', async () => {
    const collDir = path.join(tmp, 'coll2');
    await tinyCollection(collDir);
    const teacher = new CrossEncoder({ ...config, layers: 2 }, 18);
    const student = new CrossEncoder({ ...config, layers: 1 }, 19);
    const teacherDir = hubDir(teacher, { tensors: [positionIds(50), ...hubTensors(teacher)] });
    const studentDir = hubDir(student, { tensors: [positionIds(50), ...hubTensors(student)] });
    teacher.dispose();
    student.dispose();
    const result = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'student2'),
        teacher: { huggingface: teacherDir, cacheDir: path.join(tmp, 'scores2') },
        student: {
          init: 'huggingface',
          path: studentDir,
          model: { layers: 1, hidden: 8, heads: 2, intermediate: 16, maxPosition: 50 },
        },
        data: data(collDir),
        train,
        loss: { ranknet: 1, kl: 1 },
      }),
    );
    expect(result.log.steps).toHaveLength(2);
    for (const s of result.log.steps) expect(Number.isFinite(s.loss)).toBe(true);
  });
});
