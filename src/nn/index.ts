// Fused network layers: each op is a tfjs op with its gradient, one native kernel pass each way on
// every backend (src/ops/dispatch.ts); `reference` holds the plain-tfjs composites.
import { attention, attentionReference } from './attention';
import { gelu, geluReference } from './gelu';
import { layerNorm, layerNormReference } from './layer_norm';

export const reference = { layerNorm: layerNormReference, gelu: geluReference, attention: attentionReference };

export { attention, gelu, layerNorm };
export type { AttentionOptions } from './attention';
export { ATTENTION, ATTENTION_GRAD } from './attention';
export { GELU, GELU_GRAD } from './gelu';
export { LAYER_NORM, LAYER_NORM_GRAD } from './layer_norm';
