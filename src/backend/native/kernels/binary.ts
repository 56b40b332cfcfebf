// Binary elementwise kernels with broadcasting: addon.binaryOp on float32 (every op) or int32 (Add,
// Sub, Multiply, Maximum, Minimum, SquaredDifference, FloorDiv, comparisons). Dtype and shape rules
// (src/backend/plans/elementwise.ts) are shared with the 'cuda' backend; what they do not take runs
// the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { binaryInputNames, binaryPlan } from '../../plans/elementwise';
import type { NativeBackend } from '../backend';
import { NativeKernelConfig, cpuFallback, floatValues, intValues } from './util';

/** Kernel names with a native binary implementation (the addon's opcode table). */
export const BINARY_KERNELS = Object.keys(addon.mathOps.binary);

function binaryConfig(kernelName: string): NativeKernelConfig {
  const op = addon.mathOps.binary[kernelName];
  const [aKey, bKey] = binaryInputNames(kernelName);
  return {
    kernelName,
    kernelFunc: (args) => {
      const a = args.inputs[aKey] as tf.TensorInfo;
      const b = args.inputs[bKey] as tf.TensorInfo;
      const backend = args.backend as NativeBackend;
      const plan = binaryPlan(kernelName, a, b);
      if (plan === null) return cpuFallback(kernelName, args);
      const av = plan.dtype === 'float32' ? floatValues(backend, a) : intValues(backend, a);
      const bv = plan.dtype === 'float32' ? floatValues(backend, b) : intValues(backend, b);
      if (av === null || bv === null) return cpuFallback(kernelName, args);
      const out = backend.allocate(plan.outDtype, tf.util.sizeFromShape(plan.shape));
      if (out.length > 0) addon.binaryOp(op, av, a.shape, bv, b.shape, out);
      return backend.makeTensorInfo(plan.shape, plan.outDtype, out);
    },
  };
}

export const binaryKernelConfigs: NativeKernelConfig[] = BINARY_KERNELS.map(binaryConfig);
