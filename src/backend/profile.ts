// Profile mode of this package's backends ('native', 'cuda'): calls and wall time per kernel name,
// and whether the kernel ran in the backend's own code or fell back to tfjs's CPU implementation, so
// the next hot spot is visible. One profile per backend (createProfile); off by default (one branch
// per kernel call); on with profile.start() or FUSED_DISTILL_PROFILE=1, which prints each profile
// that counted something to stderr when the process exits.
import type { KernelFunc } from '@tensorflow/tfjs';

export type { KernelFunc };

/** 'native' / 'cuda': the backend's own kernel; 'cpu fallback': tfjs's CPU kernel. */
export type KernelImpl = 'native' | 'cuda' | 'cpu fallback';

export interface KernelStat {
  kernel: string;
  impl: KernelImpl;
  calls: number;
  ms: number;
}

export interface KernelProfile {
  /**
   * Clears the counters and starts counting. With `sync` (where the backend has asynchronous work, the
   * 'cuda' backend) every kernel call waits for the device before and after it, so each kernel's time
   * includes its device work: slower, but the time lands on the kernel that queued it.
   */
  start(options?: { sync?: boolean }): void;
  /** Stops counting and returns the counters, most time first. */
  stop(): KernelStat[];
  readonly enabled: boolean;
  stats(): KernelStat[];
  /** Names of the kernels that ran on the CPU fallback. */
  fallbacks(): string[];
  /** A Markdown table of the counters. */
  report(): string;
  /** kernelFunc wrapped to record its calls and time while this profile is on. */
  wrap(kernel: string, impl: KernelImpl, kernelFunc: KernelFunc): KernelFunc;
  /** Records one call of `kernel` by `impl` that took `ms` (no-op while off). */
  record(kernel: string, impl: KernelImpl, ms: number): void;
}

const profiles: Array<{ label: string; profile: KernelProfile }> = [];

/** A profile for one backend; `label` names it in the exit report. */
export function createProfile(label: string, synchronize?: () => void): KernelProfile {
  let enabled = false;
  let sync: (() => void) | null = null;
  const stats = new Map<string, KernelStat>();
  const profile: KernelProfile = {
    start(options) {
      stats.clear();
      sync = options?.sync && synchronize ? synchronize : null;
      enabled = true;
    },
    stop() {
      enabled = false;
      return profile.stats();
    },
    get enabled() {
      return enabled;
    },
    stats() {
      return [...stats.values()].map((s) => ({ ...s })).sort((a, b) => b.ms - a.ms);
    },
    fallbacks() {
      return profile
        .stats()
        .filter((s) => s.impl === 'cpu fallback')
        .map((s) => s.kernel);
    },
    report() {
      const rows = profile.stats();
      const total = rows.reduce((a, s) => a + s.ms, 0) || 1;
      const lines = ['| kernel | impl | calls | ms | % | µs/call |', '|---|---|---:|---:|---:|---:|'];
      for (const s of rows)
        lines.push(
          `| ${s.kernel} | ${s.impl} | ${s.calls} | ${s.ms.toFixed(2)} | ${((100 * s.ms) / total).toFixed(1)} | ${((1000 * s.ms) / s.calls).toFixed(1)} |`,
        );
      return lines.join('\n');
    },
    wrap(kernel, impl, kernelFunc) {
      return (args) => {
        if (!enabled) return kernelFunc(args);
        sync?.();
        const start = performance.now();
        try {
          return kernelFunc(args);
        } finally {
          sync?.();
          profile.record(kernel, impl, performance.now() - start);
        }
      };
    },
    // Keyed by kernel and impl: a backend's kernel that hands one case to the CPU fallback shows twice.
    record(kernel, impl, ms) {
      if (!enabled) return;
      const key = `${kernel}\u0000${impl}`;
      let s = stats.get(key);
      if (!s) stats.set(key, (s = { kernel, impl, calls: 0, ms: 0 }));
      s.calls += 1;
      s.ms += ms;
    },
  };
  profiles.push({ label, profile });
  if (process.env.FUSED_DISTILL_PROFILE === '1')
    profile.start({ sync: process.env.FUSED_DISTILL_PROFILE_SYNC === '1' });
  return profile;
}

if (process.env.FUSED_DISTILL_PROFILE === '1') {
  process.on('exit', () => {
    for (const { label, profile } of profiles)
      if (profile.stats().length > 0) process.stderr.write(`\nfused-distill ${label} profile:\n${profile.report()}\n`);
  });
}
