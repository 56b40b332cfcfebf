export * from './formats';
export { DataFormatError, readLines } from './lines';
export { AtomicWriter, writeAtomic } from './atomic';
