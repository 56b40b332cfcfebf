// Saving and loading cross-encoders, and importing a Hugging Face safetensors file built by hand.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { CrossEncoder, CrossEncoderConfig, importSafetensors, loadCrossEncoder, saveCrossEncoder } from '../src/models';

const tiny: CrossEncoderConfig = {
  vocabSize: 30,
  hidden: 8,
  layers: 2,
  heads: 2,
  intermediate: 16,
  maxPosition: 12,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.02,
};
const inputs = {
  inputIds: tf.tensor2d([[2, 5, 6, 3, 7, 3]], undefined, 'int32'),
  tokenTypeIds: tf.tensor2d([[0, 0, 0, 0, 1, 1]], undefined, 'int32'),
  attentionMask: tf.tensor2d([[1, 1, 1, 1, 1, 1]], undefined, 'int32'),
};

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-ckpt-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('save then load gives the same parameters and scores', async () => {
  const model = new CrossEncoder(tiny, 11);
  await saveCrossEncoder(model, dir);
  expect(fs.readdirSync(dir).sort()).toEqual(['model.json', 'weights.bin']);
  const loaded = loadCrossEncoder(dir);
  expect(loaded.config).toEqual(tiny);
  for (const [name, v] of model.params) expect(loaded.params.get(name)!.arraySync()).toEqual(v.arraySync());
  expect(loaded.forward(inputs).scores.arraySync()).toEqual(model.forward(inputs).scores.arraySync());
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ format: 'something else' }));
  expect(() => loadCrossEncoder(dir)).toThrow(/not a fused-distill-cross-encoder/);
});

// IEEE half precision of a float32 (round to nearest, normal range only: enough for the test values).
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (x === 0) return sign;
  return sign | (exp << 10) | Math.round((u & 0x7fffff) / 8192);
}

it('imports BertModel weights from safetensors (F32 and F16), keeping the classifier it lacks', () => {
  const source = new CrossEncoder(tiny, 21);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Buffer[] = [];
  let offset = 0;
  const halfName = 'bert.encoder.layer.1.intermediate.dense.weight';
  for (const [name, v] of source.params) {
    if (name.startsWith('classifier')) continue; // a BertModel checkpoint has none
    const values = v.dataSync();
    let bytes: Buffer;
    if (name === halfName) {
      bytes = Buffer.alloc(values.length * 2);
      values.forEach((x, i) => bytes.writeUInt16LE(toHalf(x), 2 * i));
    } else {
      bytes = Buffer.from(new Float32Array(values).buffer);
    }
    header[name.replace(/^bert\./, '')] = {
      dtype: name === halfName ? 'F16' : 'F32',
      shape: v.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(file, Buffer.concat([len, json, ...chunks]));

  const { model, missing } = importSafetensors(file, tiny, 99);
  expect(missing).toEqual(['classifier.weight', 'classifier.bias']);
  for (const [name, v] of source.params) {
    if (name.startsWith('classifier')) continue;
    const got = model.params.get(name)!.dataSync();
    const want = v.dataSync();
    const tol = name === halfName ? 1e-3 * Math.max(...Array.from(want, Math.abs)) : 0;
    want.forEach((x, i) => expect(Math.abs(got[i] - x)).toBeLessThanOrEqual(tol));
  }

  const bad = path.join(dir, 'bad.safetensors');
  fs.writeFileSync(bad, Buffer.concat([len, json]));
  expect(() => importSafetensors(bad, tiny)).toThrow(/bytes for shape/);
  expect(() => importSafetensors(file, { ...tiny, hidden: 16, intermediate: 32 })).toThrow(/has shape/);
});
