// Adam with decoupled weight decay (AdamW, as torch.optim.AdamW and BERT's fine-tuning use it), a
// learning rate that warms up linearly and then decays linearly, and global-norm gradient clipping.
// Written with tfjs ops rather than tf.train.adam so that its whole state (step count, first and
// second moments) is ours to save and restore bit for bit: a resumed run must reach the same
// weights as an uninterrupted one.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';

import { writeAtomic } from '../data/atomic';
import { addon, cudaDevice, DeviceBuffer } from '../native';
import { hostFloatOutput, hostFloats } from '../backend/native/backend';
import { cudaBackend, deviceFloats } from '../backend/cuda/backend';

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
}

const STATE_FORMAT = 'fused-distill-adamw';

export class AdamW {
  /** updates applied so far */
  step = 0;
  readonly o: Required<AdamWOptions>;
  // The moments live in plain Float32Arrays: the update is one addon pass per parameter (far fewer
  // passes over memory than a dozen scalar-broadcast tensor ops over BERT's 7.8M-float embedding
  // table), and saving them is writing their bytes.
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  // On 'cuda' the moments live in device buffers (uploaded from m/v at the first update there, read
  // back by moments()/save()), and the update runs there: no parameter or gradient is downloaded.
  private readonly dm = new Map<string, DeviceBuffer>();
  private readonly dv = new Map<string, DeviceBuffer>();

  constructor(
    readonly params: Map<string, tf.Variable>,
    options: AdamWOptions,
  ) {
    this.o = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: 0, decays: bertDecays, ...options };
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.size));
      this.v.set(name, new Float32Array(p.size));
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
    for (const name of g.keys()) if (!this.params.has(name)) throw new Error(`AdamW.apply: ${name} is not a parameter of this optimizer`);
    const names = [...this.params.keys()].filter((k) => g.has(k));
    if (names.length === 0) throw new Error('AdamW.apply: no gradients');
    if (cudaBackend() && names.every((k) => deviceFloats(g.get(k)!) !== null && deviceFloats(this.params.get(k)!) !== null))
      return this.applyOnDevice(names, g);
    this.syncFromDevice();
    // The stored arrays where the backend keeps them in host memory (no copy), else a read.
    const read = (t: tf.Tensor) => hostFloats(t) ?? (t.dataSync() as Float32Array);
    const gradData = new Map(names.map((k) => [k, read(g.get(k)!)]));
    const n = ++this.step;
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.o;
    const lr = learningRate(this.o, n);
    // Global norm: float64 sums of squares per parameter, in order, added in parameter order (a fixed
    // order: the same bits every run).
    let sq = 0;
    for (const d of gradData.values()) sq += addon.sumSquares(d);
    const gradNorm = Math.sqrt(sq);
    const scale = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / (gradNorm + 1e-6) : 1;
    const stepSize = lr / (1 - beta1 ** n);
    const sqrtBc2 = Math.sqrt(1 - beta2 ** n);
    for (const name of names) {
      const p = this.params.get(name)!;
      const gd = gradData.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const decay = weightDecay > 0 && this.o.decays(name) ? 1 - lr * weightDecay : 1;
      // The addon's loop is the formula above in float64, element by element (bit-identical to it in
      // JS, ~10x faster); the output is new memory (tfjs may share the parameter's buffer), from the
      // 'native' backend's block cache where it runs.
      const out = hostFloatOutput(p.shape);
      const next = out?.values ?? new Float32Array(p.size);
      addon.adamwUpdate(read(p), gd, m, v, next, beta1, beta2, eps, decay, stepSize, sqrtBc2, scale);
      const t = out?.tensor ?? tf.tensor(next, p.shape, 'float32');
      p.assign(t);
      t.dispose();
    }
    return { step: n, lr, gradNorm };
  }

  // apply() on 'cuda': the same update, one cuda.adamwUpdate per parameter on its device buffers.
  private applyOnDevice(names: string[], g: Map<string, tf.Tensor>): StepInfo {
    const dev = cudaDevice();
    const backend = cudaBackend()!;
    const n = ++this.step;
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.o;
    const lr = learningRate(this.o, n);
    let sq = 0;
    for (const name of names) sq += dev.sumSquares(deviceFloats(g.get(name)!)!);
    const gradNorm = Math.sqrt(sq);
    const scale = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / (gradNorm + 1e-6) : 1;
    const stepSize = lr / (1 - beta1 ** n);
    const sqrtBc2 = Math.sqrt(1 - beta2 ** n);
    for (const name of names) {
      const p = this.params.get(name)!;
      const [m, v] = this.deviceMoments(name);
      const decay = weightDecay > 0 && this.o.decays(name) ? 1 - lr * weightDecay : 1;
      const next = backend.output(p.shape, 'float32', (out) =>
        dev.adamwUpdate(deviceFloats(p)!, deviceFloats(g.get(name)!)!, m, v, out, beta1, beta2, eps, decay, stepSize, sqrtBc2, scale),
      );
      const t = tf.engine().makeTensorFromTensorInfo(next);
      p.assign(t);
      t.dispose();
    }
    return { step: n, lr, gradNorm };
  }

  private deviceMoments(name: string): [DeviceBuffer, DeviceBuffer] {
    let m = this.dm.get(name);
    let v = this.dv.get(name);
    if (m === undefined || v === undefined) {
      const dev = cudaDevice();
      const size = this.params.get(name)!.size;
      m = dev.alloc(size);
      v = dev.alloc(size);
      dev.upload(m, this.m.get(name)!);
      dev.upload(v, this.v.get(name)!);
      this.dm.set(name, m);
      this.dv.set(name, v);
    }
    return [m, v];
  }

  /** Moves the moments held on the device back into m/v and frees the device copies. */
  private syncFromDevice(): void {
    if (this.dm.size === 0) return;
    const dev = cudaDevice();
    for (const [name, buf] of this.dm) dev.download(buf, this.m.get(name)!);
    for (const [name, buf] of this.dv) dev.download(buf, this.v.get(name)!);
    this.freeDevice();
  }

  private freeDevice(): void {
    const dev = cudaDevice();
    for (const buf of [...this.dm.values(), ...this.dv.values()]) dev.free(buf);
    this.dm.clear();
    this.dv.clear();
  }

  /** The moments of a parameter (for tests and inspection). */
  moments(name: string): { m: Float32Array; v: Float32Array } {
    this.syncFromDevice();
    return { m: this.m.get(name)!, v: this.v.get(name)! };
  }

  /** Writes dir/optimizer.json and dir/optimizer.bin (the moments' float32 bytes, m then v per parameter). */
  async save(dir: string): Promise<void> {
    this.syncFromDevice();
    const entries = [...this.params].map(([name, p]) => ({ name, shape: p.shape }));
    fs.mkdirSync(dir, { recursive: true });
    await writeAtomic(path.join(dir, 'optimizer.bin'), async (w) => {
      for (const { name } of entries) {
        for (const a of [this.m.get(name)!, this.v.get(name)!]) await w.write(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      }
    });
    const { decays: _decays, ...options } = this.o;
    const manifest = { format: STATE_FORMAT, step: this.step, options, entries };
    await writeAtomic(path.join(dir, 'optimizer.json'), (w) => w.write(`${JSON.stringify(manifest, null, 1)}\n`));
  }

  /** Restores the step count and moments saved by save() (for the same parameters). */
  load(dir: string): void {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'optimizer.json'), 'utf8'));
    if (manifest.format !== STATE_FORMAT) throw new Error(`${dir}/optimizer.json: not a ${STATE_FORMAT} state`);
    const names = (manifest.entries as Array<{ name: string; shape: number[] }>).map((e) => e.name);
    const mine = [...this.params.keys()];
    if (names.join('\n') !== mine.join('\n')) throw new Error(`${dir}/optimizer.json: saved for other parameters than this optimizer's`);
    const bin = fs.readFileSync(path.join(dir, 'optimizer.bin'));
    this.syncFromDevice(); // device copies would shadow the loaded moments
    const expected = mine.reduce((s, k) => s + 8 * this.params.get(k)!.size, 0);
    if (bin.length !== expected) throw new Error(`${dir}/optimizer.bin: ${bin.length} bytes, expected ${expected}`);
    let offset = 0;
    for (const name of mine)
      for (const a of [this.m.get(name)!, this.v.get(name)!]) {
        new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(bin.subarray(offset, offset + a.byteLength));
        offset += a.byteLength;
      }
    this.step = manifest.step;
  }

  dispose(): void {
    if (this.dm.size > 0) this.freeDevice();
    this.m.clear();
    this.v.clear();
  }
}
