// GELU (erf form) as one fused kernel each way (kernels/nn.h): forward is the composite
// (x * 0.5) * (1 + erf(x / sqrt2)) evaluated in one pass (the same bits as that composite on the
// 'native' backend, whose Erf is the same function), backward dx = dy * (Phi(x) + x phi(x)) in one
// pass instead of the composite's chain of about ten elementwise kernels.
import * as tf from '@tensorflow/tfjs';
import { GradSaveFunc, KernelConfig, TensorInfo, registerKernel } from '@tensorflow/tfjs';

import { checkTensor } from '../losses/validate';
import { NN_BACKENDS, hasKernel, runKernel, runLayerKernel } from './dispatch';

export const GELU = 'FusedDistillGelu';
export const GELU_GRAD = 'FusedDistillGeluGrad';

for (const backendName of NN_BACKENDS) {
  const forward: KernelConfig = {
    kernelName: GELU,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x } = inputs as Record<string, TensorInfo>;
      return runLayerKernel(backend, backendName, [x], [x.shape], (ops, [xv], [y]) => ops.gelu(xv, y),
        (attrs as unknown as { op: string }).op)[0];
    },
  };
  const backward: KernelConfig = {
    kernelName: GELU_GRAD,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { dy, x } = inputs as Record<string, TensorInfo>;
      return runLayerKernel(backend, backendName, [dy, x], [x.shape], (ops, [d, xv], [dx]) => ops.geluGrad(d, xv, dx),
        (attrs as unknown as { op: string }).op)[0];
    },
  };
  registerKernel(forward);
  registerKernel(backward);
}

/**
 * 0.5 x (1 + erf(x / sqrt 2)) elementwise (BERT's exact GELU), differentiable. x: float32, any
 * non-empty shape. Runs the fused kernel where it is registered for the current backend, else
 * geluReference.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  const op = 'gelu';
  const xt = checkTensor(op, 'x', x, 0, Infinity, 'any non-empty shape');
  if (!hasKernel(GELU)) return geluReference(xt);
  if (!tf.engine().isTapeOn()) return runKernel(GELU, { x: xt }, { op })[0];
  return tf.customGrad((...a: Array<tf.Tensor | GradSaveFunc>) => {
    const [input, save] = a as [tf.Tensor, GradSaveFunc];
    save([input]);
    return {
      value: runKernel(GELU, { x: input }, { op })[0],
      gradFunc: (dy: tf.Tensor, [sx]: tf.Tensor[]) => runKernel(GELU_GRAD, { dy, x: sx }, { op })[0],
    };
  })(xt);
}

/** The same GELU as plain tfjs ops (the cross-encoder's original composite). */
export function geluReference(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))));
}
