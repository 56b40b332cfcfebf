// Reductions (Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin) over any axes on the device
// (cuda.reduce), with tfjs's attributes and output dtypes (src/backend/plans/reduce.ts).
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { REDUCE_SPECS, ReduceSpec, reducePlan } from '../../plans/reduce';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

function reduceConfig(spec: ReduceSpec): CudaKernelConfig {
  return {
    kernelName: spec.kernelName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const backend = args.backend as CudaBackend;
      const plan = reducePlan(spec, x, args.attrs);
      if (plan === null) return fallback(spec.kernelName, args);
      return backend.output(plan.shape, plan.outDtype, (out) =>
        cudaDevice().reduce(spec.op, backend.buf(x), x.shape, plan.axes, out),
      );
    },
  };
}

export const reduceConfigs = REDUCE_SPECS.map(reduceConfig);
