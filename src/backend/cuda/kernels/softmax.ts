// Softmax and LogSoftmax over the last axis in one device kernel (cuda.softmax); other axes, dtypes,
// rank 0 and empty tensors fall back (src/backend/plans/layout.ts).
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { softmaxPlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

function softmaxConfig(kernelName: string, log: boolean, axisAttr: 'dim' | 'axis'): CudaKernelConfig {
  return {
    kernelName,
    kernelFunc: (args) => {
      const logits = args.inputs.logits as tf.TensorInfo;
      const backend = args.backend as CudaBackend;
      const plan = softmaxPlan(logits, ((args.attrs ?? {}) as Record<string, number>)[axisAttr]);
      if (plan === null) return fallback(kernelName, args);
      return backend.output(logits.shape, 'float32', (out) =>
        cudaDevice().softmax(backend.buf(logits), plan.rows, plan.cols, out, log),
      );
    },
  };
}

export const softmaxKernelConfig = softmaxConfig(tf.Softmax, false, 'dim');
export const logSoftmaxConfig = softmaxConfig(tf.LogSoftmax, true, 'axis');
