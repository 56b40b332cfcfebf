// The training objectives: a teacher's on hard labels (BCE, RankNet, hinge, listwise CE), a
// student's with any mix of the grid: hard labels, soft labels (KL with temperature, Margin-MSE,
// score MSE) and intermediate layers (hidden-state, attention and embedding MSE). All
// prediction-layer terms go through ONE rankingObjectiveParts call per step (per micro-batch): one
// fused pass gives the weighted sum, its gradient, and each term for the log. Feature terms go
// through hiddenMSE / attentionMSE, one call each over all mapped layers.
import * as tf from '@tensorflow/tfjs';

import { Mulberry32, normalArray } from '../data/random';
import { hiddenMSE, attentionMSE } from '../losses/features';
import { rankingObjectiveParts } from '../losses/objective';
import type { Weights } from '../losses/score_kernel';
import type { CrossEncoder } from '../models/cross_encoder';
import type { TermName } from '../native';
import type { TrainBatch } from './batches';
import type { StudentLoss, TeacherLoss } from './config';
import { pairKey, type ScoreTable } from './teacher_cache';

/** Config names of the prediction-layer terms -> the fused objective's term names. */
export const PREDICTION_TERMS = {
  bce: 'pointwiseBCE',
  ranknet: 'pairwiseRankNet',
  hinge: 'pairwiseHinge',
  listwiseCE: 'listwiseSoftmaxCE',
  kl: 'distillKL',
  marginMSE: 'marginMSE',
  scoreMSE: 'scoreMSE',
} as const satisfies Record<string, TermName>;
type PredictionTerm = keyof typeof PREDICTION_TERMS;

/** A step's loss: the total and each weighted term by its config name. */
export interface LossParts {
  total: tf.Scalar;
  parts: Record<string, tf.Scalar>;
}

/** Weights for the fused objective from a loss config (config names -> term names). */
export function objectiveWeights(loss: Partial<Record<PredictionTerm, number>>): Weights {
  const w: Weights = {};
  for (const [name, term] of Object.entries(PREDICTION_TERMS)) {
    const v = loss[name as PredictionTerm] ?? 0;
    if (v > 0) w[term] = v;
  }
  return w;
}

/** The prediction-layer terms: ONE fused call; parts keyed by config name (weight > 0 only). */
export function predictionLoss(
  s: tf.Tensor2D,
  t: tf.Tensor2D | null,
  batch: TrainBatch,
  weights: Weights,
  loss: { temperature?: number; sigma: number; margin: number },
): LossParts {
  const r = rankingObjectiveParts(s, t, batch.labels, {
    weights,
    temperature: loss.temperature ?? 1,
    sigma: loss.sigma,
    margin: loss.margin,
    mask: batch.mask,
  });
  const parts: Record<string, tf.Scalar> = {};
  for (const [name, term] of Object.entries(PREDICTION_TERMS)) if (weights[term] != null) parts[name] = r.parts[term];
  return { total: r.total, parts };
}

/** A step's teacher signals, computed outside the gradient tape (disposed after the step). */
export interface Signals {
  scores?: tf.Tensor2D;
  hidden?: tf.Tensor;
  embedding?: tf.Tensor;
  attention?: tf.Tensor;
}

/** What the loop asks of an objective. */
export interface Objective {
  /** trained variables of the objective's own (projections), checkpointed with the model */
  readonly extra: Map<string, tf.Variable>;
  /** outside the gradient tape: this batch's teacher signals */
  signals(batch: TrainBatch): Signals;
  /** inside the tape: the total loss and each weighted term */
  loss(batch: TrainBatch, signals: Signals): LossParts;
  dispose(): void;
}

/** A teacher's objective: the prediction-layer terms of its scores against the hard labels. */
export class TeacherObjective implements Objective {
  readonly extra = new Map<string, tf.Variable>();
  private readonly weights: Weights;

  constructor(
    private readonly model: CrossEncoder,
    private readonly config: TeacherLoss,
  ) {
    this.weights = objectiveWeights(config);
  }

  signals(): Signals {
    return {};
  }

  loss(batch: TrainBatch): LossParts {
    const s = tf.reshape(this.model.forward(batch.inputs, {}, { dropout: batch.dropout }).scores, [
      batch.B,
      batch.G,
    ]) as tf.Tensor2D;
    return predictionLoss(s, null, batch, this.weights, this.config);
  }

  dispose(): void {}
}

function seededNormal(shape: [number, number], std: number, seed: number): tf.Tensor {
  const random = new Mulberry32(seed);
  return tf.tensor2d(
    normalArray(shape[0] * shape[1], std, () => random.next()),
    shape,
  );
}

// tfjs variable names are global: number the projections.
let projections = 0;

/**
 * A student's objective: the prediction-layer terms against the teacher's cached scores and the hard
 * labels, and the feature terms against the teacher's states on the same batch (the teacher runs
 * with no tape: it gets no gradient and costs no backward pass). Owns the teacher it is given (only
 * feature terms need one) and the projections.
 */
export class StudentObjective implements Objective {
  readonly extra = new Map<string, tf.Variable>();
  private readonly weights: Weights;
  private readonly wantHidden: boolean;
  private readonly wantEmbedding: boolean;
  private readonly wantAttention: boolean;
  private readonly wantFeatures: boolean;
  private readonly hiddenProj: tf.Variable | null;
  private readonly embeddingProj: tf.Variable | null;

  /**
   * teacher: null when no feature term has a weight. layerMap: student layer (1-based) -> teacher
   * layer, for the hidden-state and attention terms. seed: the run's (train.seed).
   */
  constructor(
    private readonly student: CrossEncoder,
    private readonly teacher: CrossEncoder | null,
    private readonly config: StudentLoss,
    private readonly scores: ScoreTable | null,
    private readonly layerMap: number[],
    seed: number,
  ) {
    this.weights = objectiveWeights(config);
    this.wantHidden = config.hiddenMSE > 0;
    this.wantEmbedding = config.embeddingMSE > 0;
    this.wantAttention = config.attentionMSE > 0;
    this.wantFeatures = this.wantHidden || this.wantEmbedding || this.wantAttention;
    if (this.wantFeatures && !teacher) throw new Error('StudentObjective: feature terms need the teacher');
    // Learned projections student width -> teacher width (TinyBERT's W_h, W_e), when the widths
    // differ: one shared by the mapped layers, one for the embeddings. Seeded normal(0, 1/sqrt(Hs))
    // keeps the projected states at the scale of LayerNorm outputs.
    const widen = teacher !== null && student.config.hidden !== teacher.config.hidden;
    this.hiddenProj = widen && this.wantHidden ? this.projection('projection.hidden.weight', seed + 2) : null;
    this.embeddingProj = widen && this.wantEmbedding ? this.projection('projection.embedding.weight', seed + 3) : null;
  }

  private projection(name: string, seed: number): tf.Variable {
    const Hs = this.student.config.hidden;
    const init = seededNormal([Hs, this.teacher!.config.hidden], 1 / Math.sqrt(Hs), seed);
    const v = tf.variable(init, true, `distill_${projections++}/${name}`);
    init.dispose();
    this.extra.set(name, v);
    return v;
  }

  private project(x: tf.Tensor, w: tf.Variable | null): tf.Tensor {
    if (!w) return x;
    const [n, l] = x.shape;
    const [Hs, Ht] = w.shape;
    return tf.reshape(tf.matMul(tf.reshape(x, [n * l, Hs]), w), [n, l, Ht]);
  }

  signals(batch: TrainBatch): Signals {
    const sig: Signals = {};
    if (this.scores) {
      const t = new Float32Array(batch.B * batch.G);
      batch.pairs.forEach((p, i) => {
        if (!p) return;
        const v = this.scores!.get(pairKey(p[0], p[1]));
        if (v == null) throw new Error(`teacher scores: no score for query ${p[0]}, passage ${p[1]}`);
        t[i] = v;
      });
      sig.scores = tf.tensor2d(t, [batch.B, batch.G]);
    }
    if (this.wantFeatures) {
      const { wantHidden, wantEmbedding, wantAttention, layerMap } = this;
      const out = this.teacher!.forward(batch.inputs, {
        hidden: wantHidden || wantEmbedding,
        attention: wantAttention,
      });
      if (wantHidden) sig.hidden = tf.stack(layerMap.map((t) => out.hidden![t]));
      if (wantEmbedding) sig.embedding = tf.clone(out.hidden![0]);
      if (wantAttention)
        sig.attention = tf.concat(
          layerMap.map((t) => out.attention![t - 1]),
          0,
        );
      tf.dispose([out.scores, ...(out.hidden ?? []), ...(out.attention ?? [])]);
    }
    return sig;
  }

  loss(batch: TrainBatch, sig: Signals): LossParts {
    const { wantHidden, wantEmbedding, wantAttention, layerMap, config: loss } = this;
    const out = this.student.forward(
      batch.inputs,
      { hidden: wantHidden || wantEmbedding, attention: wantAttention },
      { dropout: batch.dropout },
    );
    const parts: Record<string, tf.Scalar> = {};
    let total: tf.Scalar | null = null;
    const add = (name: string, term: tf.Scalar) => {
      parts[name] = term;
      total = total ? (tf.add(total, term) as tf.Scalar) : term;
    };
    if (Object.keys(this.weights).length > 0) {
      const s = tf.reshape(out.scores, [batch.B, batch.G]) as tf.Tensor2D;
      const r = predictionLoss(s, sig.scores ?? null, batch, this.weights, loss);
      total = r.total;
      Object.assign(parts, r.parts);
    }
    if (wantHidden) {
      const hs = tf.stack(layerMap.map((_, i) => this.project(out.hidden![i + 1], this.hiddenProj)));
      add('hiddenMSE', tf.mul(hiddenMSE(hs, sig.hidden!, { tokenMask: batch.tokenMask }), loss.hiddenMSE));
    }
    if (wantEmbedding)
      add(
        'embeddingMSE',
        tf.mul(
          hiddenMSE(this.project(out.hidden![0], this.embeddingProj), sig.embedding!, { tokenMask: batch.tokenMask }),
          loss.embeddingMSE,
        ),
      );
    if (wantAttention) {
      // All mapped layers in one call: stacked along the batch axis (each layer has as many valid
      // entries, so the mean over all is the mean of the layers' means).
      const as = tf.concat(
        layerMap.map((_, i) => out.attention![i]),
        0,
      );
      const tokenMask = tf.tile(batch.tokenMask, [layerMap.length, 1]);
      add('attentionMSE', tf.mul(attentionMSE(as, sig.attention!, { tokenMask }), loss.attentionMSE));
    }
    return { total: total!, parts };
  }

  dispose(): void {
    this.teacher?.dispose();
    for (const v of this.extra.values()) v.dispose();
  }
}
