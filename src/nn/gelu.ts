// GELU (erf form) as one fused kernel each way (kernels/nn.h): forward is the composite
// (x * 0.5) * (1 + erf(x / sqrt2)) evaluated in one pass (the same bits as that composite on the
// 'native' backend, whose Erf is the same function), backward dx = dy * (Phi(x) + x phi(x)) in one
// pass instead of the composite's chain of about ten elementwise kernels.
import * as tf from '@tensorflow/tfjs';
import { TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';
import { withFusedGrad } from '../ops/fused_op';
import { checkTensor } from '../ops/validate';

export const GELU = 'FusedDistillGelu';
export const GELU_GRAD = 'FusedDistillGeluGrad';

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

/** The same GELU as plain tfjs ops (the cross-encoder's original composite). */
export function geluReference(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}
