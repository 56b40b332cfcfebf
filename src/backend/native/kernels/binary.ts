// Binary elementwise kernels with broadcasting: addon.binaryOp on float32 (every op) or int32 (Add,
// Sub, Multiply, Maximum, Minimum, SquaredDifference, FloorDiv, comparisons). Output dtypes follow tfjs's
// cpu kernels: comparisons give bool, FloorDiv int32, the rest the inputs' dtype. Mixed or other
// dtypes (tfjs's ops cast before the kernel, so this is rare), complex64 and ranks above 12 run the
// cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { MAX_RANK, NativeKernelConfig, cpuFallback, floatValues, intValues } from './util';

const COMPARISONS = new Set(['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual']);
const INT32_OPS = new Set(['Add', 'Sub', 'Multiply', 'Maximum', 'Minimum', 'SquaredDifference', 'FloorDiv', ...COMPARISONS]);

/** Kernel names with a native binary implementation (the addon's opcode table). */
export const BINARY_KERNELS = Object.keys(addon.mathOps.binary);

function outDtype(kernelName: string, dtype: 'float32' | 'int32'): 'float32' | 'int32' | 'bool' {
  if (COMPARISONS.has(kernelName)) return 'bool';
  if (kernelName === 'FloorDiv') return 'int32';
  return dtype;
}

function binaryConfig(kernelName: string): NativeKernelConfig {
  const op = addon.mathOps.binary[kernelName];
  // Prelu's inputs are (x, alpha); every other binary kernel's are (a, b).
  const [aKey, bKey] = kernelName === 'Prelu' ? ['x', 'alpha'] : ['a', 'b'];
  const takesInt = INT32_OPS.has(kernelName);
  return {
    kernelName,
    kernelFunc: (args) => {
      const a = args.inputs[aKey] as tf.TensorInfo;
      const b = args.inputs[bKey] as tf.TensorInfo;
      const backend = args.backend as NativeBackend;
      const dtype = a.dtype === 'float32' && b.dtype === 'float32' ? 'float32' : a.dtype === 'int32' && b.dtype === 'int32' && takesInt ? 'int32' : null;
      if (dtype === null || a.shape.length > MAX_RANK || b.shape.length > MAX_RANK) return cpuFallback(kernelName, args);
      const av = dtype === 'float32' ? floatValues(backend, a) : intValues(backend, a);
      const bv = dtype === 'float32' ? floatValues(backend, b) : intValues(backend, b);
      if (av === null || bv === null) return cpuFallback(kernelName, args);
      const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const outType = outDtype(kernelName, dtype);
      const out = backend.allocate(outType, tf.util.sizeFromShape(shape));
      if (out.length > 0) addon.binaryOp(op, av, a.shape, bv, b.shape, out);
      return backend.makeTensorInfo(shape, outType, out);
    },
  };
}

export const binaryKernelConfigs: NativeKernelConfig[] = BINARY_KERNELS.map(binaryConfig);
