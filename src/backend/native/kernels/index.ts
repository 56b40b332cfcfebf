// The kernels the 'native' backend runs in the addon, one file per kernel group (like tfjs's own
// backends). Every kernel not listed here runs tfjs's CPU implementation on the same memory.
import { KernelConfig } from '@tensorflow/tfjs';

import { binaryKernelConfigs } from './binary';
import { castConfig } from './cast';
import { fillConfig, onesLikeConfig, zerosLikeConfig } from './fill';
import { unaryKernelConfigs } from './unary';

export const nativeKernelConfigs: Array<Omit<KernelConfig, 'backendName'>> = [
  ...binaryKernelConfigs,
  ...unaryKernelConfigs,
  castConfig,
  fillConfig,
  zerosLikeConfig,
  onesLikeConfig,
];
