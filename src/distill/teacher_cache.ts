// Teacher scores, computed once and cached on disk: every student run over the same teacher and data
// reads them instead of running the (large) teacher each step. The cache is a JSONL file — a header
// line with the key, then one {"qid","pid","score"} per pair — named and keyed by a hash of the
// teacher's checkpoint files, the collection's files, maxLength and the pairs scored; any change to
// those gives another key, so a stale cache is never read. Written atomically, with the sha256 of
// its lines in the header; a cache that fails its checks is recomputed with a notice. Under several
// ranks, rank 0 alone reads and writes the file; the ranks score contiguous shares of the queries
// (scorePairsSharded) and every rank returns the same table.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { writeAtomic } from '../data/atomic';
import { BadRows } from '../data/bad_rows';
import type { RankingCollection } from '../data/ranking_collection';
import { openScoreTable, trainingSplitOf, type ScoreFileFormat } from '../data/score_table';
import { broadcastJson, getWorld, type World } from '../distributed/world';
import type { TaskEvent } from '../eval/rerank';
import type { CrossEncoder } from '../models/cross_encoder';
import { huggingFaceFiles, isHuggingFaceDir } from '../models/huggingface';
import type { PairEncoder } from '../models/pair_encoder';
import { scorePairsSharded } from './scoring';

/** pairKey(qid, pid) -> score (float32 values): a Map, or a file's TeacherScoreTable */
export interface ScoreTable {
  get(key: string): number | undefined;
  has(key: string): boolean;
  readonly size: number;
}
export const pairKey = (qid: string, pid: string): string => `${qid}\t${pid}`;

const FORMAT = 'fused-distill-teacher-scores';

/**
 * sha256 of a saveCrossEncoder directory's files (model.json: config and manifest; weights.bin), or
 * of a Hugging Face dir's model and tokenizer files.
 */
export function checkpointHash(dir: string): string {
  const hash = createHash('sha256');
  if (isHuggingFaceDir(dir)) {
    for (const f of huggingFaceFiles(dir)) hash.update(`${path.basename(f)}\0`).update(fs.readFileSync(f));
    return hash.digest('hex');
  }
  for (const name of ['model.json', 'weights.bin']) {
    const f = path.join(dir, name);
    if (!fs.existsSync(f)) throw new Error(`${dir}: no ${name}: not a saved cross-encoder`);
    hash.update(`${name}\0`).update(fs.readFileSync(f));
  }
  return hash.digest('hex');
}

export function cacheKey(
  teacherDir: string,
  coll: RankingCollection,
  pairs: ReadonlyArray<readonly [string, string]>,
  maxLength: number,
): string {
  const hash = createHash('sha256');
  hash.update(
    `${FORMAT} v1\0teacher ${checkpointHash(teacherDir)}\0data ${coll.fingerprint}\0maxLength ${maxLength}\0`,
  );
  for (const [q, p] of pairs) hash.update(`${q}\t${p}\n`);
  return hash.digest('hex');
}

export interface TeacherScoresResult {
  scores: Map<string, number>;
  file: string;
  /** false when read from the cache */
  computed: boolean;
}

interface Header {
  format: string;
  key: string;
  pairs: number;
  /** sha256 of the lines after the header (each with its newline); absent in caches written before it was */
  sha256?: string;
}

/** What a cache read found: the scores, or why they cannot be used (naming the file and line). */
type CacheRead = { scores: Map<string, number> } | { problem: string } | null;

// A score a float32 tensor can hold: finite after rounding to float32 (1e300 is not).
const usableScore = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(Math.fround(x));

/**
 * The cache's scores for `key`. null when there is no cache for the key (another key's file, or
 * none); a problem when it is ours but cannot be trusted: a line that is not a {qid, pid, score}
 * with a finite score, a pair missing or repeated, or a body whose sha256 differs from the header's.
 */
function readCache(file: string, key: string, expected: number, onNotice: (message: string) => void): CacheRead {
  if (!fs.existsSync(file)) return null;
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  let header: Header;
  try {
    header = JSON.parse(lines[0] ?? '');
  } catch {
    return { problem: `${file}:1: the header is not valid JSON` };
  }
  if (header?.format !== FORMAT || header.key !== key || header.pairs !== expected) return null;
  const scores = new Map<string, number>();
  for (let i = 1; i < lines.length; i++) {
    let rec: { qid?: unknown; pid?: unknown; score?: unknown };
    try {
      rec = JSON.parse(lines[i]);
    } catch {
      return { problem: `${file}:${i + 1}: not valid JSON (truncated or corrupt?)` };
    }
    if (typeof rec?.qid !== 'string' || typeof rec.pid !== 'string')
      return { problem: `${file}:${i + 1}: no qid and pid strings` };
    if (!usableScore(rec.score))
      return {
        problem: `${file}:${i + 1}: query ${rec.qid}, passage ${rec.pid} has score ${JSON.stringify(rec.score)}; scores must be finite float32 values`,
      };
    const k = pairKey(rec.qid, rec.pid);
    if (scores.has(k)) return { problem: `${file}:${i + 1}: query ${rec.qid}, passage ${rec.pid} is listed twice` };
    scores.set(k, rec.score);
  }
  if (scores.size !== expected)
    return { problem: `${file}: holds ${scores.size} scores, its header ${expected} (truncated?)` };
  if (header.sha256 == null)
    onNotice(`${file}: has no checksum (written before caches had one); its lines were checked one by one`);
  else if (bodyHash(lines.slice(1)) !== header.sha256)
    return { problem: `${file}: its sha256 differs from the one in its header (corrupt)` };
  return { scores };
}

const bodyHash = (lines: string[]) => {
  const hash = createHash('sha256');
  for (const l of lines) hash.update(`${l}\n`);
  return hash.digest('hex');
};

/**
 * The teacher's scores of `pairs`: read from `<cacheDir>/teacher-scores-<key>.jsonl` when it holds
 * them for this key, else computed with `teacher` and written there. `teacherDir` is the checkpoint
 * `teacher` was loaded from (its files are hashed into the key).
 *
 * Under several ranks (`world`, default the process's), every rank calls it with the same pairs:
 * rank 0 reads the cache and broadcasts what it found (the scores, or that they must be computed);
 * to compute them each rank scores a contiguous share of the queries (a query is never split), the
 * scores are gathered, rank 0 writes the file and the others wait for it; every rank returns the
 * same table, that of one process bit for bit. Notices come from rank 0; `onProgress` counts this
 * rank's own pairs. Only rank 0 touches the file, so a caller that locks the cache dir locks it on
 * rank 0 alone (the others would wait for a lock rank 0 holds while it waits for them).
 */
export async function teacherScores(
  teacher: CrossEncoder,
  teacherDir: string,
  coll: RankingCollection,
  encoder: PairEncoder,
  pairs: ReadonlyArray<readonly [string, string]>,
  options: {
    cacheDir?: string;
    scoreBatch: number;
    onProgress?: (done: number, total: number) => void;
    /** hears why a cache was not used (and recomputed), or was read without a checksum */
    onNotice?: (message: string) => void;
    world?: World;
  },
): Promise<TeacherScoresResult> {
  const world = options.world ?? getWorld();
  const key = cacheKey(teacherDir, coll, pairs, encoder.maxLength);
  const file = path.join(options.cacheDir ?? teacherDir, `teacher-scores-${key.slice(0, 16)}.jsonl`);
  const notice = world.rank === 0 ? (options.onNotice ?? (() => undefined)) : () => undefined;
  const unique = new Set(pairs.map(([q, p]) => pairKey(q, p)));
  if (world.size === 1) {
    const cached = readCache(file, key, unique.size, notice);
    if (cached && 'scores' in cached) return { scores: cached.scores, file, computed: false };
    // A cache of this key that cannot be trusted is recomputed (the teacher is at hand and its scores
    // are deterministic) and overwritten, with a notice naming the file, the line and the problem.
    if (cached) notice(`${cached.problem}; recomputing the teacher's scores`);
  } else {
    // Rank 0's reading, on every rank: the cached scores in the pairs' first-appearance order (as
    // float64, so a cache's values arrive unrounded), or that they are to be computed; an error
    // reading the file is every rank's error.
    let found: { cached: boolean; error?: string } = { cached: false };
    let values = new Float64Array(0);
    if (world.rank === 0)
      try {
        const cached = readCache(file, key, unique.size, notice);
        const missing = cached && 'scores' in cached ? [...unique].find((k) => !cached.scores.has(k)) : undefined;
        if (cached && 'scores' in cached && missing === undefined) {
          found = { cached: true };
          values = Float64Array.from(unique, (k) => cached.scores.get(k)!);
        } else if (cached)
          notice(
            `${'problem' in cached ? cached.problem : `${file}: has no score for query ${missing!.replace('\t', ', passage ')}`}; recomputing the teacher's scores`,
          );
      } catch (e) {
        found = { cached: false, error: `${file}: ${(e as Error).message}` };
      }
    found = await broadcastJson(world, found);
    if (found.error) throw new Error(found.error);
    if (found.cached) {
      const bytes = await world.broadcast(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0);
      const all = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const scores = new Map<string, number>();
      let at = 0;
      for (const k of unique) scores.set(k, all[at++]);
      return { scores, file, computed: false };
    }
  }
  const values = await scorePairsSharded(teacher, encoder, pairs, options.scoreBatch, {
    world,
    onBatch: options.onProgress,
  });
  const scores = new Map<string, number>();
  pairs.forEach(([q, p], i) => {
    if (!Number.isFinite(values[i]))
      throw new Error(
        `teacher ${teacherDir}: scored query ${q}, passage ${p} as ${values[i]}; scores must be finite (NaN or Inf weights?)`,
      );
    scores.set(pairKey(q, p), values[i]);
  });
  let written: { error?: string } = {};
  if (world.rank === 0)
    try {
      // JSON numbers print a float32 value's shortest double form, which parses back to the same value.
      const lines = [...scores].map(([k, score]) => {
        const [qid, pid] = k.split('\t');
        return JSON.stringify({ qid, pid, score });
      });
      const header: Header = { format: FORMAT, key, pairs: scores.size, sha256: bodyHash(lines) };
      await writeAtomic(file, (w) => w.write([JSON.stringify(header), ...lines].map((l) => `${l}\n`).join('')));
    } catch (e) {
      if (world.size === 1) throw e;
      written = { error: `${file}: ${(e as Error).message}` };
    }
  // The others wait for the file (and fail with rank 0 when it could not be written).
  if (world.size > 1) {
    written = await broadcastJson(world, written);
    if (written.error) throw new Error(written.error);
  }
  return { scores, file, computed: true };
}

export interface FileScores {
  scores: ScoreTable;
  /** the collection the student trains on: for a triples file, each training query's pool is its triples' passages */
  coll: RankingCollection;
  format: ScoreFileFormat;
}

/**
 * A teacher's scores from a published file (teacher.scores), served where the cache serves a
 * teacher model's, through the per-query table of data/score_table.ts (written beside a passage
 * store, so MS MARCO's 40M rows are read once). Hofstätter et al.'s `pos_score neg_score qid
 * pid_pos pid_neg` rows also give the training groups: each query's positives are its triples'
 * positives and its negatives their negatives (so every pair a group can hold has a score); with
 * `qid pid score` rows the groups are drawn from the collection as without the file, and every pair
 * drawn must be scored (the caller checks). Rows naming a pid not in the collection or a query not
 * among the training queries, a mix of the two formats, or a pair scored twice with different
 * scores are errors naming the file and line.
 */
export async function scoresFromFile(
  file: string,
  coll: RankingCollection,
  bad = new BadRows(false),
  options: { onProgress?: (e: TaskEvent) => void; notice?: (message: string) => void } = {},
): Promise<FileScores> {
  const table = await openScoreTable(file, coll, { badRows: bad, ...options });
  if (table.rows === 'pairs') return { scores: table, coll, format: 'pairs' };
  const train = trainingSplitOf(table, coll);
  return {
    scores: table,
    coll: {
      ...coll,
      qrels: { ...coll.qrels, train: train.qrels },
      candidates: { ...coll.candidates, train: train.candidates },
    },
    format: 'triples',
  };
}

/** Throws, naming the file and the pair, when a pair the student can train on has no score. */
export function requireScores(scores: ScoreTable, pairs: Iterable<readonly [string, string]>, file: string): void {
  for (const [qid, pid] of pairs)
    if (!scores.has(pairKey(qid, pid)))
      throw new Error(`${file}: has no score for query ${qid}, passage ${pid}, a pair the student trains on`);
}
