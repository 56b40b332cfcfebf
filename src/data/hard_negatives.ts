// Hard-negatives files (data.negatives { from: "file", path }), one query a line, each line in
// either layout (.gz read as such):
// - `qid<TAB>pid,pid,...`: the query's negatives, best-ranked first;
// - JSON Lines `{"qid": .., "neg": [pid, ...]}`, optionally with `"pos": [pid, ...]`; `neg` may also
//   map each mining system to its list, as sentence-transformers' msmarco-hard-negatives.jsonl does
//   (`{"qid", "pos", "neg": {"bm25": [..], "<model>": [..]}}`): the systems' lists are merged in the
//   order the line gives them (or only those named by `systems`), a pid kept at its first place.
// Ids may be JSON numbers or strings. A malformed line is a DataFormatError naming the file and line.
import { BadRows } from './bad_rows';
import { DataFormatError, readLines } from './lines';

export interface HardNegativesRow {
  qid: string;
  line: number;
  /** positives the line names (never drawn as negatives) */
  pos: string[];
  neg: string[];
}

const idOf = (file: string, line: number, x: unknown, what: string): string => {
  if ((typeof x === 'string' && x.trim() !== '' && !/\s/.test(x)) || (typeof x === 'number' && Number.isInteger(x)))
    return String(x);
  throw new DataFormatError(file, line, `${what} must be an id (an integer or a string without spaces), got ${JSON.stringify(x)}`);
};

const ids = (file: string, line: number, x: unknown, what: string): string[] => {
  if (!Array.isArray(x)) throw new DataFormatError(file, line, `${what} must be a list of ids, got ${JSON.stringify(x)}`);
  return x.map((v, i) => idOf(file, line, v, `${what}[${i}]`));
};

function jsonRow(file: string, line: number, text: string, systems?: readonly string[]): HardNegativesRow {
  let rec: { qid?: unknown; pos?: unknown; neg?: unknown };
  try {
    rec = JSON.parse(text);
  } catch (e) {
    throw new DataFormatError(file, line, `not valid JSON: ${(e as Error).message}`);
  }
  if (rec == null || typeof rec !== 'object' || Array.isArray(rec))
    throw new DataFormatError(file, line, 'expected a JSON object {"qid", "neg"[, "pos"]}');
  const qid = idOf(file, line, rec.qid, 'qid');
  const pos = rec.pos === undefined ? [] : ids(file, line, rec.pos, 'pos');
  let neg: string[];
  if (Array.isArray(rec.neg)) {
    if (systems) throw new DataFormatError(file, line, `neg is a plain list: it has no systems to choose ${systems.join(', ')} from`);
    neg = ids(file, line, rec.neg, 'neg');
  } else if (rec.neg != null && typeof rec.neg === 'object') {
    const bySystem = rec.neg as Record<string, unknown>;
    const names = systems ?? Object.keys(bySystem);
    neg = [...new Set(names.flatMap((name) => (bySystem[name] === undefined ? [] : ids(file, line, bySystem[name], `neg.${name}`))))];
  } else throw new DataFormatError(file, line, `neg must be a list of ids or an object of lists by system, got ${JSON.stringify(rec.neg)}`);
  return { qid, line, pos, neg };
}

function tsvRow(file: string, line: number, text: string): HardNegativesRow {
  const f = text.split('\t');
  if (f.length !== 2)
    throw new DataFormatError(file, line, `expected 2 tab-separated fields (qid, comma-separated pids) or a JSON object, got ${f.length} fields`);
  const qid = idOf(file, line, f[0].trim(), 'qid');
  const neg = f[1].split(',').map((p, i) => idOf(file, line, p.trim(), `pid ${i + 1}`));
  return { qid, line, pos: [], neg: [...new Set(neg)] };
}

/** The rows of a hard-negatives file; `systems` picks the mining systems of a by-system `neg`. */
export async function* readHardNegatives(
  file: string,
  options: { systems?: readonly string[]; badRows?: BadRows } = {},
): AsyncGenerator<HardNegativesRow> {
  const bad = options.badRows ?? new BadRows(false);
  for await (const { text, line } of readLines(file)) {
    const t = text.trim();
    const row = bad.guard(() => (t.startsWith('{') ? jsonRow(file, line, t, options.systems) : tsvRow(file, line, t)));
    if (row) yield row;
  }
}
