// How a fused kernel becomes a differentiable tfjs op. withFusedGrad is the one tape pattern of the
// losses and the layers: without a recording tape the forward kernel alone runs (and skips what only
// backward needs); with one, customGrad saves what the forward returns for its backward kernel.
// runFusedLoss is it for the losses: the kernel computes the loss and, while a tape records, the
// gradient w.r.t. the student input in the same native pass; backward only scales that gradient by
// dy (upstream.ts). Loss kernel outputs are [loss, grad (only when attrs.withGrad), ...extras].
import { GradSaveFunc, NamedAttrMap, NamedTensorMap, Scalar, Tensor, customGrad, engine, keep } from '@tensorflow/tfjs';

import { scaleByUpstream } from './upstream';

/**
 * forward(inputs, recording) runs the op; while a tape records (recording true) it returns the
 * tensors backward needs as `saved`. backward(dy, saved) gives the gradients w.r.t. `inputs`, in order.
 */
export function withFusedGrad<T extends Tensor>(
  inputs: Tensor[],
  forward: (inputs: Tensor[], recording: boolean) => { value: T; saved?: Tensor[] },
  backward: (dy: Tensor, saved: Tensor[]) => Tensor | Tensor[],
): T {
  // Only pay for what backward needs when a tape is recording (tf.grad, optimizer.minimize, model.fit).
  if (!engine().isTapeOn()) return forward(inputs, false).value;
  return customGrad((...args: Array<Tensor | GradSaveFunc>) => {
    const save = args[args.length - 1] as GradSaveFunc;
    const { value, saved } = forward(args.slice(0, -1) as Tensor[], true);
    save(saved ?? []);
    return { value, gradFunc: backward };
  })(...inputs) as T;
}

export function runFusedLoss(
  kernelName: string,
  inputs: NamedTensorMap,
  attrs: object,
  student: Tensor,
): { loss: Scalar; extras: Tensor[] } {
  let extras: Tensor[] = [];
  const loss = withFusedGrad(
    [student],
    (_, withGrad) => {
      const [value, ...rest] = engine().runKernel(kernelName, inputs, {
        ...attrs,
        withGrad,
      } as unknown as NamedAttrMap) as Tensor[];
      if (!withGrad) {
        extras = rest;
        return { value: value as Scalar };
      }
      // customGrad's forward runs inside a tidy: the extras escape it through keep().
      const [grad, ...more] = rest;
      extras = more.map((x) => keep(x));
      return { value: value as Scalar, saved: [grad] };
    },
    (dy, [grad]) => scaleByUpstream(grad, dy),
  );
  return { loss, extras };
}
