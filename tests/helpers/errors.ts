// Errors thrown by the native addon come from Node's main realm, not jest's sandbox, so
// `toThrow(RangeError)` (an instanceof check) cannot be used: these helpers check by name instead.

/** Calls f and returns what it threw; fails the test if it returned normally. */
export function thrown(f: () => unknown): Error {
  let result: unknown;
  try {
    result = f();
  } catch (e) {
    return e as Error;
  }
  throw new Error(`expected a throw, but the call returned ${describe(result)}`);
}

/** f throws an Error (of any realm) with a non-empty message; optionally a given name and message pattern. */
export function expectError(f: () => unknown, pattern?: RegExp, name?: string): Error {
  const e = thrown(f);
  const isError = e instanceof Error || Object.prototype.toString.call(e) === '[object Error]';
  if (!isError) throw new Error(`expected an Error, got ${describe(e)}`);
  if (typeof e.message !== 'string' || e.message.length === 0) throw new Error('error without a message');
  if (pattern && !pattern.test(e.message))
    throw new Error(`error message ${JSON.stringify(e.message)} does not match ${pattern}`);
  if (name && e.name !== name) throw new Error(`expected a ${name}, got a ${e.name}: ${e.message}`);
  return e;
}

export function describe(v: unknown): string {
  if (typeof v === 'symbol' || typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return 'function';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
