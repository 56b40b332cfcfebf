// Soft-label (teacher score) distillation losses: KL with temperature, Margin-MSE, score MSE.
import * as tf from '@tensorflow/tfjs';

import { ScoreLossOptions, runTerm } from './score_kernel';
import { MaskOptions } from './pointwise';
import { maskedLogSoftmax, maskedMean, validOf } from './reference_util';

export type KLOptions = Pick<ScoreLossOptions, 'mask' | 'temperature'>;

/**
 * T²·KL(softmax(t/T) ‖ softmax(s/T)) per row of the LAST axis (any rank ≥ 1, e.g. [B, G] scores or
 * [B, heads, L, L] attention rows), over valid entries; mean over rows with a valid entry.
 */
export function distillKL(s: tf.Tensor, t: tf.Tensor, options: KLOptions = {}): tf.Scalar {
  return runTerm('distillKL', s, t, null, options, () => distillKLReference(s, t, options));
}

/** ((s_b0 − s_bj) − (t_b0 − t_bj))² for each valid j ≥ 1 (entry 0 is the positive); s, t: [B, G]. */
export function marginMSE(s: tf.Tensor, t: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return runTerm('marginMSE', s, t, null, options, () => marginMSEReference(s, t, options));
}

/** (s − t)² over valid entries; s, t: [B, G]. */
export function scoreMSE(s: tf.Tensor, t: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return runTerm('scoreMSE', s, t, null, options, () => scoreMSEReference(s, t, options));
}

export function distillKLReference(s: tf.Tensor, t: tf.Tensor, options: KLOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const T = options.temperature ?? 1;
    const valid = validOf(options.mask, s);
    const logp = maskedLogSoftmax(tf.div(t, T), valid);
    const logq = maskedLogSoftmax(tf.div(s, T), valid);
    const p = tf.exp(logp);
    const terms = tf.where(tf.logicalAnd(valid, tf.greater(p, 0)), tf.mul(p, tf.sub(logp, logq)), tf.zerosLike(s));
    const rowLoss = tf.mul(tf.sum(terms, -1), T * T);
    return maskedMean(rowLoss, tf.any(valid, -1));
  });
}

export function marginMSEReference(s: tf.Tensor, t: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const G = s.shape[1]!;
    // No j >= 1: the mean over an empty set is 0 (tfjs cannot differentiate through an empty slice).
    if (G === 1) return tf.mul(tf.sum(s), 0) as tf.Scalar;
    const valid = validOf(options.mask, s);
    const rest = (x: tf.Tensor) => tf.slice(x, [0, 1], [-1, G - 1]);
    const first = (x: tf.Tensor) => tf.slice(x, [0, 0], [-1, 1]);
    const d = tf.sub(tf.sub(first(s), rest(s)), tf.sub(first(t), rest(t)));
    return maskedMean(tf.square(d), tf.logicalAnd(first(valid), rest(valid)));
  });
}

export function scoreMSEReference(s: tf.Tensor, t: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return tf.tidy(() => maskedMean(tf.squaredDifference(s, t), validOf(options.mask, s)));
}
