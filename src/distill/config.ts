// Run configurations for teacher training and student distillation, validated with zod. A config is
// a JSON file; every field has a default except where a run cannot guess (output dir, teacher
// checkpoint). Errors name the field ("train.lr: ...") and the file.
//
// Defaults, and why:
// - sizes: teacher = Google's BERT-mini (4 layers, hidden 256, 4 heads, FFN 1024), student =
//   BERT-tiny (2 layers, hidden 128, 2 heads, FFN 512): the compact BERTs (Turc et al., 2019) that
//   "small-scaled pre-trained" cross-encoder students are drawn from, and sizes a CPU trains.
// - group: 1 positive + 7 BM25 negatives per query, 8 queries a step (64 pairs).
// - maxLength 128 WordPieces (query + ~100-word passage; longer pairs lose the passage's end).
// - Adam(W) lr 1e-4, beta 0.9/0.999, eps 1e-8, weight decay 0.01 (not on biases and LayerNorm, as
//   BERT), warmup 10% of the steps then linear decay, gradient clipping at global norm 1.0.
// - losses: the teacher trains on pointwise BCE over the graded labels (monoBERT); the student on
//   pairwise RankNet over hard labels plus KL to the teacher (T = 1) — the seed paper's finding is
//   that a hard-label pairwise term is what a cross-encoder student needs, and intermediate-layer
//   terms may hurt, so those are off unless asked for.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { TERM_MATCH_LEVELS } from '../models/pair_encoder';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const weight = z.number().nonnegative().finite().default(0);

/** Model sizes (CrossEncoderConfig); vocabSize must cover the tokenizer's ids (bert-base-uncased: 30522). */
const modelSizes = (d: { layers: number; hidden: number; heads: number; intermediate: number }) =>
  z
    .object({
      layers: posInt.default(d.layers),
      hidden: posInt.default(d.hidden),
      heads: posInt.default(d.heads),
      intermediate: posInt.default(d.intermediate),
      maxPosition: posInt.default(512),
      vocabSize: z.number().int().min(30522, 'must cover the bert-base-uncased vocabulary (30522)').default(30522),
      typeVocab: z.number().int().min(2).default(2),
      layerNormEps: z.number().positive().default(1e-12),
      initStd: z.number().positive().default(0.02),
      /** a learned term-match input embedding (CrossEncoderConfig.termMatch); absent = off */
      termMatch: z.boolean().optional(),
      /** term-match rarity levels (CrossEncoderConfig.termMatchLevels): 1 = binary (default), up to 4 */
      termMatchLevels: z.number().int().min(1).max(TERM_MATCH_LEVELS).optional(),
      /** the pair's BM25 score as text at the start of the query (CrossEncoderConfig.bm25Text); absent = off */
      bm25Text: z.boolean().optional(),
      /** the score adds a learned weight times the pair's BM25 score (CrossEncoderConfig.bm25Score); absent = off */
      bm25Score: z.boolean().optional(),
    })
    .strict()
    .refine((m) => m.hidden % m.heads === 0, { message: 'hidden must be a multiple of heads', path: ['heads'] });

export const TEACHER_SIZES = { layers: 4, hidden: 256, heads: 4, intermediate: 1024 };
export const STUDENT_SIZES = { layers: 2, hidden: 128, heads: 2, intermediate: 512 };

/**
 * Where a group's negatives come from (data.negatives as an object; a number is the count alone,
 * drawn from the collection's training candidates as loaded):
 * - triples: MS MARCO's training triples' negatives (data.msmarco);
 * - candidates: the training candidates (BM25's for a collection dir, a candidates/run file's for
 *   data.msmarco), by rank;
 * - file: a hard-negatives file (`qid<TAB>pid,pid,...` or JSON Lines; data/hard_negatives.ts).
 * depth [lo, hi] keeps ranks lo..hi (1-based, inclusive) of each query's list, as Tevatron's and
 * sentence-transformers' hard-negative mining take a rank window; passages judged relevant (grade >= 1)
 * and a file's positives are never drawn.
 */
export const NegativeSourceSchema = z
  .object({
    from: z.enum(['triples', 'candidates', 'file']),
    /** negatives per group: a group is 1 positive + this many */
    count: posInt.default(7),
    depth: z.tuple([posInt, posInt]).optional(),
    /** from file: the hard-negatives file */
    path: z.string().min(1).optional(),
    /** from file: the mining systems of a by-system `neg` to draw from (default: all) */
    systems: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict()
  .superRefine((n, ctx) => {
    const issue = (p: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [p], message });
    if (n.depth && n.depth[0] > n.depth[1])
      issue('depth', `the window's first rank (${n.depth[0]}) must not exceed its last (${n.depth[1]}): [lo, hi]`);
    if ((n.from === 'file') !== (n.path != null)) issue('path', "is required by from 'file', and only by it");
    if (n.systems && n.from !== 'file') issue('systems', "goes with from 'file'");
  });

// A count (as before: configs that give one parse and hash as they did) or a source object; each
// form's own errors are reported with their field (a zod union would say only "Invalid input").
const negativesField = z
  .unknown()
  .optional()
  .transform((v, ctx): number | z.output<typeof NegativeSourceSchema> => {
    if (v === undefined) return 7;
    const r = (typeof v === 'number' ? posInt : NegativeSourceSchema).safeParse(v);
    if (r.success) return r.data;
    for (const i of r.error.issues) ctx.addIssue(i as z.IssueData);
    return z.NEVER;
  });

const DataSchema = z
  .object({
    /** collection directory (data.writeCollection's layout); default: the bundled Brown collection */
    collection: z.string().min(1).optional(),
    /**
     * or MS MARCO's published files: a directory with the official names (collection.tsv,
     * queries.train.tsv, qrels.dev.small.tsv, top1000.dev, qidpidtriples.train.full.2.tsv, ...) or a
     * JSON descriptor naming them (data.loadMsMarco)
     */
    msmarco: z.string().min(1).optional(),
    /** negatives per group (a group is 1 positive + this many), or where they come from: NegativeSourceSchema */
    negatives: negativesField,
    /**
     * which judged passages a training group takes as its positive: 'judged' (absent: the default) every passage
     * of grade >= 1; 'candidates' only those among the query's BM25 candidates (the re-ranking depth),
     * so a re-ranker learns on the distribution it will re-rank (positives the first stage missed
     * teach it to distrust term overlap); queries without one are not trained on
     */
    positives: z.enum(['judged', 'candidates']).optional(),
    /**
     * skip malformed rows of the data files (data.msmarco's, a hard-negatives file, teacher.scores),
     * counted per file, printed and written into result.json, instead of stopping at the first
     */
    skipBadRows: z.boolean().optional(),
    /**
     * the pre-tokenized passage store of data.msmarco (built on first use; `fused-distill data
     * index` builds it ahead); default <dataset dir>/.fused-distill-store/<tokenizer signature>
     */
    store: z.string().min(1).optional(),
    maxLength: z.number().int().min(8).max(512).default(128),
    /** graded: y = grade / max grade; binary: y = 1 for grade >= 1 */
    labels: z.enum(['graded', 'binary']).default('graded'),
    /** train on the first n training queries only (quick runs, tests) */
    trainQueries: posInt.optional(),
    /** evaluate on the first n queries of evalSplit only; 0 = no evaluation */
    evalQueries: nonNegInt.optional(),
    evalSplit: z.enum(['dev', 'test']).default('dev'),
  })
  .strict()
  .refine((d) => d.collection == null || d.msmarco == null, {
    message: 'give collection or msmarco, not both',
    path: ['msmarco'],
  })
  .refine((d) => d.store == null || d.msmarco != null, {
    message: 'a passage store is for data.msmarco',
    path: ['store'],
  });

// The train section; `sizes` gives the batch defaults (a ranking run counts groups, a pre-training
// run sequences).
const trainSchema = (sizes: { batch: number; microBatch: number }) =>
  z
    .object({
      /** queries (groups) per step; pre-training: sequences per step */
      batch: posInt.default(sizes.batch),
      /**
       * groups per forward/backward pass; a step sums the gradients of batch / microBatch passes
       * (memory: one pass's activations). Default 2: 16 sequences of 128 tokens fit the wasm
       * backend's heap at BERT-mini size, where a whole default batch (64) does not.
       */
      microBatch: posInt.default(sizes.microBatch),
      steps: posInt.default(2000),
      lr: z.number().positive().max(1).default(1e-4),
      /**
       * BERT's hidden dropout on the trained model during its steps (after the embeddings and on each
       * sub-layer's output; hidden_dropout_prob), its masks seeded by (seed, step, micro-batch);
       * absent or 0 = none (evaluation and scoring never drop)
       */
      dropout: z.number().min(0).lt(1).optional(),
      /** warmup steps (linear from 0); default 10% of steps */
      warmup: nonNegInt.optional(),
      weightDecay: z.number().nonnegative().max(1).default(0.01),
      beta1: z.number().min(0).lt(1).default(0.9),
      beta2: z.number().min(0).lt(1).default(0.999),
      eps: z.number().positive().default(1e-8),
      /** global-norm gradient clipping; 0 = off */
      clipNorm: z.number().nonnegative().default(1),
      seed: z.number().int().nonnegative().default(42),
      /** evaluate every n steps (and always at the end); 0 = only at the end */
      evalEvery: nonNegInt.default(500),
      /** checkpoint every n steps; 0 = never */
      checkpointEvery: nonNegInt.default(500),
      /** checkpoints kept (oldest removed first) */
      keepCheckpoints: posInt.default(2),
      /** pairs per forward pass when scoring (evaluation, teacher scores) */
      scoreBatch: posInt.default(64),
      /**
       * a step whose loss or gradient norm is NaN or Inf: 'stop' the run with an error naming the step,
       * the terms and the queries (default), or 'skip' it (no update; logged with skipped: true and
       * counted in the log and the run's done event). Absent means 'stop' (no default written: a config's hash, which ties
       * checkpoints to it, stays what it was before this field existed)
       */
      nonFinite: z.enum(['stop', 'skip']).optional(),
      /**
       * matrix products: 'fp32', 'bf16' (operands rounded to bfloat16, fp32 accumulation; 'native' and
       * 'cuda') or 'tf32' ('cuda' only). Absent: the FUSED_DISTILL_MATMUL_PRECISION flag as it is (the
       * CLI's --precision, fp32 by default); no default written, so a config's hash stays as it was
       */
      precision: z.enum(['fp32', 'bf16', 'tf32']).optional(),
    })
    .strict()
    .transform((t) => ({ ...t, warmup: t.warmup ?? Math.round(t.steps / 10) }))
    .refine((t) => t.warmup <= t.steps, { message: 'must not exceed train.steps', path: ['warmup'] });
const TrainSchema = trainSchema({ batch: 8, microBatch: 2 });

const hardLossShape = {
  /** pointwise BCE on y */
  bce: weight,
  /** pairwise RankNet over pairs with y_i > y_j */
  ranknet: weight,
  /** pairwise hinge over the same pairs */
  hinge: weight,
  /** listwise softmax cross-entropy against y / sum(y) */
  listwiseCE: weight,
  /** RankNet's sigma */
  sigma: z.number().positive().default(1),
  /** the hinge's margin */
  margin: z.number().nonnegative().default(1),
};
const HARD_TERMS = ['bce', 'ranknet', 'hinge', 'listwiseCE'] as const;
const SOFT_TERMS = ['kl', 'marginMSE', 'scoreMSE'] as const;
const FEATURE_TERMS = ['hiddenMSE', 'attentionMSE', 'embeddingMSE'] as const;
const someWeight = (names: readonly string[]) => (l: Record<string, unknown>) =>
  names.some((n) => (l[n] as number) > 0);

const TeacherLossSchema = z
  .object(hardLossShape)
  .strict('fused-distill: a teacher trains on hard labels only: bce, ranknet, hinge, listwiseCE')
  .refine(someWeight(HARD_TERMS), { message: `set a weight > 0 on at least one of ${HARD_TERMS.join(', ')}` });

const StudentLossSchema = z
  .object({
    ...hardLossShape,
    /** KL(softmax(t/T) || softmax(s/T)) * T^2 */
    kl: weight,
    temperature: z.number().positive().default(1),
    /** (s_0 - s_j - (t_0 - t_j))^2 */
    marginMSE: weight,
    /** (s - t)^2 */
    scoreMSE: weight,
    /** MSE between mapped layers' hidden states (student projected to the teacher's width if they differ) */
    hiddenMSE: weight,
    /** MSE between mapped layers' pre-softmax attention scores (needs equal head counts) */
    attentionMSE: weight,
    /** MSE between the embedding layers' outputs (hidden state 0) */
    embeddingMSE: weight,
    /**
     * layerMap[i]: the teacher layer (1-based) that student layer i + 1 learns from, for hiddenMSE and
     * attentionMSE. Default: the uniform map (student layer i <- teacher layer i * teacherLayers / studentLayers).
     */
    layerMap: z.array(posInt).min(1).optional(),
  })
  .strict()
  .refine(someWeight([...HARD_TERMS, ...SOFT_TERMS, ...FEATURE_TERMS]), {
    message: `set a weight > 0 on at least one loss term (${[...HARD_TERMS, ...SOFT_TERMS, ...FEATURE_TERMS].join(', ')})`,
  });

export const TeacherRunSchema = z
  .object({
    /** run directory: checkpoints/, model/, log.jsonl, result.json */
    output: z.string().min(1),
    model: modelSizes(TEACHER_SIZES).default({}),
    /** start from these weights instead of a seeded random init (a fused-distill model dir or a safetensors file) */
    init: z
      .object({
        checkpoint: z.string().min(1).optional(),
        safetensors: z.string().min(1).optional(),
        /** parameters a safetensors file may lack (they keep the seeded init); default: the classifier head */
        allowMissing: z.array(z.string().min(1)).optional(),
      })
      .strict()
      .refine((i) => !(i.checkpoint && i.safetensors), { message: 'give checkpoint or safetensors, not both' })
      .optional(),
    data: DataSchema.default({}),
    train: TrainSchema.default({}),
    loss: TeacherLossSchema.default({ bce: 1 }),
    /**
     * after the last step, the saved model's score becomes its network's plus a weight times each
     * feature given ('bm25': the pair's BM25 score; 'wordVectors': the word-vector similarity), the
     * weights chosen on all of data.evalSplit's queries by MRR@10 (distill/fusion.ts); result.json
     * records the fit. Absent: the network alone
     */
    fusion: z
      .array(z.enum(['bm25', 'wordVectors']))
      .min(1)
      .refine((f) => new Set(f).size === f.length, { message: 'a feature appears twice' })
      .optional(),
  })
  .strict();

export const StudentRunSchema = z
  .object({
    output: z.string().min(1),
    teacher: z
      .object({
        /** the teacher's model dir (saveCrossEncoder's layout, e.g. a teacher run's output/model) */
        checkpoint: z.string().min(1).optional(),
        /**
         * or a Hugging Face model dir (config.json, model.safetensors, tokenizer.json or vocab.txt):
         * the run then tokenizes with that dir's tokenizer
         */
        huggingface: z.string().min(1).optional(),
        /** huggingface: false lets a dir without the score head (a BertModel) load, its head at the seeded init */
        strict: z.boolean().optional(),
        /** where teacher scores are cached; default: the teacher's model dir */
        cacheDir: z.string().min(1).optional(),
        /**
         * or the teacher's published scores instead of a model: Hofstätter et al.'s
         * `pos_score neg_score qid pid_pos pid_neg` (the student then trains on groups drawn from each
         * query's triples) or `qid pid score` (groups drawn as without it); tab-separated, .gz allowed
         */
        scores: z.string().min(1).optional(),
      })
      .strict()
      .refine((t) => [t.checkpoint, t.huggingface, t.scores].filter((x) => x != null).length === 1, {
        message: 'give checkpoint or huggingface (or scores), one of them',
        path: ['checkpoint'],
      }),
    student: z
      .object({
        /**
         * random: seeded init at `model`'s sizes; teacherLayers: every k-th teacher layer (k =
         * teacher layers / model.layers; the teacher's width); checkpoint / safetensors: weights at `path`;
         * huggingface: the model of the Hugging Face dir at `path` (its config.json gives the sizes)
         */
        init: z.enum(['random', 'teacherLayers', 'checkpoint', 'safetensors', 'huggingface']).default('random'),
        path: z.string().min(1).optional(),
        /** init huggingface: false lets a dir without the score head load, its head at the seeded init */
        strict: z.boolean().optional(),
        /** init safetensors: parameters the file may lack (they keep the seeded init); default: the classifier head */
        allowMissing: z.array(z.string().min(1)).optional(),
        model: modelSizes(STUDENT_SIZES).default({}),
      })
      .strict()
      .refine((s) => ['checkpoint', 'safetensors', 'huggingface'].includes(s.init) === (s.path != null), {
        message: 'path is required by init checkpoint, safetensors and huggingface, and only by them',
        path: ['path'],
      })
      .default({}),
    data: DataSchema.default({}),
    train: TrainSchema.default({}),
    loss: StudentLossSchema.default({ ranknet: 1, kl: 1 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.teacher.scores == null) return;
    // Scores from a file bring no teacher model: nothing that reads its layers can run.
    for (const term of FEATURE_TERMS)
      if (c.loss[term] > 0)
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['loss', term],
          message: 'needs a teacher model; teacher.scores gives scores only',
        });
    if (c.student.init === 'teacherLayers')
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['student', 'init'],
        message: 'teacherLayers needs a teacher model; teacher.scores gives scores only',
      });
  });

/**
 * Masked-language-model pre-training of a cross-encoder's encoder (pretrain.ts): the passages of
 * data.collection (default: the bundled one) and of data.texts (plain text, one passage per line),
 * each `[CLS] passage [SEP]`; mlmProbability of the non-special tokens predicted per sequence, BERT's
 * 80% [MASK] / 10% random / 10% unchanged. train.batch counts sequences (default 64, one pass).
 * The model's sizes are the run's that will load it (init.checkpoint): parameters MLM does not train
 * (the score head, the term-match table) keep their seeded init.
 */
export const PretrainRunSchema = z
  .object({
    /** run directory: checkpoints/, model/ (a plain cross-encoder), mlm_head.safetensors, log.jsonl, result.json */
    output: z.string().min(1),
    model: modelSizes(TEACHER_SIZES).default({}),
    data: z
      .object({
        /** collection directory (data.writeCollection's layout); default: the bundled Brown collection */
        collection: z.string().min(1).optional(),
        /** more passages: plain-text files, one passage per line (empty lines skipped) */
        texts: z.array(z.string().min(1)).optional(),
        /** WordPieces per sequence, [CLS] and [SEP] included (longer passages lose their end) */
        maxLength: z.number().int().min(3).max(512).default(128),
      })
      .strict()
      .default({}),
    train: trainSchema({ batch: 64, microBatch: 64 }).default({}),
    /** the share of each sequence's non-special tokens the model predicts (BERT: 0.15) */
    mlmProbability: z.number().gt(0).max(1).default(0.15),
  })
  .strict();

export type TeacherRunConfig = z.output<typeof TeacherRunSchema>;
export type StudentRunConfig = z.output<typeof StudentRunSchema>;
export type PretrainRunConfig = z.output<typeof PretrainRunSchema>;
export type PretrainRunInput = z.input<typeof PretrainRunSchema>;
export type DataConfig = TeacherRunConfig['data'];
export type NegativeSource = z.output<typeof NegativeSourceSchema>;
export type TrainConfig = TeacherRunConfig['train'];
export type ModelSizes = TeacherRunConfig['model'];
export type TeacherLoss = TeacherRunConfig['loss'];
export type StudentLoss = StudentRunConfig['loss'];
/** The input form (what a JSON file holds): everything optional that has a default. */
export type TeacherRunInput = z.input<typeof TeacherRunSchema>;
export type StudentRunInput = z.input<typeof StudentRunSchema>;

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`${source}: invalid config:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

// One line per problem, each naming the field: "train.lr: Number must be greater than 0",
// "loss.bogus: unknown field".
function issuesOf(error: z.ZodError): string[] {
  return error.issues.flatMap((i) => {
    const where = (p: Array<string | number>) => (p.length ? p.map(String).join('.') : '(top level)');
    if (i.code === z.ZodIssueCode.unrecognized_keys) {
      const hint = /^fused-distill:/.test(i.message) ? ` (${i.message.replace(/^fused-distill: /, '')})` : '';
      return i.keys.map((k) => `${where([...i.path, k])}: unknown field${hint}`);
    }
    return [`${where(i.path)}: ${i.message}`];
  });
}

// Paths in a config file are relative to the file's directory.
function resolvePaths<T extends { output: string; data: { collection?: string; msmarco?: string; store?: string } }>(
  c: T,
  base: string,
): T {
  const r = (p: string | undefined) => (p == null ? p : path.resolve(base, p));
  const data = { ...c.data, collection: r(c.data.collection) };
  // Set only when given: a config without it hashes as before.
  if (c.data.msmarco != null) data.msmarco = r(c.data.msmarco);
  const negatives = (c.data as { negatives?: unknown }).negatives;
  if (negatives != null && typeof negatives === 'object' && (negatives as { path?: string }).path != null)
    (data as Record<string, unknown>).negatives = { ...negatives, path: r((negatives as { path: string }).path) };
  if (c.data.store != null) data.store = r(c.data.store);
  const out = { ...c, output: r(c.output)!, data } as T;
  const any = out as unknown as Record<string, Record<string, unknown> | undefined>;
  if (any.init)
    any.init = {
      ...any.init,
      checkpoint: r(any.init.checkpoint as string),
      safetensors: r(any.init.safetensors as string),
    };
  if (any.teacher)
    any.teacher = {
      ...any.teacher,
      checkpoint: r(any.teacher.checkpoint as string),
      huggingface: r(any.teacher.huggingface as string),
      cacheDir: r(any.teacher.cacheDir as string),
    };
  if (any.teacher?.scores != null) any.teacher.scores = r(any.teacher.scores as string);
  if (any.student) any.student = { ...any.student, path: r(any.student.path as string) };
  return out;
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, source: string, baseDir: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(source, issuesOf(result.error));
  return resolvePaths(result.data as never, baseDir);
}

/** Validates a teacher run config object (defaults filled in, relative paths against baseDir). */
export function parseTeacherConfig(
  value: unknown,
  source = 'teacher config',
  baseDir = process.cwd(),
): TeacherRunConfig {
  const config = parseWith(TeacherRunSchema, value, source, baseDir);
  const conflicts = checkpointModelConflicts(value, config);
  if (conflicts.length > 0) throw new ConfigError(source, conflicts);
  return config;
}

// The value a model field has when a config or a model.json leaves it out (the optional inputs are off).
const MODEL_FIELD_ABSENT: Record<string, unknown> = {
  termMatch: false,
  termMatchLevels: 1,
  bm25Text: false,
  bm25Score: false,
  wordVectorScore: false,
};

/**
 * A teacher run from init.checkpoint gets that model's architecture, not `model`'s: a field the
 * config gives in `model` that the checkpoint's model.json contradicts is an error naming it (it
 * was ignored without a word, e.g. bm25Score: true on a checkpoint trained without it). Only the
 * fields the config gives: the others carry defaults. A model.json that cannot be read is left to
 * the load, which names it.
 */
function checkpointModelConflicts(raw: unknown, config: TeacherRunConfig): string[] {
  const given = (raw as { model?: unknown } | null)?.model;
  const dir = config.init?.checkpoint;
  if (!dir || given == null || typeof given !== 'object') return [];
  let theirs: Record<string, unknown> | undefined;
  try {
    theirs = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).config;
  } catch {
    return [];
  }
  if (theirs == null || typeof theirs !== 'object') return [];
  const ours = config.model as Record<string, unknown>;
  const value = (m: Record<string, unknown>, k: string) => m[k] ?? MODEL_FIELD_ABSENT[k];
  return Object.keys(given)
    .filter((k) => JSON.stringify(value(ours, k)) !== JSON.stringify(value(theirs!, k)))
    .map(
      (k) =>
        `model.${k}: ${JSON.stringify(value(ours, k))} here, but the init.checkpoint model (${dir}) has ${JSON.stringify(value(theirs!, k)) ?? 'none'}: a checkpoint brings its own architecture; remove model.${k} or make it agree`,
    );
}

export function parseStudentConfig(
  value: unknown,
  source = 'student config',
  baseDir = process.cwd(),
): StudentRunConfig {
  return parseWith(StudentRunSchema, value, source, baseDir);
}

/** Validates a pre-training run config object (defaults filled in, relative paths against baseDir). */
export function parsePretrainConfig(
  value: unknown,
  source = 'pretrain config',
  baseDir = process.cwd(),
): PretrainRunConfig {
  const c = parseWith(PretrainRunSchema, value, source, baseDir);
  if (c.data.texts) c.data = { ...c.data, texts: c.data.texts.map((t) => path.resolve(baseDir, t)) };
  return c;
}

function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
}

export function loadTeacherConfig(file: string): TeacherRunConfig {
  return parseTeacherConfig(readJson(file), file, path.dirname(path.resolve(file)));
}

export function loadStudentConfig(file: string): StudentRunConfig {
  return parseStudentConfig(readJson(file), file, path.dirname(path.resolve(file)));
}

export function loadPretrainConfig(file: string): PretrainRunConfig {
  return parsePretrainConfig(readJson(file), file, path.dirname(path.resolve(file)));
}
