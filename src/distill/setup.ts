// What a run trains and reads: the ranking collection with its pair encoder, the teacher of a
// teacher run (from a checkpoint, imported safetensors, or random), the teacher of a distillation (a
// checkpoint or a Hugging Face dir, whose tokenizer the run then uses), the student of a
// distillation (random, every k-th teacher layer, a checkpoint, safetensors or a Hugging Face dir),
// the checks that a model fits the data, and the teacher layers the student's layers learn from.
import { BertTokenizer, type PairTokenizer } from '../data/tokenizer';
import { importSafetensors, loadCrossEncoder } from '../models/checkpoint';
import { CrossEncoder, type CrossEncoderConfig } from '../models/cross_encoder';
import { loadHuggingFace } from '../models/huggingface';
import { BadRows } from '../data/bad_rows';
import { loadMsMarco } from '../data/msmarco';
import { loadRankingCollection, requireSplit, type RankingCollection } from '../data/ranking_collection';
import { PairEncoder, type PairInputForm } from '../models/pair_encoder';
import type { ModelSizes, StudentLoss, StudentRunConfig, TeacherRunConfig } from './config';
import { applyNegatives } from './negatives';
import type { ProgressEvent } from './train';

function modelConfig(sizes: ModelSizes): CrossEncoderConfig {
  return { ...sizes };
}

// The default tokenizer is built once per process (its 30k-entry vocabulary takes a while), then shared.
let tokenizer: BertTokenizer | null = null;

/** bert-base-uncased's tokenizer, the pipeline's unless a Hugging Face teacher brings its own. */
export function defaultTokenizer(): BertTokenizer {
  tokenizer ??= new BertTokenizer();
  return tokenizer;
}

/**
 * The run's collection (its training candidates: data.negatives' lists), the encoder of its
 * (query, passage) pairs (default: bert-base-uncased's tokenizer), and the rows skipped as malformed
 * (data.skipBadRows; the run's later readers, teacher.scores, count theirs there too).
 */
export async function openData(
  config: {
    data: TeacherRunConfig['data'];
  },
  runTokenizer: PairTokenizer = defaultTokenizer(),
  /** bm25Text: the models of the run read each pair's BM25 score as text (CrossEncoderConfig.bm25Text);
   *  bm25Score, wordVectorScore: a model of the run adds the BM25 score, the word-vector similarity to
   *  its score (CrossEncoderConfig); onProgress: hears the passage store's build (MS MARCO) */
  inputs: PairInputForm & { onProgress?: (e: ProgressEvent) => void } = {},
): Promise<{ coll: RankingCollection; encoder: PairEncoder; badRows: BadRows }> {
  const badRows = new BadRows(config.data.skipBadRows ?? false);
  const { onProgress } = inputs;
  // MS MARCO's passages come from the pre-tokenized store (built on first use, with progress).
  let coll = config.data.msmarco
    ? await loadMsMarco(config.data.msmarco, {
        badRows,
        store: {
          tokenizer: runTokenizer,
          dir: config.data.store,
          onProgress,
          notice: (message) =>
            onProgress ? onProgress({ type: 'notice', message }) : console.warn(`fused-distill: ${message}`),
        },
      })
    : await loadRankingCollection(config.data.collection);
  // A split the collection lacks is an error only where the run uses it.
  requireSplit(coll, 'train', 'training');
  if (config.data.evalQueries !== 0)
    requireSplit(coll, config.data.evalSplit, `evaluation (data.evalSplit '${config.data.evalSplit}')`);
  if (config.data.positives === 'candidates') coll = positivesAmongCandidates(coll);
  coll = await applyNegatives(coll, config.data.negatives, badRows);
  const encoder = new PairEncoder(runTokenizer, coll, config.data.maxLength, {
    bm25Text: inputs.bm25Text,
    bm25Score: inputs.bm25Score,
    wordVectorScore: inputs.wordVectorScore,
  });
  return { coll, encoder, badRows };
}

/**
 * data.positives 'candidates': the training judgments of grade >= 1 kept only where the passage is
 * among the query's training candidates (the first stage's top k); the others are dropped, so no
 * group draws them as positives (nor as negatives: they are not candidates).
 */
export function positivesAmongCandidates(coll: RankingCollection): RankingCollection {
  const train = new Map<string, Map<string, number>>();
  for (const [qid, judged] of coll.qrels.train) {
    const candidates = new Set(coll.candidates.train.get(qid) ?? []);
    train.set(qid, new Map([...judged].filter(([pid, grade]) => grade < 1 || candidates.has(pid))));
  }
  return { ...coll, qrels: { ...coll.qrels, train } };
}

/** Throws when `model` was built for other inputs than the run's encoder makes (the BM25 text or score). */
export function checkInputs(model: CrossEncoder, encoder: PairEncoder, what: string): void {
  if (model.config.bm25Score && !encoder.bm25Score)
    throw new Error(`${what}: model.bm25Score is set but the run's pairs are encoded without their BM25 scores`);
  if (model.config.wordVectorScore && !encoder.wordVectorScore)
    throw new Error(
      `${what}: model.wordVectorScore is set but the run's pairs are encoded without their word-vector similarities`,
    );
  if (!!model.config.bm25Text !== encoder.bm25Text)
    throw new Error(
      `${what}: model.bm25Text is ${!!model.config.bm25Text} but the run's pairs are encoded ${encoder.bm25Text ? 'with' : 'without'} the BM25 score as text` +
        " (teacher and student read the same inputs: set the student's model.bm25Text as the teacher's)",
    );
}

/** Throws when `model` cannot take inputs of maxLength tokens from a vocabulary of vocabSize ids. */
export function checkFits(model: CrossEncoder, maxLength: number, what: string, vocabSize = 30522): void {
  if (model.config.maxPosition < maxLength)
    throw new Error(`${what}: maxPosition ${model.config.maxPosition} < data.maxLength ${maxLength}`);
  if (model.config.vocabSize < vocabSize)
    throw new Error(`${what}: vocabSize ${model.config.vocabSize} does not cover the tokenizer's ${vocabSize} ids`);
}

/** The teacher's dir: its checkpoint or its Hugging Face dir (what the score cache is keyed and locked on). */
export function teacherDir(config: StudentRunConfig): string {
  const dir = config.teacher.checkpoint ?? config.teacher.huggingface;
  if (dir == null) throw new Error(`teacher.scores: ${config.teacher.scores} gives scores, not a teacher model`);
  return dir;
}

/**
 * A distillation's teacher and the run's tokenizer (a Hugging Face teacher's own, else
 * bert-base-uncased's); `notice` hears which parameters of a Hugging Face teacher kept their seeded init.
 */
export function loadTeacher(
  config: StudentRunConfig,
  notice: (message: string) => void = () => undefined,
): { model: CrossEncoder; tokenizer: PairTokenizer } {
  if (config.teacher.huggingface) {
    const { model, tokenizer, report } = loadHuggingFace(config.teacher.huggingface, { strict: config.teacher.strict });
    if (report.missing.length > 0)
      notice(
        `teacher.huggingface: ${report.dir} has no ${report.missing.join(', ')}; the teacher scores with a seeded random head`,
      );
    return { model, tokenizer };
  }
  return { model: loadCrossEncoder(config.teacher.checkpoint!), tokenizer: defaultTokenizer() };
}

/** A teacher run's model at its start (config.init), checked to fit the data. */
export function initTeacher(config: TeacherRunConfig): CrossEncoder {
  let model: CrossEncoder;
  if (config.init?.checkpoint) model = loadCrossEncoder(config.init.checkpoint);
  else if (config.init?.safetensors)
    model = importSafetensors(config.init.safetensors, modelConfig(config.model), config.train.seed, {
      allowMissing: config.init.allowMissing,
    }).model;
  else model = new CrossEncoder(modelConfig(config.model), config.train.seed);
  try {
    checkFits(model, config.data.maxLength, 'model');
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * A student run's model at its start (config.student.init). A Hugging Face student's tokenizer must
 * be the run's (`runTokenizer`): the teacher's scores and the student's inputs share one encoding.
 */
export function initStudent(
  config: StudentRunConfig,
  teacher: CrossEncoder | null,
  runTokenizer: PairTokenizer = defaultTokenizer(),
): CrossEncoder {
  const s = config.student;
  switch (s.init) {
    case 'random':
      return new CrossEncoder(modelConfig(s.model), config.train.seed);
    case 'teacherLayers': {
      if (teacher == null)
        throw new Error('student.init: teacherLayers needs a teacher model (teacher.scores gives scores only)');
      const k = teacher.config.layers / s.model.layers;
      if (!Number.isInteger(k))
        throw new Error(
          `student.model.layers: ${s.model.layers} must divide the teacher's ${teacher.config.layers} layers for init teacherLayers`,
        );
      return teacher.studentFromLayers(k);
    }
    case 'checkpoint':
      return loadCrossEncoder(s.path!);
    case 'safetensors':
      return importSafetensors(s.path!, modelConfig(s.model), config.train.seed, { allowMissing: s.allowMissing })
        .model;
    case 'huggingface': {
      const loaded = loadHuggingFace(s.path!, { strict: s.strict, seed: config.train.seed });
      if (loaded.tokenizer.signature !== runTokenizer.signature) {
        loaded.model.dispose();
        throw new Error(
          `student.path: ${s.path}'s tokenizer (${loaded.report.tokenizer}) is not the run's (${config.teacher.huggingface ? "the teacher's" : 'bert-base-uncased'}); teacher and student must share one tokenizer`,
        );
      }
      return loaded.model;
    }
  }
}

/** student layer (1-based) -> teacher layer (1-based) */
export function resolveLayerMap(
  loss: Pick<StudentLoss, 'layerMap'>,
  studentLayers: number,
  teacherLayers: number,
): number[] {
  const map =
    loss.layerMap ??
    Array.from({ length: studentLayers }, (_, i) => Math.round(((i + 1) * teacherLayers) / studentLayers));
  if (map.length !== studentLayers)
    throw new Error(
      `loss.layerMap: has ${map.length} entries, the student has ${studentLayers} layers (entry i is the teacher layer student layer i+1 learns from)`,
    );
  map.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 1 || t > teacherLayers)
      throw new Error(`loss.layerMap[${i}]: teacher layer ${t} is not in 1..${teacherLayers}`);
  });
  return map;
}
