// Cast between float32, int32 and bool, as tfjs's cpu Cast: float -> int32 truncates toward zero
// (JS ToInt32: NaN and +-inf give 0, large values wrap), -> bool is x != 0 (NaN gives true). Where
// tfjs's cpu kernel would share the input's data under the new dtype (int32/bool -> float32,
// bool -> int32), this one converts: later native kernels then read a Float32Array directly.
// complex64 and string run the cpu kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import type { NativeBackend } from '../backend';
import { castPlan } from '../../plans/elementwise';
import { NativeKernelConfig, cpuFallback } from './util';

function isNumericArray(v: unknown): v is Float32Array | Int32Array | Uint8Array {
  return v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array;
}

export const castConfig: NativeKernelConfig = {
  kernelName: tf.Cast,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const dtype = (args.attrs as { dtype: tf.DataType }).dtype;
    const backend = args.backend as NativeBackend;
    const plan = castPlan(x, dtype);
    if (plan === null) return cpuFallback(tf.Cast, args);
    if (plan === 'identity') {
      backend.incRef(x.dataId); // identity, as tfjs
      return { dataId: x.dataId, shape: x.shape, dtype };
    }
    const values = (backend.data.get(x.dataId) as { values?: unknown }).values;
    if (!isNumericArray(values)) return cpuFallback(tf.Cast, args);
    const out = backend.allocate(dtype as 'float32' | 'int32' | 'bool', values.length);
    if (out.length > 0) addon.cast(values, out);
    return backend.makeTensorInfo(x.shape, dtype, out);
  },
};
