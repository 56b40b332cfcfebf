// Profile mode of the 'cuda' backend (src/backend/profile.ts): calls and wall time per kernel, on the
// device ('cuda') or 'cpu fallback' (download, tfjs's CPU kernel, upload). cudaProfile.start() /
// stop(), or FUSED_DISTILL_PROFILE=1. Times are host wall times of the calls: device work is queued
// asynchronously, so a kernel's time shows up where the stream is next synchronised (a read), unless
// the profile is started with { sync: true } (or FUSED_DISTILL_PROFILE_SYNC=1): then each call waits
// for the device, and its time is its device time plus the call's own.
import { cudaDevice } from '../../native';
import { createProfile } from '../profile';

export const cudaProfile = createProfile('cuda backend', () => cudaDevice().synchronize());
