// Concat of n tensors along any axis on the device (cuda.concat); a single non-empty input is copied
// (cuda.copy), an empty result is an empty tensor. Mixed dtypes, complex64, strings and ranks above
// 16 fall back (src/backend/plans/layout.ts).
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { NumericDType } from '../../plans/elementwise';
import { concatPlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const concatConfig: CudaKernelConfig = {
  kernelName: tf.Concat,
  kernelFunc: (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const backend = args.backend as CudaBackend;
    const { axis } = (args.attrs ?? {}) as unknown as { axis: number };
    const plan = concatPlan(inputs, axis);
    if (plan === null) return fallback(tf.Concat, args);
    const dtype = inputs[0].dtype as NumericDType;
    const dev = cudaDevice();
    if (plan.nonEmpty.length === 1) {
      const only = plan.nonEmpty[0];
      return backend.output(plan.outShape, dtype, (out) =>
        dev.copy(out, backend.buf(only), tf.util.sizeFromShape(only.shape)),
      );
    }
    return backend.output(plan.outShape, dtype, (out) =>
      dev.concat(
        plan.nonEmpty.map((t) => backend.buf(t)),
        plan.nonEmpty.map((t) => t.shape),
        plan.axis,
        out,
      ),
    );
  },
};
