// Binary elementwise kernels with broadcasting on the device (cuda.binaryOp): the dtype and shape
// rules of src/backend/plans/elementwise.ts, as on 'native'; the rest falls back.
import * as tf from '@tensorflow/tfjs';

import { addon, cudaDevice } from '../../../native';
import { binaryInputNames, binaryPlan } from '../../plans/elementwise';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

function binaryConfig(kernelName: string): CudaKernelConfig {
  const op = addon.mathOps.binary[kernelName];
  const [aKey, bKey] = binaryInputNames(kernelName);
  return {
    kernelName,
    kernelFunc: (args) => {
      const a = args.inputs[aKey] as tf.TensorInfo;
      const b = args.inputs[bKey] as tf.TensorInfo;
      const backend = args.backend as CudaBackend;
      const plan = binaryPlan(kernelName, a, b);
      if (plan === null) return fallback(kernelName, args);
      return backend.output(plan.shape, plan.outDtype, (out) =>
        cudaDevice().binaryOp(op, backend.buf(a), a.shape, backend.buf(b), b.shape, out),
      );
    },
  };
}

export const binaryKernelConfigs: CudaKernelConfig[] = Object.keys(addon.mathOps.binary).map(binaryConfig);
