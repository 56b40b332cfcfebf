// LayerNorm over the last axis as one fused kernel each way (kernels/nn.h): forward writes y and the
// rows' mean and rstd (kept for backward only while a tape records), backward writes dx, dgamma and
// dbeta in one pass. Replaces the moments / sub / sqrt / div / mul / add composite (about ten tfjs
// kernels forward and twenty backward) of src/models/cross_encoder.ts.
import * as tf from '@tensorflow/tfjs';
import { TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';
import { withFusedGrad } from '../ops/fused_op';
import { FusedDistillError, checkLike, checkNumber, checkTensor, required } from '../ops/validate';

export const LAYER_NORM = 'FusedDistillLayerNorm';
export const LAYER_NORM_GRAD = 'FusedDistillLayerNormGrad';

interface LayerNormAttrs {
  eps: number;
  withStats: boolean; // also output mean and rstd [rows] (for backward)
  op: string;
}

function rowsCols(shape: number[]): [number, number] {
  const cols = shape[shape.length - 1];
  return [shape.reduce((a, b) => a * b, 1) / cols, cols];
}

// Outputs: [y, mean, rstd] with withStats, else [y].
defineFusedKernel(LAYER_NORM, (backendName) => ({ inputs, backend, attrs }) => {
  const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as LayerNormAttrs;
  const [rows, cols] = rowsCols(x.shape);
  const shapes = a.withStats ? [x.shape, [rows], [rows]] : [x.shape];
  return runFusedKernel(
    backend,
    backendName,
    [x, gamma, beta],
    shapes,
    (ops, [xv, gv, bv], outs) => {
      ops.layerNorm(xv!, gv!, bv!, rows, cols, a.eps, outs[0], outs[1] ?? null, outs[2] ?? null);
    },
    a.op,
  );
});
// Outputs: [dx, dgamma, dbeta].
defineFusedKernel(LAYER_NORM_GRAD, (backendName) => ({ inputs, backend, attrs }) => {
  const { dy, x, gamma, mean, rstd } = inputs as Record<string, TensorInfo>;
  const [rows, cols] = rowsCols(x.shape);
  return runFusedKernel(
    backend,
    backendName,
    [dy, x, gamma, mean, rstd],
    [x.shape, [cols], [cols]],
    (ops, [d, xv, gv, mv, rv], outs) => {
      ops.layerNormGrad(d!, xv!, gv!, mv!, rv!, rows, cols, outs[0], outs[1], outs[2]);
    },
    (attrs as unknown as { op: string }).op,
  );
});

function checkInputs(op: string, xIn: unknown, gammaIn: unknown, betaIn: unknown, epsIn: unknown) {
  const x = checkTensor(op, 'x', xIn, 1, Infinity, '[..., C]');
  const cols = x.shape[x.rank - 1];
  const gamma = required(
    op,
    'gamma',
    checkLike(op, 'gamma', gammaIn, [cols], 'the scale, [C] for x of shape [..., C]'),
    '(the scale, [C])',
  );
  const beta = required(
    op,
    'beta',
    checkLike(op, 'beta', betaIn, [cols], 'the offset, [C] for x of shape [..., C]'),
    '(the offset, [C])',
  );
  const eps = checkNumber(op, 'eps', epsIn);
  if (eps < 0) throw new FusedDistillError(op, `eps must be >= 0, got ${eps}`);
  return { x, gamma, beta, eps };
}

/**
 * (x - mean) / sqrt(var + eps) * gamma + beta over the last axis of x (var: the biased variance),
 * as BERT's LayerNorm. x: float32 [..., C]; gamma, beta: [C]. Differentiable in all three. Runs the
 * fused kernel on every backend (src/ops/dispatch.ts), layerNormReference where the addon cannot be
 * loaded.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-12): tf.Tensor {
  const op = 'layerNorm';
  const args = checkInputs(op, x, gamma, beta, eps);
  if (!fusedKernelsReady([LAYER_NORM, LAYER_NORM_GRAD]))
    return layerNormReference(args.x, args.gamma, args.beta, args.eps);
  // The row statistics are written (and kept for backward) only while a tape records.
  return withFusedGrad(
    [args.x, args.gamma, args.beta],
    ([xt, g, b], recording) => {
      const [y, mean, rstd] = runKernel(
        LAYER_NORM,
        { x: xt, gamma: g, beta: b },
        { eps: args.eps, withStats: recording, op },
      );
      return { value: y, saved: recording ? [xt, g, mean, rstd] : [] };
    },
    (dy, [sx, sg, sm, sr]) => runKernel(LAYER_NORM_GRAD, { dy, x: sx, gamma: sg, mean: sm, rstd: sr }, { op }),
  );
}

/** The same LayerNorm as plain tfjs ops (the cross-encoder's original composite). */
export function layerNormReference(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-12): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, gamma), beta);
  });
}
