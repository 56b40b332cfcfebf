// The kernels the 'cuda' backend runs on the device, one file per kernel group (as 'native'). Every
// kernel not listed here (and every case a listed one does not take) runs tfjs's CPU kernel on
// downloaded copies (CudaBackend.runCpuKernel).
import { KernelConfig } from '@tensorflow/tfjs';

import { binaryKernelConfigs } from './binary';
import { castConfig } from './cast';
import { concatConfig } from './concat';
import { fillConfig, onesLikeConfig, zerosLikeConfig } from './fill';
import { gatherV2Config } from './gather';
import { batchMatMulConfig, fusedMatMulConfig } from './matmul';
import { padV2Config } from './pad';
import { randomNormalConfig, randomUniformConfig } from './random';
import { rangeConfig } from './range';
import { reduceConfigs } from './reduce';
import { expandDimsConfig, identityConfig, reshapeConfig } from './reshape';
import { sliceConfig } from './slice';
import { logSoftmaxConfig, softmaxKernelConfig } from './softmax';
import { tileConfig } from './tile';
import { transposeConfig } from './transpose';
import { unaryKernelConfigs } from './unary';
import { unpackConfig } from './unpack';
import { scatterNdConfig, unsortedSegmentSumConfig } from './unsorted_segment_sum';

export { RANDOM_NORMAL, RANDOM_UNIFORM } from './random';

export const cudaKernelConfigs: Array<Omit<KernelConfig, 'backendName'>> = [
  // matrix products (cuBLAS)
  batchMatMulConfig,
  fusedMatMulConfig,
  // elementwise
  ...binaryKernelConfigs,
  ...unaryKernelConfigs,
  castConfig,
  fillConfig,
  zerosLikeConfig,
  onesLikeConfig,
  // reductions, softmax and layout
  ...reduceConfigs,
  softmaxKernelConfig,
  logSoftmaxConfig,
  transposeConfig,
  sliceConfig,
  concatConfig,
  tileConfig,
  padV2Config,
  unpackConfig,
  gatherV2Config,
  unsortedSegmentSumConfig,
  scatterNdConfig,
  // no data movement / creation from attributes
  reshapeConfig,
  identityConfig,
  expandDimsConfig,
  rangeConfig,
  randomUniformConfig,
  randomNormalConfig,
];
