// GatherV2 (axis, batchDims; negative axis as tfjs) as row copies (kernels/cpu/layout.cpp).
// The addon checks every index; an index outside [0, dim) is reported exactly as tfjs's CPU kernel
// reports it ("GatherV2: the index value 7 is not in [0, 4]"). Other dtypes, non-int32 indices,
// empty tensors, ranks above 16 and shapes tfjs rejects run its CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { gatherPlan } from '../../plans/layout';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function gatherV2(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const indices = args.inputs.indices as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { axis, batchDims } = (args.attrs ?? {}) as { axis: number; batchDims?: number };
  const plan = gatherPlan(x, indices, axis, batchDims);
  if (plan === null) return cpuKernel(tf.GatherV2, args);
  const xs = hostData(backend, x);
  const ids = hostData(backend, indices) as Int32Array;
  try {
    return nativeOutput(backend, plan.outShape, plan.dtype, (out) => addon.gather(xs, plan.dims, ids, out));
  } catch (e) {
    const axisDim = x.shape[plan.axis];
    const bad = ids.find((v) => v < 0 || v > axisDim - 1);
    if (bad === undefined) throw e;
    throw new Error(`GatherV2: the index value ${bad} is not in [0, ${axisDim - 1}]`);
  }
}

export const gatherV2Config: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.GatherV2,
  kernelFunc: gatherV2 as unknown as tf.KernelFunc,
};
