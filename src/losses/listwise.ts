// Listwise hard-label loss: softmax cross-entropy against each row's label distribution.
import * as tf from '@tensorflow/tfjs';

import { runTerm } from './score_kernel';
import { MaskOptions } from './pointwise';
import { maskedLogSoftmax, maskedMean, validOf } from './reference_util';

/** Per row with Σy > 0: −Σ_i (y_i/Σy)·log_softmax(s)_i over valid entries; mean over such rows. */
export function listwiseSoftmaxCE(s: tf.Tensor, y: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return runTerm('listwiseSoftmaxCE', s, null, y, options, () => listwiseSoftmaxCEReference(s, y, options));
}

export function listwiseSoftmaxCEReference(s: tf.Tensor, y: tf.Tensor, options: MaskOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const valid = validOf(options.mask, s);
    const yv = tf.where(valid, y, tf.zerosLike(y));
    const ySum = tf.sum(yv, -1, true);
    const logp = maskedLogSoftmax(s, valid);
    const perEntry = tf.where(valid, tf.mul(tf.div(yv, tf.maximum(ySum, 1e-30)), logp), tf.zerosLike(s));
    const rowLoss = tf.neg(tf.sum(perEntry, -1));
    return maskedMean(rowLoss, tf.greater(tf.squeeze(ySum, [-1]), 0));
  });
}
