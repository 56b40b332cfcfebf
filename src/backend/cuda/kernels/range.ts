// Range: the values follow from the attributes alone, so they are computed on the host (tfjs's own
// rangeImpl) and uploaded, as tf.tensor() data is: no device data is read, nothing falls back.
import * as tf from '@tensorflow/tfjs';
import { shared } from '@tensorflow/tfjs-backend-cpu';

import type { CudaBackend } from '../backend';
import { CudaKernelConfig } from './util';

export const rangeConfig: CudaKernelConfig = {
  kernelName: tf.Range,
  kernelFunc: (args) => {
    const { start, stop, step, dtype } = (args.attrs ?? {}) as unknown as {
      start: number;
      stop: number;
      step: number;
      dtype: 'float32' | 'int32';
    };
    const values = shared.rangeImpl(start, stop, step, dtype);
    return (args.backend as CudaBackend).makeTensorInfo([values.length], dtype, values);
  },
};
