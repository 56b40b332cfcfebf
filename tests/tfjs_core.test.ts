// tfjs-core's own op test suite (the *_test.js files in @tensorflow/tfjs-core's dist/, jasmine)
// against the 'native' backend, in a child process per variant so that jasmine's globals never meet
// jest's: tests/tfjs_core/run.js does the work and exits non-zero on any failure that
// tests/tfjs_core/known_failures.json does not list, or on a listed one that passes. The variants:
//   native      the backend as registered (native kernels, tfjs's CPU kernels as fallbacks);
//   native-mem  the same with every tensor's data in addon memory (the backend's memory plumbing
//               under every op of the suite);
//   cuda        this package's device backend: on the GPU where one answers, else on the addon's host
//               emulation of the device (FUSED_DISTILL_EMULATE_DEVICE=1 in the child's environment);
//   cpu         stock tfjs 'cpu', the baseline the known failures are checked against.
// TFJS_TEST_BACKEND=native (a comma list) runs fewer. Each variant takes ~15-25 s on 2 cores.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { cudaAvailable } from '../src/backend/cuda/register';

const ROOT = path.resolve(__dirname, '..');
const RUNNER = path.join(ROOT, 'tests', 'tfjs_core', 'run.js');
const VARIANTS = (process.env.TFJS_TEST_BACKEND ?? 'native,native-mem,cuda,cpu')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

interface Summary {
  ok: boolean;
  seconds: number;
  totals: {
    specs: number;
    run: number;
    passed: number;
    failed: number;
    knownFailures: number;
    pending: number;
    excluded: number;
  };
  unexpectedFailures: string[];
  knownFailuresNowPassing: string[];
  knownFailuresMissing: string[];
}

function runVariant(variant: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // Without a GPU, 'cuda' runs on the addon's host emulation of the device.
    const env =
      variant === 'cuda' && !cudaAvailable() ? { ...process.env, FUSED_DISTILL_EMULATE_DEVICE: '1' } : process.env;
    const child = spawn(process.execPath, [RUNNER, '--backend', variant], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe("tfjs-core's op test suite (tests/tfjs_core/run.js)", () => {
  for (const variant of VARIANTS) {
    it(`passes on '${variant}' but for known_failures.json`, async () => {
      const resultsFile = path.join(ROOT, 'tests', 'tfjs_core', `results-${variant}.json`);
      const startedAt = Date.now();
      const { code, output } = await runVariant(variant);
      // A results file from an earlier run must not stand in for this one.
      const fresh = fs.existsSync(resultsFile) && fs.statSync(resultsFile).mtimeMs >= startedAt - 1000;
      if (code !== 0 || !fresh) throw new Error(`run.js --backend ${variant} exited ${code}:\n${output.slice(-8000)}`);
      const s = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as Summary;
      const t = s.totals;
      console.log(
        `tfjs-core op suite on '${variant}': ${t.specs} specs, ran ${t.run}, passed ${t.passed}, failed ${t.failed} ` +
          `(all known: ${t.knownFailures}), pending ${t.pending}, excluded ${t.excluded} — ${s.seconds} s`,
      );
      expect(s.ok).toBe(true);
      expect(s.unexpectedFailures).toEqual([]);
      expect(s.knownFailuresNowPassing).toEqual([]);
      expect(s.knownFailuresMissing).toEqual([]);
      // The suite really ran (a broken loader would load nothing and fail nothing).
      expect(t.run).toBeGreaterThan(4000);
    }, 600_000);
  }
});
