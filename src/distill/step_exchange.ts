// How a step's tree nodes travel between ranks (trainStepAcross, step.ts): every rank gets every
// rank's nodes, in rank order. Two paths, the same bits:
// - host (every backend and transport): one message a rank through the World's allgather;
// - device ('cuda' with NCCL, opt-in with FUSED_DISTILL_NCCL=1 until it has run on several GPUs):
//   the gradients and scalars packed into one device buffer, one NCCL allgather on the addon's
//   stream, the nodes cut back out of the gathered buffer — no copy through host memory; only the
//   nodes' descriptions (ranges and names, a few hundred bytes) go through the World.
import * as tf from '@tensorflow/tfjs';

import { cudaBackend } from '../backend/cuda/backend';
import { hostFloats } from '../backend/native/backend';
import type { TreeNode } from '../distributed/tree_sum';
import { allgatherJson, type World } from '../distributed/world';
import { addon } from '../native';
import type { StepSum } from './step';

/** What a node is, without its numbers: its range of micro-batches, its part and gradient names. */
interface NodeHeader {
  start: number;
  size: number;
  parts: string[];
  grads: string[];
}

const headerOf = ({ start, size, value }: TreeNode<StepSum>): NodeHeader => ({
  start,
  size,
  parts: Object.keys(value.parts),
  grads: [...value.grads.keys()],
});

/** Every rank's nodes in rank order (this rank's own, as given, at its place). */
export async function exchangeNodes(
  world: World,
  mine: TreeNode<StepSum>[],
  params: Map<string, tf.Variable>,
): Promise<TreeNode<StepSum>[][]> {
  if (useNccl(world)) return exchangeOnDevice(world, mine, params);
  const all = await world.allgather(encodeNodes(mine));
  return all.map((bytes, r) => (r === world.rank ? mine : decodeNodes(bytes, params, r)));
}

// ---------------------------------------------------------------------------------------------
// Host: a rank's nodes as one message. A JSON header (the nodes' headers), padded to 8 bytes, then
// per node its loss and parts as float64 (NaN and Inf survive, as they would not in JSON) and its
// gradients as float32, in the header's order.

// The message is written into one buffer kept between steps: a fresh 45 MB array every step would
// cost its page faults each time. The allgather has sent it by the time it resolves.
let scratch = new Uint8Array(0);

/** A rank's nodes as one message (a view of a buffer reused by the next call: send it before then). */
export function encodeNodes(nodes: TreeNode<StepSum>[]): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(nodes.map(headerOf)));
  const headBytes = 4 + head.length + ((8 - ((4 + head.length) % 8)) % 8);
  let bytes = headBytes;
  for (const { value } of nodes) {
    bytes += 8 * (1 + Object.keys(value.parts).length);
    for (const t of value.grads.values()) bytes += 4 * t.size;
  }
  bytes += (8 - (bytes % 8)) % 8;
  if (scratch.length < bytes) scratch = new Uint8Array(bytes);
  const out = scratch.subarray(0, bytes);
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  out.fill(0, 4 + head.length, headBytes);
  let at = headBytes;
  for (const { value } of nodes) {
    const scalars = [value.loss, ...Object.values(value.parts)];
    new Float64Array(out.buffer, at, scalars.length).set(scalars);
    at += 8 * scalars.length;
    for (const t of value.grads.values()) {
      // read in place where the backend keeps host memory (no dataSync copy of each gradient)
      const data = (hostFloats(t)?.subarray(0, t.size) ?? t.dataSync()) as Float32Array;
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
      at += data.byteLength;
    }
  }
  out.fill(0, at); // the padding to 8 bytes
  return out;
}

export function decodeNodes(bytes: Uint8Array, params: Map<string, tf.Variable>, rank: number): TreeNode<StepSum>[] {
  // Views into the message where it starts on an 8-byte boundary (MPI's parts do), else into one
  // aligned copy: tf.tensor below makes the one copy each gradient needs.
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const buf = aligned.buffer;
  const base = aligned.byteOffset;
  const headLength = new DataView(buf, base).getUint32(0, true);
  const headers = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, base + 4, headLength))) as NodeHeader[];
  let at = base + 4 + headLength + ((8 - ((4 + headLength) % 8)) % 8);
  return headers.map(({ start, size, parts, grads }) => {
    const scalars = new Float64Array(buf, at, 1 + parts.length);
    at += scalars.byteLength;
    const value: StepSum = {
      loss: scalars[0],
      parts: Object.fromEntries(parts.map((k, i) => [k, scalars[1 + i]])),
      grads: new Map(),
    };
    for (const name of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`rank ${rank} sent a gradient of ${name}, which is not a parameter here`);
      value.grads.set(name, tf.tensor(new Float32Array(buf, at, p.size), p.shape, 'float32'));
      at += 4 * p.size;
    }
    return { start, size, value };
  });
}

// ---------------------------------------------------------------------------------------------
// Device: NCCL over the addon's device buffers.

/** FUSED_DISTILL_NCCL=1 asks for the device path; it needs the 'cuda' backend and NCCL. */
function useNccl(world: World): boolean {
  if (process.env.FUSED_DISTILL_NCCL !== '1' || world.size === 1) return false;
  if (!cudaBackend())
    throw new Error(`FUSED_DISTILL_NCCL=1 needs --backend cuda (the backend is '${tf.getBackend()}')`);
  if (!addon.cuda.nccl.isAvailable())
    throw new Error(`FUSED_DISTILL_NCCL=1, but NCCL is not available: ${addon.cuda.nccl.lastError()}`);
  return true;
}

let communicator: World | null = null;

// One NCCL communicator per process, for the world it was made with: rank 0's id through the World.
async function ncclFor(world: World): Promise<void> {
  if (communicator === world) return;
  if (communicator) throw new Error('NCCL: this process already has a communicator for another world');
  const nccl = addon.cuda.nccl;
  const id = await world.broadcast(world.rank === 0 ? nccl.uniqueId() : new Uint8Array(128), 0);
  nccl.initRank(id, world.size, world.rank);
  communicator = world;
}

// float32 words a node takes in the packed buffer: its scalars as float64 (two words each), then its gradients
function nodeFloats(h: NodeHeader, params: Map<string, tf.Variable>, rank: number): number {
  let n = 2 * (1 + h.parts.length);
  for (const name of h.grads) {
    const p = params.get(name);
    if (!p) throw new Error(`rank ${rank}'s node has a gradient of ${name}, which is not a parameter here`);
    n += p.size;
  }
  return n;
}

/**
 * Every rank's nodes through one NCCL allgather. The ranks' packed lengths may differ (a rank's
 * share of the tree can take more nodes than another's): each sends `count` floats, its own
 * padded with zeros to the longest. Exported for the one-rank test on the host emulation, which
 * checks that the nodes come back out of the gathered buffer bit for bit.
 */
export async function exchangeOnDevice(
  world: World,
  mine: TreeNode<StepSum>[],
  params: Map<string, tf.Variable>,
): Promise<TreeNode<StepSum>[][]> {
  const backend = cudaBackend();
  if (!backend) throw new Error('exchangeOnDevice: the backend is not cuda');
  await ncclFor(world);
  const headers = await allgatherJson(world, mine.map(headerOf));
  const lengths = headers.map((hs, r) => hs.reduce((n, h) => n + nodeFloats(h, params, r), 0));
  const count = Math.max(...lengths);
  const send = tf.tidy(() => {
    const pieces: tf.Tensor[] = [];
    for (const { value } of mine) {
      const scalars = new Float64Array([value.loss, ...Object.values(value.parts)]);
      pieces.push(tf.tensor1d(new Float32Array(scalars.buffer), 'float32'));
      for (const g of value.grads.values()) pieces.push(tf.reshape(g, [-1]));
    }
    const pad = count - lengths[world.rank];
    if (pad > 0) pieces.push(tf.zeros([pad]));
    return tf.concat(pieces);
  });
  const cuda = addon.cuda;
  const recvBuffer = cuda.alloc(count * world.size);
  try {
    cuda.nccl.allGather(backend.buf(send), recvBuffer, count);
  } catch (e) {
    cuda.free(recvBuffer);
    throw e;
  } finally {
    send.dispose();
  }
  const recv = tf
    .engine()
    .makeTensorFromTensorInfo(backend.adopt(recvBuffer, [count * world.size], 'float32')) as tf.Tensor1D;
  try {
    const out = headers.map((hs, r) => {
      let at = r * count;
      return hs.map(({ start, size, parts, grads }) => {
        const words = 2 * (1 + parts.length);
        const bits = tf.tidy(() => tf.slice(recv, [at], [words]).dataSync() as Float32Array);
        const scalars = new Float64Array(bits.slice().buffer);
        at += words;
        const value: StepSum = {
          loss: scalars[0],
          parts: Object.fromEntries(parts.map((k, i) => [k, scalars[1 + i]])),
          grads: new Map(),
        };
        for (const name of grads) {
          const p = params.get(name)!;
          value.grads.set(
            name,
            tf.tidy(() => tf.reshape(tf.slice(recv, [at], [p.size]), p.shape)),
          );
          at += p.size;
        }
        return { start, size, value };
      });
    });
    // this rank's own nodes came back out of the buffer too: the originals are not needed
    for (const n of mine) tf.dispose([...n.value.grads.values()]);
    return out;
  } finally {
    recv.dispose();
  }
}
