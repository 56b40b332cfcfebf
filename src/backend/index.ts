// The backend entry (`fused-distill/dist/backend`): importing it registers the 'native' backend and makes
// it tfjs's current backend, and registers 'cuda' where a device answers (tf.setBackend('cuda')).
// Importing the main entry only registers them.
import * as tf from '@tensorflow/tfjs';

import { registerCudaBackend } from './cuda/register';
import { registerNativeBackend } from './native/register';

registerNativeBackend();
registerCudaBackend();
tf.setBackend('native');

export { NativeBackend } from './native/backend';
export { NATIVE_BACKEND, registerNativeBackend, nativeKernelNames } from './native/register';
export { nativeProfile } from './native/profile';
export { CudaBackend } from './cuda/backend';
export { CUDA_BACKEND, registerCudaBackend, cudaKernelNames, cudaAvailable } from './cuda/register';
export { cudaProfile } from './cuda/profile';
export type { KernelStat, KernelImpl, KernelProfile } from './profile';
export {
  MATMUL_PRECISION_FLAG,
  MATMUL_PRECISIONS,
  BACKEND_PRECISIONS,
  matmulPrecision,
  setMatmulPrecision,
  bf16PathNote,
} from './precision';
export type { MatmulPrecision } from './precision';
