// GatherV2 (axis, batchDims) on the device (cuda.gather), shapes by tfjs's own rules
// (src/backend/plans/layout.ts). The device does not check indices (that would need a host sync):
// an index outside [0, dim) gives zeros in its output slice, TensorFlow's GPU rule, where tfjs's
// CPU kernel throws. Other dtypes, non-int32 indices and empty tensors fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { gatherPlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const gatherV2Config: CudaKernelConfig = {
  kernelName: tf.GatherV2,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const indices = args.inputs.indices as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const { axis, batchDims } = (args.attrs ?? {}) as unknown as { axis: number; batchDims?: number };
    const plan = gatherPlan(x, indices, axis, batchDims);
    if (plan === null) return fallback(tf.GatherV2, args);
    return backend.output(plan.outShape, plan.dtype, (out) =>
      cudaDevice().gather(backend.buf(x), plan.dims, backend.buf(indices), out),
    );
  },
};
