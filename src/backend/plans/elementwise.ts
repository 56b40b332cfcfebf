// Shape, attribute and dtype decisions of the elementwise kernels, shared by the 'native' and 'cuda'
// backends (each then runs the addon's host or device op). A plan of null means: the backend's
// kernel does not take this case, run tfjs's CPU kernel (whose behaviour is the reference).
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../native';

/** Element types the addon's ops take (bool = 1 byte per element). */
export type NumericDType = 'float32' | 'int32' | 'bool';

export function isNumericDType(dtype: tf.DataType): dtype is NumericDType {
  return dtype === 'float32' || dtype === 'int32' || dtype === 'bool';
}

/** Most dims a shape passed to the addon's elementwise ops may have (kernels/elementwise.h kMaxRank,
 *  as the addon exports it; read when a plan is made, so the package imports without the addon). */
export const elementwiseMaxRank = (): number => addon.constants.elementwiseMaxRank;

const COMPARISONS = new Set(['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual']);
const INT32_OPS = new Set([
  'Add',
  'Sub',
  'Multiply',
  'Maximum',
  'Minimum',
  'SquaredDifference',
  'FloorDiv',
  ...COMPARISONS,
]);

/** The input names of a binary kernel: Prelu's are (x, alpha), every other one's (a, b). */
export function binaryInputNames(kernelName: string): [string, string] {
  return kernelName === 'Prelu' ? ['x', 'alpha'] : ['a', 'b'];
}

export interface BinaryPlan {
  /** the element type both inputs are read as */
  dtype: 'float32' | 'int32';
  /** tfjs's cpu output dtype: comparisons give bool, FloorDiv int32, the rest the inputs' dtype */
  outDtype: NumericDType;
  shape: number[];
}

/**
 * float32 inputs (every op) or int32 ones (Add, Sub, Multiply, Maximum, Minimum, SquaredDifference,
 * FloorDiv, comparisons); mixed or other dtypes (tfjs's ops cast before the kernel, so this is rare),
 * complex64 and ranks above elementwiseMaxRank(): null. Throws tfjs's error for shapes that do not broadcast.
 */
export function binaryPlan(kernelName: string, a: tf.TensorInfo, b: tf.TensorInfo): BinaryPlan | null {
  const dtype =
    a.dtype === 'float32' && b.dtype === 'float32'
      ? 'float32'
      : a.dtype === 'int32' && b.dtype === 'int32' && INT32_OPS.has(kernelName)
        ? 'int32'
        : null;
  if (dtype === null || a.shape.length > elementwiseMaxRank() || b.shape.length > elementwiseMaxRank()) return null;
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const outDtype = COMPARISONS.has(kernelName) ? 'bool' : kernelName === 'FloorDiv' ? 'int32' : dtype;
  return { dtype, outDtype, shape };
}

const BOOL_OUT = new Set(['IsNan', 'IsInf', 'IsFinite']);

export interface UnaryPlan {
  outDtype: 'float32' | 'bool';
  /** the op's numeric attributes as the addon's p0, p1 */
  p0: number;
  p1: number;
}

/** float32 input only (other dtypes' output dtypes differ kernel by kernel in tfjs): else null. */
export function unaryPlan(kernelName: string, x: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined): UnaryPlan | null {
  if (x.dtype !== 'float32') return null;
  const a = (attrs ?? {}) as Record<string, number>;
  let [p0, p1] = [0, 0];
  if (kernelName === 'LeakyRelu' || kernelName === 'Step') p0 = a.alpha;
  else if (kernelName === 'ClipByValue') [p0, p1] = [a.clipValueMin, a.clipValueMax];
  if (typeof p0 !== 'number' || typeof p1 !== 'number') return null;
  return { outDtype: BOOL_OUT.has(kernelName) ? 'bool' : 'float32', p0, p1 };
}

/**
 * Cast between float32, int32 and bool, as tfjs's cpu Cast: float -> int32 truncates toward zero
 * (JS ToInt32), -> bool is x != 0 (NaN gives true). 'identity' when the dtype does not change (the
 * output shares the input's data), null for complex64 and string.
 */
export function castPlan(x: tf.TensorInfo, dtype: tf.DataType): 'identity' | 'convert' | null {
  if (!isNumericDType(x.dtype) || !isNumericDType(dtype)) return null;
  return x.dtype === dtype ? 'identity' : 'convert';
}

export interface FillPlan {
  shape: number[];
  dtype: NumericDType;
  value: number;
}

/** Fill with a number value of dtype float32 or int32 (tfjs infers it from the value when absent). */
export function fillPlan(attrs: tf.NamedAttrMap | undefined): FillPlan | null {
  const { shape, value, dtype } = (attrs ?? {}) as unknown as {
    shape: number[];
    value: number | string;
    dtype?: tf.DataType;
  };
  const $dtype = dtype || tf.util.inferDtype(value);
  if (typeof value !== 'number' || ($dtype !== 'float32' && $dtype !== 'int32')) return null;
  return { shape, dtype: $dtype, value };
}

/** ZerosLike / OnesLike of a numeric tensor. */
export function likePlan(x: tf.TensorInfo, value: number): FillPlan | null {
  return isNumericDType(x.dtype) ? { shape: x.shape, dtype: x.dtype, value } : null;
}
