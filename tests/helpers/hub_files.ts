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
