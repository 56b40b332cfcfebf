// Profile mode of the 'native' backend (src/backend/profile.ts): calls and wall time per kernel,
// native or 'cpu fallback'. nativeProfile.start() / stop(), or FUSED_DISTILL_PROFILE=1.
import { createProfile, KernelFunc, KernelImpl } from '../profile';

export type { KernelImpl, KernelStat } from '../profile';

export const nativeProfile = createProfile('native backend');

/** kernelFunc wrapped to record its calls and time while the native profile is on. */
export function profiled(kernel: string, impl: KernelImpl, kernelFunc: KernelFunc): KernelFunc {
  return nativeProfile.wrap(kernel, impl, kernelFunc);
}
