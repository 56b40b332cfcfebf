// An exclusive lock on an output directory (a run dir, a teacher-score cache dir, a collection dir):
// <dir>/.lock, created with O_EXCL, holds {pid, host, command, started}. A second writer is told who
// holds it; a lock whose process is gone (same host, kill(pid, 0) fails with ESRCH) is taken over
// with a notice. Released when the work ends (also by an error), at process exit, and on SIGINT and
// SIGTERM (the signal then does what it would have done).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { processAlive } from './atomic';

export interface LockInfo {
  pid: number;
  host: string;
  command: string;
  started: string;
}

/** The directory is locked by a live process. */
export class LockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: LockInfo | null,
  ) {
    const who = holder ? `pid ${holder.pid}${holder.host !== os.hostname() ? ` on ${holder.host}` : ''} (${holder.command}, started ${holder.started})` : 'another process (its lock file is unreadable)';
    super(`${dir} is in use by ${who}; wait for it or remove ${path.join(dir, '.lock')} if that process is gone`);
    this.name = 'LockedError';
  }
}

const held = new Set<string>(); // lock files this process holds

function releaseAll(): void {
  for (const file of held) fs.rmSync(file, { force: true });
  held.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  releaseAll();
  uninstall();
  // Nobody else handles it: do what the signal would have done without us.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}
const onSigint = () => onSignal('SIGINT');
const onSigterm = () => onSignal('SIGTERM');

function install(): void {
  if (held.size > 0) return;
  process.on('exit', releaseAll);
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
}

function uninstall(): void {
  process.off('exit', releaseAll);
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigterm);
}

function readInfo(file: string): LockInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
    return Number.isInteger(info.pid) ? info : null;
  } catch {
    return null;
  }
}


// A lock is stale when its process is gone. An unreadable one (a writer killed between creating and
// filling it) is stale once it is a few seconds old.
function stale(file: string, info: LockInfo | null): boolean {
  if (info) return info.host === os.hostname() && info.pid !== process.pid && !processAlive(info.pid);
  try {
    return Date.now() - fs.statSync(file).mtimeMs > 5000;
  } catch {
    return true; // gone meanwhile
  }
}

export interface LockOptions {
  /** what holds the lock (shown to a second writer); default: the process's arguments */
  command?: string;
  /** wait (polling) while a live process holds the lock, instead of failing at once */
  wait?: boolean;
  /** where notices go (a stale lock taken over, waiting for a holder); default stderr */
  notice?: (message: string) => void;
}

/** Takes the lock on `dir` (creating the dir); returns its release. Throws LockedError when held. */
export async function lockDir(dir: string, options: LockOptions = {}): Promise<() => void> {
  const notice = options.notice ?? ((m: string) => process.stderr.write(`fused-distill: ${m}\n`));
  const created = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, '.lock');
  const info: LockInfo = {
    pid: process.pid,
    host: os.hostname(),
    command: options.command ?? process.argv.slice(2).join(' '),
    started: new Date().toISOString(),
  };
  let waiting = false;
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${JSON.stringify(info)}\n`);
        fs.closeSync(fd);
      } catch (e) {
        fs.closeSync(fd);
        fs.rmSync(file, { force: true });
        throw new Error(`cannot write ${file}: ${(e as Error).message}`, { cause: e });
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Held by this process already (a cache dir inside the run dir): the outer holder releases it.
    if (held.has(file)) return () => undefined;
    const holder = readInfo(file);
    if (stale(file, holder)) {
      // Moved aside first: of two processes taking over the same stale lock, one gets it.
      const aside = `${file}.stale-${process.pid}`;
      try {
        fs.renameSync(file, aside);
      } catch {
        continue;
      }
      const moved = readInfo(aside);
      if (moved && moved.pid !== holder?.pid) {
        fs.renameSync(aside, file); // a live lock taken meanwhile: put it back
        continue;
      }
      fs.rmSync(aside, { force: true });
      notice(`${dir}: took over the lock of ${holder ? `pid ${holder.pid} (${holder.command}, started ${holder.started})` : 'an unreadable lock file'}, which is no longer running`);
      continue;
    }
    if (!options.wait) throw new LockedError(dir, holder);
    if (!waiting) notice(`${dir}: waiting for pid ${holder?.pid ?? '?'} (${holder?.command ?? 'unknown'}) to finish with it`);
    waiting = true;
    await new Promise((r) => setTimeout(r, 200));
  }
  install();
  held.add(file);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    held.delete(file);
    // Only our own lock: a lock someone took over after a long pause of ours is theirs.
    if (readInfo(file)?.pid === process.pid) fs.rmSync(file, { force: true });
    // A dir made only to hold the lock (the work failed before writing) is not left behind.
    if (created) {
      try {
        fs.rmdirSync(dir); // fails (and is left) unless empty
      } catch {
        // not empty: it holds the work's output
      }
    }
    if (held.size === 0) uninstall();
  };
}

/** Runs work() holding the lock on `dir`; released however work ends. */
export async function withDirLock<T>(dir: string, work: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const release = await lockDir(dir, options);
  try {
    return await work();
  } finally {
    release();
  }
}
