// Seeded randomness for everything that must come out the same from the same seed (the bundled
// collection, model initialisation, training-batch sampling).

// Math's functions bound once: in the hot loops below a global lookup costs ~0.4 µs under jest (a vm
// context, whose globals are interceptor calls) against ~1 ns in plain Node.
const { imul, sqrt, log, cos, sin, PI } = Math;

/**
 * mulberry32: a small seeded PRNG, enough for sampling and shuffling. Its whole state is one 32-bit
 * integer, so a training checkpoint can save it and a resumed run draw the same numbers.
 */
export class Mulberry32 {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** A function drawing from a fresh mulberry32 seeded with `seed`. */
export function rng(seed: number): () => number {
  const g = new Mulberry32(seed);
  return () => g.next();
}

/** n draws from normal(0, std): Box-Muller on `next` (two uniforms give two normals). */
export function normalArray(n: number, std: number, next: () => number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = sqrt(-2 * log(1 - next())) * std;
    const th = 2 * PI * next();
    v[i] = r * cos(th);
    if (i + 1 < n) v[i + 1] = r * sin(th);
  }
  return v;
}
