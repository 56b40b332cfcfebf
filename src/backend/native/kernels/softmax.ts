// Softmax over the last axis in one kernel (kernels/cpu/softmax.cpp) instead of tfjs's
// Max, Sub, Exp, Sum, RealDiv chain. Same attribute (dim: -1 or rank - 1; tfjs supports no other)
// and the same NaN results for rows with NaN, +Inf or only -Inf. Anything else (another dtype,
// another dim, rank 0, an empty tensor) runs tfjs's CPU kernel, errors included.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { softmaxPlan } from '../../plans/layout';
import { NativeBackend } from '../backend';
import { cpuKernel, KernelArgs, nativeOutput } from './shape_common';

function softmax(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const logits = args.inputs.logits as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const plan = softmaxPlan(logits, ((args.attrs ?? {}) as { dim?: number }).dim);
  if (plan === null) return cpuKernel(tf.Softmax, args);
  const x = backend.floats(logits);
  return nativeOutput(backend, logits.shape, 'float32', (out) =>
    addon.softmax(x, plan.rows, plan.cols, out as Float32Array),
  );
}

export const softmaxConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Softmax,
  kernelFunc: softmax as unknown as tf.KernelFunc,
};
