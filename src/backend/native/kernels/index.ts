// The kernels the 'native' backend runs in the addon, one file each (like tfjs's own backends).
// Every kernel not listed here runs tfjs's CPU implementation on the same memory.
import { KernelConfig } from '@tensorflow/tfjs';

import { concatConfig } from './concat';
import { gatherV2Config } from './gather';
import { reduceConfigs } from './reduce';
import { sliceConfig } from './slice';
import { softmaxConfig } from './softmax';
import { tileConfig } from './tile';
import { transposeConfig } from './transpose';
import { unsortedSegmentSumConfig } from './unsorted_segment_sum';

export const nativeKernelConfigs: Array<Omit<KernelConfig, 'backendName'>> = [
  // reductions, softmax and layout (kernels/cpu/shape_*.cpp)
  ...reduceConfigs,
  softmaxConfig,
  transposeConfig,
  sliceConfig,
  concatConfig,
  tileConfig,
  gatherV2Config,
  unsortedSegmentSumConfig,
];
