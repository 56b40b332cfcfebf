// Random addon.sgemm problems for the GEMM tests (tests/sgemm.test.ts, tests/bf16_gemm.test.ts):
// batched, broadcast (one operand shared by every batch entry) or offset operands, and the call.
import { addon } from './addon';
import { mulberry32 } from './reference64';

export type Mode = 'batched' | 'broadcast' | 'offsets';

export interface GemmCase {
  label: string;
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  threads: number;
  a: Float32Array;
  b: Float32Array;
  aOffsets: number[] | null;
  bOffsets: number[] | null;
}

export interface GemmSpec {
  batch?: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  aMode?: Mode;
  bMode?: Mode;
  threads?: number;
  /** operand magnitude (default 1): 1e-19 puts products (~1e-38) at the edge of fp32's normal range */
  scale?: number;
}

function operand(
  rng: () => number,
  batch: number,
  per: number,
  mode: Mode,
  scale: number,
): { x: Float32Array; offsets: number[] | null } {
  const fill = (x: Float32Array) => {
    for (let i = 0; i < x.length; ++i) x[i] = (2 * rng() - 1) * scale;
    return x;
  };
  if (mode !== 'offsets') return { x: fill(new Float32Array(mode === 'batched' ? batch * per : per)), offsets: null };
  // A buffer with room for more entries than the batch: offsets repeat, overlap and are unaligned.
  const x = fill(new Float32Array(2 * per + 7));
  const last = x.length - per;
  const offsets = Array.from({ length: batch }, (_, i) => (i === 1 ? 0 : Math.floor(rng() * (last + 1))));
  return { x, offsets };
}

/** A case from `spec` with operands drawn from mulberry32(seed). */
export function makeGemmCase(spec: GemmSpec, seed: number): GemmCase {
  const { m, n, k } = spec;
  const batch = spec.batch ?? 1;
  const transA = spec.transA ?? false;
  const transB = spec.transB ?? false;
  const scale = spec.scale ?? 1;
  const rng = mulberry32(seed);
  const A = operand(rng, batch, m * k, spec.aMode ?? 'batched', scale);
  const B = operand(rng, batch, k * n, spec.bMode ?? 'batched', scale);
  const t = (x: boolean) => (x ? 'T' : 'N');
  return {
    label:
      `${batch}x(${m}x${n}x${k}) ${t(transA)}${t(transB)} a:${spec.aMode ?? 'batched'} ` +
      `b:${spec.bMode ?? 'batched'}${scale !== 1 ? ` scale ${scale}` : ''} ${spec.threads ?? 2}thr`,
    batch,
    m,
    n,
    k,
    transA,
    transB,
    threads: spec.threads ?? 2,
    a: A.x,
    b: B.x,
    aOffsets: A.offsets,
    bOffsets: B.offsets,
  };
}

/** C for the case from addon.sgemm (every element must be written: C starts as NaN). */
export function runGemm(c: GemmCase, precision: 'fp32' | 'bf16' = 'fp32', threads = c.threads): Float32Array {
  const out = new Float32Array(c.batch * c.m * c.n).fill(Number.NaN);
  addon.setNumThreads(threads);
  addon.sgemm(
    c.a,
    c.b,
    out,
    c.batch,
    c.m,
    c.n,
    c.k,
    c.transA,
    c.transB,
    c.aOffsets ? Float64Array.from(c.aOffsets) : null,
    c.bOffsets ? Float64Array.from(c.bOffsets) : null,
    precision,
  );
  return out;
}
