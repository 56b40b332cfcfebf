// How each fused layer op picks its path: the fused kernel where one is registered for the current
// backend (this package registers them for 'cpu', 'wasm', 'native' and 'cuda'), else the plain-tfjs
// reference composite, so the ops run on every backend.
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

import { Addon, addon, cudaDevice } from '../native';
import { DEVICE_BACKEND, FUSED_BACKENDS, FusedBackendName, runOnBackend, runOnDevice } from '../losses/kernel_io';

/** Every backend the fused layer kernels are registered for. */
export const NN_BACKENDS = [...FUSED_BACKENDS, DEVICE_BACKEND] as const;
type NnBackendName = FusedBackendName | typeof DEVICE_BACKEND;
/** The addon's layer ops: host arrays, or (addon.cuda) device buffers in their place, same arguments. */
export type NnOps = Pick<Addon, 'layerNorm' | 'layerNormGrad' | 'gelu' | 'geluGrad'>;

/**
 * Runs a layer kernel's body on `backendName`'s memory: host arrays through the addon, or device
 * buffers through addon.cuda (the same entry points and checks, native/nn_ops.cc).
 */
export function runLayerKernel(
  backend: unknown,
  backendName: NnBackendName,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  body: (ops: NnOps, ins: Float32Array[], outs: Float32Array[]) => void,
  op: string,
): TensorInfo[] {
  if (backendName === DEVICE_BACKEND) {
    // Device buffer handles stand where the host ops take arrays.
    const ops = cudaDevice() as unknown as NnOps;
    return runOnDevice(backend, inputs, outputShapes, (ins, outs) => body(ops, ins as unknown as Float32Array[], outs as unknown as Float32Array[]), op);
  }
  return runOnBackend(backend, backendName, inputs, outputShapes, (ins, outs) => body(addon, ins as Float32Array[], outs), op);
}

/** True when `kernelName` has a kernel on the current backend. */
export function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/** engine().runKernel's outputs as an array (it returns a lone output unwrapped). */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}
