// Transpose with any permutation on the device (cuda.transpose); a permutation that only moves
// size-1 axes shares the input's buffer (src/backend/plans/layout.ts).
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { NumericDType } from '../../plans/elementwise';
import { transposePlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const transposeConfig: CudaKernelConfig = {
  kernelName: tf.Transpose,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const plan = transposePlan(x, ((args.attrs ?? {}) as { perm?: number[] }).perm);
    if (plan === null) {
      // An empty tensor: an empty output of the permuted shape.
      const perm = ((args.attrs ?? {}) as { perm?: number[] }).perm;
      if (tf.util.sizeFromShape(x.shape) === 0 && backend.onDevice(x) && perm?.length === x.shape.length)
        return backend.output(
          perm.map((p) => x.shape[p]),
          x.dtype as NumericDType,
          () => {},
        );
      return fallback(tf.Transpose, args);
    }
    if (plan.share) return backend.share(x, plan.shape);
    return backend.output(plan.shape, x.dtype as NumericDType, (out) =>
      cudaDevice().transpose(backend.buf(x), x.shape, plan.perm, out),
    );
  },
};
