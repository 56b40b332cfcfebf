// Concat of n tensors along any axis (kernels/cpu/shape_layout.cpp: rows of [outer, inner_k] copied
// side by side, long rows split across threads). tfjs's own checks and edge cases stay tfjs's: an
// empty result, a single non-empty input (shared, not copied), complex64 and strings, mixed dtypes
// and ranks above 16 run its CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, isNativeDType, KernelArgs, MAX_RANK, nativeOutput } from './shape_common';

function concat(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const backend = args.backend as NativeBackend;
  const { axis } = (args.attrs ?? {}) as { axis: number };
  const first = inputs[0];
  const $axis = tf.util.parseAxisParam(axis, first.shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, $axis);
  const outShape = tf.backend_util.computeOutShape(shapes, $axis);
  const nonEmpty = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (
    tf.util.sizeFromShape(outShape) === 0 ||
    nonEmpty.length < 2 ||
    !isNativeDType(first.dtype) ||
    inputs.some((t) => t.dtype !== first.dtype) ||
    first.shape.length > MAX_RANK
  )
    return cpuKernel(tf.Concat, args);
  const values = nonEmpty.map((t) => hostData(backend, t));
  const nonEmptyShapes = nonEmpty.map((t) => t.shape);
  return nativeOutput(backend, outShape, first.dtype, (out) => addon.concat(values, nonEmptyShapes, $axis, out));
}

export const concatConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Concat,
  kernelFunc: concat as unknown as tf.KernelFunc,
};
