// The CUDA path: on a device, every loss on device buffers against the CPU kernel (loss and gradient
// within 1e-5 relative). The device is a GPU, or elsewhere the addon's host emulation in a child jest
// (tests/helpers/device.ts), so these tests run on every machine. Without a device (a CPU build not
// emulating), every device call must throw the clear "built without CUDA" / "no CUDA device" error.
import { addon, attentionLoss, hiddenLoss } from './helpers/addon';
import { EMULATED, ON_DEVICE, deviceTestsHere } from './helpers/device';
import { expectError } from './helpers/errors';
import * as ref from './helpers/reference64';
import { TERMS, Term, expectGradClose, expectLossClose, mulberry32 } from './helpers/reference64';

const cuda = addon.cuda;
const CLEAR = /without CUDA|no CUDA device/;

if (!ON_DEVICE && !EMULATED) {
  describe('CUDA without a device (this process)', () => {
    test('every device call throws the clear error', () => {
      expect(cuda.isAvailable()).toBe(false);
      expect(cuda.lastError()).toMatch(CLEAR);
      const w = new Float32Array(7);
      w[6] = 1;
      // Well-formed calls (handles 1..4 are what alloc would hand out first): the only thing wrong
      // with them is that there is no device, and that is what the error must say.
      const calls: Array<[string, () => unknown]> = [
        ['deviceName', () => cuda.deviceName()],
        ['alloc', () => cuda.alloc(16)],
        ['free', () => cuda.free(1)],
        ['size', () => cuda.size(1)],
        ['upload', () => cuda.upload(1, new Float32Array(4))],
        ['download', () => cuda.download(1, new Float32Array(4))],
        ['synchronize', () => cuda.synchronize()],
        ['memoryStats', () => cuda.memoryStats()],
        ['emptyCache', () => cuda.emptyCache()],
        ['timerStart', () => cuda.timerStart()],
        ['timerStop', () => cuda.timerStop()],
        ['rankingObjective', () => cuda.rankingObjective(1, 2, null, null, 2, 2, w, 1, 1, 1, 3, 4)],
        ['hiddenMSE', () => cuda.hiddenMSE(1, 2, null, 1, 1, 2, 2, 3, 4)],
        ['attentionMSE', () => cuda.attentionMSE(1, 2, null, 1, 1, 2, 3, 4)],
        ['scale', () => cuda.scale(1, 2, 3)],
      ];
      const wrong: string[] = [];
      for (const [name, f] of calls) {
        const e = expectError(f); // must throw in any case
        if (!CLEAR.test(e.message)) wrong.push(`cuda.${name}: "${e.message}"`);
      }
      expect(wrong).toEqual([]);
    });
  });
}

if (deviceTestsHere(__filename)) {
  describe(`CUDA on ${cuda.deviceName()}`, () => {
    const live: number[] = [];
    function put(x: Float32Array): number {
      const h = cuda.alloc(x.length);
      live.push(h);
      cuda.upload(h, x);
      return h;
    }
    function zeros(n: number): number {
      const h = cuda.alloc(n);
      live.push(h);
      cuda.upload(h, new Float32Array(n));
      return h;
    }
    function get(h: number, n: number): Float32Array {
      const out = new Float32Array(n);
      cuda.download(h, out);
      return out;
    }
    afterEach(() => {
      for (const h of live.splice(0)) cuda.free(h);
    });
    afterAll(() => cuda.emptyCache());

    function gpuObjective(
      s: Float32Array,
      t: Float32Array | null,
      y: Float32Array | null,
      mask: Float32Array | null,
      rows: number,
      cols: number,
      w: Float32Array,
      T: number,
      sigma: number,
      margin: number,
    ): { total: number; parts: Float32Array; grad: Float32Array } {
      const n = rows * cols;
      const hs = put(s);
      const ht = t ? put(t) : null;
      const hy = y ? put(y) : null;
      const hm = mask ? put(mask) : null;
      const hg = put(new Float32Array(n).fill(Number.NaN)); // every entry must be written
      const hr = zeros(8);
      cuda.rankingObjective(hs, ht, hy, hm, rows, cols, w, T, sigma, margin, hg, hr);
      cuda.synchronize();
      const r = get(hr, 8);
      return { total: r[0], parts: r.subarray(1), grad: get(hg, n) };
    }

    function cpuObjective(
      s: Float32Array,
      t: Float32Array | null,
      y: Float32Array | null,
      mask: Float32Array | null,
      rows: number,
      cols: number,
      w: Float32Array,
      T: number,
      sigma: number,
      margin: number,
    ) {
      const grad = new Float32Array(rows * cols);
      const result = new Float32Array(8);
      addon.rankingObjective(s, t, y, mask, rows, cols, w, T, sigma, margin, grad, result);
      return { total: result[0], parts: result.subarray(1), grad };
    }

    const SHAPES: Array<[number, number]> = [
      [1, 7],
      [6, 1],
      [9, 7],
      [4, 257],
      [2, 2000],
      [512, 64],
    ];

    describe.each(TERMS.map((t) => [t] as [Term]))('%s: device vs CPU kernel', (name) => {
      test.each(SHAPES)('B=%i G=%i, masked and unmasked', (rows, cols) => {
        const k = TERMS.indexOf(name);
        for (const masked of [false, true]) {
          const rng = mulberry32(rows * 7 + cols + k * 1000 + (masked ? 1 : 0));
          const n = rows * cols;
          const s = ref.scores(rng, n, 2);
          const t = ref.scores(rng, n, 2);
          const y = name === 'pointwiseBCE' ? ref.unitLabels(rng, n) : ref.gradedLabels(rng, n);
          const mask = masked ? ref.mask2d(rng, rows, cols) : null;
          const w = new Float32Array(7);
          w[k] = 0.8;
          const c = cpuObjective(s, t, y, mask, rows, cols, w, 2.5, 1.3, 0.7);
          const g = gpuObjective(s, t, y, mask, rows, cols, w, 2.5, 1.3, 0.7);
          expectLossClose(g.total, c.total, 1e-5, `${name} total`);
          expectLossClose(g.parts[k], c.parts[k], 1e-5, `${name} part`);
          expectGradClose(g.grad, c.grad, 1e-5, name, 0.8 / n);
          // and both are right
          const r = ref.term(name, s, t, y, mask, rows, cols, { temperature: 2.5, sigma: 1.3, margin: 0.7 });
          expectLossClose(g.total, 0.8 * r.loss, 1e-5, `${name} vs reference64`);
        }
      });
    });

    test('combined objective, all seven weights, masked, with fully masked rows and ties', () => {
      const rng = mulberry32(77);
      const rows = 300;
      const cols = 50;
      const n = rows * cols;
      const s = ref.scores(rng, n, 2);
      const t = ref.scores(rng, n, 2);
      const y = ref.gradedLabels(rng, n, 2);
      for (let c = 0; c < cols; c++) y[4 * cols + c] = 1; // an all-ties row
      const mask = ref.mask2d(rng, rows, cols);
      const w = Float32Array.from([0.3, 1, 0.7, 0.5, 2, 0.25, 0.1]);
      const c = cpuObjective(s, t, y, mask, rows, cols, w, 3, 0.7, 0.4);
      const g = gpuObjective(s, t, y, mask, rows, cols, w, 3, 0.7, 0.4);
      expectLossClose(g.total, c.total, 1e-5, 'total');
      for (let k = 0; k < 7; k++) expectLossClose(g.parts[k], c.parts[k], 1e-5, TERMS[k]);
      expectGradClose(g.grad, c.grad, 1e-5, 'objective');
      for (let r = 2; r < rows; r += 5) for (let j = 0; j < cols; j++) expect(g.grad[r * cols + j]).toBe(0);
    });

    test.each(TERMS.map((t) => [t] as [Term]))(
      '%s on the device: logits of +-1e4 stay finite; NaN propagates only from valid entries',
      (name) => {
        const k = TERMS.indexOf(name);
        const rows = 4;
        const cols = 33;
        const n = rows * cols;
        const rng = mulberry32(500 + k);
        const s = new Float32Array(n).map(() => (rng() < 0.5 ? 1e4 : -1e4));
        const t = new Float32Array(n).map(() => (rng() < 0.5 ? 1e4 : -1e4));
        const y = name === 'pointwiseBCE' ? ref.unitLabels(rng, n) : ref.gradedLabels(rng, n);
        const mask = ref.mask2d(rng, rows, cols);
        const w = new Float32Array(7);
        w[k] = 1;
        const big = gpuObjective(s, t, y, mask, rows, cols, w, 2, 1, 1);
        expect(Number.isFinite(big.total)).toBe(true);
        for (const g of big.grad) if (!Number.isFinite(g)) throw new Error(`non-finite gradient ${g}`);
        expectLossClose(big.total, cpuObjective(s, t, y, mask, rows, cols, w, 2, 1, 1).total, 1e-5, name);

        const s2 = ref.scores(rng, n);
        const y2 = Float32Array.from({ length: n }, (_, i) => (name === 'pointwiseBCE' ? i % 2 : i % 4));
        const m2 = new Float32Array(n).fill(1);
        m2[cols + 5] = 0;
        const clean = gpuObjective(s2, t, y2, m2, rows, cols, w, 2, 1, 1);
        const sv = s2.slice();
        sv[cols + 3] = Number.NaN;
        expect(gpuObjective(sv, t, y2, m2, rows, cols, w, 2, 1, 1).total).toBeNaN();
        const sm = s2.slice();
        const tm = t.slice();
        sm[cols + 5] = Number.NaN;
        tm[cols + 5] = Number.NaN;
        const masked = gpuObjective(sm, tm, y2, m2, rows, cols, w, 2, 1, 1);
        expect(masked.total).toBe(clean.total);
        expect(Array.from(masked.grad)).toEqual(Array.from(clean.grad));
      },
    );

    test('all-ties labels on the device: pairwise loss 0 and zero gradient', () => {
      const s = ref.scores(mulberry32(78), 64);
      const y = new Float32Array(64).fill(1);
      const w = Float32Array.from([0, 1, 1, 0, 0, 0, 0]);
      const g = gpuObjective(s, null, y, null, 4, 16, w, 1, 1, 1);
      expect(g.total).toBe(0);
      expect(Array.from(g.grad)).toEqual(new Array(64).fill(0));
    });

    test.each([
      [1, 2, 5, 16, false],
      [3, 2, 9, 64, true],
      [2, 16, 128, 768, true],
    ] as Array<[number, number, number, number, boolean]>)(
      'hiddenMSE layers=%i B=%i L=%i H=%i masked=%s',
      (layers, batch, len, hs, masked) => {
        const rng = mulberry32(layers + batch + len + hs);
        const n = layers * batch * len * hs;
        const a = ref.scores(rng, n);
        const b = ref.scores(rng, n);
        const m = masked ? ref.tokenMask(rng, batch, len, { emptyRow: 1 }) : null;
        const cg = new Float32Array(n);
        const cl = hiddenLoss(a, b, m, layers, batch, len, hs, cg);
        const hg = put(new Float32Array(n).fill(Number.NaN));
        const hl = zeros(1);
        cuda.hiddenMSE(put(a), put(b), m ? put(m) : null, layers, batch, len, hs, hg, hl);
        cuda.synchronize();
        expectLossClose(get(hl, 1)[0], cl, 1e-5, 'hidden');
        expectGradClose(get(hg, n), cg, 1e-5, 'hidden');
      },
    );

    test.each([
      [1, 2, 6, false],
      [3, 2, 17, true],
      [8, 12, 64, true],
    ] as Array<[number, number, number, boolean]>)(
      'attentionMSE B=%i A=%i L=%i masked=%s',
      (batch, heads, len, masked) => {
        const rng = mulberry32(batch + heads + len);
        const n = batch * heads * len * len;
        const a = ref.scores(rng, n);
        const b = ref.scores(rng, n);
        const m = masked ? ref.tokenMask(rng, batch, len) : null;
        const cg = new Float32Array(n);
        const cl = attentionLoss(a, b, m, batch, heads, len, cg);
        const hg = put(new Float32Array(n).fill(Number.NaN));
        const hl = zeros(1);
        cuda.attentionMSE(put(a), put(b), m ? put(m) : null, batch, heads, len, hg, hl);
        cuda.synchronize();
        expectLossClose(get(hl, 1)[0], cl, 1e-5, 'attention');
        expectGradClose(get(hg, n), cg, 1e-5, 'attention');
      },
    );

    test('scale on the device', () => {
      const x = ref.scores(mulberry32(90), 1000);
      const hx = put(x);
      const ho = zeros(1000);
      cuda.scale(hx, -1.5, ho);
      cuda.synchronize();
      const out = get(ho, 1000);
      for (let i = 0; i < 1000; i++) expect(out[i]).toBe(Math.fround(x[i] * -1.5));
    });

    test('buffers: size, stale handles, memory stats', () => {
      const h = cuda.alloc(123);
      expect(cuda.size(h)).toBe(123);
      const before = cuda.memoryStats();
      expect(before.buffers).toBeGreaterThanOrEqual(1);
      cuda.free(h);
      expectError(() => cuda.size(h), /handle/);
      expectError(() => cuda.free(h), /handle/);
      expectError(() => cuda.upload(999999, new Float32Array(1)), /handle/);
      expect(cuda.memoryStats().buffers).toBe(before.buffers - 1);
      const small = cuda.alloc(4);
      live.push(small);
      expectError(() => cuda.upload(small, new Float32Array(5)), /src/);
    });
  });
}
