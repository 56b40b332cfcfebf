// Unary elementwise kernels on float32: addon.unaryOp, one opcode per tfjs kernel name. Output
// float32, or bool for IsNan / IsInf / IsFinite, as tfjs's cpu kernels (src/backend/plans/elementwise.ts,
// shared with 'cuda'). Other input dtypes run the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { unaryPlan } from '../../plans/elementwise';
import type { NativeBackend } from '../backend';
import { NativeKernelConfig, cpuFallback, floatValues } from './util';

/** Kernel names with a native unary implementation (the addon's opcode table). */
export const UNARY_KERNELS = Object.keys(addon.mathOps.unary);

function unaryConfig(kernelName: string): NativeKernelConfig {
  const op = addon.mathOps.unary[kernelName];
  return {
    kernelName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const backend = args.backend as NativeBackend;
      const plan = unaryPlan(kernelName, x, args.attrs);
      const xv = plan ? floatValues(backend, x) : null;
      if (plan === null || xv === null) return cpuFallback(kernelName, args);
      const out = backend.allocate(plan.outDtype, xv.length) as Float32Array | Uint8Array;
      if (out.length > 0) addon.unaryOp(op, xv, out, plan.p0, plan.p1);
      return backend.makeTensorInfo(x.shape, plan.outDtype, out);
    },
  };
}

export const unaryKernelConfigs: NativeKernelConfig[] = UNARY_KERNELS.map(unaryConfig);
