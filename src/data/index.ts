export * from './formats';
export { DataFormatError, readLines } from './lines';
export { AtomicWriter, WriteError, writeAtomic } from './atomic';
export { LockedError, lockDir, withDirLock, type LockInfo, type LockOptions } from './lock';
export {
  BertTokenizer,
  HfTokenizer,
  BERT_PAIR_TOKENS,
  ROBERTA_PAIR_TOKENS,
  pairSpecialCount,
  bertBaseUncasedVocab,
  parseVocabTxt,
  wordPieceTokenizerJson,
  SPECIAL_TOKENS,
} from './tokenizer';
export type { PairEncoding, PairLayout, PairTokenizer, PairSpecialTokens, WordPieceOptions } from './tokenizer';
export { Bm25Index, analyze } from './bm25';
export { buildCollection, writeCollection, cutPassages, COLLECTION_CONSTRUCTION, DEFAULT_COLLECTION, SPLITS } from './collection';
export { featureMedians, featureRankerMrr10, median, randomMrr10 } from './artifacts';
export type { FeatureMedians, JudgedCandidates } from './artifacts';
export { rng, Mulberry32 } from './random';
export type { BuiltCollection, CollectionOptions, Split } from './collection';
export { loadRankingCollection, requireSplit, hasPassage, passageCount } from './ranking_collection';
export { loadMsMarco, openMsMarcoStore, MSMARCO_FILES } from './msmarco';
export type { MsMarcoFiles, MsMarcoLoadOptions, MsMarcoSplitFiles } from './msmarco';
export {
  buildTokenTable,
  defaultStoreDir,
  openPassageStore,
  sourceFingerprint,
  NotInStoreError,
  TokenTable,
  STORE_DIR_NAME,
} from './passage_store';
export type { OpenStoreOptions, PassageStore, SourceFingerprint, StoreSources, TableManifest } from './passage_store';
export type { RankingCollection } from './ranking_collection';
export { ensureDefaultCollection, isDefaultCollection, DEFAULT_COLLECTION_DIR } from './build_collection';
export { brownDocumentIds, readBrownDocument, parseBrownSentence } from './brown';
