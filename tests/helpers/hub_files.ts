// Hub-shaped model files for the Hugging Face tests, written here rather than with the exporter under
// test: a safetensors writer (8-byte little-endian header length, the JSON header, the raw bytes),
// float32 tensors, and the int64 position_ids buffer that checkpoints converted from
// pytorch_model.bin carry. Also whether Debian's torch is there for the float64 references.
import { spawnSync } from 'child_process';
import * as fs from 'fs';

export type HubTensor = { name: string; dtype: string; shape: number[]; data: Buffer };

export function safetensorsBytes(tensors: HubTensor[]): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...tensors.map((t) => t.data)]);
}

export const f32Tensor = (name: string, values: ArrayLike<number>, shape: number[]): HubTensor => ({
  name,
  dtype: 'F32',
  shape,
  data: Buffer.from(new Float32Array(values).buffer),
});

/** `<prefix>.embeddings.position_ids`, int64 [1, n]. */
export function positionIdsTensor(prefix: string, n: number): HubTensor {
  const data = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i++) data.writeBigInt64LE(BigInt(i), 8 * i);
  return { name: `${prefix}.embeddings.position_ids`, dtype: 'I64', shape: [1, n], data };
}

export const TORCH_PYTHON = '/usr/bin/python3';
/** Whether the float64 PyTorch references (tests/reference/) can run here. */
export const HAS_TORCH =
  fs.existsSync(TORCH_PYTHON) && spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

export const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

// Tokenizer files shaped as XLM-RoBERTa's and RoBERTa's tokenizer.json (special tokens first, <mask>
// last, RoBERTa's pair template); XLM-R's binary Precompiled normalizer is left out.
const addedToken = (content: string, id: number) => ({
  id,
  content,
  single_word: false,
  lstrip: content === '<mask>',
  rstrip: false,
  normalized: false,
  special: true,
});

/** XLM-R's layout: <s> <pad> </s> <unk> first, pieces with log-probability scores, <mask> last. */
export const XLMR_PIECES: Array<[string, number]> = [
  ['<s>', 0],
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ['▁', -3],
  ['▁the', -2],
  ['▁a', -2.5],
  ['▁hello', -4],
  ['▁world', -4],
  ['▁caf', -6],
  ['é', -5],
  ['▁un', -4.5],
  ['aff', -7],
  ['able', -6],
  ['▁cat', -5],
  ['s', -3.5],
  ['a', -4],
  ['b', -4],
  ['c', -4],
  ['e', -4],
  ['f', -4],
  ['h', -4],
  ['l', -4],
  ['o', -4],
  ['r', -4],
  ['t', -4],
  ['w', -4],
  ['d', -4],
  ['<mask>', 0],
];

/** A SentencePiece Unigram tokenizer.json as XLM-RoBERTa's (Metaspace, TemplateProcessing) over `pieces`. */
export function xlmrUnigramTokenizerJson(pieces: Array<[string, number]> = XLMR_PIECES): object {
  const token = (id: string) => ({ SpecialToken: { id, type_id: 0 } });
  const seq = (id: 'A' | 'B') => ({ Sequence: { id, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<s>', '<pad>', '</s>', '<unk>', '<mask>'].map((t) =>
      addedToken(
        t,
        pieces.findIndex(([p]) => p === t),
      ),
    ),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [token('<s>'), seq('A'), token('</s>')],
      pair: [token('<s>'), seq('A'), token('</s>'), token('</s>'), seq('B'), token('</s>')],
      special_tokens: {
        '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] },
        '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 3, vocab: pieces, byte_fallback: false },
  };
}

const BPE_MERGES = [
  'Ġ t',
  'h e',
  'Ġt he',
  'l l',
  'he ll',
  'hell o',
  'Ġ w',
  'o r',
  'Ġw or',
  'Ġwor l',
  'Ġworl d',
  'Ġ c',
  'a t',
  'Ġc at',
];
/** RoBERTa's layout: <s> <pad> </s> <unk>, the byte-level letters, the merges' tokens, <mask>. */
export const ROBERTA_BPE_VOCAB: string[] = [
  '<s>',
  '<pad>',
  '</s>',
  '<unk>',
  ...'abcdefghijklmnopqrstuvwxyz'.split(''),
  'Ġ',
  ...BPE_MERGES.map((m) => m.replace(' ', '')),
  '<mask>',
];

/** A byte-level BPE tokenizer.json as RoBERTa's (ByteLevel, RobertaProcessing) over `vocab` and `merges`. */
export function robertaBpeTokenizerJson(vocab: string[] = ROBERTA_BPE_VOCAB, merges: string[] = BPE_MERGES): object {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<s>', '<pad>', '</s>', '<unk>', '<mask>'].map((t) => addedToken(t, vocab.indexOf(t))),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', 2],
      cls: ['<s>', 0],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges,
    },
  };
}
