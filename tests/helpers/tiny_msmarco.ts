// The tiny Brown collection laid out as MS MARCO passage publishes its files (official names,
// integer ids, TREC qrels, top1000.dev as qid pid rank, qidpidtriples), and Hofstätter et al.'s
// 5-column teacher scores of those triples: each training positive with each non-relevant candidate.
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import type { RankingCollection } from '../../src/data/ranking_collection';

/** Writes `lines` into `file` (gzipped for a .gz name), making its dir. */
export function writeLines(file: string, lines: string[]): string {
  const text = lines.map((l) => `${l}\n`).join('');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, file.endsWith('.gz') ? zlib.gzipSync(text) : text);
  return file;
}

export interface TinyMsMarco {
  dir: string;
  /** Hofstätter-format scores of the triples (beside dir) */
  scores: string;
  /** Brown id -> MS MARCO-style integer id */
  pidOf: Map<string, string>;
  qidOf: Map<string, string>;
}

/** Writes the MS MARCO-laid-out copy of `brown` into `dir`, and its scores file at `<dir>.scores.tsv`. */
export function writeTinyMsMarco(brown: RankingCollection, dir: string): TinyMsMarco {
  const pidOf = new Map([...brown.passages.keys()].map((p, i) => [p, String(7000 + 3 * i)]));
  const qidOf = new Map<string, string>();
  for (const s of ['train', 'dev'] as const)
    for (const q of brown.queries[s].keys()) qidOf.set(q, String(100 + qidOf.size));
  writeLines(
    path.join(dir, 'collection.tsv.gz'),
    [...brown.passages].map(([p, text]) => `${pidOf.get(p)}\t${text}`),
  );
  for (const [s, name] of [
    ['train', 'queries.train.tsv'],
    ['dev', 'queries.dev.small.tsv'],
  ] as const)
    writeLines(
      path.join(dir, name),
      [...brown.queries[s]].map(([q, t]) => `${qidOf.get(q)}\t${t}`),
    );
  const qrels = (s: 'train' | 'dev') =>
    [...brown.qrels[s]].flatMap(([q, judged]) =>
      [...judged].filter(([, g]) => g >= 1).map(([p]) => `${qidOf.get(q)}\t0\t${pidOf.get(p)}\t1`),
    );
  writeLines(path.join(dir, 'qrels.train.tsv'), qrels('train'));
  writeLines(path.join(dir, 'qrels.dev.small.tsv'), qrels('dev'));
  writeLines(
    path.join(dir, 'top1000.dev'),
    [...brown.candidates.dev].flatMap(([q, pids]) => pids.map((p, r) => `${qidOf.get(q)}\t${pidOf.get(p)}\t${r + 1}`)),
  );
  const triples: string[] = [];
  const scores: string[] = [];
  for (const [q, judged] of brown.qrels.train)
    for (const [pos, g] of judged) {
      if (g < 1) continue;
      for (const neg of brown.candidates.train.get(q) ?? []) {
        if ((judged.get(neg) ?? 0) >= 1) continue;
        triples.push(`${qidOf.get(q)}\t${pidOf.get(pos)}\t${pidOf.get(neg)}`);
        scores.push(
          `${(4 + g).toFixed(2)}\t${(-(Number(pidOf.get(neg)) % 7) / 3).toFixed(4)}\t${qidOf.get(q)}\t${pidOf.get(pos)}\t${pidOf.get(neg)}`,
        );
      }
    }
  writeLines(path.join(dir, 'qidpidtriples.train.full.2.tsv'), triples);
  const scoresFile = writeLines(`${dir}.scores.tsv`, scores);
  return { dir, scores: scoresFile, pidOf, qidOf };
}
