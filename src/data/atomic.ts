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
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  /** Flushes to disk and renames the temporary file over the target. */
  async commit(): Promise<void> {
    this.finished = true;
    this.stream.end();
    await once(this.stream, 'finish');
    const fd = fs.openSync(this.tempPath, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(this.tempPath, this.target);
  }

  /** Drops the temporary file; the target is left as it was. */
  async abort(): Promise<void> {
    if (!this.finished) {
      this.finished = true;
      this.stream.destroy();
      await once(this.stream, 'close').catch(() => undefined);
    }
    fs.rmSync(this.tempPath, { force: true });
  }
}

// A writer killed before commit leaves its temporary file (never the target). The next writer of the
// same target removes those whose process is gone.
function removeStaleTemps(dir: string, base: string): void {
  const prefix = `.${base}.`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
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
    throw e;
  }
}
