// Slice (begin/size, any rank, size -1 = to the end) on the device (cuda.slice), by tfjs's own
// parsing and checks (src/backend/plans/layout.ts). Unlike 'cpu' there is no zero-copy view of a
// contiguous range: the result is always a new buffer. Other dtypes and ranks above 16 fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { NumericDType } from '../../plans/elementwise';
import { slicePlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const sliceConfig: CudaKernelConfig = {
  kernelName: tf.Slice,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const { begin, size } = (args.attrs ?? {}) as unknown as { begin: number | number[]; size: number | number[] };
    const plan = slicePlan(x, begin, size);
    if (plan === null) return fallback(tf.Slice, args);
    return backend.output(plan.size, x.dtype as NumericDType, (out) =>
      cudaDevice().slice(backend.buf(x), x.shape, plan.begin, plan.size, out),
    );
  },
};
