// fused-distill: fused distillation-loss kernels (C++ on the CPU, CUDA on the GPU) as TensorFlow.js
// ops for distilling cross-encoder rankers.
import { addon } from './native';

export * as losses from './losses';
export * as evaluation from './eval';
export * as data from './data';
export * as models from './models';
export * as nn from './nn';
export { NativeBackend } from './backend/native/backend';
export { NATIVE_BACKEND, registerNativeBackend, nativeKernelNames } from './backend/native/register';
export { nativeProfile } from './backend/native/profile';
export { CudaBackend } from './backend/cuda/backend';
export { CUDA_BACKEND, registerCudaBackend, cudaKernelNames, cudaAvailable } from './backend/cuda/register';
export { cudaProfile } from './backend/cuda/profile';
export type { KernelStat, KernelImpl, KernelProfile } from './backend/profile';
export {
  MATMUL_PRECISION_FLAG,
  MATMUL_PRECISIONS,
  BACKEND_PRECISIONS,
  matmulPrecision,
  setMatmulPrecision,
  bf16PathNote,
} from './backend/precision';
export type { MatmulPrecision } from './backend/precision';
export * as distill from './distill';
export * as distributed from './distributed';
export * as suite from './suite';
export * as report from './report';
export { FusedDistillError } from './ops/validate';
import { registerNativeBackend } from './backend/native/register';
import { registerCudaBackend } from './backend/cuda/register';
// Registered, not selected: tf.setBackend('native'), or import 'fused-distill/dist/backend' to make it current.
registerNativeBackend();
// 'cuda' only where a device answers (never throws): tf.setBackend('cuda').
registerCudaBackend();
export { TERM_NAMES, addon, addonLoadError } from './native';
export type { TermName, Addon, AddonConstants, CudaApi, DeviceBuffer, NcclApi } from './native';

/** Threads the CPU kernels use (results do not depend on it). Default: the core count, or
 *  FUSED_DISTILL_NUM_THREADS. */
export function setNumThreads(n: number): void {
  addon.setNumThreads(n);
}
export function getNumThreads(): number {
  return addon.getNumThreads();
}
/** The device API: buffers on the GPU and every loss on them (throws without a CUDA build/device). */
export const cuda = addon.cuda;
