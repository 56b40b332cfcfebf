// The backward pass of every fused loss: the gradient was computed in the forward pass, so backward
// only scales it by the upstream gradient dy, natively, and not at all when dy is 1 (the usual case:
// the loss is what tf.grad / optimizer.minimize differentiates).
import { KernelConfig, Tensor, TensorInfo, engine, registerKernel } from '@tensorflow/tfjs';

import { addon, cudaDevice } from '../native';
import { DEVICE_BACKEND, FUSED_BACKENDS, forward, runOnBackend, runOnDevice } from './kernel_io';

export const SCALE_BY_UPSTREAM = 'FusedDistillScaleByUpstream';

for (const backendName of FUSED_BACKENDS) {
  const config: KernelConfig = {
    kernelName: SCALE_BY_UPSTREAM,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { grad, dy } = inputs as { grad: TensorInfo; dy: TensorInfo };
      let scale = 1;
      runOnBackend(backend, backendName, [dy], [], ([d]) => {
        scale = d![0];
      });
      if (scale === 1) return forward(backend, grad);
      return runOnBackend(backend, backendName, [grad], [grad.shape], ([g], [out]) =>
        addon.scale(g!, scale, out),
      )[0] as TensorInfo;
    },
  };
  registerKernel(config);
}

// 'cuda': grad * dy on the device, always (checking dy for 1 would read it back: a synchronisation).
registerKernel({
  kernelName: SCALE_BY_UPSTREAM,
  backendName: DEVICE_BACKEND,
  kernelFunc: ({ inputs, backend }) => {
    const { grad, dy } = inputs as { grad: TensorInfo; dy: TensorInfo };
    return runOnDevice(backend, [grad, dy], [grad.shape], ([g, d], [out]) =>
      cudaDevice().binaryOp(addon.mathOps.binary.Multiply, g!, grad.shape, d!, dy.shape, out),
    )[0];
  },
});

/** grad * dy for a scalar dy, in native code (no copy when dy is 1). */
export function scaleByUpstream(grad: Tensor, dy: Tensor): Tensor {
  return engine().runKernel(SCALE_BY_UPSTREAM, { grad, dy }) as Tensor;
}
