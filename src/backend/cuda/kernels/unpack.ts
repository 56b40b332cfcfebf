// Unpack (tf.unstack): each slice along the axis is a device copy (cuda.slice) shaped without the
// axis. Other dtypes fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { isNumericDType, NumericDType } from '../../plans/elementwise';
import { shapeMaxRank } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const unpackConfig: CudaKernelConfig = {
  kernelName: tf.Unpack,
  kernelFunc: (args) => {
    const value = args.inputs.value as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const rank = value.shape.length;
    let { axis } = (args.attrs ?? {}) as unknown as { axis: number };
    if (axis < 0) axis += rank;
    if (!isNumericDType(value.dtype) || rank > shapeMaxRank() || axis < 0 || axis >= rank)
      return fallback(tf.Unpack, args);
    const num = value.shape[axis];
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = value.shape.slice();
    size[axis] = 1;
    const outs: tf.TensorInfo[] = [];
    for (let i = 0; i < num; i++) {
      const begin = value.shape.map((_, j) => (j === axis ? i : 0));
      outs.push(
        backend.output(outShape, value.dtype as NumericDType, (out) =>
          cudaDevice().slice(backend.buf(value), value.shape, begin, size, out),
        ),
      );
    }
    return outs;
  },
};
