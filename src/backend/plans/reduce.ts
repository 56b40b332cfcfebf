// Decisions of the reduction kernels (Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin), shared
// by the 'native' and 'cuda' backends. Attributes, output dtypes and shapes are tfjs's: Sum of
// int32/bool is int32, Mean is float32, Max/Min keep the dtype, keepDims keeps size-1 axes,
// ArgMax/ArgMin take one axis (the first given) and return int32. Cases the addon does not take
// (other dtypes, an empty x, duplicate axes, ranks above shapeMaxRank()) plan null.
import * as tf from '@tensorflow/tfjs';

import type { ReduceOpName } from '../../native';
import { isNumericDType, NumericDType } from './elementwise';
import { shapeMaxRank } from './layout';

export interface ReduceSpec {
  kernelName: string;
  op: ReduceOpName;
  axisAttr: 'axis' | 'reductionIndices';
  /** Output dtype for an input dtype, or null where the addon does not take it. */
  out: (dtype: NumericDType) => NumericDType | null;
  arg?: boolean;
}

const intSum = (d: NumericDType): NumericDType => (d === 'float32' ? 'float32' : 'int32');
const same = (d: NumericDType): NumericDType => d;
const boolOnly = (d: NumericDType): NumericDType | null => (d === 'bool' ? 'bool' : null);
const argOut = (d: NumericDType): NumericDType | null => (d === 'bool' ? null : 'int32');

export const REDUCE_SPECS: ReduceSpec[] = [
  { kernelName: tf.Sum, op: 'sum', axisAttr: 'axis', out: intSum },
  { kernelName: tf.Mean, op: 'mean', axisAttr: 'axis', out: () => 'float32' },
  // Prod of int32 stays on tfjs's kernel: its double-precision product past 2^53 is not reproducible
  // in another order.
  { kernelName: tf.Prod, op: 'prod', axisAttr: 'axis', out: (d) => (d === 'float32' ? 'float32' : null) },
  { kernelName: tf.Max, op: 'max', axisAttr: 'reductionIndices', out: same },
  { kernelName: tf.Min, op: 'min', axisAttr: 'axis', out: same },
  { kernelName: tf.Any, op: 'any', axisAttr: 'axis', out: boolOnly },
  { kernelName: tf.All, op: 'all', axisAttr: 'axis', out: boolOnly },
  { kernelName: tf.ArgMax, op: 'argMax', axisAttr: 'axis', out: argOut, arg: true },
  { kernelName: tf.ArgMin, op: 'argMin', axisAttr: 'axis', out: argOut, arg: true },
];

export interface ReducePlan {
  axes: number[];
  shape: number[];
  outDtype: NumericDType;
}

export function reducePlan(spec: ReduceSpec, x: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined): ReducePlan | null {
  const a = (attrs ?? {}) as Record<string, unknown>;
  const outDtype = isNumericDType(x.dtype) ? spec.out(x.dtype) : null;
  if (outDtype === null || x.shape.length > shapeMaxRank() || tf.util.sizeFromShape(x.shape) === 0) return null;
  let axes = tf.util.parseAxisParam(a[spec.axisAttr] as number | number[], x.shape);
  if (new Set(axes).size !== axes.length) return null;
  if (spec.arg) {
    if (axes.length === 0) return null;
    axes = [axes[0]];
  }
  const kept = x.shape.filter((_, i) => !axes.includes(i));
  const shape = a.keepDims && !spec.arg ? tf.backend_util.expandShapeToKeepDim(kept, axes) : kept;
  return { axes, shape, outDtype };
}
