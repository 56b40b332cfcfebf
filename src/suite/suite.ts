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
//     "seeds": [7, 8, 9],                      optional: each student trained once per seed
//     "eval": { "split": "test", "queries": 200, "candidates": 30, "baseline": "hard pairwise + soft KL" }
//   }
//
// The teacher is trained once per config: its run dir is <teacherCache>/teacher-<hash of the
// validated config and the collection>, and a finished one is reused (an interrupted one resumes).
// Student runs live in <output>/students/<slug> (with seeds: <output>/students/<slug>/seed-<n>, the
// table then shows each student's mean ± sd over its seeds); a finished run with the same config is reused, one
// with another config is replaced, and `fresh` retrains them all.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';

import { DEFAULT_COLLECTION_DIR, ensureDefaultCollection, isDefaultCollection } from '../data/build_collection';
import { COLLECTION_CONSTRUCTION, DEFAULT_COLLECTION, type Split } from '../data/collection';
import { withDirLock } from '../data/lock';
import { MATMUL_PRECISION_FLAG, setMatmulPrecision } from '../backend/precision';
import { addon } from '../native';
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
import {
  combineSeeds,
  evaluateBm25,
  evaluateCrossEncoder,
  tableRows,
  compareEvaluations,
  type ModelEvaluation,
  type TaskEvent,
} from '../eval/rerank';
import { loadCrossEncoder } from '../models/checkpoint';
import type { CrossEncoder } from '../models/cross_encoder';
import { PairEncoder, inputFormOf } from '../models/pair_encoder';
import type { Fusion } from '../distill/fusion';
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
    /**
     * every run's matrix products (train.precision, unless a run config sets its own) and the
     * evaluation's: 'auto' = bf16 where this CPU's bf16 products are faster (autoPrecision), else fp32; absent: as --precision
     */
    precision: z.enum(['fp32', 'bf16', 'auto']).optional(),
    /** each student is trained once per seed (its train.seed); absent: once, with its own train.seed */
    seeds: z
      .array(z.number().int().nonnegative())
      .min(1)
      .refine((s) => new Set(s).size === s.length, { message: 'seeds must be unique' })
      .optional(),
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

export interface StudentSeedRun {
  seed: number;
  config: StudentRunConfig;
}

export interface Suite {
  file: string;
  title: string;
  output: string;
  teacherCache: string;
  teacher: TeacherRunConfig;
  /** per student: its runs, one per seed (one when the suite names no seeds); config = runs[0].config */
  students: Array<{ name: string; slug: string; config: StudentRunConfig; runs: StudentSeedRun[] }>;
  /** the suite's seeds (null: each student once, with its own train.seed) */
  seeds: number[] | null;
  /** the suite's matrix-product precision ('auto' resolved on this machine; null: as --precision) */
  precision: 'fp32' | 'bf16' | null;
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

/**
 * 'bf16' where this CPU's bf16 products beat its fp32 ones, else 'fp32': AMX-BF16 (the tile unit), or
 * AVX512-BF16 on AMD (Zen 4 and 5: a vdpbf16ps does two FMAs' work at the FMA rate). An Intel CPU
 * with AVX512-BF16 but no usable AMX runs vdpbf16ps on one port against two for FMA: measured on a
 * Xeon with AMX turned off, its bf16 step took 291 ms against fp32's 229, so 'auto' keeps fp32 there.
 */
export function autoPrecision(
  isa: string = gemmIsaOrNull() ?? 'scalar',
  cpuModel: string = os.cpus()[0]?.model ?? '',
): 'fp32' | 'bf16' {
  if (isa === 'amxbf16') return 'bf16';
  return isa === 'avx512bf16' && /\bAMD\b/.test(cpuModel) ? 'bf16' : 'fp32';
}

function gemmIsaOrNull(): string | null {
  try {
    return addon.gemmIsa();
  } catch {
    return null; // no addon: the composites run, in fp32
  }
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
  const precision = s.precision === 'auto' ? autoPrecision() : s.precision;
  const withCollection = (c: Record<string, unknown>) => {
    const data = collection ? { collection } : msmarco ? { msmarco } : {};
    return deepMerge({ data, ...(precision ? { train: { precision } } : {}) }, c);
  };

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
    const parse = (seed: number | null): StudentSeedRun => {
      const withSeed = seed == null ? input : deepMerge(input, { train: { seed } });
      try {
        const config = parseStudentConfig(
          {
            ...withSeed,
            output: seed == null ? dir : path.join(dir, `seed-${seed}`),
            teacher: { checkpoint: path.join(teacher.output, 'model') },
          },
          file,
          base,
        );
        return { seed: config.train.seed, config };
      } catch (e) {
        throw prefix(`students[${i}] (${name})`)(e);
      }
    };
    const runs = s.seeds ? s.seeds.map(parse) : [parse(null)];
    return { name, slug: slug(name), config: runs[0].config, runs };
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
    seeds: s.seeds ?? null,
    precision: precision ?? null,
    eval: {
      split: s.eval.split,
      queries: s.eval.queries,
      candidates: s.eval.candidates,
      baseline: s.eval.baseline ?? null,
      maxLength: s.eval.maxLength ?? teacher.data.maxLength,
    },
  };
}

/** The teacher run's fusion (result.json), absent for a teacher without one. */
function readTeacherFusion(dir: string): Fusion | undefined {
  return (JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as { fusion?: Fusion }).fusion;
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
  // The suite's precision for everything it runs (teacher scores and the evaluation included); the
  // flag's value is restored after.
  const savedPrecision = tf.env().get(MATMUL_PRECISION_FLAG);
  try {
    if (suite.precision) {
      const note = setMatmulPrecision(suite.precision, tf.getBackend());
      options.progress.info(`matrix products in ${suite.precision}${note ? ` (${note})` : ''}`);
    }
    return await runSuiteSteps(suite, options);
  } finally {
    tf.env().set(MATMUL_PRECISION_FLAG, savedPrecision);
  }
}

async function runSuiteSteps(suite: Suite, options: SuiteOptions): Promise<SuiteResult> {
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
  const teacherFusion = readTeacherFusion(teacherDir);
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

  // 3. Students, each once per seed.
  const studentRuns = suite.students.flatMap((s) =>
    s.runs.map((r) => ({
      student: s,
      seed: r.seed,
      config: r.config,
      label: s.runs.length > 1 ? `${s.name} · seed ${r.seed}` : s.name,
    })),
  );
  for (const s of suite.students) {
    // A student dir of the other layout (one run <-> one per seed) is replaced, not mixed into.
    const dir = path.join(suite.output, 'students', s.slug);
    const seeded = fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.startsWith('seed-'));
    const single = fs.existsSync(path.join(dir, 'config.json'));
    if (options.fresh || (suite.seeds ? single : seeded)) fs.rmSync(dir, { recursive: true, force: true });
  }
  const scored = new Set<string>();
  for (const { student, seed, config, label } of studentRuns) {
    const dir = config.output;
    const configFile = path.join(dir, 'config.json');
    if (fs.existsSync(configFile) && fs.readFileSync(configFile, 'utf8') !== `${JSON.stringify(config, null, 2)}\n`) {
      progress.info(`[${label}] the config changed since ${dir} was trained: training again`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const reused = finished(dir);
    const soft = config.loss.kl > 0 || config.loss.marginMSE > 0 || config.loss.scoreMSE > 0;
    const scoreKey = JSON.stringify([config.data, config.teacher]);
    if (!reused && soft && !scored.has(scoreKey)) {
      progress.setLabel('teacher scores');
      await prepareTeacherScores(config, { onProgress });
      scored.add(scoreKey);
    }
    progress.setLabel(label);
    if (reused) progress.info(`[${label}] reusing the finished run in ${dir}`);
    const t0 = Date.now();
    const result = await distill(config, { resume: true, onProgress });
    runs.push({
      name: label,
      kind: 'student',
      output: dir,
      objective: `${objectiveText(config.loss)}; init ${config.student.init}`,
      trained: !reused,
      seconds: reused ? null : (Date.now() - t0) / 1000,
      steps: result.log.steps,
      evals: result.log.evals,
      group: student.name,
      seed,
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
  const tokenizer = new BertTokenizer();
  // By input form: models that read the BM25 score as text or add it to their score get it.
  const encoders = new Map<string, PairEncoder>();
  const encoderFor = (model: CrossEncoder) => {
    const form = inputFormOf(model.config);
    const key = JSON.stringify(form);
    let e = encoders.get(key);
    if (!e) encoders.set(key, (e = new PairEncoder(tokenizer, coll, suite.eval.maxLength, form)));
    return e;
  };
  const target = { split: suite.eval.split, queries: suite.eval.queries, candidates: suite.eval.candidates };
  const evals: ModelEvaluation[] = [evaluateBm25(coll, target)];
  const models = [
    {
      name: 'teacher',
      kind: 'teacher' as const,
      objective: objectiveText(suite.teacher.loss),
      runs: [{ seed: suite.teacher.train.seed, dir: path.join(teacherDir, 'model') }],
    },
    ...suite.students.map((s) => ({
      name: s.name,
      kind: 'student' as const,
      objective: runs.find((r) => r.group === s.name)!.objective,
      runs: s.runs.map((r) => ({ seed: r.seed, dir: path.join(r.config.output, 'model') })),
    })),
  ];
  const queries = evals[0].perQuery.size;
  const seedsText = suite.seeds ? `, students over seeds ${suite.seeds.join(', ')}` : '';
  progress.info(
    `evaluating ${models.length} models on ${suite.eval.split} queries (${queries} judged, averaged as trec_eval -c), BM25 top-${suite.eval.candidates ?? 'all'}${seedsText}`,
  );
  for (const m of models) {
    const perSeed: Array<{ seed: number; evaluation: ModelEvaluation }> = [];
    for (const r of m.runs) {
      const label = m.runs.length > 1 ? `${m.name} · seed ${r.seed}` : m.name;
      const model = loadCrossEncoder(r.dir);
      try {
        const e = await evaluateCrossEncoder(model, encoderFor(model), coll, target, { ...m, name: label }, onProgress);
        perSeed.push({ seed: r.seed, evaluation: { ...e, name: m.name } });
        progress.info(
          `[${label}] MRR@10 ${e.mean.mrr10.toFixed(4)}  nDCG@10 ${e.mean.ndcg10.toFixed(4)}  ${e.msPerQuery!.toFixed(1)} ms/query`,
        );
      } finally {
        model.dispose();
      }
    }
    evals.push(perSeed.length > 1 ? combineSeeds(perSeed) : perSeed[0].evaluation);
  }

  const candidates = Math.max(0, ...[...coll.candidates[suite.eval.split].values()].map((c) => c.length));
  const report: RunReport = {
    title: suite.title,
    created: new Date().toISOString(),
    environment: environment(tf.getBackend(), String(tf.env().get(MATMUL_PRECISION_FLAG))),
    wallSeconds: (Date.now() - startedAt) / 1000,
    evaluation: {
      split: suite.eval.split,
      queries,
      candidates: Math.min(candidates, suite.eval.candidates ?? candidates),
      baseline: suite.eval.baseline,
      significance:
        (suite.seeds
          ? `Students: mean ± sample sd over ${suite.seeds.length} seeds (${suite.seeds.join(', ')}) of each seed's mean; the teacher and BM25 once. `
          : '') +
        (suite.eval.baseline
          ? `p: two-sided paired t-test against "${suite.eval.baseline}" over the per-query MRR@10 and nDCG@10 (${queries} queries${suite.seeds ? ", each query's value averaged over the seeds" : ''}).`
          : 'No baseline: no significance test.'),
      timing:
        "ms/query: mean wall time of one forward pass over a query's candidates, padded to maxLength (token ids to tensors, forward, scores read back; texts tokenized beforehand), after one warm-up query.",
      // Is the teacher worth distilling: better than the first stage it re-ranks?
      comparisons: [
        compareEvaluations(
          evals.find((e) => e.kind === 'teacher')!,
          evals[0],
        ),
      ],
      ...(teacherFusion ? { teacherFusion } : {}),
    },
    rows: tableRows(evals, suite.eval.baseline),
    runs,
    notes: [`suite: ${suite.file}`, `teacher: ${teacherDir}${teacherReused ? ' (reused from the cache)' : ''}`],
  };
  const files = await writeReport(suite.output, report);
  return { report, files };
}
