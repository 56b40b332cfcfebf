// A stand-in for the addon's device surface (issue 5 contract) until the host emulation
// (FUSED_DISTILL_EMULATE_DEVICE=1) is merged: device buffers are typed arrays behind integer handles,
// every op runs the host addon op of the same name on them. installFakeCuda() puts it into
// addon.cuda when no real (or emulated) device answers. Delete this file once the emulation lands.
import { addon, DeviceBuffer, DeviceDType, NumericArray, ReduceOpName } from '../../src/native';
// A seeded PRNG stands in for the contract's Philox (only needed for device/host parity).
import { mulberry32 } from './reference64';

type Arr = Float32Array | Int32Array | Uint8Array;
const buffers = new Map<number, Arr>();
let nextHandle = 1;
let tf32 = false;
let timer = 0;

const dtypeOf = (a: Arr): DeviceDType => (a instanceof Float32Array ? 'float32' : a instanceof Int32Array ? 'int32' : 'bool');

function get(h: DeviceBuffer, name = 'buffer'): Arr {
  const b = buffers.get(h);
  if (!b) throw new RangeError(`fused-distill: cuda: ${name} is not a live device buffer handle`);
  return b;
}
function f32(h: DeviceBuffer, name?: string): Float32Array {
  const b = get(h, name);
  if (!(b instanceof Float32Array)) throw new TypeError(`fused-distill: cuda: ${name ?? 'buffer'} must be a float32 device buffer`);
  return b;
}
const opt = (h: DeviceBuffer | null, name: string) => (h == null ? null : f32(h, name));

export const fakeCuda = {
  isAvailable: () => true,
  lastError: () => '',
  deviceName: () => 'fake device (tests/helpers/fake_cuda.ts)',
  alloc(length: number, dtype: DeviceDType = 'float32'): DeviceBuffer {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`fused-distill: cuda.alloc: length must be an integer >= 1, got ${length}`);
    const h = nextHandle++;
    buffers.set(h, dtype === 'float32' ? new Float32Array(length) : dtype === 'int32' ? new Int32Array(length) : new Uint8Array(length));
    return h;
  },
  free(h: DeviceBuffer): void {
    get(h);
    buffers.delete(h);
  },
  dtype: (h: DeviceBuffer): DeviceDType => dtypeOf(get(h)),
  size: (h: DeviceBuffer): number => get(h).length,
  upload(h: DeviceBuffer, src: NumericArray): void {
    const b = get(h);
    if (dtypeOf(src as Arr) !== dtypeOf(b) || src.length < 1 || src.length > b.length)
      throw new RangeError(`fused-distill: cuda.upload: src must be a ${dtypeOf(b)} array of 1..${b.length} elements`);
    b.set(src as never);
  },
  download(h: DeviceBuffer, dst: NumericArray): void {
    const b = get(h);
    if (dtypeOf(dst as Arr) !== dtypeOf(b) || dst.length < 1 || dst.length > b.length)
      throw new RangeError(`fused-distill: cuda.download: dst must be a ${dtypeOf(b)} array of 1..${b.length} elements`);
    dst.set(b.subarray(0, dst.length) as never);
  },
  copy(dst: DeviceBuffer, src: DeviceBuffer, n: number): void {
    const d = get(dst, 'dst');
    const s = get(src, 'src');
    if (dtypeOf(d) !== dtypeOf(s) || n > d.length || n > s.length) throw new RangeError('fused-distill: cuda.copy: bad arguments');
    d.set(s.subarray(0, n) as never);
  },
  synchronize(): void {},
  memoryStats() {
    let bytes = 0;
    for (const b of buffers.values()) bytes += b.byteLength;
    return { bytesInUse: bytes, bytesCached: 0, buffers: buffers.size };
  },
  emptyCache(): void {},
  timerStart(): void {
    timer = performance.now();
  },
  timerStop: (): number => performance.now() - timer,
  setTF32(on: boolean): void {
    tf32 = on;
  },
  get tf32(): boolean {
    return tf32;
  },
  binaryOp: (op: number, a: DeviceBuffer, aShape: number[], b: DeviceBuffer, bShape: number[], out: DeviceBuffer) =>
    addon.binaryOp(op, get(a) as Float32Array, aShape, get(b) as Float32Array, bShape, get(out)),
  unaryOp: (op: number, x: DeviceBuffer, out: DeviceBuffer, p0?: number, p1?: number) =>
    addon.unaryOp(op, f32(x), get(out) as Float32Array, p0, p1),
  cast: (x: DeviceBuffer, out: DeviceBuffer) => addon.cast(get(x), get(out)),
  fill: (out: DeviceBuffer, value: number) => addon.fill(get(out), value),
  reduce: (op: ReduceOpName, x: DeviceBuffer, shape: number[], axes: number[], out: DeviceBuffer) =>
    addon.reduce(op, get(x), shape, axes, get(out)),
  softmax: (x: DeviceBuffer, rows: number, cols: number, out: DeviceBuffer, log?: boolean) =>
    addon.softmax(f32(x), rows, cols, f32(out), log),
  transpose: (x: DeviceBuffer, shape: number[], perm: number[], out: DeviceBuffer) => addon.transpose(get(x), shape, perm, get(out)),
  slice: (x: DeviceBuffer, shape: number[], begin: number[], size: number[], out: DeviceBuffer) =>
    addon.slice(get(x), shape, begin, size, get(out)),
  concat: (inputs: DeviceBuffer[], shapes: number[][], axis: number, out: DeviceBuffer) =>
    addon.concat(inputs.map((h) => get(h)), shapes, axis, get(out)),
  tile: (x: DeviceBuffer, shape: number[], reps: number[], out: DeviceBuffer) => addon.tile(get(x), shape, reps, get(out)),
  // The contract's device rule: an index outside [0, dim) gives zeros in its output slice.
  gather(x: DeviceBuffer, dims: number[], indices: DeviceBuffer, out: DeviceBuffer): void {
    const ids = get(indices, 'indices') as Int32Array;
    const [batch, outer, dim, slice] = dims;
    const n = ids.length / batch;
    const clean = ids.map((v) => (v >= 0 && v < dim ? v : 0));
    const o = get(out);
    addon.gather(get(x), dims, clean, o);
    ids.forEach((v, j) => {
      if (v >= 0 && v < dim) return;
      const b = Math.floor(j / n);
      const i = j % n;
      for (let k = 0; k < outer; k++) o.fill(0, ((b * outer + k) * n + i) * slice, ((b * outer + k) * n + i + 1) * slice);
    });
  },
  unsortedSegmentSum: (x: DeviceBuffer, rows: number, cols: number, ids: DeviceBuffer, segments: number, out: DeviceBuffer) =>
    addon.unsortedSegmentSum(f32(x), rows, cols, get(ids) as Int32Array, segments, f32(out)),
  sgemm: (
    a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, batch: number, m: number, n: number, k: number,
    tA: boolean, tB: boolean, aOff: Float64Array | null, bOff: Float64Array | null,
  ) => addon.sgemm(f32(a), f32(b), f32(c), batch, m, n, k, tA, tB, aOff, bOff),
  adamwUpdate: (
    p: DeviceBuffer, g: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer,
    beta1: number, beta2: number, eps: number, decay: number, stepSize: number, sqrtBc2: number, scale: number,
  ) => addon.adamwUpdate(f32(p), f32(g), f32(m), f32(v), f32(out), beta1, beta2, eps, decay, stepSize, sqrtBc2, scale),
  sumSquares: (x: DeviceBuffer) => addon.sumSquares(f32(x)),
  randomUniform(out: DeviceBuffer, lo: number, hi: number, seed: number): void {
    const o = f32(out);
    const r = mulberry32(seed);
    for (let i = 0; i < o.length; i++) o[i] = lo + (hi - lo) * r();
  },
  randomNormal(out: DeviceBuffer, mean: number, std: number, seed: number): void {
    const o = f32(out);
    const r = mulberry32(seed);
    for (let i = 0; i < o.length; i++) o[i] = mean + std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  },
  // The losses: result layouts of native/cuda_ops.cc (result = [total, 7 weighted parts]; loss = [1]).
  rankingObjective(
    s: DeviceBuffer, t: DeviceBuffer | null, y: DeviceBuffer | null, mask: DeviceBuffer | null, rows: number, cols: number,
    weights: Float32Array, temperature: number, sigma: number, margin: number, grad: DeviceBuffer | null, result: DeviceBuffer,
  ): void {
    const parts = new Float64Array(7);
    const r = f32(result, 'result');
    r[0] = addon.rankingObjective(f32(s, 's'), opt(t, 't'), opt(y, 'y'), opt(mask, 'mask'), rows, cols, weights, temperature, sigma, margin, opt(grad, 'grad'), parts);
    r.set(parts, 1);
  },
  hiddenMSE(
    hs: DeviceBuffer, ht: DeviceBuffer, tokenMask: DeviceBuffer | null, layers: number, batch: number, len: number, hidden: number,
    grad: DeviceBuffer | null, loss: DeviceBuffer,
  ): void {
    f32(loss, 'loss')[0] = addon.hiddenMSE(f32(hs), f32(ht), opt(tokenMask, 'tokenMask'), layers, batch, len, hidden, opt(grad, 'grad'));
  },
  attentionMSE(
    as: DeviceBuffer, at: DeviceBuffer, tokenMask: DeviceBuffer | null, batch: number, heads: number, len: number,
    grad: DeviceBuffer | null, loss: DeviceBuffer,
  ): void {
    f32(loss, 'loss')[0] = addon.attentionMSE(f32(as), f32(at), opt(tokenMask, 'tokenMask'), batch, heads, len, opt(grad, 'grad'));
  },
  scale(x: DeviceBuffer, c: number, out: DeviceBuffer, n: number): void {
    addon.scale(f32(x).subarray(0, n), c, f32(out).subarray(0, n));
  },
};

/** Live fake buffers (the backend must free every one it allocated). */
export function fakeBufferCount(): number {
  return buffers.size;
}

/**
 * Installs the stand-in into addon.cuda unless a device (or the emulation) answers. Returns what
 * the tests run on: 'device' or 'fake'.
 */
let installed = false;
export function installFakeCuda(): 'device' | 'fake' {
  if (installed) return 'fake';
  const cuda = addon.cuda as unknown as Record<string, unknown>;
  if ((cuda.isAvailable as () => boolean)() && typeof cuda.binaryOp === 'function') return 'device';
  for (const [k, v] of Object.entries(Object.getOwnPropertyDescriptors(fakeCuda)))
    if (typeof v.value === 'function') cuda[k] = v.value;
  installed = true;
  return 'fake';
}
