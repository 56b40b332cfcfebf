// The 'native' backend's own machinery: registration and fallbacks, native memory (freed on dispose,
// shared blocks counted, reads copied), clear errors for misuse of host buffers, the profile mode.
// Kernel-by-kernel results against 'cpu' are in native_*.test.ts; tfjs-core's op suite in tfjs_core.
import * as tf from '@tensorflow/tfjs';

import { addon } from '../src/native';
import { NativeBackend, blockSize } from '../src/backend/native/backend';
import { NATIVE_BACKEND, nativeKernelNames, registerNativeBackend } from '../src/backend/native/register';
import { nativeProfile } from '../src/backend/native/profile';
import * as losses from '../src/losses';

registerNativeBackend();

function backend(): NativeBackend {
  return tf.backend() as NativeBackend;
}

beforeAll(async () => {
  expect(await tf.setBackend(NATIVE_BACKEND)).toBe(true);
});

describe('registration', () => {
  test('every cpu kernel is registered for native', () => {
    const cpu = tf.getKernelsForBackend('cpu').map((k) => k.kernelName);
    const native = new Set(tf.getKernelsForBackend(NATIVE_BACKEND).map((k) => k.kernelName));
    const missing = cpu.filter((k) => !native.has(k));
    expect(missing).toEqual([]);
  });

  test('the fused losses run natively', () => {
    const names = nativeKernelNames();
    const fused = tf
      .getKernelsForBackend(NATIVE_BACKEND)
      .map((k) => k.kernelName)
      .filter((k) => /FusedDistill/i.test(k));
    // the fused losses and layers are registered for 'native' (so the check below is not vacuous) ...
    expect(fused).toEqual(
      expect.arrayContaining([
        'FusedDistillRankingObjective',
        'FusedDistillHiddenMSE',
        'FusedDistillAttentionMSE',
        'FusedDistillScaleByUpstream',
        'FusedDistillLayerNorm',
        'FusedDistillLayerNormGrad',
        'FusedDistillGelu',
        'FusedDistillGeluGrad',
      ]),
    );
    // ... and each runs in the addon, none falls back to tfjs's CPU code
    expect(names).toEqual(expect.arrayContaining(fused));
  });

  test('registering twice is harmless', () => {
    const before = tf.getKernelsForBackend(NATIVE_BACKEND).length;
    registerNativeBackend();
    expect(tf.getKernelsForBackend(NATIVE_BACKEND).length).toBe(before);
  });
});

describe('native memory', () => {
  test('an output in native memory goes back to the cache when disposed, and is freed by emptyCache', () => {
    const before = addon.hostBufferStats();
    const { info, values } = backend().makeFloatOutput([2000]);
    values.fill(2.5);
    const t = tf.engine().makeTensorFromTensorInfo(info);
    const during = addon.hostBufferStats();
    expect(during.buffers).toBe(before.buffers + 1);
    expect(during.bytes).toBeGreaterThanOrEqual(before.bytes + 8000);
    expect(tf.tidy(() => t.sum().arraySync())).toBe(5000);
    t.dispose();
    expect(backend().cachedHostBytes).toBeGreaterThanOrEqual(8000);
    // The next output of that size reuses the block: no new native memory.
    const again = backend().allocate('float32', 2000);
    expect(again.buffer).toBe(values.buffer);
    expect(addon.hostBufferStats()).toEqual(during);
    tf.engine()
      .makeTensorFromTensorInfo(backend().makeTensorInfo([2000], 'float32', again))
      .dispose();
    backend().emptyCache();
    expect(addon.hostBufferStats()).toEqual(before);
    expect(backend().cachedHostBytes).toBe(0);
    // A freed block is detached: a stale view is empty, not a window onto freed memory.
    expect(values.length).toBe(0);
  });

  test('reads are copies: they outlive the tensor and do not write through', () => {
    const { info, values } = backend().makeFloatOutput([2048]);
    values.fill(1);
    const t = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
    const read = t.dataSync();
    read[0] = 100;
    expect(t.dataSync()[0]).toBe(1);
    t.dispose();
    expect(read[0]).toBe(100);
    expect(read.length).toBe(2048);
  });

  test('a block stored under two dataIds is freed after the last one is disposed', () => {
    backend().emptyCache();
    const before = addon.hostBufferStats();
    const values = backend().allocate('float32', 2048) as Float32Array;
    values.fill(1);
    const a = tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([2048], 'float32', values));
    const b = tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([2, 1024], 'float32', values));
    a.dispose();
    expect(addon.hostBufferStats().buffers).toBe(before.buffers + 1);
    expect(backend().cachedHostBytes).toBe(0); // still held by b
    expect(tf.tidy(() => b.sum().arraySync())).toBe(2048);
    b.dispose();
    backend().emptyCache();
    expect(addon.hostBufferStats()).toEqual(before);
  });

  test('tensors the user creates stay in JS memory and work with native kernels', () => {
    const x = tf.tensor1d([1, 2, 3]);
    expect(Array.from(x.add(x).dataSync())).toEqual([2, 4, 6]);
    tf.dispose(x);
  });

  test('memory() reports native bytes', () => {
    const m = tf.memory() as tf.MemoryInfo & { nativeBytes?: number };
    expect(typeof m.nativeBytes).toBe('number');
  });

  test('the cache stays under its limit, freeing the sizes unused longest', () => {
    const b = backend() as unknown as { cacheLimit: number | null };
    const limit = b.cacheLimit;
    b.cacheLimit = 64 * 1024; // a fixed 64 KB for this test (as FUSED_DISTILL_HOST_CACHE_MB=0.0625 sets)
    try {
      backend().emptyCache();
      const before = addon.hostBufferStats();
      const make = (floats: number) =>
        tf
          .engine()
          .makeTensorFromTensorInfo(
            backend().makeTensorInfo([floats], 'float32', backend().allocate('float32', floats)),
          );
      const first = make(8192); // 32 KB
      const second = make(4096); // 16 KB
      first.dispose();
      second.dispose();
      expect(backend().cachedHostBytes).toBe(48 * 1024);
      const third = make(6144); // 24 KB, a new size: 72 KB cached once disposed -> the 32 KB class goes
      third.dispose();
      expect(backend().cachedHostBytes).toBe(40 * 1024);
      expect(backend().allocate('float32', 4096).buffer.byteLength).toBe(16 * 1024); // still cached
      backend().emptyCache();
      expect(addon.hostBufferStats().bytes).toBeLessThanOrEqual(before.bytes + 16 * 1024);
    } finally {
      b.cacheLimit = limit;
    }
  });

  test('without a fixed limit the cache keeps at least twice the most memory ever live at once', () => {
    const b = backend() as unknown as { cacheLimit: number | null };
    const fixed = b.cacheLimit;
    b.cacheLimit = null;
    try {
      backend().emptyCache();
      expect(backend().hostCacheLimit).toBeGreaterThanOrEqual(512 * 1024 * 1024);
      // 80 blocks of 8 MB live at once (640 MB): the limit rises to at least 1280 MB, and all of them,
      // disposed, stay cached (a fixed 512 MB would have freed 48 of them).
      const blocks = Array.from({ length: 80 }, () =>
        tf
          .engine()
          .makeTensorFromTensorInfo(
            backend().makeTensorInfo([2 * 1024 * 1024], 'float32', backend().allocate('float32', 2 * 1024 * 1024)),
          ),
      );
      expect(backend().hostCacheLimit).toBeGreaterThanOrEqual(1280 * 1024 * 1024);
      tf.dispose(blocks);
      expect(backend().cachedHostBytes).toBe(640 * 1024 * 1024);
    } finally {
      backend().emptyCache();
      b.cacheLimit = fixed;
    }
  });

  test('blocks come in size classes, 8 per doubling: a block serves a request up to 12.5 % smaller', () => {
    expect(blockSize(8000)).toBe(8192);
    expect(blockSize(24 * 1024)).toBe(24 * 1024);
    expect([9 * 2 ** 30, 9 * 2 ** 30 + 1].map(blockSize)).toEqual([9 * 2 ** 30, 10 * 2 ** 30]); // past 32 bits
    // Up to 4 KB (device blocks; host outputs that small are JS arrays): multiples of 512.
    expect([1, 512, 513, 4095, 4096].map(blockSize)).toEqual([512, 512, 1024, 4096, 4096]);
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const bytes = 4 * (1025 + (seed % 50_000_000));
      const c = blockSize(bytes);
      expect(c).toBeGreaterThanOrEqual(bytes);
      expect(c).toBeLessThanOrEqual(bytes * 1.125);
      expect(c % 4).toBe(0);
      expect(blockSize(c)).toBe(c);
    }
    backend().emptyCache();
    const make = (n: number) => {
      const values = backend().allocate('float32', n) as Float32Array;
      return { values, t: tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([n], 'float32', values)) };
    };
    const a = make(10_000);
    a.t.dispose();
    const b = make(9_500); // the same class: the same block, viewed at its new length
    expect(b.values.buffer).toBe(a.values.buffer);
    expect(b.values.length).toBe(9_500);
    b.values.fill(2);
    expect(tf.tidy(() => b.t.sum().arraySync())).toBe(19_000); // kernels read the view, not the block
    // In place where the tensor's view is its block's whole used part; not for a shorter view of it.
    expect(backend().exclusiveFloats(b.t)).toBe(b.values);
    const shorter = tf
      .engine()
      .makeTensorFromTensorInfo(backend().makeTensorInfo([100], 'float32', b.values.subarray(0, 100)));
    expect(backend().exclusiveFloats(shorter)).toBeNull();
    tf.dispose([b.t, shorter]);
    backend().emptyCache();
  });

  test('batches a few tokens apart reuse the same blocks (exact sizes allocated fresh memory for each)', () => {
    backend().emptyCache();
    const before = addon.hostBufferStats().buffers;
    const output = (n: number) =>
      tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([n], 'float32', backend().allocate('float32', n)));
    // [64, L, 128] activations for L = 100..110, each disposed before the next (a scoring pass).
    for (let L = 100; L <= 110; L++) output(64 * L * 128).dispose();
    expect(addon.hostBufferStats().buffers - before).toBeLessThanOrEqual(2);
    backend().emptyCache();
  });

  test('small outputs are plain JS arrays (a native block costs more than their work)', () => {
    const before = addon.hostBufferStats();
    const small = backend().allocate('float32', 16);
    expect(addon.hostBufferStats()).toEqual(before);
    expect(small.length).toBe(16);
  });

  test('int32 and bool outputs', () => {
    const i = backend().allocate('int32', 4) as Int32Array;
    i.set([1, -2, 3, 4]);
    const b = backend().allocate('bool', 4) as Uint8Array;
    b.set([1, 0, 1, 0]);
    const ti = tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([4], 'int32', i));
    const tb = tf.engine().makeTensorFromTensorInfo(backend().makeTensorInfo([4], 'bool', b));
    expect(Array.from(ti.dataSync())).toEqual([1, -2, 3, 4]);
    expect(Array.from(tf.where(tb as tf.Tensor1D, ti, tf.zerosLike(ti)).dataSync())).toEqual([1, 0, 3, 0]);
    tf.dispose([ti, tb]);
  });
});

describe('host buffer misuse gets clear errors', () => {
  test('double free, foreign buffers, bad sizes', () => {
    const buf = addon.allocHostBuffer(64);
    addon.freeHostBuffer(buf);
    expect(() => addon.freeHostBuffer(buf)).toThrow(/freeHostBuffer: buffer was already freed/);
    expect(() => addon.freeHostBuffer(new ArrayBuffer(64))).toThrow(
      /freeHostBuffer: buffer was not allocated by allocHostBuffer/,
    );
    expect(() => addon.freeHostBuffer(new Float32Array(4) as unknown as ArrayBuffer)).toThrow(
      /freeHostBuffer: buffer must be an ArrayBuffer/,
    );
    expect(() => addon.allocHostBuffer(0)).toThrow(/allocHostBuffer: bytes must be an integer/);
    expect(() => addon.allocHostBuffer(-5)).toThrow(/allocHostBuffer/);
    expect(() => addon.allocHostBuffer(2 ** 60)).toThrow(/allocHostBuffer/);
  });

  test('a freed block passed to a kernel is rejected, not read', () => {
    const buf = addon.allocHostBuffer(16);
    const view = new Float32Array(buf);
    addon.freeHostBuffer(buf);
    expect(() => addon.scale(view, 2, new Float32Array(4))).toThrow(/scale/);
  });

  test('memory comes zeroed when asked, and aligned to 64 bytes', () => {
    const buf = addon.allocHostBuffer(1 << 16, true);
    expect(new Uint8Array(buf).every((v) => v === 0)).toBe(true);
    addon.freeHostBuffer(buf);
  });
});

describe('profile mode', () => {
  test('counts calls per kernel and names the fallbacks', () => {
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    nativeProfile.start();
    tf.tidy(() => tf.cumsum(tf.add(x, x)));
    tf.tidy(() => tf.cumsum(x));
    const stats = nativeProfile.stop();
    const cumsum = stats.find((s) => s.kernel === 'Cumsum');
    expect(cumsum).toBeDefined();
    expect(cumsum!.calls).toBe(2);
    expect(cumsum!.impl).toBe('cpu fallback');
    expect(nativeProfile.fallbacks()).toContain('Cumsum');
    expect(nativeProfile.report()).toMatch(/\| Cumsum \| cpu fallback \| 2 \|/);
    // Off again: nothing more is counted.
    tf.tidy(() => tf.cumsum(x));
    expect(nativeProfile.stats().find((s) => s.kernel === 'Cumsum')!.calls).toBe(2);
    x.dispose();
  });
});

describe('_FusedMatMul', () => {
  // Deterministic values with no global lookups.
  const values = (n: number, seed: number) =>
    Float32Array.from({ length: n }, (_, i) => ((i * 7919 + seed * 104729) % 2003) / 1001 - 1);
  const bits = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).buffer);

  test('adds the bias in place: the bits of matMul + add, gradients too, for every bias shape tfjs allows', () => {
    const [m, n, k] = [33, 19, 7];
    const a = tf.tensor2d(values(m * k, 1), [m, k]);
    const w = tf.tensor2d(values(n * k, 2), [n, k]);
    for (const biasShape of [[n], [1], [1, n], [m, n], [m, 1]]) {
      const bias = tf.tensor(
        values(
          biasShape.reduce((x, y) => x * y, 1),
          3,
        ),
        biasShape,
      );
      const fused = (x: tf.Tensor, ww: tf.Tensor, b: tf.Tensor) =>
        tf.fused.matMul({ a: x as tf.Tensor2D, b: ww as tf.Tensor2D, transposeB: true, bias: b });
      const plain = (x: tf.Tensor, ww: tf.Tensor, b: tf.Tensor) => tf.add(tf.matMul(x, ww, false, true), b);
      const [y1, y2] = [fused(a, w, bias), plain(a, w, bias)];
      expect(bits(y1).equals(bits(y2))).toBe(true);
      const dy = tf.tensor2d(values(m * n, 4), [m, n]);
      const g1 = tf.grads((x: tf.Tensor, ww: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(fused(x, ww, b), dy)))([
        a,
        w,
        bias,
      ]);
      const g2 = tf.grads((x: tf.Tensor, ww: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(plain(x, ww, b), dy)))([
        a,
        w,
        bias,
      ]);
      g1.forEach((g, i) => expect(bits(g).equals(bits(g2[i]))).toBe(true));
      tf.dispose([bias, y1, y2, dy, ...g1, ...g2]);
    }
    // With an activation: the bias in place, then the activation kernel.
    const bias = tf.tensor1d(values(n, 5));
    const y = tf.fused.matMul({ a, b: w, transposeB: true, bias, activation: 'relu' });
    const want = tf.relu(tf.add(tf.matMul(a, w, false, true), bias));
    expect(bits(y).equals(bits(want))).toBe(true);
    tf.dispose([a, w, bias, y, want]);
  });
});

describe('fused losses on native', () => {
  test('rankingObjective equals the cpu backend, and its gradient lives in native memory', async () => {
    // 64 x 32: a gradient large enough (8 KB) for native memory.
    const s = Array.from({ length: 2048 }, (_, i) => Math.sin(i * 1.7) * 2);
    const y = Array.from({ length: 2048 }, (_, i) => (i % 32 === i % 7 ? 1 : 0));
    const run = () => {
      const st = tf.tensor2d(s, [64, 32]);
      const yt = tf.tensor2d(y, [64, 32]);
      const before = addon.hostBufferStats().buffers;
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => losses.pairwiseRankNet(x as tf.Tensor2D, yt))(st);
      const nativeBlocks = addon.hostBufferStats().buffers - before;
      const out = { loss: value.dataSync()[0], grad: Array.from(grad.dataSync()), nativeBlocks };
      tf.dispose([st, yt, value, grad]);
      return out;
    };
    const native = run();
    await tf.setBackend('cpu');
    const cpu = run();
    await tf.setBackend(NATIVE_BACKEND);
    expect(native.loss).toBe(cpu.loss);
    expect(native.grad).toEqual(cpu.grad);
    expect(native.nativeBlocks).toBeGreaterThan(0);
    expect(cpu.nativeBlocks).toBe(0);
  });
});
