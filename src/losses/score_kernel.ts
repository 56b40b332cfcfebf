// The fused kernel behind the seven prediction-layer losses: one native pass computes the weighted
// sum of the enabled terms and, when a gradient is being recorded, d(total)/d(s). Each loss family's
// op (pointwise.ts, pairwise.ts, listwise.ts, distill.ts) and the combined objective (objective.ts)
// call runScoreLoss with their weights.
import { KernelConfig, NamedTensorInfoMap, NamedTensorMap, Scalar, Tensor, TensorInfo, registerKernel } from '@tensorflow/tfjs';

import { TERM_NAMES, TermName, addon, cudaDevice } from '../native';
import { DEVICE_BACKEND, FUSED_BACKENDS, checkDeviceMask, runOnBackend, runOnDevice } from './kernel_io';
import { runFusedLoss } from './fused_op';
import { FusedDistillError, checkLike, checkNumber, checkTensor, required } from './validate';

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

for (const backendName of FUSED_BACKENDS) {
  const config: KernelConfig = {
    kernelName: RANKING_OBJECTIVE,
    backendName,
    // Outputs: [total, grad if withGrad, parts[7] if withParts].
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { s, t, y, mask } = inputs as Partial<NamedTensorInfoMap>;
      const a = attrs as unknown as ObjectiveAttrs;
      const shape = s!.shape;
      const cols = shape[shape.length - 1];
      const rows = shape.reduce((p, d) => p * d, 1) / cols;
      const outShapes = [[], ...(a.withGrad ? [shape] : []), ...(a.withParts ? [[TERM_NAMES.length]] : [])];
      return runOnBackend(backend, backendName, [s, t, y, mask], outShapes, ([sv, tv, yv, mv], outs) => {
        const grad = a.withGrad ? outs[1] : null;
        const parts = a.withParts ? new Float64Array(TERM_NAMES.length) : null;
        outs[0][0] = addon.rankingObjective(
          sv!, tv, yv, mv, rows, cols, Float32Array.from(a.weights), a.temperature, a.sigma, a.margin, grad, parts,
        );
        if (parts) outs[outs.length - 1].set(parts);
      }, a.op) as TensorInfo[];
    },
  };
  registerKernel(config);
}

// 'cuda': the same outputs from cuda.rankingObjective on device buffers. Its result buffer holds the
// total then the 7 parts; the outputs are copies of it (no download).
registerKernel({
  kernelName: RANKING_OBJECTIVE,
  backendName: DEVICE_BACKEND,
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { s, t, y, mask } = inputs as Partial<NamedTensorInfoMap>;
    const a = attrs as unknown as ObjectiveAttrs;
    const shape = s!.shape;
    const cols = shape[shape.length - 1];
    const rows = shape.reduce((p, d) => p * d, 1) / cols;
    const terms = TERM_NAMES.length;
    if (mask) checkDeviceMask(backend, mask, a.op, 'mask');
    const outShapes = [[], ...(a.withGrad ? [shape] : []), ...(a.withParts ? [[terms]] : [])];
    return runOnDevice(backend, [s, t, y, mask], outShapes, ([sb, tb, yb, mb], outs, scratch) => {
      const dev = cudaDevice();
      const result = scratch(1 + terms);
      const grad = a.withGrad ? outs[1] : null;
      dev.rankingObjective(sb!, tb, yb, mb, rows, cols, Float32Array.from(a.weights), a.temperature, a.sigma, a.margin, grad, result);
      dev.copy(outs[0], result, 1);
      if (a.withParts) dev.slice(result, [1 + terms], [1], [terms], outs[outs.length - 1]);
    }, a.op) as TensorInfo[];
  },
});

const needsTeacher: TermName[] = ['distillKL', 'marginMSE', 'scoreMSE'];
const needsLabels: TermName[] = ['pointwiseBCE', 'pairwiseRankNet', 'pairwiseHinge', 'listwiseSoftmaxCE'];

/** Validates a weights object and turns it into the kernel's vector (TERM_NAMES order). */
export function weightVector(op: string, weights: unknown): number[] {
  if (weights == null || typeof weights !== 'object')
    throw new FusedDistillError(op, `weights must be an object keyed by ${TERM_NAMES.join(', ')}`);
  for (const key of Object.keys(weights))
    if (!(TERM_NAMES as readonly string[]).includes(key))
      throw new FusedDistillError(op, `weights has unknown term '${key}'; expected one of ${TERM_NAMES.join(', ')}`);
  return TERM_NAMES.map((name) => {
    const w = (weights as Weights)[name];
    return w == null ? 0 : checkNumber(op, `weights.${name}`, w);
  });
}

/**
 * Runs the fused objective. `anyRank`: s may have any rank >= 1 (distillKL: rows are the last
 * axis); otherwise s is [B, G]. Returns the total and, when asked, the per-term parts [7].
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
    temperature: checkNumber(op, 'temperature', options.temperature ?? 1, true),
    sigma: checkNumber(op, 'sigma', options.sigma ?? 1),
    margin: checkNumber(op, 'margin', options.margin ?? 1),
    withParts,
    op,
  };
  const inputs: NamedTensorMap = { s };
  if (t) inputs.t = t;
  if (y) inputs.y = y;
  if (mask) inputs.mask = mask;
  const { loss, extras } = runFusedLoss(RANKING_OBJECTIVE, inputs, attrs, s);
  return { total: loss, parts: extras[0] ?? null };
}
