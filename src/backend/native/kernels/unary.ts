// Unary elementwise kernels on float32: addon.unaryOp, one opcode per tfjs kernel name. Output
// float32, or bool for IsNan / IsInf / IsFinite, as tfjs's cpu kernels. Other input dtypes (whose
// output dtypes differ kernel by kernel in tfjs) run the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { NativeKernelConfig, cpuFallback, floatValues } from './util';

const BOOL_OUT = new Set(['IsNan', 'IsInf', 'IsFinite']);

/** Kernel names with a native unary implementation (the addon's opcode table). */
export const UNARY_KERNELS = Object.keys(addon.mathOps.unary);

// The op's numeric attributes, as the addon's p0, p1.
function params(kernelName: string, attrs: tf.NamedAttrMap | undefined): [number, number] {
  const a = (attrs ?? {}) as Record<string, number>;
  if (kernelName === 'LeakyRelu' || kernelName === 'Step') return [a.alpha, 0];
  if (kernelName === 'ClipByValue') return [a.clipValueMin, a.clipValueMax];
  return [0, 0];
}

function unaryConfig(kernelName: string): NativeKernelConfig {
  const op = addon.mathOps.unary[kernelName];
  const outType = BOOL_OUT.has(kernelName) ? 'bool' : 'float32';
  return {
    kernelName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const backend = args.backend as NativeBackend;
      const xv = x.dtype === 'float32' ? floatValues(backend, x) : null;
      if (xv === null) return cpuFallback(kernelName, args);
      const [p0, p1] = params(kernelName, args.attrs);
      if (typeof p0 !== 'number' || typeof p1 !== 'number') return cpuFallback(kernelName, args);
      const out = backend.allocate(outType, xv.length) as Float32Array | Uint8Array;
      if (out.length > 0) addon.unaryOp(op, xv, out, p0, p1);
      return backend.makeTensorInfo(x.shape, outType, out);
    },
  };
}

export const unaryKernelConfigs: NativeKernelConfig[] = UNARY_KERNELS.map(unaryConfig);
