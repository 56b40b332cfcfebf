// Registers the 'native' backend with tfjs: every kernel of tfjs's CPU backend (the fallbacks), then
// this package's native kernels over them, each wrapped for the profile mode.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

import '../../losses'; // registers the fused-loss kernels for every backend, 'native' included
import '../../nn'; // the fused layer kernels (LayerNorm, GELU), likewise
import { NativeBackend } from './backend';
import { nativeKernelConfigs } from './kernels';
import { profiled } from './profile';

export const NATIVE_BACKEND = 'native';
// Above tfjs's 'cpu' (1) and 'wasm' (2): where it is registered, it is the best CPU backend.
const PRIORITY = 3;

let registered = false;
const nativeNames = new Set<string>();

/** Registers the backend (idempotent). tf.setBackend('native') then selects it. */
export function registerNativeBackend(): void {
  if (registered) return;
  registered = true;
  tf.registerBackend(NATIVE_BACKEND, () => new NativeBackend(), PRIORITY);

  const native = nativeNames;
  for (const k of nativeKernelConfigs) native.add(k.kernelName);
  // Kernels this package registered for 'native' elsewhere (the fused losses and layers) are native too.
  for (const k of tf.getKernelsForBackend(NATIVE_BACKEND)) {
    tf.unregisterKernel(k.kernelName, NATIVE_BACKEND);
    tf.registerKernel({ ...k, kernelFunc: profiled(k.kernelName, 'native', k.kernelFunc) });
    native.add(k.kernelName);
  }
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (native.has(k.kernelName)) continue;
    tf.registerKernel({
      ...k,
      backendName: NATIVE_BACKEND,
      kernelFunc: profiled(k.kernelName, 'cpu fallback', k.kernelFunc),
    });
  }
  for (const k of nativeKernelConfigs)
    tf.registerKernel({
      ...k,
      backendName: NATIVE_BACKEND,
      kernelFunc: profiled(k.kernelName, 'native', k.kernelFunc),
    });
}

/** Names of the kernels that run in the addon on 'native' (the rest fall back to tfjs's CPU code). */
export function nativeKernelNames(): string[] {
  return [...nativeNames].sort();
}
