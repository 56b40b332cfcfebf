// What the per-query tables built from a dataset file's rows share (the triples table,
// triples_table.ts, and the teacher scores table, score_table.ts): growable typed columns for rows
// of a file of unknown length, a stable grouping of rows by query, the manifest reader, and the
// check of whether a written table still serves its file and the passage store.
import * as fs from 'fs';
import * as path from 'path';

import type { BadRows } from './bad_rows';
import { sourceChange, sourceFingerprint, type PassageStore, type SourceFingerprint } from './passage_store';

/** A growable typed column (one value a row). */
export class Column<T extends Uint32Array | Float32Array> {
  n = 0;
  constructor(public data: T) {}
  push(v: number): void {
    if (this.n === this.data.length) {
      const grown = new (this.data.constructor as new (n: number) => T)(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.n++] = v;
  }
  get values(): T {
    return this.data.subarray(0, this.n) as T;
  }
}
export const uint32Column = (capacity = 1 << 16) => new Column(new Uint32Array(Math.max(16, capacity)));
export const float32Column = (capacity = 1 << 16) => new Column(new Float32Array(Math.max(16, capacity)));

/**
 * About how many rows a text file holds (its size over the mean line length of its first MB, plus
 * 2 %): the row columns' first capacity, so that 40M rows are not grown by doubling (up to twice
 * the memory, and a copy at each doubling). Default capacity for a .gz file (its size says little)
 * or one that cannot be read here (its reader names the problem).
 */
export function estimatedRows(file: string, size: number): number {
  if (file.endsWith('.gz')) return 1 << 16;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(Math.min(size, 1 << 20));
      const n = fs.readSync(fd, head, 0, head.length, 0);
      let lines = 0;
      for (let i = head.indexOf(10); i >= 0 && i < n; i = head.indexOf(10, i + 1)) lines++;
      return lines === 0 ? 1 << 16 : Math.ceil(((size / n) * lines * 1.02)) + 1024;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return 1 << 16;
  }
}

/** Queries numbered in the order of their first rows. */
export class QueryOrder {
  /** each number's qid code */
  readonly codes = uint32Column();
  private readonly numbers = new Map<number, number>();

  /** The query's number, numbering it if new. */
  of(code: number): number {
    let q = this.numbers.get(code);
    if (q === undefined) {
      q = this.codes.n;
      this.numbers.set(code, q);
      this.codes.push(code);
    }
    return q;
  }
}

/**
 * Rows grouped by their group (query) index, stably (a counting sort): group g's rows, in file
 * order, are order[start[g] .. start[g + 1]).
 */
export function groupRows(rowGroup: Uint32Array, groups: number): { start: Uint32Array; order: Uint32Array } {
  const start = new Uint32Array(groups + 1);
  for (let r = 0; r < rowGroup.length; r++) start[rowGroup[r] + 1] += 1;
  for (let g = 0; g < groups; g++) start[g + 1] += start[g];
  const order = new Uint32Array(rowGroup.length);
  const fill = start.slice(0, groups);
  for (let r = 0; r < rowGroup.length; r++) order[fill[rowGroup[r]]++] = r;
  return { start, order };
}

/** A table dir's manifest.json of this format and version, or null (absent, unfinished, another format). */
export function readRowTableManifest<T extends { format: string; version: number }>(
  dir: string,
  format: string,
  version: number,
): T | null {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) return null;
  let m: T;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  return m.format === format && m.version === version ? m : null;
}

/** What a row table's manifest records besides its counts. */
export interface RowTableManifest {
  format: string;
  version: number;
  source: SourceFingerprint;
  /** the passage store's fingerprint (collection and queries) the rows were checked against */
  store: string;
  /** rows skipped as malformed (--skip-bad-rows) and the first one's error */
  skipped: number;
  firstSkipped?: string;
  built: string;
  seconds: number;
}

/** A table opened (not built) by this process: the rows its build skipped are counted in `bad` again. */
export function countSkippedRows(bad: BadRows, source: string, m: RowTableManifest): void {
  if (m.skipped === 0) return;
  bad.counts.set(source, (bad.counts.get(source) ?? 0) + m.skipped);
  if (!bad.first.has(source) && m.firstSkipped) bad.first.set(source, m.firstSkipped);
}

/** Why a table with manifest `m` cannot serve `source` checked against `store` (null: it can). */
export function rowTableStaleness(
  m: RowTableManifest | null,
  source: string,
  store: PassageStore,
  bad: BadRows,
): { reason: string; missing: boolean } | null {
  if (m == null) return { reason: 'not built yet', missing: true };
  const change = sourceChange(m.source, sourceFingerprint(source));
  if (change) return { reason: `${source} changed since it was built: ${change}`, missing: false };
  if (m.store !== store.fingerprint)
    return { reason: 'the collection or the training queries changed since it was built', missing: false };
  // Built skipping bad rows, read without: rebuilt, so that the first bad row is the error.
  if (m.skipped > 0 && !bad.skip) return { reason: `it was built skipping ${m.skipped} bad rows`, missing: true };
  return null;
}
