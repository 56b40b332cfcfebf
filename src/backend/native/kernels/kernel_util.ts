// Small helpers the native kernels share: the backend's type, calling another kernel registered for
// 'native' (native or fallback), and falling back to tfjs's CPU implementation of the same kernel.
import * as tf from '@tensorflow/tfjs';

import type { NativeBackend } from '../backend';

export type NativeInputs = { [name: string]: tf.TensorInfo };
export type NativeKernelFunc = (args: { inputs: NativeInputs; backend: NativeBackend; attrs?: tf.NamedAttrMap }) => tf.TensorInfo | tf.TensorInfo[];

/** Runs whatever implements `kernelName` on 'native' (native or fallback), as a nested kernel call. */
export function runNativeKernel(kernelName: string, backend: NativeBackend, inputs: NativeInputs, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
  const k = tf.getKernel(kernelName, 'native');
  if (!k) throw new Error(`native backend: kernel ${kernelName} is not registered`);
  return k.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}

/** tfjs's CPU implementation of `kernelName`, run on the native backend's memory (same semantics). */
export function cpuFallback(kernelName: string, args: { inputs: NativeInputs; backend: NativeBackend; attrs?: tf.NamedAttrMap }): tf.TensorInfo | tf.TensorInfo[] {
  const k = tf.getKernel(kernelName, 'cpu');
  if (!k) throw new Error(`native backend: tfjs has no cpu kernel ${kernelName}`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]);
}

/** A kernel config for 'native' from a function typed with the native backend. */
export function nativeKernel(kernelName: string, kernelFunc: NativeKernelFunc): Omit<tf.KernelConfig, 'backendName'> {
  return { kernelName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
