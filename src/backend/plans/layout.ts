// Shape and attribute decisions of the softmax and layout kernels (Softmax, Transpose, Slice, Concat,
// Tile, GatherV2, UnsortedSegmentSum), shared by the 'native' and 'cuda' backends: tfjs's own
// parsing and checks (so errors are tfjs's), then either a plan the addon runs or null: the case
// stays on tfjs's CPU kernel (other dtypes, complex64 and strings, empty tensors, ranks above 16).
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../native';
import { isNumericDType, NumericDType } from './elementwise';

/** The addon's shape ops take at most this many axes (kernels/tensor.h kMaxShapeRank, as the addon
 *  exports it; read when a plan is made, so the package imports without the addon). */
export const shapeMaxRank = (): number => addon.constants.shapeMaxRank;

/** Softmax / LogSoftmax over the last axis (dim -1 or rank - 1, the only one tfjs supports). */
export function softmaxPlan(logits: tf.TensorInfo, dim: number | undefined): { rows: number; cols: number } | null {
  const rank = logits.shape.length;
  const size = tf.util.sizeFromShape(logits.shape);
  if (logits.dtype !== 'float32' || rank === 0 || size === 0 || (dim !== -1 && dim !== rank - 1)) return null;
  const cols = logits.shape[rank - 1];
  return { rows: size / cols, cols };
}

function isPermutation(perm: unknown, rank: number): perm is number[] {
  if (!Array.isArray(perm) || perm.length !== rank) return false;
  const seen = new Set<number>();
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen.has(p)) return false;
    seen.add(p);
  }
  return true;
}

/** True when perm keeps the order of the axes larger than 1 (the data does not move). */
export function isOrderPreserving(shape: number[], perm: number[]): boolean {
  let last = -1;
  for (const p of perm) {
    if (shape[p] === 1) continue;
    if (p < last) return false;
    last = p;
  }
  return true;
}

/** A permutation that only moves size-1 axes changes no memory order: `share` (as Reshape does). */
export function transposePlan(
  x: tf.TensorInfo,
  perm: unknown,
): { shape: number[]; perm: number[]; share: boolean } | null {
  const rank = x.shape.length;
  if (
    !isNumericDType(x.dtype) ||
    rank > shapeMaxRank() ||
    !isPermutation(perm, rank) ||
    tf.util.sizeFromShape(x.shape) === 0
  )
    return null;
  return { shape: perm.map((p) => x.shape[p]), perm, share: isOrderPreserving(x.shape, perm) };
}

/** Slice (begin/size, size -1 = to the end); `contiguous`: the slice is one range of x's memory (or empty). */
export function slicePlan(
  x: tf.TensorInfo,
  begin: number | number[],
  size: number | number[],
): { begin: number[]; size: number[]; contiguous: boolean } | null {
  if (!isNumericDType(x.dtype) || x.shape.length > shapeMaxRank()) return null;
  const [$begin, $size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
  tf.slice_util.assertParamsValid(x as unknown as tf.Tensor, $begin, $size);
  return { begin: $begin, size: $size, contiguous: tf.slice_util.isSliceContinous(x.shape, $begin, $size) };
}

/**
 * PadV2 with a constant: the per-axis padding before and after, the output shape and the value; null
 * where the addon does not take it (other dtypes, rank 0 or above 16, paddings not one pair of
 * non-negative integers per axis: tfjs's kernel then decides).
 */
export function padPlan(
  x: tf.TensorInfo,
  attrs: unknown,
): { before: number[]; after: number[]; outShape: number[]; value: number } | null {
  const { paddings, constantValue } = (attrs ?? {}) as { paddings?: unknown; constantValue?: unknown };
  const rank = x.shape.length;
  if (!isNumericDType(x.dtype) || rank === 0 || rank > shapeMaxRank() || typeof constantValue !== 'number') return null;
  if (!Array.isArray(paddings) || paddings.length !== rank) return null;
  const pairs = paddings as unknown[];
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  if (!pairs.every((p) => Array.isArray(p) && p.length === 2 && ok(p[0]) && ok(p[1]))) return null;
  const before = pairs.map((p) => (p as number[])[0]);
  const after = pairs.map((p) => (p as number[])[1]);
  return { before, after, outShape: x.shape.map((d, i) => d + before[i] + after[i]), value: constantValue };
}

/** Concat along `axis` of one numeric dtype: the output shape and the inputs with data (mixed dtypes stay tfjs's). */
export function concatPlan(
  inputs: tf.TensorInfo[],
  axis: number,
): { axis: number; outShape: number[]; nonEmpty: tf.TensorInfo[] } | null {
  const first = inputs[0];
  const $axis = tf.util.parseAxisParam(axis, first.shape)[0];
  const shapes = inputs.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, $axis);
  const outShape = tf.backend_util.computeOutShape(shapes, $axis);
  const nonEmpty = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (
    !isNumericDType(first.dtype) ||
    inputs.some((t) => t.dtype !== first.dtype) ||
    first.shape.length > shapeMaxRank()
  )
    return null;
  return { axis: $axis, outShape, nonEmpty };
}

export function tilePlan(x: tf.TensorInfo, reps: unknown): { shape: number[]; reps: number[] } | null {
  const rank = x.shape.length;
  if (
    !isNumericDType(x.dtype) ||
    rank > shapeMaxRank() ||
    !Array.isArray(reps) ||
    reps.length !== rank ||
    !reps.every((r) => Number.isInteger(r) && r >= 0)
  )
    return null;
  const shape = x.shape.map((d, i) => d * (reps as number[])[i]);
  if (tf.util.sizeFromShape(shape) === 0) return null;
  return { shape, reps: reps as number[] };
}

/** GatherV2 as x viewed [batch, outer, dim, slice] (dims) and indices [batch, n]. */
export function gatherPlan(
  x: tf.TensorInfo,
  indices: tf.TensorInfo,
  axis: number,
  batchDims: number | undefined,
): { axis: number; dims: number[]; outShape: number[]; dtype: NumericDType } | null {
  if (
    !isNumericDType(x.dtype) ||
    indices.dtype !== 'int32' ||
    x.shape.length > shapeMaxRank() ||
    tf.util.sizeFromShape(x.shape) === 0 ||
    tf.util.sizeFromShape(indices.shape) === 0
  )
    return null;
  const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0];
  let info: ReturnType<typeof tf.backend_util.segment_util.collectGatherOpShapeInfo>;
  try {
    info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as unknown as tf.Tensor,
      indices as unknown as tf.Tensor,
      parsedAxis,
      batchDims ?? 0,
    );
  } catch {
    return null; // tfjs's error, from its own kernel
  }
  if (tf.util.sizeFromShape(info.outputShape) === 0) return null;
  return {
    axis: parsedAxis,
    dims: [info.batchSize, info.outerSize, info.dimSize, info.sliceSize],
    outShape: info.outputShape,
    dtype: x.dtype,
  };
}

/** UnsortedSegmentSum of float32 x [rows, ...] by int32 ids [rows] into [numSegments, ...]. */
export function segmentSumPlan(
  x: tf.TensorInfo,
  segmentIds: tf.TensorInfo,
  numSegments: number,
): { rows: number; cols: number; shape: number[] } | null {
  const rows = x.shape[0];
  if (
    x.dtype !== 'float32' ||
    segmentIds.dtype !== 'int32' ||
    x.shape.length < 1 ||
    segmentIds.shape.length !== 1 ||
    segmentIds.shape[0] !== rows ||
    !Number.isInteger(numSegments) ||
    numSegments < 1 ||
    tf.util.sizeFromShape(x.shape) === 0
  )
    return null;
  return { rows, cols: tf.util.sizeFromShape(x.shape) / rows, shape: [numSegments, ...x.shape.slice(1)] };
}

/**
 * ScatterNd of float32 updates by int32 indices [numUpdates, sliceRank] into `shape`, as a segment sum:
 * each update row (sliceSize floats) adds into flat output row sum_k index[k] * strides[k] of
 * outRows. Null for the cases left to tfjs's kernel (other dtypes, empty shapes).
 */
export function scatterNdPlan(
  indices: tf.TensorInfo,
  updates: tf.TensorInfo,
  shape: number[],
): { sliceRank: number; numUpdates: number; sliceSize: number; strides: number[]; outRows: number } | null {
  const outSize = tf.util.sizeFromShape(shape);
  if (
    updates.dtype !== 'float32' ||
    indices.dtype !== 'int32' ||
    outSize === 0 ||
    tf.util.sizeFromShape(updates.shape) === 0 ||
    indices.shape.length < 1
  )
    return null;
  const { sliceRank, numUpdates, sliceSize, strides } = tf.backend_util.calculateShapes(
    updates as unknown as tf.Tensor,
    indices as unknown as tf.Tensor,
    shape,
  );
  if (numUpdates === 0) return null;
  return { sliceRank, numUpdates, sliceSize, strides, outRows: outSize / sliceSize };
}
