// One rank of tests/mpi.test.ts: `mpirun -np N node -r ./tests/helpers/ts_register.js
// tests/helpers/mpi_child.ts <out dir> [bench MB reps | abort | exit]`. It joins the MPI world, runs the collectives
// on bytes that differ per rank, and writes what it saw to <out dir>/rank-<r>.json for the test to
// compare across ranks. With `bench`, it times allgather of MB megabytes per rank instead.
import * as fs from 'fs';
import * as path from 'path';
import { joinMpi, launchedByMpi } from '../../src/distributed/mpi';
import { CollectiveError } from '../../src/distributed/world';

const [outDir, mode, mbArg, repsArg] = process.argv.slice(2);

// Rank r's bytes: a length that differs per rank (rank 1's is empty) and values that name the rank.
const partOf = (r: number) => Uint8Array.from({ length: r === 1 ? 0 : 5 + 7 * r }, (_, i) => (r * 31 + i) & 255);

function write(rank: number, value: object) {
  const file = path.join(outDir, `rank-${rank}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(value));
  fs.renameSync(`${file}.tmp`, file);
}

// The error a call rejects with, as {name, message}, or null when it resolved.
async function errorOf(p: Promise<unknown>) {
  try {
    await p;
    return null;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message };
  }
}

async function bench(mb: number, reps: number) {
  const world = joinMpi();
  const bytes = new Uint8Array(Math.round(mb * 1e6)).fill(world.rank + 1);
  await world.allgather(bytes); // warm-up: connections, buffers
  const times: number[] = [];
  for (let k = 0; k < reps; ++k) {
    await world.barrier();
    const t = process.hrtime.bigint();
    const all = await world.allgather(bytes);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (all.some((b, r) => b.length !== bytes.length || b[0] !== r + 1 || b[b.length - 1] !== r + 1)) {
      throw new Error('allgather returned wrong bytes');
    }
  }
  write(world.rank, { rank: world.rank, size: world.size, mb, times });
  await world.close();
}

// A rank that cannot go on: rank 1 aborts (`abort`) or exits without closing (`exit`) while the
// others wait in a barrier; mpirun must end the whole run, not leave them waiting.
async function fail(how: string) {
  const world = joinMpi();
  if (world.rank === 1) {
    if (how === 'abort') world.abort(3);
    process.exit(4);
  }
  await world.barrier();
  write(world.rank, { rank: world.rank, passedBarrier: true });
}

async function main() {
  if (mode === 'bench') return bench(Number(mbArg), Number(repsArg));
  if (mode === 'abort' || mode === 'exit') return fail(mode);
  const world = joinMpi();
  const { rank, size } = world;
  const all = await world.allgather(partOf(rank));
  // Each part starts 8-byte aligned in the result, so a typed view needs no copy.
  const aligned = all.every((b) => b.byteOffset % 8 === 0);
  const root = size > 1 ? 1 : 0;
  const mine = new TextEncoder().encode(`bytes of rank ${rank} `.repeat(rank + 1));
  const broadcast = new TextDecoder().decode(await world.broadcast(mine, root));
  await world.barrier();
  // Bad calls reject with JS errors, on every rank alike, and leave the world usable.
  const badRoot = await errorOf(world.broadcast(mine, size + 3));
  const badBytes = await errorOf(world.allgather('not bytes' as unknown as Uint8Array));
  const after = await world.allgather(Uint8Array.of(rank));
  await world.close();
  await world.close(); // a second close does nothing
  const closed = await errorOf(world.allgather(Uint8Array.of(rank)));
  write(rank, {
    rank,
    size,
    localRank: world.localRank,
    localSize: world.localSize,
    transport: world.transport,
    library: world.library,
    launchedByMpi: launchedByMpi(),
    gathered: all.map((b) => Array.from(b)),
    aligned,
    broadcast,
    badRoot,
    badBytes,
    after: after.map((b) => Array.from(b)),
    closed: { ...closed, collective: closed !== null && closed.name === new CollectiveError('').name },
  });
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
