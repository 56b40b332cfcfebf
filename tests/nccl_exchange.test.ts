// The device path of a step's exchange (src/distill/step_exchange.ts): a rank's tree nodes packed
// into one device buffer, one NCCL allgather, the nodes cut back out. On one rank (the host
// emulation here, the real NCCL in the GPU run) every node must come back bit for bit, NaN, Inf and
// -0 included, and equal the host path's. More ranks need several GPUs (none lent yet).
import * as tf from '@tensorflow/tfjs';

import { registerCudaBackend } from '../src/backend/cuda/register';
import { BERT_MINI, CrossEncoder } from '../src/models/cross_encoder';
import { decodeNodes, encodeNodes, exchangeNodes, exchangeOnDevice } from '../src/distill/step_exchange';
import type { StepSum } from '../src/distill/step';
import type { TreeNode } from '../src/distributed/tree_sum';
import { singleWorld, type World } from '../src/distributed/world';
import { addon } from '../src/native';
import { deviceTestsHere } from './helpers/device';
import { mulberry32 } from './helpers/reference64';

if (deviceTestsHere(__filename)) {
  describe('a step exchange on device buffers (NCCL, one rank)', () => {
    let params: Map<string, tf.Variable>;
    beforeAll(async () => {
      expect(registerCudaBackend()).toBe(true);
      await tf.setBackend('cuda');
      params = new Map([
        ['a.weight', tf.variable(tf.zeros([3, 5]), true, 'x/a.weight')],
        ['a.bias', tf.variable(tf.zeros([5]), true, 'x/a.bias')],
        ['b.weight', tf.variable(tf.zeros([7, 2]), true, 'x/b.weight')],
      ]);
    });
    afterAll(() => {
      for (const v of params.values()) v.dispose();
      addon.cuda.nccl.destroy();
    });

    // nodes of a rank holding leaves 2..4 (nodes [2,4) and [4,5)); one lacks b.weight's gradient
    function nodes(): { nodes: TreeNode<StepSum>[]; values: Array<Record<string, number[]>> } {
      const r = mulberry32(3);
      const values: Array<Record<string, number[]>> = [];
      const make = (start: number, size: number, names: string[], loss: number, parts: Record<string, number>) => {
        const grads = new Map<string, tf.Tensor>();
        const kept: Record<string, number[]> = {};
        for (const name of names) {
          const p = params.get(name)!;
          const v = Float32Array.from({ length: p.size }, (_, i) => (i === 0 ? -0 : i === 1 ? Infinity : r() - 0.5));
          grads.set(name, tf.tensor(v, p.shape));
          kept[name] = Array.from(v);
        }
        values.push(kept);
        return { start, size, value: { loss, parts, grads } };
      };
      return {
        nodes: [
          make(2, 2, ['a.weight', 'a.bias', 'b.weight'], 0.1 + 1e-17, { ranknet: 0.3, kl: NaN, margin: tricky }),
          make(4, 1, ['a.weight', 'a.bias'], -Infinity, { ranknet: 1 / 3 }),
        ],
        values,
      };
    }
    // a double whose low word reads as a float32 NaN: a copy that canonicalised NaNs would change it
    const tricky = (() => {
      const v = new DataView(new ArrayBuffer(8));
      v.setUint32(0, 0xffffffff, true);
      v.setUint32(4, 0x3ff00000, true);
      return v.getFloat64(0, true);
    })();
    const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

    test('every node comes back out of the gathered buffer bit for bit, as the host path gives it', async () => {
      const { nodes: mine, values } = nodes();
      const host = decodeNodes(encodeNodes(mine), params, 0);
      const [back] = await exchangeOnDevice(singleWorld, mine, params);
      expect(back.map((n) => [n.start, n.size])).toEqual([
        [2, 2],
        [4, 1],
      ]);
      back.forEach((n, i) => {
        expect(Object.is(n.value.loss, host[i].value.loss)).toBe(true);
        expect(Object.keys(n.value.parts)).toEqual(Object.keys(host[i].value.parts));
        for (const [k, v] of Object.entries(n.value.parts)) expect(Object.is(v, host[i].value.parts[k])).toBe(true);
        expect([...n.value.grads.keys()]).toEqual(Object.keys(values[i]));
        for (const [name, g] of n.value.grads) {
          expect(g.shape).toEqual(params.get(name)!.shape);
          expect(same(Array.from(g.dataSync()), values[i][name])).toBe(true);
          expect(same(Array.from(host[i].value.grads.get(name)!.dataSync()), values[i][name])).toBe(true);
        }
      });
      expect(Object.is(back[0].value.parts.margin, tricky)).toBe(true); // float64 survives as two float32 words
      for (const n of [...back, ...host]) tf.dispose([...n.value.grads.values()]);
    });

    test("a cross-encoder's whole gradient set (every parameter, 2 nodes) comes back bit for bit", async () => {
      const model = new CrossEncoder({ ...BERT_MINI, layers: 2, hidden: 32, heads: 2, intermediate: 64 }, 5);
      try {
        const r = mulberry32(9);
        const node = (start: number, size: number) => {
          const grads = new Map<string, tf.Tensor>();
          for (const [name, p] of model.params)
            grads.set(
              name,
              tf.tensor(
                Float32Array.from({ length: p.size }, () => r() - 0.5),
                p.shape,
              ),
            );
          return { start, size, value: { loss: r(), parts: { ranknet: r() }, grads } };
        };
        const mine = [node(0, 4), node(4, 2)];
        const want = mine.map((n) => new Map([...n.value.grads].map(([k, g]) => [k, Array.from(g.dataSync())])));
        const [back] = await exchangeOnDevice(singleWorld, mine, model.params);
        expect(back).toHaveLength(2);
        back.forEach((n, i) => {
          expect(n.value.grads.size).toBe(model.params.size);
          for (const [k, g] of n.value.grads) expect(same(Array.from(g.dataSync()), want[i].get(k)!)).toBe(true);
          tf.dispose([...n.value.grads.values()]);
        });
      } finally {
        model.dispose();
      }
    });

    test('FUSED_DISTILL_NCCL=1 picks it, and refuses a backend without device buffers', async () => {
      const two: World = { ...singleWorld, size: 2 };
      const saved = process.env.FUSED_DISTILL_NCCL;
      process.env.FUSED_DISTILL_NCCL = '1';
      try {
        await tf.setBackend('cpu');
        await expect(exchangeNodes(two, [], params)).rejects.toThrow(/FUSED_DISTILL_NCCL=1 needs --backend cuda/);
      } finally {
        await tf.setBackend('cuda');
        if (saved === undefined) delete process.env.FUSED_DISTILL_NCCL;
        else process.env.FUSED_DISTILL_NCCL = saved;
      }
    });
  });
}
