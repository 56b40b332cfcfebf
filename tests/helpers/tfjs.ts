// tfjs helpers shared by the TS-API suites: backend selection and tensor <-> array plumbing.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { registerNativeBackend } from '../../src/backend/native/register';

registerNativeBackend();

// Every backend the fused ops run on: one spec, run against each.
export const BACKENDS = ['cpu', 'wasm', 'native'] as const;
export type BackendName = (typeof BACKENDS)[number];

export async function useBackend(name: BackendName): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  if (tf.getBackend() !== name) throw new Error(`backend is ${tf.getBackend()}, wanted ${name}`);
}

export function values(x: tf.Tensor): Float32Array {
  return x.dataSync() as Float32Array;
}

export function scalarValue(x: tf.Tensor): number {
  if (x.rank !== 0) throw new Error(`expected a scalar, got shape [${x.shape.join(', ')}]`);
  return x.dataSync()[0];
}

/** Number of live tensors; f must leave it unchanged. */
export function expectNoLeak(f: () => void, label = ''): void {
  f(); // warm-up: lazily created backend state must not count as a leak
  const before = tf.memory().numTensors;
  f();
  f();
  const after = tf.memory().numTensors;
  if (after !== before)
    throw new Error(`${label}: ${after - before} tensors leaked (before ${before}, after ${after})`);
}
