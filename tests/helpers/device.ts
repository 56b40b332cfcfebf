// Where the device suites run. On a CUDA build with a GPU they run against it. Elsewhere the addon
// emulates the device on the host with FUSED_DISTILL_EMULATE_DEVICE=1, which it reads from the real
// environment once per process: jest's sandboxed process.env cannot set it, and another test file
// may already have asked this worker's addon for a device, so such a file runs itself again in a
// child jest with the variable set.
import { spawnSync } from 'child_process';
import * as path from 'path';

import { addon } from './addon';

export const EMULATED = process.env.FUSED_DISTILL_EMULATE_DEVICE === '1';
/** A device answers here: a GPU, or the host emulation. */
export const ON_DEVICE = addon.cuda.isAvailable();

/**
 * True when `file`'s device tests should be defined in this process. Otherwise defines the one test
 * that runs `file` in a child jest under the host emulation (or, when the emulation itself fails to
 * answer, a test that fails saying why) and returns false.
 */
export function deviceTestsHere(file: string): boolean {
  if (ON_DEVICE) return true;
  if (EMULATED) {
    test('the emulated device answers', () => {
      throw new Error(`FUSED_DISTILL_EMULATE_DEVICE=1 but cuda.isAvailable() is false: ${addon.cuda.lastError()}`);
    });
    return false;
  }
  test(`${path.basename(file)}: runs in a child jest with FUSED_DISTILL_EMULATE_DEVICE=1 (host emulation)`, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, FUSED_DISTILL_EMULATE_DEVICE: '1' };
    delete env.JEST_WORKER_ID;
    const r = spawnSync(
      process.execPath,
      [require.resolve('jest/bin/jest'), '--runInBand', '--ci', '--colors=false', file],
      {
        cwd: path.join(__dirname, '..', '..'),
        env,
        encoding: 'utf8',
        timeout: 600000,
      },
    );
    if (r.status !== 0) throw new Error(`child jest failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
    expect(r.stderr).toMatch(/Tests:\s+\d+ passed/);
    expect(r.stderr).not.toMatch(/failed|skipped/);
  });
  return false;
}
