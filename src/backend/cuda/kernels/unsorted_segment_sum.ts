// UnsortedSegmentSum on the device (cuda.unsortedSegmentSum: ids outside [0, numSegments) dropped),
// and ScatterNd on top of it: the scatter-add of the cross-encoder's embedding gradient
// (src/models/cross_encoder.ts embeddingLookup) is a segment sum of the update rows by their flat
// output row. ScatterNd's out-of-range indices are dropped here, where tfjs's CPU kernel throws.
import * as tf from '@tensorflow/tfjs';

import { addon, cudaDevice } from '../../../native';
import { scatterNdPlan, segmentSumPlan } from '../../plans/layout';
import type { CudaBackend } from '../backend';
import { CudaKernelConfig, fallback } from './util';

export const unsortedSegmentSumConfig: CudaKernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  kernelFunc: (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const segmentIds = args.inputs.segmentIds as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const { numSegments } = (args.attrs ?? {}) as unknown as { numSegments: number };
    const plan = segmentSumPlan(x, segmentIds, numSegments);
    if (plan === null) return fallback(tf.UnsortedSegmentSum, args);
    return backend.output(plan.shape, 'float32', (out) =>
      cudaDevice().unsortedSegmentSum(backend.buf(x), plan.rows, plan.cols, backend.buf(segmentIds), numSegments, out),
    );
  },
};

export const scatterNdConfig: CudaKernelConfig = {
  kernelName: tf.ScatterNd,
  kernelFunc: (args) => {
    const indices = args.inputs.indices as tf.TensorInfo;
    const updates = args.inputs.updates as tf.TensorInfo;
    const backend = args.backend as CudaBackend;
    const { shape } = (args.attrs ?? {}) as unknown as { shape: number[] };
    const plan = scatterNdPlan(indices, updates, shape);
    if (plan === null) return fallback(tf.ScatterNd, args);
    const { sliceRank, numUpdates, sliceSize, strides, outRows } = plan;
    const dev = cudaDevice();
    // The flat output row of each update: sum_k index[k] * strides[k] (the index itself when sliceRank is 1).
    let rows = backend.buf(indices);
    let temp: { buffers: number[] } | null = null;
    if (sliceRank > 1) {
      const stride = backend.allocBuffer('int32', sliceRank)!;
      const scaled = backend.allocBuffer('int32', numUpdates * sliceRank)!;
      const flat = backend.allocBuffer('int32', numUpdates)!;
      temp = { buffers: [stride, scaled, flat] };
      dev.upload(stride, Int32Array.from(strides.slice(0, sliceRank)));
      dev.binaryOp(addon.mathOps.binary.Multiply, rows, [numUpdates, sliceRank], stride, [sliceRank], scaled);
      dev.reduce('sum', scaled, [numUpdates, sliceRank], [1], flat);
      rows = flat;
    }
    try {
      return backend.output(shape, 'float32', (out) =>
        dev.unsortedSegmentSum(backend.buf(updates), numUpdates, sliceSize, rows, outRows, out),
      );
    } finally {
      if (temp) {
        const [stride, scaled, flat] = temp.buffers;
        backend.releaseBuffer(stride, 'int32', sliceRank);
        backend.releaseBuffer(scaled, 'int32', numUpdates * sliceRank);
        backend.releaseBuffer(flat, 'int32', numUpdates);
      }
    }
  },
};
