// Profile mode of the 'native' backend: calls and wall time per kernel name, and whether the kernel
// ran natively or fell back to tfjs's CPU implementation, so the next hot spot is visible. Off by
// default (one branch per kernel call); on with nativeProfile.start() or FUSED_DISTILL_PROFILE=1,
// which prints the table to stderr when the process exits.
import { KernelFunc } from '@tensorflow/tfjs';

export type KernelImpl = 'native' | 'cpu fallback';

export interface KernelStat {
  kernel: string;
  impl: KernelImpl;
  calls: number;
  ms: number;
}

let enabled = false;
const stats = new Map<string, KernelStat>();

/** kernelFunc wrapped to record its calls and time while profiling is on. */
export function profiled(kernel: string, impl: KernelImpl, kernelFunc: KernelFunc): KernelFunc {
  return (args) => {
    if (!enabled) return kernelFunc(args);
    const start = performance.now();
    try {
      return kernelFunc(args);
    } finally {
      const ms = performance.now() - start;
      let s = stats.get(kernel);
      if (!s) stats.set(kernel, (s = { kernel, impl, calls: 0, ms: 0 }));
      s.calls += 1;
      s.ms += ms;
    }
  };
}

export const nativeProfile = {
  /** Clears the counters and starts counting. */
  start(): void {
    stats.clear();
    enabled = true;
  },
  /** Stops counting and returns the counters, most time first. */
  stop(): KernelStat[] {
    enabled = false;
    return nativeProfile.stats();
  },
  get enabled(): boolean {
    return enabled;
  },
  stats(): KernelStat[] {
    return [...stats.values()].map((s) => ({ ...s })).sort((a, b) => b.ms - a.ms);
  },
  /** Names of the kernels that ran on the CPU fallback. */
  fallbacks(): string[] {
    return nativeProfile.stats().filter((s) => s.impl !== 'native').map((s) => s.kernel);
  },
  /** A Markdown table of the counters. */
  report(): string {
    const rows = nativeProfile.stats();
    const total = rows.reduce((a, s) => a + s.ms, 0) || 1;
    const lines = ['| kernel | impl | calls | ms | % | µs/call |', '|---|---|---:|---:|---:|---:|'];
    for (const s of rows)
      lines.push(
        `| ${s.kernel} | ${s.impl} | ${s.calls} | ${s.ms.toFixed(2)} | ${((100 * s.ms) / total).toFixed(1)} | ${((1000 * s.ms) / s.calls).toFixed(1)} |`,
      );
    return lines.join('\n');
  },
};

if (process.env.FUSED_DISTILL_PROFILE === '1') {
  nativeProfile.start();
  process.on('exit', () => process.stderr.write(`\nfused-distill native backend profile:\n${nativeProfile.report()}\n`));
}
