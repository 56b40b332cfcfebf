// A ranking collection read for training and evaluation: passages, each split's queries, qrels and
// BM25 candidates (writeCollection's layout), with a fingerprint of every file read.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import type { Qrels } from '../eval/metrics';
import { ensureDefaultCollection } from './build_collection';
import { SPLITS, type Split } from './collection';
import { loadQrels, readCandidates, readTextTsv } from './formats';
import type { PassageStore } from './passage_store';

export interface RankingCollection {
  dir: string;
  /** pid -> text; empty when the passages are in `store` (hasPassage / passageCount answer for both) */
  passages: Map<string, string>;
  /** qid -> text per split, in file order */
  queries: Record<Split, Map<string, string>>;
  qrels: Record<Split, Qrels>;
  /** qid -> BM25 candidates, best first */
  candidates: Record<Split, Map<string, string[]>>;
  /** the splits the collection has (an MS MARCO dir may lack one); absent: all three */
  splits?: Split[];
  /** sha256 of every file read: what cached teacher scores depend on */
  fingerprint: string;
  /**
   * The pre-tokenized passages (and queries) of a large collection (data.msmarco): passages are
   * then read from it by id, and `passages` holds no texts.
   */
  store?: PassageStore;
}

/** Whether the collection holds passage `pid` (in `passages` or in its store). */
export function hasPassage(coll: RankingCollection, pid: string): boolean {
  return coll.store ? coll.store.passages.has(pid) : coll.passages.has(pid);
}

/** How many passages the collection holds. */
export function passageCount(coll: RankingCollection): number {
  return coll.store ? coll.store.passages.size : coll.passages.size;
}

/** Reads a collection directory (writeCollection's layout); none given: the bundled Brown collection. */
export async function loadRankingCollection(dir?: string): Promise<RankingCollection> {
  const root = dir ?? (await ensureDefaultCollection());
  const hash = createHash('sha256');
  const file = (name: string) => {
    const f = path.join(root, name);
    if (!fs.existsSync(f)) throw new Error(`${root}: no ${name} (a collection dir holds collection.tsv and queries/qrels/candidates per split)`);
    hash.update(`${name}\0`).update(fs.readFileSync(f));
    return f;
  };
  const passages = new Map<string, string>();
  for await (const r of readTextTsv(file('collection.tsv'))) passages.set(r.id, r.text);
  const coll: RankingCollection = {
    dir: root,
    passages,
    queries: { train: new Map(), dev: new Map(), test: new Map() },
    qrels: { train: new Map(), dev: new Map(), test: new Map() },
    candidates: { train: new Map(), dev: new Map(), test: new Map() },
    fingerprint: '',
  };
  for (const split of SPLITS) {
    for await (const r of readTextTsv(file(`queries.${split}.tsv`))) coll.queries[split].set(r.id, r.text);
    coll.qrels[split] = await loadQrels(file(`qrels.${split}.txt`));
    for await (const r of readCandidates(file(`candidates.${split}.tsv`))) {
      if (!passages.has(r.docid)) throw new Error(`${root}/candidates.${split}.tsv: passage ${r.docid} is not in collection.tsv`);
      const list = coll.candidates[split].get(r.qid) ?? [];
      list.push(r.docid);
      coll.candidates[split].set(r.qid, list);
    }
  }
  coll.fingerprint = hash.digest('hex');
  return coll;
}

/** Throws, naming the split and what needs it, when the collection has no such split. */
export function requireSplit(coll: RankingCollection, split: Split, neededBy: string): void {
  if (coll.splits && !coll.splits.includes(split))
    throw new Error(`${coll.dir}: has no ${split} split (its queries file is absent), which ${neededBy} needs`);
}
