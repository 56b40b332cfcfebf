// Reductions: Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin over any axes, without the
// transpose tfjs's CPU kernels make first (kernels/cpu/reduce.cpp). Attributes, output dtypes
// and shapes are tfjs's (src/backend/plans/reduce.ts, shared with 'cuda'); Max/Min return NaN if any
// element is NaN. Cases the addon does not take run tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { REDUCE_SPECS, ReduceSpec, reducePlan } from '../../plans/reduce';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function reduceConfig(spec: ReduceSpec): Omit<tf.KernelConfig, 'backendName'> {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as NativeBackend;
    const plan = reducePlan(spec, x, args.attrs);
    if (plan === null) return cpuKernel(spec.kernelName, args);
    const xs = hostData(backend, x);
    return nativeOutput(backend, plan.shape, plan.outDtype, (out) =>
      addon.reduce(spec.op, xs, x.shape, plan.axes, out),
    );
  };
  return { kernelName: spec.kernelName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const reduceConfigs = REDUCE_SPECS.map(reduceConfig);
