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
/** Outputs below this many bytes live in plain JS typed arrays (freed by the garbage collector). */
export const SMALL_OUTPUT_BYTES = 4096;

/**
 * The float32 values of `t` as stored, without the copy `dataSync()` makes, where the current backend
 * keeps them in host memory ('native' or 'cpu'); null elsewhere. Read-only, and valid only until `t`
 * is disposed: for hot loops that read a tensor once (the optimizer's gradients and parameters).
 */
export function hostFloats(t: tf.TensorInfo): Float32Array | null {
  const b = tf.engine().backend as unknown as { data?: { get(id: object): { values?: unknown } } };
  if (!(b instanceof MathBackendCPU) || t.dtype !== 'float32') return null;
  const values = b.data!.get(t.dataId).values;
  return values instanceof Float32Array ? values : null;
}

/**
 * A new float32 tensor of `shape` whose values the caller then fills, where the current backend is
 * 'native': its memory comes from the backend's block cache (no page faults, no garbage-collected
 * array per call, as a fresh `new Float32Array` of a 31 MB embedding would cost every step); null
 * elsewhere.
 */
export function hostFloatOutput(shape: number[]): { values: Float32Array; tensor: tf.Tensor } | null {
  const b = tf.engine().backend;
  if (!(b instanceof NativeBackend)) return null;
  const { info, values } = b.makeFloatOutput(shape);
  return { values, tensor: tf.engine().makeTensorFromTensorInfo(info) };
}

/**
 * The size class of a native block for `bytes` (kernels/block_size.h, which the device allocator
 * shares): the next m * 2^k (m = 8..16) at or above it, 8 classes per doubling, so a block serves
 * requests up to 12.5 % smaller (a batch a few tokens shorter).
 */
export function blockSize(bytes: number): number {
  return addon.blockSize(bytes);
}

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
  // Freed blocks by size class (blockSize: 8 classes per doubling), reused by the next allocation of
  // that class: no malloc, no page faults, and no per-block finalizer records,
  // which N-API runs only when the event loop turns, so a synchronous training loop that really
  // freed every block grew RSS by ~30 MB per 1000 steps. Like tfjs's wasm heap, a stale view of a
  // disposed tensor may see the block reused; reads (dataSync) are copies, so callers never hold one.
  // Size classes are kept in least-recently-used order (a Map's insertion order, re-inserted on use):
  // past the limit, the sizes unused longest are freed first, so a change of shapes (evaluation after
  // training) replaces the cache's contents instead of piling new sizes onto old ones. Exact byte
  // lengths as the classes made every new batch shape (scoring batches sorted by length, training
  // batches padded to their longest pair) miss: its forward pass then ran on fresh memory, ~150-200
  // ms more for a 2-layer model at [64, L], and the cache filled to its limit with sizes of lengths
  // gone by (a 4.8 GB RSS for a BERT-mini student at 64 pairs a step).
  // The limit adapts: 512 MB, or twice the most memory ever live at once, whichever is larger. A fixed
  // 512 MB was smaller than a BERT-mini step with tf.train.adam cycles through (~1.1 GB cached beside
  // ~0.7 GB live): least-recently-used eviction of a cyclic pattern then freed every block just before
  // its reuse, and the step ran at 870 ms instead of 400 (page faults on fresh memory). Setting
  // FUSED_DISTILL_HOST_CACHE_MB fixes the limit instead.
  private readonly cache = new Map<number, ArrayBuffer[]>();
  private cachedBytes = 0;
  private cacheLimit: number | null =
    process.env.FUSED_DISTILL_HOST_CACHE_MB !== undefined
      ? Number(process.env.FUSED_DISTILL_HOST_CACHE_MB) * 1024 * 1024
      : null;
  // Bytes of native blocks handed out and not yet returned, and the most ever (an over-estimate when
  // a block handed out is never stored and the garbage collector frees it: the limit errs larger).
  private liveBytes = 0;
  private peakLiveBytes = 0;
  // Each block's bytes in use (its tensor's; the block's own length is its size class).
  private readonly usedBytes = new WeakMap<ArrayBuffer, number>();

  constructor() {
    super();
    // MathBackendCPU's first write warns "install tfjs-node"; this backend is the answer to that.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /**
   * Memory for a kernel's output of `size` elements (uninitialised unless `zero`): native memory, or
   * for outputs under SMALL_OUTPUT_BYTES a plain JS typed array. A native block costs ~3 us to
   * allocate and free (an external ArrayBuffer and its detach), more than a small op's whole work;
   * the addon takes either kind.
   */
  allocate(dtype: NumericDType, size: number, zero = false): NumericArray {
    if (size * BYTES[dtype] < SMALL_OUTPUT_BYTES)
      return dtype === 'float32'
        ? new Float32Array(size)
        : dtype === 'int32'
          ? new Int32Array(size)
          : new Uint8Array(size);
    const used = size * BYTES[dtype];
    const bytes = blockSize(used);
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakLiveBytes) this.peakLiveBytes = this.liveBytes;
    const list = this.cache.get(bytes);
    let buffer = list?.pop();
    if (buffer) {
      this.cachedBytes -= bytes;
      this.cache.delete(bytes); // most recently used: to the end of the order
      if (list!.length > 0) this.cache.set(bytes, list!);
      if (zero) new Uint8Array(buffer, 0, used).fill(0);
    } else {
      buffer = addon.allocHostBuffer(bytes, zero);
      this.allocated.add(buffer);
    }
    this.usedBytes.set(buffer, used);
    return dtype === 'float32'
      ? new Float32Array(buffer, 0, size)
      : dtype === 'int32'
        ? new Int32Array(buffer, 0, size)
        : new Uint8Array(buffer, 0, size);
  }

  /** Frees an output `allocate` returned that was never stored (its kernel threw). */
  discard(values: NumericArray): void {
    if (!this.allocated.has(values.buffer as ArrayBuffer) || this.owners.has(values.buffer as ArrayBuffer)) return;
    this.liveBytes = Math.max(0, this.liveBytes - values.buffer.byteLength);
    addon.freeHostBuffer(values.buffer as ArrayBuffer);
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

  /**
   * t's float32 values for a kernel to overwrite in place, where no other tensor can see them: a
   * whole native block held by t's dataId alone, and that dataId by t alone (a clone, a reshape or a
   * contiguous slice shares memory). Null otherwise (small outputs in JS arrays included: whether a
   * view of them exists is unknown).
   */
  exclusiveFloats(t: tf.TensorInfo): Float32Array | null {
    const entry = this.data.get(t.dataId) as (StoredData & { refCount: number }) | undefined;
    const values = entry?.values;
    if (!entry || entry.refCount !== 1 || !(values instanceof Float32Array)) return null;
    const buffer = values.buffer as ArrayBuffer;
    if (this.owners.get(buffer) !== 1 || values.byteOffset !== 0 || values.byteLength !== this.usedBytes.get(buffer))
      return null;
    return values;
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

  override move(
    dataId: object,
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
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
  // tensor, whose block is then reused (or freed and detached).
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

  override memory(): {
    unreliable: boolean;
    reasons: string[];
    nativeBytes: number;
    nativeBuffers: number;
    cachedBytes: number;
  } {
    this.freePending();
    const stats = addon.hostBufferStats();
    return {
      unreliable: true,
      reasons: [
        'Arrays that fallback kernels allocate are freed by garbage collection; nativeBytes is exact (cachedBytes of it are disposed blocks kept for reuse).',
      ],
      nativeBytes: stats.bytes,
      nativeBuffers: stats.buffers,
      cachedBytes: this.cachedBytes,
    };
  }

  override dispose(): void {
    this.freePending();
    this.emptyCache();
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
    this.recycle(buffer);
  }

  /** Frees every cached block (the memory of disposed tensors kept for reuse). */
  emptyCache(): void {
    for (const list of this.cache.values()) for (const buffer of list) addon.freeHostBuffer(buffer);
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /** Bytes of disposed tensors' blocks kept for reuse. */
  get cachedHostBytes(): number {
    return this.cachedBytes;
  }

  /** The most bytes of disposed tensors' blocks kept for reuse. */
  get hostCacheLimit(): number {
    return this.cacheLimit ?? Math.max(512 * 1024 * 1024, 2 * this.peakLiveBytes);
  }

  private recycle(buffer: ArrayBuffer): void {
    const bytes = buffer.byteLength;
    this.liveBytes = Math.max(0, this.liveBytes - bytes);
    const limit = this.hostCacheLimit;
    if (bytes > limit) {
      addon.freeHostBuffer(buffer);
      return;
    }
    const list = this.cache.get(bytes) ?? [];
    this.cache.delete(bytes);
    list.push(buffer);
    this.cache.set(bytes, list);
    this.cachedBytes += bytes;
    // Over the limit: free the least recently used sizes (never the one just returned).
    for (const [size, old] of this.cache) {
      if (this.cachedBytes <= limit || size === bytes) break;
      while (old.length > 0 && this.cachedBytes > limit) {
        addon.freeHostBuffer(old.pop()!);
        this.cachedBytes -= size;
      }
      if (old.length === 0) this.cache.delete(size);
    }
  }

  /** Frees the blocks left unowned by kernels, once no kernel is running. */
  private freePending(): void {
    if (this.pendingFree.size === 0 || kernelRunning()) return;
    for (const buffer of this.pendingFree) if (!this.owners.has(buffer)) this.recycle(buffer);
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
