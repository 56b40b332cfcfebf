// addon.cuda.nccl (kernels/nccl.h, native/nccl_ops.cc): collectives across processes on device buffers.
//
// Where it runs: in a CPU build without the emulation, NCCL must say it is unavailable and why. The
// device block runs on one rank: here on the host emulation (a child jest with
// FUSED_DISTILL_EMULATE_DEVICE=1, tests/helpers/device.ts), where a one-rank communicator is emulated;
// on a GPU (the bundled suite of bench/gpu/run.sh) against the real NCCL, loaded from
// FUSED_DISTILL_NCCL_LIBRARY. A one-rank collective must give back exactly its input (a gather of one
// is a copy, a sum of one is the value, a broadcast from the only rank changes nothing), so every
// check is exact. More than one rank (two processes) and the timeout: bench/gpu/nccl_check.js.
import { DeviceBuffer, NumericArray } from '../src/native';
import { addon } from './helpers/addon';
import { EMULATED, ON_DEVICE, deviceTestsHere } from './helpers/device';
import { expectError } from './helpers/errors';
import { mulberry32 } from './helpers/reference64';

const cuda = addon.cuda;
const nccl = cuda.nccl;

if (!ON_DEVICE && !EMULATED) {
  describe('NCCL without a device', () => {
    test('isAvailable() is false and lastError() says why; every call throws that reason', () => {
      expect(nccl.isAvailable()).toBe(false);
      const why = nccl.lastError();
      if (!addon.builtWithCuda()) expect(why).toMatch(/NCCL is unavailable: fused-distill was built without CUDA/);
      else expect(why.length).toBeGreaterThan(0); // a CUDA build without a GPU: the device's reason
      expectError(() => nccl.uniqueId(), /cuda\.nccl\.uniqueId: .+/);
      expectError(() => nccl.version(), /cuda\.nccl\.version: .+/);
      expectError(() => nccl.initRank(new Uint8Array(128), 1, 0), /cuda\.nccl\.initRank: .+/);
      expect(nccl.isAvailable()).toBe(false); // asking again does not change the answer
    });
  });
}

if (deviceTestsHere(__filename)) {
  describe(`NCCL, one rank, on ${cuda.deviceName()}`, () => {
    const live = new Set<DeviceBuffer>();
    function put(x: NumericArray, length = x.length): DeviceBuffer {
      const dtype = x instanceof Float32Array ? 'float32' : x instanceof Int32Array ? 'int32' : 'bool';
      const h = cuda.alloc(length, dtype);
      live.add(h);
      cuda.upload(h, x);
      return h;
    }
    function get<T extends NumericArray>(h: DeviceBuffer, out: T): T {
      cuda.download(h, out);
      return out;
    }
    const randomFloats = (n: number, seed: number) => {
      const r = mulberry32(seed);
      return Float32Array.from({ length: n }, () => (r() - 0.5) * 2000);
    };
    afterEach(() => nccl.destroy());
    afterAll(() => {
      for (const h of live) cuda.free(h);
    });

    test('available; version; uniqueId is 128 bytes, a new one each call', () => {
      expect(nccl.isAvailable()).toBe(true);
      const v = nccl.version();
      if (EMULATED) expect(v).toBe(0);
      else expect(v).toBeGreaterThanOrEqual(21400); // 2.14: ncclCommInitRankConfig
      const a = nccl.uniqueId();
      const b = nccl.uniqueId();
      expect(a).toBeInstanceOf(Uint8Array);
      expect(a.length).toBe(128);
      expect(b.length).toBe(128);
      expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    });

    test('initRank(id, 1, 0); allGather copies float32, int32 and bool buffers exactly', () => {
      nccl.initRank(nccl.uniqueId(), 1, 0);
      for (const n of [1, 7, 100003]) {
        const x = randomFloats(n, n);
        x[0] = NaN; // carried as bits, not as a number
        const send = put(x);
        const recv = put(new Float32Array(n + 3).fill(-1));
        nccl.allGather(send, recv, n);
        const out = get(recv, new Float32Array(n + 3));
        expect(Buffer.from(out.buffer, 0, 4 * n).equals(Buffer.from(x.buffer))).toBe(true);
        expect(Array.from(out.subarray(n))).toEqual([-1, -1, -1]); // past nranks * count: untouched
      }
      const ints = Int32Array.from({ length: 33 }, (_, i) => (i * 2654435761) | 0);
      const ri = put(new Int32Array(33));
      nccl.allGather(put(ints), ri, 33);
      expect(Array.from(get(ri, new Int32Array(33)))).toEqual(Array.from(ints));
      const bools = Uint8Array.from({ length: 9 }, (_, i) => i % 2);
      const rb = put(new Uint8Array(9));
      nccl.allGather(put(bools), rb, 9);
      expect(Array.from(get(rb, new Uint8Array(9)))).toEqual(Array.from(bools));
      // count below the send buffer's size: only the first count elements go
      const part = put(new Float32Array(5).fill(9));
      nccl.allGather(put(Float32Array.from([1, 2, 3, 4, 5])), part, 2);
      expect(Array.from(get(part, new Float32Array(5)))).toEqual([1, 2, 9, 9, 9]);
    });

    test('allGather in place (send is recv, rank 0) leaves the values', () => {
      nccl.initRank(nccl.uniqueId(), 1, 0);
      const x = randomFloats(64, 3);
      const b = put(x);
      nccl.allGather(b, b, 64);
      expect(Array.from(get(b, new Float32Array(64)))).toEqual(Array.from(x));
    });

    test('broadcast from rank 0 and allReduceSum of one rank leave the buffer exactly as it was', () => {
      nccl.initRank(nccl.uniqueId(), 1, 0);
      const x = randomFloats(1000, 5);
      x[3] = -0;
      x[4] = Infinity;
      const b = put(x);
      nccl.broadcast(b, 1000);
      nccl.broadcast(b, 1000, 0);
      expect(Buffer.from(get(b, new Float32Array(1000)).buffer).equals(Buffer.from(x.buffer))).toBe(true);
      nccl.allReduceSum(b, 999);
      const out = get(b, new Float32Array(1000));
      expect(Array.from(out)).toEqual(Array.from(x));
      expect(Object.is(out[3], -0)).toBe(true);
      const ints = put(Int32Array.from([5, -6, 7]));
      nccl.broadcast(ints, 3);
      expect(Array.from(get(ints, new Int32Array(3)))).toEqual([5, -6, 7]);
    });

    test('bad arguments: errors naming the argument', () => {
      const id = nccl.uniqueId();
      expectError(
        () => nccl.initRank(new Uint8Array(127), 1, 0),
        /initRank: id must be a Uint8Array of 128 bytes.*got 127 bytes/,
        'RangeError',
      );
      expectError(
        () => nccl.initRank(new Int8Array(128) as unknown as Uint8Array, 1, 0),
        /id must be a Uint8Array/,
        'TypeError',
      );
      expectError(() => nccl.initRank('id' as unknown as Uint8Array, 1, 0), /id must be a Uint8Array/, 'TypeError');
      expectError(() => nccl.initRank(id, 0, 0), /nranks must be an integer in \[1, 2147483647\], got 0/, 'RangeError');
      expectError(() => nccl.initRank(id, 1.5, 0), /nranks must be an integer/, 'RangeError');
      expectError(() => nccl.initRank(id, '1' as unknown as number, 0), /nranks must be a number/, 'TypeError');
      expectError(() => nccl.initRank(id, 1, 1), /rank must be an integer in \[0, 0\], got 1/, 'RangeError');
      expectError(() => nccl.initRank(id, 4, -1), /rank must be an integer in \[0, 3\], got -1/, 'RangeError');
      expectError(() => (nccl.initRank as (...a: unknown[]) => void)(id, 1), /expected 3 arguments, got 2/);

      nccl.initRank(id, 1, 0);
      const f = put(new Float32Array(4));
      const f2 = put(new Float32Array(2));
      const i32 = put(new Int32Array(4));
      expectError(() => nccl.allGather(f, i32, 4), /send is a float32 buffer but recv is a int32 buffer/, 'TypeError');
      expectError(() => nccl.allGather(f, f2, 5), /count = 5 exceeds the size of send \(4\)/, 'RangeError');
      expectError(
        () => nccl.allGather(f, f2, 3),
        /recv must hold nranks \* count = 1 \* 3 elements, has 2/,
        'RangeError',
      );
      expectError(() => nccl.allGather(f, f2, 0), /count must be an integer in \[1, 2\^40\], got 0/, 'RangeError');
      expectError(() => nccl.allGather(f, 999999, 1), /recv is not a live device buffer handle/, 'RangeError');
      expectError(
        () => nccl.allGather('x' as unknown as DeviceBuffer, f, 1),
        /send must be a device buffer handle/,
        'TypeError',
      );
      expectError(() => nccl.broadcast(f, 4, 1), /root must be an integer in \[0, 0\], got 1/, 'RangeError');
      expectError(() => nccl.broadcast(f2, 3), /count = 3 exceeds the size of buf \(2\)/, 'RangeError');
      expectError(
        () => nccl.allReduceSum(i32, 4),
        /buf must be a float32 device buffer, got a int32 buffer/,
        'TypeError',
      );
      const freed = cuda.alloc(4);
      cuda.free(freed);
      expectError(() => nccl.allReduceSum(freed, 4), /buf is not a live device buffer handle \(freed/, 'RangeError');
      // nothing above reached NCCL: the communicator still works
      const x = put(Float32Array.from([1, 2, 3, 4]));
      nccl.allGather(x, f, 4);
      expect(Array.from(get(f, new Float32Array(4)))).toEqual([1, 2, 3, 4]);
    });

    test('one communicator per process; a collective before initRank or after destroy says so', () => {
      const b = put(new Float32Array(4));
      expectError(() => nccl.allGather(b, b, 4), /cuda\.nccl\.allGather: no communicator \(initRank first/);
      nccl.initRank(nccl.uniqueId(), 1, 0);
      expectError(
        () => nccl.initRank(nccl.uniqueId(), 1, 0),
        /a communicator already \(rank 0 of 1\): destroy it first/,
      );
      nccl.destroy();
      nccl.destroy(); // a no-op without a communicator
      expectError(() => nccl.broadcast(b, 4), /cuda\.nccl\.broadcast: no communicator/);
      expectError(() => nccl.allReduceSum(b, 4), /cuda\.nccl\.allReduceSum: no communicator/);
      nccl.initRank(nccl.uniqueId(), 1, 0); // a new one after destroy
      nccl.allReduceSum(b, 4);
    });

    if (EMULATED)
      test('the emulation refuses more than one rank, saying why', () => {
        const e = expectError(
          () => nccl.initRank(nccl.uniqueId(), 2, 0),
          /host emulation has one rank only \(nranks = 2\)/,
        );
        expect(e.message).toMatch(/cuda\.nccl\.initRank/);
        expectError(() => nccl.allGather(put(new Float32Array(1)), put(new Float32Array(2)), 1), /no communicator/);
      });
  });
}
