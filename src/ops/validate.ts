// Input checks shared by every fused op. Each error names the op, the argument and what was
// expected, so a bad call fails in JS with a clear message before any kernel runs (the addon checks
// again, as a last line of defence).
import { Tensor } from '@tensorflow/tfjs';

export class FusedDistillError extends Error {
  constructor(op: string, message: string) {
    super(`fused-distill: ${op}: ${message}`);
    this.name = 'FusedDistillError';
  }
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** A non-empty float32 tensor; rank within [minRank, maxRank]. */
export function checkTensor(
  op: string,
  name: string,
  x: unknown,
  minRank: number,
  maxRank: number,
  layout: string,
): Tensor {
  if (!(x instanceof Tensor)) throw new FusedDistillError(op, `${name} must be a tf.Tensor of shape ${layout}`);
  if (x.dtype !== 'float32') throw new FusedDistillError(op, `${name} must be float32, got ${x.dtype}`);
  if (x.rank < minRank || x.rank > maxRank)
    throw new FusedDistillError(
      op,
      `${name} must have shape ${layout} (rank ${minRank === maxRank ? minRank : `${minRank}..${maxRank}`}), got ${fmt(x.shape)}`,
    );
  if (x.size === 0) throw new FusedDistillError(op, `${name} must not be empty, got shape ${fmt(x.shape)}`);
  return x;
}

/** An optional float32 tensor of exactly `shape` (null/undefined passes through). */
export function checkLike(op: string, name: string, x: unknown, shape: readonly number[], what: string): Tensor | null {
  if (x == null) return null;
  if (!(x instanceof Tensor))
    throw new FusedDistillError(op, `${name} must be a tf.Tensor of shape ${fmt(shape)} (${what})`);
  if (x.dtype !== 'float32') throw new FusedDistillError(op, `${name} must be float32, got ${x.dtype}`);
  if (x.rank !== shape.length || x.shape.some((d: number, i: number) => d !== shape[i]))
    throw new FusedDistillError(op, `${name} must have shape ${fmt(shape)} (${what}), got ${fmt(x.shape)}`);
  return x;
}

export function required<T>(op: string, name: string, x: T | null | undefined, why: string): T {
  if (x == null) throw new FusedDistillError(op, `${name} is required ${why}`);
  return x;
}

/** A finite number; `bound` 'positive' asks for > 0, 'nonNegative' for >= 0. */
export function checkNumber(
  op: string,
  name: string,
  v: unknown,
  bound: 'any' | 'positive' | 'nonNegative' = 'any',
): number {
  const inDomain =
    bound === 'positive' ? (x: number) => x > 0 : bound === 'nonNegative' ? (x: number) => x >= 0 : () => true;
  if (typeof v !== 'number' || !Number.isFinite(v) || !inDomain(v)) {
    const what = bound === 'positive' ? ' > 0' : bound === 'nonNegative' ? ' >= 0' : '';
    throw new FusedDistillError(op, `${name} must be a finite number${what}, got ${String(v)}`);
  }
  return v;
}
