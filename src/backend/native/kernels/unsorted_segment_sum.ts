// UnsortedSegmentSum, what tfjs's gather gradient scatters into an embedding table with. tfjs's CPU
// kernel makes one masked full pass over x per segment (30522 passes for a BERT vocabulary); this one
// sorts the rows by segment once and sums each segment's rows in order, in double
// (kernels/cpu/layout.cpp): deterministic for any thread count. Ids outside [0, numSegments)
// are dropped, as tfjs drops them. One difference: tfjs multiplies every row by its 0/1 mask, so a NaN
// or Inf anywhere in x spreads NaN into every segment; here it stays in its own segment.
// Other dtypes, segmentIds that are not one id per row of x, and numSegments < 1 run tfjs's kernel.
// ScatterNd (the cross-encoder's embedding gradient, src/models/cross_encoder.ts embeddingLookup) is
// the same sum: each update row added into its flat output row, duplicates summed.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../../../native';
import { scatterNdPlan, segmentSumPlan } from '../../plans/layout';
import { NativeBackend } from '../backend';
import { cpuKernel, hostData, KernelArgs, nativeOutput } from './shape_common';

function unsortedSegmentSum(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const segmentIds = args.inputs.segmentIds as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { numSegments } = (args.attrs ?? {}) as { numSegments: number };
  const plan = segmentSumPlan(x, segmentIds, numSegments);
  if (plan === null) return cpuKernel(tf.UnsortedSegmentSum, args);
  const xs = backend.floats(x);
  const ids = hostData(backend, segmentIds) as Int32Array;
  return nativeOutput(backend, plan.shape, 'float32', (out) =>
    addon.unsortedSegmentSum(xs, plan.rows, plan.cols, ids, numSegments, out as Float32Array),
  );
}

// ScatterNd (plans/layout.ts scatterNdPlan): the flat output row of each update computed here,
// checked as tfjs's CPU kernel checks it (same error), then the segment sum.
function scatterNd(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const indices = args.inputs.indices as tf.TensorInfo;
  const updates = args.inputs.updates as tf.TensorInfo;
  const backend = args.backend as NativeBackend;
  const { shape } = (args.attrs ?? {}) as { shape: number[] };
  const plan = scatterNdPlan(indices, updates, shape);
  if (plan === null) return cpuKernel(tf.ScatterNd, args);
  const { sliceRank, numUpdates, sliceSize, strides, outRows } = plan;
  const idx = hostData(backend, indices) as Int32Array;
  const rows = new Int32Array(numUpdates);
  for (let i = 0; i < numUpdates; i++) {
    let flat = 0;
    for (let j = 0; j < sliceRank; j++) flat += idx[i * sliceRank + j] * strides[j];
    if (flat < 0 || flat >= outRows)
      throw new Error(
        `Invalid indices: ${Array.from(idx.subarray(i * sliceRank, (i + 1) * sliceRank))} does not index into ${shape}`,
      );
    rows[i] = flat;
  }
  const xs = backend.floats(updates);
  return nativeOutput(backend, shape, 'float32', (out) =>
    addon.unsortedSegmentSum(xs, numUpdates, sliceSize, rows, outRows, out as Float32Array),
  );
}

export const scatterNdConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.ScatterNd,
  kernelFunc: scatterNd as unknown as tf.KernelFunc,
};

export const unsortedSegmentSumConfig: Omit<tf.KernelConfig, 'backendName'> = {
  kernelName: tf.UnsortedSegmentSum,
  kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
};
