// Pairwise hard-label losses over P = {(b, i, j): y_bi > y_bj, both valid}: RankNet and hinge.
import * as tf from '@tensorflow/tfjs';

import { ScoreLossOptions, runTerm } from './score_kernel';
import { maskedMean, pairSet, pairs, validOf } from './reference_util';

export type RankNetOptions = Pick<ScoreLossOptions, 'mask' | 'sigma'>;
export type HingeOptions = Pick<ScoreLossOptions, 'mask' | 'margin'>;

/** softplus(−sigma·(s_bi − s_bj)) over P, mean over P (0 if P is empty); s, y: [B, G]. */
export function pairwiseRankNet(s: tf.Tensor, y: tf.Tensor, options: RankNetOptions = {}): tf.Scalar {
  return runTerm('pairwiseRankNet', s, null, y, options, () => pairwiseRankNetReference(s, y, options));
}

/** max(0, margin − (s_bi − s_bj)) over P, mean over P; s, y: [B, G]. */
export function pairwiseHinge(s: tf.Tensor, y: tf.Tensor, options: HingeOptions = {}): tf.Scalar {
  return runTerm('pairwiseHinge', s, null, y, options, () => pairwiseHingeReference(s, y, options));
}

export function pairwiseRankNetReference(s: tf.Tensor, y: tf.Tensor, options: RankNetOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const [si, sj] = pairs(s);
    const diff = tf.sub(si, sj);
    return maskedMean(tf.softplus(tf.mul(-(options.sigma ?? 1), diff)), pairSet(y, validOf(options.mask, s)));
  });
}

export function pairwiseHingeReference(s: tf.Tensor, y: tf.Tensor, options: HingeOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const [si, sj] = pairs(s);
    const diff = tf.sub(si, sj);
    return maskedMean(tf.relu(tf.sub(options.margin ?? 1, diff)), pairSet(y, validOf(options.mask, s)));
  });
}
