// A training run in a child process, for the kill-and-resume test:
//   node -r ./tests/helpers/ts_register.js tests/helpers/distill_child.ts <config.json> [--resume]
// prints each progress event as one JSON line on stdout.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { distill, loadStudentConfig } from '../../src/distill';

async function main(): Promise<void> {
  await tf.setBackend(process.env.FUSED_DISTILL_TEST_BACKEND ?? 'wasm');
  const config = loadStudentConfig(process.argv[2]);
  await distill(config, {
    resume: process.argv.includes('--resume'),
    onProgress: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
  });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
