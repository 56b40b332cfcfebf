// Readers and writers for MS MARCO-style TSV, TREC qrels and run files, and JSONL. Readers are async
// generators over the file's lines (streaming; see lines.ts); each malformed line throws a
// DataFormatError naming the file and line. Writers are atomic (atomic.ts).
//
// The TSV formats are split on tabs by hand: MS MARCO text fields contain quotes and commas but never
// tabs or newlines, and a CSV parser's quoting rules would misread them.
import { Qrels, Run, rankDocs } from '../eval/metrics';
import { writeAtomic } from './atomic';
import { DataFormatError, readLines } from './lines';

export interface TextRecord {
  id: string;
  text: string;
}
export interface QrelRecord {
  qid: string;
  docid: string;
  grade: number;
}
export interface RunRecord {
  qid: string;
  docid: string;
  rank: number;
  score: number;
  tag: string;
}
export interface TripleRecord {
  query: string;
  positive: string;
  negative: string;
}
export interface CandidateRecord {
  qid: string;
  docid: string;
  /** present in 4-column files (qid, pid, query, passage) */
  query?: string;
  passage?: string;
}

function fields(file: string, line: number, text: string, sep: RegExp | string, counts: number[], what: string): string[] {
  const f = text.split(sep);
  if (!counts.includes(f.length))
    throw new DataFormatError(file, line, `expected ${counts.join(' or ')} fields (${what}), got ${f.length}`);
  return f;
}

function finite(file: string, line: number, value: string, name: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v)) throw new DataFormatError(file, line, `${name} must be a number, got '${value}'`);
  return v;
}

/** `id<TAB>text` lines: an MS MARCO collection (pid, passage) or queries file (qid, query). An id given twice is an error. */
export async function* readTextTsv(file: string): AsyncGenerator<TextRecord> {
  const seen = new Map<string, number>();
  for await (const { text, line } of readLines(file)) {
    const [id, body] = fields(file, line, text, '\t', [2], 'id<TAB>text');
    if (id === '') throw new DataFormatError(file, line, 'empty id');
    const first = seen.get(id);
    if (first !== undefined) throw new DataFormatError(file, line, `duplicate id '${id}' (first on line ${first})`);
    seen.set(id, line);
    yield { id, text: body };
  }
}

/** TREC qrels: `qid 0 docid grade` (whitespace separated). */
export async function* readQrels(file: string): AsyncGenerator<QrelRecord> {
  for await (const { text, line } of readLines(file)) {
    const [qid, , docid, grade] = fields(file, line, text.trim(), /\s+/, [4], 'qid iter docid grade');
    yield { qid, docid, grade: finite(file, line, grade, 'grade') };
  }
}

/** TREC run: `qid Q0 docid rank score tag`. */
export async function* readRun(file: string): AsyncGenerator<RunRecord> {
  for await (const { text, line } of readLines(file)) {
    const [qid, , docid, rank, score, tag] = fields(file, line, text.trim(), /\s+/, [6], 'qid Q0 docid rank score tag');
    yield { qid, docid, rank: finite(file, line, rank, 'rank'), score: finite(file, line, score, 'score'), tag };
  }
}

/** Training triples: `query<TAB>positive<TAB>negative` (texts or ids). */
export async function* readTriples(file: string): AsyncGenerator<TripleRecord> {
  for await (const { text, line } of readLines(file)) {
    const [query, positive, negative] = fields(file, line, text, '\t', [3], 'query<TAB>positive<TAB>negative');
    yield { query, positive, negative };
  }
}

/** Top-k candidates: `qid<TAB>pid` or MS MARCO's `qid<TAB>pid<TAB>query<TAB>passage`. */
export async function* readCandidates(file: string): AsyncGenerator<CandidateRecord> {
  for await (const { text, line } of readLines(file)) {
    const f = fields(file, line, text, '\t', [2, 4], 'qid<TAB>pid[<TAB>query<TAB>passage]');
    yield f.length === 2 ? { qid: f[0], docid: f[1] } : { qid: f[0], docid: f[1], query: f[2], passage: f[3] };
  }
}

/** One JSON value per line. */
export async function* readJsonl<T = unknown>(file: string): AsyncGenerator<T> {
  for await (const { text, line } of readLines(file)) {
    try {
      yield JSON.parse(text) as T;
    } catch (e) {
      throw new DataFormatError(file, line, `invalid JSON: ${(e as Error).message}`);
    }
  }
}

// qid -> docid -> value, from any per-(qid, docid) record stream.
async function byQuery<R extends { qid: string; docid: string }>(
  records: AsyncIterable<R>,
  value: (r: R) => number,
): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  for await (const r of records) {
    if (!out.has(r.qid)) out.set(r.qid, new Map());
    out.get(r.qid)!.set(r.docid, value(r));
  }
  return out;
}

export function loadQrels(file: string): Promise<Qrels> {
  return byQuery(readQrels(file), (r) => r.grade);
}

export function loadRun(file: string): Promise<Run> {
  return byQuery(readRun(file), (r) => r.score);
}

function checkField(value: string, name: string, sep: RegExp): string {
  if (sep.test(value)) throw new Error(`${name} '${value}' contains a field separator`);
  return value;
}

export async function writeTextTsv(file: string, records: Iterable<TextRecord> | AsyncIterable<TextRecord>): Promise<void> {
  await writeAtomic(file, async (w) => {
    for await (const r of records) await w.write(`${checkField(r.id, 'id', /[\t\n]/)}\t${checkField(r.text, 'text', /[\t\n]/)}\n`);
  });
}

export async function writeQrels(file: string, qrels: Qrels): Promise<void> {
  await writeAtomic(file, async (w) => {
    for (const [qid, docs] of qrels)
      for (const [docid, grade] of docs) await w.write(`${checkField(qid, 'qid', /\s/)} 0 ${checkField(docid, 'docid', /\s/)} ${grade}\n`);
  });
}

/** Each query's documents ranked by score (ties by docid, as the evaluation ranks them). */
export async function writeRun(file: string, run: Run, tag: string): Promise<void> {
  await writeAtomic(file, async (w) => {
    for (const [qid, scores] of run)
      for (const [i, docid] of rankDocs(scores).entries())
        await w.write(`${checkField(qid, 'qid', /\s/)} Q0 ${checkField(docid, 'docid', /\s/)} ${i + 1} ${scores.get(docid)} ${checkField(tag, 'tag', /\s/)}\n`);
  });
}

export async function writeJsonl(file: string, values: Iterable<unknown> | AsyncIterable<unknown>): Promise<void> {
  await writeAtomic(file, async (w) => {
    for await (const v of values) await w.write(`${JSON.stringify(v)}\n`);
  });
}
