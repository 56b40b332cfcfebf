// A child process for the out-of-memory test (tests/reliability/loss_args.test.ts), started under a
// `ulimit -v` address-space limit: distillKL on [1, cols] must end in a caught error, not an abort.
// Prints its address space once the inputs exist, then what the call gave.
import * as fs from 'fs';

import * as tf from '@tensorflow/tfjs';

import { losses } from '../../src';

const cols = Number(process.argv[2]);
const s = tf.fill([1, cols], 0.5);
const t = tf.fill([1, cols], 0.25);
const vmKb = /VmSize:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
console.log(JSON.stringify({ vmKb: Number(vmKb) }));
try {
  const loss = losses.distillKL(s, t);
  console.log(JSON.stringify({ value: loss.dataSync()[0] }));
} catch (e) {
  console.log(JSON.stringify({ name: (e as Error).name, message: (e as Error).message }));
}
