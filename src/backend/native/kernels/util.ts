// Shared plumbing of the native kernels: the tfjs 'cpu' fallback for cases the addon does not cover,
// and typed views of tensor data.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';

export type NativeKernelConfig = Omit<tf.KernelConfig, 'backendName'>;
type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Runs tfjs's own 'cpu' kernel on the native backend (a subclass of the cpu backend, so its kernels
 * run unchanged): for dtypes or cases the addon does not take, so behaviour equals 'cpu' exactly.
 * Looked up at call time, as registered.
 */
export function cpuFallback(kernelName: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const k = tf.getKernel(kernelName, 'cpu');
  if (!k) throw new Error(`native backend: no 'cpu' kernel ${kernelName} to fall back to`);
  return k.kernelFunc(args);
}

/**
 * The values of a float32 tensor as a Float32Array, or null where tfjs stores them otherwise:
 * tfjs's cpu Cast from int32 or bool keeps the source's Int32Array/Uint8Array under a float32
 * dtype, and those are converted here (natively, into a short-lived JS array).
 */
export function floatValues(backend: NativeBackend, t: tf.TensorInfo): Float32Array | null {
  const values = (backend.data.get(t.dataId) as { values?: unknown }).values;
  if (values instanceof Float32Array) return values;
  if (values instanceof Int32Array || values instanceof Uint8Array) {
    const out = new Float32Array(values.length);
    if (values.length > 0) addon.cast(values, out);
    return out;
  }
  return null;
}

/** The values of an int32 tensor as an Int32Array, or null where they are stored otherwise. */
export function intValues(backend: NativeBackend, t: tf.TensorInfo): Int32Array | null {
  const values = (backend.data.get(t.dataId) as { values?: unknown }).values;
  return values instanceof Int32Array ? values : null;
}

/** Runs whatever implements `kernelName` on 'native' (native or fallback) as a nested kernel call. */
export function runNativeKernel(
  kernelName: string,
  backend: NativeBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const k = tf.getKernel(kernelName, 'native');
  if (!k) throw new Error(`native backend: kernel ${kernelName} is not registered`);
  return k.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}
