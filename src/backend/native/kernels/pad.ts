// PadV2 (constant padding; the gradient of Slice, e.g. of the [CLS] row a cross-encoder scores) in
// one native pass (kernels/cpu/layout.cpp): every output row written once, the constant around x's
// rows. Other dtypes, ranks above 16 and empty results run tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { padPlan } from '../../plans/layout';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function padV2(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const plan = padPlan(x, args.attrs);
  if (plan === null || tf.util.sizeFromShape(plan.outShape) === 0) return cpuKernel(tf.PadV2, args);
  const xs = hostData(backend, x);
  // The constant as a one-element array of x's type: converted as tfjs's CPU kernel's fill converts it.
  const value =
    x.dtype === 'float32'
      ? Float32Array.of(plan.value)
      : x.dtype === 'int32'
        ? Int32Array.of(plan.value)
        : Uint8Array.of(plan.value);
  return nativeOutput(backend, plan.outShape, x.dtype as 'float32', (out) =>
    addon.pad(xs, x.shape, plan.before, plan.after, value, out),
  );
}

export const padV2Config: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.PadV2,
  kernelFunc: padV2 as unknown as tf.KernelFunc,
};
