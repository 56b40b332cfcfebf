// A value with the keys of every object sorted, at every level: JSON.stringify of it is the same for
// the same content however a file or a parse ordered the keys (config hashes, tokenizer signatures).
export const canonical = (x: unknown): unknown =>
  Array.isArray(x)
    ? x.map(canonical)
    : x && typeof x === 'object'
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, canonical((x as Record<string, unknown>)[k])]),
        )
      : x;
