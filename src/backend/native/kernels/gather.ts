// GatherV2 (axis, batchDims; negative axis as tfjs) as row copies (kernels/cpu/shape_layout.cpp).
// The addon checks every index; an index outside [0, dim) is reported exactly as tfjs's CPU kernel
// reports it ("GatherV2: the index value 7 is not in [0, 4]"). Other dtypes, non-int32 indices,
// empty tensors, ranks above 16 and shapes tfjs rejects run its CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, isNativeDType, KernelArgs, MAX_RANK, nativeOutput } from './shape_common';

function gatherV2(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const indices = args.inputs.indices as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { axis, batchDims } = (args.attrs ?? {}) as { axis: number; batchDims?: number };
  if (
    !isNativeDType(x.dtype) ||
    indices.dtype !== 'int32' ||
    x.shape.length > MAX_RANK ||
    tf.util.sizeFromShape(x.shape) === 0 ||
    tf.util.sizeFromShape(indices.shape) === 0
  )
    return cpuKernel(tf.GatherV2, args);
  const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0];
  let info: ReturnType<typeof tf.backend_util.segment_util.collectGatherOpShapeInfo>;
  try {
    info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as unknown as tf.Tensor,
      indices as unknown as tf.Tensor,
      parsedAxis,
      batchDims ?? 0,
    );
  } catch {
    return cpuKernel(tf.GatherV2, args); // tfjs's error, after its own index checks
  }
  if (tf.util.sizeFromShape(info.outputShape) === 0) return cpuKernel(tf.GatherV2, args);
  const xs = hostData(backend, x);
  const ids = hostData(backend, indices) as Int32Array;
  const dims = [info.batchSize, info.outerSize, info.dimSize, info.sliceSize];
  try {
    return nativeOutput(backend, info.outputShape, x.dtype, (out) => addon.gather(xs, dims, ids, out));
  } catch (e) {
    const axisDim = x.shape[parsedAxis];
    const bad = ids.find((v) => v < 0 || v > axisDim - 1);
    if (bad === undefined) throw e;
    throw new Error(`GatherV2: the index value ${bad} is not in [0, ${axisDim - 1}]`);
  }
}

export const gatherV2Config: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.GatherV2,
  kernelFunc: gatherV2 as unknown as tf.KernelFunc,
};
