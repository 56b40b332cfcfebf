// Slice (begin/size, any rank, size -1 = to the end) by tfjs's own parsing and checks. A slice that
// is one contiguous range stays tfjs's zero-copy view (its CPU kernel, a subarray of the same native
// block); every other slice is a native strided copy (kernels/cpu/layout.cpp). Other dtypes,
// empty results and ranks above 16 run tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { slicePlan } from '../../plans/layout';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function slice(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { begin, size } = (args.attrs ?? {}) as { begin: number | number[]; size: number | number[] };
  const plan = slicePlan(x, begin, size);
  if (plan === null || plan.contiguous || tf.util.sizeFromShape(plan.size) === 0) return cpuKernel(tf.Slice, args);
  const xs = hostData(backend, x);
  return nativeOutput(backend, plan.size, x.dtype as 'float32', (out) =>
    addon.slice(xs, x.shape, plan.begin, plan.size, out),
  );
}

export const sliceConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Slice,
  kernelFunc: slice as unknown as tf.KernelFunc,
};
