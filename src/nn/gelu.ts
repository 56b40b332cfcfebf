// GELU (erf form) as one fused kernel each way (kernels/nn.h): forward is the composite
// (x * 0.5) * (1 + erf(x / sqrt2)) evaluated in one pass (the same bits as that composite on the
// 'native' backend, whose Erf is the same function), backward dx = dy * (Phi(x) + x phi(x)) in one
// pass instead of the composite's chain of about ten elementwise kernels. biasGelu folds a dense
// layer's bias add into the same passes: gelu(x + bias) forward, dx and the bias gradient (the
// column sum of dx) in one backward pass.
import * as tf from '@tensorflow/tfjs';
import { TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';
import { withFusedGrad } from '../ops/fused_op';
import { checkLike, checkTensor, required } from '../ops/validate';

export const GELU = 'FusedDistillGelu';
export const GELU_GRAD = 'FusedDistillGeluGrad';
export const BIAS_GELU = 'FusedDistillBiasGelu';
export const BIAS_GELU_GRAD = 'FusedDistillBiasGeluGrad';

defineFusedKernel(GELU, (backendName) => ({ inputs, backend, attrs }) => {
  const { x } = inputs as Record<string, TensorInfo>;
  return runFusedKernel(
    backend,
    backendName,
    [x],
    [x.shape],
    (ops, [xv], [y]) => ops.gelu(xv!, y),
    (attrs as unknown as { op: string }).op,
  )[0];
});
defineFusedKernel(GELU_GRAD, (backendName) => ({ inputs, backend, attrs }) => {
  const { dy, x } = inputs as Record<string, TensorInfo>;
  return runFusedKernel(
    backend,
    backendName,
    [dy, x],
    [x.shape],
    (ops, [d, xv], [dx]) => ops.geluGrad(d!, xv!, dx),
    (attrs as unknown as { op: string }).op,
  )[0];
});

// Outputs: [y] or, with withErf (while a tape records), [y, erf((x + bias) / sqrt2)] for backward.
defineFusedKernel(BIAS_GELU, (backendName) => ({ inputs, backend, attrs }) => {
  const { x, bias } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as { op: string; withErf: boolean };
  return runFusedKernel(
    backend,
    backendName,
    [x, bias],
    a.withErf ? [x.shape, x.shape] : [x.shape],
    (ops, [xv, bv], [y, e]) => ops.biasGelu(xv!, bv!, y, e ?? null),
    a.op,
  );
});
// Outputs: [dx, dbias]; erf (forward's) is optional.
defineFusedKernel(BIAS_GELU_GRAD, (backendName) => ({ inputs, backend, attrs }) => {
  const { dy, x, bias, erf } = inputs as Record<string, TensorInfo | undefined>;
  return runFusedKernel(
    backend,
    backendName,
    [dy, x, bias, erf],
    [x!.shape, bias!.shape],
    (ops, [d, xv, bv, ev], [dx, db]) => ops.biasGeluGrad(d!, xv!, bv!, dx, db, ev),
    (attrs as unknown as { op: string }).op,
  );
});

/**
 * 0.5 x (1 + erf(x / sqrt 2)) elementwise (BERT's exact GELU), differentiable. x: float32, any
 * non-empty shape. Runs the fused kernel on every backend (src/ops/dispatch.ts), geluReference
 * where the addon cannot be loaded.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  const op = 'gelu';
  const xt = checkTensor(op, 'x', x, 0, Infinity, 'any non-empty shape');
  if (!fusedKernelsReady([GELU, GELU_GRAD])) return geluReference(xt);
  return withFusedGrad(
    [xt],
    ([input]) => ({ value: runKernel(GELU, { x: input }, { op })[0], saved: [input] }),
    (dy, [sx]) => runKernel(GELU_GRAD, { dy, x: sx }, { op })[0],
  );
}

/**
 * gelu(x + bias): a dense layer's bias add and BERT's GELU in one pass each way. x: float32
 * [..., C]; bias: [C]. Differentiable in both (bias's gradient is the sum of x's over the leading
 * axes). The same bits as gelu(tf.add(x, bias)) forward on 'native'; biasGeluReference where the
 * addon cannot be loaded.
 */
export function biasGelu(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const op = 'biasGelu';
  const xt = checkTensor(op, 'x', x, 1, Infinity, '[..., C]');
  const cols = xt.shape[xt.rank - 1];
  const b = required(
    op,
    'bias',
    checkLike(op, 'bias', bias, [cols], 'the bias, [C] for x of shape [..., C]'),
    '(the bias, [C])',
  );
  if (!fusedKernelsReady([BIAS_GELU, BIAS_GELU_GRAD])) return biasGeluReference(xt, b);
  // While a tape records, forward also keeps erf((x + bias) / sqrt2): backward then computes no erf
  // (the same bits; the erf is most of GELU's work).
  return withFusedGrad(
    [xt, b],
    ([input, bv], recording) => {
      const [y, erf] = runKernel(BIAS_GELU, { x: input, bias: bv }, { op, withErf: recording });
      return { value: y, saved: recording ? [input, bv, erf] : [] };
    },
    (dy, [sx, sb, se]) => runKernel(BIAS_GELU_GRAD, { dy, x: sx, bias: sb, erf: se }, { op }),
  );
}

/** The same biasGelu as plain tfjs ops: gelu's composite of x + bias. */
export function biasGeluReference(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return tf.tidy(() => geluReference(tf.add(x, bias)));
}

/** The same GELU as plain tfjs ops (the cross-encoder's original composite). */
export function geluReference(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}
