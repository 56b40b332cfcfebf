// A suite: one teacher, several students distilled from it, all evaluated on the same queries and
// compared in one table — what `fused-distill main` (`npm start`) and `fused-distill grid` run.
//
// The suite file (JSON, paths relative to it):
//   {
//     "title": "...",
//     "output": "../../runs/main",            students/<name>/, report.{json,md,html}
//     "teacherCache": "../../data/teachers",  teacher runs, one dir per teacher config (hash)
//     "collection": "...",                    optional; default: the bundled Brown collection
//     "msmarco": "...",                       or MS MARCO's files (a dir or a descriptor: data.msmarco)
//     "teacher": { model, data, train, loss },            a teacher run config without "output"
//     "studentDefaults": { student, data, train, loss },  merged under each student
//     "students": [ { "name": "hard pairwise", "loss": { "ranknet": 1 } }, ... ],
//     "eval": { "split": "test", "queries": 200, "candidates": 30, "baseline": "hard pairwise + soft KL" }
//   }
//
// The teacher is trained once per config: its run dir is <teacherCache>/teacher-<hash of the
// validated config and the collection>, and a finished one is reused (an interrupted one resumes).
// Student runs live in <output>/students/<slug>; a finished run with the same config is reused, one
// with another config is replaced, and `fresh` retrains them all.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';

import { DEFAULT_COLLECTION_DIR, ensureDefaultCollection, isDefaultCollection } from '../data/build_collection';
import { COLLECTION_CONSTRUCTION, DEFAULT_COLLECTION, type Split } from '../data/collection';
import { withDirLock } from '../data/lock';
import { BadRows } from '../data/bad_rows';
import { loadMsMarco, msMarcoFiles } from '../data/msmarco';
import { loadRankingCollection, requireSplit } from '../data/ranking_collection';
import { BertTokenizer } from '../data/tokenizer';
import {
  ConfigError,
  distill,
  parseStudentConfig,
  parseTeacherConfig,
  prepareTeacherScores,
  trainTeacher,
} from '../distill';
import type { ProgressEvent, RunLog, StudentRunConfig, TeacherRunConfig } from '../distill';
import { evaluateBm25, evaluateCrossEncoder, tableRows, type ModelEvaluation, type TaskEvent } from '../eval/rerank';
import { loadCrossEncoder } from '../models/checkpoint';
import { PairEncoder } from '../models/pair_encoder';
import {
  environment,
  objectiveText,
  writeReport,
  type ReportFiles,
  type ReportRun,
  type RunReport,
} from '../report/report';

const record = z.record(z.unknown());

export const SuiteSchema = z
  .object({
    title: z.string().min(1).default('fused-distill suite'),
    output: z.string().min(1),
    teacherCache: z.string().min(1).optional(),
    collection: z.string().min(1).optional(),
    msmarco: z.string().min(1).optional(),
    teacher: record.default({}),
    studentDefaults: record.default({}),
    students: z
      .array(z.object({ name: z.string().min(1) }).passthrough())
      .min(1)
      .refine((s) => new Set(s.map((x) => x.name)).size === s.length, { message: 'student names must be unique' }),
    eval: z
      .object({
        split: z.enum(['train', 'dev', 'test']).default('test'),
        queries: z.number().int().positive().optional(),
        candidates: z.number().int().positive().optional(),
        /** the student the others are tested against (default: none) */
        baseline: z.string().min(1).optional(),
        /** default: the teacher's data.maxLength */
        maxLength: z.number().int().min(8).max(512).optional(),
      })
      .strict()
      .default({}),
  })
  .strict()
  .refine((s) => s.eval.baseline == null || s.students.some((x) => x.name === s.eval.baseline), {
    message: 'must name one of the students',
    path: ['eval', 'baseline'],
  })
  .refine((s) => s.collection == null || s.msmarco == null, {
    message: 'give collection or msmarco, not both',
    path: ['msmarco'],
  });

export type SuiteInput = z.input<typeof SuiteSchema>;

export interface Suite {
  file: string;
  title: string;
  output: string;
  teacherCache: string;
  teacher: TeacherRunConfig;
  students: Array<{ name: string; slug: string; config: StudentRunConfig }>;
  eval: { split: Split; queries?: number; candidates?: number; baseline: string | null; maxLength: number };
}

const isObject = (x: unknown): x is Record<string, unknown> => x != null && typeof x === 'object' && !Array.isArray(x);

/** b over a: objects merged key by key, anything else replaced. */
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = isObject(out[k]) && isObject(v) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

export const slug = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '') || 'run';

const canonical = (x: unknown): unknown =>
  Array.isArray(x)
    ? x.map(canonical)
    : isObject(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, canonical(x[k])]),
        )
      : x;

/**
 * What a collection's content is known by, cheaply: the bundled one by its build options and
 * construction version (it is rebuilt when they change, and the same ones give byte-identical files;
 * it may not be built yet), another by its manifest (writeCollection writes one), else by every file.
 */
async function collectionKey(dir: string | undefined): Promise<string> {
  if (dir == null)
    return createHash('sha256')
      .update(`bundled ${JSON.stringify(DEFAULT_COLLECTION)} construction ${COLLECTION_CONSTRUCTION}`)
      .digest('hex');
  const manifest = path.join(dir, 'manifest.json');
  if (fs.existsSync(manifest)) return createHash('sha256').update(fs.readFileSync(manifest)).digest('hex');
  return (await loadRankingCollection(dir)).fingerprint;
}

/** The teacher's run dir: <cache>/teacher-<hash of its config (without output) and the collection>. */
export async function teacherRunDir(cache: string, teacher: TeacherRunConfig): Promise<string> {
  const { output: _output, ...rest } = teacher;
  // MS MARCO's files by their content, as a run fingerprints them (read once more: no manifest there).
  const data = teacher.data.msmarco
    ? `msmarco ${(await loadMsMarco(teacher.data.msmarco, { badRows: new BadRows(teacher.data.skipBadRows ?? false) })).fingerprint}`
    : `collection ${await collectionKey(teacher.data.collection)}`;
  const key = createHash('sha256')
    .update(JSON.stringify(canonical(rest)))
    .update(`\0${data}`)
    .digest('hex');
  return path.join(cache, `teacher-${key.slice(0, 16)}`);
}

/** Reads and validates a suite file; every run config is validated too (errors name the student). */
export async function loadSuite(file: string, overrides: { output?: string } = {}): Promise<Suite> {
  if (!fs.existsSync(file)) throw new ConfigError(file, ['file not found']);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  const parsed = SuiteSchema.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(
      file,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`),
    );
  const s = parsed.data;
  const base = path.dirname(path.resolve(file));
  const output = overrides.output ? path.resolve(overrides.output) : path.resolve(base, s.output);
  const teacherCache = s.teacherCache
    ? path.resolve(base, s.teacherCache)
    : path.join(DEFAULT_COLLECTION_DIR, '..', 'teachers');
  const collection = s.collection ? path.resolve(base, s.collection) : undefined;
  const msmarco = s.msmarco ? path.resolve(base, s.msmarco) : undefined;
  const withCollection = (c: Record<string, unknown>) =>
    collection ? deepMerge({ data: { collection } }, c) : msmarco ? deepMerge({ data: { msmarco } }, c) : c;

  const teacherInput = withCollection(s.teacher);
  if ('output' in teacherInput)
    throw new ConfigError(file, [
      'teacher.output: unknown field (the teacher run dir is <teacherCache>/teacher-<config hash>)',
    ]);
  const prefix = (what: string) => (e: unknown) => {
    if (e instanceof ConfigError)
      throw new ConfigError(
        file,
        e.issues.map((i) => `${what}.${i}`),
      );
    throw e;
  };
  let teacher: TeacherRunConfig;
  try {
    teacher = parseTeacherConfig({ ...teacherInput, output: 'unset' }, file, base);
  } catch (e) {
    throw prefix('teacher')(e);
  }
  // A split MS MARCO lacks (it has no test split) fails here, before a teacher trains.
  if (msmarco && msMarcoFiles(msmarco)[s.eval.split] == null)
    throw new ConfigError(file, [
      `eval.split: ${msmarco} has no ${s.eval.split} split (its queries file is absent); MS MARCO evaluates on dev`,
    ]);
  teacher = { ...teacher, output: await teacherRunDir(teacherCache, teacher) };

  const students = s.students.map(({ name, ...rest }, i) => {
    const input = deepMerge(withCollection(s.studentDefaults), rest);
    for (const k of ['output', 'teacher'])
      if (k in input)
        throw new ConfigError(file, [
          `students[${i}] (${name}).${k}: set by the suite (students/<name>, the suite's teacher)`,
        ]);
    const dir = path.join(output, 'students', slug(name));
    try {
      const config = parseStudentConfig(
        { ...input, output: dir, teacher: { checkpoint: path.join(teacher.output, 'model') } },
        file,
        base,
      );
      return { name, slug: slug(name), config };
    } catch (e) {
      throw prefix(`students[${i}] (${name})`)(e);
    }
  });
  const slugs = students.map((x) => x.slug);
  if (new Set(slugs).size !== slugs.length)
    throw new ConfigError(file, ['students: two names give the same directory name']);
  return {
    file,
    title: s.title,
    output,
    teacherCache,
    teacher,
    students,
    eval: {
      split: s.eval.split,
      queries: s.eval.queries,
      candidates: s.eval.candidates,
      baseline: s.eval.baseline ?? null,
      maxLength: s.eval.maxLength ?? teacher.data.maxLength,
    },
  };
}

function readRunLog(dir: string): RunLog {
  const log: RunLog = { steps: [], evals: [] };
  const file = path.join(dir, 'log.jsonl');
  if (!fs.existsSync(file)) return log;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const { type, ...rest } = JSON.parse(line);
    if (type === 'step') log.steps.push(rest);
    else if (type === 'eval') log.evals.push(rest);
  }
  return log;
}

const finished = (dir: string) =>
  fs.existsSync(path.join(dir, 'result.json')) && fs.existsSync(path.join(dir, 'model', 'model.json'));

/** Where a suite reports what it does (the CLI's Progress is one): messages, and each run's events. */
export interface SuiteProgress {
  info(message: string): void;
  /** the name the next run's events are shown under */
  setLabel(label: string): void;
  onProgress(e: ProgressEvent | TaskEvent): void;
}

export interface SuiteOptions {
  progress: SuiteProgress;
  /** retrain the students even when a finished run with the same config is there */
  fresh?: boolean;
  /** wall-clock start of the command (for the report's wall time) */
  startedAt?: number;
}

export interface SuiteResult {
  report: RunReport;
  files: ReportFiles;
}

/** Trains (or reuses) the teacher, distils every student, evaluates all and writes the report. */
export async function runSuite(suite: Suite, options: SuiteOptions): Promise<SuiteResult> {
  return withDirLock(suite.output, () => runSuiteLocked(suite, options));
}

async function runSuiteLocked(suite: Suite, options: SuiteOptions): Promise<SuiteResult> {
  const { progress } = options;
  const onProgress = (e: ProgressEvent | TaskEvent) => progress.onProgress(e);
  const startedAt = options.startedAt ?? Date.now();
  const runs: ReportRun[] = [];

  // 1. The collection.
  if (!suite.teacher.data.collection && !suite.teacher.data.msmarco) {
    progress.info(
      `collection: ${isDefaultCollection(DEFAULT_COLLECTION_DIR) ? 'reading' : 'building (first use)'} ${DEFAULT_COLLECTION_DIR}`,
    );
    await ensureDefaultCollection();
  }

  // 2. The teacher: reused when its cache dir holds a finished run.
  const teacherDir = suite.teacher.output;
  let teacherLog: RunLog;
  let teacherSeconds: number | null = null;
  const teacherReused = finished(teacherDir);
  if (teacherReused) {
    progress.info(`teacher: reusing the cached run ${teacherDir} (same config and collection)`);
    teacherLog = readRunLog(teacherDir);
  } else {
    progress.info(`teacher: training into ${teacherDir}`);
    progress.setLabel('teacher');
    const t0 = Date.now();
    teacherLog = (await trainTeacher(suite.teacher, { resume: true, onProgress })).log;
    teacherSeconds = (Date.now() - t0) / 1000;
  }
  runs.push({
    name: 'teacher',
    kind: 'teacher',
    output: teacherDir,
    objective: objectiveText(suite.teacher.loss),
    trained: !teacherReused,
    seconds: teacherSeconds,
    steps: teacherLog.steps,
    evals: teacherLog.evals,
  });

  // 3. Students.
  if (options.fresh) for (const s of suite.students) fs.rmSync(s.config.output, { recursive: true, force: true });
  const scored = new Set<string>();
  for (const s of suite.students) {
    const dir = s.config.output;
    const configFile = path.join(dir, 'config.json');
    if (fs.existsSync(configFile) && fs.readFileSync(configFile, 'utf8') !== `${JSON.stringify(s.config, null, 2)}\n`) {
      progress.info(`[${s.name}] the config changed since ${dir} was trained: training again`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const reused = finished(dir);
    const soft = s.config.loss.kl > 0 || s.config.loss.marginMSE > 0 || s.config.loss.scoreMSE > 0;
    const scoreKey = JSON.stringify([s.config.data, s.config.teacher]);
    if (!reused && soft && !scored.has(scoreKey)) {
      progress.setLabel('teacher scores');
      await prepareTeacherScores(s.config, { onProgress });
      scored.add(scoreKey);
    }
    progress.setLabel(s.name);
    if (reused) progress.info(`[${s.name}] reusing the finished run in ${dir}`);
    const t0 = Date.now();
    const result = await distill(s.config, { resume: true, onProgress });
    runs.push({
      name: s.name,
      kind: 'student',
      output: dir,
      objective: `${objectiveText(s.config.loss)}; init ${s.config.student.init}`,
      trained: !reused,
      seconds: reused ? null : (Date.now() - t0) / 1000,
      steps: result.log.steps,
      evals: result.log.evals,
    });
  }

  // 4. Evaluation: every model on the same queries, one forward pass per query. The native
  // backend's cache of freed blocks (sized for training's tensors) is emptied first, so the timed
  // passes reuse blocks of their own sizes.
  const backend = tf.backend() as unknown as { emptyCache?: () => void };
  backend.emptyCache?.();
  const { msmarco, collection, skipBadRows } = suite.teacher.data;
  const coll = msmarco
    ? await loadMsMarco(msmarco, { badRows: new BadRows(skipBadRows ?? false) })
    : await loadRankingCollection(collection);
  requireSplit(coll, suite.eval.split, "the suite's evaluation (eval.split)");
  const encoder = new PairEncoder(new BertTokenizer(), coll, suite.eval.maxLength);
  const target = { split: suite.eval.split, queries: suite.eval.queries, candidates: suite.eval.candidates };
  const evals: ModelEvaluation[] = [evaluateBm25(coll, target)];
  const models = [
    {
      name: 'teacher',
      kind: 'teacher' as const,
      dir: path.join(teacherDir, 'model'),
      objective: objectiveText(suite.teacher.loss),
    },
    ...suite.students.map((s, i) => ({
      name: s.name,
      kind: 'student' as const,
      dir: path.join(s.config.output, 'model'),
      objective: runs[i + 1].objective,
    })),
  ];
  const queries = evals[0].perQuery.size;
  progress.info(
    `evaluating ${models.length} models on ${suite.eval.split} queries (${queries} judged, averaged as trec_eval -c), BM25 top-${suite.eval.candidates ?? 'all'}`,
  );
  for (const m of models) {
    const model = loadCrossEncoder(m.dir);
    try {
      const e = evaluateCrossEncoder(model, encoder, coll, target, m, onProgress);
      evals.push(e);
      progress.info(
        `[${m.name}] MRR@10 ${e.mean.mrr10.toFixed(4)}  nDCG@10 ${e.mean.ndcg10.toFixed(4)}  ${e.msPerQuery!.toFixed(1)} ms/query`,
      );
    } finally {
      model.dispose();
    }
  }

  const candidates = Math.max(0, ...[...coll.candidates[suite.eval.split].values()].map((c) => c.length));
  const report: RunReport = {
    title: suite.title,
    created: new Date().toISOString(),
    environment: environment(tf.getBackend()),
    wallSeconds: (Date.now() - startedAt) / 1000,
    evaluation: {
      split: suite.eval.split,
      queries,
      candidates: Math.min(candidates, suite.eval.candidates ?? candidates),
      baseline: suite.eval.baseline,
      significance: suite.eval.baseline
        ? `p: two-sided paired t-test against "${suite.eval.baseline}" over the per-query MRR@10 and nDCG@10 (${queries} queries).`
        : 'No baseline: no significance test.',
      timing:
        "ms/query: mean wall time of one forward pass over a query's candidates, padded to maxLength (token ids to tensors, forward, scores read back; texts tokenized beforehand), after one warm-up query.",
    },
    rows: tableRows(evals, suite.eval.baseline),
    runs,
    notes: [`suite: ${suite.file}`, `teacher: ${teacherDir}${teacherReused ? ' (reused from the cache)' : ''}`],
  };
  const files = await writeReport(suite.output, report);
  return { report, files };
}
