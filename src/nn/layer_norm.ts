// LayerNorm over the last axis as one fused kernel each way (kernels/nn.h): forward writes y and the
// rows' mean and rstd (kept for backward only while a tape records), backward writes dx, dgamma and
// dbeta in one pass. Replaces the moments / sub / sqrt / div / mul / add composite (about ten tfjs
// kernels forward and twenty backward) of src/models/cross_encoder.ts. addLayerNorm folds the two adds
// before BERT's post-LayerNorms into the same passes: LayerNorm(x + bias + residual) with x a dense
// layer's product, forward reading the three inputs once per pass (the sum is never stored), backward
// giving dx (also the residual's gradient) and the bias gradient (the column sum of dx) with dgamma
// and dbeta.
import * as tf from '@tensorflow/tfjs';
import { TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';
import { withFusedGrad } from '../ops/fused_op';
import { FusedDistillError, checkLike, checkNumber, checkTensor, required } from '../ops/validate';

export const LAYER_NORM = 'FusedDistillLayerNorm';
export const LAYER_NORM_GRAD = 'FusedDistillLayerNormGrad';
export const ADD_LAYER_NORM = 'FusedDistillAddLayerNorm';
export const ADD_LAYER_NORM_GRAD = 'FusedDistillAddLayerNormGrad';

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

// Inputs x, residual, bias (absent: no bias), gamma, beta. Outputs: [y, mean, rstd] with withStats, else [y].
defineFusedKernel(ADD_LAYER_NORM, (backendName) => ({ inputs, backend, attrs }) => {
  const { x, residual, bias, gamma, beta } = inputs as Record<string, TensorInfo | undefined>;
  const a = attrs as unknown as LayerNormAttrs;
  const [rows, cols] = rowsCols(x!.shape);
  const shapes = a.withStats ? [x!.shape, [rows], [rows]] : [x!.shape];
  return runFusedKernel(
    backend,
    backendName,
    [x, gamma, beta, residual, bias],
    shapes,
    (ops, [xv, gv, bv, rv, biv], outs) => {
      ops.layerNorm(xv!, gv!, bv!, rows, cols, a.eps, outs[0], outs[1] ?? null, outs[2] ?? null, rv, biv);
    },
    a.op,
  );
});
// Outputs: [dx, dgamma, dbeta] and, with a bias, dbias.
defineFusedKernel(ADD_LAYER_NORM_GRAD, (backendName) => ({ inputs, backend, attrs }) => {
  const { dy, x, residual, bias, gamma, mean, rstd } = inputs as Record<string, TensorInfo | undefined>;
  const [rows, cols] = rowsCols(x!.shape);
  return runFusedKernel(
    backend,
    backendName,
    [dy, x, gamma, mean, rstd, residual, bias],
    bias ? [x!.shape, [cols], [cols], [cols]] : [x!.shape, [cols], [cols]],
    (ops, [d, xv, gv, mv, rv, res, biv], outs) => {
      ops.layerNormGrad(d!, xv!, gv!, mv!, rv!, rows, cols, outs[0], outs[1], outs[2], res, biv, outs[3] ?? null);
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

/**
 * layerNorm(x + bias + residual, gamma, beta, eps), the adds in that order as a dense layer's bias
 * and BERT's residual branch: one kernel pass each way, the sum never stored. x, residual: float32
 * [..., C] of one shape; bias (null: none), gamma, beta: [C]. Differentiable in all five (the
 * residual's gradient is x's; bias's is the sum of x's over the leading axes). The same bits forward
 * as layerNorm(tf.add(tf.add(x, bias), residual), ...) on 'native'; addLayerNormReference where the
 * addon cannot be loaded.
 */
export function addLayerNorm(
  x: tf.Tensor,
  residual: tf.Tensor,
  bias: tf.Tensor | null,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps = 1e-12,
): tf.Tensor {
  const op = 'addLayerNorm';
  const args = checkInputs(op, x, gamma, beta, eps);
  const cols = args.x.shape[args.x.rank - 1];
  const res = required(
    op,
    'residual',
    checkLike(op, 'residual', residual, args.x.shape, "the residual branch, x's shape"),
    "(the residual branch, x's shape)",
  );
  const b = checkLike(op, 'bias', bias, [cols], 'the bias, [C] for x of shape [..., C]');
  if (!fusedKernelsReady([ADD_LAYER_NORM, ADD_LAYER_NORM_GRAD]))
    return addLayerNormReference(args.x, res, b, args.gamma, args.beta, args.eps);
  const inputs = b ? [args.x, res, b, args.gamma, args.beta] : [args.x, res, args.gamma, args.beta];
  return withFusedGrad(
    inputs,
    (ts, recording) => {
      const [xt, rt, bt, g, be] = b ? ts : [ts[0], ts[1], null, ts[2], ts[3]];
      const named: tf.NamedTensorMap = { x: xt, residual: rt, gamma: g, beta: be };
      if (bt) named.bias = bt;
      const [y, mean, rstd] = runKernel(ADD_LAYER_NORM, named, { eps: args.eps, withStats: recording, op });
      return { value: y, saved: recording ? [xt, rt, g, mean, rstd, ...(bt ? [bt] : [])] : [] };
    },
    (dy, [sx, sr, sg, sm, ss, sb]) => {
      const named: tf.NamedTensorMap = { dy, x: sx, residual: sr, gamma: sg, mean: sm, rstd: ss };
      if (sb) named.bias = sb;
      const [dx, dgamma, dbeta, dbias] = runKernel(ADD_LAYER_NORM_GRAD, named, { op });
      // The residual's gradient is dx: a second tensor on the same memory (the tape may dispose each).
      return sb ? [dx, tf.clone(dx), dbias, dgamma, dbeta] : [dx, tf.clone(dx), dgamma, dbeta];
    },
  );
}

/** The same addLayerNorm as plain tfjs ops: layerNorm's composite of (x + bias) + residual. */
export function addLayerNormReference(
  x: tf.Tensor,
  residual: tf.Tensor,
  bias: tf.Tensor | null,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps = 1e-12,
): tf.Tensor {
  return tf.tidy(() => layerNormReference(tf.add(bias ? tf.add(x, bias) : x, residual), gamma, beta, eps));
}

/** The same LayerNorm as plain tfjs ops (the cross-encoder's original composite). */
export function layerNormReference(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-12): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, gamma), beta);
  });
}
