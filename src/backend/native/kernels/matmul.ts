// BatchMatMul and _FusedMatMul on the addon's SGEMM (kernels/cpu/sgemm.cpp), in the precision the
// FUSED_DISTILL_MATMUL_PRECISION flag names (src/backend/precision.ts: fp32 or bf16); the shape rules
// (src/backend/plans/matmul.ts: transposes read in place, batch broadcasting as tfjs's CPU kernel)
// are shared with 'cuda'. _FusedMatMul adds a bias that broadcasts to the product in place, in one
// native pass over the product just written (the Add kernel's bits, no second output); other biases
// and the activation run the native backend's own Add and activation kernels.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { binaryPlan } from '../../plans/elementwise';
import { fusedMatMulEpilogue, MatMulAttrs, matMulPlan } from '../../plans/matmul';
import { matmulPrecision } from '../../precision';
import type { NativeBackend } from '../backend';
import { NativeKernelConfig, cpuFallback, floatValues, runNativeKernel } from './util';

function batchMatMulImpl(
  a: tf.TensorInfo,
  av: Float32Array,
  b: tf.TensorInfo,
  bv: Float32Array,
  attrs: MatMulAttrs,
  backend: NativeBackend,
): tf.TensorInfo {
  const { batch, m, n, k, outShape, aOffsets, bOffsets } = matMulPlan(a, b, attrs);
  const precision = matmulPrecision('native'); // checked even where nothing is multiplied
  const size = batch * m * n;
  if (size === 0 || k === 0)
    return backend.makeTensorInfo(outShape, 'float32', backend.allocate('float32', size, true));
  const c = backend.allocate('float32', size) as Float32Array;
  addon.sgemm(av, bv, c, batch, m, n, k, attrs.transposeA, attrs.transposeB, aOffsets, bOffsets, precision);
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

export const fusedMatMulConfig: NativeKernelConfig = {
  kernelName: tf._FusedMatMul,
  kernelFunc: (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const bias = args.inputs.bias as tf.TensorInfo | undefined;
    const preluActivationWeights = args.inputs.preluActivationWeights as tf.TensorInfo | undefined;
    const backend = args.backend as NativeBackend;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as MatMulAttrs & {
      activation?: string;
      leakyreluAlpha?: number;
    };
    const av = a.dtype === 'float32' ? floatValues(backend, a) : null;
    const bv = b.dtype === 'float32' ? floatValues(backend, b) : null;
    if (!av || !bv) return cpuFallback(tf._FusedMatMul, args);
    const product = batchMatMulImpl(a, av, b, bv, { transposeA, transposeB }, backend);
    let pendingBias = bias;
    if (bias && product.dtype === 'float32') {
      // In place when the sum has the product's shape (the addon's binaryOp may write into an input
      // of the result's shape); the product is this kernel's own new tensor.
      const plan = binaryPlan('Add', product, bias);
      const biasValues = bias.dtype === 'float32' ? floatValues(backend, bias) : null;
      const pv = floatValues(backend, product);
      if (plan && biasValues && pv && plan.shape.join() === product.shape.join()) {
        if (pv.length > 0) addon.binaryOp(addon.mathOps.binary.Add, pv, product.shape, biasValues, bias.shape, pv);
        pendingBias = undefined;
      }
    }
    return fusedMatMulEpilogue(
      product,
      pendingBias,
      activation,
      preluActivationWeights,
      leakyreluAlpha,
      'native',
      (name, inputs, attrs) => runNativeKernel(name, backend, inputs, attrs),
      (t) => backend.disposeIntermediateTensorInfo(t),
    );
  },
};
