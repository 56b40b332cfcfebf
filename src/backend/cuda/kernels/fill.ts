// Fill, ZerosLike, OnesLike on the device (cuda.fill); strings and complex64 fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { FillPlan, fillPlan, likePlan } from '../../plans/elementwise';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

function filled(backend: CudaBackend, { shape, dtype, value }: FillPlan): tf.TensorInfo {
  return backend.output(shape, dtype, (out) => cudaDevice().fill(out, value));
}

export const fillConfig: CudaKernelConfig = {
  kernelName: tf.Fill,
  kernelFunc: (args) => {
    const plan = fillPlan(args.attrs);
    return plan ? filled(args.backend as CudaBackend, plan) : fallback(tf.Fill, args);
  },
};

function likeConfig(kernelName: string, value: number): CudaKernelConfig {
  return {
    kernelName,
    kernelFunc: (args) => {
      const plan = likePlan(args.inputs.x as tf.TensorInfo, value);
      return plan ? filled(args.backend as CudaBackend, plan) : fallback(kernelName, args);
    },
  };
}

export const zerosLikeConfig = likeConfig(tf.ZerosLike, 0);
export const onesLikeConfig = likeConfig(tf.OnesLike, 1);
