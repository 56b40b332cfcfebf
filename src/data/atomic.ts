// Files are written atomically: into a temporary file beside the target, renamed over it only once
// everything was written and flushed. A failure (or a kill) leaves the old file, or none, never half
// of a new one. Written by hand because the npm packages for this (write-file-atomic) take the whole
// content at once, and our writers stream.
import { once } from 'events';
import * as fs from 'fs';
import * as path from 'path';

export class AtomicWriter {
  private readonly stream: fs.WriteStream;
  private finished = false;

  private constructor(
    readonly target: string,
    readonly tempPath: string,
  ) {
    this.stream = fs.createWriteStream(tempPath, { flags: 'wx' });
  }

  static open(target: string): AtomicWriter {
    const dir = path.dirname(path.resolve(target));
    fs.mkdirSync(dir, { recursive: true });
    removeStaleTemps(dir, path.basename(target));
    const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
    return new AtomicWriter(target, temp);
  }

  /** Writes text or bytes, waiting when the stream's buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    crashPoint();
    if (this.stream.errored) throw this.stream.errored;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  /** Flushes to disk and renames the temporary file over the target. */
  async commit(): Promise<void> {
    this.finished = true;
    if (this.stream.errored) throw this.stream.errored;
    this.stream.end();
    await once(this.stream, 'finish');
    crashPoint();
    const fd = fs.openSync(this.tempPath, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(this.tempPath, this.target);
    crashPoint();
  }

  /** Drops the temporary file; the target is left as it was. */
  async abort(): Promise<void> {
    this.finished = true;
    // A stream that failed has closed already, and 'close' comes only once: waiting for it then
    // would never return (the process would end with exit code 0, the error lost).
    if (!this.stream.closed) {
      const closed = once(this.stream, 'close').catch(() => undefined);
      this.stream.destroy();
      await closed;
    }
    fs.rmSync(this.tempPath, { force: true });
  }
}

/** An error while writing `file`: the system's message with the file named (ENOSPC, EIO, EACCES, ...). */
export class WriteError extends Error {
  readonly code?: string;
  constructor(
    readonly file: string,
    cause: Error,
  ) {
    super(`cannot write ${file}: ${cause.message}`, { cause });
    this.name = 'WriteError';
    this.code = (cause as NodeJS.ErrnoException).code;
  }
}

// Crash testing: FUSED_DISTILL_CRASH_AT=n kills the process (SIGKILL, no cleanup) at the n-th
// write point (every chunk written, every flush, every rename), so a test can stop a command at any
// point of its writes and check that a resume reaches the same files; =count prints how many write
// points the command passed (on stderr, at exit).
const crashAt = process.env.FUSED_DISTILL_CRASH_AT;
let writePoints = 0;
if (crashAt === 'count') process.on('exit', () => process.stderr.write(`fused-distill: write points: ${writePoints}\n`));
export function crashPoint(): void {
  writePoints += 1;
  if (writePoints === Number(crashAt)) process.kill(process.pid, 'SIGKILL');
}

// A writer killed before commit leaves its temporary file (never the target). The next writer of the
// same target removes those whose process is gone.
function removeStaleTemps(dir: string, base: string): void {
  const prefix = `.${base}.`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Whether process pid exists (on this host): kill(pid, 0) fails with ESRCH only when it does not. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  // A zombie (exited, not yet reaped: e.g. an MPI rank whose launcher has gone, until init reaps it)
  // answers kill(pid, 0) but holds nothing; on Linux /proc says so (state Z, or X while it goes).
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.charAt(stat.lastIndexOf(')') + 2);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc (not Linux) or no permission: alive, as kill said
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Moves a complete directory `temp` into place at `target`, replacing what was there. rename(2)
 * cannot replace a non-empty directory: the old one moves aside to `<target>.old-<pid>` first, so a
 * kill between the two renames leaves no `target` but the complete old copy beside it.
 */
export function renameDirInto(temp: string, target: string): void {
  const old = `${target}.old-${process.pid}`;
  if (fs.existsSync(target)) fs.renameSync(target, old);
  fs.renameSync(temp, target);
  fs.rmSync(old, { recursive: true, force: true });
  fsyncDir(path.dirname(target));
}

/**
 * Writes a table dir: each of `files` into a temporary dir beside `target` (`.<name>.tmp-<pid>`,
 * which removeStaleTemps clears after a kill), `manifest.json` last (a dir without one is no table),
 * each fsynced, then renamed into place. Any error removes the temporary dir; a file-system error
 * becomes a WriteError naming `target`.
 */
export function writeTableDir(target: string, files: Record<string, ArrayBufferView>, manifest: object): void {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}`);
  try {
    fs.rmSync(temp, { recursive: true, force: true });
    fs.mkdirSync(temp, { recursive: true });
    for (const [name, a] of Object.entries(files))
      fs.writeFileSync(path.join(temp, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    fs.writeFileSync(path.join(temp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    for (const f of fs.readdirSync(temp)) {
      const fd = fs.openSync(path.join(temp, f), 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    crashPoint();
    renameDirInto(temp, target);
  } catch (e) {
    fs.rmSync(temp, { recursive: true, force: true });
    if ((e as NodeJS.ErrnoException).code && !(e instanceof WriteError)) throw new WriteError(target, e as Error);
    throw e;
  }
}

/** Runs fill(writer) and commits; any error aborts (no partial file) and is rethrown. */
export async function writeAtomic(target: string, fill: (w: AtomicWriter) => Promise<void>): Promise<void> {
  const w = AtomicWriter.open(target);
  try {
    await fill(w);
    await w.commit();
  } catch (e) {
    await w.abort();
    // System errors (no space, I/O, permissions) name the file; the writer's own errors pass as they are.
    throw (e as NodeJS.ErrnoException).code && !(e instanceof WriteError) ? new WriteError(target, e as Error) : e;
  }
}
