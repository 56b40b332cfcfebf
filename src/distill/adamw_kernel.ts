// AdamW's element update as a tfjs kernel (FusedDistillAdamW): inputs p, g, m, v, outputs the new
// p, m and v in one addon pass (kernels/optimizer.h), on host arrays ('cpu', 'wasm', 'native') or
// device buffers ('cuda') through the layer kernels' dispatch. The gradients' sum of squares goes
// through the same dispatch but returns a plain number: it is float64, which a float32 scalar tensor
// would round (and the clipping factor and the logged norm with it).
import * as tf from '@tensorflow/tfjs';
import { TensorInfo, registerKernel } from '@tensorflow/tfjs';

import { addon, type Addon } from '../native';
import { NN_BACKENDS, hasKernel, runKernel, runLayerKernel } from '../nn/dispatch';

export const ADAMW = 'FusedDistillAdamW';

/** The scalars of one parameter's update (kernels/optimizer.h's AdamWArgs). */
export interface AdamWAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 - lr * weightDecay for a decayed parameter, else 1 */
  decay: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** sqrt(1 - beta2^t) */
  sqrtBc2: number;
  /** the gradient clipping factor */
  scale: number;
}

// runLayerKernel hands its body the whole addon, or addon.cuda (the same entry points on device
// buffers); its type names the layer ops only.
type OptimizerOps = Pick<Addon, 'adamwUpdate' | 'sumSquares'>;
const optimizerOps = (ops: unknown) => ops as OptimizerOps;

type DispatchBackend = (typeof NN_BACKENDS)[number];
const dispatches = (name: string): name is DispatchBackend => (NN_BACKENDS as readonly string[]).includes(name);

for (const backendName of NN_BACKENDS) {
  registerKernel({
    kernelName: ADAMW,
    backendName,
    // Outputs: [p', m', v'].
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { p, g, m, v } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as AdamWAttrs;
      return runLayerKernel(backend, backendName, [p, g, m, v], [p.shape, p.shape, p.shape], (ops, [pv, gv, mv, vv], [pOut, mOut, vOut]) => {
        optimizerOps(ops).adamwUpdate(pv, gv, mv, vv, pOut, a.beta1, a.beta2, a.eps, a.decay, a.stepSize, a.sqrtBc2, a.scale, mOut, vOut);
      }, 'adamwUpdate');
    },
  });
}

// A tensor's values as a Float32Array on the host (the fallback's read).
const hostFloats = (t: tf.Tensor): Float32Array => {
  const values = t.dataSync();
  return values instanceof Float32Array ? values : Float32Array.from(values);
};

/**
 * One AdamW update of parameter p from gradient g and moments m, v: [p', m', v'], new tensors (the
 * inputs are left as they are). Where no kernel is registered for the current backend, the same
 * addon pass runs on the values read back to the host.
 */
export function adamwUpdate(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, attrs: AdamWAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (hasKernel(ADAMW)) return runKernel(ADAMW, { p, g, m, v }, attrs) as [tf.Tensor, tf.Tensor, tf.Tensor];
  const outs = [0, 1, 2].map(() => new Float32Array(p.size));
  const a = attrs;
  addon.adamwUpdate(hostFloats(p), hostFloats(g), hostFloats(m), hostFloats(v), outs[0], a.beta1, a.beta2, a.eps, a.decay, a.stepSize, a.sqrtBc2, a.scale, outs[1], outs[2]);
  return outs.map((values) => tf.tensor(values, p.shape, 'float32')) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * The sum of x's squares in float64, in a fixed order (the same bits every run; the host's and the
 * device's orders differ, kernels/optimizer.h): on the current backend's memory where the dispatch
 * reaches it, else on the values read back to the host.
 */
export function sumSquares(x: tf.Tensor): number {
  if (x.size === 0) return 0;
  const backendName = tf.getBackend();
  if (!dispatches(backendName)) return addon.sumSquares(hostFloats(x));
  let sum = 0;
  runLayerKernel(tf.backend(), backendName, [x], [], (ops, [xv]) => {
    sum = optimizerOps(ops).sumSquares(xv);
  }, 'sumSquares');
  return sum;
}
