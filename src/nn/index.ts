// Fused network layers: each op is a tfjs op with its gradient, one native kernel pass each way on
// every backend (src/ops/dispatch.ts); `reference` holds the plain-tfjs composites.
import { attention, attentionReference } from './attention';
import { biasGelu, biasGeluReference, gelu, geluReference } from './gelu';
import { addLayerNorm, addLayerNormReference, layerNorm, layerNormReference } from './layer_norm';

export const reference = {
  layerNorm: layerNormReference,
  gelu: geluReference,
  attention: attentionReference,
  addLayerNorm: addLayerNormReference,
  biasGelu: biasGeluReference,
};

export { addLayerNorm, attention, biasGelu, gelu, layerNorm };
export { dropout, philoxUniform } from './dropout';
export type { AttentionOptions } from './attention';
export { ATTENTION, ATTENTION_GRAD } from './attention';
export { BIAS_GELU, BIAS_GELU_GRAD, GELU, GELU_GRAD } from './gelu';
export { ADD_LAYER_NORM, ADD_LAYER_NORM_GRAD, LAYER_NORM, LAYER_NORM_GRAD } from './layer_norm';
