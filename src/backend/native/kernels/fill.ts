// Fill, ZerosLike, OnesLike: native memory filled in the addon (zeros by the allocator), small
// outputs a JS array filled by its own fill (the same conversion of the value). Only
// numeric dtypes with a number value; strings, complex64 and anything else run the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { SMALL_OUTPUT_BYTES } from '../backend';
import { FillPlan, fillPlan, likePlan } from '../../plans/elementwise';
import { NativeKernelConfig, cpuFallback } from './util';

function filled(backend: NativeBackend, { shape, dtype, value }: FillPlan): tf.TensorInfo {
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
    const plan = fillPlan(args.attrs);
    return plan ? filled(args.backend as NativeBackend, plan) : cpuFallback(tf.Fill, args);
  },
};

function likeConfig(kernelName: string, value: number): NativeKernelConfig {
  return {
    kernelName,
    kernelFunc: (args) => {
      const plan = likePlan(args.inputs.x as tf.TensorInfo, value);
      return plan ? filled(args.backend as NativeBackend, plan) : cpuFallback(kernelName, args);
    },
  };
}

export const zerosLikeConfig = likeConfig(tf.ZerosLike, 0);
export const onesLikeConfig = likeConfig(tf.OnesLike, 1);
