// `teacher score --out scores.tsv`: the teacher's scores of exactly the pairs a run's sampler draws
// in its train.steps steps (enumerated without training, and never held: batches.ts drawnPairStream), streamed to a
// `qid<TAB>pid<TAB>score` file that a run reads back as teacher.scores. Scores are appended chunk by
// chunk to `<out>.partial` (each chunk fsynced), described by `<out>.manifest.json` (written first,
// atomically: the teacher's sha256, the dataset fingerprint, the sampler's settings and a hash of the
// pair list). A killed command, run again, checks the manifest against its own, keeps the chunks
// already written (a torn last line or chunk is cut off, never read as data) and scores the rest;
// the finished file is renamed into place as `<out>`. Chunks start at fixed pair offsets, so a
// resumed file is byte-identical to an uninterrupted one (a chunk's batches, and so its float32
// scores, do not depend on where the command started). Under several ranks every rank draws the same
// pairs and scores a share of each chunk's queries (scorePairsSharded); rank 0 alone reads, checks,
// writes and renames the files, and tells the others where to resume.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { crashPoint, fsyncDir, writeAtomic } from '../data/atomic';
import type { RankingCollection } from '../data/ranking_collection';
import { broadcastJson, getWorld, type World } from '../distributed/world';
import type { CrossEncoder } from '../models/cross_encoder';
import type { TaskEvent } from '../eval/rerank';
import type { PairEncoder } from '../models/pair_encoder';
import { drawnPairStream } from './batches';
import type { StudentRunConfig } from './config';
import { negativeCount } from './negatives';
import { scorePairsSharded } from './scoring';
import { checkpointHash } from './teacher_cache';

const FORMAT = 'fused-distill-streamed-teacher-scores';

export interface StreamManifest {
  format: string;
  /** sha256 of the teacher's files (teacher_cache.ts checkpointHash) */
  teacherSha256: string;
  /** the dataset's fingerprint (every file read) */
  data: string;
  maxLength: number;
  seed: number;
  batch: number;
  negatives: StudentRunConfig['data']['negatives'];
  trainQueries: number | null;
  steps: number;
  /** pairs scored, and the sha256 of their list (`qid\tpid\n` each, in order) */
  pairs: number;
  pairsSha256: string;
  /** pairs per chunk (scoreBatch * 8): a chunk is written, fsynced and resumed from whole */
  chunk: number;
}

export interface StreamResult {
  file: string;
  manifest: string;
  pairs: number;
  /** pairs found already scored (a resumed or finished file) */
  resumedAt: number;
  /** false when the file was complete before this call */
  computed: boolean;
}

export const manifestFile = (out: string) => `${out}.manifest.json`;
export const partialFile = (out: string) => `${out}.partial`;

// The count and sha256 of the pairs (`qid\tpid\n` each, in order), hashed in 64 KB pieces.
function countAndHash(pairs: Iterable<readonly [string, string]>): { pairs: number; sha256: string } {
  const hash = createHash('sha256');
  let n = 0;
  let piece = '';
  for (const [q, p] of pairs) {
    piece += `${q}\t${p}\n`;
    n += 1;
    if (piece.length >= 1 << 16) {
      hash.update(piece);
      piece = '';
    }
  }
  hash.update(piece);
  return { pairs: n, sha256: hash.digest('hex') };
}

/** The next n values of `it` (fewer at its end). */
function take<T>(it: Iterator<T>, n: number): T[] {
  const out: T[] = [];
  while (out.length < n) {
    const r = it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

// Throws, naming the file and the first field that differs, when an existing manifest is another run's.
function checkManifest(file: string, ours: StreamManifest): void {
  let theirs: Record<string, unknown>;
  try {
    theirs = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(
      `${file}: not valid JSON (${(e as Error).message}); remove it and the scores beside it to start over`,
    );
  }
  for (const [k, v] of Object.entries(ours))
    if (JSON.stringify(theirs[k]) !== JSON.stringify(v))
      throw new Error(
        `${file}: the scores beside it were written for ${k} ${JSON.stringify(theirs[k])}, this run has ${JSON.stringify(v)}; choose another --out, or remove them to start over`,
      );
}

/**
 * The complete scored lines of a partial file that agree with `pairs` (cut back to whole chunks:
 * a torn last line or chunk is dropped, and the file truncated there). A line that names another
 * pair than expected, or a score that is not a finite number, is an error naming the file and line.
 */
function keptLines(
  file: string,
  pairs: Iterator<readonly [string, string]>,
  total: number,
  chunk: number,
  notice: (m: string) => void,
): number {
  const buf = fs.readFileSync(file);
  let complete = 0;
  let keptEnd = 0; // the byte after the last whole chunk
  let start = 0;
  for (let end = buf.indexOf(10); end >= 0; start = end + 1, end = buf.indexOf(10, start)) {
    if (complete === total) throw new Error(`${file}: holds more than the ${total} pairs the run draws`);
    const text = buf.subarray(start, end).toString('utf8');
    const f = text.split('\t');
    const [q, p] = pairs.next().value as readonly [string, string];
    if (f.length !== 3 || f[0] !== q || f[1] !== p || !Number.isFinite(Math.fround(Number(f[2]))) || f[2].trim() === '')
      throw new Error(
        `${file}:${complete + 1}: expected query ${q}, passage ${p} and a finite score (the pairs are written in the sampler's order), got '${text}'; remove it to start over`,
      );
    complete += 1;
    if (complete % chunk === 0) keptEnd = end + 1;
  }
  const kept = complete - (complete % chunk);
  if (kept < complete || keptEnd < buf.length) {
    notice(`${file}: cut back to ${kept} scored pairs (${buf.length - keptEnd} bytes of a torn line or chunk dropped)`);
    fs.truncateSync(file, keptEnd);
  }
  return kept;
}

/**
 * Scores the pairs `config`'s run draws (train.steps steps, or `steps`) with `teacher` into `out`,
 * resuming a killed run's partial file. `teacherDir` is the teacher's files (hashed into the manifest).
 *
 * Under several ranks (`world`, default the process's) every rank calls it alike: rank 0 checks the
 * files and broadcasts where to resume (or its error, thrown on every rank); each chunk's pairs are
 * scored by query across the ranks and gathered, rank 0 appends them, and the file is byte-identical
 * to one process's. Every rank returns the same result once rank 0 has renamed the file into place;
 * notices come from rank 0. Only rank 0 touches the files: a caller that locks `out`'s dir locks it
 * on rank 0 alone.
 */
export async function streamTeacherScores(
  config: StudentRunConfig,
  opened: { coll: RankingCollection; encoder: PairEncoder; teacher: CrossEncoder; teacherDir: string },
  out: string,
  options: {
    steps?: number;
    onProgress?: (done: number, total: number) => void;
    onNotice?: (message: string) => void;
    /** hears the first pass over the run's draws (the pairs counted and hashed) */
    onTask?: (e: TaskEvent) => void;
    world?: World;
  } = {},
): Promise<StreamResult> {
  const world = options.world ?? getWorld();
  const lead = world.rank === 0;
  const notice = lead ? (options.onNotice ?? (() => undefined)) : () => undefined;
  const steps = options.steps ?? config.train.steps;
  const negatives = negativeCount(config.data.negatives);
  // The pairs are drawn again for each pass over them (the sampler alone: seconds for millions),
  // never held: a long run draws tens of millions.
  const draw = (onTask?: (e: TaskEvent) => void) =>
    drawnPairStream(opened.coll, { negatives, trainQueries: config.data.trainQueries }, config.train, steps, onTask);
  const drawn = countAndHash(draw(options.onTask));
  const chunk = config.train.scoreBatch * 8;
  const manifest: StreamManifest = {
    format: FORMAT,
    teacherSha256: checkpointHash(opened.teacherDir),
    data: opened.coll.fingerprint,
    maxLength: opened.encoder.maxLength,
    seed: config.train.seed,
    batch: config.train.batch,
    negatives: config.data.negatives,
    trainQueries: config.data.trainQueries ?? null,
    steps,
    pairs: drawn.pairs,
    pairsSha256: drawn.sha256,
    chunk,
  };
  const mFile = manifestFile(out);
  const partial = partialFile(out);
  const result = { file: out, manifest: mFile, pairs: drawn.pairs };
  // Rank 0 decides where to start (the checks below read and may truncate or write files); the
  // other ranks follow its decision, or throw its error.
  let start: { finished?: boolean; done?: number; error?: string } = {};
  let fd = -1;
  if (lead)
    try {
      start = await resumePoint(out, manifest, () => draw(), chunk, notice);
      if (!start.finished) fd = fs.openSync(partial, 'a');
    } catch (e) {
      if (world.size === 1) throw e;
      start = { error: (e as Error).message };
    }
  if (world.size > 1) start = await broadcastJson(world, start);
  if (start.error) throw new Error(start.error);
  if (start.finished) return { ...result, resumedAt: drawn.pairs, computed: false };
  let done = start.done!;
  const resumedAt = done;
  const pairs = draw();
  take(pairs, done); // scored already
  try {
    options.onProgress?.(done, drawn.pairs);
    while (done < drawn.pairs) {
      const slice = take(pairs, chunk);
      const values = await scorePairsSharded(opened.teacher, opened.encoder, slice, config.train.scoreBatch, { world });
      const lines = slice.map(([q, p], i) => {
        if (!Number.isFinite(values[i]))
          throw new Error(
            `teacher ${opened.teacherDir}: scored query ${q}, passage ${p} as ${values[i]}; scores must be finite (NaN or Inf weights?)`,
          );
        return `${q}\t${p}\t${values[i]}\n`;
      });
      let wrote: { error?: string } = {};
      if (lead)
        try {
          crashPoint();
          fs.writeSync(fd, lines.join(''));
          fs.fsyncSync(fd);
        } catch (e) {
          if (world.size === 1) throw e;
          wrote = { error: `${partial}: ${(e as Error).message}` };
        }
      // A chunk rank 0 could not write (disk full) stops every rank.
      if (world.size > 1) wrote = await broadcastJson(world, wrote);
      if (wrote.error) throw new Error(wrote.error);
      done += slice.length;
      options.onProgress?.(done, drawn.pairs);
    }
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
  let renamed: { error?: string } = {};
  if (lead)
    try {
      crashPoint();
      fs.renameSync(partial, out);
      fsyncDir(path.dirname(path.resolve(out)));
      crashPoint();
    } catch (e) {
      if (world.size === 1) throw e;
      renamed = { error: (e as Error).message };
    }
  // The others return once the file is in place (or fail with rank 0).
  if (world.size > 1) renamed = await broadcastJson(world, renamed);
  if (renamed.error) throw new Error(renamed.error);
  return { ...result, resumedAt, computed: true };
}

// Where a run starts: `out` finished already (its manifest checked), or the pairs a partial file
// holds in whole chunks (checked against the manifest and cut back to them), or 0 with a fresh
// manifest written. Rank 0's part.
async function resumePoint(
  out: string,
  manifest: StreamManifest,
  draw: () => Iterator<readonly [string, string]>,
  chunk: number,
  notice: (m: string) => void,
): Promise<{ finished?: boolean; done?: number }> {
  const mFile = manifestFile(out);
  const partial = partialFile(out);
  if (fs.existsSync(out)) {
    if (!fs.existsSync(mFile))
      throw new Error(
        `${out}: exists, without ${path.basename(mFile)}: not a file \`teacher score --out\` wrote; choose another --out or remove it`,
      );
    checkManifest(mFile, manifest);
    return { finished: true };
  }
  let done = 0;
  if (fs.existsSync(mFile)) {
    checkManifest(mFile, manifest);
    if (fs.existsSync(partial)) done = keptLines(partial, draw(), manifest.pairs, chunk, notice);
    if (done > 0) notice(`${partial}: resuming after ${done} of ${manifest.pairs} pairs already scored`);
  } else {
    fs.rmSync(partial, { force: true }); // a partial without its manifest is from no run we can check
    await writeAtomic(mFile, (w) => w.write(`${JSON.stringify(manifest, null, 2)}\n`));
  }
  return { done };
}
