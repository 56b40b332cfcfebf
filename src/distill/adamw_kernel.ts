// AdamW's element update as a tfjs kernel (FusedDistillAdamW): inputs p, g, m, v, outputs the new
// p, m and v in one addon pass (kernels/optimizer.h), on host arrays ('cpu', 'wasm', 'native') or
// device buffers ('cuda') through the fused kernels' dispatch (src/ops/dispatch.ts). The gradients' sum of squares goes
// through the same dispatch but returns a plain number: it is float64, which a float32 scalar tensor
// would round (and the clipping factor and the logged norm with it).
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';

import { NativeBackend } from '../backend/native/backend';
import { nativeProfile } from '../backend/native/profile';
import { addon, addonLoadError } from '../native';
import { FusedDistillError } from '../ops/validate';
import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';

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

defineFusedKernel(ADAMW, (backendName) => ({ inputs, backend, attrs }) => {
  const { p, g, m, v } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as AdamWAttrs;
  // Outputs: [p', m', v'].
  return runFusedKernel(
    backend,
    backendName,
    [p, g, m, v],
    [p.shape, p.shape, p.shape],
    (ops, [pv, gv, mv, vv], [pOut, mOut, vOut]) => {
      ops.adamwUpdate(
        pv!,
        gv!,
        mv!,
        vv!,
        pOut,
        a.beta1,
        a.beta2,
        a.eps,
        a.decay,
        a.stepSize,
        a.sqrtBc2,
        a.scale,
        mOut,
        vOut,
      );
    },
    'adamwUpdate',
  );
});

/**
 * One AdamW update of parameter p from gradient g and moments m, v: [p', m', v'], new tensors (the
 * inputs are left as they are), on any backend (ops/dispatch.ts).
 */
export function adamwUpdate(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  attrs: AdamWAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  // Unlike the losses, the optimizer has no composite to fall back on: without the addon this throws
  // its load error.
  if (!fusedKernelsReady([ADAMW])) throw addonLoadError() as Error;
  return runKernel(ADAMW, { p, g, m, v }, attrs) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * The same update as adamwUpdate, written into p, m and v themselves, where that is safe: on the
 * 'native' backend, with each of p, m and v a native block no other tensor can see
 * (NativeBackend.exclusiveFloats: a clone, a reshape or a slice shares memory, and its values must
 * not change). Returns false, touching nothing, where it does not apply; the caller then takes
 * adamwUpdate's new tensors. In place, the update reads and writes each array once and allocates
 * nothing: for BERT-mini's 11M parameters ~130 MB a step less memory written, and no cycling of
 * three fresh blocks per parameter through the caches.
 */
export function adamwUpdateInPlace(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, a: AdamWAttrs): boolean {
  const backend = tf.backend();
  if (!(backend instanceof NativeBackend) || addonLoadError() || g.dtype !== 'float32') return false;
  const pv = backend.exclusiveFloats(p);
  const mv = backend.exclusiveFloats(m);
  const vv = backend.exclusiveFloats(v);
  if (!pv || !mv || !vv) return false;
  const gv = backend.floats(g);
  // A gradient on the memory of p, m or v (the parameter passed as its own gradient): out of place.
  if ([pv, mv, vv].some((x) => x.buffer === gv.buffer)) return false;
  // Not a tfjs kernel call: recorded in the native profile under its own name.
  const t0 = nativeProfile.enabled ? performance.now() : 0;
  try {
    addon.adamwUpdate(pv, gv, mv, vv, pv, a.beta1, a.beta2, a.eps, a.decay, a.stepSize, a.sqrtBc2, a.scale);
  } catch (e) {
    throw new FusedDistillError('adamwUpdate', (e as Error).message.replace(/^fused-distill: [\w.]+: /, ''));
  }
  if (nativeProfile.enabled) nativeProfile.record(`${ADAMW} (in place)`, 'native', performance.now() - t0);
  return true;
}

/**
 * The sum of x's squares in float64, in a fixed order (the same bits every run; the host's and the
 * device's orders differ, kernels/optimizer.h), on the current backend's memory (host copies where
 * it has no fused kernels).
 */
export function sumSquares(x: tf.Tensor): number {
  if (x.size === 0) return 0;
  let sum = 0;
  runFusedKernel(
    tf.backend(),
    tf.getBackend(),
    [x],
    [],
    (ops, [xv]) => {
      sum = ops.sumSquares(xv!);
    },
    'sumSquares',
  );
  return sum;
}
