// Fill, ZerosLike, OnesLike: native memory filled in the addon (zeros by the allocator), small
// outputs a JS array filled by its own fill (the same conversion of the value). Only
// numeric dtypes with a number value; strings, complex64 and anything else run the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { SMALL_OUTPUT_BYTES } from '../backend';
import { NativeKernelConfig, cpuFallback } from './util';

type NumericDType = 'float32' | 'int32' | 'bool';
const NUMERIC = new Set<string>(['float32', 'int32', 'bool']);

function filled(backend: NativeBackend, shape: number[], dtype: NumericDType, value: number): tf.TensorInfo {
  const size = tf.util.sizeFromShape(shape);
  const zero = value === 0 && !Object.is(value, -0);
  const out = backend.allocate(dtype, size, zero);
  if (!zero) {
    // JS arrays (small outputs) by their own fill: the same conversion of the value.
    if (out.buffer instanceof ArrayBuffer && out.length * out.BYTES_PER_ELEMENT < SMALL_OUTPUT_BYTES) out.fill(value);
    else addon.fill(out, value);
  }
  return backend.makeTensorInfo(shape, dtype, out);
}

export const fillConfig: NativeKernelConfig = {
  kernelName: tf.Fill,
  kernelFunc: (args) => {
    const { shape, value, dtype } = args.attrs as unknown as { shape: number[]; value: number | string; dtype?: tf.DataType };
    const $dtype = dtype || tf.util.inferDtype(value);
    if (typeof value !== 'number' || ($dtype !== 'float32' && $dtype !== 'int32')) return cpuFallback(tf.Fill, args);
    return filled(args.backend as NativeBackend, shape, $dtype, value);
  },
};

function likeConfig(kernelName: string, value: number): NativeKernelConfig {
  return {
    kernelName,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (!NUMERIC.has(x.dtype)) return cpuFallback(kernelName, args);
      return filled(args.backend as NativeBackend, x.shape, x.dtype as NumericDType, value);
    },
  };
}

export const zerosLikeConfig = likeConfig(tf.ZerosLike, 0);
export const onesLikeConfig = likeConfig(tf.OnesLike, 1);
