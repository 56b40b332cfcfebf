// MS MARCO passage ranking's published files, read as they are (each may also be gzipped, `.gz`):
// - collection and queries: `id<TAB>text`;
// - qrels: TREC's 4 columns `qid 0 pid grade`, tab or space separated;
// - candidates, recognised by their columns: `qid<TAB>pid<TAB>rank` (the run files), top1000's
//   `qid<TAB>pid<TAB>query<TAB>passage`, or a TREC run `qid Q0 pid rank score tag`;
// - training triples: qidpidtriples' `qid<TAB>pid_pos<TAB>pid_neg`, or the text triples
//   (triples.train.small.tsv) `query<TAB>positive<TAB>negative`, whose texts are looked up;
// - teacher scores, recognised by their columns: Hofstätter et al.'s `pos_score<TAB>neg_score<TAB>qid<TAB>pid_pos<TAB>pid_neg`
//   or `qid<TAB>pid<TAB>score`.
// A row that fits none of its file's formats, a non-numeric score, a pid missing from the collection
// or a query without text is a DataFormatError naming the file and line.
//
// loadMsMarco builds the pipeline's RankingCollection from a directory with the official file names
// (MSMARCO_FILES) or from a JSON descriptor naming the files. A split whose files are absent is
// simply absent (coll.splits); the training split's candidates are the triples' passages. With a
// passage store, qidpidtriples are read from the store's per-query table (triples_table.ts), not
// row by row at every start.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { BadRows } from './bad_rows';
import type { Split } from './collection';
import { DataFormatError, readLines } from './lines';
import { openPassageStore, readProgress, sourceFingerprint, type OpenStoreOptions, type PassageStore } from './passage_store';
import { hasPassage, type RankingCollection } from './ranking_collection';
import { isIdTriples, MapView, openTriplesTable, type TriplesTable } from './triples_table';

export interface MsMarcoSplitFiles {
  queries?: string;
  qrels?: string;
  candidates?: string;
  /** qidpidtriples (train): `qid pid_pos pid_neg` */
  triples?: string;
}

/** What a JSON descriptor holds (paths relative to the descriptor's dir). */
export interface MsMarcoFiles {
  collection: string;
  train?: MsMarcoSplitFiles;
  dev?: MsMarcoSplitFiles;
  test?: MsMarcoSplitFiles;
}

/** The official MS MARCO passage file names a `data.msmarco` directory is read by (each also as `.gz`). */
export const MSMARCO_FILES: MsMarcoFiles = {
  collection: 'collection.tsv',
  train: { queries: 'queries.train.tsv', qrels: 'qrels.train.tsv', triples: 'qidpidtriples.train.full.2.tsv' },
  dev: { queries: 'queries.dev.small.tsv', qrels: 'qrels.dev.small.tsv', candidates: 'top1000.dev' },
};

/** A directory without qidpidtriples may hold the text triples instead. */
export const MSMARCO_TEXT_TRIPLES = 'triples.train.small.tsv';

const SPLIT_NAMES: Split[] = ['train', 'dev', 'test'];

function split(file: string, line: number, text: string, sep: RegExp | string, counts: number[], what: string): string[] {
  const f = text.split(sep);
  if (!counts.includes(f.length)) throw new DataFormatError(file, line, `expected ${what}, got ${f.length} fields`);
  return f;
}

function score(file: string, line: number, value: string, name: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v))
    throw new DataFormatError(file, line, `${name} must be a finite number, got '${value}'`);
  return v;
}

// Every reader takes `bad` (--skip-bad-rows): a malformed row is thrown, or skipped and counted there.

/** `id<TAB>text` (collection, queries); an empty text or id, or an id given twice, is an error. */
export async function* readMsMarcoText(
  file: string,
  bad = new BadRows(false),
  onRead?: (bytes: number) => void,
): AsyncGenerator<{ id: string; text: string; line: number }> {
  const seen = new Map<string, number>();
  for await (const { text, line } of readLines(file, onRead)) {
    const row = bad.guard(() => {
      const [id, body] = split(file, line, text, '\t', [2], '2 tab-separated fields (id, text)');
      if (id.trim() === '') throw new DataFormatError(file, line, 'empty id');
      if (body.trim() === '') throw new DataFormatError(file, line, `id ${id} has no text`);
      const first = seen.get(id);
      if (first !== undefined) throw new DataFormatError(file, line, `duplicate id '${id}' (first on line ${first})`);
      seen.set(id, line);
      return { id, text: body, line };
    });
    if (row) yield row;
  }
}

/** TREC qrels `qid 0 pid grade`, tab or space separated. */
export async function* readMsMarcoQrels(
  file: string,
  bad = new BadRows(false),
  onRead?: (bytes: number) => void,
): AsyncGenerator<{ qid: string; pid: string; grade: number; line: number }> {
  for await (const { text, line } of readLines(file, onRead)) {
    const row = bad.guard(() => {
      const [qid, , pid, grade] = split(file, line, text.trim(), /\s+/, [4], '4 fields (qid 0 pid grade)');
      const g = score(file, line, grade, 'grade');
      if (!Number.isInteger(g)) throw new DataFormatError(file, line, `grade must be an integer, got '${grade}'`);
      return { qid, pid, grade: g, line };
    });
    if (row) yield row;
  }
}

export interface MsMarcoCandidate {
  qid: string;
  pid: string;
  line: number;
  /** top1000's texts */
  query?: string;
  passage?: string;
  /** the rank column (the run formats; top1000 has none) */
  rank?: number;
}

/** Candidates in any of MS MARCO's run formats, recognised by the columns of each row. */
export async function* readMsMarcoCandidates(
  file: string,
  bad = new BadRows(false),
  onRead?: (bytes: number) => void,
): AsyncGenerator<MsMarcoCandidate> {
  const what = '3 tab-separated fields (qid pid rank), 4 (qid pid query passage) or a 6-field TREC run (qid Q0 pid rank score tag)';
  for await (const { text, line } of readLines(file, onRead)) {
    const row = bad.guard((): MsMarcoCandidate => {
      const tabs = text.split('\t');
      if (tabs.length === 4) return { qid: tabs[0], pid: tabs[1], query: tabs[2], passage: tabs[3], line };
      const f = tabs.length === 3 ? tabs : text.trim().split(/\s+/);
      if (f.length === 3) return { qid: f[0], pid: f[1], line, rank: score(file, line, f[2], 'rank') };
      if (f.length === 6) {
        score(file, line, f[4], 'score');
        return { qid: f[0], pid: f[2], line, rank: score(file, line, f[3], 'rank') };
      }
      throw new DataFormatError(file, line, `expected ${what}, got ${tabs.length} fields`);
    });
    if (row) yield row;
  }
}

export interface TrainingTriple {
  line: number;
  /** qidpidtriples rows: ids */
  ids?: { qid: string; pos: string; neg: string };
  /** triples.train.small rows: texts */
  texts?: { query: string; pos: string; neg: string };
}

const isId = (field: string) => /^\d+$/.test(field);

/**
 * Training triples: qidpidtriples' `qid<TAB>pid_pos<TAB>pid_neg` (three integer ids) or the text
 * triples' `query<TAB>positive passage<TAB>negative passage`.
 */
export async function* readTrainingTriples(file: string, bad = new BadRows(false)): AsyncGenerator<TrainingTriple> {
  for await (const { text, line } of readLines(file)) {
    const row = bad.guard((): TrainingTriple => {
      const [a, b, c] = split(file, line, text, '\t', [3], '3 tab-separated fields (qid pid_pos pid_neg, or query positive negative texts)');
      if (isId(a) && isId(b) && isId(c)) return { line, ids: { qid: a, pos: b, neg: c } };
      for (const [field, name] of [[a, 'query'], [b, 'positive passage'], [c, 'negative passage']])
        if (field.trim() === '') throw new DataFormatError(file, line, `the ${name} has no text`);
      return { line, texts: { query: a, pos: b, neg: c } };
    });
    if (row) yield row;
  }
}

export interface TeacherScoreRow {
  qid: string;
  line: number;
  /** Hofstätter's 5-column rows: a triple and its two scores */
  pos?: { pid: string; score: number };
  neg?: { pid: string; score: number };
  /** `qid pid score` rows */
  pid?: string;
  score?: number;
}

/** Teacher scores: Hofstätter et al.'s `pos_score neg_score qid pid_pos pid_neg`, or `qid pid score` (tab-separated). */
export async function* readTeacherScoreFile(
  file: string,
  bad = new BadRows(false),
  onRead?: (bytes: number) => void,
): AsyncGenerator<TeacherScoreRow> {
  for await (const { text, line } of readLines(file, onRead)) {
    const row = bad.guard((): TeacherScoreRow => {
      const f = split(
        file,
        line,
        text,
        '\t',
        [3, 5],
        "5 tab-separated fields (pos_score neg_score qid pid_pos pid_neg) or 3 (qid pid score)",
      );
      if (f.length === 5)
        return {
          qid: f[2],
          line,
          pos: { pid: f[3], score: score(file, line, f[0], 'pos_score') },
          neg: { pid: f[4], score: score(file, line, f[1], 'neg_score') },
        };
      return { qid: f[0], pid: f[1], score: score(file, line, f[2], 'score'), line };
    });
    if (row) yield row;
  }
}

// The file itself, or its gzipped form; null when neither exists.
function existing(file: string): string | null {
  if (fs.existsSync(file)) return file;
  if (fs.existsSync(`${file}.gz`)) return `${file}.gz`;
  return null;
}

/** The files of an MS MARCO directory (official names) or of a JSON descriptor, resolved and present. */
export function msMarcoFiles(source: string): MsMarcoFiles {
  let base = source;
  let named: MsMarcoFiles = MSMARCO_FILES;
  const isDescriptor = fs.existsSync(source) && fs.statSync(source).isFile();
  if (isDescriptor) {
    base = path.dirname(source);
    try {
      named = JSON.parse(fs.readFileSync(source, 'utf8')) as MsMarcoFiles;
    } catch (e) {
      throw new Error(`${source}: not valid JSON: ${(e as Error).message}`);
    }
    if (typeof named?.collection !== 'string') throw new Error(`${source}: names no collection file ("collection": "<file>")`);
  } else if (!fs.existsSync(source)) throw new Error(`data.msmarco: ${source} does not exist`);
  const resolve = (name: string, where: string) => {
    const f = existing(path.resolve(base, name));
    // A descriptor's files must exist; a directory's official files may be absent (that split is).
    if (f == null && isDescriptor) throw new Error(`${source}: ${where} ${name} does not exist`);
    return f ?? undefined;
  };
  const collection = resolve(named.collection, 'collection');
  if (collection == null) throw new Error(`${source}: no ${named.collection} (MS MARCO's collection, pid<TAB>passage)`);
  const out: MsMarcoFiles = { collection };
  for (const s of SPLIT_NAMES) {
    const files = named[s];
    if (files == null) continue;
    const got: MsMarcoSplitFiles = {};
    for (const k of ['queries', 'qrels', 'candidates', 'triples'] as const)
      if (typeof files[k] === 'string') got[k] = resolve(files[k]!, `${s}.${k}`);
    if (s === 'train' && !isDescriptor && got.triples == null) got.triples = resolve(MSMARCO_TEXT_TRIPLES, 'train.triples');
    if (got.queries) out[s] = got;
  }
  return out;
}

/** The training split's negative lists apart (data.negatives.from 'triples' or 'candidates'). */
export interface MsMarcoTrainLists {
  /** qid -> the triples' negatives, in file order */
  triples: Map<string, string[]>;
  /** qid -> the training candidates file's passages, by its rank column (file order where it has none) */
  candidates: Map<string, string[]>;
}

/** What loadMsMarco returns: a RankingCollection that also keeps the training lists apart. */
export interface MsMarcoCollection extends RankingCollection {
  msmarcoTrain: MsMarcoTrainLists;
}

/**
 * A RankingCollection from MS MARCO's files (a directory with the official names, or a JSON
 * descriptor). A split is present when its queries file is; its candidates are its candidates file's
 * and its triples' passages (train: the triples' negatives, as the sampler draws negatives from them).
 * `badRows` (--skip-bad-rows) skips and counts malformed rows instead of throwing at the first.
 */
export async function loadMsMarco(source: string, options: MsMarcoLoadOptions = {}): Promise<MsMarcoCollection> {
  const bad = options.badRows ?? new BadRows(false);
  const files = msMarcoFiles(source);
  const store = options.store ? await openMsMarcoStore(source, files, options.store, bad) : null;
  const hash = createHash('sha256');
  // Streamed (MS MARCO's collection is 3 GB, over what one Buffer holds).
  const hashed: string[] = [];
  const read = (f: string) => {
    hashed.push(f);
    return f;
  };
  // Progress by MB for the files read row by row (500k training queries and qrels: seconds).
  const onProgress = options.store?.onProgress;
  const reading = <T>(f: string, rows: (onRead?: (bytes: number) => void) => AsyncGenerator<T>) => {
    if (!onProgress) return rows();
    const progress = readProgress(f, fs.statSync(f).size, onProgress, 'read');
    return (async function* () {
      yield* rows(progress.read);
      progress.done();
    })();
  };
  const passages = new Map<string, string>();
  if (store) hashed.push(files.collection);
  else for await (const r of readMsMarcoText(read(files.collection), bad)) passages.set(r.id, r.text);
  const coll: MsMarcoCollection = {
    dir: source,
    passages,
    queries: { train: new Map(), dev: new Map(), test: new Map() },
    qrels: { train: new Map(), dev: new Map(), test: new Map() },
    candidates: { train: new Map(), dev: new Map(), test: new Map() },
    splits: [],
    fingerprint: '',
    msmarcoTrain: { triples: new Map(), candidates: new Map() },
    ...(store ? { store } : {}),
  };
  const needPassage = (file: string, line: number, pid: string) => {
    if (!hasPassage(coll, pid)) throw new DataFormatError(file, line, `passage ${pid} is not in ${path.basename(files.collection)}`);
  };
  for (const s of SPLIT_NAMES) {
    const f = files[s];
    if (!f?.queries) continue;
    coll.splits!.push(s);
    const queries = coll.queries[s];
    for await (const r of reading(read(f.queries), (p) => readMsMarcoText(f.queries!, bad, p))) queries.set(r.id, r.text);
    const needQuery = (file: string, line: number, qid: string) => {
      if (!queries.has(qid))
        throw new DataFormatError(file, line, `query ${qid} has no text in ${path.basename(f.queries!)}`);
    };
    if (f.qrels)
      for await (const r of reading(read(f.qrels), (p) => readMsMarcoQrels(f.qrels!, bad, p))) {
        if (!bad.guard(() => (needQuery(f.qrels!, r.line, r.qid), needPassage(f.qrels!, r.line, r.pid), true))) continue;
        const judged = coll.qrels[s].get(r.qid) ?? new Map<string, number>();
        judged.set(r.pid, r.grade);
        coll.qrels[s].set(r.qid, judged);
      }
    const candidates = new Map<string, Set<string>>();
    const add = (qid: string, pid: string) => {
      const list = candidates.get(qid) ?? new Set<string>();
      list.add(pid);
      candidates.set(qid, list);
    };
    // The training candidates by rank, for data.negatives.from 'candidates' (a stable sort: file order within a rank).
    const ranked = new Map<string, Array<{ pid: string; rank: number }>>();
    if (f.candidates)
      for await (const r of reading(read(f.candidates), (p) => readMsMarcoCandidates(f.candidates!, bad, p))) {
        const ok = bad.guard(() => {
          if (r.query != null && r.query.trim() === '') throw new DataFormatError(f.candidates!, r.line, `query ${r.qid} has no text`);
          if (!queries.has(r.qid) && r.query == null) needQuery(f.candidates!, r.line, r.qid);
          needPassage(f.candidates!, r.line, r.pid);
          return true;
        });
        if (!ok) continue;
        add(r.qid, r.pid);
        if (s === 'train') {
          const list = ranked.get(r.qid) ?? [];
          list.push({ pid: r.pid, rank: r.rank ?? list.length + 1 });
          ranked.set(r.qid, list);
        }
      }
    for (const [qid, list] of ranked)
      coll.msmarcoTrain.candidates.set(
        qid,
        [...new Set(list.sort((a, b) => a.rank - b.rank).map((c) => c.pid))],
      );
    const tripleNegs = new Map<string, Set<string>>();
    const table = s === 'train' ? store?.triples : undefined;
    if (f.triples && table) {
      read(f.triples);
      trainFromTable(coll, table, candidates);
      continue;
    }
    if (f.triples) {
      // Text triples name their query and passages by text: ids by text, built on first need.
      let byText: { queries: Map<string, string>; passages: Map<string, string> } | null = null;
      const idOf = (map: Map<string, string>, text: string, what: string, line: number) => {
        const id = map.get(text);
        if (id == null) throw new DataFormatError(f.triples!, line, `the ${what}'s text is not in ${what === 'query' ? path.basename(f.queries!) : path.basename(files.collection)}`);
        return id;
      };
      for await (const r of readTrainingTriples(read(f.triples), bad)) {
        if (r.ids == null)
          byText ??= {
            queries: new Map([...queries].map(([id, text]) => [text, id])),
            passages: store
              ? await passageIdsByText(files.collection)
              : new Map([...passages].map(([id, text]) => [text, id])),
          };
        const t = bad.guard(() => {
          let ids = r.ids;
          if (ids == null) {
            ids = {
              qid: idOf(byText!.queries, r.texts!.query, 'query', r.line),
              pos: idOf(byText!.passages, r.texts!.pos, 'positive passage', r.line),
              neg: idOf(byText!.passages, r.texts!.neg, 'negative passage', r.line),
            };
          }
          needQuery(f.triples!, r.line, ids.qid);
          needPassage(f.triples!, r.line, ids.pos);
          needPassage(f.triples!, r.line, ids.neg);
          return ids;
        });
        if (t == null) continue;
        // The positive is judged relevant by the triples even where the qrels file is absent.
        const judged = coll.qrels[s].get(t.qid) ?? new Map<string, number>();
        if ((judged.get(t.pos) ?? 0) < 1) judged.set(t.pos, 1);
        coll.qrels[s].set(t.qid, judged);
        add(t.qid, t.neg);
        if (s === 'train') {
          const negs = tripleNegs.get(t.qid) ?? new Set<string>();
          tripleNegs.set(t.qid, negs.add(t.neg));
        }
      }
    }
    for (const [qid, pids] of candidates) coll.candidates[s].set(qid, [...pids]);
    for (const [qid, pids] of tripleNegs) coll.msmarcoTrain.triples.set(qid, [...pids]);
  }
  if (store) {
    // With a store, every file is fingerprinted as the store's sources are (size, mtime, first and
    // last MB): hashing MS MARCO's gigabytes whole at every start is what the store is there to avoid.
    hash.update(`store ${store.fingerprint}\0`);
    for (const f of hashed) hash.update(`${JSON.stringify(sourceFingerprint(f))}\0`);
  } else
    for (const f of hashed) {
      hash.update(`${path.basename(f)}\0`);
      for await (const chunk of fs.createReadStream(f)) hash.update(chunk as Buffer);
    }
  coll.fingerprint = hash.digest('hex');
  return coll;
}

export interface MsMarcoLoadOptions {
  /**
   * Passages (and queries) from the pre-tokenized store (passage_store.ts), built on first use:
   * the collection's texts are then not read. Default store dir: under the dataset's dir.
   */
  store?: OpenStoreOptions;
  /** malformed rows: errors (default), or skipped and counted (--skip-bad-rows) */
  badRows?: BadRows;
}

/** The dir a `data.msmarco` source's store goes under by default: the dir, or the descriptor's dir. */
export function msMarcoDatasetDir(source: string): string {
  return fs.existsSync(source) && fs.statSync(source).isFile() ? path.dirname(source) : source;
}

/** A dataset's store, with the training triples' table where they are qidpidtriples. */
export interface MsMarcoStore extends PassageStore {
  triples?: TriplesTable;
}

/**
 * The store of an MS MARCO dataset's collection and queries files, and the table of its training
 * qidpidtriples (each built or rebuilt as needed). Text triples have no table: their rows are read.
 */
export async function openMsMarcoStore(
  source: string,
  files: MsMarcoFiles,
  options: OpenStoreOptions,
  bad = new BadRows(false),
): Promise<MsMarcoStore> {
  const queries: Partial<Record<Split, string>> = {};
  for (const s of SPLIT_NAMES) if (files[s]?.queries) queries[s] = files[s]!.queries;
  const store: MsMarcoStore = await openPassageStore(
    { collection: files.collection, queries },
    { ...options, dataset: options.dataset ?? msMarcoDatasetDir(source) },
  );
  const triples = files.train?.triples;
  if (triples && files.train?.queries && (await isIdTriples(triples)))
    store.triples = await openTriplesTable(triples, store, {
      stale: options.stale,
      force: options.force,
      badRows: bad,
      onProgress: options.onProgress,
      notice: options.notice,
    });
  return store;
}

/**
 * The training split from the triples' table, as the row reader makes it (the same keys in the same
 * order, the same lists): qrels with the triples' positives judged relevant, the candidates file's
 * passages then the triples' negatives, and the triples' negatives apart. Each list is made when
 * asked for, so 40M rows are never held as strings.
 */
function trainFromTable(coll: MsMarcoCollection, table: TriplesTable, fileCandidates: Map<string, Set<string>>): void {
  const qids = table.qidList();
  const qrels = coll.qrels.train;
  const extend = <V>(base: Map<string, V>) => [...base.keys(), ...qids.filter((q) => !base.has(q))];
  coll.qrels.train = new MapView(extend(qrels), (qid) => {
    const q = table.index(qid);
    if (q < 0) return qrels.get(qid);
    const judged = new Map(qrels.get(qid));
    for (const pid of table.positives(q)) if ((judged.get(pid) ?? 0) < 1) judged.set(pid, 1);
    return judged;
  });
  coll.candidates.train = new MapView(extend(fileCandidates), (qid) => {
    const q = table.index(qid);
    const listed = fileCandidates.get(qid);
    if (q < 0) return listed && [...listed];
    return listed ? [...new Set([...listed, ...table.negatives(q)])] : table.negatives(q);
  });
  coll.msmarcoTrain.triples = new MapView(qids, (qid) => {
    const q = table.index(qid);
    return q < 0 ? undefined : table.negatives(q);
  });
}

// Text triples with a store: passage ids by text, read from the collection file on this need only.
async function passageIdsByText(collection: string): Promise<Map<string, string>> {
  const byText = new Map<string, string>();
  for await (const r of readMsMarcoText(collection)) byText.set(r.text, r.id);
  return byText;
}
