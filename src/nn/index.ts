// Fused network layers: each op is a tfjs op with its gradient, one native kernel pass each way on
// the 'cpu', 'wasm' and 'native' backends (the plain-tfjs composite elsewhere); `reference` holds
// the composites.
import { gelu, geluReference } from './gelu';
import { layerNorm, layerNormReference } from './layer_norm';

export const reference = { layerNorm: layerNormReference, gelu: geluReference };

export { gelu, layerNorm };
export { GELU, GELU_GRAD } from './gelu';
export { LAYER_NORM, LAYER_NORM_GRAD } from './layer_norm';
