// BatchMatMul and _FusedMatMul on the addon's SGEMM (kernels/cpu/sgemm.cpp): both transpose flags
// are read in place (no transposed copies), batch dimensions broadcast as tfjs's CPU kernel does (a
// flat batch index modulo each operand's batch size). _FusedMatMul adds the bias and applies the
// activation with the native backend's own Add and activation kernels.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { NativeKernelConfig, cpuFallback, floatValues, runNativeKernel } from './util';

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

function batchMatMulImpl(a: tf.TensorInfo, av: Float32Array, b: tf.TensorInfo, bv: Float32Array, attrs: MatMulAttrs, backend: NativeBackend): tf.TensorInfo {
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
  const outShape = outer.concat([m, n]);
  const batch = Math.max(batchA, batchB);
  const size = batch * m * n;
  if (size === 0 || k === 0) {
    return backend.makeTensorInfo(outShape, 'float32', backend.allocate('float32', size, true));
  }
  const c = backend.allocate('float32', size) as Float32Array;
  // Operands whose batch is neither 1 (stride 0) nor the full batch index modulo their size.
  const offsets = (own: number, perItem: number) => {
    if (own === 1 || own === batch) return null;
    const o = new Float64Array(batch);
    for (let i = 0; i < batch; i++) o[i] = (i % own) * perItem;
    return o;
  };
  addon.sgemm(av, bv, c, batch, m, n, k, transposeA, transposeB, offsets(batchA, m * k), offsets(batchB, k * n));
  return backend.makeTensorInfo(outShape, 'float32', c);
}

export const batchMatMulConfig: NativeKernelConfig = {
  kernelName: tf.BatchMatMul,
  kernelFunc: (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const backend = args.backend as NativeBackend;
    const av = a.dtype === 'float32' ? floatValues(backend, a) : null;
    const bv = b.dtype === 'float32' ? floatValues(backend, b) : null;
    if (!av || !bv) return cpuFallback(tf.BatchMatMul, args);
    return batchMatMulImpl(a, av, b, bv, args.attrs as unknown as MatMulAttrs, backend);
  },
};

// tfjs's fused activations, each as the native backend's kernel of that name.
function activate(x: tf.TensorInfo, activation: string, backend: NativeBackend, prelu?: tf.TensorInfo, leakyreluAlpha?: number): tf.TensorInfo {
  switch (activation) {
    case 'linear':
      return runNativeKernel('Identity', backend, { x });
    case 'relu':
      return runNativeKernel('Relu', backend, { x });
    case 'relu6':
      return runNativeKernel('Relu6', backend, { x });
    case 'elu':
      return runNativeKernel('Elu', backend, { x });
    case 'sigmoid':
      return runNativeKernel('Sigmoid', backend, { x });
    case 'leakyrelu':
      return runNativeKernel('LeakyRelu', backend, { x }, { alpha: leakyreluAlpha ?? 0.2 });
    case 'prelu':
      return runNativeKernel('Prelu', backend, { x, alpha: prelu as tf.TensorInfo });
    default:
      throw new Error(`Activation ${activation} has not been implemented for the native backend.`);
  }
}

export const fusedMatMulConfig: NativeKernelConfig = {
  kernelName: tf._FusedMatMul,
  kernelFunc: (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const bias = args.inputs.bias as tf.TensorInfo | undefined;
    const preluActivationWeights = args.inputs.preluActivationWeights as tf.TensorInfo | undefined;
    const backend = args.backend as NativeBackend;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as MatMulAttrs & { activation?: string; leakyreluAlpha?: number };
    const av = a.dtype === 'float32' ? floatValues(backend, a) : null;
    const bv = b.dtype === 'float32' ? floatValues(backend, b) : null;
    if (!av || !bv) return cpuFallback(tf._FusedMatMul, args);
    let current = batchMatMulImpl(a, av, b, bv, { transposeA, transposeB }, backend);
    if (bias) {
      const next = runNativeKernel('Add', backend, { a: current, b: bias });
      backend.disposeIntermediateTensorInfo(current);
      current = next;
    }
    if (activation && activation !== 'linear') {
      const next = activate(current, activation, backend, preluActivationWeights, leakyreluAlpha);
      backend.disposeIntermediateTensorInfo(current);
      current = next;
    }
    return current;
  },
};
