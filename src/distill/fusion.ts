// Score fusion of a trained re-ranker: its network's score plus w * BM25(q, p) plus v * the pair's
// word-vector similarity (data/word_vectors.ts), w and v chosen on the evaluation split's queries by
// MRR@10 over a fixed grid. This is the interpolation of a neural re-ranker with its first stage
// that Anserini/Pyserini hybrids tune on held-out queries (Wang et al., "BERT-based dense retrievers
// require interpolation with BM25", ICTIR 2021), with a semantic term beside the lexical one as in
// CLEAR (Gao et al., ECIR 2021). A small re-ranker trained from random weights learns signal that
// BM25 lacks but loses some that BM25 has, and knows no word it was not trained on; the sum keeps all
// three (bench/results/teacher.md). The fused model is a bm25Score / wordVectorScore model
// (CrossEncoderConfig) holding w and v, so every reader of the model dir (teacher scores, eval, the
// suite) scores it as fused with no option of its own.
import * as tf from '@tensorflow/tfjs';

import type { Split } from '../data/collection';
import type { RankingCollection } from '../data/ranking_collection';
import type { World } from '../distributed/world';
import { evaluateRun, type Run } from '../eval/metrics';
import { evalQrels } from '../eval/rerank';
import { CrossEncoder } from '../models/cross_encoder';
import type { PairEncoder } from '../models/pair_encoder';
import { rerankSharded } from './scoring';

export type FusionFeature = 'bm25' | 'wordVectors';
export const FUSION_FEATURES: readonly FusionFeature[] = ['bm25', 'wordVectors'];
/** Each feature's name in reports ("teacher = its network + 1 × BM25 + ..."). */
export const FUSION_FEATURE_TEXT: Record<FusionFeature, string> = {
  bm25: 'BM25',
  wordVectors: 'word-vector similarity',
};

/**
 * The weights tried per feature, in order (of equal MRR@10 the smaller weight wins, so 0 keeps the
 * network alone unless the feature helps). On the bundled collection BM25 scores of one query's
 * candidates spread over ~5-30, word-vector similarities over ~0.3-0.9 and a from-scratch
 * re-ranker's logits over ~5-10: the grids reach from the network alone to the feature deciding.
 */
export const FUSION_WEIGHTS: Record<FusionFeature, readonly number[]> = {
  bm25: [0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
  wordVectors: [0, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50],
};

export interface Fusion {
  /** the chosen weights of the fused features: score = network + bm25 * BM25 + wordVectors * similarity */
  weights: Partial<Record<FusionFeature, number>>;
  split: Split;
  /** the split's queries the weights were chosen on (all of them) */
  queries: number;
  /** MRR@10 on those queries: the network alone (every weight 0) and fused with the chosen weights */
  mrr10: { network: number; fused: number };
}

/**
 * Scores every query of `split` with the model's network (what the model already fuses of the
 * features taken out), then picks the grid weights with the best MRR@10 of the fused score (float64).
 */
export async function fitFusion(
  model: CrossEncoder,
  encoder: PairEncoder,
  coll: RankingCollection,
  split: Split,
  features: readonly FusionFeature[],
  options: { scoreBatch: number; world?: World },
): Promise<Fusion> {
  const scored = await rerankSharded(model, encoder, coll, split, options);
  if (scored.size === 0)
    throw new Error(`${coll.dir}: fusion chooses its weights on the ${split} queries, and there are none`);
  const own = ownWeights(model);
  type Pair = { pid: string; network: number; bm25: number; wordVectors: number };
  const pairs = new Map<string, Pair[]>();
  for (const [qid, scores] of scored) {
    const list: Pair[] = [];
    for (const [pid, s] of scores) {
      // Only the features being refitted are read (the others' grid is {0}); a refitted feature's
      // own term leaves the network, one that is not refitted stays in it.
      const bm25 = features.includes('bm25') ? encoder.bm25ScoreOf(qid, pid) : 0;
      const wordVectors = features.includes('wordVectors') ? encoder.wordVectorScoreOf(qid, pid) : 0;
      const network = s - own.bm25 * bm25 - own.wordVectors * wordVectors;
      list.push({ pid, network, bm25, wordVectors });
    }
    pairs.set(qid, list);
  }
  const qrels = evalQrels(coll, split, scored);
  const mrrOf = (w: number, v: number) => {
    const run: Run = new Map();
    for (const [qid, list] of pairs)
      run.set(qid, new Map(list.map((p) => [p.pid, p.network + w * p.bm25 + v * p.wordVectors])));
    return evaluateRun(run, qrels, [10], `fusion on ${split}`).mean.rr10;
  };
  const grid = (f: FusionFeature) => (features.includes(f) ? FUSION_WEIGHTS[f] : [0]);
  let best = { w: 0, v: 0, mrr10: -1 };
  for (const w of grid('bm25'))
    for (const v of grid('wordVectors')) {
      const mrr10 = mrrOf(w, v);
      if (mrr10 > best.mrr10) best = { w, v, mrr10 };
    }
  const weights: Fusion['weights'] = {};
  if (features.includes('bm25')) weights.bm25 = best.w;
  if (features.includes('wordVectors')) weights.wordVectors = best.v;
  return { weights, split, queries: pairs.size, mrr10: { network: mrrOf(0, 0), fused: best.mrr10 } };
}

/** The feature weights a model already adds (0 for a feature it does not read). */
function ownWeights(model: CrossEncoder): Record<FusionFeature, number> {
  const read = (name: string) => (model.params.has(name) ? model.params.get(name)!.dataSync()[0] : 0);
  return { bm25: read('classifier.bm25_weight'), wordVectors: read('classifier.word_vector_weight') };
}

/**
 * A new model with `model`'s weights that adds each fitted feature with its weight (the caller
 * disposes both). A feature with weight 0 is still read, so the fit stays visible in model.json; the
 * terms the network did not have are listed in fusedTerms (a student from its layers leaves them).
 */
export function withFusion(model: CrossEncoder, fusion: Fusion): CrossEncoder {
  const { bm25, wordVectors } = fusion.weights;
  const added = [
    ...(bm25 !== undefined && !model.config.bm25Score ? (['bm25Score'] as const) : []),
    ...(wordVectors !== undefined && !model.config.wordVectorScore ? (['wordVectorScore'] as const) : []),
  ];
  const fusedTerms = [...new Set([...(model.config.fusedTerms ?? []), ...added])];
  const fused = new CrossEncoder({
    ...model.config,
    bm25Score: model.config.bm25Score || bm25 !== undefined,
    wordVectorScore: model.config.wordVectorScore || wordVectors !== undefined,
    ...(fusedTerms.length ? { fusedTerms } : {}),
  });
  for (const [name, v] of model.params) fused.params.get(name)!.assign(v);
  tf.tidy(() => {
    if (bm25 !== undefined) fused.params.get('classifier.bm25_weight')!.assign(tf.tensor1d([bm25]));
    if (wordVectors !== undefined)
      fused.params.get('classifier.word_vector_weight')!.assign(tf.tensor1d([wordVectors]));
  });
  return fused;
}

/** One line for the progress log: the weights and what they did on the split. */
export function fusionNotice(f: Fusion): string {
  const weights = Object.entries(f.weights)
    .map(([k, w]) => `${k} ${w}`)
    .join(', ');
  return (
    `fusion: weights ${weights} chosen on ${f.queries} ${f.split} queries: MRR@10 ${f.mrr10.network.toFixed(4)} (network alone) -> ` +
    `${f.mrr10.fused.toFixed(4)} (fused)`
  );
}
