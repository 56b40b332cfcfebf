// Dropout as BERT applies it in training (hidden_dropout_prob): each element kept with probability
// 1 - rate and scaled by 1 / (1 - rate), else zero. The keep mask is a function of (seed, element
// index) only — counter-based Philox (kernels/random.h), the same numbers on the host and on the
// device — so a step's masks, and a resumed or data-parallel run's bits, do not depend on the thread
// count, the backend, or how many steps ran before in this process. The gradient is the same mask
// times the upstream gradient (tf.mul's).
import * as tf from '@tensorflow/tfjs';

import { cudaBackend } from '../backend/cuda/backend';
import { RANDOM_UNIFORM } from '../backend/cuda/kernels/random';
import { addon, addonLoadError } from '../native';

/** Uniform [0, 1) numbers of `shape` from Philox(seed, index): on the device on 'cuda', else on the host. */
export function philoxUniform(shape: number[], seed: number): tf.Tensor {
  if (cudaBackend())
    return tf.engine().runKernel(RANDOM_UNIFORM, {}, { shape, a: 0, b: 1, seed } as never) as tf.Tensor;
  if (addonLoadError())
    throw new Error(`dropout: needs the native addon's random numbers (${addonLoadError()!.message})`);
  const values = new Float32Array(tf.util.sizeFromShape(shape));
  if (values.length > 0) addon.randomUniform(values, 0, 1, seed);
  return tf.tensor(values, shape, 'float32');
}

/** x with dropout at `rate` (0 <= rate < 1; 0 returns x itself), the mask drawn from `seed`. */
export function dropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 53)
    throw new Error(`dropout: seed must be an integer in [0, 2^53), got ${seed}`);
  if (rate === 0) return x;
  return tf.tidy(() => {
    const keep = tf.cast(tf.greaterEqual(philoxUniform(x.shape, seed), rate), 'float32');
    return tf.mul(x, tf.mul(keep, 1 / (1 - rate)));
  });
}
