// How every fused kernel (the losses of src/losses, the layers of src/nn) reaches a backend's memory,
// and how the fused ops run on backends this package registers nothing for.
//
// A kernel is written once, as a body over the addon's register_op entry points (native/args.h):
// host arrays through `addon` on 'cpu', 'wasm' and 'native', device buffers through `addon.cuda` on
// 'cuda' (the same entry points, the same checks). defineFusedKernel registers it for all four.
// On any other backend (tfjs-node's 'tensorflow', webgl, webgpu, ...) the op wrappers call
// fusedKernelsReady(), which registers the same bodies for that backend on copies of its data, or,
// where the addon cannot be loaded, tells the op to run its plain-tfjs reference composite.
import * as tf from '@tensorflow/tfjs';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs';

import { Addon, addon, addonLoadError, cudaDevice } from '../native';
import {
  DEVICE_BACKEND,
  HOST_BACKENDS,
  HostBackendName,
  runOnBackend,
  runOnCopies,
  runOnDevice,
} from './backend_memory';

/** Every backend the fused kernels are registered for when the package loads. */
export const FUSED_BACKENDS = [...HOST_BACKENDS, DEVICE_BACKEND] as const;

/** The addon's ops a fused kernel body may call: host arrays, or (addon.cuda) device buffers in their
 *  place, with the same arguments. */
export type FusedOps = Pick<
  Addon,
  | 'rankingObjective'
  | 'hiddenMSE'
  | 'attentionMSE'
  | 'scale'
  | 'slice'
  | 'binaryOp'
  | 'layerNorm'
  | 'layerNormGrad'
  | 'gelu'
  | 'geluGrad'
  | 'biasGelu'
  | 'biasGeluGrad'
  | 'attention'
  | 'attentionGrad'
  | 'adamwUpdate'
  | 'sumSquares'
>;

/** A kernel body: ins are the inputs' arrays (null for absent inputs), outs the new outputs';
 *  scratch(n) gives a temporary float32 operand of n elements at the same place. */
export type FusedBody = (
  ops: FusedOps,
  ins: Array<Float32Array | null>,
  outs: Float32Array[],
  scratch: (n: number) => Float32Array,
) => void;

const hostScratch = (n: number) => new Float32Array(n);

/**
 * Runs a fused kernel's body on `backendName`'s memory: in place on 'cpu', 'wasm' and 'native', on
 * device buffers on 'cuda', on host copies on any other backend. Errors from the addon are rethrown
 * under the public op's name.
 */
export function runFusedKernel(
  backend: unknown,
  backendName: string,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  body: FusedBody,
  op: string,
): TensorInfo[] {
  if (backendName === DEVICE_BACKEND) {
    // Device buffer handles stand where the host ops take arrays.
    const ops = cudaDevice() as unknown as FusedOps;
    return runOnDevice(
      backend,
      inputs,
      outputShapes,
      (ins, outs, scratch) =>
        body(
          ops,
          ins as unknown as Float32Array[],
          outs as unknown as Float32Array[],
          scratch as unknown as (n: number) => Float32Array,
        ),
      op,
    );
  }
  if ((HOST_BACKENDS as readonly string[]).includes(backendName))
    return runOnBackend(
      backend,
      backendName as HostBackendName,
      inputs,
      outputShapes,
      (ins, outs) => body(addon, ins, outs, hostScratch),
      op,
    );
  return runOnCopies(backend, inputs, outputShapes, (ins, outs) => body(addon, ins, outs, hostScratch), op);
}

/** True when `backendName` keeps tensors in host memory the kernels read directly (reading a scalar
 *  there costs nothing; on the device it would be a synchronisation). */
export function isHostMemory(backendName: string): boolean {
  return backendName !== DEVICE_BACKEND;
}

// Every fused kernel, by name: its kernelFunc for a backend name, kept so that fusedKernelsReady
// can register it for backends that appear later.
const definitions = new Map<string, (backendName: string) => KernelFunc>();
// Backends whose path notice has been printed.
const noticed = new Set<string>();

/** Registers a fused kernel for every backend of FUSED_BACKENDS (and, through fusedKernelsReady, for
 *  any other backend it is needed on). */
export function defineFusedKernel(kernelName: string, kernelFunc: (backendName: string) => KernelFunc): void {
  definitions.set(kernelName, kernelFunc);
  for (const backendName of FUSED_BACKENDS)
    tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc(backendName) });
}

/**
 * Whether an op's fused kernels (kernelNames: forward and backward) run on the current backend.
 * True where they are registered. Where they are not (tfjs-node's 'tensorflow', webgl, webgpu, ...),
 * registers them there on copies of the backend's data (one native pass per op, gradients through
 * the tape as usual). False on every backend when the addon could not be loaded: the op then runs
 * its reference composite. Off the registered path, a one-time notice per backend says which path
 * it takes.
 */
export function fusedKernelsReady(kernelNames: readonly string[]): boolean {
  const backendName = tf.getBackend();
  const error = addonLoadError();
  const missing = kernelNames.filter((k) => tf.getKernel(k, backendName) === undefined);
  if (missing.length === 0 && !error) return true;
  if (!noticed.has(backendName)) {
    noticed.add(backendName);
    console.warn(
      error
        ? `fused-distill: on backend '${backendName}' the fused ops run their plain-tfjs reference composites (${error.message})`
        : `fused-distill: backend '${backendName}' has no fused kernels: the fused ops run the native kernels on host copies of its tensors`,
    );
  }
  if (error) return false;
  for (const kernelName of missing) {
    const kernelFunc = definitions.get(kernelName);
    if (!kernelFunc) throw new Error(`fused-distill: no fused kernel is defined as '${kernelName}'`);
    tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc(backendName) });
  }
  return true;
}

/** engine().runKernel's outputs as an array (it returns a lone output unwrapped). */
export function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}
