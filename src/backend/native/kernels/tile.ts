// Tile (kernels/cpu/shape_layout.cpp: each output row is its source row copied, then doubled in
// place reps times). Other dtypes, reps of the wrong length, empty results and ranks above 16 run
// tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, isNativeDType, KernelArgs, MAX_RANK, nativeOutput } from './shape_common';

function tile(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { reps } = (args.attrs ?? {}) as { reps?: number[] };
  const rank = x.shape.length;
  if (
    !isNativeDType(x.dtype) ||
    rank > MAX_RANK ||
    !Array.isArray(reps) ||
    reps.length !== rank ||
    !reps.every((r) => Number.isInteger(r) && r >= 0)
  )
    return cpuKernel(tf.Tile, args);
  const shape = x.shape.map((d, i) => d * reps[i]);
  if (tf.util.sizeFromShape(shape) === 0) return cpuKernel(tf.Tile, args);
  const xs = hostData(backend, x);
  return nativeOutput(backend, shape, x.dtype, (out) => addon.tile(xs, x.shape, reps, out));
}

export const tileConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Tile,
  kernelFunc: tile as unknown as tf.KernelFunc,
};
