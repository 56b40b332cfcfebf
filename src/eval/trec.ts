// TREC evaluation interop: qrels and run files read as NIST's trec_eval reads them, its measures and
// query averaging, and MS MARCO's official MRR@10, each checked against numbers the real tools produced
// (tests/fixtures/trec/expected.json).
//
// trec_eval's semantics, from its source (form_res_rels.c, meas_avg.c, trec_eval.c, m_*.c):
// - a query's documents are ranked by score descending, ties by docno in DESCENDING strcmp order; the
//   rank column of the run is ignored. A docno twice in one query of the run (or of the qrels) is an error.
// - a document is relevant when its grade >= the relevance level (-l, default 1); an unjudged document
//   (or a negative grade) never is, not even at -l 0. Grades are integers (trec_eval reads them with atol).
//   nDCG's gains are the grades themselves (every grade > 0, whatever the level); the level only
//   changes which documents count as relevant for RR, AP and recall.
// - RR, AP and recall of a query with no relevant document are 0 (nDCG too unless a grade is > 0);
//   such a query is averaged like any other.
// - means: with -c over every query of the qrels (one missing from the run scores 0); without -c over
//   the queries in both the run and the qrels (trec_eval 9; 10.0 exits instead). Run queries that
//   are not in the qrels are never evaluated.
// - RR@10 is recip_rank with -M 10 (the ranking cut to its first 10 documents).
//
// MS MARCO's ms_marco_eval.py computes MRR@10 differently: positions are the run's rank column as
// given (a gap in the ranks is an empty position, equal scores keep their given ranks), and the sum
// is divided by the number of queries of the qrels, whether the run has them or not. The script takes
// every qrels line as relevant; msmarcoMRR10 applies the relevance level instead (the same on MS
// MARCO's qrels, where every grade is 1) and compares ids as strings (the script as integers).
import { writeAtomic } from '../data/atomic';
import { DataFormatError, readLines } from '../data/lines';
import { rankDocs, type Qrels, type Run } from './metrics';

/** One retrieved document of a run file. */
export interface RunEntry {
  docno: string;
  /** the file's rank column */
  rank: number;
  /** the file's score; a 3-column MS MARCO run has none and scores -rank (its order) */
  score: number;
}

/** qid -> the query's entries in file order. */
export type RankedRun = Map<string, RunEntry[]>;

export interface TrecOptions {
  /** a document is relevant when its grade >= relevanceLevel (trec_eval -l; default 1) */
  relevanceLevel?: number;
  /** average over every qrels query, missing ones as 0 (trec_eval -c; default true) */
  complete?: boolean;
}

/** The measures of one query, named as trec_eval prints them. */
export interface TrecMeasures {
  /** recip_rank with -M 10 */
  recipRank10: number;
  /** recip_rank over the whole ranking */
  recipRank: number;
  /** ndcg_cut_10 */
  ndcg10: number;
  /** map */
  map: number;
  /** recall_10, recall_100 */
  recall10: number;
  recall100: number;
  /** MS MARCO's MRR@10 (ms_marco_eval.py): the rank column, every qrels query in the mean */
  msmarcoMRR10: number;
}

export interface TrecEvaluation {
  perQuery: Map<string, TrecMeasures>;
  mean: TrecMeasures;
  /** the queries averaged over (trec_eval's num_q) */
  queries: number;
  /** queries of the qrels, the denominator of msmarcoMRR10 */
  qrelsQueries: number;
}

const MEASURES: ReadonlyArray<keyof TrecMeasures> = [
  'recipRank10',
  'recipRank',
  'ndcg10',
  'map',
  'recall10',
  'recall100',
  'msmarcoMRR10',
];

/** The table's labels, trec_eval's names where it has one. */
export const MEASURE_LABELS: Record<keyof TrecMeasures, string> = {
  recipRank10: 'recip_rank@10 (-M 10)',
  recipRank: 'recip_rank',
  ndcg10: 'ndcg_cut_10',
  map: 'map',
  recall10: 'recall_10',
  recall100: 'recall_100',
  msmarcoMRR10: 'MS MARCO MRR@10',
};

// trec_eval skips blank lines and lines starting with '#'.
async function* dataLines(file: string): AsyncGenerator<{ fields: string[]; line: number }> {
  for await (const { text, line } of readLines(file)) {
    const t = text.trim();
    if (!t.startsWith('#')) yield { fields: t.split(/\s+/), line };
  }
}

function number(file: string, line: number, value: string, name: string): number {
  const v = Number(value);
  if (!Number.isFinite(v)) throw new DataFormatError(file, line, `${name} must be a number, got '${value}'`);
  return v;
}

/** TREC qrels `qid iteration docno grade` (tabs or spaces; .gz read as such). A docno judged twice for a query is an error. */
export async function readTrecQrels(file: string): Promise<Qrels> {
  const qrels: Qrels = new Map();
  for await (const { fields, line } of dataLines(file)) {
    if (fields.length !== 4)
      throw new DataFormatError(file, line, `expected 4 fields (qid iteration docno grade), got ${fields.length}`);
    const [qid, , docno, grade] = fields;
    let judged = qrels.get(qid);
    if (!judged) qrels.set(qid, (judged = new Map()));
    if (judged.has(docno)) throw new DataFormatError(file, line, `query ${qid} judges docno ${docno} twice`);
    // trec_eval reads grades with atol (1.5 would silently be 1): only integers are taken.
    const g = number(file, line, grade, 'grade');
    if (!Number.isInteger(g)) throw new DataFormatError(file, line, `grade must be an integer, got '${grade}'`);
    judged.set(docno, g);
  }
  return qrels;
}

/**
 * A run file, recognised by its columns on the first line: TREC's `qid Q0 docno rank score tag` or
 * MS MARCO's `qid<TAB>pid<TAB>rank` (scored -rank, so ranked by its ranks). Every line must have the
 * first line's columns; a docno twice in one query is an error (trec_eval stops there too).
 */
export async function readTrecRun(file: string): Promise<RankedRun> {
  const run: RankedRun = new Map();
  const seen = new Map<string, Set<string>>();
  let columns = 0;
  for await (const { fields, line } of dataLines(file)) {
    if (columns === 0) {
      if (fields.length !== 6 && fields.length !== 3)
        throw new DataFormatError(
          file,
          line,
          `expected a TREC run (qid Q0 docno rank score tag) or an MS MARCO run (qid pid rank), got ${fields.length} fields`,
        );
      columns = fields.length;
    } else if (fields.length !== columns)
      throw new DataFormatError(file, line, `expected ${columns} fields as on the first line, got ${fields.length}`);
    const [qid, docno, rankText, scoreText] =
      columns === 6 ? [fields[0], fields[2], fields[3], fields[4]] : [fields[0], fields[1], fields[2], undefined];
    const rank = number(file, line, rankText, 'rank');
    const score = scoreText === undefined ? -rank : number(file, line, scoreText, 'score');
    let docs = seen.get(qid);
    if (!docs) {
      seen.set(qid, (docs = new Set()));
      run.set(qid, []);
    }
    if (docs.has(docno)) throw new DataFormatError(file, line, `query ${qid} retrieves docno ${docno} twice`);
    docs.add(docno);
    run.get(qid)!.push({ docno, rank, score });
  }
  return run;
}

/** An in-memory run (qid -> docno -> score) with ranks 1.. in trec_eval's order. */
export function rankedRun(run: Run): RankedRun {
  return new Map(
    [...run].map(([qid, scores]) => [
      qid,
      rankDocs(scores, `query ${qid}`).map((docno, i) => ({ docno, rank: i + 1, score: scores.get(docno)! })),
    ]),
  );
}

/** Writes `run` as a TREC run file (`qid Q0 docno rank score tag`), atomically, ranked as trec_eval ranks. */
export async function writeTrecRun(file: string, run: Run, tag: string): Promise<void> {
  const plain = (value: string, name: string) => {
    if (value === '' || /\s/.test(value)) throw new Error(`${file}: ${name} '${value}' is empty or has white space`);
    return value;
  };
  plain(tag, 'tag');
  await writeAtomic(file, async (w) => {
    for (const [qid, entries] of rankedRun(run))
      for (const e of entries)
        await w.write(`${plain(qid, 'qid')} Q0 ${plain(e.docno, 'docno')} ${e.rank} ${e.score} ${tag}\n`);
  });
}

/** trec_eval's measures and MS MARCO's MRR@10 of one query. */
export function trecQueryMeasures(entries: readonly RunEntry[], judged: Map<string, number>, level = 1): TrecMeasures {
  const scores = new Map(entries.map((e) => [e.docno, e.score]));
  const ranking = rankDocs(scores);
  // Unjudged documents, and judged ones with a negative grade, are never relevant (even at level 0).
  const grade = (d: string) => judged.get(d) ?? -1;
  const relevant = (g: number) => g >= 0 && g >= level;
  const numRel = [...judged.values()].filter(relevant).length;
  let recipRank = 0;
  let hits = 0;
  let precisionSum = 0;
  let dcg10 = 0;
  let hits10 = 0;
  let hits100 = 0;
  ranking.forEach((doc, i) => {
    const g = grade(doc);
    const rank = i + 1;
    if (relevant(g)) {
      hits += 1;
      precisionSum += hits / rank;
      if (recipRank === 0) recipRank = 1 / rank;
    }
    if (rank <= 10 && g > 0) dcg10 += g / Math.log2(rank + 1);
    if (rank === 10 || (rank < 10 && rank === ranking.length)) hits10 = hits;
    if (rank === 100 || (rank < 100 && rank === ranking.length)) hits100 = hits;
  });
  const ideal = [...judged.values()]
    .filter((g) => g > 0)
    .sort((a, b) => b - a)
    .slice(0, 10);
  const idcg10 = ideal.reduce((sum, g, i) => sum + g / Math.log2(i + 2), 0);
  // ms_marco_eval.py: position rank-1 holds the line's pid (a later line with the same rank wins).
  const atRank = new Map<number, string>();
  for (const e of entries) if (Number.isInteger(e.rank) && e.rank >= 1 && e.rank <= 10) atRank.set(e.rank, e.docno);
  let msmarcoMRR10 = 0;
  for (let r = 1; r <= 10 && msmarcoMRR10 === 0; r++) {
    const doc = atRank.get(r);
    if (doc !== undefined && relevant(grade(doc))) msmarcoMRR10 = 1 / r;
  }
  return {
    recipRank10: recipRank >= 1 / 10 ? recipRank : 0,
    recipRank,
    ndcg10: idcg10 > 0 ? dcg10 / idcg10 : 0,
    map: numRel > 0 ? precisionSum / numRel : 0,
    recall10: numRel > 0 ? hits10 / numRel : 0,
    recall100: numRel > 0 ? hits100 / numRel : 0,
    msmarcoMRR10,
  };
}

const zeros = (): TrecMeasures => Object.fromEntries(MEASURES.map((m) => [m, 0])) as unknown as TrecMeasures;

/**
 * Per-query measures and their means as trec_eval computes them (-c when `complete`, the default).
 * msmarcoMRR10's mean always divides by the qrels' query count, as MS MARCO's script does.
 */
export function evaluateTrec(run: RankedRun, qrels: Qrels, options: TrecOptions = {}): TrecEvaluation {
  const level = options.relevanceLevel ?? 1;
  const complete = options.complete ?? true;
  if (!Number.isInteger(level) || level < 0) throw new Error(`relevance level ${level}: must be an integer >= 0`);
  const perQuery = new Map<string, TrecMeasures>();
  for (const [qid, judged] of qrels) {
    const entries = run.get(qid);
    if (entries) perQuery.set(qid, trecQueryMeasures(entries, judged, level));
    else if (complete) perQuery.set(qid, zeros());
  }
  // trec_eval -c would print zeros; MS MARCO's script stops, and so do we: the files do not belong together.
  if (![...run.keys()].some((q) => qrels.has(q)))
    throw new Error('no query of the run is in the qrels: are they the same query set?');
  const mean = zeros();
  for (const m of perQuery.values()) for (const k of MEASURES) mean[k] += m[k];
  for (const k of MEASURES) mean[k] /= k === 'msmarcoMRR10' ? qrels.size : perQuery.size;
  return { perQuery, mean, queries: perQuery.size, qrelsQueries: qrels.size };
}

/** The means as a two-column table, trec_eval's measure names and 4 decimals. */
export function trecTable(e: TrecEvaluation): string {
  const rows: Array<[string, string]> = [
    ['num_q', String(e.queries)],
    ...MEASURES.map((k): [string, string] => [MEASURE_LABELS[k], e.mean[k].toFixed(4)]),
  ];
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, v]) => `${l.padEnd(width)}  ${v}`).join('\n');
}
