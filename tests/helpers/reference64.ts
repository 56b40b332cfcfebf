// Float64 references for every loss of docs/loss-contract.md and the src/nn layers, written independently of the
// implementation: plain loops over Float64Arrays, no tfjs, no addon. Each returns the loss and its
// gradient w.r.t. the student input, with masks. Plus a seeded PRNG and input generators.

export type Arr = ArrayLike<number>;

// Jest runs test code in a vm context where every global lookup (Math, Infinity, ...) goes through
// the context's interceptors and is ~20x slower: bind what the hot loops use once, at module scope.
const { exp, log, log1p, abs, max, sqrt, cos, floor, PI, imul } = Math;
const INF = Number.POSITIVE_INFINITY;

export interface LossGrad {
  loss: number;
  grad: Float64Array;
  /** size of the set the mean is taken over (pairs, rows or entries) */
  count: number;
}

export const TERMS = [
  'pointwiseBCE',
  'pairwiseRankNet',
  'pairwiseHinge',
  'listwiseSoftmaxCE',
  'distillKL',
  'marginMSE',
  'scoreMSE',
] as const;
export type Term = (typeof TERMS)[number];

// ---------------------------------------------------------------- PRNG and generators

/** mulberry32: a small seeded 32-bit PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rng = () => number;

export function gaussian(rng: Rng): number {
  let u = rng();
  while (u <= 1e-12) u = rng();
  return sqrt(-2 * log(u)) * cos(2 * PI * rng());
}

export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + floor(rng() * (hi - lo + 1));
}

/** Scores ~ N(0, scale^2) as float32. */
export function scores(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = gaussian(rng) * scale;
  return a;
}

/** Graded labels 0..levels-1: with few levels, ties are everywhere (on purpose). */
export function gradedLabels(rng: Rng, n: number, levels = 4): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = floor(rng() * levels);
  return a;
}

/** Labels in [0, 1] for BCE: a mix of hard 0/1 and soft values. */
export function unitLabels(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    a[i] = u < 0.35 ? 0 : u < 0.7 ? 1 : rng();
  }
  return a;
}

/**
 * A [rows, cols] 0/1 mask: each entry valid with probability pValid, and the rows listed in
 * fullyMasked (default: every 5th row, when rows > 1) entirely 0. Entry 0 of a row is valid
 * unless the row is fully masked or maskFirst is set.
 */
export function mask2d(
  rng: Rng,
  rows: number,
  cols: number,
  opts: { pValid?: number; fullyMasked?: number[]; maskFirst?: boolean } = {},
): Float32Array {
  const p = opts.pValid ?? 0.75;
  const full = new Set(opts.fullyMasked ?? (rows > 1 ? range(rows).filter((r) => r % 5 === 2) : []));
  const m = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    if (full.has(r)) continue;
    for (let c = 0; c < cols; c++) m[r * cols + c] = rng() < p ? 1 : 0;
    if (!opts.maskFirst) m[r * cols] = 1;
  }
  return m;
}

/** A [batch, len] token mask: each sequence has a random valid prefix length (padding at the end), some 0. */
export function tokenMask(rng: Rng, batch: number, len: number, opts: { emptyRow?: number } = {}): Float32Array {
  const m = new Float32Array(batch * len);
  for (let b = 0; b < batch; b++) {
    if (b === opts.emptyRow) continue;
    const valid = randInt(rng, 1, len);
    for (let l = 0; l < valid; l++) m[b * len + l] = 1;
  }
  return m;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

// ---------------------------------------------------------------- scalar helpers (float64)

export function softplus(x: number): number {
  return max(x, 0) + log1p(exp(-abs(x)));
}
export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

function isValid(mask: Arr | null | undefined, i: number): boolean {
  return !mask || mask[i] !== 0;
}

function finish(sum: number, grad: Float64Array, count: number): LossGrad {
  if (count === 0) return { loss: 0, grad: new Float64Array(grad.length), count: 0 };
  for (let i = 0; i < grad.length; i++) grad[i] /= count;
  return { loss: sum / count, grad, count };
}

// ---------------------------------------------------------------- the seven score losses, [rows, cols]

/** mean over valid entries of softplus(s) - y s; d/ds = (sigmoid(s) - y) / N. */
export function pointwiseBCE(s: Arr, y: Arr, mask: Arr | null, rows: number, cols: number): LossGrad {
  const n = rows * cols;
  const g = new Float64Array(n);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (!isValid(mask, i)) continue;
    sum += softplus(s[i]) - y[i] * s[i];
    g[i] = sigmoid(s[i]) - y[i];
    count++;
  }
  return finish(sum, g, count);
}

/** For each pair (b, i, j) with y_bi > y_bj, both valid; calls f(i, j) with flat indices. */
function forPairs(y: Arr, mask: Arr | null, rows: number, cols: number, f: (i: number, j: number) => void): void {
  for (let b = 0; b < rows; b++) {
    const o = b * cols;
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      for (let j = 0; j < cols; j++) {
        if (!isValid(mask, o + j)) continue;
        if (y[o + i] > y[o + j]) f(o + i, o + j);
      }
    }
  }
}

/** mean over P of softplus(-sigma (s_i - s_j)). */
export function pairwiseRankNet(s: Arr, y: Arr, mask: Arr | null, rows: number, cols: number, sigma = 1): LossGrad {
  const g = new Float64Array(rows * cols);
  let sum = 0;
  let count = 0;
  forPairs(y, mask, rows, cols, (i, j) => {
    const z = -sigma * (s[i] - s[j]);
    sum += softplus(z);
    const d = -sigma * sigmoid(z); // d softplus(z) / d s_i
    g[i] += d;
    g[j] -= d;
    count++;
  });
  return finish(sum, g, count);
}

/** mean over P of max(0, margin - (s_i - s_j)); subgradient 0 at the kink. */
export function pairwiseHinge(s: Arr, y: Arr, mask: Arr | null, rows: number, cols: number, margin = 1): LossGrad {
  const g = new Float64Array(rows * cols);
  let sum = 0;
  let count = 0;
  forPairs(y, mask, rows, cols, (i, j) => {
    const v = margin - (s[i] - s[j]);
    if (v > 0) {
      sum += v;
      g[i] -= 1;
      g[j] += 1;
    }
    count++;
  });
  return finish(sum, g, count);
}

/** Per row with sum of valid y > 0: -sum_i (y_i / Y) log_softmax(s)_i over valid entries; mean over such rows. */
export function listwiseSoftmaxCE(s: Arr, y: Arr, mask: Arr | null, rows: number, cols: number): LossGrad {
  const g = new Float64Array(rows * cols);
  let sum = 0;
  let count = 0;
  for (let b = 0; b < rows; b++) {
    const o = b * cols;
    let Y = 0;
    let mx = -INF;
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      Y += y[o + i];
      mx = max(mx, s[o + i]);
    }
    if (!(Y > 0)) continue;
    let z = 0;
    for (let i = 0; i < cols; i++) if (isValid(mask, o + i)) z += exp(s[o + i] - mx);
    const lse = mx + log(z);
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      sum -= (y[o + i] / Y) * (s[o + i] - lse);
      g[o + i] = exp(s[o + i] - lse) - y[o + i] / Y;
    }
    count++;
  }
  return finish(sum, g, count);
}

/**
 * Per row of the last axis with >= 1 valid entry: T^2 sum_i p_i (log p_i - log q_i), p = softmax(t/T),
 * q = softmax(s/T) over the valid entries; mean over such rows. d/ds_i = T (q_i - p_i) / rows.
 */
export function distillKL(s: Arr, t: Arr, mask: Arr | null, rows: number, cols: number, temperature = 1): LossGrad {
  const T = temperature;
  const g = new Float64Array(rows * cols);
  let sum = 0;
  let count = 0;
  for (let b = 0; b < rows; b++) {
    const o = b * cols;
    let ms = -INF;
    let mt = -INF;
    let nvalid = 0;
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      ms = max(ms, s[o + i] / T);
      mt = max(mt, t[o + i] / T);
      nvalid++;
    }
    if (nvalid === 0) continue;
    let zs = 0;
    let zt = 0;
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      zs += exp(s[o + i] / T - ms);
      zt += exp(t[o + i] / T - mt);
    }
    const lzs = ms + log(zs);
    const lzt = mt + log(zt);
    let kl = 0;
    for (let i = 0; i < cols; i++) {
      if (!isValid(mask, o + i)) continue;
      const logp = t[o + i] / T - lzt;
      const logq = s[o + i] / T - lzs;
      const p = exp(logp);
      const q = exp(logq);
      if (p > 0) kl += p * (logp - logq);
      g[o + i] = T * (q - p);
    }
    sum += T * T * kl;
    count++;
  }
  return finish(sum, g, count);
}

/** ((s_0 - s_j) - (t_0 - t_j))^2 for each valid j >= 1 of rows whose entry 0 is valid; mean over (b, j). */
export function marginMSE(s: Arr, t: Arr, mask: Arr | null, rows: number, cols: number): LossGrad {
  const g = new Float64Array(rows * cols);
  let sum = 0;
  let count = 0;
  for (let b = 0; b < rows; b++) {
    const o = b * cols;
    if (!isValid(mask, o)) continue;
    for (let j = 1; j < cols; j++) {
      if (!isValid(mask, o + j)) continue;
      const d = s[o] - s[o + j] - (t[o] - t[o + j]);
      sum += d * d;
      g[o] += 2 * d;
      g[o + j] -= 2 * d;
      count++;
    }
  }
  return finish(sum, g, count);
}

/** (s - t)^2, mean over valid entries. */
export function scoreMSE(s: Arr, t: Arr, mask: Arr | null, rows: number, cols: number): LossGrad {
  const n = rows * cols;
  const g = new Float64Array(n);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (!isValid(mask, i)) continue;
    const d = s[i] - t[i];
    sum += d * d;
    g[i] = 2 * d;
    count++;
  }
  return finish(sum, g, count);
}

// ---------------------------------------------------------------- the combined objective

export interface ObjectiveOptions {
  weights: Partial<Record<Term, number>> | ArrayLike<number>;
  temperature?: number;
  sigma?: number;
  margin?: number;
}

export function weightVector(w: ObjectiveOptions['weights']): number[] {
  if (typeof (w as ArrayLike<number>).length === 'number') return Array.from(w as ArrayLike<number>);
  return TERMS.map((k) => (w as Partial<Record<Term, number>>)[k] ?? 0);
}

export interface ObjectiveResult {
  total: number;
  parts: number[]; // each weighted term, TERMS order
  grad: Float64Array;
}

/** One term by name, unweighted. */
export function term(
  name: Term,
  s: Arr,
  t: Arr | null,
  y: Arr | null,
  mask: Arr | null,
  rows: number,
  cols: number,
  o: { temperature?: number; sigma?: number; margin?: number } = {},
): LossGrad {
  switch (name) {
    case 'pointwiseBCE':
      return pointwiseBCE(s, y!, mask, rows, cols);
    case 'pairwiseRankNet':
      return pairwiseRankNet(s, y!, mask, rows, cols, o.sigma ?? 1);
    case 'pairwiseHinge':
      return pairwiseHinge(s, y!, mask, rows, cols, o.margin ?? 1);
    case 'listwiseSoftmaxCE':
      return listwiseSoftmaxCE(s, y!, mask, rows, cols);
    case 'distillKL':
      return distillKL(s, t!, mask, rows, cols, o.temperature ?? 1);
    case 'marginMSE':
      return marginMSE(s, t!, mask, rows, cols);
    case 'scoreMSE':
      return scoreMSE(s, t!, mask, rows, cols);
  }
}

/** sum_k w_k L_k, with each weighted part and the gradient of the total. */
export function rankingObjective(
  s: Arr,
  t: Arr | null,
  y: Arr | null,
  mask: Arr | null,
  rows: number,
  cols: number,
  opts: ObjectiveOptions,
): ObjectiveResult {
  const w = weightVector(opts.weights);
  const grad = new Float64Array(rows * cols);
  const parts = TERMS.map(() => 0);
  TERMS.forEach((name, k) => {
    if (w[k] === 0) return;
    const r = term(name, s, t, y, mask, rows, cols, opts);
    parts[k] = w[k] * r.loss;
    for (let i = 0; i < grad.length; i++) grad[i] += w[k] * r.grad[i];
  });
  return { total: parts.reduce((a, b) => a + b, 0), parts, grad };
}

// ---------------------------------------------------------------- feature losses

/** hs, ht: [layers, batch, len, hidden]; tokenMask [batch, len]; mean over valid (layer, token) x hidden. */
export function hiddenMSE(
  a: Arr,
  b: Arr,
  mask: Arr | null,
  layers: number,
  batch: number,
  len: number,
  hidden: number,
): LossGrad {
  const g = new Float64Array(layers * batch * len * hidden);
  let sum = 0;
  let count = 0;
  for (let l = 0; l < layers; l++)
    for (let tok = 0; tok < batch * len; tok++) {
      if (!isValid(mask, tok)) continue;
      const o = (l * batch * len + tok) * hidden;
      for (let h = 0; h < hidden; h++) {
        const d = a[o + h] - b[o + h];
        sum += d * d;
        g[o + h] = 2 * d;
        count++;
      }
    }
  return finish(sum, g, count);
}

/** as, at: [batch, heads, len, len]; an entry is valid iff its query and key tokens are both valid. */
export function attentionMSE(a: Arr, b: Arr, mask: Arr | null, batch: number, heads: number, len: number): LossGrad {
  const g = new Float64Array(batch * heads * len * len);
  let sum = 0;
  let count = 0;
  for (let bb = 0; bb < batch; bb++)
    for (let h = 0; h < heads; h++)
      for (let q = 0; q < len; q++) {
        if (!isValid(mask, bb * len + q)) continue;
        for (let k = 0; k < len; k++) {
          if (!isValid(mask, bb * len + k)) continue;
          const i = ((bb * heads + h) * len + q) * len + k;
          const d = a[i] - b[i];
          sum += d * d;
          g[i] = 2 * d;
          count++;
        }
      }
  return finish(sum, g, count);
}

// ---------------------------------------------------------------- layers (src/nn)

/** erf in float64: 2/sqrt(pi) e^-x^2 sum (2x^2)^n x / (2n+1)!! (all terms positive). */
export function erf64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = abs(x);
  if (ax > 6) return Math.sign(x);
  const x2 = 2 * ax * ax;
  let term = ax,
    sum = ax;
  for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
  }
  const r = (2 / sqrt(PI)) * exp(-ax * ax) * sum;
  return x < 0 ? -r : Object.is(x, -0) ? -0 : r;
}

/** GELU (erf form) and its derivative in float64. */
export function gelu64(x: number): number {
  return 0.5 * x * (1 + erf64(x / Math.SQRT2));
}
export function geluGrad64(x: number): number {
  if (x === INF) return 1;
  if (x === -INF) return 0;
  return 0.5 * (1 + erf64(x / Math.SQRT2)) + (x * exp(-0.5 * x * x)) / sqrt(2 * PI);
}

/** LayerNorm over the rows of x [rows, cols] in float64: y, and each row's mean and rstd. */
export function layerNorm64(x: Arr, gamma: Arr, beta: Arr, rows: number, cols: number, eps: number) {
  const y = new Float64Array(rows * cols),
    mean = new Float64Array(rows),
    rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c];
    const m = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - m) ** 2;
    const rs = 1 / sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - m) * rs * gamma[c] + beta[c];
    mean[r] = m;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

/** d(sum(dy * layerNorm(x)))/d(x, gamma, beta) in float64 (statistics recomputed from x). */
export function layerNormGrad64(dy: Arr, x: Arr, gamma: Arr, rows: number, cols: number, eps: number) {
  const { mean, rstd } = layerNorm64(x, gamma, new Float64Array(cols), rows, cols, eps);
  const dx = new Float64Array(rows * cols),
    dgamma = new Float64Array(cols),
    dbeta = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let s1 = 0,
      s2 = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c,
        xhat = (x[i] - mean[r]) * rstd[r],
        g = dy[i] * gamma[c];
      s1 += g;
      s2 += g * xhat;
      dgamma[c] += dy[i] * xhat;
      dbeta[c] += dy[i];
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c,
        xhat = (x[i] - mean[r]) * rstd[r];
      dx[i] = rstd[r] * (dy[i] * gamma[c] - s1 / cols - (xhat * s2) / cols);
    }
  }
  return { dx, dgamma, dbeta };
}

// ---------------------------------------------------------------- finite differences and comparisons

/** Central differences of f at x (float64), at the given indices (default all). */
/**
 * Multi-head self-attention in float64 (src/nn/attention.ts): q, k, v [B, L, H], head h the columns
 * h*dh .. (h+1)*dh - 1; per (b, h) P = softmax(scale * Q K^T + bias[b]) (bias [B, L]), out = P V.
 * Returns out [B, L, H] and P [B, A, L, L].
 */
export function attention64(
  q: Arr,
  k: Arr,
  v: Arr,
  bias: Arr,
  B: number,
  L: number,
  H: number,
  A: number,
  scale: number,
) {
  const dh = H / A;
  const out = new Float64Array(B * L * H);
  const probs = new Float64Array(B * A * L * L);
  const s = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < A; h++) {
      const at = (x: Arr, i: number, d: number) => x[(b * L + i) * H + h * dh + d];
      for (let i = 0; i < L; i++) {
        let m = -INF;
        for (let j = 0; j < L; j++) {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += at(q, i, d) * at(k, j, d);
          s[j] = scale * dot + bias[b * L + j];
          m = max(m, s[j]);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += exp(s[j] - m);
        const prow = ((b * A + h) * L + i) * L;
        for (let j = 0; j < L; j++) probs[prow + j] = exp(s[j] - m) / z;
        for (let d = 0; d < dh; d++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += probs[prow + j] * at(v, j, d);
          out[(b * L + i) * H + h * dh + d] = acc;
        }
      }
    }
  return { out, probs };
}

/** The gradients of sum(dout * attention64(...).out) w.r.t. q, k, v and bias, in float64. */
export function attentionGrad64(
  dout: Arr,
  q: Arr,
  k: Arr,
  v: Arr,
  bias: Arr,
  B: number,
  L: number,
  H: number,
  A: number,
  scale: number,
) {
  const dh = H / A;
  const { probs } = attention64(q, k, v, bias, B, L, H, A, scale);
  const dq = new Float64Array(B * L * H),
    dk = new Float64Array(B * L * H),
    dv = new Float64Array(B * L * H),
    dbias = new Float64Array(B * L);
  const g = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < A; h++) {
      const ix = (i: number, d: number) => (b * L + i) * H + h * dh + d;
      for (let i = 0; i < L; i++) {
        const prow = ((b * A + h) * L + i) * L;
        // dP[i, j] = dO[i] . V[j]; G = P * (dP - sum_j dP P)
        let r = 0;
        for (let j = 0; j < L; j++) {
          let dp = 0;
          for (let d = 0; d < dh; d++) dp += dout[ix(i, d)] * v[ix(j, d)];
          g[j] = dp;
          r += dp * probs[prow + j];
        }
        for (let j = 0; j < L; j++) {
          const p = probs[prow + j];
          g[j] = p * (g[j] - r);
          dbias[b * L + j] += g[j];
          for (let d = 0; d < dh; d++) {
            dv[ix(j, d)] += p * dout[ix(i, d)];
            dq[ix(i, d)] += scale * g[j] * k[ix(j, d)];
            dk[ix(j, d)] += scale * g[j] * q[ix(i, d)];
          }
        }
      }
    }
  return { dq, dk, dv, dbias };
}

export function finiteDiff(f: (x: Float64Array) => number, x: Arr, h = 1e-6, idx?: number[]): Float64Array {
  const base = Float64Array.from(x);
  const g = new Float64Array(base.length);
  for (const i of idx ?? range(base.length)) {
    const xi = base[i];
    base[i] = xi + h;
    const fp = f(base);
    base[i] = xi - h;
    const fm = f(base);
    base[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/**
 * How far c is from the exact product a b (all K x K, row-major): the largest |c - exact| over
 * sum_k |a_ik b_kj| among the entries, in float64. An fp32 product keeps it under K * 2^-24; TF32
 * (10 mantissa bits) goes beyond that, within 2^-9 + K * 2^-24.
 */
export function matmulRelativeError(a: Arr, b: Arr, c: Arr, K: number): number {
  let worst = 0;
  for (let i = 0; i < K; i++)
    for (let j = 0; j < K; j++) {
      let exact = 0;
      let scale = 0;
      for (let k = 0; k < K; k++) {
        exact += a[i * K + k] * b[k * K + j];
        scale += Math.abs(a[i * K + k] * b[k * K + j]);
      }
      worst = Math.max(worst, Math.abs(c[i * K + j] - exact) / scale);
    }
  return worst;
}

export function maxAbs(a: Arr): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = max(m, abs(a[i]));
  return m;
}

/** |got - want| <= rel * max(1, |want|) (and both finite). */
export function expectLossClose(got: number, want: number, rel = 1e-5, label = ''): void {
  if (!Number.isFinite(got) || !Number.isFinite(want) || abs(got - want) > rel * max(1, abs(want)))
    throw new Error(`${label} loss mismatch: got ${got}, want ${want} (|diff| ${abs(got - want)}, rel tol ${rel})`);
}

/**
 * Every |got_i - want_i| <= rel * max(max|want|, floor). With floor 0 (the default) an all-zero
 * expected gradient must be matched exactly (an empty set gives exactly zero gradient); pass as floor
 * the gradient's natural scale (e.g. 1 / count) where a zero gradient is only zero mathematically.
 */
export function expectGradClose(got: Arr, want: Arr, rel = 1e-5, label = '', floor = 0): void {
  if (got.length !== want.length) throw new Error(`${label} gradient length ${got.length} != ${want.length}`);
  const scale = max(maxAbs(want), floor);
  const tol = scale === 0 ? 0 : rel * scale + 1e-30;
  let worst = -1;
  let worstDiff = 0;
  for (let i = 0; i < got.length; i++) {
    const d = abs(got[i] - want[i]);
    if (!(d <= tol) && !(d <= worstDiff)) {
      worst = i;
      worstDiff = Number.isNaN(d) ? INF : d;
    }
  }
  if (worst >= 0)
    throw new Error(
      `${label} gradient mismatch at ${worst}: got ${got[worst]}, want ${want[worst]} (|diff| ${worstDiff}, tol ${tol}, max|want| ${scale})`,
    );
}
