// A rank for the launcher's tests, started by `launch` as
//   node -r ./tests/helpers/ts_register.js tests/helpers/launch_child.ts <mode> [args...]
// It joins the launch through the env (joinTcp) and prints "pid <rank> <pid>" first. Modes:
//   gather          allgather "hello from <rank>" (its own length per rank), then broadcast and
//                   barrier; rank 0 prints what it got, the others print one line and a tail without \n
//   sigkill <r>     after one barrier rank r kills itself with SIGKILL; the others wait forever
//                   (the launcher must stop them); with "stubborn" they also ignore SIGTERM
//   fail <r> <code> after one barrier rank r exits with <code>; the others' next barrier fails
//   bench <mb> <n>  n allgathers of <mb> MB each; rank 0 prints "ms <median> <min>"
import { joinTcp } from '../../src/distributed/tcp';
import { CollectiveError } from '../../src/distributed/world';

const enc = new TextEncoder();
const dec = new TextDecoder();

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  const world = await joinTcp(process.env);
  const { rank } = world;
  process.stdout.write(`pid ${rank} ${process.pid}\n`);
  if (mode === 'gather') {
    const all = await world.allgather(enc.encode(`hello from ${rank}${'!'.repeat(rank)}`));
    const root = await world.broadcast(enc.encode(`root says ${rank}`), world.size - 1);
    await world.barrier();
    if (rank === 0) {
      process.stdout.write(`${all.map((b) => dec.decode(b)).join('|')}\n`);
      process.stdout.write(`${dec.decode(root)}\n`);
      const e = process.env;
      process.stderr.write(`env ${e.RANK} ${e.WORLD_SIZE} ${e.MASTER_PORT} ${e.FUSED_DISTILL_COLLECTIVE_TIMEOUT_S}\n`);
    } else {
      process.stdout.write(`rank ${rank} done\n`);
      process.stderr.write(`tail without newline ${rank}`);
    }
    await world.close();
  } else if (mode === 'sigkill') {
    // every rank has its handler before the barrier lets rank r die
    if (args[1] === 'stubborn') process.on('SIGTERM', () => process.stdout.write(`rank ${rank} ignores SIGTERM\n`));
    await world.barrier();
    if (rank === Number(args[0])) process.kill(process.pid, 'SIGKILL');
    setInterval(() => undefined, 1000);
  } else if (mode === 'fail') {
    await world.barrier();
    if (rank === Number(args[0])) process.exit(Number(args[1]));
    try {
      await world.barrier();
    } catch (e) {
      process.stderr.write(`${(e as Error).name}: ${(e as Error).message}\n`);
      // stay up: the launcher stops this rank once the failed one has exited
      if (e instanceof CollectiveError) setInterval(() => undefined, 1000);
    }
  } else if (mode === 'bench') {
    const bytes = new Uint8Array(Math.round(Number(args[0]) * 1e6)).fill(rank + 1);
    const times: number[] = [];
    for (let i = 0; i < Number(args[1]); i++) {
      const t = process.hrtime.bigint();
      const all = await world.allgather(bytes);
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
      for (let r = 0; r < world.size; r++)
        if (all[r].length !== bytes.length || all[r][all[r].length - 1] !== r + 1) throw new Error(`bad part ${r}`);
    }
    times.sort((a, b) => a - b);
    if (rank === 0) process.stdout.write(`ms ${times[times.length >> 1].toFixed(1)} ${times[0].toFixed(1)}\n`);
    await world.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
