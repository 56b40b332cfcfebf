// The backward pass of every fused loss: the gradient was computed in the forward pass, so backward
// only scales it by the upstream gradient dy, natively, and not at all when dy is 1 (the usual case:
// the loss is what tf.grad / optimizer.minimize differentiates).
import { Tensor, TensorInfo, engine } from '@tensorflow/tfjs';

import { addon } from '../native';
import { forward } from './backend_memory';
import { defineFusedKernel, isHostMemory, runFusedKernel } from './dispatch';

export const SCALE_BY_UPSTREAM = 'FusedDistillScaleByUpstream';

defineFusedKernel(SCALE_BY_UPSTREAM, (backendName) => ({ inputs, backend }) => {
  const { grad, dy } = inputs as { grad: TensorInfo; dy: TensorInfo };
  // On the device grad * dy always runs: checking dy for 1 would read it back (a synchronisation).
  if (isHostMemory(backendName)) {
    let scale = 1;
    runFusedKernel(
      backend,
      backendName,
      [dy],
      [],
      (_, [d]) => {
        scale = d![0];
      },
      '',
    );
    if (scale === 1) return forward(backend, grad);
    return runFusedKernel(
      backend,
      backendName,
      [grad],
      [grad.shape],
      (ops, [g], [out]) => ops.scale(g!, scale, out),
      '',
    )[0];
  }
  return runFusedKernel(
    backend,
    backendName,
    [grad, dy],
    [grad.shape],
    (ops, [g, d], [out]) => ops.binaryOp(addon.mathOps.binary.Multiply, g!, grad.shape, d!, dy.shape, out),
    '',
  )[0];
});

/** grad * dy for a scalar dy, in native code (no copy when dy is 1). */
export function scaleByUpstream(grad: Tensor, dy: Tensor): Tensor {
  return engine().runKernel(SCALE_BY_UPSTREAM, { grad, dy }) as Tensor;
}
