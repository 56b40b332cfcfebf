// The kernels the 'native' backend runs in the addon, one file each (like tfjs's own backends).
// Every kernel not listed here runs tfjs's CPU implementation on the same memory.
import { KernelConfig } from '@tensorflow/tfjs';

import { batchMatMulConfig, fusedMatMulConfig } from './matmul';

export const nativeKernelConfigs: Array<Omit<KernelConfig, 'backendName'>> = [
  // matmul.ts
  batchMatMulConfig,
  fusedMatMulConfig,
];
