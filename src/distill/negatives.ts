// The negatives a training group draws from (data.negatives): the collection's training candidates
// as loaded (a count alone), MS MARCO's triples, the candidates by rank within a window, or a
// hard-negatives file. applyNegatives puts the chosen lists where the sampler reads them (the
// collection's training candidates), so the sampler, the teacher-score cache and `teacher score`
// see the same pools. Passages judged relevant (grade >= 1) and a file's positives are removed here;
// the sampler (batches.ts trainingPools) also never draws a relevant passage.
import type { BadRows } from '../data/bad_rows';
import { readHardNegatives } from '../data/hard_negatives';
import { DataFormatError } from '../data/lines';
import type { MsMarcoCollection } from '../data/msmarco';
import { hasPassage, type RankingCollection } from '../data/ranking_collection';
import { MapView } from '../data/triples_table';
import type { TaskEvent } from '../eval/rerank';
import { queryPass } from './batches';
import type { DataConfig, NegativeSource } from './config';

/** Negatives per group, whichever form data.negatives has. */
export const negativeCount = (n: DataConfig['negatives']): number => (typeof n === 'number' ? n : n.count);

const trainLists = (coll: RankingCollection) => (coll as Partial<MsMarcoCollection>).msmarcoTrain;

// qid -> the source's list, best first, before the window and the exclusions.
async function sourceLists(
  coll: RankingCollection,
  source: NegativeSource,
  bad: BadRows,
): Promise<{ lists: Map<string, string[]>; positives: Map<string, Set<string>> }> {
  const positives = new Map<string, Set<string>>();
  const msmarco = trainLists(coll);
  if (source.from === 'triples') {
    if (!msmarco)
      throw new Error(
        `data.negatives: from 'triples' needs MS MARCO's training triples (data.msmarco); ${coll.dir} is a collection dir: use from 'candidates'`,
      );
    if (msmarco.triples.size === 0)
      throw new Error(`data.negatives: from 'triples': ${coll.dir} has no training triples`);
    return { lists: msmarco.triples, positives };
  }
  if (source.from === 'candidates') {
    const lists = msmarco ? msmarco.candidates : coll.candidates.train;
    if (lists.size === 0)
      throw new Error(
        `data.negatives: from 'candidates': ${coll.dir} has no training candidates${msmarco ? ' (a descriptor names them as train.candidates: a run file or top1000)' : ''}`,
      );
    return { lists, positives };
  }
  const file = source.path!;
  const lists = new Map<string, string[]>();
  const lineOf = new Map<string, number>();
  for await (const row of readHardNegatives(file, { systems: source.systems, badRows: bad })) {
    const ok = bad.guard(() => {
      if (!coll.queries.train.has(row.qid))
        throw new DataFormatError(file, row.line, `query ${row.qid} has no text among the training queries`);
      const first = lineOf.get(row.qid);
      if (first !== undefined)
        throw new DataFormatError(file, row.line, `query ${row.qid} is listed twice (first on line ${first})`);
      for (const pid of [...row.pos, ...row.neg])
        if (!hasPassage(coll, pid))
          throw new DataFormatError(file, row.line, `passage ${pid} is not in the collection`);
      return true;
    });
    if (!ok) continue;
    lineOf.set(row.qid, row.line);
    lists.set(row.qid, row.neg);
    positives.set(row.qid, new Set(row.pos));
  }
  if (lists.size === 0) throw new Error(`data.negatives.path: ${file} lists no query's negatives`);
  return { lists, positives };
}

/**
 * The collection with its training candidates replaced by data.negatives' lists (windowed, without
 * relevant passages and a file's positives); a count alone leaves it as it is.
 */
export async function applyNegatives(
  coll: RankingCollection,
  negatives: DataConfig['negatives'],
  bad: BadRows,
): Promise<RankingCollection> {
  if (typeof negatives === 'number') return coll;
  const { lists, positives } = await sourceLists(coll, negatives, bad);
  const [lo, hi] = negatives.depth ?? [1, Infinity];
  // The window is over the list's ranks as given (relevant passages included), then they are dropped.
  const kept = (qid: string, list: string[]) => {
    const judged = coll.qrels.train.get(qid);
    const pos = positives.get(qid);
    return list.slice(lo - 1, hi).filter((pid) => (judged?.get(pid) ?? 0) < 1 && !pos?.has(pid));
  };
  // Lists read from a table (MS MARCO's triples) stay there: each query's is made when asked for.
  if (lists instanceof MapView) {
    const train = new MapView([...lists.keys()], (qid) => {
      const list = lists.get(qid);
      return list && kept(qid, list);
    });
    return { ...coll, candidates: { ...coll.candidates, train } };
  }
  const train = new Map<string, string[]>();
  for (const [qid, list] of lists) train.set(qid, kept(qid, list));
  return { ...coll, candidates: { ...coll.candidates, train } };
}

export interface NegativesReport {
  /** training queries with a relevant passage (the first trainQueries) */
  queries: number;
  /** of those, with fewer than `count` negatives: their groups are shorter (padding slots masked out) */
  short: number;
  /** of those, with none: not trained on */
  none: number;
}

/** How many training queries have fewer negatives than a group takes, or none. */
export function negativesReport(
  coll: RankingCollection,
  count: number,
  trainQueries?: number,
  onProgress?: (e: TaskEvent) => void,
): NegativesReport {
  const r: NegativesReport = { queries: 0, short: 0, none: 0 };
  const qids = [...coll.queries.train.keys()].slice(0, trainQueries);
  const tick = queryPass('negatives per query', qids.length, onProgress);
  for (const [i, qid] of qids.entries()) {
    tick(i + 1);
    const judged = coll.qrels.train.get(qid);
    if (![...(judged?.values() ?? [])].some((g) => g >= 1)) continue;
    r.queries += 1;
    const n = (coll.candidates.train.get(qid) ?? []).filter((pid) => (judged!.get(pid) ?? 0) < 1).length;
    if (n === 0) r.none += 1;
    else if (n < count) r.short += 1;
  }
  return r;
}

/** The report in words, or null when every query has enough negatives. */
export function negativesNotice(r: NegativesReport, count: number): string | null {
  if (r.short === 0 && r.none === 0) return null;
  return `data.negatives: of ${r.queries} training queries with a relevant passage, ${r.short} have fewer than ${count} negatives (their groups are shorter, the empty slots masked out) and ${r.none} have none (not trained on)`;
}
