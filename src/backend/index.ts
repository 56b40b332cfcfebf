// The backend entry (`fused-distill/backend`): importing it registers the 'native' backend and makes
// it tfjs's current backend. Importing the main entry only registers it (tf.setBackend('native')).
import * as tf from '@tensorflow/tfjs';

import { registerNativeBackend } from './native/register';

registerNativeBackend();
tf.setBackend('native');

export { NativeBackend } from './native/backend';
export { NATIVE_BACKEND, registerNativeBackend, nativeKernelNames } from './native/register';
export { nativeProfile } from './native/profile';
export type { KernelStat, KernelImpl } from './native/profile';
