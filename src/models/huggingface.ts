// A model directory as the Hugging Face hub stores it (config.json, model.safetensors or a sharded
// model.safetensors.index.json, tokenizer.json or vocab.txt + tokenizer_config.json) read into a
// CrossEncoder and a PairTokenizer.
//
// An architecture family is one FamilyAdapter: its model_type and accepted architectures, how its
// config.json becomes a CrossEncoderConfig (refusing what the CrossEncoder cannot compute), how its
// tensor names map onto the CrossEncoder's (BertForSequenceClassification names; ELECTRA's encoder
// maps onto them, its projection and head keep their own), its score head, and its pair special
// tokens. BERT, ELECTRA, RoBERTa and XLM-RoBERTa are the families so far.
//
// Every input problem is one error naming the file and the field; nothing is assigned until every
// tensor has been found and checked, so a load never yields a partly random model.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import {
  BERT_PAIR_TOKENS,
  BertTokenizer,
  HfTokenizer,
  parseVocabTxt,
  ROBERTA_PAIR_TOKENS,
  type PairSpecialTokens,
  type PairTokenizer,
} from '../data/tokenizer';
import { checkFiniteTensor, halfToFloat, readJsonFile } from './checkpoint';
import { CrossEncoder, type CrossEncoderConfig } from './cross_encoder';

/** What one architecture family needs to be read from a hub directory. */
export interface FamilyAdapter {
  modelType: string;
  /** architectures (config.json) this adapter reads; the value is whether the file carries the score head */
  architectures: Record<string, boolean>;
  /** config.json -> the CrossEncoder's config; throws naming the field when the model cannot be computed */
  config(json: Record<string, unknown>, file: string): CrossEncoderConfig;
  /** a tensor name of the file -> the CrossEncoder parameter it fills (null: not a name of this family) */
  paramName(name: string): string | null;
  /** tensors that are buffers, not parameters, whatever their dtype (skipped and reported, as integer tensors) */
  buffers: RegExp;
  /** float tensors the architecture does not use and transformers drops on load (skipped and reported) */
  ignored?: RegExp;
  /** the config.json field a parameter's shape comes from (named when a tensor's shape disagrees) */
  shapeField(param: string): string;
  specialTokens: PairSpecialTokens;
  /** the score head's parameters: a file without them (a bare encoder) loads only with strict: false */
  headParams: readonly string[];
  /** the head's last Linear, one row per label (two labels fold into one: logit 1 - logit 0) */
  labelParams: readonly string[];
}

/** BERT's score head: a file without it (a BertModel) loads only with strict: false. */
export const HEAD_PARAMS: readonly string[] = ['classifier.weight', 'classifier.bias'];
/** ELECTRA's score head (ElectraClassificationHead). */
export const ELECTRA_HEAD_PARAMS: readonly string[] = [
  'classifier.dense.weight',
  'classifier.dense.bias',
  'classifier.out_proj.weight',
  'classifier.out_proj.bias',
];

interface FieldCheck {
  ok: (v: unknown) => boolean;
  what: string;
}
const positiveInteger: FieldCheck = { ok: (v) => Number.isInteger(v) && (v as number) > 0, what: 'a positive integer' };
const nonNegativeInteger: FieldCheck = {
  ok: (v) => Number.isInteger(v) && (v as number) >= 0,
  what: 'an integer >= 0',
};
const positiveNumber: FieldCheck = {
  ok: (v) => typeof v === 'number' && v > 0 && Number.isFinite(v),
  what: 'a positive number',
};

/** config.json's field `name`, checked; absent, `fallback` (the transformers default) or an error. */
function field<T>(json: Record<string, unknown>, file: string, name: string, check: FieldCheck, fallback?: T): T {
  const v = json[name];
  if (v === undefined && fallback !== undefined) return fallback;
  if (!check.ok(v))
    throw new Error(
      `${file}: ${name} is ${JSON.stringify(v)}; ${fallback === undefined ? 'required, ' : ''}expected ${check.what}`,
    );
  return v as T;
}

/** The number of score labels: num_labels, else the size of id2label (what transformers writes), else 2. */
export function numLabels(json: Record<string, unknown>, file: string): number {
  if (json.num_labels !== undefined) return field<number>(json, file, 'num_labels', positiveInteger);
  const id2label = json.id2label;
  if (id2label !== undefined) {
    if (!id2label || typeof id2label !== 'object') throw new Error(`${file}: id2label is not an object`);
    return Object.keys(id2label).length;
  }
  return 2; // PretrainedConfig's default
}

/**
 * BERT (transformers' BertConfig and modeling_bert.py): post-LayerNorm encoder, erf GELU, absolute
 * positions; BertForSequenceClassification scores with classifier(dropout(tanh(pooler.dense([CLS])))).
 */
export const BERT_FAMILY: FamilyAdapter = {
  modelType: 'bert',
  architectures: { BertForSequenceClassification: true, BertModel: false },
  config: (json, file) => encoderConfig(json, file),
  paramName: (name) => encoderParamName(name, 'bert', 'embeddings|encoder|pooler', /^classifier\./),
  // BertEmbeddings' registered buffers (int64 in checkpoints converted from pytorch_model.bin)
  buffers: /^(bert\.)?embeddings\.(position_ids|token_type_ids)$/,
  shapeField: (param) => encoderShapeField(param, 'classifier'),
  specialTokens: BERT_PAIR_TOKENS,
  headParams: HEAD_PARAMS,
  labelParams: HEAD_PARAMS,
};

/** The encoder both families share: erf GELU and absolute positions, else an error naming the field. */
function checkEncoderKind(json: Record<string, unknown>, file: string): void {
  const act = json.hidden_act ?? 'gelu';
  if (act !== 'gelu')
    throw new Error(`${file}: hidden_act is ${JSON.stringify(act)}; the cross-encoder computes 'gelu' (erf) only`);
  const positions = json.position_embedding_type ?? 'absolute';
  if (positions !== 'absolute')
    throw new Error(`${file}: position_embedding_type is ${JSON.stringify(positions)}; only 'absolute' is computed`);
}

/** The encoder's sizes from config.json; `defaults` for the fields a family's config may leave out. */
function encoderConfig(
  json: Record<string, unknown>,
  file: string,
  defaults: Partial<
    Record<
      | 'vocab_size'
      | 'hidden_size'
      | 'num_hidden_layers'
      | 'num_attention_heads'
      | 'intermediate_size'
      | 'max_position_embeddings',
      number
    >
  > = {},
): CrossEncoderConfig {
  checkEncoderKind(json, file);
  const size = (name: keyof typeof defaults) => field(json, file, name, positiveInteger, defaults[name]);
  const config: CrossEncoderConfig = {
    vocabSize: size('vocab_size'),
    hidden: size('hidden_size'),
    layers: size('num_hidden_layers'),
    heads: size('num_attention_heads'),
    intermediate: size('intermediate_size'),
    maxPosition: size('max_position_embeddings'),
    typeVocab: field(json, file, 'type_vocab_size', positiveInteger, 2),
    layerNormEps: field(json, file, 'layer_norm_eps', positiveNumber, 1e-12),
    initStd: field(json, file, 'initializer_range', positiveNumber, 0.02),
  };
  if (config.hidden % config.heads !== 0)
    throw new Error(`${file}: hidden_size ${config.hidden} is not a multiple of num_attention_heads ${config.heads}`);
  return config;
}

/**
 * A file's tensor name as the cross-encoder's parameter (under `bert.`), or null: the family's
 * `prefix` (or none, in a bare encoder's file) before one of `modules`, or a head tensor matching
 * `head`. TF-converted checkpoints name LayerNorm's scale and shift gamma and beta.
 */
function encoderParamName(name: string, prefix: string, modules: string, head: RegExp): string | null {
  const n = name.replace(/\.LayerNorm\.gamma$/, '.LayerNorm.weight').replace(/\.LayerNorm\.beta$/, '.LayerNorm.bias');
  if (head.test(n)) return n;
  const m = new RegExp(`^(?:${prefix}\\.)?((?:${modules})\\..*)$`).exec(n);
  return m ? `bert.${m[1]}` : null;
}

/** The config.json field a parameter's shape comes from, for shape errors; `labels`: the head layer
 *  whose rows are the labels. */
function encoderShapeField(param: string, labels: string): string {
  if (param.includes('word_embeddings')) return 'vocab_size';
  if (param.includes('position_embeddings')) return 'max_position_embeddings';
  if (param.includes('token_type_embeddings')) return 'type_vocab_size';
  if (param.includes('intermediate.dense') || /\.output\.dense\.weight$/.test(param)) return 'intermediate_size';
  if (param.startsWith(labels)) return 'num_labels';
  return 'hidden_size';
}

/**
 * ELECTRA (transformers' ElectraConfig and modeling_electra.py): BERT's encoder under `electra.`,
 * embeddings of width embedding_size (LayerNorm included) projected to hidden_size by
 * embeddings_project when the two differ, no pooler; ElectraForSequenceClassification scores with
 * classifier.out_proj(gelu(classifier.dense([CLS]))), gelu whatever hidden_act is. Absent fields take
 * ElectraConfig's defaults (ELECTRA-small's shape), as transformers does.
 */
// ElectraConfig's defaults (ELECTRA-small's shape) for the fields a config.json leaves out.
const ELECTRA_DEFAULTS = {
  vocab_size: 30522,
  hidden_size: 256,
  num_hidden_layers: 12,
  num_attention_heads: 4,
  intermediate_size: 1024,
  max_position_embeddings: 512,
};
// ElectraClassificationHead's and RobertaClassificationHead's two Linears.
const CLASSIFIER_HEAD = /^classifier\.(dense|out_proj)\.(weight|bias)$/;

export const ELECTRA_FAMILY: FamilyAdapter = {
  modelType: 'electra',
  architectures: { ElectraForSequenceClassification: true, ElectraModel: false },
  config: (json, file) => ({
    ...encoderConfig(json, file, ELECTRA_DEFAULTS),
    embeddingSize: field(json, file, 'embedding_size', positiveInteger, 128),
    head: 'electra',
  }),
  paramName: (name) => encoderParamName(name, 'electra', 'embeddings|embeddings_project|encoder', CLASSIFIER_HEAD),
  buffers: /^(electra\.)?embeddings\.(position_ids|token_type_ids)$/,
  shapeField(param) {
    if (param.startsWith('bert.embeddings.LayerNorm')) return 'embedding_size';
    if (param.startsWith('bert.embeddings_project')) return 'embedding_size and hidden_size';
    return encoderShapeField(param, 'classifier.out_proj');
  },
  specialTokens: BERT_PAIR_TOKENS,
  headParams: ELECTRA_HEAD_PARAMS,
  labelParams: ['classifier.out_proj.weight', 'classifier.out_proj.bias'],
};

/**
 * RoBERTa and XLM-RoBERTa (transformers' RobertaConfig / XLMRobertaConfig and modeling_roberta.py;
 * XLM-RoBERTa is the same computation): BERT's encoder under `roberta.`, one token type, positions
 * counted from pad_token_id (padding_idx: real tokens take padding_idx + 1, 2, ...; padding takes
 * padding_idx), so max_position_embeddings is 514 for 512 tokens; no pooler
 * (add_pooling_layer=False: a file's roberta.pooler.* is skipped and reported, as transformers leaves
 * it unused); RobertaClassificationHead scores with classifier.out_proj(tanh(classifier.dense(<s>))).
 * Pairs are <s> q </s></s> p </s>, read from tokenizer.json (Unigram for XLM-R, BPE for RoBERTa).
 */
function robertaFamily(modelType: string, prefix: string): FamilyAdapter {
  const heads = { [`${prefix}ForSequenceClassification`]: true, [`${prefix}Model`]: false };
  return {
    modelType,
    architectures: heads,
    config(json, file) {
      const config: CrossEncoderConfig = {
        ...encoderConfig(json, file),
        head: 'roberta',
        positionPaddingIdx: field(json, file, 'pad_token_id', nonNegativeInteger, 1),
      };
      if (config.positionPaddingIdx! + 2 > config.maxPosition)
        throw new Error(
          `${file}: max_position_embeddings ${config.maxPosition} leaves no position after pad_token_id ${config.positionPaddingIdx}`,
        );
      return config;
    },
    paramName: (name) => encoderParamName(name, 'roberta', 'embeddings|encoder', CLASSIFIER_HEAD),
    buffers: /^(roberta\.)?embeddings\.(position_ids|token_type_ids)$/,
    ignored: /^(roberta\.)?pooler\.dense\.(weight|bias)$/,
    shapeField: (param) => encoderShapeField(param, 'classifier.out_proj'),
    specialTokens: ROBERTA_PAIR_TOKENS,
    headParams: ELECTRA_HEAD_PARAMS, // RobertaClassificationHead has the same two Linears
    labelParams: ['classifier.out_proj.weight', 'classifier.out_proj.bias'],
  };
}

export const ROBERTA_FAMILY: FamilyAdapter = robertaFamily('roberta', 'Roberta');
export const XLM_ROBERTA_FAMILY: FamilyAdapter = robertaFamily('xlm-roberta', 'XLMRoberta');

/** The families by config.json's model_type. */
export const FAMILIES: Record<string, FamilyAdapter> = {
  bert: BERT_FAMILY,
  electra: ELECTRA_FAMILY,
  roberta: ROBERTA_FAMILY,
  'xlm-roberta': XLM_ROBERTA_FAMILY,
};

export interface HuggingFaceReport {
  dir: string;
  modelType: string;
  architecture: string;
  config: CrossEncoderConfig;
  /** the weight files read */
  weightFiles: string[];
  /** integer buffers in the files that the model does not use (position_ids, token_type_ids), and tensors transformers leaves unused (RoBERTa's pooler) */
  skipped: string[];
  /** parameters the files lack that kept their seeded init (only with strict: false) */
  missing: string[];
  /** 'classifier' (one label), 'two-label' (score = logit 1 - logit 0), or 'missing' (seeded init) */
  head: 'classifier' | 'two-label' | 'missing';
  /** tokenizer.json, or vocab.txt (with tokenizer_config.json when present) */
  tokenizer: string;
}

export interface LoadHuggingFaceOptions {
  /** every parameter must come from the files and every float tensor be used (default true); false lets a missing score head keep its seeded init */
  strict?: boolean;
  /** the seed of the init that a missing head keeps */
  seed?: number;
}

const FLOAT_SIZES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const INT_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'U32', 'U64']);

interface TensorEntry {
  file: string;
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

/** The tensors of a safetensors file, checked against its size, undecoded. */
export function readSafetensorsEntries(file: string): Map<string, TensorEntry> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (buf.length < 8) throw new Error(`${file}: ${buf.length} bytes, too short for a safetensors header length`);
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > buf.length - 8)
    throw new Error(
      `${file}: header length ${headerLength} runs past the end of the file (${buf.length} bytes; truncated?)`,
    );
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8'));
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON: ${(e as Error).message}`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header))
    throw new Error(`${file}: header is not an object`);
  const base = 8 + headerLength;
  const out = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = e?.shape;
    const offsets = e?.data_offsets;
    if (
      typeof e?.dtype !== 'string' ||
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isInteger(d) && d >= 0) ||
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((d) => Number.isInteger(d) && d >= 0) ||
      offsets[1] < offsets[0]
    )
      throw new Error(`${file}: header entry ${name} lacks a dtype, shape or data_offsets`);
    if (base + offsets[1] > buf.length)
      throw new Error(
        `${file}: ${name}'s data_offsets end at byte ${base + offsets[1]}, past the end of the file (${buf.length} bytes; truncated?)`,
      );
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    const size = FLOAT_SIZES[e.dtype];
    if (size && offsets[1] - offsets[0] !== n * size)
      throw new Error(`${file}: ${name} has ${offsets[1] - offsets[0]} bytes for shape [${shape}] of ${e.dtype}`);
    if (!size && !INT_DTYPES.has(e.dtype)) throw new Error(`${file}: ${name} has dtype ${e.dtype}, which is not read`);
    out.set(name, {
      file,
      dtype: e.dtype,
      shape: shape as number[],
      bytes: buf.subarray(base + offsets[0], base + offsets[1]),
    });
  }
  return out;
}

function decodeFloat(e: TensorEntry): Float32Array {
  const n = e.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (e.dtype === 'F32') values[i] = e.bytes.readFloatLE(4 * i);
    else if (e.dtype === 'BF16')
      values[i] = new Float32Array(new Uint32Array([e.bytes.readUInt16LE(2 * i) << 16]).buffer)[0];
    else values[i] = halfToFloat(e.bytes.readUInt16LE(2 * i));
  }
  return values;
}

/** The weight files of a hub directory: model.safetensors, else the shards of model.safetensors.index.json. */
export function weightFiles(dir: string): { files: string[]; tensors: Map<string, TensorEntry> } {
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(single)) return { files: [single], tensors: readSafetensorsEntries(single) };
  if (!fs.existsSync(index)) {
    const other = ['pytorch_model.bin', 'tf_model.h5', 'model.onnx'].find((f) => fs.existsSync(path.join(dir, f)));
    throw new Error(
      `${dir}: no model.safetensors or model.safetensors.index.json${other ? ` (${other} is not read: convert it to safetensors)` : ''}`,
    );
  }
  const json = readJsonFile(index) as { weight_map?: unknown };
  const map = json?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map) || Object.keys(map).length === 0)
    throw new Error(`${index}: weight_map is missing or empty`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.'))
      throw new Error(`${index}: weight_map.${name} is ${JSON.stringify(shard)}, not a file name in ${dir}`);
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  for (const [shard, names] of byShard)
    if (!fs.existsSync(path.join(dir, shard)))
      throw new Error(`${index}: weight_map.${names[0]}: shard ${shard} is not in ${dir}`);
  const tensors = new Map<string, TensorEntry>();
  const files: string[] = [];
  for (const [shard, names] of byShard) {
    const file = path.join(dir, shard);
    files.push(file);
    const entries = readSafetensorsEntries(file);
    for (const name of names) {
      const e = entries.get(name);
      if (!e) throw new Error(`${index}: weight_map.${name}: shard ${shard} has no tensor ${name}`);
      tensors.set(name, e);
    }
    for (const name of entries.keys())
      if (!(map as Record<string, unknown>)[name])
        throw new Error(`${file}: holds ${name}, which ${path.basename(index)}'s weight_map does not list`);
  }
  return { files, tensors };
}

function readConfig(dir: string): {
  json: Record<string, unknown>;
  file: string;
  family: FamilyAdapter;
  architecture: string;
  labels: number;
} {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a directory`);
  if (!fs.existsSync(file))
    throw new Error(`${dir}: no config.json (a Hugging Face model directory holds config.json and model.safetensors)`);
  const json = readJsonFile(file) as Record<string, unknown>;
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file}: not a JSON object`);
  const family = FAMILIES[json.model_type as string];
  if (!family)
    throw new Error(
      `${file}: model_type ${JSON.stringify(json.model_type)} is not read (known: ${Object.keys(FAMILIES).join(', ')})`,
    );
  const archs = json.architectures ?? [Object.keys(family.architectures)[0]];
  if (!Array.isArray(archs) || archs.length !== 1 || !(archs[0] in family.architectures))
    throw new Error(
      `${file}: architectures ${JSON.stringify(json.architectures)} is not read (known: ${Object.keys(family.architectures).join(', ')})`,
    );
  const labels = numLabels(json, file);
  if (family.architectures[archs[0]] && labels > 2)
    throw new Error(
      `${file}: num_labels is ${labels}; a ranking score head has 1 label (or 2: score = logit 1 - logit 0)`,
    );
  return { json, file, family, architecture: archs[0], labels };
}

/**
 * The tokenizer of a hub directory: tokenizer.json when present, else vocab.txt with
 * tokenizer_config.json's do_lower_case, strip_accents and tokenize_chinese_chars (BertTokenizer's
 * defaults when the file is absent).
 */
export function loadHuggingFaceTokenizer(
  dir: string,
  special: PairSpecialTokens = BERT_PAIR_TOKENS,
): { tokenizer: PairTokenizer; source: string } {
  const json = path.join(dir, 'tokenizer.json');
  if (fs.existsSync(json))
    return { tokenizer: new HfTokenizer(readJsonFile(json) as object, special, json), source: 'tokenizer.json' };
  if ((special.layout ?? 'bert') !== 'bert')
    throw new Error(
      `${dir}: no tokenizer.json (a RoBERTa / XLM-RoBERTa tokenizer is read from tokenizer.json only; ` +
        'save it with a fast tokenizer: AutoTokenizer.from_pretrained(dir).save_pretrained(dir))',
    );
  const vocabFile = path.join(dir, 'vocab.txt');
  if (!fs.existsSync(vocabFile)) throw new Error(`${dir}: no tokenizer.json or vocab.txt`);
  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? (readJsonFile(configFile) as Record<string, unknown>) : {};
  const flag = (name: string, allowNull: boolean): boolean | null | undefined => {
    const v = config[name];
    if (v === undefined || typeof v === 'boolean' || (allowNull && v === null)) return v as boolean | null | undefined;
    throw new Error(
      `${configFile}: ${name} is ${JSON.stringify(v)}; expected true or false${allowNull ? ' or null' : ''}`,
    );
  };
  const vocab = parseVocabTxt(fs.readFileSync(vocabFile, 'utf8'), vocabFile);
  for (const t of Object.values(special))
    if (!vocab.has(t)) throw new Error(`${vocabFile}: lacks the special token ${t}`);
  const tokenizer = new BertTokenizer(
    vocab,
    {
      lowercase: flag('do_lower_case', false) ?? true,
      stripAccents: flag('strip_accents', true),
      chineseChars: flag('tokenize_chinese_chars', false) ?? true,
    },
    vocabFile,
  );
  return { tokenizer, source: fs.existsSync(configFile) ? 'vocab.txt + tokenizer_config.json' : 'vocab.txt' };
}

/** The tokenizer of a hub directory with its family's pair template (config.json's model_type), without the weights. */
export function huggingFaceDirTokenizer(dir: string): PairTokenizer {
  return loadHuggingFaceTokenizer(dir, readConfig(dir).family.specialTokens).tokenizer;
}

/** Whether `dir` looks like a hub model directory (config.json, no fused-distill model.json). */
export function isHuggingFaceDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) && !fs.existsSync(path.join(dir, 'model.json'));
}

/** The files that define a hub directory's model and tokenizer (what a teacher-score cache key hashes). */
export function huggingFaceFiles(dir: string): string[] {
  const names = [
    'config.json',
    'model.safetensors',
    'model.safetensors.index.json',
    'tokenizer.json',
    'vocab.txt',
    'tokenizer_config.json',
  ];
  const files = names.map((n) => path.join(dir, n)).filter((f) => fs.existsSync(f));
  const index = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(path.join(dir, 'model.safetensors')) && fs.existsSync(index)) {
    const map = (readJsonFile(index) as { weight_map?: Record<string, string> }).weight_map ?? {};
    files.push(...[...new Set(Object.values(map))].sort().map((s) => path.join(dir, s)));
  }
  return files;
}

// The hub dir each loaded model came from, so that saveHuggingFace can copy its tokenizer back out
// (weak: a disposed model is forgotten with it).
const SOURCES = new WeakMap<CrossEncoder, string>();

/** The hub dir `model` was read from by loadHuggingFace (undefined for any other model). */
export function huggingFaceSource(model: CrossEncoder): string | undefined {
  return SOURCES.get(model);
}

/**
 * Reads a Hugging Face model directory: the model of config.json with the weights of
 * model.safetensors (or its shards), and the directory's tokenizer. Strict (the default): every
 * parameter comes from the files and every float tensor is used, else one error lists the missing
 * and the unexpected names. Integer buffers (position_ids, token_type_ids) are skipped and reported.
 */
export function loadHuggingFace(
  dir: string,
  options: LoadHuggingFaceOptions = {},
): { model: CrossEncoder; tokenizer: PairTokenizer; report: HuggingFaceReport } {
  const strict = options.strict ?? true;
  const { json, file, family, architecture, labels } = readConfig(dir);
  const config = family.config(json, file);
  const { tokenizer, source } = loadHuggingFaceTokenizer(dir, family.specialTokens);
  if (tokenizer.vocabSize > config.vocabSize)
    throw new Error(
      `${file}: vocab_size ${config.vocabSize} does not cover the tokenizer's ${tokenizer.vocabSize} ids (${source})`,
    );
  // RoBERTa's positions are counted from the padding id: the model's and the tokenizer's must agree.
  if (config.positionPaddingIdx !== undefined && config.positionPaddingIdx !== tokenizer.padId)
    throw new Error(
      `${file}: pad_token_id is ${config.positionPaddingIdx}, the tokenizer's ${family.specialTokens.pad} is id ${tokenizer.padId} (${source})`,
    );
  const { files, tensors } = weightFiles(dir);

  // Match names first: nothing is decoded or assigned until the whole mapping is known to be complete.
  const skipped: string[] = [];
  const unexpected: string[] = [];
  const byParam = new Map<string, { name: string; entry: TensorEntry }>();
  for (const [name, entry] of tensors) {
    if (!(entry.dtype in FLOAT_SIZES) || family.buffers.test(name) || family.ignored?.test(name)) {
      skipped.push(name);
      continue;
    }
    const param = family.paramName(name);
    if (param == null) unexpected.push(name);
    else if (byParam.has(param))
      throw new Error(`${entry.file}: ${name} and ${byParam.get(param)!.name} both map to ${param}`);
    else byParam.set(param, { name, entry });
  }
  const model = new CrossEncoder(config, options.seed ?? 0);
  try {
    const missing = [...model.params.keys()].filter((p) => !byParam.has(p));
    for (const p of byParam.keys()) if (!model.params.has(p)) unexpected.push(byParam.get(p)!.name);
    const headMissing = missing.filter((p) => family.headParams.includes(p));
    const bodyMissing = missing.filter((p) => !family.headParams.includes(p));
    const tolerated = !strict && bodyMissing.length === 0 && unexpected.length === 0;
    if (missing.length + unexpected.length > 0 && !tolerated)
      throw new Error(
        `${dir}: the weights do not match ${architecture} of config.json` +
          (missing.length ? `; missing (${missing.length}): ${missing.join(', ')}` : '') +
          (unexpected.length ? `; unexpected (${unexpected.length}): ${unexpected.join(', ')}` : '') +
          (bodyMissing.length === 0 && unexpected.length === 0
            ? ' (strict: false lets a missing score head keep its seeded init)'
            : ''),
      );
    // Shapes and values of every tensor before any assignment.
    const values = new Map<string, tf.Tensor>();
    try {
      for (const [param, { name, entry }] of byParam) {
        const want = model.params.get(param)!.shape;
        let shape = entry.shape;
        let data = decodeFloat(entry);
        if (family.labelParams.includes(param) && labels === 2 && shape[0] === 2) {
          // Two labels (relevant / not): the score is logit 1 - logit 0, the log-odds that ranks as softmax's p(1).
          const row = data.length / 2;
          data = data.slice(row).map((v, i) => v - data[i]);
          shape = [1, ...shape.slice(1)];
        }
        if (shape.join() !== want.join())
          throw new Error(
            `${entry.file}: ${name} has shape [${entry.shape}], config.json's ${family.shapeField(param)} implies [${want}]`,
          );
        const t = tf.tensor(data, shape);
        values.set(param, t);
        checkFiniteTensor(t, `${entry.file}: ${name}`);
      }
      for (const [param, t] of values) model.params.get(param)!.assign(t);
    } finally {
      tf.dispose([...values.values()]);
    }
    const report: HuggingFaceReport = {
      dir,
      modelType: family.modelType,
      architecture,
      config,
      weightFiles: files,
      skipped,
      missing,
      head: headMissing.length > 0 ? 'missing' : labels === 2 ? 'two-label' : 'classifier',
      tokenizer: source,
    };
    SOURCES.set(model, path.resolve(dir));
    return { model, tokenizer, report };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
