// Shared plumbing of the 'cuda' kernels: the CPU fallback for cases the device ops do not take, and
// nested calls of other 'cuda' kernels.
import * as tf from '@tensorflow/tfjs';

import type { CudaBackend } from '../backend';

export type CudaKernelConfig = Omit<tf.KernelConfig, 'backendName'>;
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** tfjs's 'cpu' kernel on downloaded copies (CudaBackend.runCpuKernel): behaviour equals 'cpu' exactly. */
export function fallback(kernelName: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  return (args.backend as CudaBackend).runCpuKernel(kernelName, args);
}

/** Runs whatever implements `kernelName` on 'cuda' (device or fallback) as a nested kernel call. */
export function runCudaKernel(
  kernelName: string,
  backend: CudaBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const k = tf.getKernel(kernelName, 'cuda');
  if (!k) throw new Error(`cuda backend: kernel ${kernelName} is not registered`);
  return k.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}
