// Helpers for the plain-tfjs reference composites (losses.reference.*): the same losses written
// with stock tfjs ops, used as the peer in benchmarks and as a second opinion in tests.
import * as tf from '@tensorflow/tfjs';

/** The validity mask as booleans (all true when mask is absent). */
export function validOf(mask: tf.Tensor | null | undefined, like: tf.Tensor): tf.Tensor {
  // tf.ones, not onesLike(like): the mask must stay off the gradient path from `like`.
  return mask ? tf.greater(mask, 0) : tf.ones(like.shape, 'bool');
}

/** Mean of `values` over `valid` entries; 0 (with a zero gradient) when none is valid. Selects with
 *  `where`, so NaN in invalid entries does not leak. */
export function maskedMean(values: tf.Tensor, valid: tf.Tensor): tf.Scalar {
  const count = tf.sum(tf.cast(valid, 'float32'));
  return tf.div(tf.sum(tf.where(valid, values, tf.zerosLike(values))), tf.maximum(count, 1)) as tf.Scalar;
}

/** Pairwise view of a [B, G] tensor: [B, G, 1] and [B, 1, G]. */
export function pairs(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return [tf.expandDims(x, 2), tf.expandDims(x, 1)];
}

/** The pair set P = {(b, i, j): y_bi > y_bj, both valid} as a [B, G, G] boolean tensor. */
export function pairSet(y: tf.Tensor, valid: tf.Tensor): tf.Tensor {
  const [yi, yj] = pairs(y);
  const [vi, vj] = pairs(valid);
  return tf.logicalAnd(tf.greater(yi, yj), tf.logicalAnd(vi, vj));
}

/** log_softmax over the valid entries of each row (invalid entries get a very negative logit). */
export function maskedLogSoftmax(x: tf.Tensor, valid: tf.Tensor): tf.Tensor {
  return tf.logSoftmax(tf.where(valid, x, tf.fill(x.shape, -1e30)));
}
