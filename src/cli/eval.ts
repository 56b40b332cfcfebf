// `fused-distill eval <model...>`: models re-rank the same queries' BM25 candidates; one table of
// MRR@10, nDCG@10, the paired t-test against a baseline model, parameters and ms/query (plus BM25's
// own ranking), with --out a report (JSON, Markdown, HTML) and with --run-out each model's ranking
// as a TREC run. `fused-distill eval --run <file> --qrels <file>` evaluates any run file as trec_eval
// does (src/eval/trec.ts). Under several ranks each rank re-ranks a share of the queries and every
// rank ends with the same evaluations; rank 0 alone prints and writes the files.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Option, type Command } from 'commander';

import type { Split } from '../data/collection';
import { withDirLock } from '../data/lock';
import { BadRows } from '../data/bad_rows';
import { loadMsMarco } from '../data/msmarco';
import { loadRankingCollection, requireSplit } from '../data/ranking_collection';
import { BertTokenizer, type PairTokenizer } from '../data/tokenizer';
import { getWorld } from '../distributed/world';
import { BM25_ROW_NAME, evaluateBm25, evaluateCrossEncoder, tableRows, type ModelEvaluation } from '../eval/rerank';
import { evaluateTrec, readTrecQrels, readTrecRun, trecTable, writeTrecRun } from '../eval/trec';
import { loadCrossEncoder } from '../models/checkpoint';
import type { CrossEncoder } from '../models/cross_encoder';
import {
  huggingFaceDirTokenizer,
  isHuggingFaceDir,
  loadHuggingFace,
  loadHuggingFaceTokenizer,
} from '../models/huggingface';
import { PairEncoder, type PairInputForm } from '../models/pair_encoder';
import { environment, resultsTable, writeReport, type RunReport } from '../report/report';
import { MATMUL_PRECISION_FLAG } from '../backend/precision';
import {
  UsageError,
  existingFile,
  nonNegativeInt,
  parseModelSpec,
  positiveInt,
  printBadRows,
  progressFor,
  type GlobalOptions,
} from './common';

interface EvalOptions {
  collection?: string;
  msmarco?: string;
  skipBadRows?: boolean;
  split: Split;
  queries?: number;
  candidates?: number;
  maxLength: number;
  baseline?: string;
  out?: string;
  bm25: boolean;
  tokenizer?: string;
  runOut?: string;
  run?: string;
  qrels?: string;
  relevanceLevel?: number;
  complete?: boolean;
}

/**
 * `--run <file> --qrels <file>`: trec_eval's measures of a run file. Averages as trec_eval -c unless
 * --no-complete: a run that leaves out its hard queries must not score higher for it.
 */
async function evaluateRunFile(o: EvalOptions): Promise<void> {
  if (!o.run || !o.qrels) throw new UsageError('--run and --qrels go together: give both files');
  const run = await readTrecRun(existingFile(o.run, 'run file'));
  const qrels = await readTrecQrels(existingFile(o.qrels, 'qrels file'));
  const e = evaluateTrec(run, qrels, { relevanceLevel: o.relevanceLevel ?? 1, complete: o.complete ?? true });
  // Nothing to share out: every rank reads the files, rank 0 prints.
  if (getWorld().rank === 0) process.stdout.write(`${trecTable(e)}\n`);
}

/** --run-out's file for a model: `{name}` in the path is the model's name (needed for several models). */
function runOutFile(pattern: string, name: string, models: number): string {
  if (models > 1 && !pattern.includes('{name}'))
    throw new UsageError(`--run-out ${pattern}: with several models put {name} in the path, e.g. runs/{name}.trec`);
  return path.resolve(pattern.split('{name}').join(name));
}

export function registerEval(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  program
    .command('eval')
    .description(
      're-rank BM25 candidates with each model: MRR@10, nDCG@10, paired t-test vs a baseline, parameters, ms/query',
    )
    .argument('[models...]', 'model dirs or run dirs, optionally named: name=path')
    .option('--collection <dir>', 'collection dir (default: the bundled Brown collection)')
    .option(
      '--msmarco <dir>',
      "or MS MARCO's files: a dir with the official names or a JSON descriptor (as data.msmarco; evaluate with --split dev)",
    )
    .option('--skip-bad-rows', "with --msmarco: skip malformed rows of MS MARCO's files, counted per file and printed")
    .addOption(
      new Option('--split <split>', 'queries to evaluate on').choices(['train', 'dev', 'test']).default('test'),
    )
    .option('--queries <n>', 'the first n queries of the split (default: all)', positiveInt)
    .option('--candidates <n>', 're-rank the BM25 top-n (default: all candidates)', positiveInt)
    .option('--max-length <n>', 'WordPieces per query-passage pair', positiveInt, 128)
    .option(
      '--baseline <name>',
      "the model the others are t-tested against (default: the first); 'bm25': the first stage",
    )
    .option('--no-bm25', 'leave out the BM25 row')
    .option(
      '--tokenizer <dir>',
      "the tokenizer of the fused-distill model dirs: a Hugging Face dir's (a student distilled from its teacher); default bert-base-uncased",
    )
    .option('--out <dir>', 'write report.json, report.md and report.html there')
    .option('--run-out <file>', "write each model's ranking as a TREC run ({name} in the path: the model's name)")
    .option('--run <file>', 'evaluate this run file (TREC or MS MARCO columns, .gz too) instead of models')
    .option('--qrels <file>', "the run's judgments (TREC qrels: qid iteration docno grade)")
    .option(
      '--relevance-level <n>',
      'with --run: relevant when grade >= n (trec_eval -l; 2 for TREC DL)',
      nonNegativeInt,
    )
    .option('--complete', 'with --run: average over every qrels query, missing ones as 0 (trec_eval -c; the default)')
    .option('--no-complete', 'with --run: average over the queries in both run and qrels (trec_eval without -c)')
    .action(async (specs: string[], o: EvalOptions) => {
      if (o.run || o.qrels) {
        if (specs.length > 0) throw new UsageError('give either models or --run/--qrels, not both');
        return evaluateRunFile(o);
      }
      if (specs.length === 0)
        throw new UsageError("missing required argument 'models' (or --run <file> --qrels <file>)");
      if (o.relevanceLevel !== undefined || o.complete !== undefined)
        throw new UsageError('--relevance-level and --complete go with --run');
      if (o.collection && o.msmarco) throw new UsageError('give --collection or --msmarco, not both');
      if (o.skipBadRows && !o.msmarco) throw new UsageError('--skip-bad-rows goes with --msmarco');
      if (o.msmarco && !fs.existsSync(o.msmarco)) throw new UsageError(`--msmarco: not found: ${o.msmarco}`);
      const t0 = Date.now();
      const models = specs.map(parseModelSpec);
      const names = models.map((m) => m.name);
      if (new Set(names).size !== names.length)
        throw new UsageError(`two models have the same name (${names.join(', ')}): name them, e.g. a=runs/x b=runs/y`);
      // `--baseline bm25` tests every model against the first stage it re-ranks.
      let baseline = o.baseline ?? (models.length > 1 ? models[0].name : null);
      if (baseline === 'bm25' && !names.includes('bm25')) {
        if (!o.bm25) throw new UsageError('--baseline bm25 needs the BM25 row (drop --no-bm25)');
        baseline = BM25_ROW_NAME;
      }
      if (baseline != null && baseline !== BM25_ROW_NAME && !names.includes(baseline))
        throw new UsageError(`--baseline ${baseline}: not one of the models (${names.join(', ')}) nor bm25`);
      const backend = await setup();
      const world = getWorld();
      const lead = world.rank === 0;
      const progress = progressFor(lead ? globals() : { ...globals(), progress: 'none' });
      try {
        const badRows = new BadRows(o.skipBadRows ?? false);
        const coll = o.msmarco
          ? await loadMsMarco(path.resolve(o.msmarco), { badRows })
          : await loadRankingCollection(o.collection ? path.resolve(o.collection) : undefined);
        requireSplit(coll, o.split, `--split ${o.split}`);
        if (lead) printBadRows(badRows.total > 0 ? badRows.summary() : undefined);
        // One encoder per tokenizer (our models share bert-base-uncased's, a Hugging Face dir brings its
        // own) and input form (a bm25Text model reads the BM25 score as text, a bm25Score one adds it).
        const encoders = new Map<string, PairEncoder>();
        const encoderFor = (tokenizer: PairTokenizer, form: PairInputForm = {}) => {
          const key = `${tokenizer.signature}\0${!!form.bm25Text}\0${!!form.bm25Score}\0${!!form.wordVectorScore}`;
          let e = encoders.get(key);
          if (!e) encoders.set(key, (e = new PairEncoder(tokenizer, coll, o.maxLength, form)));
          return e;
        };
        let runTokenizer: PairTokenizer | null = null;
        const target = { split: o.split, queries: o.queries, candidates: o.candidates };
        const evals: ModelEvaluation[] = o.bm25 ? [evaluateBm25(coll, target)] : [];
        const runOuts = o.runOut ? models.map((m) => runOutFile(o.runOut!, m.name, models.length)) : [];
        for (const m of models) {
          let model: CrossEncoder;
          let encoder: PairEncoder;
          if (m.kind === 'huggingface') {
            const loaded = loadHuggingFace(m.dir);
            model = loaded.model;
            encoder = encoderFor(loaded.tokenizer);
          } else {
            model = loadCrossEncoder(m.dir);
            // a model dir (config.json) pairs as its family does (RoBERTa's <s> q </s></s> p </s>)
            runTokenizer ??= o.tokenizer
              ? isHuggingFaceDir(path.resolve(o.tokenizer))
                ? huggingFaceDirTokenizer(path.resolve(o.tokenizer))
                : loadHuggingFaceTokenizer(path.resolve(o.tokenizer)).tokenizer
              : new BertTokenizer();
            encoder = encoderFor(runTokenizer, model.config);
          }
          try {
            evals.push(
              await evaluateCrossEncoder(
                model,
                encoder,
                coll,
                target,
                { name: m.name, kind: 'model' },
                progress.onProgress,
                { world },
              ),
            );
          } finally {
            model.dispose();
          }
        }
        progress.close();
        const queries = evals[0]?.perQuery.size ?? 0;
        const maxCands = Math.max(0, ...[...coll.candidates[o.split].values()].map((c) => c.length));
        const report: RunReport = {
          title: 'fused-distill eval',
          created: new Date().toISOString(),
          environment: environment(backend, String(tf.env().get(MATMUL_PRECISION_FLAG))),
          wallSeconds: (Date.now() - t0) / 1000,
          evaluation: {
            split: o.split,
            queries,
            candidates: Math.min(maxCands, o.candidates ?? maxCands),
            baseline,
            significance: baseline
              ? `p: two-sided paired t-test against "${baseline}" over the per-query MRR@10 and nDCG@10.`
              : 'One model: no significance test.',
            timing:
              "ms/query: mean wall time of one forward pass over a query's candidates, padded to --max-length (texts tokenized beforehand), after one warm-up query." +
              (world.size > 1
                ? ` ${world.size} ranks each timed their share of the queries (after a warm-up query of their own); the mean is over all queries.`
                : ''),
          },
          rows: tableRows(evals, baseline),
          runs: [],
          notes: [`collection: ${coll.dir}`, ...models.map((m) => `${m.name}: ${m.dir}`), `backend ${tf.getBackend()}`],
        };
        if (!lead) return;
        process.stdout.write(`${resultsTable(report)}\n`);
        for (const [i, file] of runOuts.entries()) {
          const e = evals.find((x) => x.name === models[i].name)!;
          await writeTrecRun(file, e.run, models[i].name.replace(/\s+/g, '_'));
          process.stdout.write(`run: ${file}\n`);
        }
        if (o.out) {
          const out = path.resolve(o.out);
          const files = await withDirLock(out, () => writeReport(out, report));
          process.stdout.write(`report: ${files.html}\n`);
        }
      } finally {
        progress.close();
      }
    });
}
