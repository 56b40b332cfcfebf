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
  const parts = new Float64Array(7).fill(Number.NaN);
  const total = addon.rankingObjective(
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
    parts,
  );
  return { total, parts, grad };
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
  const loss = addon.hiddenMSE(a, b, mask, layers, batch, len, hiddenSize, grad);
  return { loss, grad };
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
  const loss = addon.attentionMSE(a, b, mask, batch, heads, len, grad);
  return { loss, grad };
}
