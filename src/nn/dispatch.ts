// How each fused layer op picks its path: the fused kernel where one is registered for the current
// backend (this package registers them for 'cpu', 'wasm' and 'native'), else the plain-tfjs
// reference composite, so the ops run on every backend.
import * as tf from '@tensorflow/tfjs';

/** True when `kernelName` has a kernel on the current backend. */
export function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}

/** engine().runKernel's outputs as an array (it returns a lone output unwrapped). */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}
