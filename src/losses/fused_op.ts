// How every fused loss becomes a differentiable tfjs op. The kernel computes the loss and, when a
// tape is recording, the gradient w.r.t. the student input in the same native pass; the gradient
// is saved and backward only scales it by dy (upstream.ts). Kernel outputs are
// [loss, grad (only when attrs.withGrad), ...extras].
import { GradSaveFunc, NamedAttrMap, NamedTensorMap, Scalar, Tensor, customGrad, engine, keep } from '@tensorflow/tfjs';

import { scaleByUpstream } from './upstream';

export function runFusedLoss(
  kernelName: string,
  inputs: NamedTensorMap,
  attrs: object,
  student: Tensor,
): { loss: Scalar; extras: Tensor[] } {
  const run = (withGrad: boolean) =>
    engine().runKernel(kernelName, inputs, { ...attrs, withGrad } as unknown as NamedAttrMap) as Tensor[];

  // Only pay for the gradient when a tape is recording (tf.grad, optimizer.minimize, model.fit).
  if (!engine().isTapeOn()) {
    const [loss, ...extras] = run(false);
    return { loss: loss as Scalar, extras };
  }
  let extras: Tensor[] = [];
  // customGrad's forward runs inside a tidy: the extras escape it through keep().
  const loss = customGrad((...args: Array<Tensor | GradSaveFunc>) => {
    const save = args[1] as GradSaveFunc;
    const [value, grad, ...rest] = run(true);
    save([grad]);
    extras = rest.map((x) => keep(x));
    return { value, gradFunc: (dy: Tensor, saved: Tensor[]) => scaleByUpstream(saved[0], dy) };
  })(student) as Scalar;
  return { loss, extras };
}
