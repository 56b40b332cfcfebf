// `fused-distill launch`'s engine: runs one command as `nproc` ranks on this machine (the built-in
// stand-in for torchrun where there is no MPI; several machines need mpirun for now). It starts the
// TCP hub (tcp.ts) on 127.0.0.1, spawns the ranks with the variables that tell each its place and
// the hub's address, passes SIGINT / SIGTERM on to them, and stops the whole run as soon as one rank
// fails: the others get SIGTERM, then SIGKILL after a grace period, so no rank is left waiting on a
// collective that can never complete.
import { spawn, type ChildProcess } from 'child_process';
import * as crypto from 'crypto';
import * as os from 'os';

import { ENV, TcpHub, collectiveTimeoutS } from './tcp';

export interface LaunchOptions {
  /** how many ranks (processes) to start */
  nproc: number;
  /** the program and its arguments, the same for every rank */
  command: string[];
  /** the ranks' environment before the launcher's variables are added (default process.env) */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the ranks' output and the launcher's messages go (default: this process's stdout and
   * stderr, with rank 0 writing to them directly). Rank 0's text passes unchanged; the other ranks'
   * lines get a "[rank r] " prefix.
   */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** each rank's pid, as it starts (tests; monitoring) */
  onSpawn?: (rank: number, pid: number) => void;
  /** how long a rank has to exit after SIGTERM before it gets SIGKILL (default 10 s) */
  graceMs?: number;
  /** the hub's collective timeout (default the env's FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, else 1800 s) */
  collectiveTimeoutS?: number;
  /**
   * Several machines, one launch on each (as torchrun's --nnodes): `count` machines of `nproc` ranks
   * each; this one is `rank` (its ranks are rank · nproc ... rank · nproc + nproc − 1). Machine 0's
   * launcher runs the hub on `masterAddr:masterPort`; every launcher of the run is given the same
   * `runId`, which the ranks present to the hub (a stray connection is refused; not a defence
   * against a hostile network).
   */
  nodes?: { count: number; rank: number; masterAddr: string; masterPort: number; runId: string };
}

/** Where this launch's ranks fit: the world's size, the first rank here, the hub's address. */
function layout(options: LaunchOptions): { size: number; first: number } {
  const n = options.nodes;
  if (!n) return { size: options.nproc, first: 0 };
  if (!Number.isInteger(n.count) || n.count < 1)
    throw new RangeError(`launch: nnodes must be a positive integer, got ${n.count}`);
  if (!Number.isInteger(n.rank) || n.rank < 0 || n.rank >= n.count)
    throw new RangeError(`launch: node rank must be in 0..${n.count - 1}, got ${n.rank}`);
  if (!Number.isInteger(n.masterPort) || n.masterPort < 1 || n.masterPort > 65535)
    throw new RangeError(`launch: master port must be in 1..65535, got ${n.masterPort}`);
  if (!n.masterAddr) throw new RangeError('launch: several machines need the master address (machine 0)');
  if (!n.runId) throw new RangeError('launch: several machines need a run id, the same on every machine');
  return { size: n.count * options.nproc, first: n.rank * options.nproc };
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

function signalCode(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}

/** The variables of rank `rank` (FUSED_DISTILL_*: ours; RANK ... MASTER_PORT: torchrun's names, for familiarity). */
export function rankEnv(
  rank: number,
  nproc: number,
  hub: { host: string; port: number; rendezvous: string },
  token: string,
  world: { size: number; first: number } = { size: nproc, first: 0 },
): Record<string, string> {
  const global = world.first + rank;
  return {
    [ENV.rank]: String(global),
    [ENV.size]: String(world.size),
    [ENV.localRank]: String(rank),
    [ENV.localSize]: String(nproc),
    [ENV.rendezvous]: hub.rendezvous,
    [ENV.token]: token,
    RANK: String(global),
    WORLD_SIZE: String(world.size),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(nproc),
    MASTER_ADDR: hub.host,
    MASTER_PORT: String(hub.port),
  };
}

/** Splits a stream's text into lines, each prefixed; the unfinished tail waits for its newline. */
class LinePrefixer {
  private tail = '';
  constructor(
    private readonly prefix: string,
    private readonly write: (text: string) => void,
  ) {}
  push(text: string): void {
    const s = this.tail + text;
    const end = s.lastIndexOf('\n');
    if (end < 0) {
      this.tail = s;
      return;
    }
    this.tail = s.slice(end + 1);
    this.write(
      s
        .slice(0, end + 1)
        .split(/(?<=\n)/)
        .map((line) => this.prefix + line)
        .join(''),
    );
  }
  flush(): void {
    if (this.tail !== '') this.write(`${this.prefix}${this.tail}\n`);
    this.tail = '';
  }
}

interface Rank {
  rank: number;
  child: ChildProcess;
  exited: boolean;
  /** the stdio streams are closed too (everything it wrote has been passed on) */
  done: boolean;
}

/**
 * Runs `command` as `nproc` ranks and resolves to the launch's exit code: 0 when every rank exits
 * 0; else the first failed rank's code (128 + the signal number for a signal), or 128 + the signal
 * the launcher itself received and passed on.
 */
export async function launch(options: LaunchOptions): Promise<number> {
  const { nproc, command } = options;
  if (!Number.isInteger(nproc) || nproc < 1)
    throw new RangeError(`launch: nproc must be a positive integer, got ${nproc}`);
  if (command.length === 0 || !command[0]) throw new RangeError('launch: the command to run is empty');
  const baseEnv = { ...(options.env ?? process.env) };
  const graceMs = options.graceMs ?? 10_000;
  const out =
    options.onOutput ??
    ((stream: 'stdout' | 'stderr', text: string) =>
      (stream === 'stdout' ? process.stdout : process.stderr).write(text));
  const say = (message: string) => out('stderr', `fused-distill launch: ${message}\n`);

  const world = layout(options);
  const nodes = options.nodes;
  const token = nodes ? nodes.runId : crypto.randomBytes(16).toString('hex');
  const timeoutS = options.collectiveTimeoutS ?? collectiveTimeoutS(baseEnv);
  // the ranks' own backstop (a hub that stopped answering) follows the hub's limit
  baseEnv[ENV.timeout] = String(timeoutS);
  // One hub per run: here for one machine (127.0.0.1, any port) or on machine 0 of several (listening
  // on the master address, which the other machines reach); the others' ranks connect to it.
  const hub =
    !nodes || nodes.rank === 0
      ? await TcpHub.start({
          size: world.size,
          token,
          timeoutS,
          log: say,
          ...(nodes ? { host: nodes.masterAddr, port: nodes.masterPort } : {}),
        })
      : null;
  const address = hub ?? {
    host: nodes!.masterAddr,
    port: nodes!.masterPort,
    rendezvous: `${nodes!.masterAddr}:${nodes!.masterPort}`,
    close: async () => undefined,
  };
  // nproc ranks share the cores: each one's kernels get its share unless the caller chose a count
  if (baseEnv.FUSED_DISTILL_NUM_THREADS == null && nproc > 1)
    baseEnv.FUSED_DISTILL_NUM_THREADS = String(Math.max(1, Math.floor(os.availableParallelism() / nproc)));

  return new Promise<number>((resolve) => {
    const ranks: Rank[] = [];
    let exitCode = 0;
    let stopping = false;
    let killTimer: NodeJS.Timeout | null = null;
    let signalled = 0;

    const running = () => ranks.filter((r) => !r.exited);
    const killAll = (signal: NodeJS.Signals) => {
      for (const r of running()) r.child.kill(signal);
    };
    const armKillTimer = () => {
      killTimer ??= setTimeout(() => {
        for (const r of running()) {
          say(`rank ${r.rank} (pid ${r.child.pid}) did not stop within ${graceMs / 1000} s; sending SIGKILL`);
          r.child.kill('SIGKILL');
        }
      }, graceMs);
    };
    /** the first failure decides the exit code and stops the others */
    const stop = (code: number, message: string) => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      const others = running().length;
      say(others > 0 ? `${message}; stopping the other ranks` : message);
      if (others === 0) return;
      killAll('SIGTERM');
      armKillTimer();
    };
    const onSignal = (signal: NodeJS.Signals) => {
      // a second Ctrl-C does not wait for the grace period
      if (++signalled > 1) {
        say(`${signal} again: killing the ranks`);
        return killAll('SIGKILL');
      }
      if (!stopping) {
        stopping = true;
        exitCode = SIGNAL_EXIT[signal] ?? signalCode(signal);
        say(`${signal}: passing it on to the ranks`);
      }
      killAll(signal);
      armKillTimer();
    };
    const handlers = { SIGINT: () => onSignal('SIGINT'), SIGTERM: () => onSignal('SIGTERM') };
    process.on('SIGINT', handlers.SIGINT);
    process.on('SIGTERM', handlers.SIGTERM);

    const finished = () => {
      if (!ranks.every((r) => r.done) || ranks.length < nproc) return;
      process.off('SIGINT', handlers.SIGINT);
      process.off('SIGTERM', handlers.SIGTERM);
      if (killTimer) clearTimeout(killTimer);
      void address.close().then(() => resolve(exitCode));
    };

    for (let local = 0; local < nproc; local++) {
      const rank = world.first + local; // the rank in the whole run (several machines: after theirs)
      const env = { ...baseEnv, ...rankEnv(local, nproc, address, token, world) };
      // rank 0 writes to our stdout / stderr itself (a terminal stays a terminal: progress bars)
      const direct = rank === 0 && options.onOutput == null;
      const child = spawn(command[0], command.slice(1), {
        env,
        stdio: ['ignore', direct ? 'inherit' : 'pipe', direct ? 'inherit' : 'pipe'],
      });
      const r: Rank = { rank, child, exited: false, done: false };
      ranks.push(r);
      if (child.pid != null) options.onSpawn?.(rank, child.pid);
      const prefixers: LinePrefixer[] = [];
      for (const stream of ['stdout', 'stderr'] as const) {
        const s = child[stream];
        if (s == null) continue;
        s.setEncoding('utf8');
        if (rank === 0) {
          s.on('data', (text: string) => out(stream, text));
        } else {
          const p = new LinePrefixer(`[rank ${rank}] `, (text) => out(stream, text));
          prefixers.push(p);
          s.on('data', (text: string) => p.push(text));
        }
      }
      let closeTimer: NodeJS.Timeout | null = null;
      const done = () => {
        if (r.done) return;
        if (closeTimer) clearTimeout(closeTimer);
        r.done = true;
        r.exited = true;
        for (const p of prefixers) p.flush();
        finished();
      };
      child.on('error', (e) => {
        // the command could not be started (not found, not executable)
        if (child.pid != null) return; // a kill that failed on a live child: its exit still comes
        stop(127, `rank ${rank} could not be started: ${e.message}`);
        done();
      });
      child.on('exit', (code, signal) => {
        r.exited = true;
        if (signal != null) stop(signalCode(signal), `rank ${rank} (pid ${child.pid}) was killed by ${signal}`);
        else if (code !== 0) stop(code ?? 1, `rank ${rank} (pid ${child.pid}) exited with code ${code}`);
        // its output may still be in the pipes; a grandchild holding them does not hold up the launch
        closeTimer = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          done();
        }, 2000);
      });
      child.on('close', done);
    }
    finished();
  });
}
