// The addon's AdamW element update and sum of squares: bit-identical to the same float64 formulas
// evaluated in JS (what src/distill/optimizer.ts documents), and clear errors for bad arguments; the
// FusedDistillAdamW kernel (src/distill/adamw_kernel.ts) on every host backend gives the addon's bits.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { registerNativeBackend } from '../src/backend/native/register';
import { ADAMW, adamwUpdate, adamwUpdateInPlace, sumSquares } from '../src/distill/adamw_kernel';
import { AdamW } from '../src/distill/optimizer';
import { addon } from '../src/native';
import { mulberry32 } from './helpers/reference64';

function randomArray(r: () => number, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

describe('adamwUpdate', () => {
  test.each([1, 7, 1000, 100003])('n = %i: bit-identical to the JS formula, in place and out of place', (n) => {
    const r = mulberry32(n);
    const p = randomArray(r, n),
      g = randomArray(r, n, 3),
      m = randomArray(r, n, 0.1),
      v = Float32Array.from(randomArray(r, n, 0.1), Math.abs);
    const [beta1, beta2, eps, decay, stepSize, sqrtBc2, scale] = [
      0.9,
      0.999,
      1e-8,
      1 - 1e-4 * 0.01,
      1e-4 / (1 - 0.9 ** 3),
      Math.sqrt(1 - 0.999 ** 3),
      0.37,
    ];
    const jm = m.slice(),
      jv = v.slice(),
      jp = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const gi = g[i] * scale;
      jm[i] = beta1 * jm[i] + (1 - beta1) * gi;
      jv[i] = beta2 * jv[i] + (1 - beta2) * gi * gi;
      jp[i] = p[i] * decay - (stepSize * jm[i]) / (Math.sqrt(jv[i]) / sqrtBc2 + eps);
    }
    const out = new Float32Array(n);
    const nm = m.slice(),
      nv = v.slice();
    addon.adamwUpdate(p, g, nm, nv, out, beta1, beta2, eps, decay, stepSize, sqrtBc2, scale);
    expect(Buffer.from(out.buffer).equals(Buffer.from(jp.buffer))).toBe(true);
    expect(Buffer.from(nm.buffer).equals(Buffer.from(jm.buffer))).toBe(true);
    expect(Buffer.from(nv.buffer).equals(Buffer.from(jv.buffer))).toBe(true);
    const inPlace = p.slice();
    addon.adamwUpdate(inPlace, g, m.slice(), v.slice(), inPlace, beta1, beta2, eps, decay, stepSize, sqrtBc2, scale);
    expect(Buffer.from(inPlace.buffer).equals(Buffer.from(jp.buffer))).toBe(true);
    // The new moments into their own arrays: m and v are left as they were.
    const [m0, v0, mOut, vOut] = [m.slice(), v.slice(), new Float32Array(n), new Float32Array(n)];
    addon.adamwUpdate(p, g, m0, v0, out.fill(0), beta1, beta2, eps, decay, stepSize, sqrtBc2, scale, mOut, vOut);
    expect(Buffer.from(out.buffer).equals(Buffer.from(jp.buffer))).toBe(true);
    expect(Buffer.from(mOut.buffer).equals(Buffer.from(jm.buffer))).toBe(true);
    expect(Buffer.from(vOut.buffer).equals(Buffer.from(jv.buffer))).toBe(true);
    expect(
      Buffer.from(m0.buffer).equals(Buffer.from(m.buffer)) && Buffer.from(v0.buffer).equals(Buffer.from(v.buffer)),
    ).toBe(true);
  });

  test('bad arguments', () => {
    const a = new Float32Array(4),
      b = new Float32Array(4),
      c = new Float32Array(4),
      d = new Float32Array(4),
      e = new Float32Array(4);
    const ok = [0.9, 0.999, 1e-8, 1, 1e-3, 0.5, 1] as const;
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok)).not.toThrow();
    expect(() => addon.adamwUpdate(a, new Float32Array(3), c, d, e, ...ok)).toThrow(
      /adamwUpdate: g must be a Float32Array of length 4/,
    );
    expect(() => addon.adamwUpdate(a, b, b, d, e, ...ok)).toThrow(/adamwUpdate: m .*overlap/);
    expect(() => addon.adamwUpdate(a, b, c, d, e, 0.9, 0.999, 1e-8, 1, NaN, 0.5, 1)).toThrow(
      /adamwUpdate: stepSize must be finite/,
    );
    expect(() => addon.adamwUpdate(a, b, c, d, e, 0.9, 0.999, 1e-8, 1, 1e-3, 0, 1)).toThrow(
      /adamwUpdate: sqrtBc2 must be > 0/,
    );
    expect(() => addon.adamwUpdate(new Float32Array(0), b, c, d, e, ...ok)).toThrow(/adamwUpdate: p must not be empty/);
    expect(() => (addon.adamwUpdate as unknown as (...x: unknown[]) => void)(a, b)).toThrow(
      /adamwUpdate: expected 12 arguments/,
    );
    const f = new Float32Array(4),
      h = new Float32Array(4);
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, f, h)).not.toThrow();
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, c, d)).not.toThrow(); // in place, spelled out
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, null, null)).not.toThrow();
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, new Float32Array(3), h)).toThrow(
      /adamwUpdate: mOut must be a Float32Array of length 4/,
    );
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, d, h)).toThrow(/adamwUpdate: mOut must not overlap/);
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, f, f)).toThrow(/adamwUpdate: mOut must not overlap/);
    expect(() => addon.adamwUpdate(a, b, c, d, e, ...ok, null, a)).toThrow(/adamwUpdate: vOut must not overlap/);
  });
});

describe('FusedDistillAdamW and the sum of squares on tensors', () => {
  registerNativeBackend();
  const n = 1003;
  const r = mulberry32(5);
  const [p, g, m] = [randomArray(r, n), randomArray(r, n, 3), randomArray(r, n, 0.1)];
  const v = Float32Array.from(randomArray(r, n, 0.1), Math.abs);
  const attrs = {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    decay: 1 - 1e-4 * 0.01,
    stepSize: 1e-4 / (1 - 0.9 ** 3),
    sqrtBc2: Math.sqrt(1 - 0.999 ** 3),
    scale: 0.37,
  };
  const want = [new Float32Array(n), m.slice(), v.slice()];
  addon.adamwUpdate(
    p,
    g,
    want[1],
    want[2],
    want[0],
    attrs.beta1,
    attrs.beta2,
    attrs.eps,
    attrs.decay,
    attrs.stepSize,
    attrs.sqrtBc2,
    attrs.scale,
  );

  test.each(['cpu', 'wasm', 'native'])(
    "%s: the addon's bits, the inputs untouched, no tensor left behind",
    async (backend) => {
      await tf.setBackend(backend);
      expect(tf.getKernel(ADAMW, backend)).toBeDefined();
      const before = tf.memory().numTensors;
      const inputs = [p, g, m, v].map((a) => tf.tensor1d(a));
      const outs = adamwUpdate(inputs[0], inputs[1], inputs[2], inputs[3], attrs);
      outs.forEach((t, k) =>
        expect(Buffer.from((t.dataSync() as Float32Array).buffer).equals(Buffer.from(want[k].buffer))).toBe(true),
      );
      inputs.forEach((t, k) =>
        expect(Buffer.from((t.dataSync() as Float32Array).buffer).equals(Buffer.from([p, g, m, v][k].buffer))).toBe(
          true,
        ),
      );
      expect(sumSquares(inputs[1])).toBe(addon.sumSquares(g));
      const empty = tf.tensor1d([]);
      expect(sumSquares(empty)).toBe(0);
      tf.dispose([...inputs, ...outs, empty]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});

describe('AdamW in place on native', () => {
  registerNativeBackend();
  // A native block (> 4 KB), a JS-array one (< 4 KB, out of place) and an odd length.
  const shapes: Record<string, number[]> = { big: [301, 17], small: [7], odd: [1031] };

  // Three AdamW steps (clipping and decay on) on `backend`; `hold` keeps a clone of each parameter
  // (it shares the memory: the update must then not be made in place).
  async function train(backend: string, hold: boolean) {
    await tf.setBackend(backend);
    const r = mulberry32(21);
    const params = new Map(
      Object.entries(shapes).map(([k, s]) => [k, tf.variable(tf.tensor(randomArray(r, s[0] * (s[1] ?? 1)), s))]),
    );
    const clones = hold ? [...params.values()].map((p) => tf.clone(p)) : [];
    const before = clones.map((c) => c.dataSync().slice());
    const opt = new AdamW(params, { lr: 1e-2, warmup: 1, totalSteps: 10, weightDecay: 0.1, clipNorm: 0.5 });
    for (let step = 0; step < 3; step++) {
      const grads = new Map([...params].map(([k, p]) => [k, tf.tensor(randomArray(r, p.size, 2), p.shape)]));
      opt.apply(grads);
      tf.dispose([...grads.values()]);
    }
    clones.forEach((c, i) => expect(Buffer.from(c.dataSync().buffer).equals(Buffer.from(before[i].buffer))).toBe(true));
    const out = [...params].map(([k, p]) => [p.dataSync().slice(), opt.moments(k).m, opt.moments(k).v]);
    opt.dispose();
    tf.dispose([...params.values(), ...clones]);
    return out.flat();
  }

  test("in place: the out-of-place kernel's bits ('cpu'), shared parameters left alone", async () => {
    const want = await train('cpu', false);
    for (const hold of [false, true]) {
      const got = await train('native', hold);
      got.forEach((a, i) => expect(Buffer.from(a.buffer).equals(Buffer.from(want[i].buffer))).toBe(true));
    }
  });

  test('only exclusive native blocks are updated in place', async () => {
    await tf.setBackend('native');
    const attrs = { beta1: 0.9, beta2: 0.999, eps: 1e-8, decay: 1, stepSize: 1e-3, sqrtBc2: 0.1, scale: 1 };
    const [p, g, m, v] = [0, 1, 2, 3].map(() => tf.fill([2000], 0.5));
    const alias = tf.reshape(p, [40, 50]); // shares p's data
    expect(adamwUpdateInPlace(p, g, m, v, attrs)).toBe(false);
    alias.dispose();
    const pBefore = p.dataSync()[0];
    expect(adamwUpdateInPlace(p, g, m, v, attrs)).toBe(true);
    expect(p.dataSync()[0]).not.toBe(pBefore);
    expect(adamwUpdateInPlace(p, p, m, v, attrs)).toBe(false); // the parameter as its own gradient
    const tiny = [0, 1, 2, 3].map(() => tf.fill([5], 0.5)); // JS arrays: views unknown, never in place
    expect(adamwUpdateInPlace(tiny[0], tiny[1], tiny[2], tiny[3], attrs)).toBe(false);
    await tf.setBackend('cpu');
    const onCpu = [0, 1, 2, 3].map(() => tf.fill([2000], 0.5));
    expect(adamwUpdateInPlace(onCpu[0], onCpu[1], onCpu[2], onCpu[3], attrs)).toBe(false);
    tf.dispose([p, g, m, v, ...tiny, ...onCpu]);
  });
});

// The addon's summation tree (kernels/cpu/optimizer.cpp) written out in JS: blocks of 16384, each
// summed in 8 interleaved lanes added pairwise, block sums added in order.
function treeSumSquares(x: Float32Array): number {
  let s = 0;
  for (let b = 0; b < x.length; b += 16384) {
    const end = Math.min(x.length, b + 16384);
    const lane = new Float64Array(8);
    let i = b;
    for (; i + 8 <= end; i += 8) for (let j = 0; j < 8; j++) lane[j] += x[i + j] * x[i + j];
    for (let j = 0; i < end; i++, j++) lane[j] += x[i] * x[i];
    s += lane[0] + lane[4] + (lane[2] + lane[6]) + (lane[1] + lane[5] + (lane[3] + lane[7]));
  }
  return s;
}

test("sumSquares: the fixed tree's bits for every thread count, within 1e-12 of the sequential sum", () => {
  const r = mulberry32(9);
  for (const n of [1, 7, 8, 9, 16383, 16384, 16385, 54321, 300007]) {
    const x = randomArray(r, n, 10);
    let seq = 0;
    for (let i = 0; i < x.length; i++) seq += x[i] * x[i];
    const want = treeSumSquares(x);
    const before = addon.getNumThreads();
    try {
      for (const threads of [1, 2, 3]) {
        addon.setNumThreads(threads);
        expect(addon.sumSquares(x)).toBe(want);
      }
    } finally {
      addon.setNumThreads(before);
    }
    expect(Math.abs(addon.sumSquares(x) - seq)).toBeLessThanOrEqual(1e-12 * seq);
  }
  expect(addon.sumSquares(new Float32Array(0))).toBe(0);
  expect(addon.sumSquares(Float32Array.of(3, Infinity))).toBe(Infinity);
  expect(addon.sumSquares(Float32Array.of(3, NaN))).toBeNaN();
  expect(() => addon.sumSquares([1, 2] as unknown as Float32Array)).toThrow(/sumSquares: x must be a Float32Array/);
});
