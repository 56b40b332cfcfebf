// The fused kernel behind the seven prediction-layer losses: one native pass computes the weighted
// sum of the enabled terms and, when a gradient is being recorded, d(total)/d(s). Each loss family's
// op (pointwise.ts, pairwise.ts, listwise.ts, distill.ts) and the combined objective (objective.ts)
// call runScoreLoss with their weights.
import { NamedTensorInfoMap, NamedTensorMap, Scalar, Tensor, TensorInfo } from '@tensorflow/tfjs';

import { TERM_NAMES, TermName } from '../native';
import { defineFusedKernel, fusedKernelsReady, runFusedKernel } from '../ops/dispatch';
import { runFusedLoss } from '../ops/fused_op';
import { SCALE_BY_UPSTREAM } from '../ops/upstream';
import { FusedDistillError, checkLike, checkNumber, checkTensor, required } from '../ops/validate';

export const RANKING_OBJECTIVE = 'FusedDistillRankingObjective';

export type Weights = Partial<Record<TermName, number>>;

export interface ScoreLossOptions {
  mask?: Tensor | null;
  temperature?: number;
  sigma?: number;
  margin?: number;
}

interface ObjectiveAttrs {
  weights: number[];
  temperature: number;
  sigma: number;
  margin: number;
  withParts: boolean;
  op: string; // the public op's name, for error messages
  withGrad?: boolean; // set by runFusedLoss
}

// Outputs: [total, grad if withGrad, parts[7] if withParts]. The addon writes the total and the parts
// into one result operand (1 + 7 floats), which slice splits: no read-back on the device.
defineFusedKernel(RANKING_OBJECTIVE, (backendName) => ({ inputs, backend, attrs }) => {
  const { s, t, y, mask } = inputs as Partial<NamedTensorInfoMap>;
  const a = attrs as unknown as ObjectiveAttrs;
  const shape = s!.shape;
  const cols = shape[shape.length - 1];
  const rows = shape.reduce((p, d) => p * d, 1) / cols;
  const terms = TERM_NAMES.length;
  const outShapes = [[], ...(a.withGrad ? [shape] : []), ...(a.withParts ? [[terms]] : [])];
  return runFusedKernel(
    backend,
    backendName,
    [s, t, y, mask],
    outShapes,
    (ops, [sv, tv, yv, mv], outs, scratch) => {
      const result = scratch(1 + terms);
      const grad = a.withGrad ? outs[1] : null;
      ops.rankingObjective(
        sv!,
        tv,
        yv,
        mv,
        rows,
        cols,
        Float32Array.from(a.weights),
        a.temperature,
        a.sigma,
        a.margin,
        grad,
        result,
      );
      ops.slice(result, [1 + terms], [0], [1], outs[0]);
      if (a.withParts) ops.slice(result, [1 + terms], [1], [terms], outs[outs.length - 1]);
    },
    a.op,
  ) as TensorInfo[];
});

const needsTeacher: TermName[] = ['distillKL', 'marginMSE', 'scoreMSE'];
const needsLabels: TermName[] = ['pointwiseBCE', 'pairwiseRankNet', 'pairwiseHinge', 'listwiseSoftmaxCE'];

/** runScoreLoss's `reference` for an op whose composite gives only the total. */
export function totalOf(reference: () => Scalar): () => { total: Scalar; parts: null } {
  return () => ({ total: reference(), parts: null });
}

/**
 * One prediction-layer term as its own op (pointwise.ts, pairwise.ts, listwise.ts, distill.ts): the
 * fused kernel with that term's weight 1 and every other term off, or `reference` (the term's
 * composite) where the addon cannot be loaded. Only distillKL takes s of any rank (rows: last axis).
 */
export function runTerm(
  term: TermName,
  s: unknown,
  t: unknown,
  y: unknown,
  options: ScoreLossOptions,
  reference: () => Scalar,
): Scalar {
  const weights = TERM_NAMES.map((name) => (name === term ? 1 : 0));
  return runScoreLoss(term, s, t, y, weights, options, term === 'distillKL', false, totalOf(reference)).total;
}

/** Validates a weights object (each weight finite and >= 0; 0 = term off) and turns it into the
 *  kernel's vector (TERM_NAMES order). */
export function weightVector(op: string, weights: unknown): number[] {
  if (weights == null || typeof weights !== 'object')
    throw new FusedDistillError(op, `weights must be an object keyed by ${TERM_NAMES.join(', ')}`);
  for (const key of Object.keys(weights))
    if (!(TERM_NAMES as readonly string[]).includes(key))
      throw new FusedDistillError(op, `weights has unknown term '${key}'; expected one of ${TERM_NAMES.join(', ')}`);
  return TERM_NAMES.map((name) => {
    const w = (weights as Weights)[name];
    return w == null ? 0 : checkNumber(op, `weights.${name}`, w, 'nonNegative');
  });
}

/**
 * Runs the fused objective. `anyRank`: s may have any rank >= 1 (distillKL: rows are the last
 * axis); otherwise s is [B, G]. Returns the total and, when asked, the per-term parts [7].
 * `reference` gives the same from the plain-tfjs composites, for a backend the fused kernels cannot
 * run on (the arguments are checked first either way).
 */
export function runScoreLoss(
  op: string,
  sIn: unknown,
  tIn: unknown,
  yIn: unknown,
  weights: number[],
  options: ScoreLossOptions,
  anyRank: boolean,
  withParts: boolean,
  reference: () => { total: Scalar; parts: Tensor | null },
): { total: Scalar; parts: Tensor | null } {
  const s = checkTensor(op, 's', sIn, anyRank ? 1 : 2, anyRank ? Infinity : 2, anyRank ? '[..., G]' : '[B, G]');
  const uses = (names: TermName[]) => names.some((n) => weights[TERM_NAMES.indexOf(n)] !== 0);
  let t = checkLike(op, 't', tIn, s.shape, 'teacher scores, the shape of s');
  let y = checkLike(op, 'y', yIn, s.shape, 'labels, the shape of s');
  if (uses(needsTeacher)) t = required(op, 't', t, 'by distillKL, marginMSE and scoreMSE');
  else t = null;
  if (uses(needsLabels)) y = required(op, 'y', y, 'by pointwiseBCE, the pairwise and listwise losses');
  else y = null;
  const mask = checkLike(op, 'mask', options.mask, s.shape, '0/1, the shape of s');
  const attrs: ObjectiveAttrs = {
    weights,
    temperature: checkNumber(op, 'temperature', options.temperature ?? 1, 'positive'),
    sigma: checkNumber(op, 'sigma', options.sigma ?? 1, 'nonNegative'),
    margin: checkNumber(op, 'margin', options.margin ?? 1, 'nonNegative'),
    withParts,
    op,
  };
  const inputs: NamedTensorMap = { s };
  if (t) inputs.t = t;
  if (y) inputs.y = y;
  if (mask) inputs.mask = mask;
  if (!fusedKernelsReady([RANKING_OBJECTIVE, SCALE_BY_UPSTREAM])) return reference();
  const { loss, extras } = runFusedLoss(RANKING_OBJECTIVE, inputs, attrs, s);
  return { total: loss, parts: extras[0] ?? null };
}
