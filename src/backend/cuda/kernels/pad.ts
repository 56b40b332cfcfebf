// PadV2 (constant padding; the gradient of Slice) on the device: along each padded axis, the
// constant blocks (cuda.fill) and the tensor so far joined by cuda.concat. Other dtypes fall back.
import * as tf from '@tensorflow/tfjs';

import { cudaDevice } from '../../../native';
import { isNumericDType, NumericDType } from '../../plans/elementwise';
import { shapeMaxRank } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const padV2Config: CudaKernelConfig = {
  kernelName: tf.PadV2,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const { paddings, constantValue } = (args.attrs ?? {}) as unknown as {
      paddings: Array<[number, number]>;
      constantValue: number;
    };
    if (
      !isNumericDType(x.dtype) ||
      x.shape.length > shapeMaxRank() ||
      x.shape.length === 0 ||
      paddings.length !== x.shape.length
    )
      return fallback(tf.PadV2, args);
    const dtype = x.dtype as NumericDType;
    const dev = cudaDevice();
    let current = backend.share(x, x.shape);
    for (let axis = 0; axis < x.shape.length; axis++) {
      const [before, after] = paddings[axis];
      if (before === 0 && after === 0) continue;
      const block = (n: number) => {
        const shape = current.shape.slice();
        shape[axis] = n;
        return backend.output(shape, dtype, (out) => dev.fill(out, constantValue));
      };
      const parts = [before > 0 ? block(before) : null, current, after > 0 ? block(after) : null].filter(
        (t): t is tf.TensorInfo => t !== null,
      );
      const shape = current.shape.slice();
      shape[axis] += before + after;
      const nonEmpty = parts.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
      const next = backend.output(shape, dtype, (out) =>
        nonEmpty.length === 1
          ? dev.copy(out, backend.buf(nonEmpty[0]), tf.util.sizeFromShape(shape))
          : dev.concat(
              nonEmpty.map((t) => backend.buf(t)),
              nonEmpty.map((t) => t.shape),
              axis,
              out,
            ),
      );
      for (const t of parts) backend.disposeIntermediateTensorInfo(t);
      current = next;
    }
    return current;
  },
};
