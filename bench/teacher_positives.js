#!/usr/bin/env node
// Where a collection's training positives lie relative to the BM25 candidates a re-ranker sees, and
// what BM25's own score, scaled by w, scores as a training signal on the groups the sampler builds
// (1 positive + 7 negatives drawn from the query's non-relevant candidates): the mean ranknet loss
// over (positive, negative) pairs and the listwise softmax cross-entropy, for all groups and for the
// groups whose positive is among the candidates. A loss that rises with w means the groups teach
// that term overlap points away from relevance (bench/results/teacher.md).
//
//   npm run build && node bench/teacher_positives.js [collection dir] [--queries n] [--seed s]
'use strict';
const path = require('path');

const D = path.join(__dirname, '..', 'dist');
const { loadRankingCollection } = require(`${D}/data/ranking_collection`);
const { Bm25Index } = require(`${D}/data/bm25`);
const { Mulberry32 } = require(`${D}/data/random`);

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? def : Number(args[i + 1]);
};
const dir = args[0] && !args[0].startsWith('--') ? args[0] : undefined;
const queries = opt('queries', 1500);
const rng = new Mulberry32(opt('seed', 1));
const NEGATIVES = 7;
const WEIGHTS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1];

(async () => {
  const coll = await loadRankingCollection(dir);
  const index = new Bm25Index();
  for (const [id, text] of coll.passages) index.add(id, text);
  const groups = { all: [], inCandidates: [] };
  for (const [qid, cands] of [...coll.candidates.train].slice(0, queries)) {
    const judged = coll.qrels.train.get(qid) ?? new Map();
    const positives = [...judged].filter(([, g]) => g >= 1).map(([p]) => p);
    const pool = cands.filter((p) => (judged.get(p) ?? 0) < 1);
    if (positives.length === 0 || pool.length === 0) continue;
    const positive = positives[Math.floor(rng.next() * positives.length)];
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    const text = coll.queries.train.get(qid);
    const scores = [positive, ...pool.slice(0, NEGATIVES)].map((p) => index.score(text, p));
    groups.all.push(scores);
    if (cands.includes(positive)) groups.inCandidates.push(scores);
  }
  console.log(
    `${groups.all.length} training queries: the positive is among the ${Math.max(...[...coll.candidates.train.values()].map((c) => c.length))} candidates for ${groups.inCandidates.length} (${((100 * groups.inCandidates.length) / groups.all.length).toFixed(0)}%)`,
  );
  for (const [name, list] of Object.entries(groups)) {
    console.log(`\n${name} groups (${list.length}): w, ranknet loss, listwise CE of w * BM25`);
    for (const w of WEIGHTS) {
      let ranknet = 0;
      let pairs = 0;
      let ce = 0;
      for (const [pos, ...negs] of list) {
        for (const n of negs) {
          ranknet += Math.log1p(Math.exp(-w * (pos - n)));
          pairs++;
        }
        const all = [pos, ...negs].map((s) => w * s);
        const m = Math.max(...all);
        ce += m + Math.log(all.reduce((a, s) => a + Math.exp(s - m), 0)) - w * pos;
      }
      console.log(`  ${w}\t${(ranknet / pairs).toFixed(4)}\t${(ce / list.length).toFixed(4)}`);
    }
  }
})();
