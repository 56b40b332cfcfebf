// Reductions: Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin over any axes, without the
// transpose tfjs's CPU kernels make first (kernels/cpu/shape_reduce.cpp). Attributes, output dtypes
// and shapes are tfjs's: Sum of int32/bool is int32, Mean is float32, Max/Min keep the dtype and
// return NaN if any element is NaN, keepDims keeps size-1 axes, ArgMax/ArgMin take one axis (the
// first given) and return int32. Cases the addon does not take (other dtypes, an empty x, duplicate
// axes, more than 16 axes) run tfjs's CPU kernel.
import * as tf from '@tensorflow/tfjs';

import { addon, ReduceOpName } from '../../../native';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, isNativeDType, KernelArgs, MAX_RANK, NativeDType, nativeOutput } from './shape_common';

interface ReduceSpec {
  kernelName: string;
  op: ReduceOpName;
  axisAttr: 'axis' | 'reductionIndices';
  /** Output dtype for a native input dtype, or null where the addon does not take it. */
  out: (dtype: NativeDType) => NativeDType | null;
  arg?: boolean;
}

function reduceConfig(spec: ReduceSpec): Omit<tf.KernelConfig, 'backendName'> {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as NativeBackend;
    const attrs = (args.attrs ?? {}) as Record<string, unknown>;
    const outDtype = isNativeDType(x.dtype) ? spec.out(x.dtype) : null;
    if (outDtype === null || x.shape.length > MAX_RANK || tf.util.sizeFromShape(x.shape) === 0)
      return cpuKernel(spec.kernelName, args);
    let axes = tf.util.parseAxisParam(attrs[spec.axisAttr] as number | number[], x.shape);
    if (new Set(axes).size !== axes.length) return cpuKernel(spec.kernelName, args);
    if (spec.arg) {
      if (axes.length === 0) return cpuKernel(spec.kernelName, args);
      axes = [axes[0]];
    }
    const kept = x.shape.filter((_, i) => !axes.includes(i));
    const shape = attrs.keepDims && !spec.arg ? tf.backend_util.expandShapeToKeepDim(kept, axes) : kept;
    const xs = hostData(backend, x);
    return nativeOutput(backend, shape, outDtype, (out) => addon.reduce(spec.op, xs, x.shape, axes, out));
  };
  return { kernelName: spec.kernelName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

const intSum = (d: NativeDType): NativeDType => (d === 'float32' ? 'float32' : 'int32');
const same = (d: NativeDType): NativeDType => d;
const boolOnly = (d: NativeDType): NativeDType | null => (d === 'bool' ? 'bool' : null);
const argOut = (d: NativeDType): NativeDType | null => (d === 'bool' ? null : 'int32');

export const sumConfig = reduceConfig({ kernelName: tf.Sum, op: 'sum', axisAttr: 'axis', out: intSum });
export const meanConfig = reduceConfig({ kernelName: tf.Mean, op: 'mean', axisAttr: 'axis', out: () => 'float32' });
// Prod of int32 stays on tfjs's kernel: its double-precision product past 2^53 is not reproducible
// in another order.
export const prodConfig = reduceConfig({
  kernelName: tf.Prod,
  op: 'prod',
  axisAttr: 'axis',
  out: (d) => (d === 'float32' ? 'float32' : null),
});
export const maxConfig = reduceConfig({ kernelName: tf.Max, op: 'max', axisAttr: 'reductionIndices', out: same });
export const minConfig = reduceConfig({ kernelName: tf.Min, op: 'min', axisAttr: 'axis', out: same });
export const anyConfig = reduceConfig({ kernelName: tf.Any, op: 'any', axisAttr: 'axis', out: boolOnly });
export const allConfig = reduceConfig({ kernelName: tf.All, op: 'all', axisAttr: 'axis', out: boolOnly });
export const argMaxConfig = reduceConfig({ kernelName: tf.ArgMax, op: 'argMax', axisAttr: 'axis', out: argOut, arg: true });
export const argMinConfig = reduceConfig({ kernelName: tf.ArgMin, op: 'argMin', axisAttr: 'axis', out: argOut, arg: true });

export const reduceConfigs = [
  sumConfig,
  meanConfig,
  prodConfig,
  maxConfig,
  minConfig,
  anyConfig,
  allConfig,
  argMaxConfig,
  argMinConfig,
];
