// The 12-document collection the training tests share (seeded: the same files every run), written
// into a test file's tmp dir, on the backend those tests run (FUSED_DISTILL_TEST_BACKEND, else wasm).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { BertTokenizer, buildCollection, writeCollection } from '../../src/data';
import { loadRankingCollection, type RankingCollection } from '../../src/data/ranking_collection';

export const TEST_BACKEND = process.env.FUSED_DISTILL_TEST_BACKEND ?? 'wasm';

/** Selects TEST_BACKEND, writes the collection into dir and loads it. */
export async function tinyCollection(dir: string): Promise<{ coll: RankingCollection; tokenizer: BertTokenizer }> {
  await tf.setBackend(TEST_BACKEND);
  await tf.ready();
  await writeCollection(
    dir,
    buildCollection({ seed: 7, passageWords: 60, queries: 40, candidates: 10, documents: 12 }),
  );
  return { coll: await loadRankingCollection(dir), tokenizer: new BertTokenizer() };
}
