// Intermediate-layer distillation: masked MSE between student and teacher hidden states
// ([B, L, H], or [layers, B, L, H] for several mapped layers in one call) and attention scores
// ([B, A, L, L]). The student is assumed already projected to the teacher's width.
import * as tf from '@tensorflow/tfjs';
import { NamedTensorInfoMap, NamedTensorMap, TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel } from '../ops/dispatch';
import { runFusedLoss } from '../ops/fused_op';
import { SCALE_BY_UPSTREAM } from '../ops/upstream';
import { FusedDistillError, checkLike, checkTensor } from '../ops/validate';
import { maskedMean } from './reference_util';

export interface TokenMaskOptions {
  /** [B, L] of 0/1: 1 = a real token; padding takes no part. */
  tokenMask?: tf.Tensor | null;
}

export const HIDDEN_MSE = 'FusedDistillHiddenMSE';
export const ATTENTION_MSE = 'FusedDistillAttentionMSE';

interface FeatureAttrs {
  op: string;
  withGrad?: boolean;
}

// Outputs: [loss, grad if withGrad]; the addon writes the loss into the scalar output.
defineFusedKernel(HIDDEN_MSE, (backendName) => ({ inputs, backend, attrs }) => {
  const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
  const { op, withGrad } = attrs as unknown as FeatureAttrs;
  const [layers, batch, len, hiddenSize] = a!.shape.length === 3 ? [1, ...a!.shape] : a!.shape;
  return runFusedKernel(
    backend,
    backendName,
    [a, b, tokenMask],
    withGrad ? [[], a!.shape] : [[]],
    (ops, [av, bv, mv], outs) => {
      ops.hiddenMSE(av!, bv!, mv, layers, batch, len, hiddenSize, withGrad ? outs[1] : null, outs[0]);
    },
    op,
  ) as TensorInfo[];
});
defineFusedKernel(ATTENTION_MSE, (backendName) => ({ inputs, backend, attrs }) => {
  const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
  const { op, withGrad } = attrs as unknown as FeatureAttrs;
  const [batch, heads, len] = a!.shape;
  return runFusedKernel(
    backend,
    backendName,
    [a, b, tokenMask],
    withGrad ? [[], a!.shape] : [[]],
    (ops, [av, bv, mv], outs) => {
      ops.attentionMSE(av!, bv!, mv, batch, heads, len, withGrad ? outs[1] : null, outs[0]);
    },
    op,
  ) as TensorInfo[];
});

function featureInputs(op: string, aIn: unknown, bIn: unknown, options: TokenMaskOptions, attention: boolean) {
  const layout = attention ? '[B, A, L, L]' : '[B, L, H] or [layers, B, L, H]';
  const a = checkTensor(op, attention ? 'as' : 'hs', aIn, attention ? 4 : 3, 4, layout);
  const b = checkLike(
    op,
    attention ? 'at' : 'ht',
    bIn,
    a.shape,
    `teacher ${attention ? 'attention' : 'hidden states'}, the shape of the student's`,
  );
  if (!b) throw new FusedDistillError(op, `${attention ? 'at' : 'ht'} is required`);
  if (attention && a.shape[2] !== a.shape[3])
    throw new FusedDistillError(
      op,
      `as must have shape [B, A, L, L] with equal last two dims, got [${a.shape.join(', ')}]`,
    );
  const batch = (attention ? a.shape[0] : a.shape[a.rank - 3]) as number;
  const len = (attention ? a.shape[2] : a.shape[a.rank - 2]) as number;
  const tokenMask = checkLike(op, 'tokenMask', options.tokenMask, [batch, len], '0/1 per token, [B, L]');
  const inputs: NamedTensorMap = { a, b };
  if (tokenMask) inputs.tokenMask = tokenMask;
  return { a, inputs };
}

/** (hs − ht)² over tokens with tokenMask = 1; mean over valid (layer, token) × H. */
export function hiddenMSE(hs: tf.Tensor, ht: tf.Tensor, options: TokenMaskOptions = {}): tf.Scalar {
  const { a, inputs } = featureInputs('hiddenMSE', hs, ht, options, false);
  if (!fusedKernelsReady([HIDDEN_MSE, SCALE_BY_UPSTREAM])) return hiddenMSEReference(hs, ht, options);
  return runFusedLoss(HIDDEN_MSE, inputs, { op: 'hiddenMSE' }, a).loss;
}

/** (as − at)² where both query and key token are valid; mean over valid entries. */
export function attentionMSE(as: tf.Tensor, at: tf.Tensor, options: TokenMaskOptions = {}): tf.Scalar {
  const { a, inputs } = featureInputs('attentionMSE', as, at, options, true);
  if (!fusedKernelsReady([ATTENTION_MSE, SCALE_BY_UPSTREAM])) return attentionMSEReference(as, at, options);
  return runFusedLoss(ATTENTION_MSE, inputs, { op: 'attentionMSE' }, a).loss;
}

export function hiddenMSEReference(hs: tf.Tensor, ht: tf.Tensor, options: TokenMaskOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const sq = tf.squaredDifference(hs, ht);
    if (!options.tokenMask) return tf.mean(sq) as tf.Scalar;
    const valid = tf.greater(tf.expandDims(options.tokenMask, -1), 0); // [B, L, 1] broadcasts over layers and H
    return maskedMean(sq, tf.broadcastTo(valid, sq.shape));
  });
}

export function attentionMSEReference(as: tf.Tensor, at: tf.Tensor, options: TokenMaskOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const sq = tf.squaredDifference(as, at);
    if (!options.tokenMask) return tf.mean(sq) as tf.Scalar;
    const m = tf.greater(options.tokenMask, 0);
    const [B, , L] = as.shape;
    const pairValid = tf.logicalAnd(tf.reshape(m, [B, 1, L, 1]), tf.reshape(m, [B, 1, 1, L]));
    return maskedMean(sq, tf.broadcastTo(pairValid, sq.shape));
  });
}
