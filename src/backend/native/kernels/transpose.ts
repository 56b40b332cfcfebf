// Transpose with any permutation (kernels/cpu/layout.cpp): runs of the innermost axis copied
// whole when it stays innermost (BERT's [B, L, H, D] -> [B, H, L, D]), tiles otherwise. A permutation
// that only moves size-1 axes changes no memory order: the output shares x's data (as Reshape does).
// The rules are src/backend/plans/layout.ts (shared with 'cuda'); the rest runs tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { transposePlan } from '../../plans/layout';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, KernelArgs, nativeOutput, sameData } from './shape_common';

export { isOrderPreserving } from '../../plans/layout';

function transpose(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const plan = transposePlan(x, ((args.attrs ?? {}) as { perm?: number[] }).perm);
  if (plan === null) return cpuKernel(tf.Transpose, args);
  if (plan.share) return sameData(backend, x, plan.shape);
  const xs = hostData(backend, x);
  return nativeOutput(backend, plan.shape, x.dtype as 'float32', (out) => addon.transpose(xs, x.shape, plan.perm, out));
}

export const transposeConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Transpose,
  kernelFunc: transpose as unknown as tf.KernelFunc,
};
