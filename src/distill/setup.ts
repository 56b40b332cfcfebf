// What a run trains and reads: the ranking collection with its pair encoder, the teacher of a
// teacher run (from a checkpoint, imported safetensors, or random), the student of a distillation
// (random, every k-th teacher layer, a checkpoint or safetensors), the checks that a model fits the
// data, and the teacher layers the student's layers learn from.
import { BertTokenizer } from '../data/tokenizer';
import { importSafetensors, loadCrossEncoder } from '../models/checkpoint';
import { CrossEncoder, type CrossEncoderConfig } from '../models/cross_encoder';
import { loadRankingCollection, type RankingCollection } from '../data/ranking_collection';
import { PairEncoder } from '../models/pair_encoder';
import type { ModelSizes, StudentLoss, StudentRunConfig, TeacherRunConfig } from './config';

function modelConfig(sizes: ModelSizes): CrossEncoderConfig {
  return { ...sizes };
}

// The tokenizer is built once per process (its 30k-entry vocabulary takes a while), then shared.
let tokenizer: BertTokenizer | null = null;

/** The run's collection and the encoder of its (query, passage) pairs. */
export async function openData(config: {
  data: TeacherRunConfig['data'];
}): Promise<{ coll: RankingCollection; encoder: PairEncoder }> {
  const coll = await loadRankingCollection(config.data.collection);
  tokenizer ??= new BertTokenizer();
  const encoder = new PairEncoder(tokenizer, coll, config.data.maxLength);
  return { coll, encoder };
}

/** Throws when `model` cannot take inputs of maxLength tokens from the tokenizer's vocabulary. */
export function checkFits(model: CrossEncoder, maxLength: number, what: string): void {
  if (model.config.maxPosition < maxLength)
    throw new Error(`${what}: maxPosition ${model.config.maxPosition} < data.maxLength ${maxLength}`);
  if (model.config.vocabSize < 30522)
    throw new Error(`${what}: vocabSize ${model.config.vocabSize} does not cover the tokenizer's 30522 ids`);
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

/** A student run's model at its start (config.student.init). */
export function initStudent(config: StudentRunConfig, teacher: CrossEncoder): CrossEncoder {
  const s = config.student;
  switch (s.init) {
    case 'random':
      return new CrossEncoder(modelConfig(s.model), config.train.seed);
    case 'teacherLayers': {
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
