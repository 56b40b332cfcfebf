// One optimizer step as every run takes it (trainStep), and the AdamW of a run's train config.
import * as tf from '@tensorflow/tfjs';

import type { TrainConfig } from './config';
import { AdamW, learningRate } from './optimizer';

/** The AdamW of a run's train config (learning-rate schedule over train.steps). */
export function runOptimizer(params: Map<string, tf.Variable>, train: TrainConfig): AdamW {
  return new AdamW(params, {
    lr: train.lr,
    warmup: train.warmup,
    totalSteps: train.steps,
    beta1: train.beta1,
    beta2: train.beta2,
    eps: train.eps,
    weightDecay: train.weightDecay,
    clipNorm: train.clipNorm,
  });
}

/** One micro-batch of a step: its share of the step's groups, its loss (called inside the tape) and its clean-up. */
export interface MicroBatch {
  share: number;
  loss(): { total: tf.Scalar; parts: Record<string, tf.Scalar> };
  dispose(): void;
}

export interface StepResult {
  loss: number;
  /** each weighted term by its config name */
  parts: Record<string, number>;
  lr: number;
  gradNorm: number;
  /** false when the loss or the gradient norm was NaN or Inf: no update was made */
  applied: boolean;
}

/**
 * One optimizer step, as every run takes it: forward + backward of each micro-batch in turn (the
 * tape's memory scales with the groups in one pass), gradients and loss parts summed with weight
 * `share` (the step's loss is the mean of the micro-batches' losses by group count), then one AdamW
 * update of `params`. Reading each micro-batch's loss (dataSync) is a sync point with the device.
 * A step whose loss or gradient norm is NaN or Inf makes no update (applied: false; the optimizer's
 * step count unchanged): the caller stops or skips it.
 * Exported for the benchmarks (bench/gpu/), which time exactly this.
 */
export function trainStep(
  microBatches: Iterable<MicroBatch>,
  params: Map<string, tf.Variable>,
  optimizer: AdamW,
): StepResult {
  const varList = [...params.values()];
  const paramOf = new Map([...params].map(([name, v]) => [v.name, name]));
  let grads: Map<string, tf.Tensor> | null = null;
  let loss = 0;
  const parts: Record<string, number> = {};
  for (const mb of microBatches) {
    try {
      const { share } = mb;
      let kept: Record<string, tf.Scalar> = {};
      const { value, grads: g } = tf.variableGrads(() => {
        const { total, parts: p } = mb.loss();
        kept = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.keep(v)]));
        return total;
      }, varList);
      loss += share * value.dataSync()[0];
      for (const [k, v] of Object.entries(kept)) parts[k] = (parts[k] ?? 0) + share * v.dataSync()[0];
      const named = new Map(
        Object.entries(g).map(([k, t]) => [paramOf.get(k)!, share === 1 ? t : tf.tidy(() => tf.mul(t, share))]),
      );
      if (share !== 1) tf.dispose(Object.values(g));
      if (!grads) grads = named;
      else {
        for (const [k, t] of named) {
          const prev = grads.get(k);
          grads.set(k, prev ? tf.tidy(() => tf.add(prev, t)) : tf.clone(t));
          tf.dispose(prev ? [prev, t] : [t]);
        }
      }
      tf.dispose([value, ...Object.values(kept)]);
    } finally {
      mb.dispose();
    }
  }
  if (!grads) throw new Error('trainStep: no micro-batches');
  try {
    if (!Number.isFinite(loss))
      return { loss, parts, lr: learningRate(optimizer.o, optimizer.step + 1), gradNorm: NaN, applied: false };
    const info = optimizer.apply(grads);
    return { loss, parts, lr: info.lr, gradNorm: info.gradNorm, applied: info.applied };
  } finally {
    tf.dispose([...grads.values()]);
  }
}
