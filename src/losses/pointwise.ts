// Pointwise hard-label loss: binary cross-entropy on logits, mean over valid entries.
import * as tf from '@tensorflow/tfjs';

import { ScoreLossOptions, runTerm } from './score_kernel';
import { maskedMean, validOf } from './reference_util';

export type MaskOptions = Pick<ScoreLossOptions, 'mask'>;

/** softplus(s) − y·s over valid entries, y ∈ [0, 1]; s, y: [B, G]. */
export function pointwiseBCE(s: tf.Tensor, y: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return runTerm('pointwiseBCE', s, null, y, options, () => pointwiseBCEReference(s, y, options));
}

export function pointwiseBCEReference(s: tf.Tensor, y: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return tf.tidy(() => maskedMean(tf.sub(tf.softplus(s), tf.mul(y, s)), validOf(options.mask, s)));
}
