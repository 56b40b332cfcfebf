// fused-distill: fused distillation-loss kernels (C++ on the CPU, CUDA on the GPU) as TensorFlow.js
// ops for distilling cross-encoder rankers.
import { addon } from './native';

export * as losses from './losses';
export * as evaluation from './eval';
export * as data from './data';
export * as models from './models';
export * as distill from './distill';
export { FusedDistillError } from './losses/validate';
export { TERM_NAMES, addon } from './native';
export type { TermName, Addon, CudaApi, DeviceBuffer } from './native';

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
