// What the reliability tests share: the built CLI (dist/) in child processes, a tiny collection and
// tiny run configs (seconds each, backend native), file listings, and a small tmpfs to fill.
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const ROOT = path.join(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'index.js');
const LOCK_MODULE = path.join(ROOT, 'dist', 'data', 'lock.js');

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const ENV = { ...process.env, FUSED_DISTILL_NUM_THREADS: '1' };

/** Runs the CLI to its end; env adds variables (e.g. FUSED_DISTILL_CRASH_AT). */
export function cli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, '--progress', 'none', ...args], {
      cwd: options.cwd,
      env: { ...ENV, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Starts the CLI and returns the process (for signals mid-run). */
export function startCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A child process that holds the lock on `dir` until it is killed; resolves once it holds it. */
export function holdLock(dir: string): Promise<ChildProcess> {
  const code = `require(${JSON.stringify(LOCK_MODULE)}).lockDir(${JSON.stringify(dir)}, { command: 'test holder' }).then(() => { console.log('locked'); setInterval(() => {}, 1000); });`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve(proc));
    proc.on('exit', (c) => reject(new Error(`lock holder exited with ${c}`)));
  });
}

export function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null)
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
}

/** The pid of a process that has ended (for stale locks). */
export function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim());
}

export function writeJson(file: string, value: unknown): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
  return file;
}

/** Every file and dir under root (relative paths), sorted. */
export function listTree(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true }) as string[]).map((p) => p.split(path.sep).join('/')).sort();
}

/** Temporaries and locks a command must not leave behind. */
export function leftovers(root: string): string[] {
  return listTree(root).filter((p) => /(^|\/)\.tmp|\.tmp$|\.old-\d+|(^|\/)\.lock/.test(p));
}

export const TEACHER_SIZES = { layers: 2, hidden: 32, heads: 2, intermediate: 64, maxPosition: 64 };

/** The tiny collection (12 Brown documents) in dir, built by the CLI. */
export async function buildTinyCollection(dir: string): Promise<void> {
  const r = await cli([
    'data',
    'build',
    dir,
    '--documents',
    '12',
    '--queries',
    '40',
    '--candidates',
    '10',
    '--passage-words',
    '60',
    '--seed',
    '7',
  ]);
  if (r.code !== 0) throw new Error(`data build failed: ${r.stderr}`);
}

export function teacherConfig(collection: string, output: string, train: Record<string, number> = {}) {
  return {
    output,
    model: TEACHER_SIZES,
    data: { collection, negatives: 3, maxLength: 48, evalQueries: 4 },
    train: { batch: 4, steps: 6, lr: 3e-3, warmup: 1, evalEvery: 3, checkpointEvery: 2, ...train },
    loss: { ranknet: 1 },
  };
}

export function studentConfig(
  collection: string,
  output: string,
  teacherModel: string,
  extra: { cacheDir?: string; train?: Record<string, number>; loss?: Record<string, number> } = {},
) {
  return {
    output,
    teacher: { checkpoint: teacherModel, ...(extra.cacheDir ? { cacheDir: extra.cacheDir } : {}) },
    data: { collection, negatives: 3, maxLength: 48, trainQueries: 8, evalQueries: 4 },
    student: { init: 'teacherLayers', model: { ...TEACHER_SIZES, layers: 1 } },
    train: { batch: 2, steps: 4, lr: 3e-3, warmup: 0, evalEvery: 0, checkpointEvery: 2, ...extra.train },
    loss: extra.loss ?? { ranknet: 1, kl: 1 },
  };
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A small tmpfs at dir (root only): null when mounted, else why not (the tests that need it are
 * skipped under that reason, and jest counts them as skipped).
 */
export function mountTmpfs(dir: string, size = '2m'): string | null {
  fs.mkdirSync(dir, { recursive: true });
  if (process.platform !== 'linux') return `tmpfs needs Linux (this is ${process.platform})`;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `mount could not run: ${r.error.message}`;
  if (r.status !== 0)
    return `mount -t tmpfs failed (${(r.stderr || '').trim() || `exit ${r.status}`}); needs root or CAP_SYS_ADMIN`;
  return null;
}

export function unmount(dir: string): void {
  spawnSync('umount', [dir]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Fills the file system of dir until about `leave` bytes are free. */
export function fillDisk(dir: string, leave: number): void {
  const free = Number(fs.statfsSync(dir).bavail) * Number(fs.statfsSync(dir).bsize);
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let left = free - leave; left > 0; left -= chunk.length) {
      try {
        fs.writeSync(fd, chunk, 0, Math.min(chunk.length, left));
      } catch {
        break;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The lines of stderr that are errors. */
export const errorLines = (stderr: string) => stderr.split('\n').filter((l) => /error/i.test(l));
