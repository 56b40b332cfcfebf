export * from './formats';
export { DataFormatError, readLines } from './lines';
export { AtomicWriter, writeAtomic } from './atomic';
export { BertTokenizer, bertBaseUncasedVocab, SPECIAL_TOKENS } from './tokenizer';
export type { PairEncoding } from './tokenizer';
