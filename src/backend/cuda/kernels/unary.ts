// Unary elementwise kernels on float32 on the device (cuda.unaryOp, one opcode per tfjs kernel name);
// output float32, or bool for IsNan / IsInf / IsFinite (src/backend/plans/elementwise.ts).
import * as tf from '@tensorflow/tfjs';

import { addon, cudaDevice } from '../../../native';
import { unaryPlan } from '../../plans/elementwise';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

function unaryConfig(kernelName: string): CudaKernelConfig {
  const op = addon.mathOps.unary[kernelName];
  return {
    kernelName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const backend = args.backend as CudaBackend;
      const plan = unaryPlan(kernelName, x, args.attrs);
      if (plan === null) return fallback(kernelName, args);
      return backend.output(x.shape, plan.outDtype, (out) =>
        cudaDevice().unaryOp(op, backend.buf(x), out, plan.p0, plan.p1),
      );
    },
  };
}

export const unaryKernelConfigs: CudaKernelConfig[] = Object.keys(addon.mathOps.unary).map(unaryConfig);
