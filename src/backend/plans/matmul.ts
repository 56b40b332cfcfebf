// Shape decisions of BatchMatMul / _FusedMatMul, shared by the 'native' and 'cuda' backends: both
// transpose flags are read in place by the addon's SGEMM (no transposed copies), batch dimensions
// broadcast as tfjs's CPU kernel does (a flat batch index modulo each operand's batch size).
import * as tf from '@tensorflow/tfjs';

export interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

export interface MatMulPlan {
  batch: number;
  m: number;
  n: number;
  k: number;
  outShape: number[];
  /** per-batch-entry offsets of a (or null: the operand's batch is 1 or the full batch) */
  aOffsets: Float64Array | null;
  bOffsets: Float64Array | null;
}

/** Throws tfjs's error when the inner dimensions differ or the batch dims do not broadcast. */
export function matMulPlan(a: tf.TensorInfo, b: tf.TensorInfo, attrs: MatMulAttrs): MatMulPlan {
  const { transposeA, transposeB } = attrs;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (k !== kb)
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  const batch = Math.max(batchA, batchB);
  // Operands whose batch is neither 1 (stride 0) nor the full batch: index modulo their size.
  const offsets = (own: number, perItem: number) => {
    if (own === 1 || own === batch) return null;
    const o = new Float64Array(batch);
    for (let i = 0; i < batch; i++) o[i] = (i % own) * perItem;
    return o;
  };
  return {
    batch,
    m,
    n,
    k,
    outShape: outer.concat([m, n]),
    aOffsets: offsets(batchA, m * k),
    bOffsets: offsets(batchB, k * n),
  };
}

/**
 * tfjs's fused activations as the kernel (and attrs, inputs) that computes each: the backends run
 * their own kernel of that name on the product.
 */
export function activationKernel(
  activation: string,
  x: tf.TensorInfo,
  prelu: tf.TensorInfo | undefined,
  leakyreluAlpha: number | undefined,
  backendName: string,
): { kernelName: string; inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap } {
  switch (activation) {
    case 'linear':
      return { kernelName: 'Identity', inputs: { x }, attrs: {} };
    case 'relu':
    case 'relu6':
    case 'elu':
    case 'sigmoid':
      return {
        kernelName: activation === 'relu6' ? 'Relu6' : activation[0].toUpperCase() + activation.slice(1),
        inputs: { x },
        attrs: {},
      };
    case 'leakyrelu':
      return { kernelName: 'LeakyRelu', inputs: { x }, attrs: { alpha: leakyreluAlpha ?? 0.2 } };
    case 'prelu':
      return { kernelName: 'Prelu', inputs: { x, alpha: prelu as tf.TensorInfo }, attrs: {} };
    default:
      throw new Error(`Activation ${activation} has not been implemented for the ${backendName} backend.`);
  }
}

/**
 * _FusedMatMul's epilogue on the product: + bias, then the activation, each as the backend's own
 * kernel of that name (`run`), disposing each intermediate (`dispose`).
 */
export function fusedMatMulEpilogue(
  product: tf.TensorInfo,
  bias: tf.TensorInfo | undefined,
  activation: string | undefined,
  prelu: tf.TensorInfo | undefined,
  leakyreluAlpha: number | undefined,
  backendName: string,
  run: (kernelName: string, inputs: tf.NamedTensorInfoMap, attrs?: tf.NamedAttrMap) => tf.TensorInfo,
  dispose: (t: tf.TensorInfo) => void,
): tf.TensorInfo {
  let current = product;
  if (bias) {
    const next = run('Add', { a: current, b: bias });
    dispose(current);
    current = next;
  }
  if (activation && activation !== 'linear') {
    const k = activationKernel(activation, current, prelu, leakyreluAlpha, backendName);
    const next = run(k.kernelName, k.inputs, k.attrs);
    dispose(current);
    current = next;
  }
  return current;
}
