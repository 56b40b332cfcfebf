// Tile (kernels/cpu/layout.cpp: each output row is its source row copied, then doubled in
// place reps times). Other dtypes, reps of the wrong length, empty results and ranks above 16 run
// tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { NativeBackend } from '../backend';
import { tilePlan } from '../../plans/layout';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function tile(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { reps } = (args.attrs ?? {}) as { reps?: number[] };
  const plan = tilePlan(x, reps);
  if (plan === null) return cpuKernel(tf.Tile, args);
  const xs = hostData(backend, x);
  return nativeOutput(backend, plan.shape, x.dtype as 'float32', (out) => addon.tile(xs, x.shape, plan.reps, out));
}

export const tileConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.Tile,
  kernelFunc: tile as unknown as tf.KernelFunc,
};
