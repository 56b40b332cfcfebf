// Zero-copy access to tensor memory for the fused kernels: 'cpu' keeps each tensor in a
// Float32Array; 'native' (this package's backend, a subclass of cpu) too, in memory the addon
// allocates; 'wasm' keeps it in the wasm heap, which we view.
import { KernelBackend, TensorInfo } from '@tensorflow/tfjs';

import { FusedDistillError } from './validate';

export const FUSED_BACKENDS = ['cpu', 'wasm', 'native'] as const;
export type FusedBackendName = (typeof FUSED_BACKENDS)[number];

interface CpuBackend extends KernelBackend {
  data: { get(dataId: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
  // 'native' only: memory from the addon.
  allocate?(dtype: 'float32', size: number): Float32Array;
}
interface WasmBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// Uninitialised memory for outputs the kernel overwrites entirely: `new Float32Array(n)` would
// zero-fill first, an extra pass over the gradient.
function uninitialized(n: number): Float32Array {
  if (n < 256) return new Float32Array(n);
  const b = Buffer.allocUnsafeSlow(n * 4);
  return new Float32Array(b.buffer, b.byteOffset, n);
}

// The cpu backend stores most float32 tensors as a Float32Array, but some kernels (Cast from int32)
// keep the source's Int32Array: those are converted once, the only copy on this path.
function cpuFloats(cpu: CpuBackend, t: TensorInfo): Float32Array {
  const values = cpu.data.get(t.dataId).values;
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
}

/**
 * Runs a fused kernel on `backend`: allocates the outputs, then hands the kernel Float32Array views
 * of its inputs and outputs. Outputs are allocated before any view is taken because a wasm
 * allocation may grow (and so detach) the heap. If the kernel throws (the addon rejected an input),
 * the outputs are freed and the error is rethrown under the public op's name.
 */
export function runOnBackend(
  backend: unknown,
  backendName: FusedBackendName,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  kernel: (ins: Array<Float32Array | null>, outs: Float32Array[]) => void,
  op = '',
): TensorInfo[] {
  const rethrow = (e: unknown): never => {
    if (!op || !(e instanceof Error)) throw e;
    throw new FusedDistillError(op, e.message.replace(/^fused-distill: [\w.]+: /, ''));
  };
  if (backendName === 'cpu' || backendName === 'native') {
    const cpu = backend as CpuBackend;
    const outs = outputShapes.map((shape) => (cpu.allocate ? cpu.allocate('float32', size(shape)) : uninitialized(size(shape))));
    const ins = inputs.map((t) => (t ? cpuFloats(cpu, t) : null));
    try {
      kernel(ins, outs);
    } catch (e) {
      rethrow(e);
    }
    return outs.map((values, i) => cpu.makeTensorInfo(outputShapes[i], 'float32', values));
  }
  const wasm = backend as WasmBackend;
  const infos = outputShapes.map((shape) => wasm.makeOutput(shape, 'float32'));
  const ins = inputs.map((t) => (t ? wasm.typedArrayFromHeap(t) : null));
  try {
    kernel(ins, infos.map((info) => wasm.typedArrayFromHeap(info)));
  } catch (e) {
    for (const info of infos) wasm.disposeData(info.dataId);
    rethrow(e);
  }
  return infos;
}

/** Kernel-level identity: the output shares x's memory (what tfjs's own Identity kernel does). */
export function forward(backend: unknown, x: TensorInfo): TensorInfo {
  (backend as KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}
