// The transport of `fused-distill launch` (launch.ts): a hub inside the launcher process and one TCP
// connection to it per rank. A rank says hello with its rank and the run's token (a connection
// without the token is refused), then each collective is one framed message per rank; once every
// rank's message of a round is in, the hub sends each rank the others' messages (rank order; a
// rank keeps its own) and the round is done. broadcast and barrier are rounds too (the non-roots
// send nothing, so a broadcast costs the root's bytes once per rank). The hub is the one place that
// sees every rank, so it decides failures: a rank whose connection closes, or a round that waits
// longer than the collective timeout, fails the world; the hub logs it once and sends every rank
// the message, and that rank's pending and later collectives reject with it (CollectiveError).
//
// Frame: a 16-byte little-endian header (u16 type, u16 kind, u32 round, u32 rank, u32 length) and
// `length` bytes. Bodies are read into one buffer each, allocated at their header (no concatenation
// of chunks), and sent from the buffer they arrived in (no copies on the hub).
import * as crypto from 'crypto';
import * as net from 'net';

import { CollectiveError, type World } from './world';

/** The largest message of one rank in one collective (the frame's u32 length). */
export const MAX_MESSAGE_BYTES = 0xffffffff;
export const DEFAULT_COLLECTIVE_TIMEOUT_S = 1800;

/** The variables the launcher sets for each rank (the FUSED_DISTILL_ ones are the ones read here). */
export const ENV = {
  rank: 'FUSED_DISTILL_RANK',
  size: 'FUSED_DISTILL_WORLD_SIZE',
  localRank: 'FUSED_DISTILL_LOCAL_RANK',
  localSize: 'FUSED_DISTILL_LOCAL_WORLD_SIZE',
  rendezvous: 'FUSED_DISTILL_RENDEZVOUS',
  token: 'FUSED_DISTILL_RUN_TOKEN',
  timeout: 'FUSED_DISTILL_COLLECTIVE_TIMEOUT_S',
} as const;

const HEADER_BYTES = 16;
const HELLO_MAX_BYTES = 1024;
const HELLO_TIMEOUT_MS = 10_000;

const enum Type {
  /** rank -> hub: rank in `rank`, world size in `round`, the run token as the body */
  Hello = 1,
  /** hub -> rank: the hello was accepted */
  Welcome = 2,
  /** rank -> hub: this rank's message of collective `round` (`kind`; `rank` holds a broadcast's root) */
  Data = 3,
  /** hub -> rank: rank `rank`'s message of collective `round` */
  Part = 4,
  /** hub -> rank: the world failed (or the hello was refused); the body is the message */
  Fail = 5,
  /** rank -> hub: this rank closes its world (a clean exit, not a death) */
  Bye = 6,
}

const KINDS = ['allgather', 'broadcast', 'barrier'] as const;
type Kind = 0 | 1 | 2;

interface Header {
  type: number;
  kind: number;
  round: number;
  rank: number;
  length: number;
}

function header(type: Type, kind: number, round: number, rank: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt16LE(type, 0);
  b.writeUInt16LE(kind, 2);
  b.writeUInt32LE(round, 4);
  b.writeUInt32LE(rank, 8);
  b.writeUInt32LE(length, 12);
  return b;
}

function frame(type: Type, kind: number, round: number, rank: number, body?: Uint8Array): Buffer[] {
  const h = header(type, kind, round, rank, body?.byteLength ?? 0);
  return body != null && body.byteLength > 0 ? [h, Buffer.from(body.buffer, body.byteOffset, body.byteLength)] : [h];
}

function send(socket: net.Socket, parts: Buffer[]): void {
  for (const p of parts) socket.write(p);
}

const EMPTY = new Uint8Array(0);

/**
 * Splits a byte stream into frames. A body gets its own ArrayBuffer (aligned, so a caller may view
 * it as floats) filled chunk by chunk as the socket delivers them: O(bytes), one allocation.
 */
class FrameReader {
  private head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private pending: Header | null = null;
  private body: Buffer | null = null;
  private bodyFill = 0;

  constructor(
    /** throws on a header the reader's owner refuses (before its body is allocated) */
    private readonly check: (h: Header) => void,
    private readonly onFrame: (h: Header, body: Uint8Array) => void,
  ) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.pending === null) {
        const n = Math.min(HEADER_BYTES - this.headFill, chunk.length - at);
        chunk.copy(this.head, this.headFill, at, at + n);
        this.headFill += n;
        at += n;
        if (this.headFill < HEADER_BYTES) return;
        this.headFill = 0;
        const h: Header = {
          type: this.head.readUInt16LE(0),
          kind: this.head.readUInt16LE(2),
          round: this.head.readUInt32LE(4),
          rank: this.head.readUInt32LE(8),
          length: this.head.readUInt32LE(12),
        };
        this.check(h);
        if (h.length === 0) {
          this.onFrame(h, EMPTY);
          continue;
        }
        this.pending = h;
        this.body = Buffer.allocUnsafeSlow(h.length);
        this.bodyFill = 0;
      } else {
        const body = this.body!;
        const n = Math.min(body.length - this.bodyFill, chunk.length - at);
        chunk.copy(body, this.bodyFill, at, at + n);
        this.bodyFill += n;
        at += n;
        if (this.bodyFill < body.length) return;
        const h = this.pending;
        this.pending = null;
        this.body = null;
        this.onFrame(h, new Uint8Array(body.buffer, body.byteOffset, body.length));
      }
    }
  }
}

function ranksList(ranks: number[]): string {
  return `${ranks.length === 1 ? 'rank' : 'ranks'} ${ranks.join(', ')}`;
}

function seconds(s: number): string {
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// The hub

export interface HubOptions {
  /** the number of ranks */
  size: number;
  /** the run token every rank must present */
  token: string;
  /** where to listen (default 127.0.0.1, port 0: an ephemeral port) */
  host?: string;
  port?: number;
  /** a round that waits longer than this fails, naming the ranks that had not arrived (default 1800) */
  timeoutS?: number;
  /** where the hub's errors go, one line each, once (default stderr) */
  log?: (message: string) => void;
}

interface RankState {
  socket: net.Socket | null;
  /** 'waiting': not connected yet; 'gone': its connection closed; 'closed': it closed its world */
  state: 'waiting' | 'connected' | 'gone' | 'closed';
}

/** The rendezvous of one launch: accepts the ranks' connections and completes their rounds. */
export class TcpHub {
  private server: net.Server;
  private readonly ranks: RankState[];
  private readonly timeoutS: number;
  private readonly log: (message: string) => void;
  private readonly token: Buffer;
  /** the open collective's number (from 1) */
  private round = 1;
  private parts: Array<Uint8Array | undefined>;
  private arrived = 0;
  private first: { kind: number; root: number; rank: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sockets = new Set<net.Socket>();
  private closed = false;
  /** the failure every rank was told about, or null */
  failure: string | null = null;
  host = '';
  port = 0;

  private constructor(private readonly options: HubOptions) {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new RangeError(`hub: size must be a positive integer, got ${options.size}`);
    this.ranks = Array.from({ length: options.size }, () => ({ socket: null, state: 'waiting' as const }));
    this.parts = new Array(options.size);
    this.timeoutS = options.timeoutS ?? DEFAULT_COLLECTIVE_TIMEOUT_S;
    this.log = options.log ?? ((m) => process.stderr.write(`fused-distill launch: ${m}\n`));
    this.token = Buffer.from(options.token, 'utf8');
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Starts a hub listening on host:port (default 127.0.0.1 and an ephemeral port). */
  static async start(options: HubOptions): Promise<TcpHub> {
    const hub = new TcpHub(options);
    await new Promise<void>((resolve, reject) => {
      hub.server.once('error', reject);
      hub.server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        hub.server.off('error', reject);
        resolve();
      });
    });
    hub.server.on('error', (e) => hub.log(`hub: ${e.message}`));
    const address = hub.server.address() as net.AddressInfo;
    hub.host = address.address;
    hub.port = address.port;
    return hub;
  }

  /** host:port, as FUSED_DISTILL_RENDEZVOUS */
  get rendezvous(): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let rank = -1;
    let bye = false;
    let refused = false;
    const refuse = (why: string) => {
      if (refused) return;
      refused = true;
      this.log(`refused a connection from ${peer}: ${why}`);
      send(socket, frame(Type.Fail, 0, 0, 0, Buffer.from(why)));
      socket.end(() => socket.destroy());
    };
    const helloTimer = setTimeout(() => refuse('no hello within 10 s'), HELLO_TIMEOUT_MS);
    helloTimer.unref();
    const reader = new FrameReader(
      (h) => {
        if (rank < 0) {
          if (h.type !== Type.Hello || h.length > HELLO_MAX_BYTES) throw new Error('not a fused-distill rank');
        } else if (h.type !== Type.Data && h.type !== Type.Bye) {
          throw new Error(`rank ${rank} sent a frame of unknown type ${h.type}`);
        }
      },
      (h, body) => {
        if (rank < 0) {
          clearTimeout(helloTimer);
          const why = this.hello(h, body);
          if (why != null) return refuse(why);
          rank = h.rank;
          this.ranks[rank] = { socket, state: 'connected' };
          send(socket, frame(Type.Welcome, 0, 0, rank));
          // a rank that joins a world that already failed learns it at once
          if (this.failure != null) send(socket, frame(Type.Fail, 0, 0, 0, Buffer.from(this.failure)));
        } else if (h.type === Type.Bye) {
          bye = true;
        } else {
          this.data(rank, h, body);
        }
      },
    );
    socket.on('data', (chunk: Buffer) => {
      if (refused) return;
      try {
        reader.push(chunk);
      } catch (e) {
        if (rank < 0) refuse((e as Error).message);
        else this.fail(`protocol error: ${(e as Error).message}`);
        socket.destroy();
      }
    });
    socket.on('error', () => undefined); // the 'close' that follows says what it means
    socket.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(socket);
      if (rank >= 0 && !this.closed) this.left(rank, bye);
    });
  }

  /** null when the hello is good, else why it is refused */
  private hello(h: Header, body: Uint8Array): string | null {
    const size = this.options.size;
    const token = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    if (token.length !== this.token.length || !crypto.timingSafeEqual(token, this.token))
      return 'wrong run token (a process of another launch?)';
    if (h.round !== size) return `rank ${h.rank} says the world has ${h.round} ranks; this launch has ${size}`;
    if (h.rank >= size) return `rank ${h.rank} is out of range (this launch has ${size} ranks)`;
    if (this.ranks[h.rank].state !== 'waiting') return `rank ${h.rank} connected a second time`;
    return null;
  }

  private data(rank: number, h: Header, body: Uint8Array): void {
    const socket = this.ranks[rank].socket!;
    if (this.failure != null) return send(socket, frame(Type.Fail, 0, 0, 0, Buffer.from(this.failure)));
    const kind = KINDS[h.kind] ?? `collective kind ${h.kind}`;
    if (h.round !== this.round)
      return this.fail(`rank ${rank} sent ${kind} ${h.round} while the others are at collective ${this.round}`);
    if (this.parts[rank] !== undefined)
      return this.fail(`rank ${rank} sent ${kind} ${h.round} twice (a second collective before the first completed)`);
    if (this.first == null) {
      this.first = { kind: h.kind, root: h.rank, rank };
      if (this.size > 1) {
        this.timer = setTimeout(() => this.timedOut(), this.timeoutS * 1000);
        this.timer.unref();
      }
    } else if (this.first.kind !== h.kind || (h.kind === 1 && this.first.root !== h.rank)) {
      const what = (k: number, root: number) => (k === 1 ? `broadcast from root ${root}` : (KINDS[k] ?? `kind ${k}`));
      return this.fail(
        `collective ${this.round}: rank ${this.first.rank} called ${what(this.first.kind, this.first.root)} ` +
          `but rank ${rank} called ${what(h.kind, h.rank)} (the ranks must make the same collectives in the same order)`,
      );
    }
    // a rank that is gone can never arrive: this round fails now rather than at the timeout
    const gone = this.ranks.findIndex((r) => r.state === 'gone' || r.state === 'closed');
    if (gone >= 0) return this.fail(this.leftMessage(gone, this.ranks[gone].state === 'closed', 'before'));
    this.parts[rank] = body;
    if (++this.arrived === this.size) this.complete();
  }

  private get size(): number {
    return this.options.size;
  }

  private complete(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const parts = this.parts as Uint8Array[];
    for (let q = 0; q < this.size; q++) {
      const socket = this.ranks[q].socket!;
      socket.cork();
      for (let p = 0; p < this.size; p++) if (p !== q) send(socket, frame(Type.Part, 0, this.round, p, parts[p]));
      socket.uncork();
    }
    this.parts = new Array(this.size);
    this.arrived = 0;
    this.first = null;
    this.round++;
  }

  private kindName(): string {
    return this.first == null ? 'collective' : (KINDS[this.first.kind] ?? 'collective');
  }

  private leftMessage(rank: number, bye: boolean, when: 'during' | 'before'): string {
    const what = bye ? 'closed its world' : 'disconnected (exited?)';
    return `rank ${rank} ${what} ${when} ${this.kindName()} ${this.round}`;
  }

  private left(rank: number, bye: boolean): void {
    this.ranks[rank] = { socket: null, state: bye ? 'closed' : 'gone' };
    // between rounds a rank may leave (it is done, or about to fail on its own): the next round fails
    if (this.arrived > 0 && this.failure == null) this.fail(this.leftMessage(rank, bye, 'during'));
  }

  private timedOut(): void {
    this.timer = null;
    const missing: number[] = [];
    for (let r = 0; r < this.size; r++) if (this.parts[r] === undefined) missing.push(r);
    const never = missing.filter((r) => this.ranks[r].state === 'waiting');
    const note = never.length > 0 ? ` (${never.join(', ')} never connected)` : '';
    this.fail(
      `${this.kindName()} ${this.round} timed out after ${seconds(this.timeoutS)} waiting for ${ranksList(missing)}${note}; ` +
        `${ENV.timeout} sets the limit`,
    );
  }

  /** Fails the world: logged once, sent to every connected rank. */
  private fail(message: string): void {
    if (this.failure != null) return;
    this.failure = message;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.parts = new Array(this.size);
    this.arrived = 0;
    this.log(message);
    for (const r of this.ranks)
      if (r.socket != null && r.state === 'connected') send(r.socket, frame(Type.Fail, 0, 0, 0, Buffer.from(message)));
  }
}

// ---------------------------------------------------------------------------------------------
// A rank

/** Whether this process is a rank that `fused-distill launch` started (its hub's address and token are set). */
export function launchedByLauncher(env: NodeJS.ProcessEnv = process.env): boolean {
  return !!env[ENV.rendezvous] && !!env[ENV.token];
}

function intEnv(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const value = env[name];
  if (value == null || !/^\s*\d+\s*$/.test(value) || Number(value) < min)
    throw new Error(
      `${name}=${value ?? '(unset)'}: expected an integer >= ${min} (fused-distill launch sets it for each rank)`,
    );
  return Number(value);
}

/** FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, or the default 1800 s; a bad value is an error naming it. */
export function collectiveTimeoutS(env: NodeJS.ProcessEnv = process.env): number {
  const value = env[ENV.timeout];
  if (value == null || value.trim() === '') return DEFAULT_COLLECTIVE_TIMEOUT_S;
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) throw new Error(`${ENV.timeout}=${value}: expected a positive number of seconds`);
  return s;
}

function parseRendezvous(value: string | undefined): { host: string; port: number } {
  const m = value == null ? null : /^\[?([^\]]*?)\]?:(\d+)$/.exec(value.trim());
  if (m == null || m[1] === '' || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new Error(`${ENV.rendezvous}=${value ?? '(unset)'}: expected host:port (fused-distill launch sets it)`);
  return { host: m[1], port: Number(m[2]) };
}

interface Pending {
  kind: Kind;
  round: number;
  own: Uint8Array;
  parts: Uint8Array[];
  got: number;
  resolve: (all: Uint8Array[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

class TcpWorld implements World {
  readonly transport = 'tcp';
  private round = 1;
  private pending: Pending | null = null;
  private failure: string | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(
    readonly rank: number,
    readonly size: number,
    readonly localRank: number,
    readonly localSize: number,
    private readonly socket: net.Socket,
    private readonly timeoutS: number,
  ) {}

  /** Takes over the socket once the hub has welcomed this rank. */
  attach(reader: { onFrame: (h: Header, body: Uint8Array) => void }): void {
    reader.onFrame = (h, body) => this.frame(h, body);
    this.socket.on('close', () => {
      if (!this.closed)
        this.fail(`rank ${this.rank}: the launcher's hub closed the connection (the launcher stopped?)`);
    });
    // idle, the connection does not keep the process alive (a rank that is done may just exit)
    this.socket.unref();
  }

  private frame(h: Header, body: Uint8Array): void {
    if (h.type === Type.Fail) return this.fail(Buffer.from(body).toString('utf8'));
    const p = this.pending;
    if (h.type !== Type.Part || p == null || h.round !== p.round || h.rank >= this.size || h.rank === this.rank)
      return this.fail(`rank ${this.rank}: protocol error: unexpected frame (type ${h.type}, collective ${h.round})`);
    p.parts[h.rank] = body;
    if (++p.got < this.size - 1) return;
    p.parts[this.rank] = p.own;
    this.settle();
    p.resolve(p.parts);
  }

  private settle(): void {
    const p = this.pending;
    if (p == null) return;
    clearTimeout(p.timer);
    this.pending = null;
    this.round++;
    this.socket.unref();
  }

  private fail(message: string): void {
    if (this.failure == null) this.failure = message;
    const p = this.pending;
    if (p == null) return;
    this.settle();
    p.reject(new CollectiveError(this.failure));
  }

  private collective(kind: Kind, root: number, bytes: Uint8Array): Promise<Uint8Array[]> {
    const name = KINDS[kind];
    if (this.closed)
      return Promise.reject(new CollectiveError(`rank ${this.rank}: ${name} after the world was closed`));
    if (this.pending != null)
      return Promise.reject(
        new CollectiveError(
          `rank ${this.rank}: ${name} before ${KINDS[this.pending.kind]} ${this.pending.round} completed`,
        ),
      );
    if (this.failure != null) return Promise.reject(new CollectiveError(this.failure));
    if (bytes.byteLength > MAX_MESSAGE_BYTES)
      return Promise.reject(
        new RangeError(
          `${name}: ${bytes.byteLength} bytes is more than one message of the tcp transport carries ` +
            `(${MAX_MESSAGE_BYTES} bytes, 4 GiB - 1); send it in parts`,
        ),
      );
    // the caller may reuse its buffer once we return: the result holds a copy
    const own = new Uint8Array(bytes);
    if (this.size === 1) {
      this.round++;
      return Promise.resolve([own]);
    }
    return new Promise((resolve, reject) => {
      // the hub times a round out; this is the backstop for a hub that stopped answering at all
      const backstopS = this.timeoutS + 60;
      const timer = setTimeout(
        () =>
          this.fail(`rank ${this.rank}: ${name} ${this.round}: no answer from the launcher's hub in ${backstopS} s`),
        backstopS * 1000,
      );
      this.pending = { kind, round: this.round, own, parts: new Array(this.size), got: 0, resolve, reject, timer };
      this.socket.ref();
      this.socket.cork();
      send(this.socket, frame(Type.Data, kind, this.round, root, bytes));
      this.socket.uncork();
    });
  }

  allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.collective(0, 0, bytes);
  }

  async broadcast(bytes: Uint8Array, root = 0): Promise<Uint8Array> {
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new RangeError(`broadcast: root ${root} is not a rank of this world (size ${this.size})`);
    const all = await this.collective(1, root, this.rank === root ? bytes : EMPTY);
    return all[root];
  }

  async barrier(): Promise<void> {
    await this.collective(2, 0, EMPTY);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.pending) this.fail(`rank ${this.rank}: the world was closed during ${KINDS[this.pending.kind]}`);
    this.closing = new Promise<void>((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.ref(); // until the hub has our goodbye
      this.socket.once('close', () => resolve());
      send(this.socket, frame(Type.Bye, 0, 0, this.rank));
      this.socket.end();
      // a hub that does not close its side in time: drop the connection anyway
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
    return this.closing;
  }
}

export interface JoinOptions {
  /** the collective timeout (default FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, else 1800 s); the hub enforces its own */
  timeoutS?: number;
}

/**
 * Joins the launch this process is a rank of (the FUSED_DISTILL_ variables `fused-distill launch`
 * sets): connects to the hub, presents the run token, and resolves when the hub accepted it.
 */
// Connects to the hub, waiting for it to listen: on several machines a rank may start before
// machine 0's launcher has opened the hub (as torchrun's agents wait for their master). Refused or
// unreachable connections are retried every 200 ms until `timeoutS`.
async function connectWhenUp(host: string, port: number, timeoutS: number, what: string): Promise<net.Socket> {
  const began = Date.now();
  const deadline = began + timeoutS * 1000;
  let said = false;
  for (;;) {
    const attempt = await new Promise<net.Socket | Error>((resolve) => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(socket);
      });
      const onError = (e: Error) => {
        socket.destroy();
        resolve(e);
      };
      socket.once('error', onError);
    });
    if (!(attempt instanceof Error)) return attempt;
    const code = (attempt as NodeJS.ErrnoException).code ?? '';
    const retry = ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET'].includes(code);
    if (!retry || Date.now() >= deadline)
      throw new CollectiveError(`${what}: ${attempt.message}${retry ? ` (retried for ${timeoutS} s)` : ''}`);
    if (!said && Date.now() - began > 10_000) {
      said = true;
      process.stderr.write(`fused-distill: ${what} yet (${code}); waiting up to ${timeoutS} s for it\n`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function joinTcp(env: NodeJS.ProcessEnv = process.env, options: JoinOptions = {}): Promise<World> {
  const size = intEnv(env, ENV.size, 1);
  const rank = intEnv(env, ENV.rank, 0);
  if (rank >= size) throw new Error(`${ENV.rank}=${rank} is not below ${ENV.size}=${size}`);
  const localSize = env[ENV.localSize] == null ? size : intEnv(env, ENV.localSize, 1);
  const localRank = env[ENV.localRank] == null ? rank : intEnv(env, ENV.localRank, 0);
  if (localRank >= localSize)
    throw new Error(`${ENV.localRank}=${localRank} is not below ${ENV.localSize}=${localSize}`);
  const { host, port } = parseRendezvous(env[ENV.rendezvous]);
  const token = env[ENV.token];
  if (!token) throw new Error(`${ENV.token} is not set (fused-distill launch sets it for each rank)`);
  const timeoutS = options.timeoutS ?? collectiveTimeoutS(env);

  const where = `the launcher's hub at ${host}:${port} (${ENV.rendezvous})`;
  const socket = await connectWhenUp(host, port, timeoutS, `rank ${rank}: cannot reach ${where}`);
  socket.setNoDelay(true);
  const sink = { onFrame: (_h: Header, _body: Uint8Array): void => undefined };
  const reader = new FrameReader(
    (h) => {
      if (h.type !== Type.Welcome && h.type !== Type.Part && h.type !== Type.Fail)
        throw new Error(`unexpected frame type ${h.type} from ${where}`);
    },
    (h, body) => sink.onFrame(h, body),
  );
  let world: TcpWorld | null = null;
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch (e) {
      socket.destroy(e as Error);
    }
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CollectiveError(`rank ${rank}: no answer from ${where} in ${timeoutS} s`));
    }, timeoutS * 1000);
    const done = (e?: Error) => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (e) {
        socket.destroy();
        reject(e);
      } else resolve();
    };
    const onError = (e: Error) => done(new CollectiveError(`rank ${rank}: cannot reach ${where}: ${e.message}`));
    const onClose = () => done(new CollectiveError(`rank ${rank}: ${where} closed the connection before welcoming it`));
    socket.on('error', onError);
    socket.on('close', onClose);
    sink.onFrame = (h, body) => {
      if (h.type === Type.Welcome) {
        world = new TcpWorld(rank, size, localRank, localSize, socket, timeoutS);
        world.attach(sink);
        return done();
      }
      const why = h.type === Type.Fail ? Buffer.from(body).toString('utf8') : `unexpected frame type ${h.type}`;
      done(new CollectiveError(`rank ${rank}: ${where} refused it: ${why}`));
    };
    send(socket, frame(Type.Hello, 0, size, rank, Buffer.from(token, 'utf8')));
  });
  // errors after the join show up as the 'close' the world listens for
  socket.on('error', () => undefined);
  return world!;
}
