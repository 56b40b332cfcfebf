// Dropout (src/nn/dropout.ts) and a run's train.dropout: the mask against its definition (Philox
// uniforms >= rate, kept values scaled by 1 / (1 - rate)), its gradient, the kept fraction, the
// seed's role; a cross-encoder's forward pass with and without it; a training run with dropout
// that resumes, and runs as 2 ranks, to the uninterrupted one-process weights bit for bit.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { dropout, philoxUniform } from '../src/nn';
import { CrossEncoder } from '../src/models/cross_encoder';
import { dropoutSeed, parseTeacherConfig, trainTeacher, type TeacherRunInput } from '../src/distill';
import { memoryWorlds, singleWorld } from '../src/distributed/world';
import { addon } from '../src/native';
import { tinyEncoderConfig } from './helpers/tiny_encoder';
import { TEST_BACKEND, tinyCollection } from './helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-dropout-'));
const collDir = path.join(tmp, 'coll');
beforeAll(async () => {
  await tinyCollection(collDir);
  await tf.setBackend(TEST_BACKEND);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('dropout', () => {
  const x = () =>
    tf.tensor(
      Float32Array.from({ length: 3 * 1000 }, (_, i) => Math.sin(i) * 3 - 0.5),
      [3, 1000],
    );

  it('keeps an element where its Philox uniform is >= rate, scaled by 1 / (1 - rate); zero elsewhere', () => {
    const rate = 0.3;
    const seed = 123456789;
    const input = x();
    const u = new Float32Array(3000);
    addon.randomUniform(u, 0, 1, seed); // the definition's uniforms, straight from the addon
    const got = dropout(input, rate, seed).dataSync();
    const xs = input.dataSync();
    const scale = Math.fround(1 / (1 - rate));
    let kept = 0;
    for (let i = 0; i < 3000; i++) {
      const want = u[i] >= rate ? Math.fround(xs[i] * scale) : 0;
      expect(Object.is(got[i], want) || (want === 0 && got[i] === 0)).toBe(true);
      if (u[i] >= rate) kept++;
    }
    // 3000 draws at p = 0.7: within 5 standard deviations (25)
    expect(Math.abs(kept - 2100)).toBeLessThan(5 * Math.sqrt(3000 * 0.7 * 0.3));
    input.dispose();
  });

  it('the same seed gives the same mask, another seed another; rate 0 is the input itself', () => {
    const input = x();
    const a = dropout(input, 0.5, 7).dataSync();
    const b = dropout(input, 0.5, 7).dataSync();
    const c = dropout(input, 0.5, 8).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(dropout(input, 0, 7)).toBe(input);
    input.dispose();
  });

  it('its gradient is the mask times the upstream gradient', () => {
    const input = x();
    const g = tf
      .grad((t: tf.Tensor) => tf.sum(tf.mul(dropout(t, 0.25, 99), 2)))(input)
      .dataSync();
    const u = philoxUniform([3, 1000], 99).dataSync();
    const scale = Math.fround(1 / 0.75);
    for (let i = 0; i < 3000; i++) expect(g[i]).toBe(u[i] >= 0.25 ? Math.fround(scale * 2) : 0);
    input.dispose();
  });

  it('refuses a rate outside [0, 1) and a seed that is not a non-negative integer', () => {
    const input = x();
    expect(() => dropout(input, 1, 1)).toThrow(/rate must be in \[0, 1\), got 1/);
    expect(() => dropout(input, -0.1, 1)).toThrow(/rate must be in \[0, 1\)/);
    expect(() => dropout(input, 0.1, 1.5)).toThrow(/seed must be an integer in \[0, 2\^53\), got 1.5/);
    input.dispose();
  });
});

describe("a cross-encoder's forward pass with dropout", () => {
  it('differs from the pass without it, repeats with the same seed, and leaves evaluation alone', () => {
    const model = new CrossEncoder(tinyEncoderConfig({ layers: 2 }), 3);
    const inputs = {
      inputIds: tf.tensor2d([[101, 2023, 2003, 102, 1037, 3231, 102, 0]], [1, 8], 'int32'),
      tokenTypeIds: tf.tensor2d([[0, 0, 0, 0, 1, 1, 1, 0]], [1, 8], 'int32'),
      attentionMask: tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 0]], [1, 8], 'int32'),
    };
    const score = (training?: { rate: number; seed: number }) => {
      const out = model.forward(inputs, { hidden: true }, { dropout: training });
      const v = Array.from(out.scores.dataSync());
      tf.dispose([out.scores, ...(out.hidden ?? [])]);
      return v;
    };
    const plain = score();
    expect(score({ rate: 0, seed: 5 })).toEqual(plain);
    const dropped = score({ rate: 0.2, seed: 5 });
    expect(dropped).not.toEqual(plain);
    expect(score({ rate: 0.2, seed: 5 })).toEqual(dropped);
    expect(score({ rate: 0.2, seed: 6 })).not.toEqual(dropped);
    tf.dispose(Object.values(inputs));
    model.dispose();
  });

  it("dropoutSeed depends on the run's seed, the step and the micro-batch", () => {
    const seeds = new Set<number>();
    for (const s of [1, 2])
      for (let step = 1; step <= 50; step++) for (let leaf = 0; leaf < 4; leaf++) seeds.add(dropoutSeed(s, step, leaf));
    expect(seeds.size).toBe(400);
    for (const v of seeds) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
  });
});

describe('train.dropout in a run', () => {
  const input = (name: string, train: Partial<TeacherRunInput['train']> = {}): TeacherRunInput => ({
    output: path.join(tmp, name),
    model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 },
    data: { collection: collDir, negatives: 3, maxLength: 40, trainQueries: 6, evalQueries: 0 },
    train: {
      batch: 4,
      microBatch: 2,
      steps: 6,
      lr: 3e-3,
      warmup: 1,
      seed: 4,
      dropout: 0.2,
      checkpointEvery: 0,
      ...train,
    },
    loss: { ranknet: 1 },
  });
  const weights = (name: string) => fs.readFileSync(path.join(tmp, name, 'model', 'weights.bin'));

  it('changes the run; 2 ranks and a resumed run reach the one-process weights bit for bit', async () => {
    await trainTeacher(parseTeacherConfig(input('plain', { dropout: undefined })), { world: singleWorld });
    await trainTeacher(parseTeacherConfig(input('one')), { world: singleWorld });
    expect(weights('one').equals(weights('plain'))).toBe(false);

    await Promise.all(memoryWorlds(2).map((world) => trainTeacher(parseTeacherConfig(input('two')), { world })));
    expect(weights('two').equals(weights('one'))).toBe(true);

    const config = parseTeacherConfig(input('resumed', { checkpointEvery: 3 }));
    await expect(
      trainTeacher(config, {
        world: singleWorld,
        onProgress: (e) => {
          if (e.type === 'step' && e.step === 4) throw new Error('stopped');
        },
      }),
    ).rejects.toThrow('stopped');
    await trainTeacher(config, { world: singleWorld, resume: true });
    expect(weights('resumed').equals(weights('one'))).toBe(true);
  }, 120000);

  it('is a config error outside [0, 1)', () => {
    expect(() => parseTeacherConfig(input('bad', { dropout: 1 }))).toThrow(/train\.dropout/);
  });
});
