// Transpose with any permutation (kernels/cpu/shape_layout.cpp): runs of the innermost axis copied
// whole when it stays innermost (BERT's [B, L, H, D] -> [B, H, L, D]), tiles otherwise. A permutation
// that only moves size-1 axes changes no memory order: the output shares x's data (as Reshape does).
// Other dtypes, empty tensors and ranks above 16 run tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, isNativeDType, KernelArgs, MAX_RANK, nativeOutput, sameData } from './shape_common';

function isPermutation(perm: unknown, rank: number): perm is number[] {
  if (!Array.isArray(perm) || perm.length !== rank) return false;
  const seen = new Set<number>();
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen.has(p)) return false;
    seen.add(p);
  }
  return true;
}

/** True when perm keeps the order of the axes larger than 1 (the data does not move). */
export function isOrderPreserving(shape: number[], perm: number[]): boolean {
  let last = -1;
  for (const p of perm) {
    if (shape[p] === 1) continue;
    if (p < last) return false;
    last = p;
  }
  return true;
}

function transpose(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { perm } = (args.attrs ?? {}) as { perm?: number[] };
  const rank = x.shape.length;
  if (!isNativeDType(x.dtype) || rank > MAX_RANK || !isPermutation(perm, rank) || tf.util.sizeFromShape(x.shape) === 0)
    return cpuKernel(tf.Transpose, args);
  const shape = perm.map((p) => x.shape[p]);
  if (isOrderPreserving(x.shape, perm)) return sameData(backend, x, shape);
  const xs = hostData(backend, x);
  return nativeOutput(backend, shape, x.dtype, (out) => addon.transpose(xs, x.shape, perm, out));
}

export const transposeConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Transpose,
  kernelFunc: transpose as unknown as tf.KernelFunc,
};
