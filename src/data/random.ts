// Seeded randomness for everything that must come out the same from the same seed (the bundled
// collection, model initialisation, training-batch sampling).

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
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** A function drawing from a fresh mulberry32 seeded with `seed`. */
export function rng(seed: number): () => number {
  const g = new Mulberry32(seed);
  return () => g.next();
}
