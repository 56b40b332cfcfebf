// Tile on the device (cuda.tile); other dtypes, bad reps, empty results and ranks above 16 fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { NumericDType } from '../../plans/elementwise';
import { tilePlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const tileConfig: CudaKernelConfig = {
  kernelName: tf.Tile,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const plan = tilePlan(x, ((args.attrs ?? {}) as { reps?: number[] }).reps);
    if (plan === null) return fallback(tf.Tile, args);
    return backend.output(plan.shape, x.dtype as NumericDType, (out) =>
      cudaDevice().tile(backend.buf(x), x.shape, plan.reps, out),
    );
  },
};
