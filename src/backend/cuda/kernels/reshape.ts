// Reshape and Identity: the output shares the input's buffer (one more reference, no copy), as
// tfjs's own backends do. Any dtype (string and complex64 data share their host record the same way).
import * as tf from '@tensorflow/tfjs';

import type { CudaBackend } from '../backend';
import { CudaKernelConfig } from './util';

export const reshapeConfig: CudaKernelConfig = {
  kernelName: tf.Reshape,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const { shape } = (args.attrs ?? {}) as unknown as { shape: number[] };
    const xSize = tf.util.sizeFromShape(x.shape);
    const $shape = tf.util.inferFromImplicitShape(shape, xSize);
    const $xSize = tf.util.sizeFromShape($shape);
    tf.util.assert(
      xSize === $xSize,
      () =>
        `The new shape (${$shape}) has ${$xSize} elements and the old shape (${x.shape}) has ${xSize} elements. The new shape and old shape must have the same number of elements.`,
    );
    return (args.backend as CudaBackend).share(x, $shape);
  },
};

export const identityConfig: CudaKernelConfig = {
  kernelName: tf.Identity,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    return (args.backend as CudaBackend).share(x, x.shape);
  },
};

export const expandDimsConfig: CudaKernelConfig = {
  kernelName: tf.ExpandDims,
  kernelFunc: (args) => {
    const input = args.inputs.input as tf.TensorInfo;
    const { dim } = (args.attrs ?? {}) as unknown as { dim: number };
    const rank = input.shape.length;
    let $dim = dim;
    if (dim < 0) {
      tf.util.assert(-(rank + 1) <= dim, () => `Axis must be in the interval [${-(rank + 1)}, ${rank}]`);
      $dim = rank + dim + 1;
    }
    const shape = input.shape.slice();
    shape.splice($dim, 0, 1);
    return (args.backend as CudaBackend).share(input, shape);
  },
};
