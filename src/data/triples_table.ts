// MS MARCO's training triples (qidpidtriples, `qid<TAB>pid_pos<TAB>pid_neg`) as a per-query table
// kept beside the passage store (`<store>/triples.train/`), so that a run neither reads 40M rows
// nor holds them as JS strings before its first step:
// - qids.bin: uint32 qid of each query, in the order of its first row;
// - pos_offsets.bin / pos.bin: uint32 (queries + 1) offsets and uint32 pids: query q's positives
//   are pos[pos_offsets[q] .. pos_offsets[q + 1]), without repeats, in file order;
// - neg_offsets.bin / neg.bin: the same for its negatives;
// - manifest.json: counts, the triples file's fingerprint and the passage store's (the rows were
//   checked against its collection and queries): either changing makes the table stale.
// What loadMsMarco made of the rows (the triples' negatives, the training candidates, the positives
// judged relevant) is then read through MapView per query, each value made when asked for.
// Text triples (triples.train.small.tsv) and ids that are not integers keep the row reader's path.
import * as fs from 'fs';
import * as path from 'path';

import type { TaskEvent } from '../eval/rerank';
import { writeTableDir } from './atomic';
import { BadRows } from './bad_rows';
import { DataFormatError, readLines } from './lines';
import { withDirLock } from './lock';
import {
  asUint32,
  readProgress,
  removeStaleTemps,
  sourceFingerprint,
  type PassageStore,
} from './passage_store';
import {
  Column,
  countSkippedRows,
  estimatedRows,
  groupRows,
  QueryOrder,
  readRowTableManifest,
  rowTableStaleness,
  uint32Column,
  type RowTableManifest,
} from './row_tables';

export const TRIPLES_FORMAT = 'fused-distill triples table';
export const TRIPLES_VERSION = 1;

export interface TriplesManifest extends RowTableManifest {
  rows: number;
  queries: number;
  positives: number;
  negatives: number;
}

/**
 * A read-only Map whose values are made when asked for (from compact tables): what the pipeline's
 * Maps of lists are, without holding every list at once. Iterates its keys in the order given.
 */
export class MapView<V> extends Map<string, V> {
  constructor(
    private readonly keyList: readonly string[],
    private readonly make: (key: string) => V | undefined,
  ) {
    super();
    // Map's size is a prototype getter; this view's is its key list's.
    Object.defineProperty(this, 'size', { get: () => this.keyList.length });
    // Deep equality (a test's, a cache key's) compares constructors: a view stands in for a Map.
    Object.defineProperty(this, 'constructor', { value: Map });
  }

  override get(key: string): V | undefined {
    return this.make(key);
  }

  override has(key: string): boolean {
    return this.make(key) !== undefined;
  }

  override *keys(): MapIterator<string> {
    yield* this.keyList;
  }

  override *values(): MapIterator<V> {
    for (const k of this.keyList) yield this.make(k)!;
  }

  override *entries(): MapIterator<[string, V]> {
    for (const k of this.keyList) yield [k, this.make(k)!];
  }

  override [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  override forEach(fn: (value: V, key: string, map: Map<string, V>) => void, thisArg?: unknown): void {
    for (const k of this.keyList) fn.call(thisArg, this.make(k)!, k, this);
  }

  override set(): this {
    throw new Error('MapView is read-only');
  }

  override delete(): boolean {
    throw new Error('MapView is read-only');
  }

  override clear(): void {
    throw new Error('MapView is read-only');
  }
}

function readUint32(file: string): Uint32Array {
  const buf = fs.readFileSync(file);
  if (buf.length % 4 !== 0) throw new Error(`${file}: ${buf.length} bytes is not a whole number of uint32s`);
  const out = new Uint32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

// pids [from, to) as the strings the pipeline's ids are (a loop: Array.from with a map is slower).
function strings(pids: Uint32Array, from: number, to: number): string[] {
  const out = new Array<string>(to - from);
  for (let k = from; k < to; k++) out[k - from] = `${pids[k]}`;
  return out;
}

/** The table of one triples file: a query's positives and negatives by qid. */
export class TriplesTable {
  readonly qids: Uint32Array;
  private readonly posOffsets: Uint32Array;
  private readonly pos: Uint32Array;
  private readonly negOffsets: Uint32Array;
  private readonly neg: Uint32Array;
  private readonly indexOf = new Map<number, number>();

  private constructor(
    readonly dir: string,
    readonly manifest: TriplesManifest,
  ) {
    const read = (name: string, n: number) => {
      const a = readUint32(path.join(dir, name));
      if (a.length !== n) throw new Error(`${dir}/${name}: holds ${a.length} values, the manifest says ${n}`);
      return a;
    };
    const m = manifest;
    this.qids = read('qids.bin', m.queries);
    this.posOffsets = read('pos_offsets.bin', m.queries + 1);
    this.pos = read('pos.bin', m.positives);
    this.negOffsets = read('neg_offsets.bin', m.queries + 1);
    this.neg = read('neg.bin', m.negatives);
    this.qids.forEach((qid, q) => this.indexOf.set(qid, q));
  }

  /** Opens the table in `dir` (a complete one: its manifest is written last). */
  static open(dir: string): TriplesTable {
    const m = readTriplesManifest(dir);
    if (m == null) throw new Error(`${dir}: not a triples table (no manifest.json)`);
    return new TriplesTable(dir, m);
  }

  /** queries held */
  get size(): number {
    return this.qids.length;
  }

  /** The query's row in the table, or -1. */
  index(qid: string): number {
    const v = asUint32(qid);
    return v < 0 ? -1 : (this.indexOf.get(v) ?? -1);
  }

  /** The qids in the order of their first rows. */
  qidList(): string[] {
    return Array.from(this.qids, String);
  }

  /** Query q's positives, without repeats, in file order. */
  positives(q: number): string[] {
    return strings(this.pos, this.posOffsets[q], this.posOffsets[q + 1]);
  }

  /** Query q's negatives, without repeats, in file order. */
  negatives(q: number): string[] {
    return strings(this.neg, this.negOffsets[q], this.negOffsets[q + 1]);
  }
}

/** A table dir's manifest, or null when there is none (absent, a build that did not finish, another format). */
export function readTriplesManifest(dir: string): TriplesManifest | null {
  return readRowTableManifest<TriplesManifest>(dir, TRIPLES_FORMAT, TRIPLES_VERSION);
}

const isId = (field: string) => /^\d+$/.test(field);

/** Whether the file's first row is qidpidtriples' (three integer ids); text triples are not. */
export async function isIdTriples(file: string): Promise<boolean> {
  for await (const { text } of readLines(file)) {
    const f = text.split('\t');
    return f.length === 3 && f.every(isId);
  }
  return true; // empty: an empty table
}

export interface TriplesBuildOptions {
  /** rows are checked against the store's collection and training queries */
  store: PassageStore;
  badRows?: BadRows;
  onProgress?: (e: TaskEvent) => void;
}

/**
 * Reads the qidpidtriples file `source` (.gz too) into the table dir `target` (written beside it,
 * renamed into place when complete). A malformed row, a query without text or a passage missing from
 * the collection is a DataFormatError naming the file and line, as the row reader's.
 */
export async function buildTriplesTable(
  source: string,
  target: string,
  options: TriplesBuildOptions,
): Promise<TriplesManifest> {
  const t0 = Date.now();
  const { store } = options;
  const bad = options.badRows ?? new BadRows(false);
  const queries = store.queries.train;
  const fingerprint = sourceFingerprint(source);
  const progress = readProgress(source, fingerprint.size, options.onProgress);
  // Rows as (query index, pos, neg): 12 bytes a row, grouped by query at the end.
  const queryOrder = new QueryOrder();
  const rows0 = estimatedRows(source, fingerprint.size);
  const rowQuery = uint32Column(rows0);
  const rowPos = uint32Column(rows0);
  const rowNeg = uint32Column(rows0);
  const skippedBefore = bad.counts.get(source) ?? 0;
  const what = '3 tab-separated integer ids (qid pid_pos pid_neg)';
  const id = (field: string, line: number, name: string) => {
    const v = asUint32(field);
    if (v < 0) throw new DataFormatError(source, line, `${name} '${field}' is not an integer id (${what})`);
    return v;
  };
  const collection = store.passages.manifest.source.file;
  for await (const { text, line } of readLines(source, progress.read)) {
    const row = bad.guard(() => {
      const f = text.split('\t');
      if (f.length !== 3) throw new DataFormatError(source, line, `expected ${what}, got ${f.length} fields`);
      const qid = id(f[0], line, 'qid');
      const pos = id(f[1], line, 'pid_pos');
      const neg = id(f[2], line, 'pid_neg');
      if (!queries?.has(f[0]))
        throw new DataFormatError(source, line, `query ${f[0]} has no text in ${queries?.manifest.source.file ?? 'the training queries'}`);
      for (const pid of [f[1], f[2]])
        if (!store.passages.has(pid)) throw new DataFormatError(source, line, `passage ${pid} is not in ${collection}`);
      return [qid, pos, neg];
    });
    if (row == null) continue;
    rowQuery.push(queryOrder.of(row[0]));
    rowPos.push(row[1]);
    rowNeg.push(row[2]);
  }
  // Rows grouped by query (stably), then each query's positives and negatives without repeats.
  const Q = queryOrder.codes.n;
  const rows = rowQuery.n;
  const { start, order } = groupRows(rowQuery.values, Q);
  const posOffsets = new Uint32Array(Q + 1);
  const negOffsets = new Uint32Array(Q + 1);
  const pos = uint32Column(Q);
  const neg = uint32Column(rows);
  const seen = new Set<number>();
  // Query q's values of a row column, each once, in file order, appended to `into`: its new length.
  const unique = (values: Uint32Array, q: number, into: Column<Uint32Array>) => {
    seen.clear();
    for (let k = start[q]; k < start[q + 1]; k++) {
      const v = values[order[k]];
      if (!seen.has(v)) into.push(v);
      seen.add(v);
    }
    return into.n;
  };
  const p = rowPos.values;
  const n = rowNeg.values;
  for (let q = 0; q < Q; q++) {
    posOffsets[q + 1] = unique(p, q, pos);
    negOffsets[q + 1] = unique(n, q, neg);
  }
  progress.done();
  const skipped = (bad.counts.get(source) ?? 0) - skippedBefore;
  const manifest: TriplesManifest = {
    format: TRIPLES_FORMAT,
    version: TRIPLES_VERSION,
    source: fingerprint,
    store: store.fingerprint,
    rows,
    queries: Q,
    positives: pos.n,
    negatives: neg.n,
    skipped,
    ...(skipped > 0 ? { firstSkipped: bad.first.get(source) } : {}),
    built: new Date().toISOString(),
    seconds: (Date.now() - t0) / 1000,
  };
  removeStaleTemps(path.dirname(target)); // a build killed midway left its temporary dir
  writeTableDir(
    target,
    {
      'qids.bin': queryOrder.codes.values,
      'pos_offsets.bin': posOffsets,
      'pos.bin': pos.values,
      'neg_offsets.bin': negOffsets,
      'neg.bin': neg.values,
    },
    manifest,
  );
  return manifest;
}

export interface OpenTriplesOptions {
  /** a stale table: rebuilt (default) or an error naming the file */
  stale?: 'rebuild' | 'error';
  force?: boolean;
  badRows?: BadRows;
  onProgress?: (e: TaskEvent) => void;
  notice?: (message: string) => void;
}

/** Why the table in `dir` cannot serve `source` checked against `store` (null: it can). */
const staleness = (dir: string, source: string, store: PassageStore, bad: BadRows) =>
  rowTableStaleness(readTriplesManifest(dir), source, store, bad);

/**
 * The triples table of the qidpidtriples file `source` in `<store dir>/triples.train`, opened when
 * fresh, else (re)built under the store's lock. Rows skipped when it was built are counted in
 * `badRows` again at every open.
 */
export async function openTriplesTable(source: string, store: PassageStore, options: OpenTriplesOptions = {}): Promise<TriplesTable> {
  const bad = options.badRows ?? new BadRows(false);
  const notice = options.notice ?? ((m: string) => process.stderr.write(`fused-distill: ${m}\n`));
  const target = path.join(store.dir, 'triples.train');
  let built: TriplesManifest | null = null;
  if (options.force || staleness(target, source, store, bad) != null)
    await withDirLock(
      store.dir,
      async () => {
        // Checked again under the lock: another process may have built it meanwhile.
        const why = options.force ? { reason: 'forced', missing: false } : staleness(target, source, store, bad);
        if (why == null) return;
        if (!why.missing && !options.force && options.stale === 'error')
          throw new Error(
            `${store.dir}: the triples.train table is stale: ${why.reason}; rebuild it (fused-distill data index) or let the run rebuild it`,
          );
        notice(`${store.dir}: ${why.missing ? 'building' : 'rebuilding'} the triples.train table from ${source}${why.missing ? '' : ` (${why.reason})`}`);
        built = await buildTriplesTable(source, target, { store, badRows: bad, onProgress: options.onProgress });
      },
      { wait: true, notice, command: 'passage store build' },
    );
  const table = TriplesTable.open(target);
  if (built == null) countSkippedRows(bad, source, table.manifest);
  return table;
}
