// Adam with decoupled weight decay (AdamW, as torch.optim.AdamW and BERT's fine-tuning use it), a
// learning rate that warms up linearly and then decays linearly, and global-norm gradient clipping.
// Written with tfjs ops rather than tf.train.adam so that its whole state (step count, first and
// second moments) is ours to save and restore bit for bit: a resumed run must reach the same
// weights as an uninterrupted one.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { writeAtomic } from '../data/atomic';
import { readJsonFile } from '../models/checkpoint';
import { AdamWAttrs, adamwUpdate, adamwUpdateInPlace, sumSquares } from './adamw_kernel';

export interface AdamWOptions {
  lr: number;
  /** linear warmup steps (lr rises to `lr` at step `warmup`) */
  warmup: number;
  /** total steps: the lr decays linearly over the steps after warmup */
  totalSteps: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** decoupled weight decay; applied to the parameters for which `decays(name)` is true */
  weightDecay?: number;
  /** clip the gradients' global L2 norm to this; 0 or absent = no clipping */
  clipNorm?: number;
  decays?: (name: string) => boolean;
}

/** BERT's convention: no weight decay on biases and LayerNorm parameters. */
export const bertDecays = (name: string): boolean => !name.endsWith('.bias') && !name.includes('LayerNorm');

/**
 * The learning rate of update n (1-based): lr * n / warmup during warmup, then
 * lr * (T - n + 1) / (T - warmup) after it (T = totalSteps), so no update has lr 0 and the last
 * one has lr / (T - warmup).
 */
export function learningRate(o: Pick<AdamWOptions, 'lr' | 'warmup' | 'totalSteps'>, n: number): number {
  if (n <= o.warmup) return (o.lr * n) / o.warmup;
  return (o.lr * Math.max(0, o.totalSteps - n + 1)) / (o.totalSteps - o.warmup);
}

export interface StepInfo {
  step: number;
  lr: number;
  /** the gradients' global norm before clipping */
  gradNorm: number;
  /** false when the gradient norm was NaN or Inf: nothing was updated */
  applied: boolean;
}

const STATE_FORMAT = 'fused-distill-adamw';

export class AdamW {
  /** updates applied so far */
  step = 0;
  readonly o: Required<AdamWOptions>;
  // The moments are tensors on the parameters' backend: the update is one kernel pass per parameter
  // (adamw_kernel.ts; far fewer passes over memory than a dozen scalar-broadcast tensor ops over
  // BERT's 7.8M-float embedding table) with no parameter or gradient copied between host and device.
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(
    readonly params: Map<string, tf.Variable>,
    options: AdamWOptions,
  ) {
    this.o = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: 0, decays: bertDecays, ...options };
    for (const [name, p] of params) {
      this.m.set(name, tf.keep(tf.zeros(p.shape)));
      this.v.set(name, tf.keep(tf.zeros(p.shape)));
    }
  }

  /**
   * One update from gradients keyed by parameter name; a parameter without one is left alone,
   * moments included (as torch skips a parameter whose grad is None). The gradients are not
   * disposed. torch's AdamW, in float64 arithmetic on float32 state:
   *   g *= clip;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
   *   p *= 1 - lr wd (decayed parameters only);  p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
   */
  apply(grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>): StepInfo {
    const g = grads instanceof Map ? grads : new Map(Object.entries(grads));
    for (const name of g.keys())
      if (!this.params.has(name)) throw new Error(`AdamW.apply: ${name} is not a parameter of this optimizer`);
    const names = [...this.params.keys()].filter((k) => g.has(k));
    if (names.length === 0) throw new Error('AdamW.apply: no gradients');
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.o;
    // Global norm: float64 sums of squares per parameter, added in parameter order (a fixed order:
    // the same bits every run).
    let sq = 0;
    for (const name of names) sq += sumSquares(g.get(name)!);
    const gradNorm = Math.sqrt(sq);
    // A NaN or Inf gradient would write NaN into every parameter and moment (clipping scales by
    // clipNorm / Inf = 0, and 0 * Inf is NaN): no update, the step count unchanged; the caller decides.
    if (!Number.isFinite(gradNorm))
      return { step: this.step, lr: learningRate(this.o, this.step + 1), gradNorm, applied: false };
    const n = ++this.step;
    const lr = learningRate(this.o, n);
    const scale = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / (gradNorm + 1e-6) : 1;
    const stepSize = lr / (1 - beta1 ** n);
    const sqrtBc2 = Math.sqrt(1 - beta2 ** n);
    for (const name of names) {
      const p = this.params.get(name)!;
      const decay = weightDecay > 0 && this.o.decays(name) ? 1 - lr * weightDecay : 1;
      // The kernel is the formula above in float64, element by element (bit-identical to it in JS):
      // in place where the backend's memory allows (the same bits), else into new tensors.
      const attrs: AdamWAttrs = { beta1, beta2, eps, decay, stepSize, sqrtBc2, scale };
      const grad = g.get(name)!;
      if (adamwUpdateInPlace(p, grad, this.m.get(name)!, this.v.get(name)!, attrs)) continue;
      const [next, m, v] = adamwUpdate(p, grad, this.m.get(name)!, this.v.get(name)!, attrs);
      p.assign(next);
      next.dispose();
      this.setMoments(name, m, v);
    }
    return { step: n, lr, gradNorm, applied: true };
  }

  // Replaces a parameter's moments (kept: apply() may run inside a tidy).
  private setMoments(name: string, m: tf.Tensor, v: tf.Tensor): void {
    this.m.get(name)?.dispose();
    this.v.get(name)?.dispose();
    this.m.set(name, tf.keep(m));
    this.v.set(name, tf.keep(v));
  }

  /** The moments of a parameter (for tests and inspection). */
  moments(name: string): { m: Float32Array; v: Float32Array } {
    return { m: this.m.get(name)!.dataSync() as Float32Array, v: this.v.get(name)!.dataSync() as Float32Array };
  }

  /** Writes dir/optimizer.json and dir/optimizer.bin (the moments' float32 bytes, m then v per parameter). */
  async save(dir: string): Promise<void> {
    const entries = [...this.params].map(([name, p]) => ({ name, shape: p.shape }));
    fs.mkdirSync(dir, { recursive: true });
    await writeAtomic(path.join(dir, 'optimizer.bin'), async (w) => {
      for (const { name } of entries) {
        for (const t of [this.m.get(name)!, this.v.get(name)!]) {
          const a = t.dataSync() as Float32Array;
          await w.write(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
        }
      }
    });
    const { decays: _decays, ...options } = this.o;
    const manifest = { format: STATE_FORMAT, step: this.step, options, entries };
    await writeAtomic(path.join(dir, 'optimizer.json'), (w) => w.write(`${JSON.stringify(manifest, null, 1)}\n`));
  }

  /** Restores the step count and moments saved by save() (for the same parameters). */
  load(dir: string): void {
    const manifest = readJsonFile(path.join(dir, 'optimizer.json')) as {
      format?: string;
      step?: unknown;
      entries?: Array<{ name: string; shape: number[] }>;
    };
    if (manifest?.format !== STATE_FORMAT) throw new Error(`${dir}/optimizer.json: not a ${STATE_FORMAT} state`);
    if (!Number.isInteger(manifest.step) || (manifest.step as number) < 0 || !Array.isArray(manifest.entries))
      throw new Error(`${dir}/optimizer.json: step ${JSON.stringify(manifest.step)} or entries invalid (corrupt?)`);
    const names = manifest.entries.map((e) => e.name);
    const mine = [...this.params.keys()];
    if (names.join('\n') !== mine.join('\n'))
      throw new Error(`${dir}/optimizer.json: saved for other parameters than this optimizer's`);
    const bin = fs.readFileSync(path.join(dir, 'optimizer.bin'));
    const expected = mine.reduce((s, k) => s + 8 * this.params.get(k)!.size, 0);
    if (bin.length !== expected) throw new Error(`${dir}/optimizer.bin: ${bin.length} bytes, expected ${expected}`);
    let offset = 0;
    const read = (shape: number[], size: number) => {
      const a = new Float32Array(size);
      new Uint8Array(a.buffer).set(bin.subarray(offset, offset + a.byteLength));
      offset += a.byteLength;
      if (!a.every(Number.isFinite)) throw new Error(`${dir}/optimizer.bin: a moment holds NaN or Inf (corrupt?)`);
      return tf.tensor(a, shape, 'float32');
    };
    for (const name of mine) {
      const { shape, size } = this.params.get(name)!;
      const m = read(shape, size);
      this.setMoments(name, m, read(shape, size));
    }
    this.step = manifest.step as number;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
