// A BERT-style cross-encoder in TensorFlow.js: token + position + type embeddings, L layers of
// multi-head self-attention and GELU feed-forward with post-LayerNorm, the [CLS] state through BERT's
// pooler (dense + tanh) to one relevance score. Parameters are tf.Variables named as in Hugging Face's
// BertForSequenceClassification (Linear weights stored [out, in] as there), so checkpoints map one to
// one. forward() can also return every layer's hidden states and attention scores (pre-softmax), the
// inputs of intermediate-layer distillation. No dropout yet.
//
// Two options cover ELECTRA's ElectraForSequenceClassification: embeddings narrower than the encoder
// (embeddingSize, projected to hidden by bert.embeddings_project) and ELECTRA's head (head: 'electra',
// gelu(classifier.dense([CLS])) through classifier.out_proj, no pooler). Two more cover RoBERTa's and
// XLM-RoBERTa's: positions counted from the padding id (positionPaddingIdx) and their head (head:
// 'roberta', tanh instead of gelu). Absent, the model is BERT's.
import * as tf from '@tensorflow/tfjs';

import { normalArray, rng } from '../data/random';
import { addLayerNorm, attention as fusedAttention, biasGelu, dropout, gelu, layerNorm } from '../nn';

export interface CrossEncoderConfig {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPosition: number;
  typeVocab: number;
  layerNormEps: number;
  initStd: number;
  /**
   * Adds a learned term-match embedding (bert.embeddings.match_embeddings.weight, [2, hidden]) to
   * the input embeddings: row 1 at passage tokens that also occur in the query, row 0 elsewhere
   * (DrQA's exact-match feature, Duet's local model). It lets a small cross-encoder trained from
   * random init learn query-passage matching within a few hundred steps. Off (absent) for
   * Hugging Face BERTs; the inputs must then carry termMatchIds.
   */
  termMatch?: boolean;
  /**
   * Rows of the term-match table past row 0 (default 1: the binary [2, hidden] table). With more,
   * row g is a match of rarity level g (PairEncoder grades matches 1..4 by the WordPiece's idf in the
   * collection); levels above the table's are clamped to its last row, so a binary model reads any
   * match as 1.
   */
  termMatchLevels?: number;
  /**
   * The model reads each pair's BM25 score as text: the query segment starts with the score rounded
   * to an integer ("17 what is ..."), as Askari et al. (ECIR 2023) inject it into cross-encoders, so a
   * re-ranker starts from the first stage's evidence instead of relearning it. PairEncoder adds the
   * text (bm25Text option); the weights are a plain BERT's, the flag says how inputs were built.
   */
  bm25Text?: boolean;
  /**
   * The score adds w * BM25(q, p), w a learned scalar (classifier.bm25_weight, initialised to BM25_WEIGHT_INIT): the
   * network learns a residual over the first stage's score instead of relearning it (CLEAR, Gao et
   * al., ECIR 2021; the interpolation of re-ranker and BM25 scores that Anserini/Pyserini hybrids
   * tune by hand, here trained end to end). At initialisation the model ranks (almost) as BM25 does.
   * PairEncoder supplies the scores (bm25Score option, inputs.bm25Scores).
   */
  bm25Score?: boolean;
  /**
   * The score adds v * sim(q, p), v a scalar (classifier.word_vector_weight), sim the cosine of the
   * query's and the passage's idf-weighted word-vector centroids (data/word_vectors.ts, the bundled
   * GloVe table). Set by fusion (distill/fusion.ts), which chooses v on held-out queries; PairEncoder
   * supplies the similarities (wordVectorScore option, inputs.wordVectorScores).
   */
  wordVectorScore?: boolean;
  /**
   * The score terms that fusion added after training (not trained with the network): a student
   * from this model's layers (studentFromLayers) does not inherit them.
   */
  fusedTerms?: Array<'bm25Score' | 'wordVectorScore'>;
  /**
   * Width of the embedding tables and their LayerNorm (default hidden). When it differs from hidden,
   * bert.embeddings_project ([hidden, embeddingSize] + bias) maps the LayerNorm's output to hidden,
   * as ELECTRA's embeddings_project; hidden states [0] are that projection's output.
   */
  embeddingSize?: number;
  /**
   * The score head on the [CLS] state: 'pooler' (default; BERT's classifier(tanh(bert.pooler.dense)))
   * 'electra' (ElectraClassificationHead: classifier.out_proj(gelu(classifier.dense)), erf GELU) or
   * 'roberta' (RobertaClassificationHead: classifier.out_proj(tanh(classifier.dense))).
   */
  head?: CrossEncoderHead;
  /**
   * RoBERTa's positions (create_position_ids_from_input_ids): absent, token i has position i (BERT);
   * set to the padding id (pad_token_id), a token that is not padding has position paddingIdx + its
   * 1-based count among the row's non-padding tokens, and padding has position paddingIdx.
   */
  positionPaddingIdx?: number;
}

/**
 * bm25Score's weight at initialisation. BM25 scores of one query's top candidates differ by ~1-10
 * (bundled collection); at 0.1 those gaps become logit gaps of ~0.1-1, the scale the network's own
 * score reaches early in training, so neither term drowns the other (initialised at 1, a 600-step
 * teacher's dev ranking stayed BM25's to the fourth digit).
 */
export const BM25_WEIGHT_INIT = 0.1;

export type CrossEncoderHead = 'pooler' | 'electra' | 'roberta';

/** The score terms added to the network's score, each a weight times a per-pair input: config option, input, weight. */
const SCORE_TERMS = [
  ['bm25Score', 'bm25Scores', 'classifier.bm25_weight'],
  ['wordVectorScore', 'wordVectorScores', 'classifier.word_vector_weight'],
] as const;
const HEADS: readonly CrossEncoderHead[] = ['pooler', 'electra', 'roberta'];

export const BERT_MINI: CrossEncoderConfig = {
  vocabSize: 30522,
  hidden: 256,
  layers: 4,
  heads: 4,
  intermediate: 1024,
  maxPosition: 512,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.02,
};

export interface EncoderInputs {
  /** [B, L] int32 */
  inputIds: tf.Tensor2D;
  /** [B, L] int32 */
  tokenTypeIds: tf.Tensor2D;
  /** [B, L] of 0/1 (int32 or float32) */
  attentionMask: tf.Tensor2D;
  /** [B, L] int32: 0, or the match level of a passage token that occurs in the query (PairEncoding.termMatchIds); read only by termMatch models */
  termMatchIds?: tf.Tensor2D;
  /** [B] float32: each pair's BM25 score (PairEncoder's bm25Score option); read only by bm25Score models */
  bm25Scores?: tf.Tensor1D;
  /** [B] float32: each pair's word-vector similarity (PairEncoder's wordVectorScore option); read only by wordVectorScore models */
  wordVectorScores?: tf.Tensor1D;
}

/** Disposes every tensor of the inputs (termMatchIds too, when present). */
export function disposeEncoderInputs(inputs: EncoderInputs): void {
  tf.dispose([
    inputs.inputIds,
    inputs.tokenTypeIds,
    inputs.attentionMask,
    ...(inputs.termMatchIds ? [inputs.termMatchIds] : []),
    ...(inputs.bm25Scores ? [inputs.bm25Scores] : []),
    ...(inputs.wordVectorScores ? [inputs.wordVectorScores] : []),
  ]);
}

export interface EncoderOutputs {
  /** [B] relevance scores */
  scores: tf.Tensor1D;
  /** embeddings output, then each layer's output: [B, L, H] each (when asked for) */
  hidden?: tf.Tensor3D[];
  /** each layer's attention scores before softmax: [B, A, L, L] (when asked for) */
  attention?: tf.Tensor4D[];
}

/**
 * tf.gather(table, ids) with a scatter-add gradient. tf.gather's own gradient is UnsortedSegmentSum,
 * which tfjs's 'cpu' backend computes as one masked sum per table row: O(vocab x tokens x H), about
 * two minutes per step for BERT's 30,522-row table. tf.scatterND sums duplicate indices in one pass
 * over the tokens, O(tokens x H + vocab x H), on every backend.
 */
export function embeddingLookup(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  const [rows, width] = table.shape as [number, number];
  const lookup = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [t, ids, save] = args as [tf.Tensor2D, tf.Tensor, tf.GradSaveFunc];
    save([ids]); // the ids may be an intermediate of a tidy that ends before backward runs
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor, [i]: tf.Tensor[]) => {
        const flatIds = tf.reshape(i, [i.size, 1]);
        return [tf.scatterND(flatIds, tf.reshape(dy, [i.size, width]), [rows, width]), tf.zerosLike(i)];
      },
    };
  });
  return lookup(table, ids);
}

export class CrossEncoder {
  private static instances = 0;
  /** the parameters by their Hugging Face names */
  readonly params = new Map<string, tf.Variable>();

  constructor(
    readonly config: CrossEncoderConfig,
    seed = 0,
  ) {
    if (config.hidden % config.heads !== 0)
      throw new Error(`CrossEncoder: hidden (${config.hidden}) must be a multiple of heads (${config.heads})`);
    const random = rng(seed);
    // Truncated-normal-free init as BERT's: normal(0, initStd) for weights (Box-Muller on the seeded
    // PRNG, so a seed gives the same model in every process), zeros for biases, ones for LN scales.
    const normal = (shape: number[]) =>
      tf.tensor(
        normalArray(
          shape.reduce((a, b) => a * b, 1),
          config.initStd,
          random,
        ),
        shape,
      );
    // tfjs variable names are global: prefix them with this instance's number.
    const scope = `cross_encoder_${CrossEncoder.instances++}`;
    const add = (name: string, value: tf.Tensor) => {
      this.params.set(name, tf.variable(value, true, `${scope}/${name}`));
      value.dispose(); // the variable holds its own reference to the data
    };
    const { hidden: H, intermediate: I } = config;
    const E = config.embeddingSize ?? H;
    if (!Number.isInteger(E) || E < 1)
      throw new Error(`CrossEncoder: embeddingSize must be a positive integer, got ${config.embeddingSize}`);
    const head = config.head ?? 'pooler';
    if (!HEADS.includes(head))
      throw new Error(
        `CrossEncoder: head must be 'pooler', 'electra' or 'roberta', got ${JSON.stringify(config.head)}`,
      );
    const padIdx = config.positionPaddingIdx;
    if (padIdx !== undefined && (!Number.isInteger(padIdx) || padIdx < 0 || padIdx + 2 > config.maxPosition))
      throw new Error(
        `CrossEncoder: positionPaddingIdx must be an integer >= 0 below maxPosition - 1, got ${JSON.stringify(padIdx)}`,
      );
    const linear = (name: string, out: number, inp: number) => {
      add(`${name}.weight`, normal([out, inp]));
      add(`${name}.bias`, tf.zeros([out]));
    };
    const layerNorm = (name: string, width = H) => {
      add(`${name}.weight`, tf.ones([width]));
      add(`${name}.bias`, tf.zeros([width]));
    };
    add('bert.embeddings.word_embeddings.weight', normal([config.vocabSize, E]));
    add('bert.embeddings.position_embeddings.weight', normal([config.maxPosition, E]));
    add('bert.embeddings.token_type_embeddings.weight', normal([config.typeVocab, E]));
    const levels = config.termMatchLevels ?? 1;
    if (!Number.isInteger(levels) || levels < 1)
      throw new Error(`CrossEncoder: termMatchLevels must be an integer >= 1, got ${levels}`);
    if (config.termMatch) add('bert.embeddings.match_embeddings.weight', normal([levels + 1, E]));
    layerNorm('bert.embeddings.LayerNorm', E);
    if (E !== H) linear('bert.embeddings_project', H, E);
    for (let l = 0; l < config.layers; l++) {
      const p = `bert.encoder.layer.${l}`;
      linear(`${p}.attention.self.query`, H, H);
      linear(`${p}.attention.self.key`, H, H);
      linear(`${p}.attention.self.value`, H, H);
      linear(`${p}.attention.output.dense`, H, H);
      layerNorm(`${p}.attention.output.LayerNorm`);
      linear(`${p}.intermediate.dense`, I, H);
      linear(`${p}.output.dense`, H, I);
      layerNorm(`${p}.output.LayerNorm`);
    }
    if (head === 'electra' || head === 'roberta') {
      linear('classifier.dense', H, H);
      linear('classifier.out_proj', 1, H);
    } else {
      linear('bert.pooler.dense', H, H);
      linear('classifier', 1, H);
    }
    if (config.bm25Score) add('classifier.bm25_weight', tf.fill([1], BM25_WEIGHT_INIT));
    if (config.wordVectorScore) add('classifier.word_vector_weight', tf.zeros([1]));
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`CrossEncoder: no parameter ${name}`);
    return v;
  }

  // x W^T + b. On 'native' and 'cuda' one _FusedMatMul (the bias added in place to the product, with
  // the Add kernel's bits; its gradient the same Sum): one kernel and one tensor fewer a layer. Not on
  // the other backends: wasm's _FusedMatMul (XNNPACK) rounds a row differently with the batch it is
  // in, so micro-batched and re-scored results would no longer equal the whole batch's.
  private dense(x: tf.Tensor, name: string): tf.Tensor {
    const backend = tf.getBackend();
    if (backend === 'native' || backend === 'cuda')
      return tf.fused.matMul({
        a: x as tf.Tensor2D,
        b: this.p(`${name}.weight`) as tf.Tensor2D,
        transposeB: true,
        bias: this.p(`${name}.bias`),
      });
    return tf.add(this.product(x, name), this.p(`${name}.bias`));
  }

  // A dense layer's product without its bias (x W^T): the bias is added by the fused op that follows.
  private product(x: tf.Tensor, name: string): tf.Tensor {
    return tf.matMul(x as tf.Tensor2D, this.p(`${name}.weight`) as tf.Tensor2D, false, true);
  }

  // The fused op (one kernel each way) where the backend has it, the same composite elsewhere.
  private layerNorm(x: tf.Tensor, name: string): tf.Tensor {
    return layerNorm(x, this.p(`${name}.weight`), this.p(`${name}.bias`), this.config.layerNormEps);
  }

  // LayerNorm(dense(x) + residual) with the dense layer's bias and the residual add folded into the
  // LayerNorm's kernels (the same bits forward as the three ops).
  // With dropout (training), BERT's order: dense + bias, dropout, then LayerNorm(· + residual) — the
  // dropout sits between the bias and the residual, so the fused kernel gives way to the composite.
  private denseAddLayerNorm(
    x: tf.Tensor,
    dense: string,
    residual: tf.Tensor,
    name: string,
    drop?: (t: tf.Tensor) => tf.Tensor,
  ): tf.Tensor {
    if (drop)
      return this.layerNorm(tf.add(drop(tf.add(this.product(x, dense), this.p(`${dense}.bias`))), residual), name);
    return addLayerNorm(
      this.product(x, dense),
      residual,
      this.p(`${dense}.bias`),
      this.p(`${name}.weight`),
      this.p(`${name}.bias`),
      this.config.layerNormEps,
    );
  }

  /**
   * Intermediate tensors are freed (tf.tidy); the returned ones are the caller's to dispose.
   * `training.dropout`: BERT's hidden dropout (after the embeddings' LayerNorm and on each
   * sub-layer's output before its residual add) at `rate`, the masks drawn from `seed` (nn/dropout.ts);
   * absent: no dropout (evaluation, scoring, a frozen teacher).
   */
  forward(
    inputs: EncoderInputs,
    want: { hidden?: boolean; attention?: boolean } = {},
    training: { dropout?: { rate: number; seed: number } } = {},
  ): EncoderOutputs {
    return tf.tidy(
      () => this.forwardTensors(inputs, want, training.dropout) as unknown as tf.TensorContainer,
    ) as unknown as EncoderOutputs;
  }

  private forwardTensors(
    inputs: EncoderInputs,
    want: { hidden?: boolean; attention?: boolean },
    dropping?: { rate: number; seed: number },
  ): EncoderOutputs {
    // One mask per site (the embeddings, then two per layer), each from its own seed.
    const drop =
      dropping && dropping.rate > 0
        ? (site: number) => (t: tf.Tensor) => dropout(t, dropping.rate, dropping.seed * 64 + site)
        : null;
    const { hidden: H, heads: A } = this.config;
    const [B, L] = inputs.inputIds.shape;
    const padIdx = this.config.positionPaddingIdx;
    // RoBERTa's positions start after the padding id: a row of L tokens needs L + padIdx + 1 of them.
    const longest = padIdx === undefined ? this.config.maxPosition : this.config.maxPosition - padIdx - 1;
    if (L > longest)
      throw new Error(
        `CrossEncoder: sequence length ${L} > ${longest} (maxPosition ${this.config.maxPosition}` +
          `${padIdx === undefined ? '' : ` less positionPaddingIdx ${padIdx} + 1`})`,
      );
    const dh = H / A;
    let positions: tf.Tensor = tf.range(0, L, 1, 'int32');
    if (padIdx !== undefined) {
      const real = tf.cast(tf.notEqual(inputs.inputIds, tf.scalar(padIdx, 'int32')), 'int32');
      positions = tf.add(tf.mul(tf.cumsum(real, 1), real), tf.scalar(padIdx, 'int32'));
    }
    let x = tf.add(
      tf.add(
        embeddingLookup(this.p('bert.embeddings.word_embeddings.weight'), inputs.inputIds),
        embeddingLookup(this.p('bert.embeddings.position_embeddings.weight'), positions),
      ),
      embeddingLookup(this.p('bert.embeddings.token_type_embeddings.weight'), inputs.tokenTypeIds),
    );
    if (this.config.termMatch) {
      const m = inputs.termMatchIds;
      if (!m)
        throw new Error(
          'CrossEncoder: the model has termMatch; inputs.termMatchIds is required (PairEncoder.encode builds it)',
        );
      if (m.shape[0] !== B || m.shape[1] !== L)
        throw new Error(`CrossEncoder: inputs.termMatchIds has shape [${m.shape}], inputIds [${B},${L}]`);
      const rows = this.p('bert.embeddings.match_embeddings.weight').shape[0];
      x = tf.add(
        x,
        embeddingLookup(this.p('bert.embeddings.match_embeddings.weight'), tf.minimum(m, tf.scalar(rows - 1, 'int32'))),
      );
    }
    x = this.layerNorm(x, 'bert.embeddings.LayerNorm');
    if (drop) x = drop(0)(x);
    if (this.params.has('bert.embeddings_project.weight'))
      x = tf.reshape(this.dense(tf.reshape(x, [B * L, x.shape[2]!]), 'bert.embeddings_project'), [B, L, H]);
    // Padding keys get -10000 added to their logits, as in BERT.
    const keyBias = tf.mul(tf.sub(1, tf.cast(inputs.attentionMask, 'float32')), -10000) as tf.Tensor2D;
    const keyBias4 = tf.reshape(keyBias, [B, 1, 1, L]);
    const hidden: tf.Tensor3D[] = want.hidden ? [x as tf.Tensor3D] : [];
    const attention: tf.Tensor4D[] = [];
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, L, A, dh]), [0, 2, 1, 3]);
    for (let l = 0; l < this.config.layers; l++) {
      const p = `bert.encoder.layer.${l}`;
      const flat = tf.reshape(x, [B * L, H]);
      const qf = this.dense(flat, `${p}.attention.self.query`);
      const kf = this.dense(flat, `${p}.attention.self.key`);
      const vf = this.dense(flat, `${p}.attention.self.value`);
      let context: tf.Tensor;
      if (!want.attention) {
        // One fused kernel each way on the [B, L, H] projections (src/nn/attention.ts).
        const bl = (t: tf.Tensor) => tf.reshape(t, [B, L, H]);
        context = tf.reshape(fusedAttention(bl(qf), bl(kf), bl(vf), keyBias, { heads: A }), [B * L, H]);
      } else {
        // Attention losses need the pre-softmax logits: the composite keeps them.
        const logits = tf.div(tf.matMul(heads(qf), heads(kf), false, true), Math.sqrt(dh)) as tf.Tensor4D;
        attention.push(logits);
        const probs = tf.softmax(tf.add(logits, keyBias4));
        context = tf.reshape(tf.transpose(tf.matMul(probs, heads(vf)), [0, 2, 1, 3]), [B * L, H]);
      }
      const attn = this.denseAddLayerNorm(
        context,
        `${p}.attention.output.dense`,
        flat,
        `${p}.attention.output.LayerNorm`,
        drop?.(1 + 2 * l),
      );
      const inter = biasGelu(this.product(attn, `${p}.intermediate.dense`), this.p(`${p}.intermediate.dense.bias`));
      const out = this.denseAddLayerNorm(inter, `${p}.output.dense`, attn, `${p}.output.LayerNorm`, drop?.(2 + 2 * l));
      x = tf.reshape(out, [B, L, H]);
      if (want.hidden) hidden.push(x as tf.Tensor3D);
    }
    const cls = tf.reshape(tf.slice(x, [0, 0, 0], [B, 1, H]), [B, H]);
    const head = this.config.head ?? 'pooler';
    let scores = (
      head === 'pooler'
        ? tf.reshape(this.dense(tf.tanh(this.dense(cls, 'bert.pooler.dense')), 'classifier'), [B])
        : tf.reshape(
            this.dense(
              (head === 'electra' ? gelu : tf.tanh)(this.dense(cls, 'classifier.dense')),
              'classifier.out_proj',
            ),
            [B],
          )
    ) as tf.Tensor1D;
    for (const [option, input, weight] of SCORE_TERMS) {
      if (!this.config[option]) continue;
      const s = inputs[input];
      if (!s)
        throw new Error(
          `CrossEncoder: the model has ${option}; inputs.${input} is required (PairEncoder with the ${option} option builds it)`,
        );
      if (s.shape.length !== 1 || s.shape[0] !== B)
        throw new Error(`CrossEncoder: inputs.${input} has shape [${s.shape}], expected [${B}]`);
      scores = tf.add(scores, tf.mul(this.p(weight), s)) as tf.Tensor1D;
    }
    return { scores, ...(want.hidden ? { hidden } : {}), ...(want.attention ? { attention } : {}) };
  }

  /**
   * A student that starts from this model's every k-th layer (layers k-1, 2k-1, ...), with the same
   * embeddings and score head: the usual way to initialise a smaller student from a teacher. Score
   * terms that fusion added (fusedTerms) stay with the teacher.
   */
  studentFromLayers(k: number): CrossEncoder {
    if (!Number.isInteger(k) || k < 1 || this.config.layers % k !== 0)
      throw new Error(`studentFromLayers: k must divide the teacher's ${this.config.layers} layers, got ${k}`);
    const { fusedTerms, ...config } = this.config;
    for (const term of fusedTerms ?? []) delete config[term];
    const student = new CrossEncoder({ ...config, layers: this.config.layers / k });
    for (const [name, v] of student.params) {
      const m = /^bert\.encoder\.layer\.(\d+)\.(.*)$/.exec(name);
      const source = m ? `bert.encoder.layer.${(Number(m[1]) + 1) * k - 1}.${m[2]}` : name;
      v.assign(this.p(source));
    }
    return student;
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}
