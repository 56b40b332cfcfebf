export { CrossEncoder, BERT_MINI } from './cross_encoder';
export type { CrossEncoderConfig, CrossEncoderHead, EncoderInputs, EncoderOutputs } from './cross_encoder';
export { PairEncoder, TERM_MATCH_LEVELS } from './pair_encoder';
export { saveCrossEncoder, loadCrossEncoder, importSafetensors, readSafetensors } from './checkpoint';
export {
  saveHuggingFace,
  bertConfigJson,
  electraConfigJson,
  robertaConfigJson,
  exportFamily,
  bertBaseUncasedTokenizerFiles,
  tokenizerFilesFromDir,
  encodeSafetensors,
} from './hf_export';
export type {
  ExportFamily,
  HuggingFaceDtype,
  HuggingFaceTokenizerFiles,
  SaveHuggingFaceOptions,
  SavedHuggingFace,
} from './hf_export';
export {
  loadHuggingFace,
  loadHuggingFaceTokenizer,
  isHuggingFaceDir,
  huggingFaceSource,
  BERT_FAMILY,
  ELECTRA_FAMILY,
  ROBERTA_FAMILY,
  XLM_ROBERTA_FAMILY,
  FAMILIES,
  HEAD_PARAMS,
  ELECTRA_HEAD_PARAMS,
} from './huggingface';
export type { FamilyAdapter, HuggingFaceReport, LoadHuggingFaceOptions } from './huggingface';
