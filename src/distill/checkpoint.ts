// Training checkpoints: everything a run needs to continue exactly where it was — the model's
// weights, other trained variables (projections), the optimizer's step and moments, the sampler's
// state and the log — in one directory, checkpoints/step-<n>. It is written under a temporary name
// and renamed into place only when complete (a kill mid-write leaves the previous checkpoint as the
// latest), and state.json is written last inside it, then checksums.json: the sha256 of every
// other file, checked before a checkpoint is read (a checkpoint without it, written before checksums
// were, is read with a notice).
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { processAlive, renameDirInto, writeAtomic } from '../data/atomic';
import { decodeWeightsFile, loadCrossEncoder, readJsonFile, saveCrossEncoder } from '../models/checkpoint';
import type { CrossEncoder } from '../models/cross_encoder';
import type { AdamW } from './optimizer';

const STEP_DIR = /^step-(\d+)$/;
const TEMP_DIR = /^(?:\.tmp-step-\d+-|step-\d+\.old-)(\d+)$/;

/** Writes named variables to dir/<name>.json + dir/<name>.bin (float32, exact). */
export async function saveVariables(dir: string, name: string, vars: Map<string, tf.Variable>): Promise<void> {
  const { data, specs } = await tf.io.encodeWeights(Object.fromEntries(vars));
  fs.mkdirSync(dir, { recursive: true });
  await writeAtomic(path.join(dir, `${name}.bin`), (w) => w.write(new Uint8Array(data)));
  await writeAtomic(path.join(dir, `${name}.json`), (w) => w.write(`${JSON.stringify({ weights: specs }, null, 1)}\n`));
}

/** Assigns the values saved by saveVariables to the variables of the same names. */
export function loadVariables(dir: string, name: string, vars: Map<string, tf.Variable>): void {
  const { weights } = (readJsonFile(path.join(dir, `${name}.json`)) ?? {}) as {
    weights: Parameters<typeof decodeWeightsFile>[1];
  };
  const tensors = decodeWeightsFile(path.join(dir, `${name}.bin`), weights);
  try {
    for (const [k, v] of vars) {
      const t = tensors[k];
      if (!t || t.shape.join() !== v.shape.join()) throw new Error(`${dir}/${name}.bin: no ${k} of shape [${v.shape}]`);
      v.assign(t);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

export interface CheckpointParts<S> {
  model: CrossEncoder;
  extra: Map<string, tf.Variable>;
  optimizer: AdamW;
  /** JSON state: step, sampler, log, ... */
  state: S & { step: number };
}

/** Writes root/step-<n> atomically and keeps only the newest `keep` checkpoints. */
export async function writeCheckpoint<S>(root: string, parts: CheckpointParts<S>, keep: number): Promise<string> {
  fs.mkdirSync(root, { recursive: true });
  removeStaleTemps(root);
  const name = `step-${String(parts.state.step).padStart(8, '0')}`;
  const temp = path.join(root, `.tmp-${name}-${process.pid}`);
  fs.rmSync(temp, { recursive: true, force: true });
  await saveCrossEncoder(parts.model, path.join(temp, 'model'));
  await saveVariables(temp, 'extra', parts.extra);
  await parts.optimizer.save(temp);
  await writeAtomic(path.join(temp, 'state.json'), (w) => w.write(`${JSON.stringify(parts.state)}\n`));
  await writeAtomic(path.join(temp, CHECKSUMS), (w) =>
    w.write(`${JSON.stringify({ format: CHECKSUMS_FORMAT, sha256: hashFiles(temp) }, null, 1)}\n`),
  );
  const target = path.join(root, name);
  renameDirInto(temp, target);
  const all = listCheckpoints(root);
  for (const dir of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(dir, { recursive: true, force: true });
  return target;
}

/** Complete checkpoints (with state.json), oldest first. */
export function listCheckpoints(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => STEP_DIR.test(n) && fs.existsSync(path.join(root, n, 'state.json')))
    .sort((a, b) => Number(STEP_DIR.exec(a)![1]) - Number(STEP_DIR.exec(b)![1]))
    .map((n) => path.join(root, n));
}

export function latestCheckpoint(root: string): string | null {
  return listCheckpoints(root).pop() ?? null;
}

/** A checkpoint that cannot be trusted (corrupt, truncated, inconsistent): an older one may be. */
export class CheckpointError extends Error {
  constructor(
    readonly dir: string,
    message: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const CHECKSUMS = 'checksums.json';
const CHECKSUMS_FORMAT = 'fused-distill-checksums';

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// Every file under dir but checksums.json, by its path relative to dir ('/'-separated), sorted.
function hashFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of fs
      .readdirSync(path.join(dir, rel), { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (r !== CHECKSUMS) out[r] = sha256(path.join(dir, r));
    }
  };
  walk('');
  return out;
}

/**
 * Checks a checkpoint's files against the sha256 sums written with it. Returns false when it has
 * none (written before checksums were); throws a CheckpointError naming the first file that is
 * missing or differs.
 */
export function verifyCheckpoint(dir: string): boolean {
  const file = path.join(dir, CHECKSUMS);
  if (!fs.existsSync(file)) return false;
  let sums: Record<string, string>;
  try {
    const parsed = readJsonFile(file) as { format?: string; sha256?: Record<string, string> };
    if (parsed?.format !== CHECKSUMS_FORMAT || !parsed.sha256 || typeof parsed.sha256 !== 'object')
      throw new Error(`${file}: not a ${CHECKSUMS_FORMAT} file`);
    sums = parsed.sha256;
  } catch (e) {
    throw new CheckpointError(dir, (e as Error).message);
  }
  for (const [rel, want] of Object.entries(sums)) {
    const f = path.join(dir, rel);
    if (!fs.existsSync(f)) throw new CheckpointError(dir, `${f}: missing (listed in ${CHECKSUMS})`);
    if (sha256(f) !== want)
      throw new CheckpointError(
        dir,
        `${f}: sha256 differs from the one written with the checkpoint (corrupt or truncated)`,
      );
  }
  for (const name of ['state.json', 'optimizer.bin', 'model/weights.bin'])
    if (!(name in sums)) throw new CheckpointError(dir, `${file}: has no sum for ${name}`);
  return true;
}

/**
 * Restores model weights, extra variables and the optimizer from a checkpoint; returns its state.
 * Its files are checked against their checksums first (`onNotice` hears when there are none to
 * check); any problem, there or in reading them, is a CheckpointError naming the file.
 */
export function readCheckpoint<S>(
  dir: string,
  target: { model: CrossEncoder; extra: Map<string, tf.Variable>; optimizer: AdamW },
  onNotice: (message: string) => void = () => undefined,
): S & { step: number } {
  if (!verifyCheckpoint(dir))
    onNotice(`${dir}: has no ${CHECKSUMS} (written before checkpoints had them); read without an integrity check`);
  try {
    const state = readJsonFile(path.join(dir, 'state.json'));
    if (!state || typeof state !== 'object') throw new Error(`${dir}/state.json: not a JSON object`);
    const saved = loadCrossEncoder(path.join(dir, 'model'));
    try {
      for (const [name, v] of target.model.params) {
        const s = saved.params.get(name);
        if (!s || s.shape.join() !== v.shape.join())
          throw new Error(`${dir}/model: ${name} is missing or has another shape than the run's model`);
        v.assign(s);
      }
    } finally {
      saved.dispose();
    }
    loadVariables(dir, 'extra', target.extra);
    target.optimizer.load(dir);
    return state as S & { step: number };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(dir, (e as Error).message);
  }
}

// A writer killed mid-checkpoint leaves .tmp-step-<n>-<pid> (or, between renameDirInto's two
// renames, step-<n>.old-<pid>): removed once that process is gone.
function removeStaleTemps(root: string): void {
  for (const n of fs.readdirSync(root)) {
    const m = TEMP_DIR.exec(n);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(root, n), { recursive: true, force: true });
  }
}
