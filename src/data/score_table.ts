// Teacher scores from a file (teacher.scores) as a per-query table: Hofstätter et al.'s
// `pos_score neg_score qid pid_pos pid_neg` rows or `qid pid score` rows, each (query, passage)
// held once. The published MS MARCO files hold ~40M rows: as a Map of "qid\tpid" keys they would
// take gigabytes, and they pass V8's Map limit (2^24 entries). Here the rows are typed columns
// grouped by query:
// - qids.bin: uint32 qid codes, in the order of their first rows;
// - pos_offsets.bin / pos.bin / pos_scores.bin: (queries + 1) uint32 offsets, uint32 pid codes and
//   float32 scores: query q's positives (triples rows) or its scored passages (pairs rows), without
//   repeats, in file order;
// - neg_offsets.bin / neg.bin / neg_scores.bin: the same for the triples' negatives (none for pairs);
// - manifest.json: the format, counts, the file's fingerprint and the passage store's.
// With a passage store (data.msmarco) and integer ids (MS MARCO's), the table is written beside the
// store (`<store>/scores-<hash of the file's path>/`) once and read by later runs; otherwise ids are
// numbered as met and the table lives in memory for the run.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import type { TaskEvent } from '../eval/rerank';
import { writeTableDir } from './atomic';
import { BadRows } from './bad_rows';
import { DataFormatError } from './lines';
import { withDirLock } from './lock';
import { readTeacherScoreFile } from './msmarco';
import {
  asUint32,
  readProgress,
  removeStaleTemps,
  sourceFingerprint,
  type PassageStore,
} from './passage_store';
import {
  countSkippedRows,
  estimatedRows,
  float32Column,
  groupRows,
  QueryOrder,
  readRowTableManifest,
  rowTableStaleness,
  uint32Column,
  type RowTableManifest,
} from './row_tables';
import { hasPassage, type RankingCollection } from './ranking_collection';
import { MapView } from './triples_table';

export const SCORES_FORMAT = 'fused-distill teacher scores table';
export const SCORES_VERSION = 1;

export type ScoreFileFormat = 'triples' | 'pairs';

export interface ScoresManifest extends RowTableManifest {
  rows: ScoreFileFormat;
  rowCount: number;
  queries: number;
  positives: number;
  negatives: number;
}

// Ids as uint32 codes: MS MARCO's integer ids are their own codes (a table of them can be written);
// other ids are numbered as met (a table of them lives in memory only).
interface IdCodes {
  /** the id's code, numbering it if new (-1: not an integer id, for integer codes) */
  code(id: string): number;
  /** the id's code if it has one, else -1 */
  find(id: string): number;
  id(code: number): string;
}

const integerIds: IdCodes = { code: asUint32, find: asUint32, id: String };

function numberedIds(): IdCodes {
  const codes = new Map<string, number>();
  const ids: string[] = [];
  return {
    code: (id) => {
      let c = codes.get(id);
      if (c === undefined) codes.set(id, (c = ids.push(id) - 1));
      return c;
    },
    find: (id) => codes.get(id) ?? -1,
    id: (c) => ids[c],
  };
}

/** One list per query: offsets into pid codes and their scores. */
interface ScoredLists {
  offsets: Uint32Array;
  pids: Uint32Array;
  scores: Float32Array;
}

// Scores of one pair given twice (a positive repeats across a query's triples) must agree up to
// what printing a float loses.
const agree = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(a), Math.abs(b));

/** The teacher's scores of a file's pairs, by query; for a triples file also each query's positives and negatives. */
export class TeacherScoreTable {
  private readonly indexOf = new Map<number, number>();

  constructor(
    readonly rows: ScoreFileFormat,
    readonly qids: Uint32Array,
    private readonly pos: ScoredLists,
    private readonly neg: ScoredLists,
    private readonly ids: IdCodes,
  ) {
    qids.forEach((qid, q) => this.indexOf.set(qid, q));
  }

  /** Opens the table written in `dir` (a complete one: its manifest is written last). */
  static open(dir: string): TeacherScoreTable {
    const m = readScoresManifest(dir);
    if (m == null) throw new Error(`${dir}: not a teacher scores table (no manifest.json)`);
    const read = <T extends Uint32Array | Float32Array>(name: string, n: number, Type: new (n: number) => T): T => {
      const buf = fs.readFileSync(path.join(dir, name));
      if (buf.length !== n * 4) throw new Error(`${dir}/${name}: holds ${buf.length} bytes, the manifest says ${n} values`);
      const a = new Type(n);
      new Uint8Array(a.buffer).set(buf);
      return a;
    };
    const lists = (prefix: string, n: number): ScoredLists => ({
      offsets: read(`${prefix}_offsets.bin`, m.queries + 1, Uint32Array),
      pids: read(`${prefix}.bin`, n, Uint32Array),
      scores: read(`${prefix}_scores.bin`, n, Float32Array),
    });
    return new TeacherScoreTable(
      m.rows,
      read('qids.bin', m.queries, Uint32Array),
      lists('pos', m.positives),
      lists('neg', m.negatives),
      integerIds,
    );
  }

  /** pairs held (each once) */
  get size(): number {
    return this.pos.pids.length + this.neg.pids.length;
  }

  /** The query's row in the table, or -1. */
  index(qid: string): number {
    const c = this.ids.find(qid);
    return c < 0 ? -1 : (this.indexOf.get(c) ?? -1);
  }

  /** The qids in the order of their first rows. */
  qidList(): string[] {
    return Array.from(this.qids, (c) => this.ids.id(c));
  }

  /** The score of `pairKey(qid, pid)`, or undefined: what a Map of pair keys answers (teacher_cache's ScoreTable). */
  get(key: string): number | undefined {
    const tab = key.indexOf('\t');
    const q = this.index(key.slice(0, tab));
    if (q < 0) return undefined;
    const pid = key.slice(tab + 1);
    const c = this.ids.find(pid);
    if (c < 0) return undefined;
    // A query's lists are short (MS MARCO: ~80 triples a query): a scan beats an index's memory.
    for (const l of [this.pos, this.neg])
      for (let k = l.offsets[q]; k < l.offsets[q + 1]; k++) if (l.pids[k] === c) return l.scores[k];
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Query q's positives (a triples file; a pairs file: its scored passages), without repeats, in file order. */
  positives(q: number): string[] {
    return this.list(this.pos, q);
  }

  /** Query q's negatives (a triples file; none for a pairs file), without repeats, in file order. */
  negatives(q: number): string[] {
    return this.list(this.neg, q);
  }

  private list(l: ScoredLists, q: number): string[] {
    const out: string[] = [];
    for (let k = l.offsets[q]; k < l.offsets[q + 1]; k++) out.push(this.ids.id(l.pids[k]));
    return out;
  }
}

export function readScoresManifest(dir: string): ScoresManifest | null {
  return readRowTableManifest<ScoresManifest>(dir, SCORES_FORMAT, SCORES_VERSION);
}

interface Built {
  table: TeacherScoreTable;
  manifest: ScoresManifest;
  /** the lists, for writing */
  files: Record<string, ArrayBufferView>;
}

/**
 * Reads the scores file `source` (.gz too) into a table. Rows are checked as read: a malformed row,
 * a query that is not a training query of `coll`, a passage not in its collection, a score that is
 * not a finite float32, a mix of the two formats; then, grouped by query in file order, a pair
 * scored again with a different score. Each is a DataFormatError naming the file and line (or, with
 * --skip-bad-rows, the row skipped and counted).
 */
export async function buildScoreTable(
  source: string,
  coll: RankingCollection,
  options: { ids?: 'integer' | 'numbered'; badRows?: BadRows; onProgress?: (e: TaskEvent) => void } = {},
): Promise<Built> {
  const t0 = Date.now();
  const bad = options.badRows ?? new BadRows(false);
  const ids = options.ids === 'integer' ? integerIds : numberedIds();
  const fingerprint = sourceFingerprint(source);
  const progress = readProgress(source, fingerprint.size, options.onProgress);
  const skippedBefore = bad.counts.get(source) ?? 0;
  const queries = new QueryOrder();
  // One entry per row: query index, pos (or the pair's) pid, neg pid, their scores, the line.
  const rows0 = estimatedRows(source, fingerprint.size);
  const rowQuery = uint32Column(rows0);
  const rowPos = uint32Column(rows0);
  const rowNeg = uint32Column(rows0);
  const posScore = float32Column(rows0);
  const negScore = float32Column(rows0);
  const rowLine = uint32Column(rows0);
  let rows: ScoreFileFormat | null = null;
  const code = (id: string, line: number, what: string) => {
    const c = ids.code(id);
    if (c < 0)
      throw new DataFormatError(source, line, `${what} '${id}' is not an integer id, as the ids of the passage store's files are`);
    return c;
  };
  const pidCode = (pid: string, score: number, line: number) => {
    if (!hasPassage(coll, pid)) throw new DataFormatError(source, line, `passage ${pid} is not in the collection`);
    if (!Number.isFinite(Math.fround(score)))
      throw new DataFormatError(source, line, `score ${score} is not a finite float32 value`);
    return code(pid, line, 'pid');
  };
  for await (const row of readTeacherScoreFile(source, bad, progress.read)) {
    const rowFormat: ScoreFileFormat = row.pos ? 'triples' : 'pairs';
    const ok = bad.guard(() => {
      if (rows != null && rowFormat !== rows)
        throw new DataFormatError(
          source,
          row.line,
          `a ${rowFormat === 'triples' ? '5' : '3'}-field row in a file of ${rows === 'triples' ? '5' : '3'}-field rows`,
        );
      if (!coll.queries.train.has(row.qid))
        throw new DataFormatError(source, row.line, `query ${row.qid} has no text among the training queries`);
      const q = code(row.qid, row.line, 'qid');
      return row.pos && row.neg
        ? [q, pidCode(row.pos.pid, row.pos.score, row.line), pidCode(row.neg.pid, row.neg.score, row.line)]
        : [q, pidCode(row.pid!, row.score!, row.line), 0];
    });
    if (ok == null) continue;
    rows ??= rowFormat;
    rowQuery.push(queries.of(ok[0]));
    rowPos.push(ok[1]);
    rowNeg.push(ok[2]);
    posScore.push(row.pos ? row.pos.score : row.score!);
    negScore.push(row.neg ? row.neg.score : 0);
    rowLine.push(row.line);
  }
  if (rows == null) throw new Error(`${source}: holds no scores`);
  // Rows grouped by query (stably); then each query's rows in file order, each pair kept once.
  const Q = queries.codes.n;
  const R = rowQuery.n;
  const { start, order } = groupRows(rowQuery.values, Q);
  // At most a pair a row: pairs rows' pairs are the positives' lists, triples rows' mostly negatives.
  const posCap = rows === 'pairs' ? R : Q;
  const negCap = rows === 'pairs' ? 0 : R;
  const pos = { offsets: new Uint32Array(Q + 1), pids: uint32Column(posCap), scores: float32Column(posCap) };
  const neg = { offsets: new Uint32Array(Q + 1), pids: uint32Column(negCap), scores: float32Column(negCap) };
  const P = rowPos.values;
  const N = rowNeg.values;
  const PS = posScore.values;
  const NS = negScore.values;
  const lines = rowLine.values;
  const seen = new Map<number, { score: number; line: number; pos: boolean; neg: boolean }>();
  const triples = rows === 'triples';
  for (let q = 0; q < Q; q++) {
    seen.clear();
    for (let k = start[q]; k < start[q + 1]; k++) {
      const r = order[k];
      const pairs: Array<[number, number, 'pos' | 'neg']> = triples
        ? [
            [P[r], PS[r], 'pos'],
            [N[r], NS[r], 'neg'],
          ]
        : [[P[r], PS[r], 'pos']];
      // The row is checked whole before any of it is kept (--skip-bad-rows drops rows, never half of one).
      const fine = bad.guard(() => {
        for (const [pid, score] of pairs) {
          const before = seen.get(pid);
          if (before && !agree(before.score, score))
            throw new DataFormatError(
              source,
              lines[r],
              `query ${ids.id(queries.codes.data[q])}, passage ${ids.id(pid)} scored ${score}, on line ${before.line} ${before.score}`,
            );
        }
        return true;
      });
      if (!fine) continue;
      for (const [pid, score, role] of pairs) {
        let s = seen.get(pid);
        if (!s) seen.set(pid, (s = { score, line: lines[r], pos: false, neg: false }));
        if (s[role]) continue;
        s[role] = true;
        const l = role === 'pos' ? pos : neg;
        l.pids.push(pid);
        l.scores.push(s.score);
      }
    }
    pos.offsets[q + 1] = pos.pids.n;
    neg.offsets[q + 1] = neg.pids.n;
  }
  progress.done();
  const skipped = (bad.counts.get(source) ?? 0) - skippedBefore;
  const manifest: ScoresManifest = {
    format: SCORES_FORMAT,
    version: SCORES_VERSION,
    source: fingerprint,
    store: coll.store?.fingerprint ?? '',
    rows,
    rowCount: R,
    queries: Q,
    positives: pos.pids.n,
    negatives: neg.pids.n,
    skipped,
    ...(skipped > 0 ? { firstSkipped: bad.first.get(source) } : {}),
    built: new Date().toISOString(),
    seconds: (Date.now() - t0) / 1000,
  };
  const posLists = { offsets: pos.offsets, pids: pos.pids.values, scores: pos.scores.values };
  const negLists = { offsets: neg.offsets, pids: neg.pids.values, scores: neg.scores.values };
  return {
    table: new TeacherScoreTable(rows, queries.codes.values, posLists, negLists, ids),
    manifest,
    files: {
      'qids.bin': queries.codes.values,
      'pos_offsets.bin': posLists.offsets,
      'pos.bin': posLists.pids,
      'pos_scores.bin': posLists.scores,
      'neg_offsets.bin': negLists.offsets,
      'neg.bin': negLists.pids,
      'neg_scores.bin': negLists.scores,
    },
  };
}

/** Where a store keeps the table of the scores file `source`: one dir per file path. */
export function scoreTableDir(store: PassageStore, source: string): string {
  const hash = createHash('sha256').update(path.resolve(source)).digest('hex').slice(0, 12);
  return path.join(store.dir, `scores-${hash}`);
}

// Why the table in `dir` cannot serve `source` checked against `store` (null: it can).
const staleness = (dir: string, source: string, store: PassageStore, bad: BadRows) =>
  rowTableStaleness(readScoresManifest(dir), source, store, bad);

// Whether the file's first row has integer ids in every id field (MS MARCO's files do).
async function integerIdFile(source: string): Promise<boolean> {
  for await (const row of readTeacherScoreFile(source, new BadRows(true)))
    return [row.qid, row.pid, row.pos?.pid, row.neg?.pid].every((id) => id == null || asUint32(id) >= 0);
  return false;
}

/**
 * The table of the scores file `source` for the training queries and passages of `coll`: with a
 * passage store and integer ids, read from (or first built into) the store's dir for it, under the
 * store's lock, rebuilt when the file or the store changed; otherwise built in memory. Rows skipped
 * when a written table was built are counted in `badRows` again at every open.
 */
export async function openScoreTable(
  source: string,
  coll: RankingCollection,
  options: { badRows?: BadRows; onProgress?: (e: TaskEvent) => void; notice?: (message: string) => void } = {},
): Promise<TeacherScoreTable> {
  const bad = options.badRows ?? new BadRows(false);
  const store = coll.store;
  if (!store || !(await integerIdFile(source)))
    return (await buildScoreTable(source, coll, { badRows: bad, onProgress: options.onProgress })).table;
  const notice = options.notice ?? ((m: string) => process.stderr.write(`fused-distill: ${m}\n`));
  const target = scoreTableDir(store, source);
  let built: Built | null = null;
  if (staleness(target, source, store, bad) != null)
    await withDirLock(
      store.dir,
      async () => {
        // Checked again under the lock: another process may have built it meanwhile.
        const why = staleness(target, source, store, bad);
        if (why == null) return;
        notice(`${store.dir}: ${why.missing ? 'building' : 'rebuilding'} the table of ${source}${why.missing ? '' : ` (${why.reason})`}`);
        built = await buildScoreTable(source, coll, { ids: 'integer', badRows: bad, onProgress: options.onProgress });
        removeStaleTemps(store.dir); // a build killed midway left its temporary dir
        writeTableDir(target, built.files, built.manifest);
      },
      { wait: true, notice, command: 'teacher scores table build' },
    );
  if (built) return (built as Built).table;
  const table = TeacherScoreTable.open(target);
  countSkippedRows(bad, source, readScoresManifest(target)!);
  return table;
}

/**
 * The training split a triples scores file defines: each query's positives judged relevant (their
 * qrels grade, at least 1), its negatives the candidates (and judged with their qrels grade where
 * they have one), read per query from the table (MapView: no list is held for all queries at once).
 */
export function trainingSplitOf(
  table: TeacherScoreTable,
  coll: RankingCollection,
): { qrels: Map<string, Map<string, number>>; candidates: Map<string, string[]> } {
  const qids = table.qidList();
  const grades = coll.qrels.train;
  return {
    qrels: new MapView(qids, (qid) => {
      const q = table.index(qid);
      if (q < 0) return undefined;
      const given = grades.get(qid);
      const judged = new Map<string, number>();
      for (const pid of table.positives(q)) judged.set(pid, Math.max(1, given?.get(pid) ?? 0));
      for (const pid of table.negatives(q)) if (!judged.has(pid) && given?.has(pid)) judged.set(pid, given.get(pid)!);
      return judged;
    }),
    candidates: new MapView(qids, (qid) => {
      const q = table.index(qid);
      return q < 0 ? undefined : table.negatives(q);
    }),
  };
}
