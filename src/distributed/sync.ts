// What keeps the ranks of a run in step besides the gradients: rank 0 as the one writer (its lock,
// its decisions shared), the start-up check that every rank runs the same thing on the same data,
// the parameters sent from rank 0 at start and compared by hash at each checkpoint.
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs';

import { withDirLock } from '../data/lock';
import { allgatherJson, broadcastJson, type World } from './world';

/** fn under dir's lock on rank 0, the one rank that writes there; the other ranks run fn unlocked. */
export function withWriterLock<T>(
  world: World,
  dir: string,
  fn: () => Promise<T>,
  options?: Parameters<typeof withDirLock>[2],
): Promise<T> {
  return world.rank === 0 ? withDirLock(dir, fn, options) : fn();
}

/**
 * Rank 0's value of fn on every rank (the others do not call it): a decision the ranks must share,
 * such as what the output dir holds. An error on rank 0 is thrown on every rank with its message.
 */
export async function decideOnRankZero<T>(world: World, fn: () => T | Promise<T>): Promise<T> {
  if (world.size === 1) return fn();
  let decided: { value: T } | { error: string } = { error: '' };
  if (world.rank === 0) {
    try {
      decided = { value: await fn() };
    } catch (e) {
      decided = { error: (e as Error).message };
    }
  }
  decided = await broadcastJson(world, decided);
  if ('error' in decided) throw new Error(decided.error);
  return decided.value;
}

/**
 * Stops every rank when the ranks disagree on what should be the same everywhere (the config, the
 * data's fingerprint, the code's version, where a resume starts): the message names each field
 * that differs and the ranks that differ from rank 0.
 */
export async function requireAgreement(world: World, fields: Record<string, string | number | null>): Promise<void> {
  if (world.size === 1) return;
  const all = await allgatherJson(world, fields);
  const problems: string[] = [];
  for (const key of Object.keys(all[0])) {
    const differ = all.map((f, r) => r).filter((r) => all[r][key] !== all[0][key]);
    if (differ.length === 0) continue;
    const shown = (v: unknown) => (typeof v === 'string' && v.length > 20 ? `${v.slice(0, 16)}…` : JSON.stringify(v));
    problems.push(
      `${key}: rank 0 has ${shown(all[0][key])}, ${differ.map((r) => `rank ${r} ${shown(all[r][key])}`).join(', ')}`,
    );
  }
  if (problems.length > 0)
    throw new Error(
      `the ${world.size} ranks do not run the same thing (each must use the same config, data and code):\n  ${problems.join('\n  ')}`,
    );
}

/** sha256 of variables' float32 bytes, in the map's order. */
export function variablesHash(vars: Map<string, tf.Variable>): string {
  const hash = createHash('sha256');
  for (const [name, v] of vars) {
    const a = v.dataSync() as Float32Array;
    hash.update(`${name}\0`).update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return hash.digest('hex');
}

/** Rank 0's values of the variables, assigned on every other rank (the same names and shapes everywhere). */
export async function broadcastVariables(world: World, vars: Map<string, tf.Variable>): Promise<void> {
  if (world.size === 1) return;
  const total = [...vars.values()].reduce((n, v) => n + v.size, 0);
  const out = new Float32Array(world.rank === 0 ? total : 0);
  if (world.rank === 0) {
    let at = 0;
    for (const v of vars.values()) {
      out.set(v.dataSync() as Float32Array, at);
      at += v.size;
    }
  }
  const bytes = await world.broadcast(new Uint8Array(out.buffer), 0);
  if (world.rank === 0) return;
  if (bytes.byteLength !== 4 * total)
    throw new Error(`rank 0 sent ${bytes.byteLength / 4} parameter values, this rank's model has ${total}`);
  const values = new Float32Array(bytes.slice().buffer);
  let at = 0;
  for (const v of vars.values()) {
    const t = tf.tensor(values.subarray(at, at + v.size), v.shape, 'float32');
    v.assign(t);
    t.dispose();
    at += v.size;
  }
}

/** Stops every rank when a rank's variables differ from rank 0's (they should be equal bit for bit). */
export async function requireEqualVariables(world: World, vars: Map<string, tf.Variable>, when: string): Promise<void> {
  if (world.size === 1) return;
  const hashes = await allgatherJson(world, variablesHash(vars));
  const differ = hashes.map((h, r) => r).filter((r) => hashes[r] !== hashes[0]);
  if (differ.length > 0)
    throw new Error(
      `${when}: the parameters of rank${differ.length > 1 ? 's' : ''} ${differ.join(', ')} differ from rank 0's (sha256 ${hashes[0].slice(0, 12)}… vs ${differ.map((r) => hashes[r].slice(0, 12) + '…').join(', ')}); the ranks no longer train the same model`,
    );
}
