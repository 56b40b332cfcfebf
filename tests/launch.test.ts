// The built-in launcher (src/distributed/launch.ts) and its TCP transport (src/distributed/tcp.ts):
// the hub with in-process ranks (rank order, per-rank lengths, many rounds, a 12 MB message, a rank
// that dies or leaves, a timeout, a wrong token, mismatched collectives), then whole launches of small
// child scripts (tests/helpers/launch_child.ts): output, env, a rank killed by SIGKILL (the others are
// stopped, SIGKILL after the grace period for one that ignores SIGTERM), a failed exit code, a
// command that cannot start, and the CLI command (on the built dist/, as cli.test.ts).
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as net from 'net';
import * as path from 'path';
import { Command } from 'commander';

import { launch, rankEnv } from '../src/distributed/launch';
import { ENV, TcpHub, joinTcp, launchedByLauncher } from '../src/distributed/tcp';
import { CollectiveError, type World } from '../src/distributed/world';
import { forwardedGlobals, rankCommand, registerLaunch } from '../src/cli/launch';

const enc = new TextEncoder();
const dec = new TextDecoder();
const TOKEN = 'test-token-0123456789';

interface Setup {
  hub: TcpHub;
  worlds: World[];
  logs: string[];
  env: (rank: number, token?: string) => NodeJS.ProcessEnv;
}

const open: Setup[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    for (const w of s.worlds) await w.close().catch(() => undefined);
    await s.hub.close();
  }
});

async function setup(size: number, opts: { timeoutS?: number; join?: number } = {}): Promise<Setup> {
  const logs: string[] = [];
  const hub = await TcpHub.start({ size, token: TOKEN, timeoutS: opts.timeoutS, log: (m) => logs.push(m) });
  const env = (rank: number, token = TOKEN) => ({ ...rankEnv(rank, size, hub, token) });
  const s: Setup = { hub, worlds: [], logs, env };
  open.push(s);
  s.worlds = await Promise.all(Array.from({ length: opts.join ?? size }, (_, r) => joinTcp(env(r))));
  return s;
}

/** Destroys a rank's connection without its goodbye: what the hub sees when a process dies. */
function die(world: World): void {
  (world as unknown as { socket: net.Socket }).socket.destroy();
}

/** Waits for the hub to reach a state (what it has seen of the ranks' sockets is asynchronous). */
async function until(hub: TcpHub, cond: (h: { arrived: number; ranks: Array<{ state: string }> }) => boolean) {
  const h = hub as unknown as { arrived: number; ranks: Array<{ state: string }> };
  for (let i = 0; i < 1000 && !cond(h); i++) await new Promise((r) => setTimeout(r, 5));
}

/** Settles a promise as its value or its error (so a rejection is never left unhandled). */
const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value, error: null }),
    (error: Error) => ({ value: null, error }),
  );

describe('tcp hub with in-process ranks', () => {
  test('allgather: rank order, a different length per rank, 40 rounds; broadcast; barrier', async () => {
    const { worlds } = await setup(3);
    expect(worlds.map((w) => [w.rank, w.size, w.localRank, w.localSize, w.transport])).toEqual([
      [0, 3, 0, 3, 'tcp'],
      [1, 3, 1, 3, 'tcp'],
      [2, 3, 2, 3, 'tcp'],
    ]);
    for (let round = 0; round < 40; round++) {
      // lengths differ per rank and per round, zero included
      const msg = (r: number) => enc.encode(`r${r}:${round}:`.repeat((round * (r + 1)) % 5));
      const all = await Promise.all(worlds.map((w) => w.allgather(msg(w.rank))));
      for (const got of all) expect(got.map((b) => dec.decode(b))).toEqual([0, 1, 2].map((r) => dec.decode(msg(r))));
    }
    const b = await Promise.all(worlds.map((w) => w.broadcast(enc.encode(`from ${w.rank}`), 1)));
    expect(b.map((x) => dec.decode(x))).toEqual(['from 1', 'from 1', 'from 1']);
    await Promise.all(worlds.map((w) => w.barrier()));
    // the result is the caller's to keep: not a view of its own buffer
    const mine = enc.encode('abc');
    const [r0] = await Promise.all(worlds.map((w) => w.allgather(w.rank === 0 ? mine : enc.encode('x'))));
    mine[0] = 0;
    expect(dec.decode(r0[0])).toBe('abc');
  });

  test('a 12 MB message arrives whole beside small ones, and reads as float32', async () => {
    const { worlds } = await setup(3);
    const big = crypto.randomBytes(12 * 1024 * 1024 + 5);
    const all = await Promise.all(worlds.map((w) => w.allgather(w.rank === 1 ? big : enc.encode(`small ${w.rank}`))));
    for (const got of all) {
      expect(Buffer.from(got[1]).equals(big)).toBe(true);
      expect(dec.decode(got[2])).toBe('small 2');
    }
    const floats = new Float32Array([1.5, -2, 3e-8]);
    const f = await Promise.all(worlds.map((w) => w.allgather(new Uint8Array(floats.buffer))));
    expect(Array.from(new Float32Array(f[0][2].buffer, f[0][2].byteOffset, 3))).toEqual(Array.from(floats));
  });

  test('a rank that dies during a round: the others reject naming it, now and later; logged once', async () => {
    const { hub, worlds, logs } = await setup(3);
    await Promise.all(worlds.map((w) => w.barrier()));
    const pending = [settle(worlds[0].allgather(enc.encode('a'))), settle(worlds[2].allgather(enc.encode('c')))];
    await until(hub, (h) => h.arrived === 2);
    die(worlds[1]);
    for (const { error } of await Promise.all(pending)) {
      expect(error).toBeInstanceOf(CollectiveError);
      expect(error!.message).toBe('rank 1 disconnected (exited?) during allgather 2');
    }
    await expect(worlds[0].barrier()).rejects.toThrow('rank 1 disconnected (exited?) during allgather 2');
    expect(logs).toEqual(['rank 1 disconnected (exited?) during allgather 2']);
  });

  test('a rank that dies between rounds fails the next round at once; one that closed its world says so', async () => {
    const a = await setup(2);
    die(a.worlds[1]);
    await until(a.hub, (h) => h.ranks[1].state === 'gone');
    await expect(a.worlds[0].barrier()).rejects.toThrow(
      new CollectiveError('rank 1 disconnected (exited?) before barrier 1'),
    );
    const b = await setup(3);
    await b.worlds[2].close();
    await until(b.hub, (h) => h.ranks[2].state === 'closed');
    await expect(b.worlds[2].barrier()).rejects.toThrow('rank 2: barrier after the world was closed');
    await expect(b.worlds[0].broadcast(enc.encode('x'), 0)).rejects.toThrow(
      'rank 2 closed its world before broadcast 1',
    );
  });

  test('a round that waits past the timeout names the ranks that had not arrived', async () => {
    const a = await setup(3, { timeoutS: 0.3 });
    const t = Date.now();
    const pending = [settle(a.worlds[0].allgather(enc.encode('a'))), settle(a.worlds[2].allgather(enc.encode('c')))];
    for (const { error } of await Promise.all(pending)) {
      expect(error).toBeInstanceOf(CollectiveError);
      expect(error!.message).toBe(
        `allgather 1 timed out after 0.3 s waiting for rank 1; ${ENV.timeout} sets the limit`,
      );
    }
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
    // the late rank learns it too
    await expect(a.worlds[1].allgather(enc.encode('b'))).rejects.toThrow('timed out after 0.3 s waiting for rank 1');
    // ranks that never connected are named as such
    const b = await setup(4, { timeoutS: 0.2, join: 2 });
    await expect(b.worlds[0].barrier()).rejects.toThrow(
      'barrier 1 timed out after 0.2 s waiting for ranks 1, 2, 3 (2, 3 never connected)',
    );
  });

  test('a wrong token, a rank out of range, a second rank 0 and a stray connection are refused; the run goes on', async () => {
    const { worlds, logs, env } = await setup(2);
    await expect(joinTcp(env(0, 'another-token-0000000'))).rejects.toThrow(
      /refused it: wrong run token \(a process of another launch\?\)/,
    );
    await expect(joinTcp({ ...env(0), [ENV.rank]: '5', [ENV.size]: '9' })).rejects.toThrow(
      'rank 5 says the world has 9 ranks; this launch has 2',
    );
    await expect(joinTcp(env(0))).rejects.toThrow('rank 0 connected a second time');
    await new Promise<void>((resolve) => {
      const stray = net.connect(Number(env(0)[ENV.rendezvous]!.split(':')[1]), '127.0.0.1', () =>
        stray.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      stray.on('close', () => resolve());
      stray.on('error', () => undefined);
      stray.resume();
    });
    expect(logs.length).toBe(4);
    expect(logs.every((m) => m.startsWith('refused a connection from 127.0.0.1:'))).toBe(true);
    expect(logs[3]).toMatch(/not a fused-distill rank/);
    const all = await Promise.all(worlds.map((w) => w.allgather(enc.encode(String(w.rank)))));
    expect(all[1].map((b) => dec.decode(b))).toEqual(['0', '1']);
  });

  test('ranks making different collectives fail, naming both', async () => {
    const { worlds } = await setup(2);
    const [a, b] = await Promise.all([settle(worlds[0].barrier()), settle(worlds[1].broadcast(enc.encode('x'), 1))]);
    expect(a.error!.message).toBe(
      'collective 1: rank 0 called barrier but rank 1 called broadcast from root 1 (the ranks must make the same collectives in the same order)',
    );
    expect(b.error).toBeInstanceOf(CollectiveError);
  });

  test('bad use: a message over 4 GiB - 1, two collectives at once, a bad root, a bad env', async () => {
    const { worlds } = await setup(2);
    const huge = { byteLength: 2 ** 32 } as Uint8Array;
    await expect(worlds[0].allgather(huge)).rejects.toThrow(
      'allgather: 4294967296 bytes is more than one message of the tcp transport carries (4294967295 bytes, 4 GiB - 1); send it in parts',
    );
    const first = worlds[0].barrier();
    await expect(worlds[0].barrier()).rejects.toThrow('rank 0: barrier before barrier 1 completed');
    await Promise.all([first, worlds[1].barrier()]);
    await expect(worlds[0].broadcast(enc.encode('x'), 2)).rejects.toThrow('root 2 is not a rank of this world');
    await expect(joinTcp({})).rejects.toThrow(
      'FUSED_DISTILL_WORLD_SIZE=(unset): expected an integer >= 1 (fused-distill launch sets it for each rank)',
    );
    await expect(joinTcp({ ...rankEnv(0, 2, { host: 'h', port: 1, rendezvous: 'nowhere' }, 't') })).rejects.toThrow(
      'FUSED_DISTILL_RENDEZVOUS=nowhere: expected host:port',
    );
    expect(launchedByLauncher({})).toBe(false);
    expect(launchedByLauncher({ RANK: '0', WORLD_SIZE: '2' })).toBe(false);
    expect(launchedByLauncher(rankEnv(0, 2, { host: 'h', port: 1, rendezvous: 'h:1' }, 't'))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Whole launches

const REGISTER = path.join(__dirname, 'helpers', 'ts_register.js');
const CHILD = path.join(__dirname, 'helpers', 'launch_child.ts');
const child = (...args: string[]) => [process.execPath, '-r', REGISTER, CHILD, ...args];

async function run(nproc: number, command: string[], graceMs = 5000) {
  const out = { stdout: '', stderr: '' };
  const pids: number[] = [];
  const code = await launch({
    nproc,
    command,
    graceMs,
    onOutput: (stream, text) => (out[stream] += text),
    onSpawn: (rank, pid) => (pids[rank] = pid),
  });
  return { code, ...out, pids };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// A free TCP port on 127.0.0.1 (a listener on port 0, closed again), for a hub at a known address.
async function freePort(): Promise<number> {
  const net = await import('net');
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('launch on several machines (two launches here, as machines 0 and 1)', () => {
  test("2 × 2 ranks: machine 1 joins machine 0's hub; global ranks, local ranks, one world of 4", async () => {
    const masterPort = await freePort();
    const nodes = (rank: number) => ({ count: 2, rank, masterAddr: '127.0.0.1', masterPort, runId: 'test-run-7' });
    const outs = [
      { stdout: '', stderr: '' },
      { stdout: '', stderr: '' },
    ];
    const codes = await Promise.all(
      [0, 1].map((m) =>
        launch({
          nproc: 2,
          command: child('gather'),
          nodes: nodes(m),
          onOutput: (stream, text) => (outs[m][stream] += text),
        }),
      ),
    );
    expect(outs[0].stderr + outs[1].stderr).not.toMatch(/Error/);
    expect(codes).toEqual([0, 0]);
    expect(outs[0].stdout.split('\n')).toContain('hello from 0|hello from 1!|hello from 2!!|hello from 3!!!');
    expect(outs[0].stdout.split('\n')).toContain('root says 3');
    // machine 1's ranks are 2 and 3, prefixed with their global rank
    expect(outs[1].stdout.split('\n')).toEqual(
      expect.arrayContaining(['[rank 2] rank 2 done', '[rank 3] rank 3 done']),
    );
    expect(outs[0].stderr).toMatch(new RegExp(`^env 0 4 ${masterPort} 1800$`, 'm'));
  });

  test('a machine with another run id is refused; machine 0 times out naming the ranks that never came', async () => {
    const masterPort = await freePort();
    const out = ['', ''];
    const codes = await Promise.all(
      [0, 1].map((m) =>
        launch({
          nproc: 1,
          command: child('gather'),
          nodes: { count: 2, rank: m, masterAddr: '127.0.0.1', masterPort, runId: m === 0 ? 'right' : 'wrong' },
          collectiveTimeoutS: 2,
          graceMs: 500,
          onOutput: (_stream, text) => (out[m] += text),
        }),
      ),
    );
    expect(codes[0]).not.toBe(0);
    expect(codes[1]).not.toBe(0);
    expect(out[0]).toMatch(/rank 1/);
  }, 30000);
});

describe('launch', () => {
  test('3 ranks: allgather, broadcast, barrier; rank 0 as is, the others prefixed; the env', async () => {
    const r = await run(3, child('gather'));
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('hello from 0|hello from 1!|hello from 2!!');
    expect(lines).toContain('root says 2');
    expect(lines).toContain('[rank 1] rank 1 done');
    expect(lines).toContain('[rank 2] rank 2 done');
    expect(lines).toContain(`pid 0 ${r.pids[0]}`);
    expect(lines).toContain(`[rank 2] pid 2 ${r.pids[2]}`);
    // a last line without its newline is still printed whole, with its prefix
    expect(r.stderr).toMatch(/^\[rank 1\] tail without newline 1$/m);
    expect(r.stderr).toMatch(/^env 0 3 \d+ 1800$/m);
  });

  test('a rank killed by SIGKILL stops the launch; the others are stopped (SIGKILL after the grace period)', async () => {
    const r = await run(3, child('sigkill', '1', 'stubborn'), 700);
    expect(r.code).toBe(137);
    expect(r.stderr).toContain(
      `fused-distill launch: rank 1 (pid ${r.pids[1]}) was killed by SIGKILL; stopping the other ranks`,
    );
    expect(r.stdout).toMatch(/rank 0 ignores SIGTERM/);
    expect(r.stderr).toMatch(/rank 2 \(pid \d+\) did not stop within 0.7 s; sending SIGKILL/);
    expect(r.pids.filter(alive)).toEqual([]);
  });

  test("a rank's non-zero exit is the launch's; the others are stopped by SIGTERM", async () => {
    const t = Date.now();
    const r = await run(2, child('fail', '1', '3'), 5000);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`fused-distill launch: rank 1 (pid ${r.pids[1]}) exited with code 3`);
    expect(r.stderr).not.toMatch(/did not stop/);
    expect(Date.now() - t).toBeLessThan(5000);
    expect(r.pids.filter(alive)).toEqual([]);
  });

  test('SIGTERM to the launcher goes on to the ranks; exit 143', async () => {
    let started = 0;
    const listeners = process.listenerCount('SIGTERM');
    const pids: number[] = [];
    let stderr = '';
    const code = await launch({
      nproc: 2,
      command: child('sigkill', '-1'),
      onOutput: (stream, text) => {
        if (stream === 'stderr') stderr += text;
        // both ranks joined: now the launcher is told to stop (as `kill <launcher pid>` would)
        if (/pid \d+ \d+/.test(text) && ++started === 2) process.emit('SIGTERM', 'SIGTERM');
      },
      onSpawn: (rank, pid) => (pids[rank] = pid),
    });
    expect(code).toBe(143);
    expect(stderr).toContain('fused-distill launch: SIGTERM: passing it on to the ranks');
    expect(stderr).not.toMatch(/was killed by|did not stop/);
    expect(pids.filter(alive)).toEqual([]);
    expect(process.listenerCount('SIGTERM')).toBe(listeners);
  });

  test('a command that cannot start', async () => {
    const r = await run(2, [path.join(__dirname, 'no-such-program')]);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/rank \d could not be started: spawn .*no-such-program ENOENT/);
  });
});

describe('fused-distill launch (CLI)', () => {
  const program = () => {
    const p = new Command().exitOverride().option('--backend <name>', 'b', 'native').option('--threads <n>', 't');
    registerLaunch(p);
    p.commands.forEach((c) => c.exitOverride());
    return p;
  };

  test('--nproc must be a positive integer; global options given are passed on', async () => {
    const p = program();
    p.configureOutput({ writeErr: () => undefined });
    await expect(p.parseAsync(['node', 'cli', 'launch', '--nproc', '0', '--', 'distill', 'x.json'])).rejects.toThrow(
      /--nproc <n>' argument '0' is invalid. expected a positive integer/,
    );
    // as the program's parse leaves them (parsing here would run the launch)
    const q = program();
    q.setOptionValueWithSource('threads', '2', 'cli');
    expect(forwardedGlobals(q)).toEqual(['--threads', '2']);
    expect(rankCommand(q, ['distill', 'run.json', '--resume']).slice(2)).toEqual([
      '--threads',
      '2',
      'distill',
      'run.json',
      '--resume',
    ]);
    expect(() => rankCommand(q, ['launch', 'x'])).toThrow('cannot be launch itself');
  });

  test('end to end on dist/: each rank runs the CLI; a failing command is the exit code', () => {
    // a program like the CLI's with launch registered (dist/cli/index.js wires it in)
    const script = `
      const { Command } = require('commander');
      const { registerLaunch } = require('./dist/cli/launch');
      const p = new Command().exitOverride().option('--backend <name>');
      registerLaunch(p);
      p.commands.forEach((c) => c.exitOverride());
      p.parseAsync(['node', 'cli', ...process.argv.slice(1)]).catch((e) => { process.exitCode = e.exitCode ?? 1; });`;
    const r = spawnSync(process.execPath, ['-e', script, '--', 'launch', '--nproc', '2', '--', 'no-such-command'], {
      cwd: path.join(__dirname, '..'),
      encoding: 'utf8',
    });
    // the first rank to fail stops the other (which may not have printed yet)
    expect(r.stderr).toMatch(/^(\[rank 1\] )?error: unknown command 'no-such-command'/m);
    expect(r.stderr).toMatch(/fused-distill launch: rank \d \(pid \d+\) exited with code 1/);
    expect(r.status).toBe(1);
  });
});
