// BM25 against hand-computed scores; the bundled Brown collection builder on a few documents.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  Bm25Index, analyze, buildCollection, loadQrels, parseBrownSentence, readCandidates, readTextTsv, writeCollection,
} from '../src/data';

describe('BM25', () => {
  it('drops Lucene English stop words and punctuation', () => {
    expect(analyze('The Apple, and a BANANA!')).toEqual(['apple', 'banana']);
  });

  it('scores as idf * tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), k1 = 0.9, b = 0.4', () => {
    const index = new Bm25Index();
    index.add('d1', 'apple banana apple'); // dl 3
    index.add('d2', 'banana cherry'); // dl 2
    index.add('d3', 'cherry cherry cherry date'); // dl 4; avgdl = 3
    const idfApple = Math.log(1 + (3 - 1 + 0.5) / (1 + 0.5));
    const idfCherry = Math.log(1 + (3 - 2 + 0.5) / (2 + 0.5));
    const score = (idf: number, tf: number, dl: number) => (idf * tf * 1.9) / (tf + 0.9 * (0.6 + (0.4 * dl) / 3));
    const hits = index.search('apple cherry', 10);
    expect(hits.map(([id]) => id)).toEqual(['d1', 'd3', 'd2']);
    expect(hits[0][1]).toBeCloseTo(score(idfApple, 2, 3), 12);
    expect(hits[1][1]).toBeCloseTo(score(idfCherry, 3, 4), 12);
    expect(hits[2][1]).toBeCloseTo(score(idfCherry, 1, 2), 12);
    expect(index.search('apple cherry', 1)).toHaveLength(1);
    expect(index.search('zebra', 5)).toEqual([]);
  });
});

describe('Brown corpus', () => {
  it('parses tagged sentences, dropping tag suffixes and turning `` and \'\' into quotes', () => {
    expect(parseBrownSentence("\tThe/at Grand/jj-tl Jury/nn-tl said/vbd ``/`` no/at ''/'' ./.")).toEqual({
      words: ['The', 'Grand', 'Jury', 'said', '"', 'no', '"', '.'],
      tags: ['at', 'jj', 'nn', 'vbd', '``', 'at', "''", '.'],
    });
  });
});

describe('buildCollection', () => {
  const options = { seed: 7, passageWords: 100, queries: 40, candidates: 10, documents: 12 };
  const built = buildCollection(options);
  const all = ['train', 'dev', 'test'] as const;

  it('is the same every time for the same options, and changes with the seed', () => {
    const again = buildCollection(options);
    expect(JSON.stringify(again.queries)).toBe(JSON.stringify(built.queries));
    expect(JSON.stringify([...again.candidates.dev])).toBe(JSON.stringify([...built.candidates.dev]));
    expect(again.passages.map((p) => p.text)).toEqual(built.passages.map((p) => p.text));
    expect(JSON.stringify(buildCollection({ ...options, seed: 8 }).queries)).not.toBe(JSON.stringify(built.queries));
  });

  it('splits the queries 70/15/15 without overlap', () => {
    expect(all.map((s) => built.queries[s].length)).toEqual([28, 6, 6]);
    const ids = all.flatMap((s) => built.queries[s].map((q) => q.id));
    expect(new Set(ids).size).toBe(40);
  });

  it('cuts each query out of its grade-2 passage, and judges only passages of the same document', () => {
    const byId = new Map(built.passages.map((p) => [p.id, p]));
    for (const s of all)
      for (const q of built.queries[s]) {
        const judged = built.qrels[s].get(q.id)!;
        const sources = [...judged].filter(([, g]) => g === 2).map(([pid]) => pid);
        expect(sources).toHaveLength(1);
        expect(byId.get(sources[0])!.text.toLowerCase()).not.toContain(q.text);
        const doc = byId.get(sources[0])!.doc;
        for (const pid of judged.keys()) expect(byId.get(pid)!.doc).toBe(doc);
        const cands = built.candidates[s].get(q.id)!;
        expect(cands.length).toBeLessThanOrEqual(10);
        for (let i = 1; i < cands.length; i++) expect(cands[i - 1][1]).toBeGreaterThanOrEqual(cands[i][1]);
      }
  });

  it('writes files the readers load back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-coll-'));
    try {
      await writeCollection(dir, built);
      const passages: string[] = [];
      for await (const r of readTextTsv(path.join(dir, 'collection.tsv'))) passages.push(r.id);
      expect(passages).toEqual(built.passages.map((p) => p.id));
      expect(await loadQrels(path.join(dir, 'qrels.dev.txt'))).toEqual(built.qrels.dev);
      let n = 0;
      for await (const c of readCandidates(path.join(dir, 'candidates.test.tsv'))) n += c.qid.startsWith('q') ? 1 : 0;
      expect(n).toBe([...built.candidates.test.values()].reduce((a, l) => a + l.length, 0));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).options).toEqual(options);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
