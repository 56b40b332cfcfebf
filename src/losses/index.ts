// The public losses: each op is a tfjs op with its gradient (the fused native kernel on every
// backend: src/ops/dispatch.ts); `reference` holds the same losses as plain-tfjs composites.
import { attentionMSE, attentionMSEReference, hiddenMSE, hiddenMSEReference } from './features';
import { distillKL, distillKLReference, marginMSE, marginMSEReference, scoreMSE, scoreMSEReference } from './distill';
import { listwiseSoftmaxCE, listwiseSoftmaxCEReference } from './listwise';
import {
  rankingObjective,
  rankingObjectiveParts,
  rankingObjectivePartsReference,
  rankingObjectiveReference,
} from './objective';
import { pairwiseHinge, pairwiseHingeReference, pairwiseRankNet, pairwiseRankNetReference } from './pairwise';
import { pointwiseBCE, pointwiseBCEReference } from './pointwise';

export const reference = {
  pointwiseBCE: pointwiseBCEReference,
  pairwiseRankNet: pairwiseRankNetReference,
  pairwiseHinge: pairwiseHingeReference,
  listwiseSoftmaxCE: listwiseSoftmaxCEReference,
  distillKL: distillKLReference,
  marginMSE: marginMSEReference,
  scoreMSE: scoreMSEReference,
  hiddenMSE: hiddenMSEReference,
  attentionMSE: attentionMSEReference,
  rankingObjective: rankingObjectiveReference,
  rankingObjectiveParts: rankingObjectivePartsReference,
};

export {
  pointwiseBCE,
  pairwiseRankNet,
  pairwiseHinge,
  listwiseSoftmaxCE,
  distillKL,
  marginMSE,
  scoreMSE,
  hiddenMSE,
  attentionMSE,
  rankingObjective,
  rankingObjectiveParts,
};
export type { ObjectiveOptions, ObjectiveParts } from './objective';
export type { Weights, ScoreLossOptions } from './score_kernel';
export type { TokenMaskOptions } from './features';
export { FusedDistillError } from '../ops/validate';
