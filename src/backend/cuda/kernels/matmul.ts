// BatchMatMul and _FusedMatMul on cuda.sgemm (cuBLAS) in the precision of src/backend/precision.ts:
// fp32, bf16 or tf32 (FUSED_DISTILL_MATMUL_PRECISION; FUSED_DISTILL_CUDA_TF32 = true is 'tf32'), with the shape rules of src/backend/plans/matmul.ts (transposes read in place, tfjs's batch
// broadcasting). _FusedMatMul adds the bias and applies the activation with the 'cuda' kernels.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { fusedMatMulEpilogue, MatMulAttrs, matMulPlan } from '../../plans/matmul';
import { matmulPrecision } from '../../precision';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback, runCudaKernel } from './util';

function batchMatMul(a: tf.TensorInfo, b: tf.TensorInfo, attrs: MatMulAttrs, backend: CudaBackend): tf.TensorInfo {
  const { batch, m, n, k, outShape, aOffsets, bOffsets } = matMulPlan(a, b, attrs);
  const precision = matmulPrecision('cuda');
  if (batch * m * n > 0 && k === 0) return backend.output(outShape, 'float32', (out) => cudaDevice().fill(out, 0));
  return backend.output(outShape, 'float32', (out) =>
    cudaDevice().sgemm(
      backend.buf(a),
      backend.buf(b),
      out,
      batch,
      m,
      n,
      k,
      attrs.transposeA,
      attrs.transposeB,
      aOffsets,
      bOffsets,
      precision,
    ),
  );
}

export const batchMatMulConfig: CudaKernelConfig = {
  kernelName: tf.BatchMatMul,
  kernelFunc: (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(tf.BatchMatMul, args);
    return batchMatMul(a, b, args.attrs as unknown as MatMulAttrs, args.backend as CudaBackend);
  },
};

export const fusedMatMulConfig: CudaKernelConfig = {
  kernelName: tf._FusedMatMul,
  kernelFunc: (args) => {
    const a = args.inputs.a as tf.TensorInfo;
    const b = args.inputs.b as tf.TensorInfo;
    const bias = args.inputs.bias as tf.TensorInfo | undefined;
    const prelu = args.inputs.preluActivationWeights as tf.TensorInfo | undefined;
    const backend = args.backend as CudaBackend;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as MatMulAttrs & {
      activation?: string;
      leakyreluAlpha?: number;
    };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(tf._FusedMatMul, args);
    const product = batchMatMul(a, b, { transposeA, transposeB }, backend);
    return fusedMatMulEpilogue(
      product,
      bias,
      activation,
      prelu,
      leakyreluAlpha,
      'cuda',
      (name, inputs, attrs) => runCudaKernel(name, backend, inputs, attrs),
      (t) => backend.disposeIntermediateTensorInfo(t),
    );
  },
};
