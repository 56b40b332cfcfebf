// The ranks of a data-parallel run and the few collectives the library needs of them. One process is
// a world of size 1 (`singleWorld`: every collective returns its own input at once); under `mpirun`
// the ranks talk through MPI (mpi.ts, the optional addon), under `fused-distill launch` through the
// launcher's TCP hub (tcp.ts), and in tests through memory (`memoryWorlds`). Everything above this
// file sees only `World`: allgather of bytes is the one primitive (sums are done by the caller in a
// fixed tree: tree_sum.ts), broadcast and barrier follow from it where a transport has nothing faster.

/** A group of ranks running the same command. */
export interface World {
  /** this process's rank, 0..size-1 (rank 0 writes the run's files and prints its progress) */
  readonly rank: number;
  readonly size: number;
  /** the rank among the ranks on this machine, and how many there are (threads, GPU choice) */
  readonly localRank: number;
  readonly localSize: number;
  /** how the ranks talk: 'single', 'mpi', 'tcp' (the built-in launcher) or 'memory' (tests) */
  readonly transport: string;
  /** Every rank's bytes, in rank order; each rank passes its own (lengths may differ). */
  allgather(bytes: Uint8Array): Promise<Uint8Array[]>;
  /** The root's bytes on every rank (the others' `bytes` are ignored). */
  broadcast(bytes: Uint8Array, root?: number): Promise<Uint8Array>;
  /** Returns when every rank has reached it. */
  barrier(): Promise<void>;
  /** Ends this rank's part (MPI_Finalize, closing sockets); collectives after it throw. */
  close(): Promise<void>;
}

/** broadcast over allgather (the memory worlds; a transport with nothing better could use it too). */
function broadcastByAllgather(world: Pick<World, 'allgather'>, bytes: Uint8Array, root: number, rank: number) {
  return world.allgather(rank === root ? bytes : new Uint8Array(0)).then((all) => all[root]);
}

/** The world of one process. */
export const singleWorld: World = {
  rank: 0,
  size: 1,
  localRank: 0,
  localSize: 1,
  transport: 'single',
  allgather: async (bytes) => [bytes],
  broadcast: async (bytes) => bytes,
  barrier: async () => undefined,
  close: async () => undefined,
};

let current: World = singleWorld;

/** The world the CLI joined at start (`setWorld`), or the single process. */
export function getWorld(): World {
  return current;
}

/** Makes `world` the one library calls use by default (the CLI's start-up; tests). */
export function setWorld(world: World): void {
  current = world;
}

/** A collective that could not complete: a rank died, disconnected or timed out. */
export class CollectiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CollectiveError';
  }
}

/**
 * `size` worlds in one process that talk through memory: for tests that run every rank's part as
 * a concurrent async function (each rank's synchronous work runs between its collectives).
 */
export function memoryWorlds(size: number): World[] {
  let round: Array<Uint8Array | undefined> = new Array(size);
  let waiting: Array<(all: Uint8Array[]) => void> = [];
  let arrived = 0;
  let closed = false;
  const make = (rank: number): World => {
    const world: World = {
      rank,
      size,
      localRank: rank,
      localSize: size,
      transport: 'memory',
      allgather: (bytes) =>
        new Promise((resolve, reject) => {
          if (closed) return reject(new CollectiveError(`rank ${rank}: allgather after the world was closed`));
          if (round[rank] !== undefined)
            return reject(new CollectiveError(`rank ${rank}: a second allgather before the first completed`));
          round[rank] = bytes.slice();
          waiting.push(resolve);
          if (++arrived < size) return;
          const all = round as Uint8Array[];
          const done = waiting;
          round = new Array(size);
          waiting = [];
          arrived = 0;
          for (const r of done) r(all);
        }),
      broadcast: (bytes, root = 0) => broadcastByAllgather(world, bytes, root, rank),
      barrier: () => world.allgather(new Uint8Array(0)).then(() => undefined),
      close: async () => {
        closed = true;
      },
    };
    return world;
  };
  return Array.from({ length: size }, (_, r) => make(r));
}

// ---------------------------------------------------------------------------------------------
// Typed helpers over allgather

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Every rank's JSON value, in rank order. */
export async function allgatherJson<T>(world: World, value: T): Promise<T[]> {
  const all = await world.allgather(encoder.encode(JSON.stringify(value)));
  return all.map((b) => JSON.parse(decoder.decode(b)) as T);
}

/** Rank 0's JSON value on every rank. */
export async function broadcastJson<T>(world: World, value: T): Promise<T> {
  const b = await world.broadcast(encoder.encode(world.rank === 0 ? JSON.stringify(value) : ''), 0);
  return JSON.parse(decoder.decode(b)) as T;
}

/** Every rank's float32 values concatenated in rank order. */
export async function allgatherFloat32(world: World, values: Float32Array): Promise<Float32Array> {
  const all = await world.allgather(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const out = new Float32Array(all.reduce((n, b) => n + b.byteLength / 4, 0));
  let at = 0;
  for (const b of all) {
    out.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), at);
    at += b.byteLength / 4;
  }
  return out;
}

/**
 * This rank's contiguous share [start, end) of n items: shares differ by at most one item and
 * concatenate in rank order to 0..n-1 (so gathered results come back in the items' order).
 */
export function shardRange(n: number, world: Pick<World, 'rank' | 'size'>): [number, number] {
  return [Math.floor((n * world.rank) / world.size), Math.floor((n * (world.rank + 1)) / world.size)];
}
