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
  const manifest = { format: FORMAT, config: model.config, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] };
  await writeAtomic(path.join(dir, 'model.json'), (w) => w.write(`${JSON.stringify(manifest, null, 1)}\n`));
}

export function loadCrossEncoder(dir: string): CrossEncoder {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  if (manifest.format !== FORMAT) throw new Error(`${dir}/model.json: not a ${FORMAT} (format ${manifest.format})`);
  const bin = fs.readFileSync(path.join(dir, manifest.weightsManifest[0].paths[0]));
  const tensors = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest.weightsManifest[0].weights);
  const model = new CrossEncoder(manifest.config as CrossEncoderConfig);
  assignAll(model, tensors, `${dir}/weights.bin`);
  return model;
}

function assignAll(model: CrossEncoder, tensors: Record<string, tf.Tensor>, source: string): void {
  for (const [name, v] of model.params) {
    const t = tensors[name];
    if (!t) throw new Error(`${source}: missing parameter ${name}`);
    if (t.shape.join() !== v.shape.join()) throw new Error(`${source}: ${name} has shape [${t.shape}], the model expects [${v.shape}]`);
    v.assign(t);
  }
  tf.dispose(Object.values(tensors));
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
  if (headerLength > buf.length - 8) throw new Error(`${file}: header length ${headerLength} runs past the end of the file`);
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
    if (bytes.length !== n * size) throw new Error(`${file}: ${name} has ${bytes.length} bytes for shape [${e.shape}] of ${e.dtype}`);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (e.dtype === 'F32') values[i] = bytes.readFloatLE(4 * i);
      else if (e.dtype === 'BF16') values[i] = new Float32Array(new Uint32Array([bytes.readUInt16LE(2 * i) << 16]).buffer)[0];
      else values[i] = halfToFloat(bytes.readUInt16LE(2 * i));
    }
    out[name] = tf.tensor(values, e.shape);
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/**
 * Loads BERT weights from a Hugging Face safetensors file into a model of `config`. Names may carry
 * the "bert." prefix (BertForSequenceClassification) or not (BertModel); parameters the file lacks
 * (a BertModel has no classifier) keep the seeded initialisation, and are listed in the result.
 */
export function importSafetensors(file: string, config: CrossEncoderConfig, seed = 0): { model: CrossEncoder; missing: string[] } {
  const tensors = readSafetensors(file);
  const model = new CrossEncoder(config, seed);
  const missing: string[] = [];
  for (const [name, v] of model.params) {
    const t = tensors[name] ?? tensors[name.replace(/^bert\./, '')];
    if (!t) {
      missing.push(name);
      continue;
    }
    if (t.shape.join() !== v.shape.join()) throw new Error(`${file}: ${name} has shape [${t.shape}], the model expects [${v.shape}]`);
    v.assign(t);
  }
  tf.dispose(Object.values(tensors));
  return { model, missing };
}
