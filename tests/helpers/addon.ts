// Thin typed wrappers around the raw addon for the tests (the addon is loaded by src/native.ts).
import { addon } from '../../src/native';
import { TERMS, Term } from './reference64';

export { addon };

export interface AddonObjective {
  total: number;
  parts: Float64Array;
  grad: Float32Array;
}

export function weights32(w: Partial<Record<Term, number>>): Float32Array {
  return Float32Array.from(TERMS.map((k) => w[k] ?? 0));
}

export function objective(
  s: Float32Array,
  t: Float32Array | null,
  y: Float32Array | null,
  mask: Float32Array | null,
  rows: number,
  cols: number,
  opts: { weights: Partial<Record<Term, number>>; temperature?: number; sigma?: number; margin?: number },
): AddonObjective {
  const grad = new Float32Array(rows * cols).fill(Number.NaN); // the kernel must overwrite every entry
  const result = new Float32Array(8).fill(Number.NaN); // the total, then the 7 parts
  addon.rankingObjective(
    s,
    t,
    y,
    mask,
    rows,
    cols,
    weights32(opts.weights),
    opts.temperature ?? 1,
    opts.sigma ?? 1,
    opts.margin ?? 1,
    grad,
    result,
  );
  return { total: result[0], parts: Float64Array.from(result.subarray(1)), grad };
}

export function hidden(
  a: Float32Array,
  b: Float32Array,
  mask: Float32Array | null,
  layers: number,
  batch: number,
  len: number,
  hiddenSize: number,
): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(a.length).fill(Number.NaN);
  const loss = new Float32Array(1);
  addon.hiddenMSE(a, b, mask, layers, batch, len, hiddenSize, grad, loss);
  return { loss: loss[0], grad };
}

export function attention(
  a: Float32Array,
  b: Float32Array,
  mask: Float32Array | null,
  batch: number,
  heads: number,
  len: number,
): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(a.length).fill(Number.NaN);
  const loss = new Float32Array(1);
  addon.attentionMSE(a, b, mask, batch, heads, len, grad, loss);
  return { loss: loss[0], grad };
}

type Head<A> = A extends [...infer H, unknown] ? H : never;

/** addon.rankingObjective's arguments before `result`, returning the total (result[0]). */
export function rankingTotal(...args: Head<Parameters<typeof addon.rankingObjective>>): number {
  const result = new Float32Array(8);
  addon.rankingObjective(...args, result);
  return result[0];
}

/** addon.hiddenMSE's arguments before `loss`, returning the loss. */
export function hiddenLoss(...args: Head<Parameters<typeof addon.hiddenMSE>>): number {
  const loss = new Float32Array(1);
  addon.hiddenMSE(...args, loss);
  return loss[0];
}

/** addon.attentionMSE's arguments before `loss`, returning the loss. */
export function attentionLoss(...args: Head<Parameters<typeof addon.attentionMSE>>): number {
  const loss = new Float32Array(1);
  addon.attentionMSE(...args, loss);
  return loss[0];
}
