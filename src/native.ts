// The one place that loads the addon (built by node-gyp on `npm install`, or by cmake-js with CUDA
// through `npm run build:cuda`) and types its surface. Everything else imports `addon` from here.
import * as path from 'path';
// node-gyp-build finds build/Release/fused_distill.node (or a prebuild) under the package root.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild: (dir: string) => unknown = require('node-gyp-build');

/** Term order of the objective's weight vector: kernels/losses.h `Term`, checked at load against the
 *  addon's `constants.termNames`. */
export const TERM_NAMES = [
  'pointwiseBCE',
  'pairwiseRankNet',
  'pairwiseHinge',
  'listwiseSoftmaxCE',
  'distillKL',
  'marginMSE',
  'scoreMSE',
] as const;
export type TermName = (typeof TERM_NAMES)[number];

/** The kernel contract's constants, as the addon exports them (native/addon.cc). */
export interface AddonConstants {
  /** The objective's terms in order (kernels/losses.h kTermNames). */
  termNames: string[];
  /** The most elements any size argument may describe (native/args.h kMaxElements). */
  maxElements: number;
  /** The highest rank binaryOp accepts (kernels/elementwise.h kMaxRank). */
  elementwiseMaxRank: number;
  /** The highest rank of the shape ops (kernels/tensor.h kMaxShapeRank). */
  shapeMaxRank: number;
}

type F32 = Float32Array;
/** Host tensor data of the 'native' backend's shape ops: float32, int32 or bool (as a Uint8Array). */
export type HostArray = Float32Array | Int32Array | Uint8Array;
/** Reductions of `Addon.reduce` (kernels/reduce.h lists each one's element types). */
export type ReduceOpName = 'sum' | 'mean' | 'prod' | 'max' | 'min' | 'any' | 'all' | 'argMax' | 'argMin';
/** A device buffer handle from `cuda.alloc`. */
export type DeviceBuffer = number;
/** Element type of a device buffer; bool is one byte per element (0 or 1), like a Uint8Array. */
export type DeviceDType = 'float32' | 'int32' | 'bool';

/**
 * addon.cuda.nccl: collectives across processes on device buffers through NCCL, loaded at run time
 * (FUSED_DISTILL_NCCL_LIBRARY, else libnccl.so.2, else libnccl.so; docs/distributed.md). One
 * communicator per process. Each collective runs on the device's stream and returns when it has
 * completed; one that has not after FUSED_DISTILL_COLLECTIVE_TIMEOUT_S seconds (default 1800), or
 * that fails, aborts the communicator and throws (initRank again, with a new id, to go on). Without
 * CUDA NCCL is unavailable; under FUSED_DISTILL_EMULATE_DEVICE=1 a one-rank communicator is emulated.
 */
export interface NcclApi {
  /** True when NCCL was loaded and a device answers (never throws); else lastError() says why. */
  isAvailable(): boolean;
  /** Why the last NCCL call failed, or why NCCL is unavailable. */
  lastError(): string;
  /** NCCL's version code (22805 for 2.28.5); 0 under the host emulation. */
  version(): number;
  /** A new communicator id (128 bytes): rank 0 makes it and sends it to the other ranks. */
  uniqueId(): Uint8Array;
  /** Joins the communicator `id` as `rank` of `nranks`; returns when every rank has joined. */
  initRank(id: Uint8Array, nranks: number, rank: number): void;
  /** recv[r * count ..] = rank r's send[0 .. count) for every rank r (same dtype; recv >= nranks * count). */
  allGather(send: DeviceBuffer, recv: DeviceBuffer, count: number): void;
  /** Rank root's buf[0 .. count) on every rank, in place (root defaults to 0). */
  broadcast(buf: DeviceBuffer, count: number, root?: number): void;
  /** buf[i] = the sum over the ranks of buf[i] for i < count, float32, in place (NCCL's order of addition). */
  allReduceSum(buf: DeviceBuffer, count: number): void;
  /** Ends the communicator (a no-op when there is none). */
  destroy(): void;
}

/** The device-only functions of addon.cuda: device info, buffers, timing. */
export interface DeviceOnlyApi {
  /** True when the addon has CUDA and a device answered (never throws). */
  isAvailable(): boolean;
  /** Why the last device call failed, or why there is no device. */
  lastError(): string;
  /** The device's name ("host emulation" under FUSED_DISTILL_EMULATE_DEVICE=1 in a CPU build). */
  deviceName(): string;
  /** A new uninitialised buffer of `length` >= 1 elements of `dtype` (default float32). */
  alloc(length: number, dtype?: DeviceDType): DeviceBuffer;
  /** Gives the buffer back (to the caching allocator); its handle is dead afterwards. */
  free(buffer: DeviceBuffer): void;
  /** The buffer's element type. */
  dtype(buffer: DeviceBuffer): DeviceDType;
  /** The buffer's length in elements. */
  size(buffer: DeviceBuffer): number;
  /** Copies src (the typed array of the buffer's dtype, 1..size elements) into the buffer's first elements; synchronous. */
  upload(buffer: DeviceBuffer, src: NumericArray): void;
  /** Copies the buffer's first dst.length elements into dst (its dtype's typed array); synchronises. */
  download(buffer: DeviceBuffer, dst: NumericArray): void;
  /** Device-to-device: the first n elements of src into dst (same dtype), queued on the stream. */
  copy(dst: DeviceBuffer, src: DeviceBuffer, n: number): void;
  /** Waits for all queued device work. */
  synchronize(): void;
  /** Allocator bytes in use / cached and the number of live buffers. */
  memoryStats(): { bytesInUse: number; bytesCached: number; buffers: number };
  /** Frees the allocator's cached (unused) blocks. */
  emptyCache(): void;
  timerStart(): void;
  /** Device milliseconds since timerStart (CUDA events on the library's stream). */
  timerStop(): number;
  /** sgemm's math mode: true = TF32 tensor cores, false = strict fp32 (the default). */
  setTF32(on: boolean): void;
  /** The math mode setTF32 last set (what the next sgemm uses). */
  getTF32(): boolean;
  /** Collectives across processes on device buffers (NCCL). */
  nccl: NcclApi;
}

/** The host ops that native code registers on device buffers too (register_op): addon.cuda.X takes
 *  exactly addon.X's arguments, checked the same way, a device buffer in place of each typed array
 *  (its dtype plays the array's type, its size the length). */
export type RegisteredOpName =
  | 'rankingObjective'
  | 'hiddenMSE'
  | 'attentionMSE'
  | 'scale'
  | 'layerNorm'
  | 'layerNormGrad'
  | 'gelu'
  | 'geluGrad'
  | 'biasGelu'
  | 'biasGeluGrad'
  | 'attention'
  | 'attentionGrad'
  | 'binaryOp'
  | 'unaryOp'
  | 'cast'
  | 'fill'
  | 'reduce'
  | 'softmax'
  | 'transpose'
  | 'slice'
  | 'concat'
  | 'tile'
  | 'gather'
  | 'unsortedSegmentSum'
  | 'sgemm'
  | 'adamwUpdate'
  | 'sumSquares'
  | 'randomUniform'
  | 'randomNormal';

// A host argument's type on the device: typed arrays become buffer handles (null stays null).
// Float64Arrays (sgemm's offsets) stay host arrays.
type OnDevice<T> = T extends NumericArray ? DeviceBuffer : T extends NumericArray[] ? DeviceBuffer[] : T;
type DeviceOp<F> = F extends (...args: infer A) => infer R ? (...args: { [K in keyof A]: OnDevice<A[K]> }) => R : never;

/** addon.cuda: the device-only functions and every register_op op on device buffers. Device
 *  notes: rankingObjective's weights stay a host Float32Array; gather's indices are NOT
 *  bounds-checked (one outside [0, dim) gives zeros); sumSquares adds in a fixed tree order and
 *  synchronises to return. */
export type CudaApi = DeviceOnlyApi & { [P in Exclude<RegisteredOpName, 'rankingObjective'>]: DeviceOp<Addon[P]> } & {
  rankingObjective(
    s: DeviceBuffer,
    t: DeviceBuffer | null,
    y: DeviceBuffer | null,
    mask: DeviceBuffer | null,
    rows: number,
    cols: number,
    weights: F32,
    temperature: number,
    sigma: number,
    margin: number,
    grad: DeviceBuffer | null,
    result: DeviceBuffer,
  ): void;
};

/** Typed arrays of the three numeric dtypes: float32, int32, bool. */
export type NumericArray = Float32Array | Int32Array | Uint8Array;

/** Opcodes of the addon's elementwise ops, keyed by tfjs kernel name (native/math_ops.cc). */
export interface MathOpTables {
  binary: Record<string, number>;
  unary: Record<string, number>;
}

export interface Addon {
  /** The kernel contract's constants (term order, size and rank limits). */
  constants: AddonConstants;
  /**
   * The weighted ranking objective over s [rows, cols]: result (1 + 7 floats) receives the total,
   * then each weighted part in TERM_NAMES order; grad, when given, d(total)/d(s). A mask other than
   * 0/1 is a RangeError naming the first bad value and its index.
   */
  rankingObjective(
    s: F32,
    t: F32 | null,
    y: F32 | null,
    mask: F32 | null,
    rows: number,
    cols: number,
    weights: F32,
    temperature: number,
    sigma: number,
    margin: number,
    grad: F32 | null,
    result: F32,
  ): void;
  /** Masked hidden-state MSE over [layers, batch, len, hidden]; loss (1 float) receives it. */
  hiddenMSE(
    hs: F32,
    ht: F32,
    tokenMask: F32 | null,
    layers: number,
    batch: number,
    len: number,
    hidden: number,
    grad: F32 | null,
    loss: F32,
  ): void;
  /** Masked attention MSE over [batch, heads, len, len]; loss (1 float) receives it. */
  attentionMSE(
    as: F32,
    at: F32,
    tokenMask: F32 | null,
    batch: number,
    heads: number,
    len: number,
    grad: F32 | null,
    loss: F32,
  ): void;
  /** out = x * c, one length; out may be x. */
  scale(x: F32, c: number, out: F32): void;
  /** 64-byte-aligned host memory for the 'native' backend, as an external ArrayBuffer. */
  allocHostBuffer(bytes: number, zero?: boolean): ArrayBuffer;
  /** Frees a block from allocHostBuffer now and detaches its ArrayBuffer. */
  freeHostBuffer(buffer: ArrayBuffer): void;
  /** Bytes (rounded to 64) and blocks currently allocated by allocHostBuffer. */
  hostBufferStats(): { bytes: number; buffers: number };
  /** The size class of a cached memory block for `bytes` (host and device caches; kernels/block_size.h). */
  blockSize(bytes: number): number;
  /**
   * For every batch entry i: c[i] = op(a[i]) op(b[i]), dense row-major, c (batch x m x n) overwritten.
   * a[i] is m x k (k x m when transA), b[i] is k x n (n x k when transB). a holds batch*m*k floats,
   * or m*k to broadcast one matrix over the batch; aOffsets (batch integers) instead says where each
   * entry starts. The same for b. k may be 0 (c becomes zeros). c must not overlap a or b.
   */
  sgemm(
    a: F32,
    b: F32,
    c: F32,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    aOffsets: Float64Array | null,
    bOffsets: Float64Array | null,
    /** 'fp32' (default) or 'bf16' (operands rounded to bfloat16, fp32 accumulation); 'tf32' on the device only */
    precision?: 'fp32' | 'bf16' | 'tf32',
  ): void;
  /**
   * The SGEMM path in use: the best the CPU has, or a lower one named by FUSED_DISTILL_GEMM_ISA.
   * bf16 products run on the AMX tiles on 'amxbf16', their vdpbf16ps kernels on 'avx512bf16', the
   * portable bf16 path elsewhere.
   */
  gemmIsa(): 'amxbf16' | 'avx512bf16' | 'avx512' | 'avx2' | 'scalar';
  /** Opcodes for binaryOp / unaryOp by tfjs kernel name (Add, Exp, ...). */
  mathOps: MathOpTables;
  /**
   * out = op(a, b) with numpy broadcasting; a and b both Float32Array or both Int32Array, out of the
   * op's output type (Uint8Array for comparisons, Int32Array for FloorDiv, else a's type) and of the
   * broadcast shape's size. out may be a or b itself when that input has the result's shape.
   */
  binaryOp(
    op: number,
    a: F32 | Int32Array,
    aShape: number[],
    b: F32 | Int32Array,
    bShape: number[],
    out: NumericArray,
  ): void;
  /**
   * out = op(x) on float32. p0: alpha (LeakyRelu, Step) or min (ClipByValue); p1: max (ClipByValue).
   * out is a Float32Array (x itself allowed) or, for IsNan / IsInf / IsFinite, a Uint8Array.
   */
  unaryOp(op: number, x: F32, out: F32 | Uint8Array, p0?: number, p1?: number): void;
  /** tfjs's Cast between float32 / int32 / bool, by the arrays' types (same length). */
  cast(x: NumericArray, out: NumericArray): void;
  /** Every element of out = value (converted as the typed array's own fill would). */
  fill(out: NumericArray, value: number): void;
  /**
   * x (shape) reduced over axes (negative allowed, no duplicates) into out, which holds the kept axes.
   * out's type: sum float32 -> Float32Array, int32/bool -> Int32Array; mean -> Float32Array; prod
   * float32 only; max/min same as x; any/all Uint8Array only; argMax/argMin (one axis) -> Int32Array.
   */
  reduce(op: ReduceOpName, x: HostArray, shape: number[], axes: number[], out: HostArray): void;
  /** Row-wise softmax (or log-softmax) of x [rows, cols]; out may be x. */
  softmax(x: F32, rows: number, cols: number, out: F32, log?: boolean): void;
  /** out = x (shape) transposed by perm: out axis j is x axis perm[j]. */
  transpose(x: HostArray, shape: number[], perm: number[], out: HostArray): void;
  /** out (size) = x (shape) from begin on every axis. */
  slice(x: HostArray, shape: number[], begin: number[], size: number[], out: HostArray): void;
  /**
   * out = x (shape) with before[i] / after[i] elements of value[0] added on each side of axis i;
   * value: a typed array of x's type, length 1. Host arrays only.
   */
  pad(x: HostArray, shape: number[], before: number[], after: number[], value: HostArray, out: HostArray): void;
  /** inputs (shapes, one element type) joined along axis into out. */
  concat(inputs: HostArray[], shapes: number[][], axis: number, out: HostArray): void;
  /** out (shape[i] * reps[i]) = x (shape) repeated along each axis. */
  tile(x: HostArray, shape: number[], reps: number[], out: HostArray): void;
  /**
   * tfjs's GatherV2 on x viewed as dims = [batch, outer, dim, slice], indices as [batch, n]:
   * out[b, o, i, :] = x[b, o, indices[b, i], :]. An index outside [0, dim) is a RangeError naming it.
   */
  gather(x: HostArray, dims: number[], indices: Int32Array, out: HostArray): void;
  /** out [numSegments, cols]: row s sums the rows of x [rows, cols] with segmentIds == s (others dropped). */
  unsortedSegmentSum(x: F32, rows: number, cols: number, segmentIds: Int32Array, numSegments: number, out: F32): void;
  /**
   * AdamW's element update (kernels/optimizer.h), bit-identical to the same float64 formula in JS:
   * the new m, v into mOut, vOut (null or absent: m, v in place); out = p * decay - stepSize * m /
   * (sqrt(v) / sqrtBc2 + eps) with the new m, v, g scaled first. out may be p.
   */
  adamwUpdate(
    p: F32,
    g: F32,
    m: F32,
    v: F32,
    out: F32,
    beta1: number,
    beta2: number,
    eps: number,
    decay: number,
    stepSize: number,
    sqrtBc2: number,
    scale: number,
    mOut?: F32 | null,
    vOut?: F32 | null,
  ): void;
  /** Sum of x[i]^2 in float64, in index order. */
  sumSquares(x: F32): number;
  /**
   * out[i] uniform in [lo, hi) (lo <= hi), a function of (seed, i) only: Philox4x32-10 (kernels/philox.h),
   * the same numbers as cuda.randomUniform. seed: an integer in [0, 2^53).
   */
  randomUniform(out: F32, lo: number, hi: number, seed: number): void;
  /** out[i] = mean + stddev * z_i (stddev >= 0), z_i standard normal by Box-Muller on Philox words. */
  randomNormal(out: F32, mean: number, stddev: number, seed: number): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  builtWithCuda(): boolean;
  cuda: CudaApi;
  /**
   * LayerNorm over the rows of x [rows, cols] (kernels/nn.h): y = (x - mean) * rstd * gamma + beta,
   * rstd = 1 / sqrt(var + eps), var the biased variance. mean and rstd [rows] receive the row
   * statistics layerNormGrad needs (null: not wanted). y must not overlap an input. With residual
   * [rows, cols] and/or bias [cols], the rows normalised are (x + bias) + residual.
   */
  layerNorm(
    x: F32,
    gamma: F32,
    beta: F32,
    rows: number,
    cols: number,
    eps: number,
    y: F32,
    mean?: F32 | null,
    rstd?: F32 | null,
    residual?: F32 | null,
    bias?: F32 | null,
  ): void;
  /**
   * dx [rows, cols], dgamma and dbeta [cols] from layerNorm's saved mean and rstd, in one pass;
   * residual and bias as forward had them, dbias [cols] (null: not wanted) = the sum of dx over rows.
   */
  layerNormGrad(
    dy: F32,
    x: F32,
    gamma: F32,
    mean: F32,
    rstd: F32,
    rows: number,
    cols: number,
    dx: F32,
    dgamma: F32,
    dbeta: F32,
    residual?: F32 | null,
    bias?: F32 | null,
    dbias?: F32 | null,
  ): void;
  /** y = 0.5 x (1 + erf(x / sqrt 2)); y may be x. */
  gelu(x: F32, y: F32): void;
  /** dx = dy * (Phi(x) + x phi(x)); dx may be dy or x. */
  geluGrad(dy: F32, x: F32, dx: F32): void;
  /**
   * y = gelu(x + bias) over x [rows, cols], bias [cols] (cols = bias.length); y may be x. erfOut
   * (null: not wanted) receives erf((x + bias) / sqrt 2) for biasGeluGrad.
   */
  biasGelu(x: F32, bias: F32, y: F32, erfOut?: F32 | null): void;
  /**
   * dx = dy * gelu'(x + bias) (dx may be dy or x), dbias = the sum of dx over the rows; erf:
   * biasGelu's erfOut for the same x and bias (the same bits, no erf computed), or null.
   */
  biasGeluGrad(dy: F32, x: F32, bias: F32, dx: F32, dbias: F32, erf?: F32 | null): void;
  /**
   * Multi-head self-attention (kernels/attention.h) on [batch, len, hidden] q, k, v (head h: columns
   * h*dh .. (h+1)*dh - 1): per (b, h), P = softmax(scale * Q K^T + keyBias[b]) and out's head columns
   * = P V. keyBias [batch, len]; precision 0 (fp32) or 1 (bf16 products). probs [batch, heads, len,
   * len] receives P (null: not kept). Outputs must not overlap the inputs or each other.
   */
  attention(
    q: F32,
    k: F32,
    v: F32,
    keyBias: F32,
    batch: number,
    len: number,
    hidden: number,
    heads: number,
    scale: number,
    precision: number,
    out: F32,
    probs?: F32 | null,
  ): void;
  /** dq, dk, dv [batch, len, hidden] and (unless null) dkeyBias [batch, len] from attention's P. */
  attentionGrad(
    dout: F32,
    q: F32,
    k: F32,
    v: F32,
    probs: F32,
    batch: number,
    len: number,
    hidden: number,
    heads: number,
    scale: number,
    precision: number,
    dq: F32,
    dk: F32,
    dv: F32,
    dkeyBias?: F32 | null,
  ): void;
}

// The addon, or why it could not be loaded: the package still imports without it (the fused ops
// then run their plain-tfjs reference composites), and any use of `addon` throws that error.
let loadError: Error | null = null;

function loadAddon(): Addon {
  try {
    return nodeGypBuild(path.join(__dirname, '..')) as Addon;
  } catch (e) {
    loadError = new Error(
      `fused-distill: the native addon could not be loaded: ${e instanceof Error ? e.message : String(e)}`,
    );
    return unavailable(loadError);
  }
}

// A stand-in whose every property is itself and whose every call throws `error`: module-level reads
// such as addon.cuda or addon.mathOps.binary succeed, using them fails with the load error.
function unavailable(error: Error): Addon {
  const stub: object = new Proxy(function unavailableAddon() {}, {
    get: (_target, key) => (key === Symbol.toPrimitive || key === 'then' ? undefined : stub),
    apply: () => {
      throw error;
    },
  });
  return stub as Addon;
}

export const addon: Addon = loadAddon();

/** Why the addon could not be loaded, or null when it is loaded. */
export function addonLoadError(): Error | null {
  return loadError;
}

// The TS mirror of the term order must match the kernels'.
if (!loadError) {
  const names = addon.constants?.termNames;
  if (!Array.isArray(names) || names.length !== TERM_NAMES.length || names.some((n, i) => n !== TERM_NAMES[i]))
    throw new Error(
      `fused-distill: the addon's term names (${String(names)}) differ from TERM_NAMES (${TERM_NAMES.join(', ')}): rebuild the addon (npm run build:native)`,
    );
}

/** addon.cuda, read at call time (a test may install a stand-in device into it). */
export function cudaDevice(): CudaApi {
  return addon.cuda;
}
