// The 'cuda' tfjs backend (src/backend/cuda): every device kernel against tfjs's 'cpu' on random
// shapes (broadcasting, empty and 0-d tensors, int32/bool), device memory (dispose frees, tidy returns
// to the start, reshape shares), the CPU fallback (right result, counted), the fused losses with
// gradients, the AdamW update on device buffers, and a cross-encoder training step with zero
// fallbacks and the same losses as 'cpu' and 'native'. Without a GPU the file runs under the addon's
// host emulation of the device (tests/helpers/device.ts).
import * as tf from '@tensorflow/tfjs';

import { EMULATED, deviceTestsHere } from './helpers/device';
import { addon } from '../src/native';
import { CUDA_BACKEND, cudaKernelNames, registerCudaBackend } from '../src/backend/cuda/register';
import { CudaBackend, TF32_FLAG } from '../src/backend/cuda/backend';
import { MATMUL_PRECISION_FLAG, matmulPrecision } from '../src/backend/precision';
import { cudaProfile } from '../src/backend/cuda/profile';
import { RANDOM_NORMAL, RANDOM_UNIFORM } from '../src/backend/cuda/kernels';
import { NATIVE_BACKEND, registerNativeBackend } from '../src/backend/native/register';
import * as losses from '../src/losses';
import * as nn from '../src/nn';
import { CrossEncoder, CrossEncoderConfig } from '../src/models/cross_encoder';
import { AdamW } from '../src/distill/optimizer';
import { matmulRelativeError, mulberry32 } from './helpers/reference64';

if (deviceTestsHere(__filename)) {
  registerNativeBackend();
  const REGISTERED = registerCudaBackend();

  type Run = () => tf.Tensor | tf.Tensor[];
  interface Result {
    shape: number[];
    dtype: string;
    values: number[];
  }

  function runOn(backend: string, f: Run): Result[] {
    tf.setBackend(backend);
    return tf.tidy(() => {
      const out = f();
      return (Array.isArray(out) ? out : [out]).map((t) => ({
        shape: t.shape,
        dtype: t.dtype,
        values: Array.from(t.dataSync() as ArrayLike<number>),
      }));
    });
  }

  function close(a: number, b: number, rel: number): boolean {
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
    if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
    return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
  }

  /**
   * f on 'cpu' and on 'cuda' (inputs made inside f from a seed, so both see the same data): same
   * shapes, dtypes, values within rel; no kernel fell back on 'cuda' unless `fallbacks` names it.
   */
  function same(label: string, f: Run, rel = 1e-5, fallbacks: string[] = []): void {
    const cpu = runOn('cpu', f);
    cudaProfile.start();
    const cuda = runOn(CUDA_BACKEND, f);
    const fell = cudaProfile
      .stop()
      .filter((s) => s.impl === 'cpu fallback')
      .map((s) => s.kernel);
    expect({ label, fell: fell.filter((k) => !fallbacks.includes(k)) }).toEqual({ label, fell: [] });
    expect(cuda.length).toBe(cpu.length);
    cpu.forEach((c, i) => {
      const d = cuda[i];
      expect({ label, shape: d.shape, dtype: d.dtype }).toEqual({ label, shape: c.shape, dtype: c.dtype });
      const bad = c.values.findIndex((v, j) => !close(v, d.values[j], rel));
      if (bad >= 0)
        throw new Error(`${label}: output ${i} element ${bad}: cuda ${d.values[bad]}, cpu ${c.values[bad]}`);
    });
  }

  // Random data from a seed (the same on both backends).
  let rand = mulberry32(1);
  const seeded = (seed: number) => (rand = mulberry32(seed));
  function floats(shape: number[], lo = -2, hi = 2): tf.Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(
      Float32Array.from({ length: n }, () => lo + (hi - lo) * rand()),
      shape,
      'float32',
    );
  }
  function ints(shape: number[], lo: number, hi: number, nonZero = false): tf.Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(
      Int32Array.from({ length: n }, () => {
        const v = lo + Math.floor((hi - lo) * rand());
        return nonZero && v === 0 ? 1 : v;
      }),
      shape,
      'int32',
    );
  }
  function bools(shape: number[]): tf.Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(
      Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0)),
      shape,
      'bool',
    );
  }
  const int = (lo: number, hi: number) => lo + Math.floor((hi - lo + 1) * rand());
  function shapeOf(rank: number, maxDim = 4, minDim = 1): number[] {
    return Array.from({ length: rank }, () => int(minDim, maxDim));
  }
  // A pair of shapes that broadcast: b's dims are a suffix of a's, each kept or set to 1.
  function broadcastPair(): [number[], number[]] {
    const a = shapeOf(int(0, 4));
    const b = a.slice(int(0, a.length)).map((d) => (rand() < 0.3 ? 1 : d));
    return rand() < 0.5 ? [a, b] : [b, a];
  }
  const run = (name: string, inputs: tf.NamedTensorMap | tf.Tensor[], attrs: object = {}) =>
    tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;

  // Where the backend did not register, its suites are skipped, each saying why (and the first test fails).
  const d = REGISTERED
    ? describe
    : (name: string, fn: () => void) =>
        describe.skip(`${name} (skipped: the 'cuda' backend did not register: ${addon.cuda.lastError()})`, fn);

  test(`the 'cuda' backend registers where a device answers (${EMULATED ? 'host emulation' : addon.cuda.deviceName()})`, () => {
    expect(REGISTERED).toBe(true);
    expect(tf.findBackendFactory(CUDA_BACKEND)).toBeTruthy();
    expect(cudaKernelNames()).toEqual(
      expect.arrayContaining(['BatchMatMul', 'Softmax', 'GatherV2', 'ScatterNd', 'FusedDistillRankingObjective']),
    );
  });

  test("the CLI's --backend cuda selects it", async () => {
    const { useBackend } = await import('../src/cli/common');
    await useBackend('cuda');
    expect(tf.getBackend()).toBe(CUDA_BACKEND);
  });

  d('device kernels equal tfjs cpu (random shapes)', () => {
    const BINARY = Object.keys(addon.mathOps.binary);
    const INT_OPS = [
      'Add',
      'Sub',
      'Multiply',
      'Maximum',
      'Minimum',
      'SquaredDifference',
      'FloorDiv',
      'Greater',
      'GreaterEqual',
      'Less',
      'LessEqual',
      'Equal',
      'NotEqual',
    ];

    test.each(BINARY)('%s (float32, broadcasting, 0-d and empty)', (name) => {
      for (let i = 0; i < 12; i++) {
        const seed = 100 + i;
        const [sa, sb] = i === 0 ? [[0, 3], [3]] : i === 1 ? [[], [2, 3]] : broadcastPair();
        const [ka, kb] = name === 'Prelu' ? ['x', 'alpha'] : ['a', 'b'];
        same(
          `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
          () => {
            seeded(seed);
            const a = name === 'Pow' ? floats(sa, 0.1, 2) : floats(sa);
            const b = name === 'Pow' ? floats(sb, -2, 2) : floats(sb);
            return run(name, { [ka]: a, [kb]: b });
          },
          name === 'Pow' ? 1e-5 : 1e-6,
        );
      }
    });

    test.each(INT_OPS)('%s (int32)', (name) => {
      for (let i = 0; i < 6; i++) {
        const seed = 200 + i;
        const [sa, sb] = broadcastPair();
        same(
          `${name} int32`,
          () => {
            seeded(seed);
            return run(name, { a: ints(sa, -20, 20), b: ints(sb, -5, 5, true) });
          },
          0,
        );
      }
    });

    const UNARY = Object.keys(addon.mathOps.unary);
    test.each(UNARY)('%s', (name) => {
      for (const [i, shape] of [[], [0], [5], [2, 3, 4]].entries()) {
        const attrs =
          name === 'LeakyRelu' || name === 'Step'
            ? { alpha: 0.3 }
            : name === 'ClipByValue'
              ? { clipValueMin: -0.5, clipValueMax: 0.7 }
              : {};
        same(
          `${name} ${JSON.stringify(shape)}`,
          () => {
            seeded(300 + i);
            return run(name, { x: floats(shape as number[], -3, 3) }, attrs);
          },
          2e-6,
        );
      }
    });

    test('Cast between float32, int32 and bool', () => {
      const dtypes = ['float32', 'int32', 'bool'] as const;
      for (const from of dtypes)
        for (const to of dtypes)
          for (const shape of [[], [0], [3, 5]])
            same(
              `Cast ${from}->${to}`,
              () => {
                seeded(7);
                const x =
                  from === 'float32' ? floats(shape, -3, 3) : from === 'int32' ? ints(shape, -3, 3) : bools(shape);
                return tf.cast(x, to);
              },
              0,
            );
    });

    test('Fill, ZerosLike, OnesLike', () => {
      same('fill', () => [tf.fill([2, 3], 2.5), tf.fill([3], 7, 'int32'), tf.fill([0, 2], 1), tf.fill([], -1)], 0);
      same(
        'like',
        () => {
          seeded(8);
          return [
            tf.zerosLike(floats([2, 2])),
            tf.onesLike(ints([3], 0, 4)),
            tf.onesLike(bools([2])),
            tf.zerosLike(floats([0])),
          ];
        },
        0,
      );
    });

    test('BatchMatMul / _FusedMatMul: transposes, batch broadcasting, k = 0', () => {
      for (let i = 0; i < 16; i++) {
        const seed = 400 + i;
        same(
          `matmul ${i}`,
          () => {
            seeded(seed);
            const [m, n, k] = [int(1, 7), int(1, 7), i === 0 ? 0 : int(1, 9)];
            const tA = rand() < 0.5;
            const tB = rand() < 0.5;
            const batchA = i % 4 === 1 ? [] : i % 4 === 2 ? [2, 3] : [3];
            const batchB = i % 4 === 2 ? [3] : i % 4 === 3 ? [] : batchA;
            const a = floats([...batchA, ...(tA ? [k, m] : [m, k])]);
            const b = floats([...batchB, ...(tB ? [n, k] : [k, n])]);
            const out = [tf.matMul(a, b, tA, tB)];
            if (batchA.length === 0 && batchB.length === 0)
              out.push(
                tf.fused.matMul({
                  a,
                  b,
                  transposeA: tA,
                  transposeB: tB,
                  bias: floats([n]),
                  activation: i % 2 ? 'relu' : 'elu',
                }),
              );
            return out;
          },
          1e-5,
        );
      }
    });

    test('reductions over random axes (Sum, Mean, Prod, Max, Min, Any, All, ArgMax, ArgMin)', () => {
      for (let i = 0; i < 10; i++) {
        const seed = 500 + i;
        same(
          `reduce ${i}`,
          () => {
            seeded(seed);
            const shape = shapeOf(int(1, 4));
            const axes = shape.map((_, j) => j).filter(() => rand() < 0.5);
            const axis = axes.length ? axes : [0];
            const keep = rand() < 0.5;
            const x = floats(shape);
            const xi = ints(shape, -9, 9);
            const xb = bools(shape);
            return [
              tf.sum(x, axis, keep),
              tf.mean(x, axis, keep),
              tf.prod(x, axis, keep),
              tf.max(x, axis, keep),
              tf.min(x, axis, keep),
              tf.sum(xi, axis, keep),
              tf.max(xi, axis, keep),
              tf.min(xi, axis, keep),
              tf.sum(xb, axis, keep),
              tf.any(xb, axis, keep),
              tf.all(xb, axis, keep),
              tf.argMax(x, axis[0]),
              tf.argMin(xi, axis[0]),
              tf.sum(x),
            ];
          },
          1e-5,
        );
      }
    });

    test('Softmax and LogSoftmax over the last axis', () => {
      for (const [i, shape] of [[5], [3, 7], [2, 3, 4]].entries())
        same(
          `softmax ${shape}`,
          () => {
            seeded(600 + i);
            const x = floats(shape as number[], -5, 5);
            // tfjs's logSoftmax op is a composite: the LogSoftmax kernel exists on 'cuda' only.
            return [
              tf.softmax(x),
              tf.getBackend() === 'cpu' ? tf.logSoftmax(x) : run('LogSoftmax', { logits: x }, { axis: -1 }),
            ];
          },
          1e-5,
        );
    });

    test('Transpose, Slice, Concat, Tile, PadV2, Reshape, Range (float32, int32, bool)', () => {
      for (let i = 0; i < 12; i++) {
        const seed = 700 + i;
        same(
          `layout ${i}`,
          () => {
            seeded(seed);
            const shape = shapeOf(int(1, 4));
            const make = (s: number[]) => (i % 3 === 0 ? floats(s) : i % 3 === 1 ? ints(s, -9, 9) : bools(s));
            const x = make(shape);
            const perm = shape.map((_, j) => j).sort(() => rand() - 0.5);
            const begin = shape.map((dim) => int(0, dim - 1));
            const size = shape.map((dim, j) => int(0, dim - begin[j]));
            const axis = int(0, shape.length - 1);
            const other = shape.slice();
            other[axis] = int(0, 3);
            const reps = shape.map(() => int(1, 3));
            const pads = shape.map(() => [int(0, 2), int(0, 2)] as [number, number]);
            return [
              tf.transpose(x, perm),
              tf.slice(x, begin, size),
              tf.concat([x, make(other), x], axis),
              tf.tile(x, reps),
              tf.pad(x, pads, i % 3 === 2 ? 1 : 3),
              tf.reshape(x, [-1]),
              tf.range(0, int(0, 9), 1, 'int32'),
              tf.range(1, 4, 0.5),
            ];
          },
          0,
        );
      }
    });

    test('GatherV2 (axis, batchDims), UnsortedSegmentSum, ScatterNd', () => {
      for (let i = 0; i < 8; i++) {
        const seed = 800 + i;
        same(
          `gather/scatter ${i}`,
          () => {
            seeded(seed);
            const shape = shapeOf(int(2, 4), 4, 2);
            const axis = int(1, shape.length - 1);
            const x = i % 2 ? floats(shape) : ints(shape, -9, 9);
            const idx = ints([shape[0], int(1, 5)], 0, shape[axis]);
            const rows = int(1, 6);
            const seg = ints([rows], -1, 5);
            const upd = floats([rows, 3]);
            return [
              tf.gather(x, ints([int(1, 6)], 0, shape[axis]), axis),
              tf.gather(x, idx, axis, 1),
              tf.unsortedSegmentSum(upd, seg as tf.Tensor1D, 4),
              tf.scatterND(ints([rows, 1], 0, 5), upd, [5, 3]),
              tf.scatterND(ints([rows, 2], 0, 3), upd, [3, 3, 3]),
            ];
          },
          1e-6,
        );
      }
    });
  });

  d('device memory', () => {
    const backend = () => tf.backend() as CudaBackend;
    beforeAll(() => tf.setBackend(CUDA_BACKEND));

    test('dispose frees the device buffer; tf.memory() reports device bytes', () => {
      const before = backend().memory();
      const buffersBefore = addon.cuda.memoryStats().buffers;
      const t = tf.tensor([1, 2, 3, 4], [2, 2]);
      const m = tf.memory() as tf.MemoryInfo & { deviceBytes: number; deviceBuffers: number };
      expect(m.deviceBytes).toBe(before.deviceBytes + 16);
      expect(m.deviceBuffers).toBe(before.deviceBuffers + 1);
      expect(addon.cuda.memoryStats().buffers).toBe(buffersBefore + 1);
      t.dispose();
      expect(backend().memory().deviceBytes).toBe(before.deviceBytes);
      expect(addon.cuda.memoryStats().buffers).toBe(buffersBefore);
    });

    test('device bytes are back to the start after a tidy', () => {
      const before = backend().memory();
      const kept = tf.tidy(() => {
        const x = tf.randomNormal([8, 16]);
        const y = tf.softmax(tf.matMul(x, x, false, true));
        tf.sum(tf.mul(y, 2));
        return tf.mean(y);
      });
      expect(backend().memory().deviceBuffers).toBe(before.deviceBuffers + 1);
      kept.dispose();
      expect(backend().memory()).toMatchObject({
        deviceBytes: before.deviceBytes,
        deviceBuffers: before.deviceBuffers,
      });
    });

    test('reshape shares the buffer (no copy); the buffer lives until its last tensor goes', () => {
      const before = backend().memory().deviceBuffers;
      const x = tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      const r = tf.reshape(x, [3, 2]);
      const e = tf.expandDims(x, 0);
      expect(backend().memory().deviceBuffers).toBe(before + 1);
      expect(r.dataId).toBe(x.dataId);
      x.dispose();
      expect(Array.from(r.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
      r.dispose();
      e.dispose();
      expect(backend().memory().deviceBuffers).toBe(before);
    });

    test('strings and complex64 live on the host side and read back', () => {
      const before = backend().memory().deviceBuffers;
      tf.tidy(() => {
        expect(tf.tensor(['a', 'bc']).dataSync()).toEqual(['a', 'bc']);
        const c = tf.complex([1, 2], [3, 4]);
        expect(Array.from(tf.real(c).dataSync())).toEqual([1, 2]);
        expect(Array.from(tf.abs(c).dataSync()).map((v) => +v.toFixed(4))).toEqual([3.1623, 4.4721]);
      });
      expect(backend().memory().deviceBuffers).toBe(before);
      expect(backend().cpu.numDataIds()).toBe(0);
    });

    test('a tensor made on cpu moves to cuda', () => {
      tf.setBackend('cpu');
      const t = tf.tensor([1, 2, 3]);
      tf.setBackend(CUDA_BACKEND);
      expect(Array.from(tf.add(t, 1).dataSync())).toEqual([2, 3, 4]);
      t.dispose();
    });

    test('the TF32 flag reaches the addon; TF32 products differ from fp32 on a GPU, not on the emulation', () => {
      const K = 64;
      seeded(31);
      const a = Float32Array.from({ length: K * K }, () => 4 * rand() - 2);
      const b = Float32Array.from({ length: K * K }, () => 4 * rand() - 2);
      const product = () =>
        tf.tidy(() => tf.matMul(tf.tensor2d(a, [K, K]), tf.tensor2d(b, [K, K])).dataSync() as Float32Array);
      const error = (c: Float32Array) => matmulRelativeError(a, b, c, K);
      expect(tf.env().getBool(TF32_FLAG)).toBe(false);
      expect(addon.cuda.getTF32()).toBe(false);
      const fp32 = product();
      tf.env().set(TF32_FLAG, true);
      expect(addon.cuda.getTF32()).toBe(true);
      const tf32 = product();
      tf.env().set(TF32_FLAG, false);
      expect(addon.cuda.getTF32()).toBe(false);
      expect(error(fp32)).toBeLessThanOrEqual(K * 2 ** -24);
      if (EMULATED) {
        expect(Array.from(tf32)).toEqual(Array.from(fp32)); // the host has no TF32: fp32 either way
      } else {
        // TF32 keeps 10 of fp32's 23 mantissa bits: inputs rounded by up to 2^-10 relative each
        // (Ampere or later; an older GPU computes fp32 and fails the first bound).
        expect(error(tf32)).toBeGreaterThan(K * 2 ** -24);
        expect(error(tf32)).toBeLessThanOrEqual(2 ** -9 + K * 2 ** -24);
      }
    });

    test("the precision flag on cuda: bf16 and tf32 products; FUSED_DISTILL_CUDA_TF32 is 'tf32'", () => {
      const K = 64;
      seeded(37);
      const a = Float32Array.from({ length: K * K }, () => 4 * rand() - 2);
      const b = Float32Array.from({ length: K * K }, () => 4 * rand() - 2);
      const product = () =>
        tf.tidy(() => tf.matMul(tf.tensor2d(a, [K, K]), tf.tensor2d(b, [K, K])).dataSync() as Float32Array);
      const error = (c: Float32Array) => matmulRelativeError(a, b, c, K);
      const host = (precision: 'fp32' | 'bf16') => {
        const c = new Float32Array(K * K);
        addon.sgemm(a, b, c, 1, K, K, K, false, false, null, null, precision);
        return c;
      };
      try {
        expect(matmulPrecision('cuda')).toBe('fp32');
        tf.env().set(TF32_FLAG, true);
        expect(matmulPrecision('cuda')).toBe('tf32'); // the older flag is an alias
        tf.env().set(TF32_FLAG, false);
        tf.env().set(MATMUL_PRECISION_FLAG, 'bf16');
        const bf16 = product();
        tf.env().set(MATMUL_PRECISION_FLAG, 'tf32');
        expect(matmulPrecision('cuda')).toBe('tf32');
        const tf32 = product();
        // bf16 keeps 8 significant bits: each product within 2 * 2^-8 relative, plus fp32 sums
        expect(error(bf16)).toBeLessThanOrEqual(2 * 2 ** -8 + 2 ** -16 + K * 2 ** -24);
        if (EMULATED) {
          expect(Array.from(bf16)).toEqual(Array.from(host('bf16'))); // the host's bf16 GEMM
          expect(Array.from(tf32)).toEqual(Array.from(host('fp32'))); // the host has no TF32
        } else {
          expect(error(bf16)).toBeGreaterThan(K * 2 ** -24);
          expect(error(tf32)).toBeLessThanOrEqual(2 ** -9 + K * 2 ** -24);
        }
        expect(() => tf.env().set(MATMUL_PRECISION_FLAG, 'fp16')).toThrow(/must be 'fp32', 'bf16' or 'tf32'/);
        const z = addon.cuda.alloc(4, 'float32');
        const out = addon.cuda.alloc(4, 'float32');
        expect(() => addon.cuda.sgemm(z, z, out, 1, 2, 2, 2, false, false, null, null, 'fp16' as 'bf16')).toThrow(
          /precision must be 'fp32', 'bf16' or 'tf32', got 'fp16'/,
        );
        addon.cuda.free(z);
        addon.cuda.free(out);
      } finally {
        tf.env().set(TF32_FLAG, false);
        tf.env().set(MATMUL_PRECISION_FLAG, 'fp32');
      }
    });

    test('device random kernels: in range, seeded, the right moments', () => {
      const u = run(RANDOM_UNIFORM, {}, { shape: [1000], a: -1, b: 3, seed: 5 });
      const u2 = run(RANDOM_UNIFORM, {}, { shape: [1000], a: -1, b: 3, seed: 5 });
      const n = run(RANDOM_NORMAL, {}, { shape: [4000], a: 2, b: 0.5, seed: 6 });
      const uv = u.dataSync();
      expect(Math.min(...uv)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...uv)).toBeLessThan(3);
      expect(Array.from(u2.dataSync())).toEqual(Array.from(uv));
      const { mean, variance } = tf.moments(n);
      expect(mean.dataSync()[0]).toBeCloseTo(2, 1);
      expect(Math.sqrt(variance.dataSync()[0])).toBeCloseTo(0.5, 1);
      expect(() => run(RANDOM_NORMAL, {}, { shape: [2], a: 0, b: 1, seed: -1 })).toThrow(
        /seed must be a non-negative integer/,
      );
      tf.dispose([u, u2, n, mean, variance]);
    });
  });

  d('the CPU fallback', () => {
    test('a kernel with no device version gives the cpu result and is counted', () => {
      same(
        'cumsum/topk',
        () => {
          seeded(9);
          const x = floats([3, 5]);
          const { values, indices } = tf.topk(x, 2);
          return [tf.cumsum(x, 1), values, indices];
        },
        1e-6,
        ['Cumsum', 'TopK'],
      );
      tf.setBackend(CUDA_BACKEND);
      cudaProfile.start();
      tf.tidy(() => tf.cumsum(tf.add(tf.ones([4]), 1)).dataSync());
      const stats = cudaProfile.stop();
      expect(cudaProfile.fallbacks()).toEqual(['Cumsum']);
      expect(stats.find((s) => s.kernel === 'Cumsum')).toMatchObject({ impl: 'cpu fallback', calls: 1 });
      expect(stats.find((s) => s.kernel === 'Add')).toMatchObject({ impl: 'cuda', calls: 1 });
      expect((tf.backend() as CudaBackend).cpu.numDataIds()).toBe(0); // no CPU copy left behind
    });

    test('a device kernel hands the cases it does not take to the fallback (int32 Prod)', () => {
      same('prod int32', () => tf.prod(tf.tensor([1, 2, 3, 4], [2, 2], 'int32'), 1), 0, ['Prod']);
    });
  });

  d('fused losses on cuda (loss and gradient)', () => {
    function scores(seed: number) {
      seeded(seed);
      const s = floats([3, 5]);
      const t = floats([3, 5]);
      // grades 0, 1, 2 scaled into [0, 1], pointwiseBCE's domain
      const y = tf.tensor(
        Float32Array.from({ length: 15 }, () => int(0, 2) / 2),
        [3, 5],
      );
      const mask = tf.tensor(
        Float32Array.from({ length: 15 }, (_, i) => (i % 5 === 4 && i > 5 ? 0 : 1)),
        [3, 5],
      );
      return { s, t, y, mask };
    }
    const weights = {
      pointwiseBCE: 0.2,
      pairwiseRankNet: 1,
      pairwiseHinge: 0.5,
      listwiseSoftmaxCE: 0.7,
      distillKL: 1.5,
      marginMSE: 0.3,
      scoreMSE: 0.1,
    };

    test('rankingObjective (all terms, mask), its parts, and d/ds', () => {
      same(
        'objective',
        () => {
          const { s, t, y, mask } = scores(11);
          const opts = { weights, temperature: 2, mask };
          const { total, parts } = losses.rankingObjectiveParts(s, t, y, opts);
          const g = tf.grad((x: tf.Tensor) => tf.mul(losses.rankingObjective(x, t, y, opts), 3))(s);
          return [total, ...Object.values(parts), g, losses.distillKL(s, t, { temperature: 2 })];
        },
        1e-5,
      );
    });

    test('hiddenMSE and attentionMSE with token masks, and their gradients', () => {
      same(
        'features',
        () => {
          seeded(12);
          const hs = floats([2, 2, 4, 3]);
          const ht = floats([2, 2, 4, 3]);
          const as = floats([2, 2, 4, 4]);
          const at = floats([2, 2, 4, 4]);
          const tokenMask = tf.tensor([1, 1, 1, 0, 1, 1, 0, 0], [2, 4]);
          const gh = tf.grad((x: tf.Tensor) => losses.hiddenMSE(x, ht, { tokenMask }))(hs);
          const ga = tf.grad((x: tf.Tensor) => losses.attentionMSE(x, at, { tokenMask }))(as);
          return [losses.hiddenMSE(hs, ht, { tokenMask }), gh, losses.attentionMSE(as, at), ga];
        },
        1e-5,
      );
    });

    test('fused attention: value, probabilities kept for backward, and all four gradients (odd shape, masked keys)', () => {
      same(
        'attention',
        () => {
          seeded(14);
          const q = floats([3, 7, 10]); // 2 heads of dh 5
          const k = floats([3, 7, 10]);
          const v = floats([3, 7, 10]);
          const w = floats([3, 7, 10]);
          // batch entry 2: every key masked (the composite's -10000 behaviour)
          const bias = tf.tensor2d(
            [0, 0, 0, 0, 0, -10000, -10000, 0, 0, 0, 0, 0, 0, 0.5, ...Array(7).fill(-10000)],
            [3, 7],
          );
          const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
            tf.sum(tf.mul(nn.attention(a, b, c, d, { heads: 2 }), w));
          return [nn.attention(q, k, v, bias, { heads: 2 }), ...tf.grads(f)([q, k, v, bias])];
        },
        1e-5,
      );
    });

    test('a mask that is not 0/1 is a clear error on cuda too', () => {
      tf.setBackend(CUDA_BACKEND);
      tf.tidy(() => {
        const { s, y } = scores(13);
        const mask = tf.tensor([1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [3, 5]);
        expect(() => losses.pairwiseRankNet(s, y, { mask })).toThrow(
          /pairwiseRankNet: mask must hold only 0 and 1, got 2 at index 3/,
        );
        expect(() =>
          losses.hiddenMSE(tf.ones([1, 2, 2]), tf.ones([1, 2, 2]), { tokenMask: tf.tensor([[1, 0.5]]) }),
        ).toThrow(/tokenMask must hold only 0 and 1/);
      });
    });
  });

  const TINY: CrossEncoderConfig = {
    vocabSize: 97,
    hidden: 16,
    layers: 2,
    heads: 2,
    intermediate: 32,
    maxPosition: 32,
    typeVocab: 2,
    layerNormEps: 1e-12,
    initStd: 0.02,
  };

  d('cross-encoder training on cuda', () => {
    const G = 3;
    const Q = 2;
    const L = 10;
    function train(backend: string, steps: number) {
      tf.setBackend(backend);
      const model = new CrossEncoder(TINY, 3);
      const ids = new Int32Array(Q * G * L).map((_, i) => (i * 7919) % TINY.vocabSize);
      const x = {
        inputIds: tf.tensor2d(ids, [Q * G, L], 'int32'),
        tokenTypeIds: tf.tensor2d(
          new Int32Array(Q * G * L).map((_, i) => (i % L >= L / 2 ? 1 : 0)),
          [Q * G, L],
          'int32',
        ),
        attentionMask: tf.tensor2d(
          new Int32Array(Q * G * L).map((_, i) => (i % L < L - (i % 3) ? 1 : 0)),
          [Q * G, L],
          'int32',
        ),
      };
      const t = tf.tensor2d([
        [2, 0.5, -1],
        [1, 1.5, 0],
      ]);
      const y = tf.tensor2d([
        [1, 0, 0],
        [0, 1, 0],
      ]);
      const mask = tf.tensor2d([
        [1, 1, 1],
        [1, 1, 0],
      ]);
      const optimizer = new AdamW(model.params, {
        lr: 5e-3,
        warmup: 1,
        totalSteps: steps,
        weightDecay: 0.01,
        clipNorm: 1,
      });
      const out: number[] = [];
      const norms: number[] = [];
      const nameOf = new Map([...model.params].map(([n, v]) => [v.name, n]));
      for (let i = 0; i < steps; i++) {
        const { value, grads } = tf.variableGrads(() => {
          const s = tf.reshape(model.forward(x).scores, [Q, G]);
          return losses.rankingObjective(s, t, y, {
            weights: { pairwiseRankNet: 1, distillKL: 0.5, listwiseSoftmaxCE: 0.5 },
            mask,
            temperature: 2,
          });
        });
        norms.push(optimizer.apply(new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g]))).gradNorm);
        out.push(value.dataSync()[0]);
        tf.dispose([value, ...Object.values(grads)]);
      }
      const moments = optimizer.moments('classifier.weight').m.slice();
      model.dispose();
      optimizer.dispose();
      tf.dispose([...Object.values(x), t, y, mask]);
      return { losses: out, norms, moments };
    }

    test('zero fallbacks, and the same losses as cpu and native for 5 steps', () => {
      const cpu = train('cpu', 5);
      const native = train(NATIVE_BACKEND, 5);
      const tensorsBefore = tf.memory().numTensors;
      const buffersBefore = addon.cuda.memoryStats().buffers;
      cudaProfile.start();
      const cuda = train(CUDA_BACKEND, 5);
      const stats = cudaProfile.stop();
      expect(cudaProfile.fallbacks()).toEqual([]);
      expect(stats.map((s) => s.kernel)).toEqual(
        expect.arrayContaining([
          'BatchMatMul',
          'GatherV2',
          'ScatterNd',
          'FusedDistillAttention',
          'FusedDistillAttentionGrad',
          'FusedDistillRankingObjective',
          'FusedDistillAdamW',
        ]),
      );
      for (let i = 0; i < 5; i++) {
        expect(close(cuda.losses[i], cpu.losses[i], 2e-4)).toBe(true);
        expect(close(cuda.losses[i], native.losses[i], 2e-4)).toBe(true);
        expect(close(cuda.norms[i], cpu.norms[i], 1e-3)).toBe(true);
      }
      expect(cuda.losses[4]).toBeLessThan(cuda.losses[0]); // it learns
      // AdamW's first moments (~0.01-0.1) within 1e-3 relative, as the gradient norms; a moment near 0
      // against 1% of the largest one (its few ulps of cancellation are no error)
      const largest = Math.max(...cpu.moments.map(Math.abs));
      cuda.moments.forEach((m, i) => {
        const want = cpu.moments[i];
        if (!(Math.abs(m - want) <= 1e-3 * Math.max(Math.abs(want), 0.01 * largest)))
          throw new Error(`moment ${i}: cuda ${m}, cpu ${want}`);
      });
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      expect(addon.cuda.memoryStats().buffers).toBe(buffersBefore); // moments freed by dispose()
    }, 60_000);
  });
}
