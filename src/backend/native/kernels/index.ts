// The kernels the 'native' backend runs in the addon, one file per kernel group (like tfjs's own
// backends). Every kernel not listed here runs tfjs's CPU implementation on the same memory.
import { KernelConfig } from '@tensorflow/tfjs';

import { binaryKernelConfigs } from './binary';
import { castConfig } from './cast';
import { concatConfig } from './concat';
import { fillConfig, onesLikeConfig, zerosLikeConfig } from './fill';
import { gatherV2Config } from './gather';
import { batchMatMulConfig, fusedMatMulConfig } from './matmul';
import { padV2Config } from './pad';
import { reduceConfigs } from './reduce';
import { sliceConfig } from './slice';
import { softmaxConfig } from './softmax';
import { tileConfig } from './tile';
import { transposeConfig } from './transpose';
import { unaryKernelConfigs } from './unary';
import { scatterNdConfig, unsortedSegmentSumConfig } from './unsorted_segment_sum';

export const nativeKernelConfigs: Array<Omit<KernelConfig, 'backendName'>> = [
  // matrix products (kernels/cpu/sgemm.cpp)
  batchMatMulConfig,
  fusedMatMulConfig,
  // elementwise (kernels/cpu/elementwise_*.cpp)
  ...binaryKernelConfigs,
  ...unaryKernelConfigs,
  castConfig,
  fillConfig,
  zerosLikeConfig,
  onesLikeConfig,
  // reductions, softmax and layout (kernels/cpu/reduce.cpp, softmax.cpp, layout.cpp)
  ...reduceConfigs,
  softmaxConfig,
  transposeConfig,
  sliceConfig,
  padV2Config,
  concatConfig,
  tileConfig,
  gatherV2Config,
  unsortedSegmentSumConfig,
  scatterNdConfig,
];
