// Training: teacher on hard labels, student distillation over the objective grid (train.ts: the runs
// and their loop; objective.ts: the losses; step.ts: one optimizer step; setup.ts: the models and
// data; run_dir.ts: the output dir), with zod-validated run configs (config.ts), seeded training
// groups (batches.ts), cached teacher scores (teacher_cache.ts), AdamW with warmup/decay/clipping
// (optimizer.ts, its update a registered kernel in adamw_kernel.ts), atomic checkpoints
// (checkpoint.ts) and re-ranking evaluation (scoring.ts).
export {
  TeacherRunSchema,
  StudentRunSchema,
  parseTeacherConfig,
  parseStudentConfig,
  loadTeacherConfig,
  loadStudentConfig,
  PretrainRunSchema,
  parsePretrainConfig,
  loadPretrainConfig,
  ConfigError,
  TEACHER_SIZES,
  STUDENT_SIZES,
  NegativeSourceSchema,
} from './config';
export type {
  TeacherRunConfig,
  StudentRunConfig,
  TeacherRunInput,
  StudentRunInput,
  PretrainRunConfig,
  PretrainRunInput,
  DataConfig,
  TrainConfig,
  ModelSizes,
  TeacherLoss,
  StudentLoss,
  NegativeSource,
} from './config';
export {
  GroupSampler,
  makeBatch,
  disposeBatch,
  labelFunction,
  trainingPairs,
  trainingPools,
  runSampler,
  drawnPairs,
} from './batches';
export { applyNegatives, negativeCount, negativesReport } from './negatives';
export type { NegativesReport } from './negatives';
export { streamTeacherScores, manifestFile, partialFile } from './score_stream';
export type { StreamManifest, StreamResult } from './score_stream';
export type { Group, SamplerOptions, SamplerState, TrainBatch } from './batches';
// The collection and pair encoding every run reads (src/data, src/models), exported here too.
export { loadRankingCollection } from '../data/ranking_collection';
export type { RankingCollection } from '../data/ranking_collection';
export { PairEncoder } from '../models/pair_encoder';
export { AdamW, learningRate, bertDecays } from './optimizer';
export type { AdamWOptions, StepInfo } from './optimizer';
export { teacherScores, cacheKey, checkpointHash, pairKey } from './teacher_cache';
export type { ScoreTable, TeacherScoresResult } from './teacher_cache';
export {
  scorePairs,
  scorePairsSharded,
  shardByWeight,
  rerank,
  rerankSharded,
  evaluateModel,
  evaluateModelSharded,
} from './scoring';
export type { EvalMetrics } from './scoring';
export {
  writeCheckpoint,
  readCheckpoint,
  latestCheckpoint,
  listCheckpoints,
  saveVariables,
  loadVariables,
} from './checkpoint';
export { trainTeacher, distill, dropoutSeed, prepareTeacherScores, rankShare, streamRunTeacherScores } from './train';
export {
  pretrain,
  pretrainCorpus,
  PassageSampler,
  maskBatch,
  MlmHead,
  MLM_HEAD_PARAMS,
  mlmTrained,
  oneHotRows,
} from './pretrain';
export type { MlmBatch, MaskOptions } from './pretrain';
export type { RunOptions, ProgressEvent } from './train';
export type { RunResult, RunLog, StepLog, EvalLog, RunKind } from './run_dir';
export { resolveLayerMap, positivesAmongCandidates } from './setup';
export { PREDICTION_TERMS, predictionLoss, objectiveWeights, TeacherObjective, StudentObjective } from './objective';
export type { Objective, LossParts, Signals } from './objective';
export { trainStep, trainStepAcross, runOptimizer } from './step';
export type { MicroBatch, StepResult } from './step';
