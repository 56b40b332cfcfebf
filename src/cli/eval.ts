// `fused-distill eval <model...>`: models re-rank the same queries' BM25 candidates; one table of
// MRR@10, nDCG@10, the paired t-test against a baseline model, parameters and ms/query (plus BM25's
// own ranking), and with --out a report (JSON, Markdown, HTML).
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { Option, type Command } from 'commander';

import type { Split } from '../data/collection';
import { withDirLock } from '../data/lock';
import { loadRankingCollection } from '../data/ranking_collection';
import { BertTokenizer, type PairTokenizer } from '../data/tokenizer';
import { evaluateBm25, evaluateCrossEncoder, tableRows, type ModelEvaluation } from '../eval/rerank';
import { loadCrossEncoder } from '../models/checkpoint';
import type { CrossEncoder } from '../models/cross_encoder';
import { loadHuggingFace, loadHuggingFaceTokenizer } from '../models/huggingface';
import { PairEncoder } from '../models/pair_encoder';
import { environment, resultsTable, writeReport, type RunReport } from '../report/report';
import { UsageError, parseModelSpec, positiveInt, progressFor, type GlobalOptions } from './common';

interface EvalOptions {
  collection?: string;
  split: Split;
  queries?: number;
  candidates?: number;
  maxLength: number;
  baseline?: string;
  out?: string;
  bm25: boolean;
  tokenizer?: string;
}

export function registerEval(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  program
    .command('eval')
    .description(
      're-rank BM25 candidates with each model: MRR@10, nDCG@10, paired t-test vs a baseline, parameters, ms/query',
    )
    .argument('<models...>', 'model dirs or run dirs, optionally named: name=path')
    .option('--collection <dir>', 'collection dir (default: the bundled Brown collection)')
    .addOption(
      new Option('--split <split>', 'queries to evaluate on').choices(['train', 'dev', 'test']).default('test'),
    )
    .option('--queries <n>', 'the first n queries of the split (default: all)', positiveInt)
    .option('--candidates <n>', 're-rank the BM25 top-n (default: all candidates)', positiveInt)
    .option('--max-length <n>', 'WordPieces per query-passage pair', positiveInt, 128)
    .option('--baseline <name>', 'the model the others are t-tested against (default: the first)')
    .option('--no-bm25', 'leave out the BM25 row')
    .option(
      '--tokenizer <dir>',
      "the tokenizer of the fused-distill model dirs: a Hugging Face dir's (a student distilled from its teacher); default bert-base-uncased",
    )
    .option('--out <dir>', 'write report.json, report.md and report.html there')
    .action(async (specs: string[], o: EvalOptions) => {
      const t0 = Date.now();
      const models = specs.map(parseModelSpec);
      const names = models.map((m) => m.name);
      if (new Set(names).size !== names.length)
        throw new UsageError(`two models have the same name (${names.join(', ')}): name them, e.g. a=runs/x b=runs/y`);
      const baseline = o.baseline ?? (models.length > 1 ? models[0].name : null);
      if (baseline != null && !names.includes(baseline))
        throw new UsageError(`--baseline ${baseline}: not one of the models (${names.join(', ')})`);
      const backend = await setup();
      const progress = progressFor(globals());
      try {
        const coll = await loadRankingCollection(o.collection ? path.resolve(o.collection) : undefined);
        // One encoder per tokenizer: our models share bert-base-uncased's, a Hugging Face dir brings its own.
        const encoders = new Map<string, PairEncoder>();
        const encoderFor = (tokenizer: PairTokenizer) => {
          let e = encoders.get(tokenizer.signature);
          if (!e) encoders.set(tokenizer.signature, (e = new PairEncoder(tokenizer, coll, o.maxLength)));
          return e;
        };
        let runTokenizer: PairTokenizer | null = null;
        const target = { split: o.split, queries: o.queries, candidates: o.candidates };
        const evals: ModelEvaluation[] = o.bm25 ? [evaluateBm25(coll, target)] : [];
        for (const m of models) {
          let model: CrossEncoder;
          let encoder: PairEncoder;
          if (m.kind === 'huggingface') {
            const loaded = loadHuggingFace(m.dir);
            model = loaded.model;
            encoder = encoderFor(loaded.tokenizer);
          } else {
            model = loadCrossEncoder(m.dir);
            runTokenizer ??= o.tokenizer
              ? loadHuggingFaceTokenizer(path.resolve(o.tokenizer)).tokenizer
              : new BertTokenizer();
            encoder = encoderFor(runTokenizer);
          }
          try {
            evals.push(
              evaluateCrossEncoder(model, encoder, coll, target, { name: m.name, kind: 'model' }, progress.onProgress),
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
          environment: environment(backend),
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
              "ms/query: mean wall time of one forward pass over a query's candidates, padded to --max-length (texts tokenized beforehand), after one warm-up query.",
          },
          rows: tableRows(evals, baseline),
          runs: [],
          notes: [`collection: ${coll.dir}`, ...models.map((m) => `${m.name}: ${m.dir}`), `backend ${tf.getBackend()}`],
        };
        process.stdout.write(`${resultsTable(report)}\n`);
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
