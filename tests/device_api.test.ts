// The device surface of the addon (cuda.*: typed buffers, every tensor op, sgemm, AdamW, random)
// against the host ops of the same name on the same random inputs, its handle errors, and the Philox
// random fills on the host.
//
// Where it runs: on a CUDA build with a GPU, directly (the GPU kernels against the host kernels,
// within the tolerances below). Elsewhere (a CPU build), the device is emulated on the host by
// FUSED_DISTILL_EMULATE_DEVICE=1, which the addon reads from the real environment once per process:
// jest's sandboxed process.env cannot set it and another test file may already have loaded the addon
// in this worker, so the file runs itself again in a child jest with the variable set. Under the
// emulation the device ops call the host kernels, so results must be bit-identical: what is tested is
// the N-API surface (operand reading, dtypes, lengths, the device rules such as gather's zeros).
import { DeviceBuffer, NumericArray, ReduceOpName } from '../src/native';
import { addon, hiddenLoss, rankingTotal } from './helpers/addon';
import { EMULATED, deviceTestsHere } from './helpers/device';
import { expectError } from './helpers/errors';
import { matmulRelativeError, mulberry32 } from './helpers/reference64';

const cuda = addon.cuda;

// ---- Philox on the host (no device needed) ----

/** Philox4x32-10 in plain JS, an independent reference for kernels/philox.h. */
function philox(c: number[], k: number[]): number[] {
  const mulhilo = (a: number, b: number): [number, number] => {
    const p = BigInt(a) * BigInt(b);
    return [Number(p >> 32n) >>> 0, Number(p & 0xffffffffn) >>> 0];
  };
  let [c0, c1, c2, c3] = c;
  let [k0, k1] = k;
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulhilo(0xd2511f53, c0);
    const [hi1, lo1] = mulhilo(0xcd9e8d57, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return [c0, c1, c2, c3];
}

describe('Philox random fills on the host', () => {
  test('the JS reference reproduces the Random123 known-answer vectors', () => {
    expect(philox([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    const ones = 0xffffffff;
    expect(philox([ones, ones, ones, ones], [ones, ones])).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  });

  test('randomUniform(0, 1) is word i % 4 of block i / 4 under key = seed, top 24 bits / 2^24', () => {
    const seed = 2 ** 40 + 12345; // both key words non-zero
    const out = new Float32Array(10);
    addon.randomUniform(out, 0, 1, seed);
    const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
    const want = Array.from(
      { length: 10 },
      (_, i) => (philox([Math.floor(i / 4), 0, 0, 0], key)[i % 4] >>> 8) / 2 ** 24,
    );
    expect(Array.from(out)).toEqual(want);
  });

  test('deterministic per seed, different across seeds, independent of the thread count', () => {
    const a = new Float32Array(100003);
    const b = new Float32Array(100003);
    const threads = addon.getNumThreads();
    for (const fill of [addon.randomUniform, addon.randomNormal]) {
      addon.setNumThreads(1);
      fill(a, 0, 1, 7);
      addon.setNumThreads(2);
      fill(b, 0, 1, 7);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      fill(b, 0, 1, 8);
      let same = 0;
      for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
      expect(same).toBeLessThan(50);
    }
    addon.setNumThreads(threads);
    // A prefix of a longer fill is the shorter fill.
    const short = new Float32Array(7);
    addon.randomNormal(short, 0, 1, 7);
    addon.randomNormal(a, 0, 1, 7);
    expect(Array.from(short)).toEqual(Array.from(a.subarray(0, 7)));
  });

  const N = 1 << 20;
  function moments(x: Float32Array): { mean: number; variance: number; min: number; max: number } {
    let s = 0;
    let s2 = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of x) {
      s += v;
      s2 += v * v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const mean = s / x.length;
    return { mean, variance: s2 / x.length - mean * mean, min, max };
  }

  test('uniform: in [lo, hi), mean and variance within 5 standard errors', () => {
    const x = new Float32Array(N);
    addon.randomUniform(x, -2, 3, 123);
    const m = moments(x);
    expect(m.min).toBeGreaterThanOrEqual(-2);
    expect(m.max).toBeLessThan(3);
    // U(-2, 3): mean 0.5, variance 25/12; sd of the sample mean sqrt(25/12/N), of the sample
    // variance sqrt((mu4 - sigma^4)/N) with mu4 = 625/80.
    expect(Math.abs(m.mean - 0.5)).toBeLessThan(5 * Math.sqrt(25 / 12 / N));
    expect(Math.abs(m.variance - 25 / 12)).toBeLessThan(5 * Math.sqrt((625 / 80 - (25 / 12) ** 2) / N));
  });

  test('normal: mean and variance within 5 standard errors, tails as a normal has them', () => {
    const x = new Float32Array(N);
    addon.randomNormal(x, 1.5, 2, 321);
    const m = moments(x);
    expect(Math.abs(m.mean - 1.5)).toBeLessThan(5 * Math.sqrt(4 / N));
    expect(Math.abs(m.variance - 4)).toBeLessThan(5 * Math.sqrt((2 * 16) / N)); // var of s^2: 2 sigma^4 / N
    let beyond2 = 0; // P(|z| > 2) = 0.0455
    for (const v of x) beyond2 += Math.abs((v - 1.5) / 2) > 2 ? 1 : 0;
    expect(Math.abs(beyond2 / N - 0.0455)).toBeLessThan(5 * Math.sqrt((0.0455 * 0.9545) / N));
    expect(x.every(Number.isFinite)).toBe(true);
  });

  test('argument errors name the argument', () => {
    const out = new Float32Array(4);
    expectError(() => addon.randomUniform(out, 1, 0, 1), /lo must be <= hi/);
    expectError(() => addon.randomNormal(out, 0, -1, 1), /stddev must be >= 0/);
    expectError(() => addon.randomUniform(out, 0, 1, -1), /seed must be an integer/);
    expectError(() => addon.randomUniform(out, 0, 1, 0.5), /seed must be an integer/);
    expectError(
      () => addon.randomUniform(new Int32Array(4) as unknown as Float32Array, 0, 1, 1),
      /out must be a Float32Array/,
    );
  });
});

// ---- the device surface ----

if (deviceTestsHere(__filename)) {
  describe(`device API on ${cuda.deviceName()}`, () => {
    const live = new Set<DeviceBuffer>();
    afterAll(() => {
      for (const h of live) cuda.free(h);
    });

    const dtypeOf = (x: NumericArray) =>
      x instanceof Float32Array ? 'float32' : x instanceof Int32Array ? 'int32' : 'bool';
    function put(x: NumericArray): DeviceBuffer {
      const h = cuda.alloc(x.length, dtypeOf(x));
      live.add(h);
      cuda.upload(h, x);
      return h;
    }
    function get(h: DeviceBuffer): NumericArray {
      const n = cuda.size(h);
      const t = cuda.dtype(h);
      const out = t === 'float32' ? new Float32Array(n) : t === 'int32' ? new Int32Array(n) : new Uint8Array(n);
      cuda.download(h, out);
      return out;
    }
    function drop(h: DeviceBuffer): void {
      cuda.free(h);
      live.delete(h);
    }

    type Arg = unknown;
    const isTensor = (v: Arg): v is NumericArray =>
      v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array;
    /**
     * Runs addon[name] on copies of args and cuda[name] on device copies (typed arrays -> buffers;
     * arrays of typed arrays -> arrays of buffers; Float64Arrays stay host arrays), then compares every
     * typed-array argument afterwards (the outputs, and the inputs, which must be untouched) and the
     * return values. tol: relative tolerance on a GPU (0 under the emulation: bit-identical).
     */
    function same(name: string, args: Arg[], tol = 0): void {
      const copy = (v: Arg): Arg => (isTensor(v) ? v.slice() : Array.isArray(v) ? v.map(copy) : v);
      const hostArgs = args.map(copy);
      const devArgs = args.map((v) =>
        isTensor(v)
          ? put(v)
          : Array.isArray(v) && v.length > 0 && isTensor(v[0])
            ? v.map((x) => put(x as NumericArray))
            : v,
      );
      const hostRet = (addon as unknown as Record<string, (...a: Arg[]) => unknown>)[name](...hostArgs);
      const devRet = (cuda as unknown as Record<string, (...a: Arg[]) => unknown>)[name](...devArgs);
      const t = EMULATED ? 0 : tol;
      const compare = (want: NumericArray, got: NumericArray, what: string) => {
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          const w = want[i];
          const g = got[i];
          if (Object.is(w, g) || (Number.isNaN(w) && Number.isNaN(g))) continue;
          if (t > 0 && Math.abs(w - g) <= t * Math.max(1, Math.abs(w))) continue;
          throw new Error(`${name}: ${what}[${i}] = ${g} on the device, ${w} on the host`);
        }
      };
      args.forEach((_, p) => {
        if (isTensor(hostArgs[p])) compare(hostArgs[p] as NumericArray, get(devArgs[p] as DeviceBuffer), `arg ${p}`);
        if (
          Array.isArray(devArgs[p]) &&
          typeof (devArgs[p] as Arg[])[0] === 'number' &&
          isTensor((args[p] as Arg[])[0])
        )
          (devArgs[p] as DeviceBuffer[]).forEach((h, k) =>
            compare((hostArgs[p] as NumericArray[])[k], get(h), `arg ${p}[${k}]`),
          );
      });
      if (typeof hostRet === 'number') {
        if (t === 0) expect(devRet).toBe(hostRet);
        else expect(Math.abs((devRet as number) - hostRet)).toBeLessThanOrEqual(t * Math.max(1, Math.abs(hostRet)));
      }
      for (const v of devArgs) {
        if (typeof v === 'number' && live.has(v)) drop(v);
        if (Array.isArray(v)) for (const h of v) if (typeof h === 'number' && live.has(h)) drop(h);
      }
    }

    const rand = mulberry32(0x5eed);
    const f32 = (n: number, scale = 4) => Float32Array.from({ length: n }, () => (rand() - 0.5) * scale);
    const i32 = (n: number, lo = -9, hi = 9) =>
      Int32Array.from({ length: n }, () => lo + Math.floor(rand() * (hi - lo + 1)));
    const u8 = (n: number) => Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
    const prod = (s: number[]) => s.reduce((p, d) => p * d, 1);
    // A float input with the special values every kernel must carry through.
    const special = (n: number) => {
      const x = f32(n);
      [NaN, Infinity, -Infinity, 0, -0, 1e-40].forEach((v, i) => {
        if (i < n) x[(i * 7) % n] = v;
      });
      return x;
    };

    test('buffers: alloc/dtype/size, upload/download of every dtype, copy, memoryStats', () => {
      const before = cuda.memoryStats().buffers;
      for (const x of [f32(5), i32(5), u8(5)] as NumericArray[]) {
        const h = put(x);
        expect(cuda.dtype(h)).toBe(dtypeOf(x));
        expect(cuda.size(h)).toBe(5);
        expect(Array.from(get(h))).toEqual(Array.from(x));
        const partial = x.slice(0, 2).fill(1 as never);
        cuda.upload(h, partial);
        expect(Array.from(get(h))).toEqual([1, 1, ...Array.from(x.subarray(2))]);
        const h2 = cuda.alloc(7, dtypeOf(x));
        live.add(h2);
        cuda.copy(h2, h, 5);
        expect(Array.from(get(h2)).slice(0, 5)).toEqual(Array.from(get(h)));
      }
      const dflt = cuda.alloc(3);
      live.add(dflt);
      expect(cuda.dtype(dflt)).toBe('float32');
      expect(cuda.memoryStats().buffers).toBeGreaterThan(before);
    });

    test('handle errors name the argument: freed, wrong dtype, too short, wrong host array', () => {
      const x = put(f32(6));
      const out = put(f32(6));
      const dead = cuda.alloc(6);
      cuda.free(dead);
      const ops = addon.mathOps.unary;
      expectError(
        () => cuda.unaryOp(ops.Exp, dead, out),
        /cuda\.unaryOp: x is not a live device buffer handle/,
        'RangeError',
      );
      expectError(() => cuda.unaryOp(ops.Exp, x, dead), /out is not a live device buffer handle/, 'RangeError');
      expectError(() => cuda.free(dead), /buffer is not a live device buffer handle/);
      expectError(() => cuda.unaryOp(ops.Exp, put(i32(6)), out), /x must be a float32 device buffer/, 'TypeError');
      expectError(() => cuda.unaryOp(ops.Exp, x, put(f32(5))), /out must have 6 elements, got 5/, 'RangeError');
      expectError(
        () => cuda.unaryOp(ops.Exp, new Float32Array(6) as never, out),
        /x must be a float32 device buffer/,
        'TypeError',
      );
      expectError(() => cuda.softmax(x, 2, 3, put(f32(5))), /out must be a float32 device buffer of length 6/);
      expectError(
        () => cuda.sgemm(x, put(f32(5)), out, 1, 2, 3, 3, false, false, null, null),
        /b must be a float32 device buffer of length/,
      );
      expectError(
        () => cuda.gather(x, [1, 1, 6, 1], put(f32(2)), put(f32(2))),
        /indices must be an int32 device buffer/,
      );
      expectError(
        () => cuda.concat([x, put(i32(6))], [[6], [6]], 0, put(f32(12))),
        /inputs\[1\] is a int32 device buffer/,
      );
      expectError(
        () => cuda.adamwUpdate(x, x, put(f32(6)), put(f32(6)), put(f32(5)), 0.9, 0.999, 1e-8, 1, 1e-3, 1, 1),
        /out must be a float32 device buffer of length 6/,
      );
      expectError(() => cuda.sumSquares(put(u8(3))), /x must be a float32 device buffer/);
      expectError(() => cuda.randomUniform(put(i32(3)), 0, 1, 1), /out must be a float32 device buffer/);
      expectError(
        () => cuda.upload(x, new Int32Array(6)),
        /src must be a Float32Array \(the buffer is float32\)/,
        'TypeError',
      );
      expectError(() => cuda.upload(x, new Float32Array(7)), /src must have 1\.\.6 elements, has 7/, 'RangeError');
      expectError(
        () => cuda.download(put(u8(2)), new Float32Array(2)),
        /dst must be a Uint8Array \(the buffer is bool\)/,
      );
      expectError(() => cuda.copy(x, put(i32(6)), 6), /src is a int32 buffer but dst is a float32 buffer/);
      expectError(() => cuda.copy(x, put(f32(3)), 4), /n = 4 exceeds the size of src/);
      expectError(() => cuda.alloc(4, 'float64' as never), /dtype must be 'float32', 'int32' or 'bool'/);
      expectError(() => cuda.alloc(0), /length must be an integer in \[1, 2\^40\]/);
      expectError(() => cuda.setTF32(1 as never), /on must be a boolean/);
      expectError(() => cuda.unaryOp(ops.Exp, 1.5, out), /x is not a live device buffer handle/);
      // The losses still take float32 buffers, now checked for it.
      expectError(() => cuda.scale(put(i32(4)), 2, out), /x must be a float32 device buffer/);
    });

    test('binaryOp: every opcode, float32 and int32, with broadcasting', () => {
      const cmp = new Set(['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual']);
      for (const [opName, op] of Object.entries(addon.mathOps.binary)) {
        for (const t of ['float32', 'int32']) {
          const a = t === 'float32' ? special(24) : i32(24);
          const b = t === 'float32' ? f32(3) : i32(3, 1, 5);
          const outType = cmp.has(opName) ? 'bool' : opName === 'FloorDiv' ? 'int32' : t;
          const out =
            outType === 'float32'
              ? new Float32Array(24)
              : outType === 'int32'
                ? new Int32Array(24)
                : new Uint8Array(24);
          try {
            addon.binaryOp(op, a.slice(), [2, 4, 3], b.slice(), [3], out.slice());
          } catch {
            continue; // the op does not take this input type (the host says so; the device, below, the same)
          }
          same('binaryOp', [op, a, [2, 4, 3], b, [3], out], 2e-6);
          same('binaryOp', [op, b, [3, 1], a.subarray(0, 4), [4], out.subarray(0, 12)], 2e-6); // [3,1] x [4] -> [3,4]
        }
      }
    });

    test('unaryOp: every opcode (attributes included), cast between every pair, fill of every dtype', () => {
      const boolOut = new Set(['IsNan', 'IsInf', 'IsFinite']);
      for (const [opName, op] of Object.entries(addon.mathOps.unary)) {
        const x = special(50);
        const out = boolOut.has(opName) ? new Uint8Array(50) : new Float32Array(50);
        same('unaryOp', [op, x, out, 0.2, 0.7], 4e-6);
      }
      const make = [(n: number) => special(n), (n: number) => i32(n), (n: number) => u8(n)];
      for (const from of make) for (const to of make) same('cast', [from(20), to(20)]);
      for (const v of [3.7, -1, 300, NaN, -Infinity, 2 ** 31 + 5]) for (const mk of make) same('fill', [mk(9), v]);
    });

    test('reduce: every op and dtype it takes, over several axis sets', () => {
      const ops: ReduceOpName[] = ['sum', 'mean', 'prod', 'max', 'min', 'any', 'all', 'argMax', 'argMin'];
      const shape = [3, 4, 5];
      const axesSets = [[0], [1], [2], [0, 2], [-1, 0], [0, 1, 2]];
      for (const op of ops)
        for (const mk of [() => special(60), () => i32(60), () => u8(60)] as Array<() => NumericArray>) {
          for (const axes of axesSets) {
            if ((op === 'argMax' || op === 'argMin') && axes.length !== 1) continue;
            const kept = shape.filter((_, i) => !axes.map((a) => (a + 3) % 3).includes(i));
            const n = prod(kept);
            for (const out of [new Float32Array(n), new Int32Array(n), new Uint8Array(n)] as NumericArray[]) {
              const x = mk();
              try {
                addon.reduce(op, x.slice(), shape, axes, out.slice());
              } catch {
                continue; // not this output type (or not this input type)
              }
              same('reduce', [op, x, shape, axes, out], 1e-5);
            }
          }
        }
    });

    test('layerNorm, layerNormGrad, gelu, geluGrad, biasGelu, biasGeluGrad (the fused layers, kernels/nn.h)', () => {
      for (const [rows, cols] of [
        [1, 1],
        [7, 33],
        [65, 768],
        [3, 2000],
      ]) {
        const n = rows * cols;
        const zeros = (k: number) => new Float32Array(k);
        same('layerNorm', [f32(n), f32(cols), f32(cols), rows, cols, 1e-5, zeros(n), zeros(rows), zeros(rows)], 2e-5);
        same('layerNorm', [f32(n), f32(cols), f32(cols), rows, cols, 1e-12, zeros(n), null, null], 2e-5);
        const rstd = Float32Array.from({ length: rows }, () => 0.5 + rand());
        same(
          'layerNormGrad',
          [f32(n), f32(n), f32(cols), f32(rows), rstd, rows, cols, zeros(n), zeros(cols), zeros(cols)],
          1e-4,
        );
        same('gelu', [f32(n, 12), zeros(n)], 4e-6);
        same('geluGrad', [f32(n), f32(n, 12), zeros(n)], 4e-6);
        // The bias / residual variants (addLayerNorm, biasGelu).
        same(
          'layerNorm',
          [f32(n), f32(cols), f32(cols), rows, cols, 1e-5, zeros(n), zeros(rows), zeros(rows), f32(n), f32(cols)],
          2e-5,
        );
        same('layerNorm', [f32(n), f32(cols), f32(cols), rows, cols, 1e-5, zeros(n), null, null, f32(n), null], 2e-5);
        same(
          'layerNormGrad',
          [
            ...[f32(n), f32(n), f32(cols), f32(rows), rstd, rows, cols, zeros(n), zeros(cols), zeros(cols)],
            ...[f32(n), f32(cols), zeros(cols)],
          ],
          1e-4,
        );
        same('biasGelu', [f32(n, 12), f32(cols), zeros(n)], 4e-6);
        same('biasGelu', [f32(n, 12), f32(cols), zeros(n), zeros(n)], 4e-6);
        same('biasGeluGrad', [f32(n), f32(n, 12), f32(cols), zeros(n), zeros(cols)], 1e-4);
        same('biasGeluGrad', [f32(n), f32(n, 12), f32(cols), zeros(n), zeros(cols), f32(n)], 1e-4);
      }
    });

    test('softmax / log-softmax, in place and not', () => {
      for (const log of [false, true]) {
        same('softmax', [f32(35, 20), 5, 7, new Float32Array(35), log], 2e-6);
        const x = f32(35, 20);
        const hostX = x.slice();
        addon.softmax(hostX, 7, 5, hostX, log);
        const h = put(x);
        cuda.softmax(h, 7, 5, h, log);
        const got = get(h);
        hostX.forEach((w, i) =>
          expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(EMULATED ? 0 : 2e-6 * Math.max(1, Math.abs(w))),
        );
      }
    });

    test('transpose, slice, concat, tile on every dtype', () => {
      for (const mk of [(n: number) => special(n), (n: number) => i32(n), (n: number) => u8(n)]) {
        same('transpose', [mk(120), [2, 3, 4, 5], [3, 1, 0, 2], mk(120)]);
        same('transpose', [mk(6), [6], [0], mk(6)]);
        same('slice', [mk(120), [2, 3, 4, 5], [1, 0, 2, 1], [1, 3, 2, 3], mk(18)]);
        same('concat', [
          [mk(24), mk(12), mk(36)],
          [
            [2, 4, 3],
            [2, 2, 3],
            [2, 6, 3],
          ],
          1,
          mk(72),
        ]);
        same('concat', [[mk(6), mk(4)], [[6], [4]], -1, mk(10)]);
        same('tile', [mk(6), [2, 3], [3, 2], mk(36)]);
      }
    });

    test('gather in range equals the host; out of range gives zeros (no check on the device)', () => {
      for (const mk of [(n: number) => special(n), (n: number) => i32(n), (n: number) => u8(n)]) {
        // x [batch 2, outer 3, dim 4, slice 5], indices [2, 3]
        same('gather', [mk(120), [2, 3, 4, 5], i32(6, 0, 3), mk(2 * 3 * 3 * 5)]);
        same('gather', [mk(20), [1, 1, 4, 5], Int32Array.from([3, 0, 0, 2]), mk(20)]);
      }
      const x = Float32Array.from({ length: 12 }, (_, i) => i + 1); // [1, 1, 4, 3]
      const out = put(new Float32Array(9).fill(NaN));
      cuda.gather(put(x), [1, 1, 4, 3], put(Int32Array.from([2, -1, 4])), out);
      expect(Array.from(get(out))).toEqual([7, 8, 9, 0, 0, 0, 0, 0, 0]);
      expectError(
        () => addon.gather(x, [1, 1, 4, 3], Int32Array.from([2, -1, 4]), new Float32Array(9)),
        /indices\[1\] = -1 is out of range/,
      );
    });

    test('unsortedSegmentSum, ids out of range dropped', () => {
      same('unsortedSegmentSum', [f32(40), 10, 4, i32(10, -1, 4), 4, new Float32Array(16)], 1e-6);
    });

    test('sgemm: transposes, broadcast operands, batch offsets (strided and general), k = 0', () => {
      const tol = 1e-5;
      for (const tA of [false, true])
        for (const tB of [false, true])
          same(
            'sgemm',
            [f32(3 * 5 * 7), f32(3 * 7 * 4), new Float32Array(3 * 5 * 4), 3, 5, 4, 7, tA, tB, null, null],
            tol,
          );
      same('sgemm', [f32(5 * 7), f32(3 * 7 * 4), new Float32Array(60), 3, 5, 4, 7, false, false, null, null], tol); // a broadcast
      same('sgemm', [f32(3 * 35), f32(28), new Float32Array(60), 3, 5, 4, 7, false, true, null, null], tol); // b broadcast
      // Offsets in a progression (a strided batch) and general ones (tfjs's [2,1] x [1,3] broadcasting).
      same(
        'sgemm',
        [
          f32(4 * 35),
          f32(28),
          new Float32Array(60),
          3,
          5,
          4,
          7,
          false,
          false,
          Float64Array.from([35, 70, 105]),
          Float64Array.from([0, 0, 0]),
        ],
        tol,
      );
      same(
        'sgemm',
        [
          f32(2 * 35),
          f32(3 * 28),
          new Float32Array(6 * 20),
          6,
          5,
          4,
          7,
          false,
          false,
          Float64Array.from([0, 0, 0, 35, 35, 35]),
          Float64Array.from([0, 28, 56, 0, 28, 56]),
        ],
        tol,
      );
      // k = 0: c becomes zeros. (A buffer is never empty: offsets let a 1-element buffer stand for 2 x 0.)
      same('sgemm', [
        f32(1),
        f32(1),
        new Float32Array(6).fill(NaN),
        1,
        2,
        3,
        0,
        false,
        false,
        Float64Array.from([0]),
        Float64Array.from([0]),
      ]);
      // TF32: the mode reads back. On a GPU the products carry TF32's rounding (10 of fp32's 23
      // mantissa bits: beyond fp32's K * 2^-24 of sum |a||b|, within 2^-9 of it; Ampere or later);
      // under the emulation they are the host's fp32, bit for bit.
      const K = 64;
      const a = f32(K * K);
      const b = f32(K * K);
      const host = new Float32Array(K * K);
      addon.sgemm(a, b, host, 1, K, K, K, false, false, null, null);
      const c = put(new Float32Array(K * K));
      cuda.setTF32(true);
      expect(cuda.getTF32()).toBe(true);
      cuda.sgemm(put(a), put(b), c, 1, K, K, K, false, false, null, null);
      cuda.setTF32(false);
      expect(cuda.getTF32()).toBe(false);
      const tf32 = get(c) as Float32Array;
      const error = (got: Float32Array) => matmulRelativeError(a, b, got, K);
      expect(error(host)).toBeLessThanOrEqual(K * 2 ** -24);
      if (EMULATED) expect(Array.from(tf32)).toEqual(Array.from(host));
      else {
        expect(error(tf32)).toBeGreaterThan(K * 2 ** -24);
        expect(error(tf32)).toBeLessThanOrEqual(2 ** -9 + K * 2 ** -24);
      }
      same(
        'sgemm',
        [f32(64 * 64), f32(64 * 64), new Float32Array(64 * 64), 1, 64, 64, 64, true, false, null, null],
        tol,
      );
    });

    test('adamwUpdate is bit-identical to the host (out separate and out === p, moments in place or not); sumSquares', () => {
      const n = 1000;
      const args = (out: Float32Array) => [
        f32(n),
        f32(n, 0.1),
        f32(n, 0.01),
        f32(n, 0.001).map(Math.abs),
        out,
        0.9,
        0.999,
        1e-8,
        0.9999,
        1e-3 / 0.1,
        Math.sqrt(1 - 0.999),
        0.5,
      ];
      same('adamwUpdate', args(new Float32Array(n))); // exact on a GPU too: double math, no contraction
      same('adamwUpdate', [...args(new Float32Array(n)), new Float32Array(n), new Float32Array(n)]); // the new moments into mOut, vOut
      const p = f32(n);
      const [, g, m, v] = args(p) as Float32Array[];
      const host = [p, g, m, v].map((x) => x.slice());
      addon.adamwUpdate(host[0], host[1], host[2], host[3], host[0], 0.9, 0.999, 1e-8, 0.9999, 0.01, 0.03, 1);
      const dev = [p, g, m, v].map(put);
      cuda.adamwUpdate(dev[0], dev[1], dev[2], dev[3], dev[0], 0.9, 0.999, 1e-8, 0.9999, 0.01, 0.03, 1);
      [0, 2, 3].forEach((k) => expect(Buffer.from(get(dev[k]).buffer).equals(Buffer.from(host[k].buffer))).toBe(true));
      same('sumSquares', [f32(100003)], 1e-12);
    });

    test('randomUniform / randomNormal: the host numbers for the same seed', () => {
      same('randomUniform', [new Float32Array(1001), -1, 2, 99]);
      same('randomNormal', [new Float32Array(1001), 0.5, 3, 99], 1e-6);
    });

    test('the losses still work on (float32) buffers', () => {
      const w = Float32Array.from([0, 0, 0, 0, 0, 0, 1]);
      const s = f32(12);
      const t = f32(12);
      const grad = new Float32Array(12);
      const total = rankingTotal(s, t, null, null, 3, 4, w, 1, 1, 1, grad);
      const result = put(new Float32Array(8));
      const dgrad = put(new Float32Array(12));
      cuda.rankingObjective(put(s), put(t), null, null, 3, 4, w, 1, 1, 1, dgrad, result);
      expect(get(result)[0]).toBeCloseTo(total, 5);
      (get(dgrad) as Float32Array).forEach((g, i) => expect(g).toBeCloseTo(grad[i], 6));
      const loss = put(new Float32Array(1));
      cuda.hiddenMSE(put(s), put(t), null, 1, 1, 3, 4, null, loss);
      expect(get(loss)[0]).toBeCloseTo(hiddenLoss(s, t, null, 1, 1, 3, 4, null), 5);
    });
  });
}
