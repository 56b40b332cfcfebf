// `fused-distill data build [dir]`: the bundled Brown collection (default: data/brown), or one of
// another shape (--queries, --documents, ... : small ones for tests and quick trials).
import * as fs from 'fs';
import * as path from 'path';
import type { Command } from 'commander';

import { DEFAULT_COLLECTION_DIR, ensureDefaultCollection } from '../data/build_collection';
import { DEFAULT_COLLECTION, buildCollection, writeCollection, type CollectionOptions } from '../data/collection';
import { nonNegativeInt, positiveInt } from './common';

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

export function registerData(program: Command): void {
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
}
