// Random tensors generated on the device (cuda.randomUniform / randomNormal, counter-based Philox: a
// (seed, index) pair gives the same number as the addon's host version). tfjs has no random kernels
// (tf.randomUniform / randomNormal fill a host buffer, uploaded like any tf.tensor), so these are
// this package's own kernel names, run with tf.engine().runKernel(RANDOM_UNIFORM, {}, attrs).
import type { CudaBackend } from '../backend';
import { cudaDevice } from '../../../native';
import { CudaKernelConfig } from './util';

export const RANDOM_UNIFORM = 'FusedDistillRandomUniform';
export const RANDOM_NORMAL = 'FusedDistillRandomNormal';

interface RandomAttrs {
  shape: number[];
  /** uniform: [a, b) = [lo, hi); normal: mean a, standard deviation b */
  a: number;
  b: number;
  seed: number;
}

function checkAttrs(name: string, attrs: unknown): RandomAttrs {
  const a = (attrs ?? {}) as RandomAttrs;
  if (!Array.isArray(a.shape) || !a.shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new Error(`${name}: shape must be an array of non-negative integers, got ${JSON.stringify(a.shape)}`);
  for (const k of ['a', 'b', 'seed'] as const)
    if (typeof a[k] !== 'number' || !Number.isFinite(a[k]))
      throw new Error(`${name}: ${k} must be a finite number, got ${String(a[k])}`);
  if (!Number.isInteger(a.seed) || a.seed < 0)
    throw new Error(`${name}: seed must be a non-negative integer, got ${a.seed}`);
  return a;
}

function randomConfig(kernelName: string, normal: boolean): CudaKernelConfig {
  return {
    kernelName,
    kernelFunc: (args) => {
      const { shape, a, b, seed } = checkAttrs(kernelName, args.attrs);
      const dev = cudaDevice();
      return (args.backend as CudaBackend).output(shape, 'float32', (out) =>
        normal ? dev.randomNormal(out, a, b, seed) : dev.randomUniform(out, a, b, seed),
      );
    },
  };
}

export const randomUniformConfig = randomConfig(RANDOM_UNIFORM, false);
export const randomNormalConfig = randomConfig(RANDOM_NORMAL, true);
