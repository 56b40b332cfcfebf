// BM25 first stage (Robertson/Spärck Jones idf, k1 = 0.9, b = 0.4 as Anserini uses for MS MARCO
// passages), over Lucene's default English stop words. Written here because the npm BM25 packages
// bundle their own text pipelines and parameter conventions; this is ~50 lines, checked in
// tests/collection.test.ts.

// Lucene's EnglishAnalyzer default stop set.
const STOP = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(' '),
);

/** Lowercased alphanumeric terms, stop words removed. */
export function analyze(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).filter((t) => !STOP.has(t));
}

export interface Bm25Params {
  k1: number;
  b: number;
}

export class Bm25Index {
  private readonly postings = new Map<string, Array<[number, number]>>(); // term -> [doc, tf]
  private readonly lengths: number[] = [];
  readonly ids: string[] = [];
  private totalLength = 0;
  private docIndex: Map<string, number> | null = null;

  constructor(readonly params: Bm25Params = { k1: 0.9, b: 0.4 }) {}

  add(id: string, text: string): void {
    this.docIndex = null;
    const doc = this.ids.length;
    this.ids.push(id);
    const terms = analyze(text);
    this.lengths.push(terms.length);
    this.totalLength += terms.length;
    const tf = new Map<string, number>();
    for (const t of terms) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const [t, n] of tf) {
      if (!this.postings.has(t)) this.postings.set(t, []);
      this.postings.get(t)!.push([doc, n]);
    }
  }

  /** idf = ln(1 + (N - df + 0.5) / (df + 0.5)), as Lucene's BM25Similarity. */
  idf(term: string): number {
    const df = this.postings.get(term)?.length ?? 0;
    const n = this.ids.length;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** BM25 of one document for the query (0 when it shares no term), the score search() gives it. */
  score(query: string, id: string): number {
    this.docIndex ??= new Map(this.ids.map((x, i) => [x, i]));
    const doc = this.docIndex.get(id);
    if (doc == null) throw new Error(`Bm25Index: unknown document ${id}`);
    const { k1, b } = this.params;
    const avgdl = this.totalLength / Math.max(1, this.ids.length);
    const norm = k1 * (1 - b + (b * this.lengths[doc]) / avgdl);
    let score = 0;
    for (const term of analyze(query)) {
      const list = this.postings.get(term);
      if (!list) continue;
      // Postings are in document order: binary search for this one.
      let lo = 0;
      let hi = list.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid][0] === doc) {
          const tf = list[mid][1];
          score += (this.idf(term) * tf * (k1 + 1)) / (tf + norm);
          break;
        }
        if (list[mid][0] < doc) lo = mid + 1;
        else hi = mid - 1;
      }
    }
    return score;
  }

  /** The k best documents for the query: [id, score], score descending, ties by id descending. */
  search(query: string, k: number): Array<[string, number]> {
    const { k1, b } = this.params;
    const avgdl = this.totalLength / Math.max(1, this.ids.length);
    const scores = new Map<number, number>();
    for (const term of analyze(query)) {
      const list = this.postings.get(term);
      if (!list) continue;
      const idf = this.idf(term);
      for (const [doc, tf] of list) {
        const norm = k1 * (1 - b + (b * this.lengths[doc]) / avgdl);
        scores.set(doc, (scores.get(doc) ?? 0) + (idf * tf * (k1 + 1)) / (tf + norm));
      }
    }
    return [...scores.entries()]
      .map(([doc, s]): [string, number] => [this.ids[doc], s])
      .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : 0))
      .slice(0, k);
  }
}
