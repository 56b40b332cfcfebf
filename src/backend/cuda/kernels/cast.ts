// Cast between float32, int32 and bool on the device (tfjs's cpu rules: src/backend/plans/elementwise.ts);
// the same dtype shares the input's buffer. complex64 and string fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { castPlan, NumericDType } from '../../plans/elementwise';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const castConfig: CudaKernelConfig = {
  kernelName: tf.Cast,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const dtype = (args.attrs as { dtype: tf.DataType }).dtype;
    const backend = args.backend as CudaBackend;
    const plan = castPlan(x, dtype);
    if (plan === null) return fallback(tf.Cast, args);
    if (plan === 'identity') return backend.share(x, x.shape);
    return backend.output(x.shape, dtype as NumericDType, (out) => cudaDevice().cast(backend.buf(x), out));
  },
};
