// How the fused kernels reach a backend's tensor memory. Zero-copy where we know the layout: 'cpu'
// keeps each tensor in a Float32Array; 'native' (this package's backend, a subclass of cpu) too, in
// memory the addon allocates; 'wasm' keeps it in the wasm heap, which we view; 'cuda' in device
// buffers. Any other backend: copies through its readSync / write (runOnCopies).
import * as os from 'os';

import { KernelBackend, TensorInfo } from '@tensorflow/tfjs';

import { DeviceBuffer } from '../native';
import { FusedDistillError } from './validate';

/** Backends whose tensors the fused kernels read and write in place as host arrays. */
export const HOST_BACKENDS = ['cpu', 'wasm', 'native'] as const;
export type HostBackendName = (typeof HOST_BACKENDS)[number];

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

/** Rethrows an addon error under the public op's name (errors from elsewhere pass unchanged). */
function rethrowAs(op: string, e: unknown): never {
  // Not instanceof Error: the addon's errors may come from another realm (a vm context, as in jest).
  if (!op || Object.prototype.toString.call(e) !== '[object Error]') throw e;
  throw new FusedDistillError(op, (e as Error).message.replace(/^fused-distill: [\w.]+: /, ''));
}

// Outputs larger than the machine's memory are refused before any is allocated: with overcommit the
// allocation could succeed and only writing it end in the OOM killer. An allocation that fails anyway
// (V8's RangeError) is reported the same way, as a FusedDistillError naming the op and the bytes.
// Read once: os.totalmem() is a system call (9 us on a paravirtualised VM here), and every fused
// kernel call allocates.
const TOTAL_MEMORY = os.totalmem();

function allocateOutputs<T>(op: string, outputShapes: number[][], allocate: (shape: number[]) => T): T[] {
  const bytes = outputShapes.reduce((sum, shape) => sum + 4 * size(shape), 0);
  const noMemory = () =>
    new FusedDistillError(op || 'fused kernel', `out of memory: needs ${bytes} bytes for its outputs`);
  if (bytes > TOTAL_MEMORY) throw noMemory();
  try {
    return outputShapes.map(allocate);
  } catch (e) {
    if ((e as Error)?.name === 'RangeError') throw noMemory();
    throw e;
  }
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
  backendName: HostBackendName,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  kernel: (ins: Array<Float32Array | null>, outs: Float32Array[]) => void,
  op = '',
): TensorInfo[] {
  if (backendName === 'cpu' || backendName === 'native') {
    const cpu = backend as CpuBackend;
    const outs = allocateOutputs(op, outputShapes, (shape) =>
      cpu.allocate ? cpu.allocate('float32', size(shape)) : uninitialized(size(shape)),
    );
    const ins = inputs.map((t) => (t ? cpuFloats(cpu, t) : null));
    try {
      kernel(ins, outs);
    } catch (e) {
      rethrowAs(op, e);
    }
    return outs.map((values, i) => cpu.makeTensorInfo(outputShapes[i], 'float32', values));
  }
  const wasm = backend as WasmBackend;
  const infos = outputShapes.map((shape) => wasm.makeOutput(shape, 'float32'));
  const ins = inputs.map((t) => (t ? wasm.typedArrayFromHeap(t) : null));
  try {
    kernel(
      ins,
      infos.map((info) => wasm.typedArrayFromHeap(info)),
    );
  } catch (e) {
    for (const info of infos) wasm.disposeData(info.dataId);
    rethrowAs(op, e);
  }
  return infos;
}

/** Kernel-level identity: the output shares x's memory (what tfjs's own Identity kernel does). */
export function forward(backend: unknown, x: TensorInfo): TensorInfo {
  (backend as KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

// ---- the 'cuda' backend (src/backend/cuda): tensors are device buffers, the fused kernels run the
// addon's device entry points (addon.cuda.X). Typed structurally: ops do not import the backend.
export const DEVICE_BACKEND = 'cuda';

interface DeviceBackend extends KernelBackend {
  buffer(t: TensorInfo): DeviceBuffer | null;
  allocBuffer(dtype: 'float32' | 'bool', size: number): DeviceBuffer | null;
  releaseBuffer(buffer: DeviceBuffer, dtype: 'float32' | 'bool', size: number): void;
  adopt(buffer: DeviceBuffer | null, shape: number[], dtype: 'float32'): TensorInfo;
}

/**
 * runOnBackend for 'cuda': the kernel gets the inputs' device buffers (null for absent ones) and
 * new float32 output buffers of outputShapes, and may take scratch buffers from `scratch` (freed
 * after it returns). If it throws, the outputs are freed and the error rethrown under the op's name.
 */
export function runOnDevice(
  backend: unknown,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  kernel: (ins: Array<DeviceBuffer | null>, outs: DeviceBuffer[], scratch: (n: number) => DeviceBuffer) => void,
  op = '',
): TensorInfo[] {
  const b = backend as DeviceBackend;
  const outs = outputShapes.map((shape) => b.allocBuffer('float32', size(shape)) as DeviceBuffer);
  const scratches: Array<[DeviceBuffer, number]> = [];
  const scratch = (n: number) => {
    const buf = b.allocBuffer('float32', n) as DeviceBuffer;
    scratches.push([buf, n]);
    return buf;
  };
  try {
    kernel(
      inputs.map((t) => (t ? b.buffer(t) : null)),
      outs,
      scratch,
    );
  } catch (e) {
    outs.forEach((buf, i) => b.releaseBuffer(buf, 'float32', size(outputShapes[i])));
    rethrowAs(op, e);
  } finally {
    for (const [buf, n] of scratches) b.releaseBuffer(buf, 'float32', n);
  }
  return outs.map((buf, i) => b.adopt(buf, outputShapes[i], 'float32'));
}

/**
 * runOnBackend for a backend whose memory we cannot view (tfjs-node's 'tensorflow', webgl, webgpu,
 * ...): the inputs are read into host arrays (readSync), the kernel runs on them, and its outputs are
 * written back as that backend's float32 tensors. Correct everywhere, at the price of two copies.
 */
export function runOnCopies(
  backend: unknown,
  inputs: Array<TensorInfo | undefined>,
  outputShapes: number[][],
  kernel: (ins: Array<Float32Array | null>, outs: Float32Array[]) => void,
  op = '',
): TensorInfo[] {
  const b = backend as KernelBackend;
  const ins = inputs.map((t) => {
    if (!t) return null;
    const values = b.readSync(t.dataId);
    return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  });
  const outs = allocateOutputs(op, outputShapes, (shape) => new Float32Array(size(shape)));
  try {
    kernel(ins, outs);
  } catch (e) {
    rethrowAs(op, e);
  }
  return outs.map((values, i) => ({
    dataId: b.write(values, outputShapes[i], 'float32'),
    shape: outputShapes[i],
    dtype: 'float32',
  }));
}
