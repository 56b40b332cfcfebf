// Registers the 'cuda' backend with tfjs where the addon has a device (CUDA and a GPU that answers,
// or the host emulation): this package's device kernels, the fused losses' 'cuda' kernels, and every
// other kernel of tfjs's CPU backend as a fallback (download, CPU kernel, upload). Each device kernel
// is wrapped for the profile mode; fallbacks count themselves (CudaBackend.runCpuKernel).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

import '../../losses'; // registers the fused-loss kernels for every backend, 'cuda' included
import '../../nn'; // the fused layer kernels (LayerNorm, GELU), likewise
import { cudaDevice } from '../../native';
import { CudaBackend, TF32_FLAG } from './backend';
import { cudaKernelConfigs } from './kernels';
import { cudaProfile } from './profile';

export const CUDA_BACKEND = 'cuda';
// Registered, never preferred: tfjs picks it only through tf.setBackend('cuda').
const PRIORITY = 0;

let registered = false;
const deviceNames = new Set<string>();

/** Whether the addon has the device surface and a device (or its emulation) answers; never throws. */
export function cudaAvailable(): boolean {
  try {
    const dev = cudaDevice();
    return typeof dev.binaryOp === 'function' && dev.isAvailable();
  } catch {
    return false;
  }
}

/**
 * Registers the backend where a device answers (idempotent) and returns whether it is registered:
 * false, and nothing registered, on a machine without CUDA. tf.setBackend('cuda') then selects it.
 */
export function registerCudaBackend(): boolean {
  if (registered) return true;
  if (!cudaAvailable()) return false;
  registered = true;
  // tf.env().set(TF32_FLAG, true): sgemm on TF32 tensor cores from then on (default: fp32).
  tf.env().registerFlag(
    TF32_FLAG,
    () => false,
    (on) => cudaDevice().setTF32(Boolean(on)),
  );
  tf.registerBackend(CUDA_BACKEND, () => new CudaBackend(), PRIORITY);

  for (const k of cudaKernelConfigs) deviceNames.add(k.kernelName);
  // Kernels this package registered for 'cuda' elsewhere (the fused losses) run on the device too.
  for (const k of tf.getKernelsForBackend(CUDA_BACKEND)) {
    tf.unregisterKernel(k.kernelName, CUDA_BACKEND);
    tf.registerKernel({ ...k, kernelFunc: cudaProfile.wrap(k.kernelName, 'cuda', k.kernelFunc) });
    deviceNames.add(k.kernelName);
  }
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (deviceNames.has(k.kernelName)) continue;
    const name = k.kernelName;
    tf.registerKernel({
      kernelName: name,
      backendName: CUDA_BACKEND,
      kernelFunc: (args) => (args.backend as CudaBackend).runCpuKernel(name, args),
    });
  }
  for (const k of cudaKernelConfigs)
    tf.registerKernel({
      ...k,
      backendName: CUDA_BACKEND,
      kernelFunc: cudaProfile.wrap(k.kernelName, 'cuda', k.kernelFunc),
    });
  return true;
}

/** Names of the kernels that run on the device on 'cuda' (the rest fall back to tfjs's CPU code). */
export function cudaKernelNames(): string[] {
  return [...deviceNames].sort();
}
