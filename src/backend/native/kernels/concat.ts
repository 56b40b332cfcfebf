// Concat of n tensors along any axis (kernels/cpu/layout.cpp: rows of [outer, inner_k] copied
// side by side, long rows split across threads). tfjs's own checks and edge cases stay tfjs's: an
// empty result, a single non-empty input (shared, not copied), complex64 and strings, mixed dtypes
// and ranks above 16 run its CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { concatPlan } from '../../plans/layout';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function concat(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const backend = args.backend as NativeBackend;
  const { axis } = (args.attrs ?? {}) as { axis: number };
  const plan = concatPlan(inputs, axis);
  // An empty result and a single non-empty input (shared, not copied) stay tfjs's.
  if (plan === null || tf.util.sizeFromShape(plan.outShape) === 0 || plan.nonEmpty.length < 2)
    return cpuKernel(tf.Concat, args);
  const values = plan.nonEmpty.map((t) => hostData(backend, t));
  const shapes = plan.nonEmpty.map((t) => t.shape);
  return nativeOutput(backend, plan.outShape, inputs[0].dtype as 'float32', (out) =>
    addon.concat(values, shapes, plan.axis, out),
  );
}

export const concatConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Concat,
  kernelFunc: concat as unknown as tf.KernelFunc,
};
