#!/usr/bin/env node
// The launcher's TCP transport: ms per allgather of --mb MB from each of --nproc ranks (the size of a
// BERT-mini-sized gradient is about 17.6 MB in float32), median (best) of --rounds rounds, checked
// byte by byte. One script is both the launcher and its ranks (a rank sees the launcher's env).
//
//   node bench/allgather_tcp.js [--nproc=2] [--mb=17.6] [--rounds=20]
//
// Needs `npm run build`. The loopback path only: what the hub and the framing cost, not a network.
'use strict';

const path = require('path');

const dist = path.join(__dirname, '..', 'dist', 'distributed');
const { launch } = require(path.join(dist, 'launch'));
const { joinTcp, launchedByLauncher } = require(path.join(dist, 'tcp'));

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
};
const nproc = arg('nproc', 2);
const mb = arg('mb', 17.6);
const rounds = arg('rounds', 20);

async function rank() {
  const world = await joinTcp(process.env);
  const bytes = new Uint8Array(Math.round(mb * 1e6)).fill(world.rank + 1);
  const expected = Array.from({ length: world.size }, (_, r) => Buffer.alloc(bytes.length, r + 1));
  const times = [];
  for (let i = 0; i < rounds + 2; i++) {
    await world.barrier(); // every rank starts the round together: the time is the allgather's own
    const t = process.hrtime.bigint();
    const all = await world.allgather(bytes);
    if (i >= 2) times.push(Number(process.hrtime.bigint() - t) / 1e6); // the first two warm up
    for (let r = 0; r < world.size; r++)
      if (Buffer.compare(Buffer.from(all[r].buffer, all[r].byteOffset, all[r].length), expected[r]) !== 0)
        throw new Error(`rank ${r}'s bytes differ`);
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  if (world.rank === 0)
    console.log(
      `allgather of ${mb} MB x ${world.size} ranks: ${median.toFixed(1)} ms median (${times[0].toFixed(1)} best) ` +
        `over ${rounds} rounds; ${((mb * (world.size - 1)) / (median / 1000) / 1000).toFixed(2)} GB/s received per rank`,
    );
  await world.close();
}

if (launchedByLauncher(process.env)) {
  rank().catch((e) => {
    console.error(e.stack);
    process.exit(1);
  });
} else {
  launch({ nproc, command: [process.execPath, __filename, ...process.argv.slice(2)] }).then((code) => {
    process.exitCode = code;
  });
}
