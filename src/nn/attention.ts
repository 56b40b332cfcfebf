// Multi-head self-attention as one fused kernel each way (kernels/attention.h): scale, additive key
// bias, softmax and the probability x value product per (batch, head), on the dense layers' [B, L, H]
// outputs as they are (head h = columns h*dh .. (h+1)*dh - 1), so none of the composite's four head
// transposes is materialised. Forward keeps the probabilities P [B, A, L, L] for backward (only while
// a tape records), not the logits: backward needs P alone, and at BERT's lengths re-forming it from
// Q K^T would cost a third product and the exps again on a CPU. Replaces the reshape / transpose /
// matMul / div / add / softmax / matMul / transpose composite of src/models/cross_encoder.ts (about 8
// tfjs kernels forward and 16 backward per layer).
import * as tf from '@tensorflow/tfjs';
import { TensorInfo } from '@tensorflow/tfjs';

import { defineFusedKernel, fusedKernelsReady, runFusedKernel, runKernel } from '../ops/dispatch';
import { withFusedGrad } from '../ops/fused_op';
import { FusedDistillError, checkLike, checkNumber, checkTensor, required } from '../ops/validate';
import { matmulPrecision } from '../backend/precision';

export const ATTENTION = 'FusedDistillAttention';
export const ATTENTION_GRAD = 'FusedDistillAttentionGrad';

/** The tfjs flag the matrix products' precision is read from, where the backend registers it. */

interface AttentionAttrs {
  heads: number;
  scale: number;
  precision: number; // 0 fp32, 1 bf16, 2 tf32 products (GemmPrecision)
  withProbs: boolean; // also output P [B, A, L, L] (for backward)
  op: string;
}

/** The products' precision as the kernels take it (GemmPrecision: 0 fp32, 1 bf16, 2 tf32), from the one
 *  flag every matrix product follows (src/backend/precision.ts); backends other than 'cuda' take
 *  'native''s values (they run the host kernel on copies). */
function precisionCode(): number {
  const p = matmulPrecision(tf.getBackend() === 'cuda' ? 'cuda' : 'native');
  return p === 'bf16' ? 1 : p === 'tf32' ? 2 : 0;
}

// Outputs: [out, probs] with withProbs, else [out].
defineFusedKernel(ATTENTION, (backendName) => ({ inputs, backend, attrs }) => {
  const { q, k, v, keyBias } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as AttentionAttrs;
  const [B, L, H] = q.shape;
  const shapes = a.withProbs ? [q.shape, [B, a.heads, L, L]] : [q.shape];
  return runFusedKernel(
    backend,
    backendName,
    [q, k, v, keyBias],
    shapes,
    (ops, [qv, kv, vv, bv], outs) => {
      ops.attention(qv!, kv!, vv!, bv!, B, L, H, a.heads, a.scale, a.precision, outs[0], outs[1] ?? null);
    },
    a.op,
  );
});
// Outputs: [dq, dk, dv, dkeyBias].
defineFusedKernel(ATTENTION_GRAD, (backendName) => ({ inputs, backend, attrs }) => {
  const { dy, q, k, v, probs } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as AttentionAttrs;
  const [B, L, H] = q.shape;
  return runFusedKernel(
    backend,
    backendName,
    [dy, q, k, v, probs],
    [q.shape, q.shape, q.shape, [B, L]],
    (ops, [d, qv, kv, vv, pv], outs) => {
      ops.attentionGrad(
        d!,
        qv!,
        kv!,
        vv!,
        pv!,
        B,
        L,
        H,
        a.heads,
        a.scale,
        a.precision,
        outs[0],
        outs[1],
        outs[2],
        outs[3],
      );
    },
    a.op,
  );
});

export interface AttentionOptions {
  /** the number of heads A; must divide H */
  heads: number;
  /** the logits' factor; default 1 / sqrt(H / heads) */
  scale?: number;
}

function checkInputs(op: string, qIn: unknown, kIn: unknown, vIn: unknown, biasIn: unknown, options: unknown) {
  const q = checkTensor(op, 'q', qIn, 3, 3, '[B, L, H]');
  const [B, L, H] = q.shape;
  const like = (name: string, x: unknown) =>
    required(op, name, checkLike(op, name, x, [B, L, H], `the same [B, L, H] as q`), '([B, L, H] like q)');
  const k = like('k', kIn);
  const v = like('v', vIn);
  const keyBias = required(
    op,
    'keyBias',
    checkLike(op, 'keyBias', biasIn, [B, L], 'the additive key bias, [B, L] for q of shape [B, L, H]'),
    '(the additive key bias, [B, L]: 0 for keys attended to, -10000 for padding)',
  );
  if (options == null || typeof options !== 'object')
    throw new FusedDistillError(op, 'options must be an object { heads, scale? }');
  const o = options as AttentionOptions;
  const heads = checkNumber(op, 'heads', o.heads, 'positive');
  if (!Number.isInteger(heads) || H % heads !== 0)
    throw new FusedDistillError(op, `heads must be a positive integer dividing H = ${H}, got ${heads}`);
  const scale = o.scale === undefined ? 1 / Math.sqrt(H / heads) : checkNumber(op, 'scale', o.scale);
  return { q, k, v, keyBias, heads, scale };
}

/**
 * Multi-head self-attention: for every batch entry b and head h (Q, K, V: the head's columns
 * h*dh .. (h+1)*dh - 1 of q, k, v, dh = H / heads), softmax(scale * Q K^T + keyBias[b]) V, written
 * to the same columns of the result [B, L, H]. q, k, v: float32 [B, L, H]; keyBias: float32 [B, L],
 * added to every row's logits (0 to attend, -10000 for padding, as BERT). Differentiable in all four
 * (keyBias's gradient is the column sums of the logits' gradient over heads and rows). Runs the fused
 * kernel on every backend (src/ops/dispatch.ts), attentionReference where the addon cannot be loaded.
 * The products take the precision of the tfjs flag FUSED_DISTILL_MATMUL_PRECISION where it is
 * registered ('bf16': bfloat16 products, float32 sums), else fp32.
 */
export function attention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  keyBias: tf.Tensor,
  options: AttentionOptions,
): tf.Tensor3D {
  const op = 'attention';
  const args = checkInputs(op, q, k, v, keyBias, options);
  if (!fusedKernelsReady([ATTENTION, ATTENTION_GRAD]))
    return attentionReference(args.q, args.k, args.v, args.keyBias, { heads: args.heads, scale: args.scale });
  const attrs = { heads: args.heads, scale: args.scale, precision: precisionCode(), op };
  // P is written (and kept for backward) only while a tape records.
  return withFusedGrad(
    [args.q, args.k, args.v, args.keyBias],
    ([qt, kt, vt, bt], recording) => {
      const [out, probs] = runKernel(
        ATTENTION,
        { q: qt, k: kt, v: vt, keyBias: bt },
        { ...attrs, withProbs: recording },
      );
      return { value: out as tf.Tensor3D, saved: recording ? [qt, kt, vt, probs] : [] };
    },
    (dy, [sq, sk, sv, sp]) => runKernel(ATTENTION_GRAD, { dy, q: sq, k: sk, v: sv, probs: sp }, attrs),
  );
}

/** The same attention as plain tfjs ops (the cross-encoder's composite: heads split by reshape and
 *  transpose, batched matMuls, softmax). */
export function attentionReference(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  keyBias: tf.Tensor,
  options: AttentionOptions,
): tf.Tensor3D {
  const [B, L, H] = q.shape;
  const A = options.heads,
    dh = H / A;
  const scale = options.scale ?? 1 / Math.sqrt(dh);
  return tf.tidy(() => {
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, L, A, dh]), [0, 2, 1, 3]);
    const logits = tf.mul(tf.matMul(heads(q), heads(k), false, true), scale);
    const probs = tf.softmax(tf.add(logits, tf.reshape(keyBias, [B, 1, 1, L])));
    return tf.reshape(tf.transpose(tf.matMul(probs, heads(v)), [0, 2, 1, 3]), [B, L, H]) as tf.Tensor3D;
  });
}
