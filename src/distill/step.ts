// One optimizer step as every run takes it (trainStep), and the AdamW of a run's train config.
import * as tf from '@tensorflow/tfjs';

import type { TrainConfig } from './config';
import { PairwiseTree, type TreeNode } from '../distributed/tree_sum';
import type { World } from '../distributed/world';
import { exchangeNodes } from './step_exchange';
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

/** A step's summed loss, loss parts and gradients (by parameter name): a tree node's value. */
export interface StepSum {
  loss: number;
  parts: Record<string, number>;
  grads: Map<string, tf.Tensor>;
}

// The sum of two nodes of the step's tree (tree_sum.ts); the inputs' tensors are consumed. A
// parameter or part one side lacks (no path to the loss in that micro-batch) is the other's as is.
function addSums(left: StepSum, right: StepSum): StepSum {
  const grads = new Map<string, tf.Tensor>();
  for (const [k, a] of left.grads) {
    const b = right.grads.get(k);
    if (!b) grads.set(k, a);
    else {
      grads.set(k, tf.add(a, b));
      tf.dispose([a, b]);
    }
  }
  for (const [k, b] of right.grads) if (!left.grads.has(k)) grads.set(k, b);
  const parts: Record<string, number> = { ...left.parts };
  for (const [k, v] of Object.entries(right.parts)) parts[k] = k in parts ? parts[k] + v : v;
  return { loss: left.loss + right.loss, parts, grads };
}

/** A tree of step sums (the micro-batches' losses and gradients). */
export const stepTree = (): PairwiseTree<StepSum> => new PairwiseTree(addSums);

/** Disposes the gradients of a step sum. */
export const disposeStepSum = (s: StepSum): void => tf.dispose([...s.grads.values()]);

/**
 * Forward + backward of each micro-batch in turn (the tape's memory scales with the groups in one
 * pass), each one's gradients and loss parts weighted by `share` and added into `tree` as leaves
 * firstLeaf, firstLeaf + 1, ... Reading each micro-batch's loss (dataSync) is a sync point with the device.
 */
export function accumulateMicroBatches(
  microBatches: Iterable<MicroBatch>,
  params: Map<string, tf.Variable>,
  tree: PairwiseTree<StepSum>,
  firstLeaf = 0,
): number {
  const varList = [...params.values()];
  const paramOf = new Map([...params].map(([name, v]) => [v.name, name]));
  let leaf = firstLeaf;
  for (const mb of microBatches) {
    try {
      const { share } = mb;
      let kept: Record<string, tf.Scalar> = {};
      const { value, grads: g } = tf.variableGrads(() => {
        const { total, parts: p } = mb.loss();
        kept = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.keep(v)]));
        return total;
      }, varList);
      const parts: Record<string, number> = {};
      for (const [k, v] of Object.entries(kept)) parts[k] = share * v.dataSync()[0];
      const grads = new Map(
        Object.entries(g).map(([k, t]) => [paramOf.get(k)!, share === 1 ? t : tf.tidy(() => tf.mul(t, share))]),
      );
      if (share !== 1) tf.dispose(Object.values(g));
      tree.pushLeaf(leaf++, { loss: share * value.dataSync()[0], parts, grads });
      tf.dispose([value, ...Object.values(kept)]);
    } finally {
      mb.dispose();
    }
  }
  return leaf - firstLeaf;
}

/**
 * One AdamW update from a step's sum (its gradients are disposed). A sum whose loss or gradient
 * norm is NaN or Inf makes no update (applied: false; the optimizer's step count unchanged): the
 * caller stops or skips it.
 */
export function applyStepSum(sum: StepSum, optimizer: AdamW): StepResult {
  try {
    if (!Number.isFinite(sum.loss))
      return {
        loss: sum.loss,
        parts: sum.parts,
        lr: learningRate(optimizer.o, optimizer.step + 1),
        gradNorm: NaN,
        applied: false,
      };
    const info = optimizer.apply(sum.grads);
    return { loss: sum.loss, parts: sum.parts, lr: info.lr, gradNorm: info.gradNorm, applied: info.applied };
  } finally {
    disposeStepSum(sum);
  }
}

/**
 * One optimizer step in one process, as every run takes it: the micro-batches' gradients and loss
 * parts summed with weight `share` (the step's loss is the mean of the micro-batches' losses by group
 * count) in the fixed tree of tree_sum.ts, then one AdamW update of `params`. Several ranks take the
 * same step with `trainStepAcross` and reach the same bits.
 * Exported for the benchmarks (bench/gpu/), which time exactly this.
 */
export function trainStep(
  microBatches: Iterable<MicroBatch>,
  params: Map<string, tf.Variable>,
  optimizer: AdamW,
): StepResult {
  const tree = stepTree();
  accumulateMicroBatches(microBatches, params, tree);
  const sum = tree.total();
  if (!sum) throw new Error('trainStep: no micro-batches');
  return applyStepSum(sum, optimizer);
}

/**
 * One rank's part of a step taken by every rank of `world`: this rank's micro-batches are the
 * leaves firstLeaf, firstLeaf + 1, ... of the step's tree; its tree nodes (loss, parts and gradients)
 * go to every rank in one allgather, and every rank finishes the same tree and makes the same AdamW
 * update, bit for bit what `trainStep` makes of all the micro-batches in one process.
 * exchangeMs: the time in the collective (waiting for the slowest rank included).
 */
export async function trainStepAcross(
  world: World,
  microBatches: Iterable<MicroBatch>,
  params: Map<string, tf.Variable>,
  optimizer: AdamW,
  firstLeaf: number,
): Promise<StepResult & { exchangeMs: number }> {
  if (world.size === 1 && firstLeaf === 0) return { ...trainStep(microBatches, params, optimizer), exchangeMs: 0 };
  const tree = stepTree();
  if (accumulateMicroBatches(microBatches, params, tree, firstLeaf) === 0)
    throw new Error(`trainStepAcross: rank ${world.rank} has no micro-batches`);
  const mine = tree.nodes();
  const began = performance.now();
  let all: TreeNode<StepSum>[][];
  try {
    all = await exchangeNodes(world, mine, params);
  } catch (e) {
    mine.forEach((n) => disposeStepSum(n.value));
    throw e;
  }
  const exchangeMs = performance.now() - began;
  const full = stepTree();
  for (const nodes of all) for (const node of nodes) full.push(node);
  return { ...applyStepSum(full.total()!, optimizer), exchangeMs };
}
