// The 'cuda' backend's memory and data plumbing. Tensor data lives on the device in the addon's
// buffers (integer handles; the addon's caching allocator makes alloc/free cheap), one buffer per
// dataId with a reference count, so Reshape/Identity share a buffer instead of copying it. Device work
// is queued on the addon's one stream; only reads (readSync/read, i.e. dataSync/data/array) download
// and so synchronise. string and complex64 tensors, which no device kernel takes, are kept in a
// private tfjs CPU backend. Every kernel without a device version runs tfjs's CPU kernel on that
// private backend: inputs downloaded into it, outputs uploaded back (runCpuKernel), counted by the
// profile mode as 'cpu fallback'.
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

import { cudaDevice, DeviceBuffer, NumericArray } from '../../native';
import { isNumericDType, NumericDType } from '../plans/elementwise';
import { CUDA_TF32_FLAG } from '../precision';
import { cudaProfile } from './profile';

/**
 * tfjs env flag: sgemm on TF32 tensor cores (faster, ~10 bits of mantissa) instead of fp32. An alias
 * of FUSED_DISTILL_MATMUL_PRECISION = 'tf32' (src/backend/precision.ts), which also offers 'bf16'.
 */
export const TF32_FLAG = CUDA_TF32_FLAG;

interface DeviceData {
  dtype: tf.DataType;
  refCount: number;
  /** the device buffer; null for an empty tensor and for data kept on the host */
  buffer: DeviceBuffer | null;
  /** elements */
  size: number;
  /** string and complex64 data: its dataId in the private CPU backend */
  host?: object;
}

const BYTES: Record<NumericDType, number> = { float32: 4, int32: 4, bool: 1 };

function emptyArray(dtype: NumericDType, n: number): NumericArray {
  return dtype === 'float32' ? new Float32Array(n) : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n);
}

/** values as the typed array of dtype (tfjs's CPU Cast may keep an Int32Array under float32, ...). */
function asDtypeArray(values: unknown, dtype: NumericDType): NumericArray {
  const ctor = dtype === 'float32' ? Float32Array : dtype === 'int32' ? Int32Array : Uint8Array;
  if (values instanceof ctor) return values;
  return ctor.from(values as ArrayLike<number>);
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

export class CudaBackend extends tf.KernelBackend {
  readonly data: tf.DataStorage<DeviceData>;
  /** tfjs's CPU backend, private to this one: the fallback kernels' memory and non-numeric data. */
  readonly cpu = new MathBackendCPU();
  private readonly live = new Set<DeviceBuffer>();
  private deviceBytes = 0;

  constructor() {
    super();
    this.data = new tf.DataStorage(this, tf.engine());
    (this.cpu as unknown as { firstUse: boolean }).firstUse = false; // no "install tfjs-node" warning
    // The math mode of sgemm: the flag's value (registered by registerCudaBackend), fp32 by default.
    cudaDevice().setTF32(tf.env().getBool(TF32_FLAG));
  }

  // ---- device buffers

  /** A new device buffer of `size` elements (uninitialised), or null for size 0. */
  allocBuffer(dtype: NumericDType, size: number): DeviceBuffer | null {
    if (size === 0) return null;
    const buffer = cudaDevice().alloc(size, dtype);
    this.live.add(buffer);
    this.deviceBytes += size * BYTES[dtype];
    return buffer;
  }

  /** Frees a buffer from allocBuffer that no tensor adopted (a kernel's scratch). */
  releaseBuffer(buffer: DeviceBuffer, dtype: NumericDType, size: number): void {
    if (!this.live.delete(buffer)) return;
    this.deviceBytes -= size * BYTES[dtype];
    cudaDevice().free(buffer);
  }

  /** The device buffer of a numeric tensor (null when it is empty). */
  buffer(t: tf.TensorInfo): DeviceBuffer | null {
    const d = this.data.get(t.dataId);
    if (d.host) throw new Error(`cuda backend: a ${t.dtype} tensor has no device buffer`);
    return d.buffer;
  }

  /** The device buffer of a non-empty numeric tensor. */
  buf(t: tf.TensorInfo): DeviceBuffer {
    const b = this.buffer(t);
    if (b === null) throw new Error('cuda backend: an empty tensor has no device buffer');
    return b;
  }

  /** A new tensor of `shape` on a new device buffer, which `fill` must write (not called when empty).
   *  If fill throws (the addon rejected an argument), the buffer is freed and the error rethrown. */
  output(shape: number[], dtype: NumericDType, fill: (out: DeviceBuffer) => void): tf.TensorInfo {
    const size = tf.util.sizeFromShape(shape);
    const buffer = this.allocBuffer(dtype, size);
    if (buffer !== null) {
      try {
        fill(buffer);
      } catch (e) {
        this.releaseBuffer(buffer, dtype, size);
        throw e;
      }
    }
    return this.adopt(buffer, shape, dtype);
  }

  /** Registers a device buffer (this backend's, from allocBuffer) as a new tensor's data. */
  adopt(buffer: DeviceBuffer | null, shape: number[], dtype: NumericDType): tf.TensorInfo {
    const dataId = {};
    this.data.set(dataId, { dtype, refCount: 1, buffer, size: tf.util.sizeFromShape(shape) });
    return { dataId, shape, dtype };
  }

  /** Kernel-level reshape: the output shares x's data (no copy). */
  share(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    this.incRef(x.dataId);
    return { dataId: x.dataId, shape, dtype: x.dtype };
  }

  /** True when the tensor's data is on the device (numeric dtypes). */
  onDevice(t: tf.TensorInfo): boolean {
    return !this.data.get(t.dataId).host;
  }

  // ---- tfjs's KernelBackend

  override write(values: tf.backend_util.BackendValues | null, shape: number[], dtype: tf.DataType): object {
    const dataId = {};
    this.store(dataId, values, shape, dtype, 1);
    return dataId;
  }

  override move(
    dataId: object,
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
    this.store(dataId, values, shape, dtype, refCount);
  }

  private store(
    dataId: object,
    values: tf.backend_util.BackendValues | null,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
    const size = tf.util.sizeFromShape(shape);
    if (isNumericDType(dtype)) {
      const buffer = this.allocBuffer(dtype, size);
      if (buffer !== null && values != null) cudaDevice().upload(buffer, asDtypeArray(values, dtype));
      this.data.set(dataId, { dtype, refCount, buffer, size });
      return;
    }
    let host: object;
    if (dtype === 'complex64') {
      // Interleaved re/im values (a tensor moved from another backend): a complex tensor of the CPU backend.
      const v = values as Float32Array;
      const { real, imag } = tf.backend_util.splitRealAndImagArrays(v);
      const re = this.cpu.makeTensorInfo(shape, 'float32', real);
      const im = this.cpu.makeTensorInfo(shape, 'float32', imag);
      host = (
        tf
          .getKernel('Complex', 'cpu')!
          .kernelFunc({ inputs: { real: re, imag: im }, backend: this.cpu, attrs: {} }) as tf.TensorInfo
      ).dataId;
      this.cpu.disposeData(re.dataId, true);
      this.cpu.disposeData(im.dataId, true);
    } else {
      host = this.cpu.write(values as tf.backend_util.BackendValues, shape, dtype);
    }
    this.data.set(dataId, { dtype, refCount, buffer: null, size, host });
  }

  makeTensorInfo(
    shape: number[],
    dtype: tf.DataType,
    values?: tf.backend_util.BackendValues | string[],
  ): tf.TensorInfo {
    const v =
      dtype === 'string' && values != null && values.length > 0 && typeof values[0] === 'string'
        ? (values as string[]).map((s) => tf.util.encodeString(s))
        : (values as tf.backend_util.BackendValues);
    return { dataId: this.write(v ?? null, shape, dtype), shape, dtype };
  }

  disposeIntermediateTensorInfo(t: tf.TensorInfo): void {
    this.disposeData(t.dataId);
  }

  override readSync(dataId: object): tf.backend_util.BackendValues {
    const d = this.data.get(dataId);
    if (d.host) return this.cpu.readSync(d.host);
    const out = emptyArray(d.dtype as NumericDType, d.size);
    if (d.buffer !== null) cudaDevice().download(d.buffer, out);
    return out;
  }

  override async read(dataId: object): Promise<tf.backend_util.BackendValues> {
    return this.readSync(dataId);
  }

  override disposeData(dataId: object, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const d = this.data.get(dataId);
    d.refCount--;
    if (!force && d.refCount > 0) return false;
    if (d.buffer !== null) this.releaseBuffer(d.buffer, d.dtype as NumericDType, d.size);
    if (d.host) this.cpu.disposeData(d.host);
    this.data.delete(dataId);
    return true;
  }

  override refCount(dataId: object): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: object): void {
    this.data.get(dataId).refCount++;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  override memory(): {
    unreliable: boolean;
    numBytesInGPU: number;
    deviceBytes: number;
    deviceBuffers: number;
    cachedBytes: number;
  } {
    const stats = cudaDevice().memoryStats();
    return {
      unreliable: false,
      // tfjs's name for a GPU backend's tensor bytes (webgl reports the same field).
      numBytesInGPU: this.deviceBytes,
      // bytes of this backend's tensors on the device
      deviceBytes: this.deviceBytes,
      deviceBuffers: this.live.size,
      // freed buffers the addon's caching allocator keeps for reuse
      cachedBytes: stats.bytesCached,
    };
  }

  override async time(f: () => void): Promise<tf.TimingInfo> {
    const dev = cudaDevice();
    const start = performance.now();
    dev.timerStart();
    f();
    const kernelMs = dev.timerStop();
    return { kernelMs, wallMs: performance.now() - start } as tf.TimingInfo;
  }

  override timerAvailable(): boolean {
    return true;
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override dispose(): void {
    for (const b of this.live) cudaDevice().free(b);
    this.live.clear();
    this.deviceBytes = 0;
  }

  // ---- the CPU fallback

  /**
   * Runs tfjs's 'cpu' kernel `kernelName` on downloaded copies of the inputs, in the private CPU
   * backend, and uploads its numeric outputs (string and complex64 outputs stay there). The copies
   * are disposed before returning. Counted by cudaProfile as a 'cpu fallback' call.
   */
  runCpuKernel(kernelName: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
    const kernel = tf.getKernel(kernelName, 'cpu');
    if (!kernel) throw new Error(`cuda backend: no 'cpu' kernel ${kernelName} to fall back to`);
    const start = cudaProfile.enabled ? performance.now() : 0;
    const temps = new Map<object, tf.TensorInfo>(); // our dataId -> its CPU copy
    // Some CPU kernels read a Tensor's rank or size (the engine hands kernels Tensors): kept on the copy.
    const like = (t: tf.TensorInfo, dataId: object) => ({
      dataId,
      shape: t.shape,
      dtype: t.dtype,
      rank: t.shape.length,
      size: tf.util.sizeFromShape(t.shape),
    });
    const toCpu = (t: tf.TensorInfo | undefined): tf.TensorInfo | undefined => {
      if (t == null) return t;
      const d = this.data.get(t.dataId);
      if (d.host) return like(t, d.host);
      let copy = temps.get(t.dataId);
      if (!copy) {
        copy = { dataId: this.cpu.write(this.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
        temps.set(t.dataId, copy);
      }
      return like(t, copy.dataId);
    };
    // Inputs are a name -> tensor map, an array (Concat, AddN, ...), or a map holding arrays (the ragged ops).
    const map = (v: unknown): unknown => (Array.isArray(v) ? v.map(map) : v == null ? v : toCpu(v as tf.TensorInfo));
    const inputs = Array.isArray(args.inputs)
      ? map(args.inputs)
      : Object.fromEntries(Object.entries(args.inputs).map(([k, t]) => [k, map(t)]));
    const tempIds = new Set([...temps.values()].map((t) => t.dataId));
    try {
      const out = kernel.kernelFunc({ inputs: inputs as tf.NamedTensorInfoMap, backend: this.cpu, attrs: args.attrs });
      const outs = Array.isArray(out) ? out : [out];
      const results = outs.map((o) => this.fromCpu(o, tempIds));
      return Array.isArray(out) ? results : results[0];
    } finally {
      for (const t of temps.values()) this.cpu.disposeData(t.dataId, true);
      if (cudaProfile.enabled) cudaProfile.record(kernelName, 'cpu fallback', performance.now() - start);
    }
  }

  // A CPU kernel's output as a tensor of this backend: numeric data uploaded (and the CPU copy
  // released), string and complex64 data kept in the CPU backend under a new dataId of ours.
  private fromCpu(o: tf.TensorInfo, tempIds: Set<object>): tf.TensorInfo {
    if (!isNumericDType(o.dtype)) {
      const dataId = {};
      this.data.set(dataId, {
        dtype: o.dtype,
        refCount: 1,
        buffer: null,
        size: tf.util.sizeFromShape(o.shape),
        host: o.dataId,
      });
      return { dataId, shape: o.shape, dtype: o.dtype };
    }
    const values = (this.cpu.data.get(o.dataId) as { values?: unknown }).values;
    const info = this.output(o.shape, o.dtype, (out) =>
      cudaDevice().upload(out, asDtypeArray(values, o.dtype as NumericDType)),
    );
    // The kernel's own output (possibly an input's copy it passed through, disposed with the temps).
    if (!tempIds.has(o.dataId)) this.cpu.disposeData(o.dataId, true);
    return info;
  }
}

/** The current backend if it is a CudaBackend ('cuda'), else null. */
export function cudaBackend(): CudaBackend | null {
  const b = tf.engine().backend;
  return b instanceof CudaBackend ? b : null;
}

/**
 * The float32 device buffer of `t` on the current 'cuda' backend (no copy), or null elsewhere (or for
 * an empty tensor): for hot loops that hand a tensor to a device op (the optimizer's update).
 */
export function deviceFloats(t: tf.TensorInfo): DeviceBuffer | null {
  const b = cudaBackend();
  if (!b || t.dtype !== 'float32') return null;
  return b.buffer(t);
}
