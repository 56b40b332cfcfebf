// Plumbing shared by the reduction, softmax and layout kernels: typed views of tensor data, native
// outputs, and the way out to tfjs's own CPU kernel for every case the addon does not handle (other
// dtypes, complex64, strings, empty tensors, ranks above 16), so that behaviour there equals 'cpu'.
import * as tf from '@tensorflow/tfjs';

import type { HostArray } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuFallback } from './util';

export type { NumericDType as NativeDType } from '../../plans/elementwise';
type NativeDType = import('../../plans/elementwise').NumericDType;

export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** Runs tfjs's 'cpu' kernel `name` (looked up at call time) on the same backend and arguments. */
export function cpuKernel(name: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  return cpuFallback(name, args as Parameters<tf.KernelFunc>[0]);
}

/**
 * A tensor's values as the typed array its dtype calls for. The CPU backend's Cast keeps the source's
 * array when no precision is lost (a float32 tensor may hold an Int32Array or Uint8Array, an int32
 * one a Uint8Array): those are converted, the only copy on this path.
 */
export function hostData(backend: NativeBackend, t: tf.TensorInfo): HostArray {
  const v = backend.values(t);
  if (t.dtype === 'float32') return v instanceof Float32Array ? v : Float32Array.from(v);
  if (t.dtype === 'int32') return v instanceof Int32Array ? v : Int32Array.from(v);
  return v instanceof Uint8Array ? v : Uint8Array.from(v);
}

/**
 * A native output of `shape` filled by `fill`. If fill throws (the addon rejected an argument), the
 * block is freed at once rather than left to the garbage collector.
 */
export function nativeOutput(
  backend: NativeBackend,
  shape: number[],
  dtype: NativeDType,
  fill: (out: HostArray) => void,
): tf.TensorInfo {
  const out = backend.allocate(dtype, tf.util.sizeFromShape(shape));
  try {
    fill(out);
  } catch (e) {
    backend.discard(out);
    throw e;
  }
  return backend.makeTensorInfo(shape, dtype, out);
}

/** Kernel-level reshape: the output shares x's data (what tfjs's Reshape does), no copy. */
export function sameData(backend: NativeBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}
