// `teacher score --out scores.tsv`: the teacher's scores of exactly the pairs a run's sampler draws
// in its train.steps steps (enumerated without training: batches.ts drawnPairs), streamed to a
// `qid<TAB>pid<TAB>score` file that a run reads back as teacher.scores. Scores are appended chunk by
// chunk to `<out>.partial` (each chunk fsynced), described by `<out>.manifest.json` (written first,
// atomically: the teacher's sha256, the dataset fingerprint, the sampler's settings and a hash of the
// pair list). A killed command, run again, checks the manifest against its own, keeps the chunks
// already written (a torn last line or chunk is cut off, never read as data) and scores the rest;
// the finished file is renamed into place as `<out>`. Chunks start at fixed pair offsets, so a
// resumed file is byte-identical to an uninterrupted one (a chunk's batches, and so its float32
// scores, do not depend on where the command started).
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { crashPoint, fsyncDir, writeAtomic } from '../data/atomic';
import type { RankingCollection } from '../data/ranking_collection';
import type { CrossEncoder } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';
import { drawnPairs } from './batches';
import type { StudentRunConfig } from './config';
import { negativeCount } from './negatives';
import { scorePairs } from './scoring';
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

function pairsHash(pairs: ReadonlyArray<readonly [string, string]>): string {
  const hash = createHash('sha256');
  for (const [q, p] of pairs) hash.update(`${q}\t${p}\n`);
  return hash.digest('hex');
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
  pairs: ReadonlyArray<readonly [string, string]>,
  chunk: number,
  notice: (m: string) => void,
): number {
  const buf = fs.readFileSync(file);
  const starts = [0];
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) starts.push(i + 1);
  const complete = starts.length - 1;
  if (complete > pairs.length) throw new Error(`${file}: holds ${complete} lines, the run draws ${pairs.length} pairs`);
  for (let i = 0; i < complete; i++) {
    const text = buf.subarray(starts[i], starts[i + 1] - 1).toString('utf8');
    const f = text.split('\t');
    const [q, p] = pairs[i];
    if (f.length !== 3 || f[0] !== q || f[1] !== p || !Number.isFinite(Math.fround(Number(f[2]))) || f[2].trim() === '')
      throw new Error(
        `${file}:${i + 1}: expected query ${q}, passage ${p} and a finite score (the pairs are written in the sampler's order), got '${text}'; remove it to start over`,
      );
  }
  const kept = complete - (complete % chunk);
  if (kept < complete || starts[complete] < buf.length) {
    notice(
      `${file}: cut back to ${kept} scored pairs (${buf.length - starts[kept]} bytes of a torn line or chunk dropped)`,
    );
    fs.truncateSync(file, starts[kept]);
  }
  return kept;
}

/**
 * Scores the pairs `config`'s run draws (train.steps steps, or `steps`) with `teacher` into `out`,
 * resuming a killed run's partial file. `teacherDir` is the teacher's files (hashed into the manifest).
 */
export async function streamTeacherScores(
  config: StudentRunConfig,
  opened: { coll: RankingCollection; encoder: PairEncoder; teacher: CrossEncoder; teacherDir: string },
  out: string,
  options: {
    steps?: number;
    onProgress?: (done: number, total: number) => void;
    onNotice?: (message: string) => void;
  } = {},
): Promise<StreamResult> {
  const notice = options.onNotice ?? (() => undefined);
  const steps = options.steps ?? config.train.steps;
  const negatives = negativeCount(config.data.negatives);
  const pairs = drawnPairs(opened.coll, { negatives, trainQueries: config.data.trainQueries }, config.train, steps);
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
    pairs: pairs.length,
    pairsSha256: pairsHash(pairs),
    chunk,
  };
  const mFile = manifestFile(out);
  const partial = partialFile(out);
  const result = { file: out, manifest: mFile, pairs: pairs.length };
  if (fs.existsSync(out)) {
    if (!fs.existsSync(mFile))
      throw new Error(
        `${out}: exists, without ${path.basename(mFile)}: not a file \`teacher score --out\` wrote; choose another --out or remove it`,
      );
    checkManifest(mFile, manifest);
    return { ...result, resumedAt: pairs.length, computed: false };
  }
  let done = 0;
  if (fs.existsSync(mFile)) {
    checkManifest(mFile, manifest);
    if (fs.existsSync(partial)) done = keptLines(partial, pairs, chunk, notice);
    if (done > 0) notice(`${partial}: resuming after ${done} of ${pairs.length} pairs already scored`);
  } else {
    fs.rmSync(partial, { force: true }); // a partial without its manifest is from no run we can check
    await writeAtomic(mFile, (w) => w.write(`${JSON.stringify(manifest, null, 2)}\n`));
  }
  const resumedAt = done;
  const fd = fs.openSync(partial, 'a');
  try {
    options.onProgress?.(done, pairs.length);
    while (done < pairs.length) {
      const slice = pairs.slice(done, done + chunk);
      const values = scorePairs(opened.teacher, opened.encoder, slice, config.train.scoreBatch);
      const lines = slice.map(([q, p], i) => {
        if (!Number.isFinite(values[i]))
          throw new Error(
            `teacher ${opened.teacherDir}: scored query ${q}, passage ${p} as ${values[i]}; scores must be finite (NaN or Inf weights?)`,
          );
        return `${q}\t${p}\t${values[i]}\n`;
      });
      crashPoint();
      fs.writeSync(fd, lines.join(''));
      fs.fsyncSync(fd);
      done += slice.length;
      options.onProgress?.(done, pairs.length);
    }
  } finally {
    fs.closeSync(fd);
  }
  crashPoint();
  fs.renameSync(partial, out);
  fsyncDir(path.dirname(path.resolve(out)));
  crashPoint();
  return { ...result, resumedAt, computed: true };
}
