// The pre-tokenized passage store: a collection's passages (and its queries) tokenized once by the
// run's tokenizer and kept in flat binary files, so that a run over MS MARCO (8.8M passages) neither
// holds every text as a JS string nor tokenizes them again at every start.
//
// A store is a directory per tokenizer (default `<dataset>/.fused-distill-store/<signature prefix>/`)
// holding one token table per source file (`collection`, `queries.train`, ...), each a directory of:
// - tokens.bin: every row's WordPiece ids without special tokens, back to back (uint16 when the
//   vocabulary has at most 65536 ids, else uint32, little-endian);
// - offsets.bin: float64 × (rows + 1), row r's ids are tokens[offsets[r] .. offsets[r + 1]) (float64
//   because MS MARCO's ~700M tokens come close to uint32's range);
// - ids.bin / ids.json: id -> row. None when the ids are 0..N-1 in file order (MS MARCO's pids:
//   row = pid); a direct uint32 table when they are 0..N-1 in another order; sorted uint32 pids and
//   their rows (binary search) for other integer ids; ids.json (read into a Map) for any other ids;
// - df.bin (the collection only): int32 document frequency of every id (PairEncoder's term-match
//   levels need it, and otherwise would have to read every passage at start);
// - manifest.json: format, counts, the tokenizer's signature and the source fingerprint: the
//   file's name, size, mtime and a sha256 of its first and last MB, cheap to check at every start
//   (hashing 3 GB is not). A source whose fingerprint differs is rebuilt (with a notice) or refused.
// Each table is built into a temporary directory and renamed into place once complete: a build
// killed midway leaves no table that reads as one. Builders of the same store take its lock.
//
// Reads: a table of up to WHOLE_FILE_BYTES of ids is read into memory whole; a larger one (MS
// MARCO's is ~1.3 GB) is read by fs.readSync at the row's offset (one syscall of a few hundred bytes
// per passage, negligible next to a forward pass; the OS page cache keeps what is hot). Node core has
// no mmap, and reading 1.3 GB at every start would cost seconds and resident memory for nothing.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';

import type { TaskEvent } from '../eval/rerank';
import { crashPoint, processAlive, renameDirInto, WriteError } from './atomic';
import type { Split } from './collection';
import { DataFormatError, readLines } from './lines';
import { withDirLock } from './lock';
import { HfTokenizer, type PairTokenizer } from './tokenizer';

export const STORE_FORMAT = 'fused-distill token table';
export const STORE_VERSION = 1;
/** Where a dataset's stores go by default: `<dataset>/.fused-distill-store/<tokenizer signature prefix>`. */
export const STORE_DIR_NAME = '.fused-distill-store';
/** Tables with at most this many bytes of ids are read into memory whole; larger ones by offset. */
export const WHOLE_FILE_BYTES = 256 * 1024 * 1024;
const EDGE_BYTES = 1024 * 1024;
// Rows per message to a tokenizer worker: large enough that messaging costs nothing, small enough
// that the pipeline stays full.
const BATCH_ROWS = 2048;
// Smaller sources are tokenized on the main thread: starting workers costs more than it saves.
const WORKER_MIN_BYTES = 4 * 1024 * 1024;

/** What a store records of a source file: enough to notice a change without reading it all. */
export interface SourceFingerprint {
  /** the file's name (a table is per file, wherever the dataset lives) */
  file: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the first and the last MB */
  edges: string;
}

function readAt(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** The file's size, mtime and a sha256 of its first and last MB. */
export function sourceFingerprint(file: string): SourceFingerprint {
  const st = fs.statSync(file);
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const head = new Uint8Array(Math.min(EDGE_BYTES, st.size));
    readAt(fd, head, 0);
    const tailStart = Math.max(head.length, st.size - EDGE_BYTES);
    const tail = new Uint8Array(st.size - tailStart);
    readAt(fd, tail, tailStart);
    hash.update(head).update(tail);
  } finally {
    fs.closeSync(fd);
  }
  return { file: path.basename(file), size: st.size, mtimeMs: st.mtimeMs, edges: hash.digest('hex') };
}

/** How `now` differs from what was recorded (null: the same). */
export function sourceChange(recorded: SourceFingerprint, now: SourceFingerprint): string | null {
  if (recorded.file !== now.file) return `it was built from ${recorded.file}`;
  if (recorded.size !== now.size) return `its size changed from ${recorded.size} to ${now.size} bytes`;
  if (recorded.edges !== now.edges) return 'its content changed';
  if (recorded.mtimeMs !== now.mtimeMs)
    return `it was modified (${new Date(now.mtimeMs).toISOString()}, built from the version of ${new Date(recorded.mtimeMs).toISOString()})`;
  return null;
}

export type TokenDtype = 'uint16' | 'uint32';
type IdTable = 'identity' | 'dense' | 'sorted' | 'strings';

export interface TableManifest {
  format: string;
  version: number;
  /** 'collection', 'queries.train', ... */
  name: string;
  /** the tokenizer's signature (PairTokenizer.signature) */
  tokenizer: string;
  source: SourceFingerprint;
  rows: number;
  tokens: number;
  dtype: TokenDtype;
  ids: IdTable;
  vocabSize: number;
  /** df.bin present */
  df: boolean;
  built: string;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Tokenizing, in worker threads when the source is large

// The worker: rebuilds the tokenizer from its tokenizer.json and returns each batch's ids and
// lengths; with df, counts each id once per row. Evaluated from a string (not a file) so that it runs
// the same from dist/ and from the TypeScript sources under test.
const WORKER_CODE = `
const { parentPort, workerData } = require('worker_threads');
const { Tokenizer } = require(workerData.lib);
const tokenizer = new Tokenizer(workerData.json, {});
const df = workerData.df ? new Int32Array(workerData.vocabSize) : null;
const seen = df ? new Int32Array(workerData.vocabSize) : null;
let row = 0;
parentPort.on('message', (m) => {
  if (m.texts == null) {
    parentPort.postMessage({ df });
    return;
  }
  const parts = m.texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }).ids);
  const lengths = new Uint32Array(parts.length);
  let total = 0;
  parts.forEach((p, i) => { lengths[i] = p.length; total += p.length; });
  const ids = new Uint32Array(total);
  let at = 0;
  for (const p of parts) {
    row += 1;
    for (const id of p) {
      ids[at++] = id;
      if (df && seen[id] !== row) { seen[id] = row; df[id] += 1; }
    }
  }
  parentPort.postMessage({ ids, lengths }, [ids.buffer, lengths.buffer]);
});
`;

interface Tokenized {
  ids: Uint32Array;
  lengths: Uint32Array;
}

interface Tokenize {
  encode(texts: string[]): Promise<Tokenized>;
  /** the document frequencies (when counted); ends the workers */
  finish(): Promise<Int32Array | null>;
  terminate(): Promise<void>;
}

function inlineTokenizer(tokenizer: PairTokenizer, countDf: boolean): Tokenize {
  const df = countDf ? new Int32Array(tokenizer.vocabSize) : null;
  const seen = countDf ? new Int32Array(tokenizer.vocabSize) : null;
  let row = 0;
  return {
    encode: async (texts) => {
      const parts = texts.map((t) => tokenizer.ids(t));
      const lengths = Uint32Array.from(parts, (p) => p.length);
      const ids = new Uint32Array(lengths.reduce((a, b) => a + b, 0));
      let at = 0;
      for (const p of parts) {
        row += 1;
        for (const id of p) {
          ids[at++] = id;
          if (df && seen![id] !== row) {
            seen![id] = row;
            df[id] += 1;
          }
        }
      }
      return { ids, lengths };
    },
    finish: async () => df,
    terminate: async () => undefined,
  };
}

function workerPool(tokenizer: HfTokenizer, n: number, countDf: boolean): Tokenize {
  const workerData = {
    lib: require.resolve('@huggingface/tokenizers'),
    json: tokenizer.definition,
    vocabSize: tokenizer.vocabSize,
    df: countDf,
  };
  // Each worker answers its messages in order: a queue of waiting callers per worker.
  const workers = Array.from({ length: n }, () => {
    const w = new Worker(WORKER_CODE, { eval: true, workerData });
    const state = {
      w,
      waiting: [] as Array<{ resolve: (v: never) => void; reject: (e: Error) => void }>,
      failed: null as Error | null,
    };
    // A worker that fails (or exits) fails what it was asked and everything asked of it later.
    const fail = (e: Error) => {
      state.failed ??= e;
      for (const p of state.waiting.splice(0)) p.reject(state.failed);
    };
    w.on('message', (m) => state.waiting.shift()?.resolve(m as never));
    w.on('error', (e) => fail(new Error(`tokenizer worker failed: ${e.message}`)));
    w.on('exit', (code) => fail(new Error(`tokenizer worker exited (code ${code})`)));
    return state;
  });
  let next = 0;
  const ask = <T>(k: number, message: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const worker = workers[k];
      if (worker.failed) return reject(worker.failed);
      worker.waiting.push({ resolve: resolve as (v: never) => void, reject });
      worker.w.postMessage(message);
    });
  const terminate = async () => {
    await Promise.all(workers.map(({ w }) => w.terminate()));
  };
  return {
    encode: (texts) => ask<Tokenized>(next++ % n, { texts }),
    finish: async () => {
      const counts = await Promise.all(workers.map((_, k) => ask<{ df: Int32Array | null }>(k, {})));
      await terminate();
      if (!countDf) return null;
      const df = new Int32Array(tokenizer.vocabSize);
      for (const c of counts) for (let i = 0; i < df.length; i++) df[i] += c.df![i];
      return df;
    },
    terminate,
  };
}

/**
 * Worker threads a build uses by default: one per core, up to 8 (each holds its own tokenizer). The
 * main thread only reads and writes, so it takes no core of its own: on 2 cores, 2 workers built
 * 1.6 times as fast as 1 (which is no faster than the main thread alone).
 */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(8, os.availableParallelism()));
}

// ---------------------------------------------------------------------------------------------
// Ids -> rows, collected while building

export const CANONICAL_UINT = /^(0|[1-9]\d{0,9})$/;
export const asUint32 = (id: string): number => {
  if (!CANONICAL_UINT.test(id)) return -1;
  const n = Number(id);
  return n <= 0xffffffff ? n : -1;
};

class IdCollector {
  constructor(private readonly file: string) {}

  private nums = new Uint32Array(1 << 16);
  private lines = new Uint32Array(1 << 16);
  private strings: string[] | null = null;
  // Integer ids below 2^27 seen so far (a 16 MB bitset): a repeated one fails at its line, not
  // after tokenizing the whole file. Larger ids are checked when the table is sorted at the end.
  private readonly seen = new Uint8Array(1 << 24);
  n = 0;

  add(id: string, line: number): void {
    if (this.n === this.lines.length) {
      const grow = <T extends Uint32Array>(a: T) => {
        const b = new Uint32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.lines = grow(this.lines);
      if (this.strings == null) this.nums = grow(this.nums);
    }
    this.lines[this.n] = line;
    const v = this.strings == null ? asUint32(id) : -1;
    if (v >= 0 && v < 1 << 27) {
      const bit = 1 << (v & 7);
      if (this.seen[v >> 3] & bit) {
        const first = this.nums.subarray(0, this.n).indexOf(v);
        throw new DataFormatError(this.file, line, `duplicate id '${id}' (first on line ${this.lines[first]})`);
      }
      this.seen[v >> 3] |= bit;
    }
    if (v >= 0) this.nums[this.n] = v;
    else {
      // Ids that are not integers: kept as strings (small collections such as Brown's).
      this.strings ??= Array.from(this.nums.subarray(0, this.n), String);
      this.strings.push(id);
    }
    this.n += 1;
  }

  /** The id table's kind and bytes; a repeated id is an error naming both lines. */
  finish(): { kind: IdTable; bytes: Uint8Array | null } {
    const n = this.n;
    const duplicate = (row: number, first: number, id: string) =>
      new DataFormatError(this.file, this.lines[row], `duplicate id '${id}' (first on line ${this.lines[first]})`);
    if (this.strings != null) {
      const rows = new Map<string, number>();
      this.strings.forEach((id, r) => {
        const first = rows.get(id);
        if (first !== undefined) throw duplicate(r, first, id);
        rows.set(id, r);
      });
      return { kind: 'strings', bytes: Buffer.from(JSON.stringify(this.strings)) };
    }
    const pids = this.nums.subarray(0, n);
    if (pids.every((p, r) => p === r)) return { kind: 'identity', bytes: null };
    // Sorted (pid, row) pairs packed in 64 bits: one native numeric sort, no comparator calls.
    const packed = new BigUint64Array(n);
    for (let r = 0; r < n; r++) packed[r] = (BigInt(pids[r]) << 32n) | BigInt(r);
    packed.sort();
    const sortedPid = (k: number) => Number(packed[k] >> 32n);
    const rowAt = (k: number) => Number(packed[k] & 0xffffffffn);
    for (let k = 1; k < n; k++)
      if (sortedPid(k) === sortedPid(k - 1)) {
        const [a, b] = [rowAt(k - 1), rowAt(k)].sort((x, y) => x - y);
        throw duplicate(b, a, String(sortedPid(k)));
      }
    if (n > 0 && sortedPid(n - 1) === n - 1) {
      const rowOf = new Uint32Array(n);
      for (let k = 0; k < n; k++) rowOf[k] = rowAt(k);
      return { kind: 'dense', bytes: new Uint8Array(rowOf.buffer) };
    }
    const table = new Uint32Array(2 * n);
    for (let k = 0; k < n; k++) {
      table[k] = sortedPid(k);
      table[n + k] = rowAt(k);
    }
    return { kind: 'sorted', bytes: new Uint8Array(table.buffer) };
  }
}

// ---------------------------------------------------------------------------------------------
// Building a table

export interface TableBuildOptions {
  tokenizer: PairTokenizer;
  /** count document frequencies (the collection's table) */
  df?: boolean;
  /** tokenizer worker threads (0: the main thread); default defaultWorkers() for sources over 4 MB */
  workers?: number;
  onProgress?: (e: TaskEvent) => void;
}

/**
 * Progress of an index build reading `source` (`size` bytes): MB read, at most four events a
 * second, the last one at the end. `read` takes each chunk's byte count (readLines' callback).
 */
export function readProgress(
  source: string,
  size: number,
  onProgress: ((e: TaskEvent) => void) | undefined,
  verb = 'index',
): { read: (bytes: number) => void; done: () => void } {
  const label = `${verb} ${path.basename(source)}`;
  const totalMb = Math.max(1, Math.ceil(size / 1e6));
  let readBytes = 0;
  let shown = -1;
  let lastShown = 0;
  const show = (done: number) => {
    const now = Date.now();
    if (done === shown || (done < totalMb && now - lastShown < 250)) return;
    shown = done;
    lastShown = now;
    onProgress?.({ type: 'task', label, done, total: totalMb, unit: 'MB' });
  };
  return { read: (bytes) => show(Math.floor((readBytes += bytes) / 1e6)), done: () => show(totalMb) };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// Temporary table dirs of builders that are gone (killed midway) are removed by the next builder.
export function removeStaleTemps(storeDir: string): void {
  if (!fs.existsSync(storeDir)) return;
  for (const name of fs.readdirSync(storeDir)) {
    const m = /^\.(.+)\.tmp-(\d+)$/.exec(name);
    if (!m || Number(m[2]) === process.pid || processAlive(Number(m[2]))) continue;
    fs.rmSync(path.join(storeDir, name), { recursive: true, force: true });
  }
}

/**
 * Tokenizes the `id<TAB>text` file `source` (collection or queries, .gz too) into the table dir
 * `target` (replacing what is there): written into a temporary dir beside it, renamed into place
 * when complete. A malformed row is a DataFormatError naming the file and line, as the MS MARCO reader's.
 */
export async function buildTokenTable(
  source: string,
  target: string,
  name: string,
  options: TableBuildOptions,
): Promise<TableManifest> {
  const t0 = Date.now();
  const { tokenizer } = options;
  const fingerprint = sourceFingerprint(source);
  const dtype: TokenDtype = tokenizer.vocabSize <= 65536 ? 'uint16' : 'uint32';
  const storeDir = path.dirname(target);
  fs.mkdirSync(storeDir, { recursive: true });
  removeStaleTemps(storeDir);
  const temp = path.join(storeDir, `.${path.basename(target)}.tmp-${process.pid}`);
  fs.rmSync(temp, { recursive: true, force: true });
  fs.mkdirSync(temp);
  const workers =
    options.workers ?? (fingerprint.size >= WORKER_MIN_BYTES && tokenizer instanceof HfTokenizer ? defaultWorkers() : 0);
  const tokenize =
    workers > 0 && tokenizer instanceof HfTokenizer
      ? workerPool(tokenizer, workers, options.df ?? false)
      : inlineTokenizer(tokenizer, options.df ?? false);
  const tokensFd = fs.openSync(path.join(temp, 'tokens.bin'), 'w');
  const offsetsFd = fs.openSync(path.join(temp, 'offsets.bin'), 'w');
  const progress = readProgress(source, fingerprint.size, options.onProgress);
  const ids = new IdCollector(source);
  let tokens = 0;
  try {
    fs.writeSync(offsetsFd, new Uint8Array(new Float64Array([0]).buffer));
    // Batches are tokenized concurrently and written in order.
    const pending: Array<Promise<Tokenized>> = [];
    const writeBatch = async () => {
      const { ids: batch, lengths } = await pending.shift()!;
      const out = dtype === 'uint16' ? Uint16Array.from(batch) : batch;
      writeAll(tokensFd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      const offsets = new Float64Array(lengths.length);
      for (let i = 0; i < lengths.length; i++) offsets[i] = tokens += lengths[i];
      writeAll(offsetsFd, new Uint8Array(offsets.buffer));
      crashPoint();
    };
    let texts: string[] = [];
    const flush = async () => {
      if (texts.length === 0) return;
      const batch = tokenize.encode(texts);
      batch.catch(() => undefined); // a failure is thrown where the batch is awaited, in order
      pending.push(batch);
      texts = [];
      if (pending.length > 2 * Math.max(1, workers)) await writeBatch();
    };
    for await (const { text, line } of readLines(source, progress.read)) {
      // The same checks and messages as readMsMarcoText, without a Map of every id.
      const f = text.split('\t');
      if (f.length !== 2)
        throw new DataFormatError(source, line, `expected 2 tab-separated fields (id, text), got ${f.length} fields`);
      const [id, body] = f;
      if (id.trim() === '') throw new DataFormatError(source, line, 'empty id');
      if (body.trim() === '') throw new DataFormatError(source, line, `id ${id} has no text`);
      ids.add(id, line);
      texts.push(body);
      if (texts.length >= BATCH_ROWS) await flush();
    }
    await flush();
    while (pending.length > 0) await writeBatch();
    const df = await tokenize.finish();
    const idTable = ids.finish();
    progress.done();
    fs.closeSync(tokensFd);
    fs.closeSync(offsetsFd);
    if (idTable.bytes) fs.writeFileSync(path.join(temp, idTable.kind === 'strings' ? 'ids.json' : 'ids.bin'), idTable.bytes);
    if (df) fs.writeFileSync(path.join(temp, 'df.bin'), new Uint8Array(df.buffer));
    const manifest: TableManifest = {
      format: STORE_FORMAT,
      version: STORE_VERSION,
      name,
      tokenizer: tokenizer.signature,
      source: fingerprint,
      rows: ids.n,
      tokens,
      dtype,
      ids: idTable.kind,
      vocabSize: tokenizer.vocabSize,
      df: df != null,
      built: new Date().toISOString(),
      seconds: (Date.now() - t0) / 1000,
    };
    fs.writeFileSync(path.join(temp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    for (const f of fs.readdirSync(temp)) fsyncFile(path.join(temp, f));
    crashPoint();
    renameDirInto(temp, target);
    crashPoint();
    return manifest;
  } catch (e) {
    await tokenize.terminate();
    for (const fd of [tokensFd, offsetsFd])
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
    fs.rmSync(temp, { recursive: true, force: true });
    // System errors (no space, I/O) name the table; the reader's own errors pass as they are.
    const code = (e as NodeJS.ErrnoException).code;
    if (code && !(e instanceof WriteError)) throw new WriteError(target, e as Error);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading a table

/** A row id the table does not hold. */
export class NotInStoreError extends Error {
  constructor(
    readonly id: string,
    message: string,
  ) {
    super(message);
    this.name = 'NotInStoreError';
  }
}

function readTyped<T extends Float64Array | Uint32Array | Uint16Array | Int32Array>(
  file: string,
  make: (n: number) => T,
  bytesPer: number,
): T {
  const size = fs.statSync(file).size;
  const out = make(size / bytesPer);
  const fd = fs.openSync(file, 'r');
  try {
    readAt(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), 0);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** One table of a store: row ids -> token ids. */
export class TokenTable {
  private readonly offsets: Float64Array;
  private readonly whole: Uint16Array | Uint32Array | null;
  private fd: number | null = null;
  private readonly rowOf: (id: string) => number;

  private constructor(
    readonly dir: string,
    readonly manifest: TableManifest,
    /** what a row is, in errors: 'passage', 'query' */
    private readonly what: string,
    wholeLimit: number,
  ) {
    const m = manifest;
    this.offsets = readTyped(path.join(dir, 'offsets.bin'), (n) => new Float64Array(n), 8);
    if (this.offsets.length !== m.rows + 1) throw new Error(`${dir}: offsets.bin holds ${this.offsets.length - 1} rows, the manifest ${m.rows}`);
    const bytesPer = m.dtype === 'uint16' ? 2 : 4;
    const tokensFile = path.join(dir, 'tokens.bin');
    const tokenBytes = fs.statSync(tokensFile).size;
    if (tokenBytes !== m.tokens * bytesPer) throw new Error(`${tokensFile}: ${tokenBytes} bytes, the manifest says ${m.tokens} ${m.dtype} ids`);
    if (tokenBytes <= wholeLimit)
      this.whole =
        m.dtype === 'uint16'
          ? readTyped(tokensFile, (n) => new Uint16Array(n), 2)
          : readTyped(tokensFile, (n) => new Uint32Array(n), 4);
    else {
      this.whole = null;
      this.fd = fs.openSync(tokensFile, 'r');
    }
    const rows = m.rows;
    switch (m.ids) {
      case 'identity':
        this.rowOf = (id) => {
          const v = asUint32(id);
          return v >= 0 && v < rows ? v : -1;
        };
        break;
      case 'dense': {
        const table = readTyped(path.join(dir, 'ids.bin'), (n) => new Uint32Array(n), 4);
        this.rowOf = (id) => {
          const v = asUint32(id);
          return v >= 0 && v < rows ? table[v] : -1;
        };
        break;
      }
      case 'sorted': {
        const table = readTyped(path.join(dir, 'ids.bin'), (n) => new Uint32Array(n), 4);
        const pids = table.subarray(0, rows);
        const at = table.subarray(rows);
        this.rowOf = (id) => {
          const v = asUint32(id);
          if (v < 0) return -1;
          let lo = 0;
          let hi = rows - 1;
          while (lo <= hi) {
            const mid = (lo + hi) >>> 1;
            if (pids[mid] < v) lo = mid + 1;
            else if (pids[mid] > v) hi = mid - 1;
            else return at[mid];
          }
          return -1;
        };
        break;
      }
      case 'strings': {
        const list = JSON.parse(fs.readFileSync(path.join(dir, 'ids.json'), 'utf8')) as string[];
        const map = new Map(list.map((id, r) => [id, r]));
        this.rowOf = (id) => map.get(id) ?? -1;
        break;
      }
      default:
        throw new Error(`${dir}/manifest.json: unknown id table '${String(m.ids)}'`);
    }
  }

  /** Opens the table in `dir` (a complete one: its manifest is written last). */
  static open(dir: string, what = 'row', wholeLimit = WHOLE_FILE_BYTES): TokenTable {
    const manifest = readTableManifest(dir);
    if (manifest == null) throw new Error(`${dir}: not a token table (no manifest.json)`);
    return new TokenTable(dir, manifest, what, wholeLimit);
  }

  /** rows held */
  get size(): number {
    return this.manifest.rows;
  }

  /** whether all ids were read into memory (else each row is read at its offset) */
  get inMemory(): boolean {
    return this.whole != null;
  }

  has(id: string): boolean {
    return this.rowOf(id) >= 0;
  }

  /** The row's token ids (without special tokens); an id the table lacks is a NotInStoreError naming it. */
  tokens(id: string): number[] {
    const r = this.rowOf(id);
    if (r < 0)
      throw new NotInStoreError(id, `${this.what} ${id} is not in ${this.manifest.source.file} (store ${this.dir})`);
    const start = this.offsets[r];
    const n = this.offsets[r + 1] - start;
    if (this.whole) return Array.from(this.whole.subarray(start, start + n));
    const bytesPer = this.manifest.dtype === 'uint16' ? 2 : 4;
    const buf = new Uint8Array(n * bytesPer);
    readAt(this.fd!, buf, start * bytesPer);
    return Array.from(bytesPer === 2 ? new Uint16Array(buf.buffer) : new Uint32Array(buf.buffer));
  }

  /** Document frequency of every token id over the rows (the collection's table), else null. */
  df(): Int32Array | null {
    if (!this.manifest.df) return null;
    return readTyped(path.join(this.dir, 'df.bin'), (n) => new Int32Array(n), 4);
  }

  close(): void {
    if (this.fd != null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** A table dir's manifest, or null when there is none (absent, or a build that did not finish). */
export function readTableManifest(dir: string): TableManifest | null {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) return null;
  let m: TableManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as TableManifest;
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (m.format !== STORE_FORMAT || m.version !== STORE_VERSION) return null; // another format: rebuilt
  return m;
}

// ---------------------------------------------------------------------------------------------
// A store: the collection's table and the queries'

export interface StoreSources {
  /** the collection file (`pid<TAB>passage`) */
  collection: string;
  /** each split's queries file (`qid<TAB>query`) */
  queries?: Partial<Record<Split, string>>;
}

export interface PassageStore {
  dir: string;
  passages: TokenTable;
  queries: Partial<Record<Split, TokenTable>>;
  /** sha256 of the tables' source fingerprints: what changes when a source does */
  fingerprint: string;
}

export interface OpenStoreOptions {
  tokenizer: PairTokenizer;
  /** the store dir (default: defaultStoreDir(dataset dir, tokenizer)) */
  dir?: string;
  /** the dataset dir the default store dir is under (default: the collection file's dir) */
  dataset?: string;
  /** a table whose source changed since it was built: rebuilt (default) or an error naming the file */
  stale?: 'rebuild' | 'error';
  /** rebuild every table even when fresh */
  force?: boolean;
  workers?: number;
  onProgress?: (e: TaskEvent) => void;
  /** a stale table being rebuilt, a build starting */
  notice?: (message: string) => void;
  /** tables with at most this many bytes of ids are read into memory (default WHOLE_FILE_BYTES) */
  wholeLimit?: number;
}

// Store dirs being opened by this process: the last open's turn.
const building = new Map<string, Promise<void>>();

/** `<dataset>/.fused-distill-store/<first 16 hex digits of the tokenizer's signature>` */
export function defaultStoreDir(dataset: string, tokenizer: PairTokenizer): string {
  return path.join(dataset, STORE_DIR_NAME, tokenizer.signature.slice(0, 16));
}

/** Why the table in `dir` cannot serve `source` with `tokenizer` (null: it can). */
function staleness(dir: string, source: string, tokenizer: PairTokenizer): { reason: string; missing: boolean } | null {
  const m = readTableManifest(dir);
  if (m == null) return { reason: 'not built yet', missing: true };
  if (m.tokenizer !== tokenizer.signature) return { reason: 'it was built with another tokenizer', missing: false };
  const change = sourceChange(m.source, sourceFingerprint(source));
  return change ? { reason: `${source} changed since it was built: ${change}`, missing: false } : null;
}

/**
 * The store of `sources` for `tokenizer`: each table opened when fresh, else (re)built, under the
 * store's lock (a second builder waits, then reads what the first built). A stale table with
 * `stale: 'error'` is an error naming the source file that changed.
 */
export async function openPassageStore(sources: StoreSources, options: OpenStoreOptions): Promise<PassageStore> {
  const dir = path.resolve(
    options.dir ?? defaultStoreDir(options.dataset ?? path.dirname(path.resolve(sources.collection)), options.tokenizer),
  );
  const notice = options.notice ?? ((m: string) => process.stderr.write(`fused-distill: ${m}\n`));
  const tables: Array<{ name: string; source: string; what: string; df: boolean }> = [
    { name: 'collection', source: sources.collection, what: 'passage', df: true },
  ];
  for (const [split, file] of Object.entries(sources.queries ?? {}))
    if (file) tables.push({ name: `queries.${split}`, source: file, what: 'query', df: false });
  const todo = () =>
    tables.filter((t) => options.force || staleness(path.join(dir, t.name), t.source, options.tokenizer) != null);
  // The dir lock keeps other processes out; opens within this process take turns (the lock lets
  // its own holder through, and two builds would share one temporary dir).
  const turn = (building.get(dir) ?? Promise.resolve()).then(async () => {
    if (todo().length > 0 || options.force) await buildLocked();
  });
  building.set(
    dir,
    turn.catch(() => undefined),
  );
  await turn;
  async function buildLocked(): Promise<void> {
    try {
      await lockedBuild();
    } catch (e) {
      // A dataset on a read-only or shared mount: say where else the store can go.
      // (mkdir -p on a read-only file system fails with ENOENT.)
      const { code, syscall } = e as NodeJS.ErrnoException;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || (code === 'ENOENT' && syscall === 'mkdir'))
        throw new Error(
          `cannot write the passage store in ${dir} (${(e as Error).message}); give it another dir (data.store in a run config, --store for data index)`,
          { cause: e },
        );
      throw e;
    }
  }
  async function lockedBuild(): Promise<void> {
    await withDirLock(
      dir,
      async () => {
        // Checked again under the lock: another process may have built them meanwhile.
        for (const t of options.force ? tables : todo()) {
          const target = path.join(dir, t.name);
          const why = staleness(target, t.source, options.tokenizer);
          if (why && !why.missing && options.stale === 'error')
            throw new Error(
              `${dir}: the ${t.name} table is stale: ${why.reason}; rebuild it (fused-distill data index) or let the run rebuild it`,
            );
          notice(
            `${dir}: ${why?.missing ? 'building' : 'rebuilding'} the ${t.name} table from ${t.source}${why && !why.missing ? ` (${why.reason})` : ''}`,
          );
          await buildTokenTable(t.source, target, t.name, {
            tokenizer: options.tokenizer,
            df: t.df,
            workers: options.workers,
            onProgress: options.onProgress,
          });
        }
      },
      { wait: true, notice, command: 'passage store build' },
    );
  }
  const open = (t: (typeof tables)[number]) => TokenTable.open(path.join(dir, t.name), t.what, options.wholeLimit);
  const passages = open(tables[0]);
  const queries: Partial<Record<Split, TokenTable>> = {};
  for (const t of tables.slice(1)) queries[t.name.slice('queries.'.length) as Split] = open(t);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify(tables.map((t) => [t.name, readTableManifest(path.join(dir, t.name))!.source])))
    .digest('hex');
  return { dir, passages, queries, fingerprint };
}
