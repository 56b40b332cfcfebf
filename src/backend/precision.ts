// The precision of matrix products on this package's backends, one tfjs env flag for all of them:
//   tf.env().set('FUSED_DISTILL_MATMUL_PRECISION', 'bf16')
// 'fp32' (the default) multiplies in float32; 'bf16' rounds both operands to bfloat16 (round to
// nearest even) and accumulates in float32; 'tf32' (TF32 tensor cores) exists on 'cuda' only, where
// the older boolean flag FUSED_DISTILL_CUDA_TF32 = true means the same. Tensors stay float32 in tfjs
// either way. Kernels that call the addon's sgemm themselves read matmulPrecision() so that every
// product of a step follows the one setting.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../native';

export const MATMUL_PRECISION_FLAG = 'FUSED_DISTILL_MATMUL_PRECISION';
/** The 'cuda' backend's older flag: true is an alias of precision 'tf32' (registered with that backend). */
export const CUDA_TF32_FLAG = 'FUSED_DISTILL_CUDA_TF32';

export const MATMUL_PRECISIONS = ['fp32', 'bf16', 'tf32'] as const;
export type MatmulPrecision = (typeof MATMUL_PRECISIONS)[number];
/** The precisions each of this package's backends runs. */
export const BACKEND_PRECISIONS: Record<'native' | 'cuda', readonly MatmulPrecision[]> = {
  native: ['fp32', 'bf16'],
  cuda: ['fp32', 'bf16', 'tf32'],
};

/** "'fp32', 'bf16' or 'tf32'" */
export function precisionList(values: readonly string[]): string {
  const q = values.map((v) => `'${v}'`);
  return q.length > 1 ? `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}` : q.join('');
}

function isPrecision(v: unknown): v is MatmulPrecision {
  return typeof v === 'string' && (MATMUL_PRECISIONS as readonly string[]).includes(v);
}

// A bad value is refused when set (tfjs stores a flag's value before its hook runs: the hook puts
// the last good one back, then throws).
let lastGood: MatmulPrecision = 'fp32';
tf.env().registerFlag(
  MATMUL_PRECISION_FLAG,
  () => 'fp32',
  (value) => {
    if (!isPrecision(value)) {
      tf.env().set(MATMUL_PRECISION_FLAG, lastGood);
      throw new Error(
        `${MATMUL_PRECISION_FLAG} must be ${precisionList(MATMUL_PRECISIONS)} ('tf32' on the cuda backend only), ` +
          `got ${JSON.stringify(value)}`,
      );
    }
    lastGood = value;
  },
);

/**
 * The precision products on `backend` use now: the flag's value, checked against what that backend
 * runs (an error names the allowed values). On 'cuda', 'fp32' with FUSED_DISTILL_CUDA_TF32 = true is
 * 'tf32'.
 */
export function matmulPrecision(backend: 'native' | 'cuda' = 'native'): MatmulPrecision {
  const v = tf.env().get(MATMUL_PRECISION_FLAG);
  const allowed = BACKEND_PRECISIONS[backend];
  if (!isPrecision(v) || !allowed.includes(v))
    throw new Error(
      `${MATMUL_PRECISION_FLAG} must be ${precisionList(allowed)} on the ${backend} backend, got ${JSON.stringify(v)}`,
    );
  if (backend === 'cuda' && v === 'fp32' && tf.env().getBool(CUDA_TF32_FLAG)) return 'tf32';
  return v;
}

/**
 * Where bf16 products on 'native' run without this CPU's AVX512-BF16 (a CPU without it, or
 * FUSED_DISTILL_GEMM_ISA set lower): a line saying which path runs instead; null where the
 * vdpbf16ps kernels run or the precision is not bf16.
 */
export function bf16PathNote(precision: MatmulPrecision = matmulPrecision()): string | null {
  if (precision !== 'bf16') return null;
  const isa = addon.gemmIsa();
  if (isa === 'avx512bf16' || isa === 'amxbf16') return null;
  return (
    `bf16 matrix products: this CPU path (${isa}) has no AVX512-BF16; the portable bf16 path runs ` +
    `(${isa} fp32 kernels on bf16-rounded inputs: the same bits, about fp32 speed)`
  );
}

/**
 * Sets the flag (checked: an error names the allowed values for `backend`) and returns the line
 * bf16PathNote gives for it on 'native', if any.
 */
export function setMatmulPrecision(precision: string, backend: string): string | null {
  const known = backend === 'native' || backend === 'cuda';
  const allowed = known ? BACKEND_PRECISIONS[backend] : (['fp32'] as const);
  if (!(allowed as readonly string[]).includes(precision))
    throw new Error(
      `precision must be ${precisionList(allowed)} on the ${backend} backend, got ${JSON.stringify(precision)}` +
        (known ? '' : ` (only this package's native and cuda backends run bf16 or tf32 products)`),
    );
  tf.env().set(MATMUL_PRECISION_FLAG, precision);
  return backend === 'native' ? bf16PathNote(precision as MatmulPrecision) : null;
}
