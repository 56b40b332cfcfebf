// The combined ranking objective: Σ_k w_k·L_k over the prediction-layer losses, in ONE kernel pass
// (zero-weight terms cost nothing). rankingObjectiveParts also returns each weighted term, from the
// same pass, for logging.
import * as tf from '@tensorflow/tfjs';

import { TERM_NAMES, TermName } from '../native';
import { distillKLReference, marginMSEReference, scoreMSEReference } from './distill';
import { listwiseSoftmaxCEReference } from './listwise';
import { pairwiseHingeReference, pairwiseRankNetReference } from './pairwise';
import { pointwiseBCEReference } from './pointwise';
import { ScoreLossOptions, Weights, runScoreLoss, totalOf, weightVector } from './score_kernel';
import { FusedDistillError } from '../ops/validate';

export interface ObjectiveOptions extends ScoreLossOptions {
  /** Keyed by the op names; absent = 0. */
  weights: Weights;
}

/** Σ_k w_k·L_k; s, t, y: [B, G] (t or y may be null when no weighted term reads it). */
export function rankingObjective(
  s: tf.Tensor,
  t: tf.Tensor | null,
  y: tf.Tensor | null,
  options: ObjectiveOptions,
): tf.Scalar {
  const weights = weightVector('rankingObjective', options?.weights);
  return runScoreLoss(
    'rankingObjective',
    s,
    t,
    y,
    weights,
    options,
    false,
    false,
    totalOf(() => rankingObjectiveReference(s, t, y, options)),
  ).total;
}

export interface ObjectiveParts {
  total: tf.Scalar;
  /** Each weighted term w_k·L_k (0 for absent terms). Not differentiable: use total for training. */
  parts: Record<TermName, tf.Scalar>;
}

export function rankingObjectiveParts(
  s: tf.Tensor,
  t: tf.Tensor | null,
  y: tf.Tensor | null,
  options: ObjectiveOptions,
): ObjectiveParts {
  const weights = weightVector('rankingObjectiveParts', options?.weights);
  const { total, parts } = runScoreLoss('rankingObjectiveParts', s, t, y, weights, options, false, true, () => {
    const r = rankingObjectivePartsReference(s, t, y, options);
    const stacked = tf.stack(TERM_NAMES.map((n) => r.parts[n]));
    tf.dispose(Object.values(r.parts));
    return { total: r.total, parts: stacked };
  });
  const scalars = tf.tidy(() => tf.unstack(parts!)) as tf.Scalar[];
  parts!.dispose();
  return { total, parts: Object.fromEntries(TERM_NAMES.map((n, i) => [n, scalars[i]])) as Record<TermName, tf.Scalar> };
}

/** The same objective as a sum of the plain-tfjs reference composites. */
export function rankingObjectiveReference(
  s: tf.Tensor,
  t: tf.Tensor | null,
  y: tf.Tensor | null,
  options: ObjectiveOptions,
): tf.Scalar {
  return rankingObjectivePartsReference(s, t, y, options).total;
}

export function rankingObjectivePartsReference(
  s: tf.Tensor,
  t: tf.Tensor | null,
  y: tf.Tensor | null,
  options: ObjectiveOptions,
): ObjectiveParts {
  const w = weightVector('rankingObjective', options?.weights);
  const need = <T>(x: T | null, name: string): T => {
    if (x == null) throw new FusedDistillError('rankingObjective', `${name} is required by the weighted terms`);
    return x;
  };
  const terms: Record<TermName, () => tf.Scalar> = {
    pointwiseBCE: () => pointwiseBCEReference(s, need(y, 'y'), options),
    pairwiseRankNet: () => pairwiseRankNetReference(s, need(y, 'y'), options),
    pairwiseHinge: () => pairwiseHingeReference(s, need(y, 'y'), options),
    listwiseSoftmaxCE: () => listwiseSoftmaxCEReference(s, need(y, 'y'), options),
    distillKL: () => distillKLReference(s, need(t, 't'), options),
    marginMSE: () => marginMSEReference(s, need(t, 't'), options),
    scoreMSE: () => scoreMSEReference(s, need(t, 't'), options),
  };
  const parts = Object.fromEntries(
    TERM_NAMES.map((n, i) => [n, w[i] === 0 ? tf.scalar(0) : tf.tidy(() => tf.mul(terms[n](), w[i]) as tf.Scalar)]),
  ) as Record<TermName, tf.Scalar>;
  const total = tf.tidy(() => tf.addN(TERM_NAMES.map((n) => parts[n])) as tf.Scalar);
  return { total, parts };
}
