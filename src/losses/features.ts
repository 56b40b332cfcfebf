// Intermediate-layer distillation: masked MSE between student and teacher hidden states
// ([B, L, H], or [layers, B, L, H] for several mapped layers in one call) and attention scores
// ([B, A, L, L]). The student is assumed already projected to the teacher's width.
import * as tf from '@tensorflow/tfjs';
import { KernelConfig, NamedTensorInfoMap, NamedTensorMap, TensorInfo, registerKernel } from '@tensorflow/tfjs';

import { addon, cudaDevice } from '../native';
import { runFusedLoss } from './fused_op';
import { DEVICE_BACKEND, FUSED_BACKENDS, checkDeviceMask, runOnBackend, runOnDevice } from './kernel_io';
import { maskedMean } from './reference_util';
import { FusedDistillError, checkLike, checkTensor } from './validate';

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

for (const backendName of FUSED_BACKENDS) {
  const hidden: KernelConfig = {
    kernelName: HIDDEN_MSE,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
      const shape = a!.shape.length === 3 ? [1, ...a!.shape] : a!.shape;
      const [layers, batch, len, hiddenSize] = shape;
      const withGrad = (attrs as unknown as FeatureAttrs).withGrad;
      return runOnBackend(backend, backendName, [a, b, tokenMask], withGrad ? [[], a!.shape] : [[]], ([av, bv, mv], outs) => {
        outs[0][0] = addon.hiddenMSE(av!, bv!, mv, layers, batch, len, hiddenSize, withGrad ? outs[1] : null);
      }, (attrs as unknown as FeatureAttrs).op) as TensorInfo[];
    },
  };
  const attention: KernelConfig = {
    kernelName: ATTENTION_MSE,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
      const [batch, heads, len] = a!.shape;
      const withGrad = (attrs as unknown as FeatureAttrs).withGrad;
      return runOnBackend(backend, backendName, [a, b, tokenMask], withGrad ? [[], a!.shape] : [[]], ([av, bv, mv], outs) => {
        outs[0][0] = addon.attentionMSE(av!, bv!, mv, batch, heads, len, withGrad ? outs[1] : null);
      }, (attrs as unknown as FeatureAttrs).op) as TensorInfo[];
    },
  };
  registerKernel(hidden);
  registerKernel(attention);
}

// 'cuda': cuda.hiddenMSE / attentionMSE on device buffers, the loss written into the scalar output.
registerKernel({
  kernelName: HIDDEN_MSE,
  backendName: DEVICE_BACKEND,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
    const { op, withGrad } = attrs as unknown as FeatureAttrs;
    const [layers, batch, len, hiddenSize] = a!.shape.length === 3 ? [1, ...a!.shape] : a!.shape;
    if (tokenMask) checkDeviceMask(backend, tokenMask, op, 'tokenMask');
    return runOnDevice(backend, [a, b, tokenMask], withGrad ? [[], a!.shape] : [[]], ([av, bv, mv], outs) => {
      cudaDevice().hiddenMSE(av!, bv!, mv, layers, batch, len, hiddenSize, withGrad ? outs[1] : null, outs[0]);
    }, op) as TensorInfo[];
  },
});
registerKernel({
  kernelName: ATTENTION_MSE,
  backendName: DEVICE_BACKEND,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { a, b, tokenMask } = inputs as Partial<NamedTensorInfoMap>;
    const { op, withGrad } = attrs as unknown as FeatureAttrs;
    const [batch, heads, len] = a!.shape;
    if (tokenMask) checkDeviceMask(backend, tokenMask, op, 'tokenMask');
    return runOnDevice(backend, [a, b, tokenMask], withGrad ? [[], a!.shape] : [[]], ([av, bv, mv], outs) => {
      cudaDevice().attentionMSE(av!, bv!, mv, batch, heads, len, withGrad ? outs[1] : null, outs[0]);
    }, op) as TensorInfo[];
  },
});

function featureInputs(op: string, aIn: unknown, bIn: unknown, options: TokenMaskOptions, attention: boolean) {
  const layout = attention ? '[B, A, L, L]' : '[B, L, H] or [layers, B, L, H]';
  const a = checkTensor(op, attention ? 'as' : 'hs', aIn, attention ? 4 : 3, 4, layout);
  const b = checkLike(op, attention ? 'at' : 'ht', bIn, a.shape, `teacher ${attention ? 'attention' : 'hidden states'}, the shape of the student's`);
  if (!b) throw new FusedDistillError(op, `${attention ? 'at' : 'ht'} is required`);
  if (attention && a.shape[2] !== a.shape[3])
    throw new FusedDistillError(op, `as must have shape [B, A, L, L] with equal last two dims, got [${a.shape.join(', ')}]`);
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
  return runFusedLoss(HIDDEN_MSE, inputs, { op: 'hiddenMSE' }, a).loss;
}

/** (as − at)² where both query and key token are valid; mean over valid entries. */
export function attentionMSE(as: tf.Tensor, at: tf.Tensor, options: TokenMaskOptions = {}): tf.Scalar {
  const { a, inputs } = featureInputs('attentionMSE', as, at, options, true);
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
