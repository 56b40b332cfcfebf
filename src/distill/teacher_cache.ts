// Teacher scores, computed once and cached on disk: every student run over the same teacher and data
// reads them instead of running the (large) teacher each step. The cache is a JSONL file — a header
// line with the key, then one {"qid","pid","score"} per pair — named and keyed by a hash of the
// teacher's checkpoint files, the collection's files, maxLength and the pairs scored; any change to
// those gives another key, so a stale cache is never read. Written atomically.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { writeJsonl, readJsonl } from '../data/formats';
import type { RankingCollection } from '../data/ranking_collection';
import type { CrossEncoder } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';
import { scorePairs } from './scoring';

/** qid \t pid -> score (float32 values) */
export type ScoreTable = Map<string, number>;
export const pairKey = (qid: string, pid: string): string => `${qid}\t${pid}`;

const FORMAT = 'fused-distill-teacher-scores';

/** sha256 of a saveCrossEncoder directory's files (model.json: config and manifest; weights.bin). */
export function checkpointHash(dir: string): string {
  const hash = createHash('sha256');
  for (const name of ['model.json', 'weights.bin']) {
    const f = path.join(dir, name);
    if (!fs.existsSync(f)) throw new Error(`${dir}: no ${name}: not a saved cross-encoder`);
    hash.update(`${name}\0`).update(fs.readFileSync(f));
  }
  return hash.digest('hex');
}

export function cacheKey(teacherDir: string, coll: RankingCollection, pairs: ReadonlyArray<readonly [string, string]>, maxLength: number): string {
  const hash = createHash('sha256');
  hash.update(`${FORMAT} v1\0teacher ${checkpointHash(teacherDir)}\0data ${coll.fingerprint}\0maxLength ${maxLength}\0`);
  for (const [q, p] of pairs) hash.update(`${q}\t${p}\n`);
  return hash.digest('hex');
}

export interface TeacherScoresResult {
  scores: ScoreTable;
  file: string;
  /** false when read from the cache */
  computed: boolean;
}

interface Header {
  format: string;
  key: string;
  pairs: number;
}

async function readCache(file: string, key: string, expected: number): Promise<ScoreTable | null> {
  if (!fs.existsSync(file)) return null;
  try {
    const scores: ScoreTable = new Map();
    let header: Header | null = null;
    for await (const rec of readJsonl<Header & { qid: string; pid: string; score: number }>(file)) {
      if (!header) {
        header = rec;
        if (header.format !== FORMAT || header.key !== key || header.pairs !== expected) return null;
        continue;
      }
      scores.set(pairKey(rec.qid, rec.pid), rec.score);
    }
    return header && scores.size === expected ? scores : null;
  } catch {
    return null; // unreadable: recompute and overwrite
  }
}

/**
 * The teacher's scores of `pairs`: read from `<cacheDir>/teacher-scores-<key>.jsonl` when it holds
 * them for this key, else computed with `teacher` and written there. `teacherDir` is the checkpoint
 * `teacher` was loaded from (its files are hashed into the key).
 */
export async function teacherScores(
  teacher: CrossEncoder,
  teacherDir: string,
  coll: RankingCollection,
  encoder: PairEncoder,
  pairs: ReadonlyArray<readonly [string, string]>,
  options: { cacheDir?: string; scoreBatch: number; onProgress?: (done: number, total: number) => void },
): Promise<TeacherScoresResult> {
  const key = cacheKey(teacherDir, coll, pairs, encoder.maxLength);
  const file = path.join(options.cacheDir ?? teacherDir, `teacher-scores-${key.slice(0, 16)}.jsonl`);
  const cached = await readCache(file, key, new Set(pairs.map(([q, p]) => pairKey(q, p))).size);
  if (cached) return { scores: cached, file, computed: false };
  const values = scorePairs(teacher, encoder, pairs, options.scoreBatch, options.onProgress);
  const scores: ScoreTable = new Map();
  pairs.forEach(([q, p], i) => scores.set(pairKey(q, p), values[i]));
  const header: Header = { format: FORMAT, key, pairs: scores.size };
  // JSON numbers print a float32 value's shortest double form, which parses back to the same value.
  await writeJsonl(file, [header, ...[...scores].map(([k, score]) => {
    const [qid, pid] = k.split('\t');
    return { qid, pid, score };
  })]);
  return { scores, file, computed: true };
}
