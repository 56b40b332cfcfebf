// The 'native' backend's memory and data plumbing. It is tfjs's own CPU backend (MathBackendCPU)
// with tensor memory that the addon allocates: kernels the addon implements read and write it in
// place, every other kernel runs tfjs's CPU implementation on the same arrays, so nothing is ever
// missing. Subclassing the stock backend is what lets those fallbacks run unchanged.
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

import { addon } from '../../native';

type NumericArray = Float32Array | Int32Array | Uint8Array;
type NumericDType = 'float32' | 'int32' | 'bool';

interface StoredData {
  values?: unknown;
  dtype: tf.DataType;
}

function isNumeric(values: unknown): values is NumericArray {
  return values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array;
}

const BYTES: Record<NumericDType, number> = { float32: 4, int32: 4, bool: 1 };

export class NativeBackend extends MathBackendCPU {
  // Every block this backend allocated (weakly: a block never stored, say because its kernel threw,
  // is left to the garbage collector, whose finalizer frees it).
  private readonly allocated = new WeakSet<ArrayBuffer>();
  // Blocks stored as tensor data, with how many dataIds hold each: a kernel may store one array under
  // two dataIds, and the block is freed only when the last of them is disposed.
  private readonly owners = new Map<ArrayBuffer, number>();
  // Blocks whose last owner went away while a kernel was running, freed once no kernel runs. tfjs's
  // CPU kernels (the fallbacks) may read an intermediate's values, dispose the intermediate and go
  // on using — or return, or store again — the array (tfjs-backend-cpu's fft_utils does, for FFT,
  // IFFT, RFFT, IRFFT and STFT): harmless for a garbage-collected JS array, a use of a freed and
  // detached block here (the values read as empty, or the block is freed twice). Found by the
  // tfjs-core op suite with every tensor's data in addon memory (tests/tfjs_core/run.js, native-mem).
  private readonly pendingFree = new Set<ArrayBuffer>();
  private flushQueued = false;

  constructor() {
    super();
    // MathBackendCPU's first write warns "install tfjs-node"; this backend is the answer to that.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** A typed array over new native memory, for a kernel's output (uninitialised unless `zero`). */
  allocate(dtype: NumericDType, size: number, zero = false): NumericArray {
    if (size === 0) return dtype === 'float32' ? new Float32Array(0) : dtype === 'int32' ? new Int32Array(0) : new Uint8Array(0);
    const buffer = addon.allocHostBuffer(size * BYTES[dtype], zero);
    this.allocated.add(buffer);
    return dtype === 'float32' ? new Float32Array(buffer) : dtype === 'int32' ? new Int32Array(buffer) : new Uint8Array(buffer);
  }

  /** Float32 output of `shape`, registered as a tensor: the kernel then fills `values`. */
  makeFloatOutput(shape: number[]): { info: tf.TensorInfo; values: Float32Array } {
    const values = this.allocate('float32', tf.util.sizeFromShape(shape)) as Float32Array;
    return { info: this.makeTensorInfo(shape, 'float32', values), values };
  }

  /** The stored values of a float32 tensor as a Float32Array (int32 data kept by a Cast is converted). */
  floats(t: tf.TensorInfo): Float32Array {
    const values = this.data.get(t.dataId).values;
    return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  }

  /** The stored values of a numeric tensor, as stored (no copy). */
  values(t: tf.TensorInfo): NumericArray {
    const values = this.data.get(t.dataId).values;
    if (!isNumeric(values)) throw new Error(`native backend: tensor of dtype ${t.dtype} has no numeric data`);
    return values;
  }

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): object {
    this.freePending();
    const id = super.write(values, shape, dtype);
    this.retain(values);
    return id;
  }

  override move(dataId: object, values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.freePending();
    super.move(dataId, values, shape, dtype, refCount);
    this.retain(values);
  }

  override disposeData(dataId: object, force = false): boolean {
    this.freePending();
    const entry = this.data.has(dataId) ? (this.data.get(dataId) as StoredData) : undefined;
    const released = super.disposeData(dataId, force);
    if (entry && !this.data.has(dataId)) this.release(entry.values);
    return released;
  }

  // Reads hand out a copy of native memory: the caller may keep the array after disposing the
  // tensor, and disposal frees (and detaches) the block at once.
  override readSync(dataId: object): tf.backend_util.BackendValues {
    const values = super.readSync(dataId);
    return isNumeric(values) && this.owners.has(values.buffer as ArrayBuffer) ? values.slice() : values;
  }

  // Kernels' own reads (fallback kernels call bufferSync on their inputs) need no copy.
  override bufferSync<R extends tf.Rank, D extends tf.DataType>(t: tf.TensorInfo): tf.TensorBuffer<R, D> {
    const values = (this.data.get(t.dataId) as StoredData).values;
    if (t.dtype === 'string' || t.dtype === 'complex64' || !isNumeric(values)) return super.bufferSync(t);
    return tf.buffer(t.shape, t.dtype, values) as unknown as tf.TensorBuffer<R, D>;
  }

  override memory(): { unreliable: boolean; reasons: string[]; nativeBytes: number; nativeBuffers: number } {
    this.freePending();
    const stats = addon.hostBufferStats();
    return {
      unreliable: true,
      reasons: ['Arrays that fallback kernels allocate are freed by garbage collection; nativeBytes is exact.'],
      nativeBytes: stats.bytes,
      nativeBuffers: stats.buffers,
    };
  }

  override dispose(): void {
    this.freePending();
    super.dispose();
  }

  private retain(values: unknown): void {
    if (!isNumeric(values) || !this.allocated.has(values.buffer as ArrayBuffer)) return;
    const buffer = values.buffer as ArrayBuffer;
    this.owners.set(buffer, (this.owners.get(buffer) ?? 0) + 1);
    this.pendingFree.delete(buffer); // stored again before its kernel returned: owned once more
  }

  private release(values: unknown): void {
    if (!isNumeric(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    const count = this.owners.get(buffer);
    if (count === undefined) return;
    if (count > 1) {
      this.owners.set(buffer, count - 1);
      return;
    }
    this.owners.delete(buffer);
    if (kernelRunning()) {
      this.pendingFree.add(buffer);
      this.queueFree();
      return;
    }
    addon.freeHostBuffer(buffer);
  }

  /** Frees the blocks left unowned by kernels, once no kernel is running. */
  private freePending(): void {
    if (this.pendingFree.size === 0 || kernelRunning()) return;
    for (const buffer of this.pendingFree) if (!this.owners.has(buffer)) addon.freeHostBuffer(buffer);
    this.pendingFree.clear();
  }

  // Kernels run synchronously, so this microtask runs after the kernel that left a block unowned has
  // returned; the next write, move or dispose from outside a kernel frees it even earlier.
  private queueFree(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.freePending();
    });
  }
}

/** Whether tfjs's engine is inside a kernel call (the CPU fallbacks' intermediates are disposed there). */
function kernelRunning(): boolean {
  return tf.engine().state.kernelDepth > 0;
}
