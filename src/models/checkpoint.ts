// Cross-encoder weights on disk.
// - save/load: tfjs's weights-manifest layout (model.json + one weights.bin, encoded and decoded with
//   tf.io), written atomically, with the model config in model.json.
// - importSafetensors: a Hugging Face safetensors file with BERT's parameter names (F32, F16 or BF16),
//   read by hand because the format is an 8-byte header length, a JSON header and raw tensors, and
//   no npm package reads it into tfjs.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { writeAtomic } from '../data/atomic';
import { CrossEncoder, CrossEncoderConfig } from './cross_encoder';

const FORMAT = 'fused-distill-cross-encoder';

/** Writes dir/model.json and dir/weights.bin (weights.bin first: model.json's presence means complete). */
export async function saveCrossEncoder(model: CrossEncoder, dir: string): Promise<void> {
  const named = Object.fromEntries(model.params);
  const { data, specs } = await tf.io.encodeWeights(named);
  fs.mkdirSync(dir, { recursive: true });
  await writeAtomic(path.join(dir, 'weights.bin'), (w) => w.write(new Uint8Array(data)));
  const manifest = {
    format: FORMAT,
    config: model.config,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  await writeAtomic(path.join(dir, 'model.json'), (w) => w.write(`${JSON.stringify(manifest, null, 1)}\n`));
}

/** Reads a JSON file; a missing, truncated or malformed file is an error naming it. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (truncated or corrupt?): ${(e as Error).message}`);
  }
}

type WeightSpec = { name: string; shape: number[]; dtype: string };

/**
 * Decodes tfjs weights from `binFile` by their specs, checking first that the file holds exactly
 * the bytes they describe (a truncated file is named, not reported as a tensor of the wrong size)
 * and then that every value is finite (a NaN or Inf weight is named with its tensor).
 */
export function decodeWeightsFile(binFile: string, specs: WeightSpec[]): Record<string, tf.Tensor> {
  if (!Array.isArray(specs)) throw new Error(`${binFile}: its manifest lists no weights`);
  let bin: Buffer;
  try {
    bin = fs.readFileSync(binFile);
  } catch (e) {
    throw new Error(`${binFile}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const expected = specs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
  if (specs.some((s) => s.dtype !== 'float32')) throw new Error(`${binFile}: only float32 weights are read`);
  if (bin.length !== expected)
    throw new Error(
      `${binFile}: holds ${bin.length} bytes, its manifest describes ${expected} (truncated or corrupt?)`,
    );
  const tensors = tf.io.decodeWeights(
    bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer,
    specs as tf.io.WeightsManifestEntry[],
  );
  try {
    for (const [name, t] of Object.entries(tensors)) checkFiniteTensor(t, `${binFile}: ${name}`);
  } catch (e) {
    tf.dispose(Object.values(tensors));
    throw e;
  }
  return tensors;
}

/** Throws when a tensor holds a NaN or an Inf, naming `where` and the first such value's index. */
export function checkFiniteTensor(t: tf.Tensor, where: string): void {
  const values = t.dataSync();
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i])) throw new Error(`${where}: value ${i} is ${values[i]}; weights must be finite`);
}

export function loadCrossEncoder(dir: string): CrossEncoder {
  const file = path.join(dir, 'model.json');
  const manifest = readJsonFile(file) as {
    format?: string;
    config?: CrossEncoderConfig;
    weightsManifest?: Array<{ paths: string[]; weights: WeightSpec[] }>;
  };
  if (manifest?.format !== FORMAT) throw new Error(`${file}: not a ${FORMAT} (format ${manifest?.format})`);
  const entry = manifest.weightsManifest?.[0];
  if (!manifest.config || !entry || !Array.isArray(entry.paths))
    throw new Error(`${file}: has no config or weights manifest (truncated or corrupt?)`);
  const binFile = path.join(dir, entry.paths[0]);
  const tensors = decodeWeightsFile(binFile, entry.weights);
  const model = new CrossEncoder(manifest.config);
  try {
    assignAll(model, tensors, binFile);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

function assignAll(model: CrossEncoder, tensors: Record<string, tf.Tensor>, source: string): void {
  try {
    for (const [name, v] of model.params) {
      const t = tensors[name];
      if (!t) throw new Error(`${source}: missing parameter ${name}`);
      if (t.shape.join() !== v.shape.join())
        throw new Error(`${source}: ${name} has shape [${t.shape}], the model expects [${v.shape}]`);
      v.assign(t);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The tensors of a safetensors file, as float32. */
export function readSafetensors(file: string): Record<string, tf.Tensor> {
  const buf = fs.readFileSync(file);
  if (buf.length < 8) throw new Error(`${file}: too short for a safetensors header`);
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > buf.length - 8)
    throw new Error(`${file}: header length ${headerLength} runs past the end of the file`);
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, SafetensorsEntry>;
  const base = 8 + headerLength;
  const out: Record<string, tf.Tensor> = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = e.data_offsets;
    const n = e.shape.reduce((a, b) => a * b, 1);
    const bytes = buf.subarray(base + begin, base + end);
    const size = { F32: 4, F16: 2, BF16: 2 }[e.dtype];
    if (!size) throw new Error(`${file}: ${name} has dtype ${e.dtype}; only F32, F16 and BF16 are read`);
    if (bytes.length !== n * size)
      throw new Error(`${file}: ${name} has ${bytes.length} bytes for shape [${e.shape}] of ${e.dtype}`);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (e.dtype === 'F32') values[i] = bytes.readFloatLE(4 * i);
      else if (e.dtype === 'BF16')
        values[i] = new Float32Array(new Uint32Array([bytes.readUInt16LE(2 * i) << 16]).buffer)[0];
      else values[i] = halfToFloat(bytes.readUInt16LE(2 * i));
    }
    out[name] = tf.tensor(values, e.shape);
  }
  return out;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** The ranking head a BertModel file lacks: the one set of parameters an import may leave at its init by default. */
export const CLASSIFIER_PARAMS: readonly string[] = ['classifier.weight', 'classifier.bias'];

/**
 * Loads BERT weights from a Hugging Face safetensors file into a model of `config`. Names may carry
 * the "bert." prefix (BertForSequenceClassification) or not (BertModel). Parameters the file lacks
 * keep the seeded initialisation and are listed in the result, but only those in `allowMissing`
 * (default: the classifier head, which a BertModel has none of) may be: any other unmatched
 * parameter is an error naming them all, since a file whose names match nothing would otherwise
 * train from random weights. NaN or Inf values are an error naming the tensor.
 */
export function importSafetensors(
  file: string,
  config: CrossEncoderConfig,
  seed = 0,
  options: { allowMissing?: readonly string[] } = {},
): { model: CrossEncoder; missing: string[] } {
  const allowed = new Set(options.allowMissing ?? CLASSIFIER_PARAMS);
  const tensors = readSafetensors(file);
  const model = new CrossEncoder(config, seed);
  const missing: string[] = [];
  try {
    for (const [name, t] of Object.entries(tensors)) checkFiniteTensor(t, `${file}: ${name}`);
    for (const [name, v] of model.params) {
      const t = tensors[name] ?? tensors[name.replace(/^bert\./, '')];
      if (!t) {
        missing.push(name);
        continue;
      }
      if (t.shape.join() !== v.shape.join())
        throw new Error(`${file}: ${name} has shape [${t.shape}], the model expects [${v.shape}]`);
      v.assign(t);
    }
    const unmatched = missing.filter((n) => !allowed.has(n));
    if (unmatched.length > 0)
      throw new Error(
        `${file}: ${unmatched.length} of the model's ${model.params.size} parameters have no tensor in the file (${unmatched.slice(0, 8).join(', ')}${unmatched.length > 8 ? ', ...' : ''}); ` +
          `list the ones meant to keep their initialisation in allowMissing`,
      );
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    tf.dispose(Object.values(tensors));
  }
  return { model, missing };
}
